/*
 * launcher [-s] PIDFILE STATUSFILE OUTFILE ERRFILE PROGRAM [ARGS...]
 *
 * Starts PROGRAM as its own child, with stdin from /dev/null, stdout to OUTFILE, stderr to ERRFILE and
 * no other descriptor, writes its pid to PIDFILE, waits for it and writes how it ended to STATUSFILE
 * ("EXITED n" or "SIGNALED n"). With -s the program gets a session (and process group) of its own.
 * The program starts with a soft RLIMIT_CORE of 0, so that tests that make it abort leave no core file.
 *
 * The tests start programs through it so that the program under test is not a child of the PowerShell
 * process that checkpoints it (.NET reaps its own children on SIGCHLD, which would race with the
 * engine's waitpid), and so that its end can be observed and it is always reaped.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void write_file(const char *path, const char *text)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd == -1) _exit(120);
    size_t n = strlen(text);
    if (write(fd, text, n) != (ssize_t)n) _exit(121);
    close(fd);
    if (rename(tmp, path) == -1) _exit(122);
}

int main(int argc, char **argv)
{
    int new_session = 0;
    int a = 1;
    if (a < argc && strcmp(argv[a], "-s") == 0) { new_session = 1; a++; }
    if (argc - a < 5) {
        fprintf(stderr, "usage: launcher [-s] PIDFILE STATUSFILE OUTFILE ERRFILE PROGRAM [ARGS...]\n");
        return 2;
    }
    const char *pidfile = argv[a], *statusfile = argv[a + 1], *outfile = argv[a + 2], *errfile = argv[a + 3];
    char **program = &argv[a + 4];

    /* Die with the PowerShell that started us, and take the program along (see below). */
    prctl(PR_SET_PDEATHSIG, SIGKILL);

    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    int out = open(outfile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int err = open(errfile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (null == -1 || out == -1 || err == -1) { perror("launcher: open"); return 2; }

    pid_t child = fork();
    if (child == -1) { perror("launcher: fork"); return 2; }
    if (child == 0) {
        if (new_session) setsid();
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        /* No core files from the tests that make programs abort. */
        struct rlimit core;
        if (getrlimit(RLIMIT_CORE, &core) == 0) { core.rlim_cur = 0; setrlimit(RLIMIT_CORE, &core); }
        if (dup2(null, 0) == -1 || dup2(out, 1) == -1 || dup2(err, 2) == -1) _exit(126);
        syscall(SYS_close_range, 3, ~0U, 0);
        /* The signal mask and dispositions from .NET were reset by its exec of us; keep them default. */
        execvp(program[0], program);
        dprintf(2, "launcher: cannot run %s: %s\n", program[0], strerror(errno));
        _exit(127);
    }

    /* Hold nothing of the caller's: its stdout may be a pipe someone reads to the end. */
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
    close(null);
    close(out);
    close(err);

    char text[64];
    snprintf(text, sizeof text, "%d\n", (int)child);
    write_file(pidfile, text);

    int status;
    while (waitpid(child, &status, 0) == -1) {
        if (errno != EINTR) { write_file(statusfile, "LOST\n"); return 1; }
    }
    if (WIFEXITED(status)) snprintf(text, sizeof text, "EXITED %d\n", WEXITSTATUS(status));
    else snprintf(text, sizeof text, "SIGNALED %d\n", WTERMSIG(status));
    write_file(statusfile, text);
    return 0;
}
