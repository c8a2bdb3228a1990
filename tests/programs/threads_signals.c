/*
 * threads_signals: per-thread signal state, from the threads' own point of view.
 *
 * Thread 0 is the main thread (name "sig-0"), threads 1-4 are workers ("sig-1".."sig-4"). Each worker has its
 * own alternate signal stack (64 KiB, mmap) and its own mask: every worker blocks SIGUSR2; worker 1 also
 * blocks SIGUSR1. The main thread blocks SIGUSR1 and SIGUSR2 and has no alternate stack.
 * SIGUSR1 has a handler (SA_SIGINFO | SA_ONSTACK | SA_RESTART) that records, for the thread it runs in (its
 * thread-local index): one more call, gettid(), and whether the address of one of its locals lies inside that
 * thread's alternate stack and sigaltstack() says SS_ONSTACK.
 * Workers sleep 5 ms at a time; after each sleep they note their gettid(), blocked mask, pending mask
 * (sigpending) and whether sigaltstack() still gives their own stack, and the report generation they saw.
 *
 * The main thread takes SIGUSR2 with sigwaitinfo and answers it, once every worker has looked again, with one
 * line per thread and a closing line:
 *   THREAD <seq> <i> tid=<n> name=<s> blocked=<hex> pending=<hex> altstack=<0/1> handled=<n>
 *          handler_tid=<n> on_alt=<n>
 *   DONE <seq>
 * where the masks have bit N-1 for signal N, altstack is 1 when the thread's sigaltstack() is its own stack
 * (for the main thread: 1 when it has none, as it should), handled counts handler calls in that thread,
 * handler_tid is gettid() in the last of them and on_alt how many ran on the thread's alternate stack.
 * Prints "READY <pid>" once every worker has looked once.
 */
#include "common.h"
#include <pthread.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#define WORKERS 4
#define T (WORKERS + 1)
#define ALT_SIZE (64 * 1024)

static __thread int tls_index = -1;
static char *altbase[T];
static volatile int handled[T], handler_tid[T], on_alt[T];
static volatile int tid_seen[T], alt_ok[T], gen_seen[T];
static volatile unsigned long long blocked_seen[T], pending_seen[T];
static volatile int generation;
static pthread_t handles[T];

static unsigned long long bits_of(const sigset_t *set)
{
    unsigned long long m = 0;
    for (int s = 1; s <= 64; s++)
        if (sigismember(set, s) == 1) m |= 1ULL << (s - 1);
    return m;
}

static void on_usr1(int sig, siginfo_t *info, void *context)
{
    (void)sig; (void)info; (void)context;
    volatile char local = 0;
    int i = tls_index;
    if (i < 0) return;
    stack_t ss;
    int inside = sigaltstack(NULL, &ss) == 0 && (ss.ss_flags & SS_ONSTACK) && altbase[i] &&
                 (const char *)&local >= altbase[i] && (const char *)&local < altbase[i] + ALT_SIZE;
    handler_tid[i] = (int)syscall(SYS_gettid);
    if (inside) on_alt[i]++;
    handled[i]++;
    (void)local;
}

static void look(int i)
{
    sigset_t now, pending;
    pthread_sigmask(SIG_BLOCK, NULL, &now);
    sigpending(&pending);
    stack_t ss;
    int ok = 0;
    if (sigaltstack(NULL, &ss) == 0) {
        if (altbase[i]) ok = !(ss.ss_flags & SS_DISABLE) && ss.ss_sp == altbase[i] && ss.ss_size == ALT_SIZE;
        else ok = (ss.ss_flags & SS_DISABLE) != 0;
    }
    tid_seen[i] = (int)syscall(SYS_gettid);
    blocked_seen[i] = bits_of(&now);
    pending_seen[i] = bits_of(&pending);
    alt_ok[i] = ok;
    __atomic_store_n(&gen_seen[i], generation, __ATOMIC_SEQ_CST);
}

static void *worker(void *arg)
{
    int i = (int)(intptr_t)arg;
    tls_index = i;
    char name[16];
    snprintf(name, sizeof name, "sig-%d", i);
    pthread_setname_np(pthread_self(), name);
    altbase[i] = mmap(NULL, ALT_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (altbase[i] == MAP_FAILED) die("mmap");
    stack_t ss = { .ss_sp = altbase[i], .ss_size = ALT_SIZE, .ss_flags = 0 };
    if (sigaltstack(&ss, NULL) == -1) die("sigaltstack");
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    if (i == 1) sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_SETMASK, &set, NULL);
    for (;;) {
        look(i);
        sleep_ms(5);
    }
    return NULL;
}

int main(void)
{
    tls_index = 0;
    pthread_setname_np(pthread_self(), "sig-0");
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_usr1;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGUSR1, &sa, NULL) == -1) die("sigaction");

    handles[0] = pthread_self();
    for (int i = 1; i < T; i++)
        if (pthread_create(&handles[i], NULL, worker, (void *)(intptr_t)i) != 0) die("pthread_create");
    for (int i = 1; i < T; i++)
        while (tid_seen[i] == 0) sleep_ms(1);
    say("READY %d\n", (int)getpid());

    sigset_t usr2;
    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    for (int seq = 1;; seq++) {
        siginfo_t info;
        if (sigwaitinfo(&usr2, &info) != SIGUSR2) { seq--; continue; }
        int g = __atomic_add_fetch(&generation, 1, __ATOMIC_SEQ_CST);
        look(0);
        for (int waited = 0; waited < 5000; waited++) {
            int all = 1;
            for (int i = 1; i < T; i++)
                if (__atomic_load_n(&gen_seen[i], __ATOMIC_SEQ_CST) != g) all = 0;
            if (all) break;
            sleep_ms(1);
        }
        for (int i = 0; i < T; i++) {
            char name[16] = "?";
            pthread_getname_np(handles[i], name, sizeof name);
            say("THREAD %d %d tid=%d name=%s blocked=%llx pending=%llx altstack=%d handled=%d handler_tid=%d on_alt=%d seen=%d\n",
                seq, i, tid_seen[i], name, blocked_seen[i], pending_seen[i], alt_ok[i], handled[i], handler_tid[i], on_alt[i],
                gen_seen[i] == g);
        }
        say("DONE %d\n", seq);
    }
}
