/*
 * threads_counter T: T threads (the main one included) that all count, reporting from their own point of view.
 *
 * Thread i (0 is the main thread) is named "cnt-<i>" (pthread_setname_np; the main thread too) and keeps in
 * thread-local storage a tag (mix64(i + 1)), its index and its own count. In a loop it takes the shared mutex,
 * adds one to the shared counter, to its slot of counts[] and to its thread-local count, checks that the
 * thread-local count equals its slot and that the tag is still its own (else bad[i]++), and lets go. Every
 * 16 rounds it sleeps 2 ms (clock_nanosleep), so the threads are found in futex waits, sleeps and user code.
 * Each round it also stores gettid() in tids[i], and the report generation it has seen.
 *
 * SIGUSR1 is blocked in every thread; the main thread polls for it between rounds (sigtimedwait, no wait)
 * and answers each one, once every thread has done a round since (so tids[] are fresh), with a report, the
 * counters read under the mutex, so shared must equal their sum:
 *   REPORT <seq> shared=<S> sum=<sum of counts> bad=<sum of bad> min=<smallest count> threads=<T>
 *   COUNTS <seq> c0 c1 ...
 *   TIDS <seq> t0 t1 ...          (gettid() as each thread last saw it)
 *   RSEQ <seq> r0 r1 ...          (1: glibc's rseq area is still registered for that thread, see kernel_state)
 *   TIDADDR <seq> a0 a1 ...       (the clear_child_tid address of each thread, PR_GET_TID_ADDRESS, hex)
 *   ROBUST <seq> h0 h1 ...        (the robust futex list head of each thread, get_robust_list, hex)
 *   NAMES <seq> n0 n1 ...         (pthread_getname_np of each thread, read by the main thread)
 *   KILLS <seq> ok=<n> wrong=<n> failed=<n> raise=<0/1>
 * For KILLS the main thread sends SIGUSR2 with pthread_kill to each other thread and raise()s it in itself;
 * the handler writes its own thread-local index to hit[], so "ok" counts the threads whose handler ran in
 * the thread aimed at, "wrong" those where it ran elsewhere, "failed" those where pthread_kill failed or no
 * handler ran within 2 s. pthread_kill and raise use the thread id glibc keeps in its thread descriptor.
 * Prints "READY <pid>" once every thread has counted.
 */
#include "common.h"
#include <pthread.h>
#include <sys/prctl.h>
#include <sys/rseq.h>
#include <sys/syscall.h>

#ifndef PR_GET_TID_ADDRESS
#define PR_GET_TID_ADDRESS 40
#endif
#define RSEQ_SIG_X86 0x53053053

#define MAXT 256

static int T;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t shared_count;
static uint64_t counts[MAXT];
static volatile uint64_t bad[MAXT];
static volatile int tids[MAXT];
static volatile int hit[MAXT];
static volatile int generation, gen_seen[MAXT];
static volatile int rseq_state[MAXT];
static volatile uint64_t tid_address[MAXT], robust_head[MAXT];
static pthread_t handles[MAXT];

static __thread uint64_t tls_tag;
static __thread int tls_index = -1;
static __thread uint64_t tls_count;

static void on_usr2(int sig)
{
    (void)sig;
    if (tls_index >= 0) hit[tls_index] = tls_index + 1;
}

/*
 * What the kernel keeps for this thread, as the thread sees it: whether glibc's rseq area is registered
 * (registering it again answers EBUSY then: 1; 0 when it was not, -errno otherwise; 2 when glibc uses no rseq),
 * the clear_child_tid address (PR_GET_TID_ADDRESS) and the robust futex list head (get_robust_list).
 */
static void kernel_state(int i)
{
    unsigned long address = 0;
    tid_address[i] = prctl(PR_GET_TID_ADDRESS, &address) == 0 ? address : 0;
    void *head = NULL;
    size_t len = 0;
    robust_head[i] = syscall(SYS_get_robust_list, 0, &head, &len) == 0 ? (uint64_t)(uintptr_t)head : 0;
    if (__rseq_size == 0) { rseq_state[i] = 2; return; }
    char *tp;
    __asm__("mov %%fs:0, %0" : "=r"(tp));
    void *area = tp + __rseq_offset;
    long r = syscall(SYS_rseq, area, 32, 0, RSEQ_SIG_X86);
    if (r == -1 && errno == EINVAL) r = syscall(SYS_rseq, area, __rseq_size, 0, RSEQ_SIG_X86);
    rseq_state[i] = r == 0 ? 0 : errno == EBUSY ? 1 : -errno;
}

static void round_of(int i)
{
    pthread_mutex_lock(&lock);
    shared_count++;
    counts[i]++;
    tls_count++;
    if (tls_count != counts[i] || tls_tag != mix64((uint64_t)i + 1) || tls_index != i) bad[i]++;
    pthread_mutex_unlock(&lock);
    tids[i] = (int)syscall(SYS_gettid);
    int g = __atomic_load_n(&generation, __ATOMIC_SEQ_CST);
    if (gen_seen[i] != g) kernel_state(i);
    __atomic_store_n(&gen_seen[i], g, __ATOMIC_SEQ_CST);
}

static void setup(int i)
{
    tls_index = i;
    tls_tag = mix64((uint64_t)i + 1);
    char name[16];
    snprintf(name, sizeof name, "cnt-%d", i);
    pthread_setname_np(pthread_self(), name);
    round_of(i);
}

