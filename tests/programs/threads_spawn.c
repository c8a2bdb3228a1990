/*
 * threads_spawn [SPAWNERS [PACE]]: threads are born and die all the time, so a checkpoint freezes some in the
 * middle of it.
 *
 * SPAWNERS (default 2, at most 16) spawner threads ("spawner-1", "spawner-2"...) each loop: pthread_create of a
 * short-lived thread, then pthread_join of it, PACE times (default 20), then a 1 ms sleep (never with PACE 0).
 * A short-lived thread names itself "child" (until then it has its spawner's name), sets a thread-local value,
 * adds one to the shared count of children that ran, checks its thread-local value, and returns it; the
 * spawner checks the value pthread_join gives back. Any failure (pthread_create, pthread_join, a wrong value)
 * adds one to bad.
 * The main thread takes SIGUSR1 (blocked everywhere) with sigwaitinfo and answers
 *   SPAWN <seq> spawned=<joined so far> ran=<children that ran> bad=<n> threads=<threads in /proc/self/task>
 * Prints "SPAWNERS <tid of spawner 1> <tid of spawner 2>..." and "READY <pid>" once every spawner has joined a
 * child.
 */
#include "common.h"
#include <dirent.h>
#include <pthread.h>

#define MAXS 16
static int spawners = 2, pace = 20;
static uint64_t spawned[MAXS + 1], ran, bad;
static volatile int spawner_tid[MAXS + 1];
static __thread uint64_t tls_value;

static void *child(void *arg)
{
    pthread_setname_np(pthread_self(), "child");
    tls_value = (uint64_t)(uintptr_t)arg * 7 + 1;
    __atomic_add_fetch(&ran, 1, __ATOMIC_SEQ_CST);
    if (tls_value != (uint64_t)(uintptr_t)arg * 7 + 1) __atomic_add_fetch(&bad, 1, __ATOMIC_SEQ_CST);
    return (void *)(uintptr_t)tls_value;
}

static void *spawner(void *arg)
{
    int i = (int)(intptr_t)arg;
    char name[16];
    snprintf(name, sizeof name, "spawner-%d", i);
    pthread_setname_np(pthread_self(), name);
    spawner_tid[i] = gettid();
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    for (uint64_t n = 1;; n++) {
        pthread_t t;
        uintptr_t token = (uintptr_t)(n * 2 + (uint64_t)i);
        int r = pthread_create(&t, &attr, child, (void *)token);
        if (r != 0) {
            __atomic_add_fetch(&bad, 1, __ATOMIC_SEQ_CST);
            sleep_ms(1);
            continue;
        }
        void *value = NULL;
        if (pthread_join(t, &value) != 0 || (uintptr_t)value != token * 7 + 1) __atomic_add_fetch(&bad, 1, __ATOMIC_SEQ_CST);
        __atomic_add_fetch(&spawned[i], 1, __ATOMIC_SEQ_CST);
        if (pace > 0 && n % (uint64_t)pace == 0) sleep_ms(1);
    }
    return NULL;
}

static int count_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

static uint64_t total_spawned(void)
{
    uint64_t total = 0;
    for (int i = 1; i <= spawners; i++) total += __atomic_load_n(&spawned[i], __ATOMIC_SEQ_CST);
    return total;
}

int main(int argc, char **argv)
{
    if (argc > 1) spawners = atoi(argv[1]);
    if (argc > 2) pace = atoi(argv[2]);
    if (spawners < 1 || spawners > MAXS) { say("FAILED bad spawner count\n"); return 2; }
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &usr1, NULL);
    pthread_t t;
    for (int i = 1; i <= spawners; i++)
        if (pthread_create(&t, NULL, spawner, (void *)(intptr_t)i) != 0) die("pthread_create");
    for (int i = 1; i <= spawners; i++)
        while (__atomic_load_n(&spawned[i], __ATOMIC_SEQ_CST) == 0) sleep_ms(1);
    char line[1024];
    int n = snprintf(line, sizeof line, "SPAWNERS");
    for (int i = 1; i <= spawners; i++) n += snprintf(line + n, sizeof line - n, " %d", spawner_tid[i]);
    say("%s\n", line);
    say("READY %d\n", (int)getpid());
    for (int seq = 1;; seq++) {
        siginfo_t info;
        if (sigwaitinfo(&usr1, &info) != SIGUSR1) { seq--; continue; }
        say("SPAWN %d spawned=%llu ran=%llu bad=%llu threads=%d\n", seq, (unsigned long long)total_spawned(),
            (unsigned long long)__atomic_load_n(&ran, __ATOMIC_SEQ_CST), (unsigned long long)__atomic_load_n(&bad, __ATOMIC_SEQ_CST),
            count_threads());
    }
}
