/*
 * threads_fpu: threads whose state lives in FPU, SSE and AVX registers (and general ones) at every instant.
 *
 * Two spinning threads never leave a loop written in assembly, so a checkpoint always finds them in it with
 * their counts held only in registers:
 *   "fpu-sse": r12 counts iterations, xmm8 adds 1.0 each time (so it always equals r12 as a double),
 *              st(0) holds 1234.5 from before the loop, and MXCSR rounds upward (RC = 10b), set before the loop.
 *   "fpu-avx": the same, and ymm10 adds {1, 2, 3, 4} each time (so lane k equals (k + 1) * r12): the upper
 *              halves of the ymm registers are only in the XSAVE area's AVX part. MXCSR rounds toward zero.
 *              (Without AVX, this thread runs the SSE loop and the report says avx=0.)
 * Every 2^20 iterations each loop publishes under a sequence lock (odd while writing): r12, xmm8, the four
 * lanes of ymm10 (AVX only), st(0) (fstl, no pop), MXCSR (stmxcsr) and the x87 control word (fnstcw).
 * The main thread (name "fpu-main", FE_TONEAREST) answers each SIGUSR1 with one line per spinning thread:
 *   FPU <seq> <name> count=<r12> ok=<0/1> xmm=<0/1> ymm=<0/1> x87=<0/1> mxcsr=<hex> x87cw=<hex> avx=<0/1>
 * where ok is the and of: xmm8 == r12, lanes == (k + 1) * r12 (AVX), st(0) == 1234.5, and MXCSR's rounding
 * field as set, then "DONE <seq>". It prints "READY <pid>" once both loops have published.
 */
#include "common.h"
#include <cpuid.h>
#include <pthread.h>

struct published {
    volatile uint64_t seq;
    volatile uint64_t count;
    volatile double xmm8;
    volatile double lanes[4];
    volatile double st0;
    volatile uint32_t mxcsr;
    volatile uint16_t x87cw;
};

static struct published sse_state, avx_state;
static int have_avx;
static const double one = 1.0, x87_value = 1234.5;
static const double increments[4] = { 1.0, 2.0, 3.0, 4.0 };

static int cpu_has_avx(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    if (!(c & bit_AVX) || !(c & bit_OSXSAVE)) return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (lo & 6) == 6;
}

static void set_rounding(uint32_t rc)
{
    uint32_t mxcsr;
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    mxcsr = (mxcsr & ~0x6000u) | (rc << 13);
    __asm__ volatile("ldmxcsr %0" : : "m"(mxcsr));
}

static void __attribute__((noreturn)) spin_sse(struct published *p)
{
    __asm__ volatile(
        "xor %%r12, %%r12\n\t"
        "xorpd %%xmm8, %%xmm8\n\t"
        "movsd (%[one]), %%xmm9\n\t"
        "fldl (%[x87])\n\t"
        "1:\n\t"
        "addsd %%xmm9, %%xmm8\n\t"
        "inc %%r12\n\t"
        "test $0xfffff, %%r12d\n\t"
        "jnz 1b\n\t"
        "incq 0(%[p])\n\t"                 /* seq: odd */
        "mov %%r12, 8(%[p])\n\t"
        "movsd %%xmm8, 16(%[p])\n\t"
        "fstl 56(%[p])\n\t"
        "stmxcsr 64(%[p])\n\t"
        "fnstcw 68(%[p])\n\t"
        "incq 0(%[p])\n\t"                 /* seq: even */
        "jmp 1b\n\t"
        :
        : [p] "r"(p), [one] "r"(&one), [x87] "r"(&x87_value)
        : "r12", "xmm8", "xmm9", "memory", "cc");
    __builtin_unreachable();
}

