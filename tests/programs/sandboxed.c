/*
 * sandboxed: runs in a seccomp sandbox of two filters, installed one after the other with
 * no_new_privs set first: the first makes getppid() fail with EPERM, the second makes getpgrp()
 * fail with EACCES; everything else is allowed. A second thread is created after both, and so
 * runs under them too.
 * On SIGUSR1 (the handler only sets a flag) each thread prints
 *   "CALLS <thread> getppid=<errno or ok> getpgrp=<errno or ok> getpid=<ok>"
 * Prints "READY <pid>" once sandboxed.
 */
#include "common.h"
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

static volatile sig_atomic_t asked;
static void on_usr1(int sig) { (void)sig; asked++; }

static void deny(int nr, int error)
{
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (unsigned)error),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog program = { .len = sizeof code / sizeof code[0], .filter = code };
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &program) == -1) die("seccomp");
}

static const char *outcome(long r)
{
    if (r != -1) return "ok";
    return errno == EPERM ? "EPERM" : errno == EACCES ? "EACCES" : "other";
}

static void report(const char *who)
{
    long a = syscall(SYS_getppid);
    const char *ppid = outcome(a);
    long b = syscall(SYS_getpgrp);
    const char *pgrp = outcome(b);
    say("CALLS %s getppid=%s getpgrp=%s getpid=%s\n", who, ppid, pgrp, outcome(syscall(SYS_getpid)));
}

static void *worker(void *arg)
{
    (void)arg;
    sig_atomic_t seen = 0;
    for (;;) {
        if (asked != seen) { seen = asked; report("worker"); }
        usleep(2000);
    }
    return NULL;
}

int main(void)
{
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1) die("no_new_privs");
    deny(SYS_getppid, EPERM);
    deny(SYS_getpgrp, EACCES);
    on_signal(SIGUSR1, on_usr1, SA_RESTART);
    pthread_t t;
    if (pthread_create(&t, NULL, worker, NULL) != 0) die("pthread_create");
    say("READY %d\n", (int)getpid());
    sig_atomic_t seen = 0;
    for (;;) {
        if (asked != seen) { seen = asked; report("main"); }
        usleep(2000);
    }
}
