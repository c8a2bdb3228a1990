/*
 * threads_membarrier: a multi-threaded program that registered for private expedited membarrier, as the .NET
 * runtime does at start (its FlushProcessWriteBuffers, used to suspend threads for a garbage collection, is
 * membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED), and a failure there is fatal).
 *
 * The registration (MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) belongs to the address space, not to a thread.
 * Two worker threads ("mb-1", "mb-2") count under a mutex and sleep 1 ms every 16 rounds.
 * The main thread answers each SIGUSR1 (blocked everywhere, taken with sigwaitinfo) with
 *   MEMBARRIER <seq> expedited=<0 or -errno of membarrier(PRIVATE_EXPEDITED)> registrations=<mask, decimal>
 *              counts=<c1>,<c2>
 * where registrations is what MEMBARRIER_CMD_GET_REGISTRATIONS (Linux 6.3) returns, or -errno.
 * Prints "READY <pid>" once both workers have counted.
 */
#include "common.h"
#include <pthread.h>
#include <sys/syscall.h>

#define MEMBARRIER_CMD_QUERY 0
#define MEMBARRIER_CMD_PRIVATE_EXPEDITED (1 << 3)
#define MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED (1 << 4)
#define MEMBARRIER_CMD_GET_REGISTRATIONS (1 << 9)

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t counts[3];

static long membarrier(int cmd)
{
    long r = syscall(SYS_membarrier, cmd, 0, 0);
    return r == -1 ? -errno : r;
}

static void *worker(void *arg)
{
    int i = (int)(intptr_t)arg;
    char name[16];
    snprintf(name, sizeof name, "mb-%d", i);
    pthread_setname_np(pthread_self(), name);
    for (uint64_t n = 1;; n++) {
        pthread_mutex_lock(&lock);
        counts[i]++;
        pthread_mutex_unlock(&lock);
        if (n % 16 == 0) sleep_ms(1);
    }
    return NULL;
}

int main(void)
{
    long supported = membarrier(MEMBARRIER_CMD_QUERY);
    if (supported < 0 || !(supported & MEMBARRIER_CMD_PRIVATE_EXPEDITED)) { say("FAILED membarrier not supported (%ld)\n", supported); return 2; }
    if (membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) != 0) die("membarrier register");
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &usr1, NULL);
    pthread_t t;
    for (int i = 1; i <= 2; i++)
        if (pthread_create(&t, NULL, worker, (void *)(intptr_t)i) != 0) die("pthread_create");
    for (;;) {
        pthread_mutex_lock(&lock);
        int ready = counts[1] > 0 && counts[2] > 0;
        pthread_mutex_unlock(&lock);
        if (ready) break;
        sleep_ms(1);
    }
    say("READY %d\n", (int)getpid());
    for (int seq = 1;; seq++) {
        siginfo_t info;
        if (sigwaitinfo(&usr1, &info) != SIGUSR1) { seq--; continue; }
        long expedited = membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED);
        long registrations = membarrier(MEMBARRIER_CMD_GET_REGISTRATIONS);
        pthread_mutex_lock(&lock);
        uint64_t c1 = counts[1], c2 = counts[2];
        pthread_mutex_unlock(&lock);
        say("MEMBARRIER %d expedited=%ld registrations=%ld counts=%llu,%llu\n", seq, expedited, registrations,
            (unsigned long long)c1, (unsigned long long)c2);
    }
}
