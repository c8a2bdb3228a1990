/*
 * Signal and process-tree state that a restart must give back exactly, seen from the program itself.
 * Usage: signals_exact MODE [ARG]. Each mode prints "READY ..." once its state is set, then waits for a
 * file named "go" in its working directory (created by the test after the restart), then reports.
 *   stopped SIGNO [samegroup]
 *                  A middle process (own group, so the group is not orphaned and SIGTSTP is not
 *                  discarded; with "samegroup", in the main process's group) stops its child with SIGNO
 *                  and makes sure with waitid(WNOWAIT). After "go":
 *                  "AFTER code=C status=S" from waitid(WSTOPPED|WNOHANG|WNOWAIT) (CLD_STOPPED is 5) and
 *                  "STATE X" from /proc/CHILD/stat; then SIGCONT and "CONTINUED exit=E".
 *   sigtrap        A SIGTRAP handler, SIGTRAP blocked and pending (with a value, by sigqueue). After "go":
 *                  "PENDING 1|0" (sigpending), then unblocks: "HANDLED code=C value=V".
 *   zombie         A child that takes a group of its own and exits 7, and one killed by SIGKILL, before
 *                  the checkpoint. After "go": "ZOMBIE pgid=P state=X" from /proc, then
 *                  "REAPED status=S killed=K" (the wait statuses of both).
 *   strict         A child in seccomp strict mode echoes bytes between two pipes. After "go": "SECCOMP M"
 *                  (the child's /proc status), then a byte written is read back: "ECHO c".
 *   pidfd          A pidfd of a child (pidfd_open). After "go": SIGKILL through pidfd_send_signal, then
 *                  waitid(P_PIDFD): "PIDFD pid=P signal=S" (the child it waited for, and what killed it).
 *   vfork          The main process vforks; the child prints "READY parent=P child=C" and pauses without
 *                  exec: the parent stays in the kernel, where no ptrace stop reaches it, until the child
 *                  ends. Then the parent prints "RESUMED" and waits.
 */
#include "common.h"
#include <fcntl.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

static void wait_for_go(void)
{
    struct timespec ten = {0, 10 * 1000 * 1000};
    while (access("go", F_OK) != 0) nanosleep(&ten, NULL);
}

static char proc_state(pid_t pid, int *pgid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return '?';
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return '?';
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p) return '?';
    char state = 0;
    int ppid = 0, group = 0;
    sscanf(p + 2, "%c %d %d", &state, &ppid, &group);
    if (pgid) *pgid = group;
    return state;
}

static __attribute__((noreturn)) void stopped(int signo, int samegroup)
{
    pid_t middle = fork();
    if (middle < 0) die("fork");
    if (middle > 0) {
        for (;;) pause();
    }
    if (!samegroup) setpgid(0, 0);
    pid_t child = fork();
    if (child < 0) die("fork");
    if (child == 0) {
        for (;;) pause();
    }
    if (kill(child, signo)) die("kill");
    siginfo_t info;
    memset(&info, 0, sizeof info);
    if (waitid(P_PID, child, &info, WSTOPPED | WNOWAIT)) die("waitid");
    say("READY middle=%d child=%d code=%d status=%d\n", getpid(), child, info.si_code, info.si_status);
    wait_for_go();
    memset(&info, 0, sizeof info);
    if (waitid(P_PID, child, &info, WSTOPPED | WNOHANG | WNOWAIT)) die("waitid");
    say("AFTER code=%d status=%d\n", info.si_code, info.si_status);
    say("STATE %c\n", proc_state(child, NULL));
    kill(child, SIGKILL);
    int status = 0;
    waitpid(child, &status, 0);
    say("DONE status=%d\n", status);
    for (;;) pause();
}

static volatile sig_atomic_t trap_code = -100, trap_value = -1;

static void on_trap(int sig, siginfo_t *info, void *context)
{
    (void)sig;
    (void)context;
    trap_code = info->si_code;
    trap_value = info->si_value.sival_int;
}

static __attribute__((noreturn)) void sigtrap(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_trap;
    sa.sa_flags = SA_SIGINFO;
    if (sigaction(SIGTRAP, &sa, NULL)) die("sigaction");
    sigset_t trap;
    sigemptyset(&trap);
    sigaddset(&trap, SIGTRAP);
    if (sigprocmask(SIG_BLOCK, &trap, NULL)) die("sigprocmask");
    union sigval value = {.sival_int = 4242};
    if (sigqueue(getpid(), SIGTRAP, value)) die("sigqueue");
    say("READY pid=%d\n", getpid());
    wait_for_go();
    sigset_t pending;
    sigpending(&pending);
    say("PENDING %d\n", sigismember(&pending, SIGTRAP));
    sigprocmask(SIG_UNBLOCK, &trap, NULL);
    say("HANDLED code=%d value=%d\n", (int)trap_code, (int)trap_value);
    for (;;) pause();
}

