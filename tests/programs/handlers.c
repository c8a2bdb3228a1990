/*
 * handlers DIR: process-wide and per-thread state that a checkpoint must record, then waits.
 *
 *   chdir(DIR); umask 027; RLIMIT_NOFILE soft 123; RLIMIT_CORE 0/0 (soft/hard unchanged if lower)
 *   SIGUSR1: handler on_usr1, SA_SIGINFO|SA_RESTART|SA_ONSTACK, sa_mask {SIGINT}
 *   SIGPIPE: ignored; SIGHUP: handler on_hup (no flags)
 *   blocked: SIGUSR2 and SIGRTMIN (34 with glibc); pending: SIGUSR2 for the process (kill), 34 for the thread (tgkill)
 *   sigaltstack: 64 KiB from malloc
 *   ITIMER_REAL: 1000 s, interval 500 s (SIGALRM handled, never fires during a test)
 * Prints "USR1HANDLER <address>", "HUPHANDLER <address>", "ALTSTACK <base> <size>", "READY <pid>".
 * Each SIGUSR1 prints "USR1 <n> onstack=<0/1> code=<si_code>" (from the handler's own report).
 */
#include "common.h"
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>

static volatile sig_atomic_t usr1, onstack, code, alarms;
static char *alt;
static const size_t alt_size = 64 * 1024;

static void on_usr1(int sig, siginfo_t *info, void *context)
{
    (void)sig; (void)context;
    char here;
    onstack = &here >= alt && &here < alt + alt_size;
    code = info->si_code;
    usr1++;
}
static void on_hup(int sig) { (void)sig; }
static void on_alarm(int sig) { (void)sig; alarms++; }

int main(int argc, char **argv)
{
    if (argc < 2) { say("usage: handlers DIR\n"); return 2; }
    if (chdir(argv[1]) == -1) die("chdir");
    umask(027);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = 123;
    if (setrlimit(RLIMIT_NOFILE, &rl) == -1) die("setrlimit NOFILE");
    rl.rlim_cur = rl.rlim_max = 0;
    if (setrlimit(RLIMIT_CORE, &rl) == -1) die("setrlimit CORE");

    alt = malloc(alt_size);
    stack_t ss = { .ss_sp = alt, .ss_size = alt_size, .ss_flags = 0 };
    if (sigaltstack(&ss, NULL) == -1) die("sigaltstack");

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_usr1;
    sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGINT);
    if (sigaction(SIGUSR1, &sa, NULL) == -1) die("sigaction USR1");
    on_signal(SIGHUP, on_hup, 0);
    on_signal(SIGALRM, on_alarm, SA_RESTART);
    signal(SIGPIPE, SIG_IGN);

    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR2);
    sigaddset(&block, SIGRTMIN);
    if (sigprocmask(SIG_BLOCK, &block, NULL) == -1) die("sigprocmask");
    kill(getpid(), SIGUSR2);
    syscall(SYS_tgkill, getpid(), (pid_t)syscall(SYS_gettid), SIGRTMIN);

    struct itimerval it = { .it_interval = { 500, 0 }, .it_value = { 1000, 0 } };
    if (setitimer(ITIMER_REAL, &it, NULL) == -1) die("setitimer");

    say("USR1HANDLER %p\n", (void *)on_usr1);
    say("HUPHANDLER %p\n", (void *)on_hup);
    say("ALTSTACK %p %zu\n", (void *)alt, alt_size);
    say("READY %d\n", (int)getpid());
    sig_atomic_t seen = 0;
    for (;;) {
        pause();
        if (usr1 != seen) {
            seen = usr1;
            say("USR1 %d onstack=%d code=%d\n", (int)seen, (int)onstack, (int)code);
        }
    }
}
