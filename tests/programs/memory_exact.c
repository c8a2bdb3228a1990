/*
 * memory_exact: memory state beyond the bytes, each checked from the program's own side.
 * - nine anonymous areas, each given one vma flag: MADV_DONTFORK, MADV_WIPEONFORK, MADV_DONTDUMP,
 *   MADV_HUGEPAGE, MADV_NOHUGEPAGE, MADV_MERGEABLE, MADV_SEQUENTIAL, MADV_RANDOM, mlock; and one with
 *   a guard page (MADV_GUARD_INSTALL) between two pages of data;
 * - a file opened O_RDWR mapped MAP_SHARED PROT_READ (mprotect to PROT_WRITE must work) and one
 *   opened O_RDONLY the same way (mprotect to PROT_WRITE must fail with EACCES);
 * - a memfd made with MFD_ALLOW_SEALING: mode 0640, seals SHRINK|GROW, O_APPEND, mapped shared and
 *   private (the private one sees writes through the shared one), and a second, read-only,
 *   description of it opened through /proc/self/fd at its own offset;
 * - a memfd sealed F_SEAL_WRITE|F_SEAL_SEAL mapped read-only (mprotect to PROT_WRITE must fail);
 * - an unlinked file open twice (O_RDWR, and O_RDONLY at another offset), mapped private and shared:
 *   all four still see one file (writes through one are seen through the others).
 * Prints "READY <pid>", then the same "MEM ..." report once at start and after each SIGUSR1.
 * "memory_exact droppable" instead maps one MAP_DROPPABLE area (which no restart can make again),
 * prints "READY <pid> <address>" and prints "ALIVE <n>" after each SIGUSR1.
 */
#include "common.h"
#include <fcntl.h>
#include <setjmp.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif
#ifndef MFD_ALLOW_SEALING
#define MFD_ALLOW_SEALING 2
#endif
#define PAGE 4096

struct advised { const char *name; const char *flag; int advice; char *at; };
static struct advised areas[] = {
    { "dontfork", "dc", MADV_DONTFORK, 0 }, { "wipeonfork", "wf", MADV_WIPEONFORK, 0 },
    { "dontdump", "dd", MADV_DONTDUMP, 0 }, { "hugepage", "hg", MADV_HUGEPAGE, 0 },
    { "nohugepage", "nh", MADV_NOHUGEPAGE, 0 }, { "mergeable", "mg", MADV_MERGEABLE, 0 },
    { "sequential", "sr", MADV_SEQUENTIAL, 0 }, { "random", "rr", MADV_RANDOM, 0 },
    { "locked", "lo", -1, 0 },
};
#define NAREAS (int)(sizeof areas / sizeof areas[0])

static char *guarded, *rw_map, *ro_map, *mfd_shared, *mfd_private, *sealed_map;
static int mfd, mfd_ro, sealed, gone_rw, gone_ro;
static char *gone_private, *gone_shared;
static volatile sig_atomic_t asked;
static sigjmp_buf fault_jump;
static volatile sig_atomic_t catching;

static void on_usr1(int sig) { (void)sig; asked++; }
static void on_segv(int sig) { (void)sig; if (catching) siglongjmp(fault_jump, 1); _exit(99); }

/* 1 if the area holding p has this VmFlags flag, as the program's own smaps says. */
static int has_flag(const void *p, const char *flag)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return -1;
    char line[1024];
    int inside = 0, found = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long start, end;
        if (sscanf(line, "%lx-%lx ", &start, &end) == 2 && strchr(line, ':') > strchr(line, ' ')) {
            inside = (uintptr_t)p >= start && (uintptr_t)p < end;
            continue;
        }
        if (inside && strncmp(line, "VmFlags:", 8) == 0) {
            char want[8];
            snprintf(want, sizeof want, " %s", flag);
            for (char *s = line + 8; (s = strstr(s, want)); s++)
                if (s[3] == ' ' || s[3] == '\n') { found = 1; break; }
            break;
        }
    }
    fclose(f);
    return found;
}

static int faults(volatile char *p)
{
    catching = 1;
    int faulted = sigsetjmp(fault_jump, 1) != 0;
    if (!faulted) (void)*p;
    catching = 0;
    return faulted;
}

