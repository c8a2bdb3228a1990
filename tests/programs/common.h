/* Shared by the test programs: whole-line reports on stdout, deterministic memory patterns. */
#ifndef CRTEST_COMMON_H
#define CRTEST_COMMON_H
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* One write(2) per line, so a reader never sees half a line and nothing sits in a stdio buffer. */
static inline void say(const char *format, ...) __attribute__((format(printf, 1, 2)));
static inline void say(const char *format, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, format);
    int n = vsnprintf(line, sizeof line, format, ap);
    va_end(ap);
    if (n < 0) return;
    if (n > (int)sizeof line - 1) n = sizeof line - 1;
    const char *p = line;
    while (n > 0) {
        ssize_t w = write(1, p, (size_t)n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return;
        p += w;
        n -= (int)w;
    }
}

static inline void die(const char *what)
{
    say("FAILED %s: %s\n", what, strerror(errno));
    exit(3);
}

static inline uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* Word i of the pattern with this seed. */
static inline uint64_t pattern_word(uint64_t seed, uint64_t i) { return mix64((seed << 40) ^ i); }

static inline void fill_pattern(void *p, size_t bytes, uint64_t seed)
{
    uint64_t *w = p;
    for (size_t i = 0; i < bytes / 8; i++) w[i] = pattern_word(seed, i);
}

/* Number of words from first_word (count words) that differ from the pattern. */
static inline size_t check_pattern(const void *p, size_t first_word, size_t count, uint64_t seed)
{
    const volatile uint64_t *w = p;
    size_t bad = 0;
    for (size_t i = first_word; i < first_word + count; i++)
        if (w[i] != pattern_word(seed, i)) bad++;
    return bad;
}

static inline void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) { }
}

static inline void on_signal(int sig, void (*handler)(int), int flags)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    if (sigaction(sig, &sa, NULL) == -1) die("sigaction");
}

#endif
