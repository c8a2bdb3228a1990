/*
 * restart_state: a worker that reports, from its own point of view, everything a restart must give back.
 *
 * In its working directory (the launcher's fresh directory, "DIR") it creates DIR/work and moves into it,
 * then sets up:
 *   umask 027; RLIMIT_NOFILE soft 321, RLIMIT_FSIZE soft 1 GiB, RLIMIT_MSGQUEUE soft 12345 (hard unchanged)
 *   name "rs-worker" (PR_SET_NAME)
 *   SIGUSR1 and SIGHUP: counting handlers (SA_RESTART); SIGINT ignored
 *   blocked: SIGUSR2 and SIGRTMIN+2; SIGUSR2 also pending (sent to itself while blocked)
 *   2 MiB of heap filled with a pattern; round C overwrites word C % WORDS with pattern_word(2, C), so the whole
 *   buffer is a known function of the round count, and every round checks 1/64 of it against that function
 *   DIR/append.log opened O_WRONLY|O_APPEND and DIR/seq.log opened O_WRONLY|O_TRUNC (no O_APPEND: its offset
 *   matters): each round writes "C\n" to both, so a restart that loses or repeats a round shows there
 * Prints "READY <pid>", then every 20 rounds "TICK <count> <bad words so far>", and after each SIGUSR1 or
 * SIGHUP one line (and "ERR usr1=<n>" on stderr):
 *   STATE pid= ppid= pgid= sid= umask= cwd= nofile=soft/hard fsize=soft msgqueue=soft name= blocked=<hex>
 *         pending=<hex> intignored=0/1 usr1handler=0/1 count= bad= full= usr1= hup=
 * where the masks have bit N-1 for signal N, "full" is a check of the whole buffer done for the report, and
 * spaces in cwd are written as '_'.
 * With the argument "exit-after N CODE" it exits with CODE once it has counted N more rounds after a SIGHUP.
 */
#include "common.h"
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>

#define WORDS (256u * 1024)
#define SLICE (WORDS / 64)

static volatile sig_atomic_t usr1, hup;
static void on_usr1(int sig) { (void)sig; usr1++; }
static void on_hup(int sig) { (void)sig; hup++; }

static uint64_t *mem;

/* The word at index i after `count` rounds: the last round c <= count with c % WORDS == i, or the fill. */
static uint64_t expected(uint64_t i, uint64_t count)
{
    uint64_t c = 0;
    if (i == 0) c = count - count % WORDS;
    else if (count >= i) c = count - (count - i) % WORDS;
    return c ? pattern_word(2, c) : pattern_word(1, i);
}

static size_t check(size_t first, size_t n, uint64_t count)
{
    size_t bad = 0;
    for (size_t i = first; i < first + n; i++)
        if (mem[i] != expected(i, count)) bad++;
    return bad;
}

static unsigned long long mask_of(const sigset_t *set)
{
    unsigned long long m = 0;
    for (int s = 1; s <= 64; s++)
        if (sigismember(set, s) == 1) m |= 1ULL << (s - 1);
    return m;
}

static void write_all(int fd, const char *text)
{
    size_t n = strlen(text);
    while (n > 0) {
        ssize_t w = write(fd, text, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) die("write");
        text += w;
        n -= (size_t)w;
    }
}

static void set_soft(int resource, rlim_t soft)
{
    struct rlimit rl;
    if (getrlimit(resource, &rl) == -1) die("getrlimit");
    rl.rlim_cur = soft;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < soft) rl.rlim_cur = rl.rlim_max;
    if (setrlimit(resource, &rl) == -1) die("setrlimit");
}

