/*
 * memhog MIB FILE: memory of every kind, filled with known patterns, then waits in pause().
 *
 *   brk      64 KiB grown with sbrk                                        ("REGION brk ...")
 *   anon     MIB MiB private anonymous, every page written except every 7th ("REGION anon ...")
 *   filepriv FILE mapped MAP_PRIVATE, pages 1 and 3 written (copy-on-write)   ("REGION filepriv ...")
 *   none     3 pages written, then the middle one made PROT_NONE             ("REGION none ...")
 *   rdonly   2 pages written, then made read-only                           ("REGION rdonly ...")
 *   shared   64 KiB MAP_SHARED|MAP_ANONYMOUS, written                        ("REGION shared ...")
 * Huge pages are turned off for the anonymous areas so that the pages written are exactly the pages present.
 * Prints "REGION <name> <address> <bytes> <pages written>" for each, then "READY <pid>".
 */
#include "common.h"
#include <fcntl.h>
#include <sys/mman.h>

static void report(const char *name, void *p, size_t bytes, size_t written)
{
    say("REGION %s %p %zu %zu\n", name, p, bytes, written);
}

static void *map(size_t bytes, int prot, int flags)
{
    void *p = mmap(NULL, bytes, prot, flags, -1, 0);
    if (p == MAP_FAILED) die("mmap");
    madvise(p, bytes, MADV_NOHUGEPAGE);
    return p;
}

int main(int argc, char **argv)
{
    if (argc < 3) { say("usage: memhog MIB FILE\n"); return 2; }
    size_t mib = strtoul(argv[1], NULL, 10);
    const size_t page = 4096;

    uint8_t *brk = sbrk(64 * 1024);
    if (brk == (void *)-1) die("sbrk");
    fill_pattern(brk, 64 * 1024, 10);
    report("brk", brk, 64 * 1024, 16);

    size_t anon_bytes = mib << 20, written = 0;
    uint8_t *anon = map(anon_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    for (size_t i = 0; i < anon_bytes / page; i++) {
        if (i % 7 == 6) continue;
        fill_pattern(anon + i * page, page, 100 + i);
        written++;
    }
    report("anon", anon, anon_bytes, written);

    int fd = open(argv[2], O_RDONLY | O_CLOEXEC);
    if (fd == -1) die("open FILE");
    uint8_t *filepriv = mmap(NULL, 8 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (filepriv == MAP_FAILED) die("mmap FILE");
    close(fd);
    volatile uint8_t sink = filepriv[0] + filepriv[2 * page];  /* read (not copied) pages */
    (void)sink;
    fill_pattern(filepriv + 1 * page, page, 31);
    fill_pattern(filepriv + 3 * page, page, 33);
    report("filepriv", filepriv, 8 * page, 2);

    uint8_t *none = map(3 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    fill_pattern(none, 3 * page, 40);
    if (mprotect(none + page, page, PROT_NONE) == -1) die("mprotect PROT_NONE");
    report("none", none + page, page, 1);

    uint8_t *rdonly = map(2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    fill_pattern(rdonly, 2 * page, 50);
    if (mprotect(rdonly, 2 * page, PROT_READ) == -1) die("mprotect PROT_READ");
    report("rdonly", rdonly, 2 * page, 2);

    uint8_t *shared = map(64 * 1024, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS);
    fill_pattern(shared, 64 * 1024, 60);
    report("shared", shared, 64 * 1024, 16);

    say("READY %d\n", (int)getpid());
    for (;;) pause();
}