static void __attribute__((noreturn)) spin_avx(struct published *p)
{
    __asm__ volatile(
        "xor %%r12, %%r12\n\t"
        "vxorpd %%ymm10, %%ymm10, %%ymm10\n\t"
        "vmovupd (%[inc]), %%ymm11\n\t"
        "xorpd %%xmm8, %%xmm8\n\t"
        "movsd (%[one]), %%xmm9\n\t"
        "fldl (%[x87])\n\t"
        "1:\n\t"
        "addsd %%xmm9, %%xmm8\n\t"
        "vaddpd %%ymm11, %%ymm10, %%ymm10\n\t"
        "inc %%r12\n\t"
        "test $0xfffff, %%r12d\n\t"
        "jnz 1b\n\t"
        "incq 0(%[p])\n\t"
        "mov %%r12, 8(%[p])\n\t"
        "movsd %%xmm8, 16(%[p])\n\t"
        "vmovupd %%ymm10, 24(%[p])\n\t"
        "fstl 56(%[p])\n\t"
        "stmxcsr 64(%[p])\n\t"
        "fnstcw 68(%[p])\n\t"
        "incq 0(%[p])\n\t"
        "jmp 1b\n\t"
        :
        : [p] "r"(p), [one] "r"(&one), [x87] "r"(&x87_value), [inc] "r"(increments)
        : "r12", "xmm8", "xmm9", "xmm10", "xmm11", "memory", "cc");
    __builtin_unreachable();
}

static void *sse_thread(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "fpu-sse");
    set_rounding(2); /* upward */
    spin_sse(&sse_state);
}

static void *avx_thread(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "fpu-avx");
    set_rounding(3); /* toward zero */
    if (have_avx) spin_avx(&avx_state);
    spin_sse(&avx_state);
}

/* A consistent copy of what a loop published last. */
static void snapshot(struct published *p, struct published *copy)
{
    for (;;) {
        uint64_t s1 = p->seq;
        __asm__ volatile("" ::: "memory");
        if (s1 & 1) { sched_yield(); continue; }
        copy->count = p->count;
        copy->xmm8 = p->xmm8;
        for (int k = 0; k < 4; k++) copy->lanes[k] = p->lanes[k];
        copy->st0 = p->st0;
        copy->mxcsr = p->mxcsr;
        copy->x87cw = p->x87cw;
        __asm__ volatile("" ::: "memory");
        if (p->seq == s1) return;
    }
}

static void report(int seq, const char *name, struct published *p, uint32_t rc, int avx)
{
    struct published c;
    snapshot(p, &c);
    int xmm = c.xmm8 == (double)c.count;
    int ymm = 1;
    if (avx)
        for (int k = 0; k < 4; k++) if (c.lanes[k] != (double)(k + 1) * (double)c.count) ymm = 0;
    int x87 = c.st0 == 1234.5;
    int mx = ((c.mxcsr >> 13) & 3) == rc;
    say("FPU %d %s count=%llu ok=%d xmm=%d ymm=%d x87=%d mxcsr=%x x87cw=%x avx=%d\n", seq, name,
        (unsigned long long)c.count, xmm && ymm && x87 && mx, xmm, ymm, x87, c.mxcsr, c.x87cw, avx);
}

int main(void)
{
    pthread_setname_np(pthread_self(), "fpu-main");
    have_avx = cpu_has_avx();
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &usr1, NULL);
    pthread_t t;
    if (pthread_create(&t, NULL, sse_thread, NULL) != 0) die("pthread_create");
    if (pthread_create(&t, NULL, avx_thread, NULL) != 0) die("pthread_create");
    while (sse_state.seq < 2 || avx_state.seq < 2) sleep_ms(1);
    say("READY %d\n", (int)getpid());
    for (int seq = 1;; seq++) {
        siginfo_t info;
        if (sigwaitinfo(&usr1, &info) != SIGUSR1) { seq--; continue; }
        report(seq, "fpu-sse", &sse_state, 2, 0);
        report(seq, "fpu-avx", &avx_state, 3, have_avx);
        say("DONE %d\n", seq);
    }
}
