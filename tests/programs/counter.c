/*
 * counter: counts forever and keeps checking that its memory still holds what it wrote.
 *
 * Fills 4 MiB of heap and 1 MiB of anonymous mmap with a deterministic pattern, installs a SIGUSR1
 * handler (SA_RESTART), blocks SIGUSR2, prints "READY <pid>", then loops: count, check 64 KiB of the
 * pattern, sleep 1 ms. Every 20 rounds it prints "TICK <count> <errors>"; after each SIGUSR1 it prints
 * "USR1 <times> <count>"; after each real-time signal SIGRTMIN+2 (queued, so none may be lost) it prints
 * "RT <times>"; a mismatch prints "CORRUPT ..." and counts as an error. On SIGTERM it prints
 * "TERM <count>" and exits 0 (unless started with the argument "default-term").
 */
#include "common.h"
#include <sys/mman.h>

#define HEAP_BYTES (4u << 20)
#define ANON_BYTES (1u << 20)
#define SLICE_WORDS (64u * 1024 / 8)

static volatile sig_atomic_t usr1_count, rt_count, term_seen;
static void on_usr1(int sig) { (void)sig; usr1_count++; }
static void on_rt(int sig) { (void)sig; rt_count++; }
static void on_term(int sig) { (void)sig; term_seen = 1; }

int main(int argc, char **argv)
{
    uint8_t *heap = malloc(HEAP_BYTES);
    uint8_t *anon = mmap(NULL, ANON_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (!heap || anon == MAP_FAILED) die("allocate");
    fill_pattern(heap, HEAP_BYTES, 1);
    fill_pattern(anon, ANON_BYTES, 2);

    on_signal(SIGUSR1, on_usr1, SA_RESTART);
    on_signal(SIGRTMIN + 2, on_rt, SA_RESTART);
    if (!(argc > 1 && strcmp(argv[1], "default-term") == 0)) on_signal(SIGTERM, on_term, SA_RESTART);
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR2);
    if (sigprocmask(SIG_BLOCK, &block, NULL) == -1) die("sigprocmask");

    say("HEAP %p %u\n", (void *)heap, HEAP_BYTES);
    say("ANON %p %u\n", (void *)anon, ANON_BYTES);
    say("READY %d\n", (int)getpid());

    uint64_t count = 0, errors = 0;
    sig_atomic_t seen = 0, rt_seen = 0;
    size_t slice = 0;
    const size_t heap_slices = HEAP_BYTES / 8 / SLICE_WORDS, anon_slices = ANON_BYTES / 8 / SLICE_WORDS;
    for (;;) {
        count++;
        size_t bad = slice < heap_slices
            ? check_pattern(heap, slice * SLICE_WORDS, SLICE_WORDS, 1)
            : check_pattern(anon, (slice - heap_slices) * SLICE_WORDS, SLICE_WORDS, 2);
        if (bad) {
            errors += bad;
            say("CORRUPT slice %zu: %zu words differ\n", slice, bad);
        }
        slice = (slice + 1) % (heap_slices + anon_slices);
        if (usr1_count != seen) {
            seen = usr1_count;
            say("USR1 %d %llu\n", (int)seen, (unsigned long long)count);
        }
        if (rt_count != rt_seen) {
            rt_seen = rt_count;
            say("RT %d\n", (int)rt_seen);
        }
        if (term_seen) {
            say("TERM %llu\n", (unsigned long long)count);
            return 0;
        }
        if (count % 20 == 0) say("TICK %llu %llu\n", (unsigned long long)count, (unsigned long long)errors);
        sleep_ms(1);
    }
}
