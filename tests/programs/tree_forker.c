/*
 * tree_forker FORKS
 *
 * A parent P with three idle workers (W1..W3, ticking every 10 ms) and a forker F, started last.
 * F forks short-lived children one after the other, keeping up to 6 alive at once: child number N
 * sleeps N % 3 milliseconds and exits with code N % 50. F reaps them (waitpid(-1)), checks each
 * exit code against the number it gave that pid, and prints "TICK N forks=.. reaped=.. bad=.."
 * every 100 forks. A checkpoint of the tree freezes P and its workers before F, so F is always
 * forking while the others are frozen: children born during the freeze.
 * After FORKS forks F reaps the rest and exits (0 when every code was right); P then kills its
 * workers, reaps everybody and prints "DONE forker=exit:CODE workers=N" (exit 0 when all is well).
 * "KID role pid" lines and "READY pid" come first. On SIGUSR1 F prints "SLOTS made=.. reaped=.. PID..." (the
 * children it has not reaped yet, 0 for a free slot).
 */
#include "common.h"
#include <sys/wait.h>

#define SLOTS 6

static volatile sig_atomic_t want_slots;
static void on_usr1(int sig) { (void)sig; want_slots = 1; }

static void tick_forever(void)
{
    for (;;) sleep_ms(10);
}

static int forker(long forks)
{
    pid_t pids[SLOTS] = {0};
    long numbers[SLOTS] = {0};
    long made = 0, reaped = 0, bad = 0;
    on_signal(SIGUSR1, on_usr1, 0);
    while (reaped < forks) {
        if (want_slots) {
            want_slots = 0;
            char line[256];
            int len = snprintf(line, sizeof line, "SLOTS made=%ld reaped=%ld", made, reaped);
            for (int s = 0; s < SLOTS; s++) len += snprintf(line + len, sizeof line - (size_t)len, " %d", (int)pids[s]);
            say("%s\n", line);
        }
        while (made < forks) {
            int slot = -1;
            for (int s = 0; s < SLOTS; s++) if (pids[s] == 0) { slot = s; break; }
            if (slot < 0) break;
            long n = ++made;
            pid_t c = fork();
            if (c == -1) die("fork");
            if (c == 0) {
                if (n % 3) sleep_ms(n % 3);
                _exit((int)(n % 50));
            }
            pids[slot] = c;
            numbers[slot] = n;
            if (made % 100 == 0) say("TICK %ld forks=%ld reaped=%ld bad=%ld\n", made, made, reaped, bad);
        }
        int status;
        pid_t r = waitpid(-1, &status, 0);
        if (r == -1) {
            if (errno == EINTR) continue;
            say("BAD waitpid: %s\n", strerror(errno));
            bad++;
            break;
        }
        int slot = -1;
        for (int s = 0; s < SLOTS; s++) if (pids[s] == r) { slot = s; break; }
        if (slot < 0) { say("BAD reaped unknown child %d\n", (int)r); bad++; continue; }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != numbers[slot] % 50) {
            say("BAD child %ld (pid %d) ended with status 0x%x\n", numbers[slot], (int)r, status);
            bad++;
        }
        pids[slot] = 0;
        reaped++;
    }
    say("FORKER forks=%ld reaped=%ld bad=%ld\n", made, reaped, bad);
    return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) { say("usage: tree_forker FORKS\n"); return 2; }
    long forks = atol(argv[1]);
    pid_t workers[3];
    for (int i = 0; i < 3; i++) {
        workers[i] = fork();
        if (workers[i] == -1) die("fork");
        if (workers[i] == 0) tick_forever();
        say("KID W%d %d\n", i + 1, (int)workers[i]);
    }
    pid_t f = fork();
    if (f == -1) die("fork");
    if (f == 0) _exit(forker(forks));
    say("KID F %d\n", (int)f);
    say("READY %d\n", (int)getpid());

    int status;
    while (waitpid(f, &status, 0) == -1) {
        if (errno != EINTR) die("waitpid of the forker");
    }
    int killed = 0;
    for (int i = 0; i < 3; i++) {
        kill(workers[i], SIGKILL);
        int ws;
        while (waitpid(workers[i], &ws, 0) == -1 && errno == EINTR) { }
        if (WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL) killed++;
    }
    say("DONE forker=%s:%d workers=%d\n", WIFEXITED(status) ? "exit" : "signal",
        WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), killed);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 && killed == 3 ? 0 : 1;
}
