/*
 * tree_family [-z CODE] [-T] [-g] [-w WORKERS]
 *
 * A parent (role P) with a small family; every member says what it sees of itself:
 *   W1..Wn  workers (default 2) that tick every 10 ms; each forks a grandchild G1..Gn that ticks too
 *   -z CODE a child Z that exits at once with CODE; the parent leaves it a zombie until it gets SIGUSR2
 *   -T      a child S that stops itself (SIGSTOP); once continued it prints "CONT S pid=.. ppid=.."
 *   -g      the last worker leads a process group of its own (setpgid), its grandchild inside it
 *
 * Output (stdout, shared by all; one write per line):
 *   "KID role pid"   for every child and grandchild, then "READY pid" once the family is complete
 *                    (the zombie exited, the stopped child stopped)
 *   "WHO role pid=.. ppid=.. pgid=.. sid=.. ticks=.."   on SIGUSR1, from each process for itself
 *   "REAP pid=.. code=.. signal=.."  or  "REAP none errno=.."   when the parent gets SIGUSR2: it reaps
 *                    whatever child has ended (waitpid(-1, WNOHANG), so it works with new pids too)
 */
#include "common.h"
#include <sys/wait.h>

static volatile sig_atomic_t want_who, want_reap;
static const char *role = "P";
static long ticks;

static void on_usr1(int sig) { (void)sig; want_who = 1; }
static void on_usr2(int sig) { (void)sig; want_reap = 1; }

static void who(void)
{
    want_who = 0;
    say("WHO %s pid=%d ppid=%d pgid=%d sid=%d ticks=%ld\n", role, (int)getpid(), (int)getppid(),
        (int)getpgrp(), (int)getsid(0), ticks);
}

static void reap(void)
{
    want_reap = 0;
    int status;
    pid_t r = waitpid(-1, &status, WNOHANG);
    if (r > 0)
        say("REAP pid=%d code=%d signal=%d\n", (int)r, WIFEXITED(status) ? WEXITSTATUS(status) : -1,
            WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    else
        say("REAP none errno=%d\n", r == 0 ? 0 : errno);
}

static void tick_forever(void)
{
    for (;;) {
        ticks++;
        sleep_ms(10);
        if (want_who) who();
        if (want_reap) reap();
    }
}

/* One byte on the sync pipe says "my part of the family is in place". */
static void signal_ready(int fd)
{
    char c = 1;
    while (write(fd, &c, 1) == -1 && errno == EINTR) { }
}

int main(int argc, char **argv)
{
    int zombie_code = -1, stopped = 0, group = 0, workers = 2, opt;
    while ((opt = getopt(argc, argv, "z:Tgw:")) != -1) {
        switch (opt) {
        case 'z': zombie_code = atoi(optarg); break;
        case 'T': stopped = 1; break;
        case 'g': group = 1; break;
        case 'w': workers = atoi(optarg); break;
        default: say("usage: tree_family [-z CODE] [-T] [-g] [-w WORKERS]\n"); return 2;
        }
    }
    on_signal(SIGUSR1, on_usr1, 0);
    on_signal(SIGUSR2, on_usr2, 0);

    int sync[2];
    if (pipe(sync) == -1) die("pipe");
    static char names[16][8];
    for (int i = 1; i <= workers && i < 16; i++) {
        pid_t w = fork();
        if (w == -1) die("fork");
        if (w == 0) {
            snprintf(names[i], sizeof names[i], "W%d", i);
            role = names[i];
            close(sync[0]);
            if (group && i == workers) setpgid(0, 0);
            pid_t g = fork();
            if (g == -1) die("fork");
            if (g == 0) {
                static char gname[8];
                snprintf(gname, sizeof gname, "G%d", i);
                role = gname;
                close(sync[1]);
                tick_forever();
            }
            say("KID G%d %d\n", i, (int)g);
            signal_ready(sync[1]);
            close(sync[1]);
            tick_forever();
        }
        if (group && i == workers) setpgid(w, w);
        say("KID W%d %d\n", i, (int)w);
    }
    close(sync[1]);
    for (int i = 1; i <= workers; i++) {
        char c;
        ssize_t n;
        while ((n = read(sync[0], &c, 1)) == -1 && errno == EINTR) { }
        if (n != 1) die("read of the sync pipe");
    }
    close(sync[0]);

    if (zombie_code >= 0) {
        pid_t z = fork();
        if (z == -1) die("fork");
        if (z == 0) _exit(zombie_code);
        say("KID Z %d\n", (int)z);
        siginfo_t info;
        memset(&info, 0, sizeof info);
        while (waitid(P_PID, (id_t)z, &info, WEXITED | WNOWAIT) == -1 && errno == EINTR) { }
    }
    if (stopped) {
        pid_t s = fork();
        if (s == -1) die("fork");
        if (s == 0) {
            role = "S";
            raise(SIGSTOP);
            say("CONT S pid=%d ppid=%d\n", (int)getpid(), (int)getppid());
            tick_forever();
        }
        say("KID S %d\n", (int)s);
        int status;
        while (waitpid(s, &status, WUNTRACED) == -1 && errno == EINTR) { }
    }
    say("READY %d\n", (int)getpid());
    tick_forever();
}