static const char *prot_result(void *p, int prot)
{
    if (mprotect(p, PAGE, prot) == 0) { mprotect(p, PAGE, PROT_READ); return "ok"; }
    return errno == EACCES ? "EACCES" : strerror(errno);
}

/* In a child: the DONTFORK area is gone, the WIPEONFORK area reads zeros. */
static int fork_view(void)
{
    pid_t child = fork();
    if (child == 0) {
        int gone = faults(areas[0].at);
        int wiped = areas[1].at[0] == 0 && areas[1].at[PAGE - 1] == 0;
        _exit(gone * 2 + wiped);
    }
    int status;
    if (child < 0 || waitpid(child, &status, 0) != child || !WIFEXITED(status)) return -1;
    return WEXITSTATUS(status);
}

static void report(void)
{
    char flags[512] = "";
    size_t bad = 0;
    for (int i = 0; i < NAREAS; i++) {
        size_t n = strlen(flags);
        snprintf(flags + n, sizeof flags - n, " %s=%d", areas[i].name, has_flag(areas[i].at, areas[i].flag));
        bad += check_pattern(areas[i].at, 0, 2 * PAGE / 8, 100 + i);
    }
    bad += check_pattern(guarded, 0, PAGE / 8, 200) + check_pattern(guarded + 2 * PAGE, 0, PAGE / 8, 201);
    char shared_before = mfd_shared[5];
    mfd_shared[5] = 'Z';
    int private_sees = mfd_private[5] == 'Z';
    mfd_shared[5] = shared_before;
    char one;
    int ro_reads = pread(mfd_ro, &one, 1, 0) == 1;
    int ro_writes = write(mfd_ro, "x", 1) == 1;
    char old = gone_private[9], seen = 0;
    pwrite(gone_rw, "Q", 1, 9);
    int gone_priv = gone_private[9] == 'Q';
    pwrite(gone_rw, &old, 1, 9);
    old = gone_shared[9];
    gone_shared[9] = 'R';
    int gone_ro_sees = pread(gone_ro, &seen, 1, PAGE + 9) == 1 && seen == 'R';
    gone_shared[9] = old;
    say("UNLINKED private=%d ro=%d ropos=%lld rwpos=%lld\n", gone_priv, gone_ro_sees,
        (long long)lseek(gone_ro, 0, SEEK_CUR), (long long)lseek(gone_rw, 0, SEEK_CUR));
    struct stat st;
    fstat(mfd, &st);
    say("MEM%s guard=%d guardflag=%d fork=%d bad=%zu rwprot=%s roprot=%s sealedprot=%s memfdmode=%o memfdfl=%o memfdfd=%d memfdseals=%x"
        " memfdpos=%lld ropos=%lld rofl=%o roread=%d rowrite=%d privsees=%d sealedseals=%x sealedmw=%d\n",
        flags, faults(guarded + PAGE), faults(guarded) + faults(guarded + 2 * PAGE), fork_view(), bad,
        prot_result(rw_map, PROT_READ | PROT_WRITE), prot_result(ro_map, PROT_READ | PROT_WRITE),
        prot_result(sealed_map, PROT_READ | PROT_WRITE), (unsigned)(st.st_mode & 07777), fcntl(mfd, F_GETFL),
        fcntl(mfd, F_GETFD), fcntl(mfd, F_GET_SEALS), (long long)lseek(mfd, 0, SEEK_CUR),
        (long long)lseek(mfd_ro, 0, SEEK_CUR), fcntl(mfd_ro, F_GETFL), ro_reads, ro_writes, private_sees,
        fcntl(sealed, F_GET_SEALS), has_flag(sealed_map, "mw"));
}

static char *map_file(const char *name, int mode)
{
    int fd = open(name, O_RDWR | O_CREAT, 0644);
    if (fd < 0 || ftruncate(fd, PAGE) < 0) die("create file");
    close(fd);
    fd = open(name, mode);
    if (fd < 0) die("open file");
    char *p = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) die("mmap file");
    close(fd);
    return p;
}