static void *worker(void *arg)
{
    int i = (int)(intptr_t)arg;
    setup(i);
    for (uint64_t n = 1;; n++) {
        round_of(i);
        if (n % 16 == 0) sleep_ms(2);
    }
    return NULL;
}

static void report(uint64_t seq)
{
    uint64_t shared, sum = 0, min = UINT64_MAX, badsum = 0, snap[MAXT];
    /* Fresh thread ids: every thread does one more round after the request (at most 5 s is waited for). */
    int g = __atomic_add_fetch(&generation, 1, __ATOMIC_SEQ_CST);
    round_of(0);
    for (int waited = 0; waited < 5000; waited++) {
        int all = 1;
        for (int i = 1; i < T; i++)
            if (__atomic_load_n(&gen_seen[i], __ATOMIC_SEQ_CST) != g) all = 0;
        if (all) break;
        sleep_ms(1);
    }
    pthread_mutex_lock(&lock);
    shared = shared_count;
    memcpy(snap, counts, sizeof counts);
    pthread_mutex_unlock(&lock);
    char line[4096];
    int n;
    n = snprintf(line, sizeof line, "COUNTS %llu", (unsigned long long)seq);
    for (int i = 0; i < T; i++) {
        sum += snap[i];
        badsum += bad[i];
        if (snap[i] < min) min = snap[i];
        n += snprintf(line + n, sizeof line - n, " %llu", (unsigned long long)snap[i]);
    }
    say("REPORT %llu shared=%llu sum=%llu bad=%llu min=%llu threads=%d\n", (unsigned long long)seq,
        (unsigned long long)shared, (unsigned long long)sum, (unsigned long long)badsum, (unsigned long long)min, T);
    /* say() takes up to 1023 bytes a line; these lines are written directly. */
    line[n++] = '\n';
    if (write(1, line, n) != n) die("write");
    n = snprintf(line, sizeof line, "TIDS %llu", (unsigned long long)seq);
    for (int i = 0; i < T; i++) n += snprintf(line + n, sizeof line - n, " %d", tids[i]);
    line[n++] = '\n';
    if (write(1, line, n) != n) die("write");
    n = snprintf(line, sizeof line, "RSEQ %llu", (unsigned long long)seq);
    for (int i = 0; i < T; i++) n += snprintf(line + n, sizeof line - n, " %d", rseq_state[i]);
    line[n++] = '\n';
    if (write(1, line, n) != n) die("write");
    n = snprintf(line, sizeof line, "TIDADDR %llu", (unsigned long long)seq);
    for (int i = 0; i < T; i++) n += snprintf(line + n, sizeof line - n, " %llx", (unsigned long long)tid_address[i]);
    line[n++] = '\n';
    if (write(1, line, n) != n) die("write");
    n = snprintf(line, sizeof line, "ROBUST %llu", (unsigned long long)seq);
    for (int i = 0; i < T; i++) n += snprintf(line + n, sizeof line - n, " %llx", (unsigned long long)robust_head[i]);
    line[n++] = '\n';
    if (write(1, line, n) != n) die("write");
    n = snprintf(line, sizeof line, "NAMES %llu", (unsigned long long)seq);
    for (int i = 0; i < T; i++) {
        char name[16] = "?";
        pthread_getname_np(handles[i], name, sizeof name);
        n += snprintf(line + n, sizeof line - n, " %s", name);
    }
    line[n++] = '\n';
    if (write(1, line, n) != n) die("write");

    int ok = 0, wrong = 0, failed = 0, raised = 0;
    for (int i = 0; i < T; i++) hit[i] = 0;
    for (int i = 1; i < T; i++)
        if (pthread_kill(handles[i], SIGUSR2) != 0) hit[i] = -1;
    if (raise(SIGUSR2) == 0 && hit[0] == 1) raised = 1;
    for (int waited = 0; waited < 2000; waited++) {
        int done = 1;
        for (int i = 1; i < T; i++) if (hit[i] == 0) done = 0;
        if (done) break;
        sleep_ms(1);
    }
    for (int i = 0; i < T; i++) {
        if (hit[i] == i + 1) ok++;
        else if (hit[i] > 0) wrong++;
        else failed++;
    }
    say("KILLS %llu ok=%d wrong=%d failed=%d raise=%d\n", (unsigned long long)seq, ok, wrong, failed, raised);
}

int main(int argc, char **argv)
{
    T = argc > 1 ? atoi(argv[1]) : 8;
    if (T < 1 || T > MAXT) { say("FAILED bad thread count\n"); return 2; }
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &usr1, NULL);
    on_signal(SIGUSR2, on_usr2, 0);

    handles[0] = pthread_self();
    setup(0);
    for (int i = 1; i < T; i++) {
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 128 * 1024);
        if (pthread_create(&handles[i], &attr, worker, (void *)(intptr_t)i) != 0) die("pthread_create");
        pthread_attr_destroy(&attr);
    }
    for (int i = 1; i < T; i++) {
        while (1) {
            pthread_mutex_lock(&lock);
            uint64_t c = counts[i];
            pthread_mutex_unlock(&lock);
            if (c > 0) break;
            sleep_ms(1);
        }
    }
    say("READY %d\n", (int)getpid());
    uint64_t seq = 0;
    struct timespec zero = { 0, 0 };
    for (uint64_t n = 1;; n++) {
        round_of(0);
        if (n % 16 == 0) sleep_ms(2);
        if (sigtimedwait(&usr1, NULL, &zero) == SIGUSR1) report(++seq);
    }
}
