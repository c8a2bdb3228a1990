/*
 * memtree: the process tree of the benchmark's tree-against-one-process comparison.
 *
 * A root process and PROCESSES-1 children. Each of them (the root included) maps MiB MiB of private
 * anonymous memory of its own after the fork (so no page is shared copy-on-write), fills it with
 * incompressible bytes (xorshift64*, a seed of its own) and sleeps in sigsuspend:
 *   SIGUSR1 to the root   it sends SIGUSR1 to each of its children, then every process (root included)
 *                         hashes its memory again and writes "OK <pid> <hash>" (or "BAD <pid> <got>
 *                         <expected>") to PREFIX-<pid>.txt (written as .tmp and renamed)
 *   SIGTERM, SIGKILL      end a process (default actions)
 *
 * Usage: memtree [-n PROCESSES] [-m MiB] [-c PREFIX] [-D]
 *   -n  processes in the tree, the root included (default 16)
 *   -m  MiB of dirty memory in each process (default 32)
 *   -c  prefix of the check files
 *   -D  detach: fork; the child becomes the root, in a new session, with stdin/out/err on /dev/null and
 *       no other descriptor; once the whole tree is filled, the parent prints
 *       "READY <root> <child2> ... <childN>" and exits 0 (1 if the tree failed).
 *   Without -D the READY line goes to stdout and the root stays in the foreground.
 *
 * Build: gcc -O2 -o memtree memtree.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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
#define MAX_PROCESSES 1024

static unsigned char *region;
static size_t bytes;
static uint64_t expected_hash;
static const char *check_prefix;
static volatile sig_atomic_t want_verify;
static pid_t children[MAX_PROCESSES];
static int child_count;

static void fill(uint64_t seed)
{
    uint64_t x = seed * 0x9E3779B97F4A7C15ULL + 1;
    uint64_t *w = (uint64_t *)region;
    for (size_t i = 0; i < bytes / sizeof(uint64_t); i++) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        w[i] = x * 0x2545F4914F6CDD1DULL;
    }
}

static uint64_t hash_memory(void) { return hash_words(region, bytes); }

static void write_check(const char *text)
{
    if (!check_prefix) return;
    char path[4096], tmp[4200];
    if (snprintf(path, sizeof path, "%s-%d.txt", check_prefix, (int)getpid()) >= (int)sizeof path) return;
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return;
    size_t len = strlen(text), done = 0;
    while (done < len) {
        ssize_t n = write(fd, text + done, len - done);
        if (n <= 0) break;
        done += (size_t)n;
    }
    close(fd);
    rename(tmp, path);
}

static void on_signal(int sig)
{
    if (sig == SIGUSR1) want_verify = 1;
}

static void prepare_memory(uint64_t seed)
{
    region = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (region == MAP_FAILED) { perror("mmap"); _exit(1); }
    fill(seed);
    expected_hash = hash_memory();
}

/* Sleeps until SIGUSR1; then (the root first tells its children) checks its memory. Never returns. */
static void serve(const sigset_t *wait_mask)
{
    for (;;) {
        sigsuspend(wait_mask);
        if (!want_verify) continue;
        want_verify = 0;
        for (int i = 0; i < child_count; i++) kill(children[i], SIGUSR1);
        uint64_t h = hash_memory();
        char text[128];
        if (h == expected_hash) snprintf(text, sizeof text, "OK %d %016" PRIx64 "\n", (int)getpid(), h);
        else snprintf(text, sizeof text, "BAD %d %016" PRIx64 " %016" PRIx64 "\n", (int)getpid(), h, expected_hash);
        write_check(text);
    }
}

int main(int argc, char **argv)
{
    long processes = 16, mib = 32;
    int detach = 0, opt;
    while ((opt = getopt(argc, argv, "n:m:c:D")) != -1) {
        switch (opt) {
        case 'n': processes = strtol(optarg, NULL, 10); break;
        case 'm': mib = strtol(optarg, NULL, 10); break;
        case 'c': check_prefix = optarg; break;
        case 'D': detach = 1; break;
        default:
            fprintf(stderr, "usage: memtree [-n PROCESSES] [-m MiB] [-c PREFIX] [-D]\n");
            return 2;
        }
    }
    if (processes < 1 || processes > MAX_PROCESSES || mib < 1) return 2;
    bytes = (size_t)mib * MiB;

    int report = STDOUT_FILENO;
    if (detach) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) != 0) { perror("pipe"); return 1; }
        pid_t root = fork();
        if (root < 0) { perror("fork"); return 1; }
        if (root > 0) {
            close(p[1]);
            char line[16384];
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
                fprintf(stderr, "memtree: the detached tree failed before it was ready\n");
                return 1;
            }
            fputs(line, stdout);
            return 0;
        }
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

    /* SIGUSR1 stays blocked except inside sigsuspend, in every process, so no request is lost. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigprocmask(SIG_BLOCK, &block, &old);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    sigset_t wait_mask = old;
    sigdelset(&wait_mask, SIGUSR1);

    /* Children first, so that none inherits the root's memory; each says it is filled with one byte. */
    int ready[2];
    if (pipe2(ready, O_CLOEXEC) != 0) { perror("pipe"); return 1; }
    for (long i = 1; i < processes; i++) {
        pid_t c = fork();
        if (c < 0) { perror("fork"); return 1; }
        if (c == 0) {
            child_count = 0;
            close(ready[0]);
            if (detach) close(report);
            prepare_memory((uint64_t)i + 1);
            char one = 1;
            if (write(ready[1], &one, 1) != 1) _exit(1);
            close(ready[1]);
            serve(&wait_mask);
        }
        children[child_count++] = c;
    }
    close(ready[1]);
    for (long i = 1; i < processes; i++) {
        char one;
        ssize_t n;
        while ((n = read(ready[0], &one, 1)) < 0 && errno == EINTR) { }
        if (n != 1) { fprintf(stderr, "memtree: a child failed\n"); return 1; }
    }
    close(ready[0]);
    prepare_memory(1);

    char line[16384];
    int len = snprintf(line, sizeof line, "READY %d", (int)getpid());
    for (int i = 0; i < child_count && len < (int)sizeof line - 16; i++) len += snprintf(line + len, sizeof line - (size_t)len, " %d", (int)children[i]);
    len += snprintf(line + len, sizeof line - (size_t)len, "\n");
    if (write(report, line, (size_t)len) != len) return 1;
    if (detach) close(report);
    serve(&wait_mask);
}
