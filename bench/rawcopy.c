/*
 * rawcopy: the raw limits the engine is compared with.
 *
 *   rawcopy save PID FILE [ADDRESS:BYTES ...] [-b BUFFER_MiB]
 *       Copies the given ranges of process PID with process_vm_readv, BUFFER bytes at a time (8 MiB
 *       by default, the engine's PageStreamer buffer), write()s each piece to FILE (created, must
 *       not exist), then fsyncs the file and its directory -- what the engine does with a context
 *       file, minus everything else (no freeze, no /proc parsing, no checksums, no records).
 *       Without ranges, every private writable anonymous mapping of PID (heap included) is copied.
 *   rawcopy load FILE [-b BUFFER_MiB]
 *       Maps fresh anonymous memory of FILE's size and read()s FILE straight into it, BUFFER bytes
 *       per call: the least a restart has to do to bring an image back into memory (one copy,
 *       first touch of every page). Nothing is dropped from the page cache: the caller decides
 *       what cache state the file is in.
 *
 * Prints one line: "<seconds> <bytes>", and for save also "<copy seconds> <sync seconds>" (before and
 * after the first fsync). Exit code 0 on success.
 * The clock runs from before open() to after the last fsync (save) or the last read (load); the
 * buffer is allocated inside that interval, like the engine's.
 *
 * Build: gcc -O2 -o rawcopy rawcopy.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define MiB (1024UL * 1024UL)
#define MAX_RANGES 4096

struct range { uintptr_t start; size_t len; };

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "rawcopy: %s: %s\n", what, strerror(errno));
    exit(1);
}

static int anonymous_ranges(int pid, struct range *out, int max)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/maps", pid);
    FILE *f = fopen(path, "re");
    if (!f) die(path);
    char line[4096];
    int n = 0;
    while (n < max && fgets(line, sizeof line, f)) {
        uintptr_t a, b;
        char perms[8];
        unsigned long long offset, inode;
        char dev[32];
        int consumed = 0;
        if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %7s %llx %31s %llu %n", &a, &b, perms, &offset, dev, &inode, &consumed) < 6)
            continue;
        const char *name = line + consumed;
        int anonymous = inode == 0 && (name[0] == '\n' || name[0] == 0 || strncmp(name, "[heap]", 6) == 0);
        if (anonymous && perms[0] == 'r' && perms[1] == 'w' && perms[3] == 'p') {
            out[n].start = a;
            out[n].len = b - a;
            n++;
        }
    }
    fclose(f);
    return n;
}

static int save(int pid, const char *file, struct range *ranges, int count, size_t buffer_bytes)
{
    char dir_copy[4096];
    snprintf(dir_copy, sizeof dir_copy, "%s", file);
    const char *dir = dirname(dir_copy);

    double t0 = now();
    int fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) die(file);
    unsigned char *buffer = aligned_alloc(4096, buffer_bytes);
    if (!buffer) die("aligned_alloc");
    size_t total = 0;
    for (int r = 0; r < count; r++) {
        uintptr_t address = ranges[r].start;
        size_t remaining = ranges[r].len;
        while (remaining > 0) {
            size_t take = remaining < buffer_bytes ? remaining : buffer_bytes;
            struct iovec local = { buffer, take };
            struct iovec remote = { (void *)address, take };
            ssize_t got = process_vm_readv(pid, &local, 1, &remote, 1, 0);
            if (got <= 0) die("process_vm_readv");
            size_t done = 0;
            while (done < (size_t)got) {
                ssize_t w = write(fd, buffer + done, (size_t)got - done);
                if (w < 0 && errno == EINTR) continue;
                if (w <= 0) die("write");
                done += (size_t)w;
            }
            address += (size_t)got;
            remaining -= (size_t)got;
            total += (size_t)got;
        }
    }
    double t_copied = now();
    if (fsync(fd) != 0) die("fsync");
    close(fd);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) { fsync(dfd); close(dfd); }
    double t1 = now();
    free(buffer);
    printf("%.6f %zu %.6f %.6f\n", t1 - t0, total, t_copied - t0, t1 - t_copied);
    return 0;
}

static int load(const char *file, size_t buffer_bytes)
{
    double t0 = now();
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) die(file);
    struct stat st;
    if (fstat(fd, &st) != 0) die("fstat");
    size_t size = (size_t)st.st_size;
    unsigned char *memory = size ? mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) : NULL;
    if (memory == MAP_FAILED) die("mmap");
    size_t done = 0;
    while (done < size) {
        size_t want = size - done < buffer_bytes ? size - done : buffer_bytes;
        ssize_t n = read(fd, memory + done, want);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) die("read");
        done += (size_t)n;
    }
    close(fd);
    double t1 = now();
    /* Keep the compiler and the kernel honest: the bytes are really there. */
    volatile unsigned char sink = 0;
    for (size_t i = 0; i < size; i += 4096) sink ^= memory[i];
    (void)sink;
    if (memory) munmap(memory, size);
    printf("%.6f %zu\n", t1 - t0, done);
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: rawcopy save PID FILE [ADDRESS:BYTES ...] [-b BUFFER_MiB]\n"
                    "       rawcopy load FILE [-b BUFFER_MiB]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    size_t buffer_bytes = 8 * MiB;
    char *args[MAX_RANGES + 4];
    int nargs = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-b") == 0 && i + 1 < argc) {
            long mib = strtol(argv[++i], NULL, 10);
            if (mib < 1) usage();
            buffer_bytes = (size_t)mib * MiB;
        } else if (nargs < MAX_RANGES + 3) {
            args[nargs++] = argv[i];
        } else {
            usage();
        }
    }
    if (nargs < 1) usage();
    if (strcmp(args[0], "load") == 0) {
        if (nargs != 2) usage();
        return load(args[1], buffer_bytes);
    }
    if (strcmp(args[0], "save") != 0 || nargs < 3) usage();
    int pid = atoi(args[1]);
    static struct range ranges[MAX_RANGES];
    int count = 0;
    if (nargs == 3) {
        count = anonymous_ranges(pid, ranges, MAX_RANGES);
    } else {
        for (int i = 3; i < nargs; i++) {
            char *colon = strchr(args[i], ':');
            if (!colon) usage();
            *colon = 0;
            ranges[count].start = (uintptr_t)strtoull(args[i], NULL, 0);
            ranges[count].len = (size_t)strtoull(colon + 1, NULL, 0);
            count++;
        }
    }
    return save(pid, args[2], ranges, count, buffer_bytes);
}
