/*
 * zombie: has a child that exits at once and is not waited for, so it stays a zombie.
 * Prints "ZOMBIE <pid of the child>" once the child has exited, then "READY <pid>". On SIGUSR1 it reaps the
 * child, prints "REAPED" and exits 0 (so that no zombie is left behind for init, which may not reap).
 */
#include "common.h"
#include <sys/wait.h>

static volatile sig_atomic_t usr1;
static void on_usr1(int sig) { (void)sig; usr1 = 1; }

int main(void)
{
    on_signal(SIGUSR1, on_usr1, 0);
    pid_t child = fork();
    if (child == -1) die("fork");
    if (child == 0) _exit(7);
    siginfo_t info;
    /* Wait until it has exited, without reaping it. */
    if (waitid(P_PID, child, &info, WEXITED | WNOWAIT) == -1) die("waitid");
    say("ZOMBIE %d\n", (int)child);
    say("READY %d\n", (int)getpid());
    while (!usr1) pause();
    waitpid(child, NULL, 0);
    say("REAPED\n");
    return 0;
}
