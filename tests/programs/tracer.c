/*
 * tracer: a process that traces its own child (the child asked with PTRACE_TRACEME), like a debugger.
 * Prints "CHILD <pid>" and "READY <pid>", then passes on every stop of the child until the child ends;
 * then prints "CHILD ENDED" and exits 0. The child waits in pause() and dies with the tracer.
 */
#include "common.h"
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/wait.h>

int main(void)
{
    pid_t child = fork();
    if (child == -1) die("fork");
    if (child == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (ptrace(PTRACE_TRACEME, 0, 0, 0) == -1) die("PTRACE_TRACEME");
        raise(SIGSTOP);
        for (;;) pause();
    }
    int status;
    if (waitpid(child, &status, 0) == -1 || !WIFSTOPPED(status)) die("waitpid (first stop)");
    if (ptrace(PTRACE_CONT, child, 0, 0) == -1) die("PTRACE_CONT");
    say("CHILD %d\n", (int)child);
    say("READY %d\n", (int)getpid());
    for (;;) {
        if (waitpid(child, &status, 0) == -1) {
            if (errno == EINTR) continue;
            die("waitpid");
        }
        if (WIFEXITED(status) || WIFSIGNALED(status)) break;
        int sig = WIFSTOPPED(status) ? WSTOPSIG(status) : 0;
        ptrace(PTRACE_CONT, child, 0, sig == SIGSTOP || sig == SIGTRAP ? 0 : sig);
    }
    say("CHILD ENDED\n");
    return 0;
}
