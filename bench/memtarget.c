/*
 * memtarget: the program the benchmark checkpoints.
 *
 * It maps MAPPED MiB of private anonymous memory, fills the first TOUCHED MiB of it with
 * incompressible bytes (xorshift64*), optionally starts more threads, says it is ready and then
 * sleeps until a signal arrives:
 *   SIGUSR1  recompute the checksum of the touched memory and write "OK <pid> <hash>" (or
 *            "BAD <pid> <got> <expected>") to the check file (-c)   -- validates a restart
 *   SIGUSR2  write "ALIVE <pid>" to the check file at once, without hashing
 *   SIGTERM, SIGKILL  end it (default actions)
 * The check file is written as CHECK.tmp and renamed, so a reader never sees half of it.
 *
 * Usage: memtarget [-m TOUCHED_MiB] [-M MAPPED_MiB] [-t THREADS] [-s SEED] [-c CHECKFILE] [-D]
 *   -m  MiB to fill (default 16); 0 is allowed
 *   -M  MiB to map (default: same as -m); the rest of the mapping is never touched
 *   -t  total number of threads, the main one included (default 1); the others block in pause()
 *   -s  PRNG seed (default 1)
 *   -c  check file for SIGUSR1 / SIGUSR2 answers
 *   -D  detach: fork; the child starts a new session, points stdin/out/err at /dev/null, closes
 *       every other inherited descriptor, fills its memory and reports to the parent, which prints
 *       "READY <pid> <address> <bytes> <hash>" and exits 0 (1 if the child failed). The child is then
 *       an orphan (reparented to init or to the nearest child subreaper).
 *   Without -D the same READY line goes to stdout and the program stays in the foreground.
 *
 * Build: gcc -O2 -pthread -o memtarget memtarget.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include "memhash.h"

#define MiB (1024UL * 1024UL)

static unsigned char *region;
static size_t touched_bytes, mapped_bytes;
static uint64_t expected_hash;
static const char *check_path;
static volatile sig_atomic_t want_verify, want_alive;

static void fill(uint64_t seed)
{
    uint64_t x = seed ? seed : 0x9E3779B97F4A7C15ULL;
    uint64_t *w = (uint64_t *)region;
    size_t n = touched_bytes / sizeof(uint64_t);
    for (size_t i = 0; i < n; i++) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        w[i] = x * 0x2545F4914F6CDD1DULL;
    }
}

static uint64_t hash_memory(void) { return hash_words(region, touched_bytes); }

static void write_check(const char *text)
{
    if (!check_path) return;
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", check_path) >= (int)sizeof tmp) return;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return;
    size_t len = strlen(text), done = 0;
    while (done < len) {
        ssize_t n = write(fd, text + done, len - done);
        if (n <= 0) break;
        done += (size_t)n;
    }
    close(fd);
    rename(tmp, check_path);
}

static void on_signal(int sig)
{
    if (sig == SIGUSR1) want_verify = 1;
    else if (sig == SIGUSR2) want_alive = 1;
}

static void *idle_thread(void *arg)
{
    (void)arg;
    for (;;) pause();
    return NULL;
}

static void usage(void)
{
    fprintf(stderr, "usage: memtarget [-m TOUCHED_MiB] [-M MAPPED_MiB] [-t THREADS] [-s SEED] [-c CHECKFILE] [-D]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    long touched_mib = 16, mapped_mib = -1, threads = 1;
    uint64_t seed = 1;
    int detach = 0, opt;
    while ((opt = getopt(argc, argv, "m:M:t:s:c:D")) != -1) {
        switch (opt) {
        case 'm': touched_mib = strtol(optarg, NULL, 10); break;
        case 'M': mapped_mib = strtol(optarg, NULL, 10); break;
        case 't': threads = strtol(optarg, NULL, 10); break;
        case 's': seed = strtoull(optarg, NULL, 10); break;
        case 'c': check_path = optarg; break;
        case 'D': detach = 1; break;
        default: usage();
        }
    }
    if (mapped_mib < 0) mapped_mib = touched_mib;
    if (touched_mib < 0 || mapped_mib < touched_mib || threads < 1 || threads > 4096) usage();
    touched_bytes = (size_t)touched_mib * MiB;
    mapped_bytes = (size_t)mapped_mib * MiB;

    int report = STDOUT_FILENO;
    if (detach) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) != 0) { perror("pipe"); return 1; }
        pid_t child = fork();
        if (child < 0) { perror("fork"); return 1; }
        if (child > 0) {
            /* Parent: relay the child's READY line, then leave. */
            close(p[1]);
            char line[256];
            size_t got = 0;
            for (;;) {
                ssize_t n = read(p[0], line + got, sizeof line - 1 - got);
                if (n < 0 && errno == EINTR) continue;
                if (n <= 0) break;
                got += (size_t)n;
                if (memchr(line, '\n', got) || got == sizeof line - 1) break;
            }
            line[got] = 0;
            if (strncmp(line, "READY ", 6) != 0) {
                fprintf(stderr, "memtarget: the detached child failed before it was ready\n");
                waitpid(child, NULL, WNOHANG);
                return 1;
            }
            fputs(line, stdout);
            return 0;
        }
        /* Child: own session, stdio on /dev/null, nothing else inherited but the report pipe. */
        close(p[0]);
        setsid();
        int null = open("/dev/null", O_RDWR);
        if (null < 0) _exit(1);
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
        if (null > 2) close(null);
        report = p[1];
        if (report > 3) close_range(3, (unsigned)report - 1, 0);
        close_range((unsigned)report + 1, ~0U, 0);
    }

    if (mapped_bytes > 0) {
        region = mmap(NULL, mapped_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (region == MAP_FAILED) { perror("mmap"); return 1; }
    }
    fill(seed);
    expected_hash = hash_memory();

    /* SIGUSR1/SIGUSR2 stay blocked everywhere except inside the main thread's sigsuspend, so no answer is lost. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigaddset(&block, SIGUSR2);
    sigprocmask(SIG_BLOCK, &block, &old);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);

    for (long i = 1; i < threads; i++) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 64 * 1024);
        if (pthread_create(&t, &attr, idle_thread, NULL) != 0) { perror("pthread_create"); return 1; }
        pthread_attr_destroy(&attr);
    }

    char line[256];
    int len = snprintf(line, sizeof line, "READY %d 0x%" PRIxPTR " %zu %016" PRIx64 "\n",
                       (int)getpid(), (uintptr_t)region, touched_bytes, expected_hash);
    if (write(report, line, (size_t)len) != len) return 1;
    if (detach) close(report);

    sigset_t wait_mask = old;
    sigdelset(&wait_mask, SIGUSR1);
    sigdelset(&wait_mask, SIGUSR2);
    for (;;) {
        sigsuspend(&wait_mask);
        if (want_alive) {
            want_alive = 0;
            char text[64];
            snprintf(text, sizeof text, "ALIVE %d\n", (int)getpid());
            write_check(text);
        }
        if (want_verify) {
            want_verify = 0;
            uint64_t h = hash_memory();
            char text[128];
            if (h == expected_hash)
                snprintf(text, sizeof text, "OK %d %016" PRIx64 "\n", (int)getpid(), h);
            else
                snprintf(text, sizeof text, "BAD %d %016" PRIx64 " %016" PRIx64 "\n", (int)getpid(), h, expected_hash);
            write_check(text);
        }
    }
}