#ifndef MAP_DROPPABLE
#define MAP_DROPPABLE 0x08
#endif

static int droppable(void)
{
    char *p = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_DROPPABLE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) die("mmap MAP_DROPPABLE");
    p[0] = 1;
    say("READY %d %lx\n", (int)getpid(), (unsigned long)p);
    sig_atomic_t seen = 0;
    for (;;) {
        pause();
        if (asked != seen) { seen = asked; say("ALIVE %d\n", (int)seen); }
    }
}

int main(int argc, char **argv)
{
    on_signal(SIGUSR1, on_usr1, SA_RESTART);
    if (argc > 1 && strcmp(argv[1], "droppable") == 0) return droppable();
    on_signal(SIGSEGV, on_segv, SA_NODEFER);
    /* One reservation split into areas, with an unmapped page between each so none merge. */
    char *base = mmap(NULL, (NAREAS * 3 + 4) * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) die("mmap");
    for (int i = 0; i < NAREAS; i++) {
        areas[i].at = base + i * 3 * PAGE;
        munmap(areas[i].at + 2 * PAGE, PAGE);
        fill_pattern(areas[i].at, 2 * PAGE, 100 + i);
        int r = areas[i].advice >= 0 ? madvise(areas[i].at, 2 * PAGE, areas[i].advice) : mlock(areas[i].at, 2 * PAGE);
        if (r != 0) die(areas[i].name);
    }
    guarded = base + NAREAS * 3 * PAGE;
    fill_pattern(guarded, PAGE, 200);
    fill_pattern(guarded + 2 * PAGE, PAGE, 201);
    if (madvise(guarded + PAGE, PAGE, MADV_GUARD_INSTALL) != 0) die("MADV_GUARD_INSTALL");

    rw_map = map_file("rw.bin", O_RDWR);
    ro_map = map_file("ro.bin", O_RDONLY);

    mfd = memfd_create("exact", MFD_ALLOW_SEALING);
    if (mfd < 0 || ftruncate(mfd, 2 * PAGE) < 0) die("memfd_create");
    if (pwrite(mfd, "hello memfd", 11, 0) != 11) die("pwrite");
    if (fchmod(mfd, 0640) != 0) die("fchmod");
    if (fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) != 0) die("F_ADD_SEALS");
    if (fcntl(mfd, F_SETFL, O_APPEND) != 0) die("F_SETFL");
    lseek(mfd, 7, SEEK_SET);
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", mfd);
    mfd_ro = open(path, O_RDONLY);
    if (mfd_ro < 0) die("reopen memfd");
    lseek(mfd_ro, 3, SEEK_SET);
    mfd_shared = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    mfd_private = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, mfd, 0);
    if (mfd_shared == MAP_FAILED || mfd_private == MAP_FAILED) die("mmap memfd");
    mfd_private[PAGE] = 'P'; /* the second page is a private copy, the first still the memfd's */

    sealed = memfd_create("sealed", MFD_ALLOW_SEALING);
    if (sealed < 0 || pwrite(sealed, "sealed", 6, 0) != 6) die("memfd_create sealed");
    if (fcntl(sealed, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SEAL) != 0) die("F_ADD_SEALS sealed");
    sealed_map = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, sealed, 0);
    if (sealed_map == MAP_FAILED) die("mmap sealed");

    gone_rw = open("gone.bin", O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (gone_rw < 0 || ftruncate(gone_rw, 2 * PAGE) < 0) die("create gone.bin");
    gone_ro = open("gone.bin", O_RDONLY);
    if (gone_ro < 0 || unlink("gone.bin") != 0) die("unlink gone.bin");
    lseek(gone_rw, 11, SEEK_SET);
    lseek(gone_ro, 5, SEEK_SET);
    gone_private = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, gone_rw, 0);
    gone_shared = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, gone_rw, PAGE);
    if (gone_private == MAP_FAILED || gone_shared == MAP_FAILED) die("mmap gone.bin");

    report();
    say("READY %d\n", (int)getpid());
    sig_atomic_t seen = 0;
    for (;;) {
        pause();
        if (asked != seen) { seen = asked; report(); }
    }
}