static void report(uint64_t count, uint64_t bad)
{
    char cwd[2048], name[17] = { 0 };
    if (!getcwd(cwd, sizeof cwd)) strcpy(cwd, "?");
    for (char *p = cwd; *p; p++) if (*p == ' ') *p = '_';
    prctl(PR_GET_NAME, name);
    mode_t mask = umask(0);
    umask(mask);
    struct rlimit nofile, fsize, msgqueue;
    getrlimit(RLIMIT_NOFILE, &nofile);
    getrlimit(RLIMIT_FSIZE, &fsize);
    getrlimit(RLIMIT_MSGQUEUE, &msgqueue);
    sigset_t blocked, pending;
    sigprocmask(SIG_BLOCK, NULL, &blocked);
    sigpending(&pending);
    struct sigaction sint, susr1;
    sigaction(SIGINT, NULL, &sint);
    sigaction(SIGUSR1, NULL, &susr1);
    size_t full = check(0, WORDS, count);
    say("STATE pid=%d ppid=%d pgid=%d sid=%d umask=%03o cwd=%s nofile=%llu/%llu fsize=%llu msgqueue=%llu name=%s "
        "blocked=%llx pending=%llx intignored=%d usr1handler=%d count=%llu bad=%llu full=%zu usr1=%d hup=%d\n",
        (int)getpid(), (int)getppid(), (int)getpgid(0), (int)getsid(0), (unsigned)mask, cwd,
        (unsigned long long)nofile.rlim_cur, (unsigned long long)nofile.rlim_max, (unsigned long long)fsize.rlim_cur,
        (unsigned long long)msgqueue.rlim_cur, name, mask_of(&blocked), mask_of(&pending),
        sint.sa_handler == SIG_IGN, susr1.sa_handler == on_usr1 && (susr1.sa_flags & SA_RESTART) != 0,
        (unsigned long long)count, (unsigned long long)bad, full, (int)usr1, (int)hup);
    char line[64];
    snprintf(line, sizeof line, "ERR usr1=%d\n", (int)usr1);
    write_all(2, line);
}

int main(int argc, char **argv)
{
    long long exit_after = -1;
    int exit_code = 0;
    if (argc > 3 && strcmp(argv[1], "exit-after") == 0) {
        exit_after = atoll(argv[2]);
        exit_code = atoi(argv[3]);
    }

    int append = open("append.log", O_WRONLY | O_APPEND | O_CREAT | O_TRUNC, 0644);
    int seq = open("seq.log", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (append == -1 || seq == -1) die("open logs");
    if (mkdir("work", 0755) == -1 && errno != EEXIST) die("mkdir work");
    if (chdir("work") == -1) die("chdir work");

    umask(027);
    set_soft(RLIMIT_NOFILE, 321);
    set_soft(RLIMIT_FSIZE, 1ULL << 30);
    set_soft(RLIMIT_MSGQUEUE, 12345);
    prctl(PR_SET_NAME, "rs-worker");

    mem = malloc(WORDS * sizeof(uint64_t));
    if (!mem) die("malloc");
    fill_pattern(mem, WORDS * sizeof(uint64_t), 1);

    on_signal(SIGUSR1, on_usr1, SA_RESTART);
    on_signal(SIGHUP, on_hup, SA_RESTART);
    signal(SIGINT, SIG_IGN);
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR2);
    sigaddset(&block, SIGRTMIN + 2);
    if (sigprocmask(SIG_BLOCK, &block, NULL) == -1) die("sigprocmask");
    kill(getpid(), SIGUSR2);

    say("READY %d\n", (int)getpid());

    uint64_t count = 0, bad = 0;
    sig_atomic_t seen_usr1 = 0, seen_hup = 0;
    long long exit_at = -1;
    size_t slice = 0;
    char line[32];
    for (;;) {
        count++;
        mem[count % WORDS] = pattern_word(2, count);
        snprintf(line, sizeof line, "%llu\n", (unsigned long long)count);
        write_all(append, line);
        write_all(seq, line);
        size_t b = check(slice * SLICE, SLICE, count);
        if (b) {
            bad += b;
            say("CORRUPT slice %zu: %zu words differ at count %llu\n", slice, b, (unsigned long long)count);
        }
        slice = (slice + 1) % (WORDS / SLICE);
        if (usr1 != seen_usr1 || hup != seen_hup) {
            if (hup != seen_hup && exit_after >= 0 && exit_at < 0) exit_at = (long long)count + exit_after;
            seen_usr1 = usr1;
            seen_hup = hup;
            report(count, bad);
        }
        if (count % 20 == 0) say("TICK %llu %llu\n", (unsigned long long)count, (unsigned long long)bad);
        if (exit_at >= 0 && (long long)count >= exit_at) {
            say("EXIT %d %llu\n", exit_code, (unsigned long long)count);
            return exit_code;
        }
        sleep_ms(1);
    }
}