static __attribute__((noreturn)) void zombie(void)
{
    int ready[2];
    if (pipe(ready)) die("pipe");
    pid_t child = fork();
    if (child < 0) die("fork");
    if (child == 0) {
        setpgid(0, 0);
        _exit(7);
    }
    pid_t killed = fork();
    if (killed < 0) die("fork");
    if (killed == 0) {
        kill(getpid(), SIGKILL);
        _exit(1);
    }
    siginfo_t info;
    if (waitid(P_PID, child, &info, WEXITED | WNOWAIT)) die("waitid");
    if (waitid(P_PID, killed, &info, WEXITED | WNOWAIT)) die("waitid");
    int pgid = 0;
    char state = proc_state(child, &pgid);
    say("READY child=%d pgid=%d state=%c\n", child, pgid, state);
    wait_for_go();
    state = proc_state(child, &pgid);
    say("ZOMBIE pgid=%d state=%c\n", pgid, state);
    int status = 0, status2 = 0;
    waitpid(child, &status, 0);
    waitpid(killed, &status2, 0);
    say("REAPED status=%d killed=%d\n", status, status2);
    for (;;) pause();
}

static __attribute__((noreturn)) void strict(void)
{
    int to[2], from[2];
    if (pipe(to) || pipe(from)) die("pipe");
    pid_t child = fork();
    if (child < 0) die("fork");
    if (child == 0) {
        close(to[1]);
        close(from[0]);
        if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT)) die("prctl");
        char c;
        for (;;) {
            if (syscall(SYS_read, to[0], &c, 1) != 1) syscall(SYS_exit, 1);
            syscall(SYS_write, from[1], &c, 1);
        }
    }
    close(to[0]);
    close(from[1]);
    char c = 'a';
    if (write(to[1], &c, 1) != 1 || read(from[0], &c, 1) != 1) die("echo");
    say("READY child=%d\n", child);
    wait_for_go();
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/status", child);
    int fd = open(path, O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    buf[n > 0 ? n : 0] = 0;
    char *mode = strstr(buf, "Seccomp:");
    say("SECCOMP %d\n", mode ? atoi(mode + 8) : -1);
    c = 'z';
    if (write(to[1], &c, 1) != 1 || read(from[0], &c, 1) != 1) die("echo after");
    say("ECHO %c\n", c);
    for (;;) pause();
}

static __attribute__((noreturn)) void pidfd(void)
{
    pid_t child = fork();
    if (child < 0) die("fork");
    if (child == 0) {
        for (;;) pause();
    }
    int fd = (int)syscall(SYS_pidfd_open, child, 0);
    if (fd < 0) die("pidfd_open");
    say("READY child=%d fd=%d\n", child, fd);
    wait_for_go();
    if (syscall(SYS_pidfd_send_signal, fd, SIGKILL, NULL, 0)) die("pidfd_send_signal");
    siginfo_t info;
    memset(&info, 0, sizeof info);
    if (waitid((idtype_t)3 /* P_PIDFD */, (id_t)fd, &info, WEXITED)) die("waitid");
    say("PIDFD pid=%d signal=%d\n", info.si_pid, info.si_status);
    for (;;) pause();
}

static __attribute__((noreturn)) void vforked(void)
{
    pid_t parent = getpid();
    pid_t child = vfork();
    if (child < 0) die("vfork");
    if (child == 0) {
        /* Nothing but system calls: the child borrows the parent's memory and stack. */
        char line[64];
        int n = snprintf(line, sizeof line, "READY parent=%d child=%d\n", parent, (int)syscall(SYS_getpid));
        syscall(SYS_write, 1, line, n);
        for (;;) syscall(SYS_pause);
    }
    say("RESUMED\n");
    for (;;) pause();
}

int main(int argc, char **argv)
{
    if (argc < 2) return 2;
    if (!strcmp(argv[1], "stopped")) stopped(argc > 2 ? atoi(argv[2]) : SIGSTOP, argc > 3 && !strcmp(argv[3], "samegroup"));
    if (!strcmp(argv[1], "sigtrap")) sigtrap();
    if (!strcmp(argv[1], "zombie")) zombie();
    if (!strcmp(argv[1], "strict")) strict();
    if (!strcmp(argv[1], "vfork")) vforked();
    if (!strcmp(argv[1], "pidfd")) pidfd();
    return 2;
}
