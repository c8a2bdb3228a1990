/*
 * tree_pipes CHILDREN MESSAGES
 *
 * A parent that talks to CHILDREN children over pipes: to each it sends MESSAGES requests
 * "r N PAYLOAD\n" (PAYLOAD a string whose length and letters depend on N and the child), up to
 * 24 ahead of the answers, so that requests are always waiting in the pipes. Each child reads its
 * requests in small pieces (37 bytes at a time, so partial lines sit in its buffer), checks every
 * one (the numbers follow each other, the payload is right) and answers "a N SUM\n", taking about
 * a millisecond per request. The parent reads the answers in bursts every 4 ms (so that answers
 * wait in the pipes too) and checks that each child answers 1, 2, 3... with the right sum.
 *
 * Output: "KID Ci pid" for each child, "READY pid", "TICK N" each time the parent has received
 * N = 100, 200... answers in all, "BAD ..." on any mistake (a child says "BAD" too), and at the end,
 * after closing the request pipes and reaping every child: "DONE answers=A bad=B children=OK|..."
 * (exit 0 when all is well, 1 otherwise).
 */
#include "common.h"
#include <poll.h>
#include <sys/wait.h>

#define MAX_CHILDREN 8
#define AHEAD 24

static int payload(char *out, long n, int child)
{
    int len = (int)((n * 7 + child * 13) % 90);
    for (int i = 0; i < len; i++) out[i] = (char)('a' + (n + i + child) % 26);
    out[len] = 0;
    return len;
}

static long payload_sum(long n, int child)
{
    char text[128];
    int len = payload(text, n, child);
    long sum = 0;
    for (int i = 0; i < len; i++) sum += text[i];
    return sum;
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) die("write");
        p += w;
        n -= (size_t)w;
    }
}

static void child_main(int child, int in, int out)
{
    char buffer[4096];
    size_t have = 0;
    long expected = 1, bad = 0;
    for (;;) {
        ssize_t n = read(in, buffer + have, 37);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) die("read of requests");
        if (n == 0) break;
        have += (size_t)n;
        char *start = buffer, *nl;
        while ((nl = memchr(start, '\n', have - (size_t)(start - buffer))) != NULL) {
            *nl = 0;
            long number = -1;
            char text[128] = "";
            if (sscanf(start, "r %ld %127s", &number, text) < 1) number = -1;
            char want[128];
            payload(want, expected, child);
            if (number != expected || strcmp(text, want) != 0) {
                say("BAD C%d expected request %ld, got '%.60s'\n", child, expected, start);
                bad++;
                if (number > 0) expected = number;
            }
            char answer[64];
            int len = snprintf(answer, sizeof answer, "a %ld %ld\n", number, payload_sum(number, child));
            write_all(out, answer, (size_t)len);
            expected++;
            start = nl + 1;
            sleep_ms(1);
        }
        have -= (size_t)(start - buffer);
        memmove(buffer, start, have);
    }
    _exit(bad ? 1 : 0);
}

int main(int argc, char **argv)
{
    if (argc != 3) { say("usage: tree_pipes CHILDREN MESSAGES\n"); return 2; }
    int children = atoi(argv[1]);
    long messages = atol(argv[2]);
    if (children < 1 || children > MAX_CHILDREN || messages < 1) return 2;

    int to[MAX_CHILDREN], from[MAX_CHILDREN];
    pid_t pids[MAX_CHILDREN];
    for (int c = 0; c < children; c++) {
        int req[2], rep[2];
        if (pipe(req) == -1 || pipe(rep) == -1) die("pipe");
        pid_t p = fork();
        if (p == -1) die("fork");
        if (p == 0) {
            close(req[1]);
            close(rep[0]);
            /* The ends of the earlier children's pipes that the parent holds are not ours. */
            for (int o = 0; o < c; o++) { close(to[o]); close(from[o]); }
            child_main(c + 1, req[0], rep[1]);
        }
        close(req[0]);
        close(rep[1]);
        to[c] = req[1];
        from[c] = rep[0];
        pids[c] = p;
        say("KID C%d %d\n", c + 1, (int)p);
    }
    say("READY %d\n", (int)getpid());

    long sent[MAX_CHILDREN] = {0}, answered[MAX_CHILDREN] = {0}, bad = 0, total = 0;
    char inbox[MAX_CHILDREN][4096];
    size_t have[MAX_CHILDREN] = {0};
    int open_children = children;
    while (open_children > 0) {
        for (int c = 0; c < children; c++) {
            if (to[c] < 0) continue;
            while (sent[c] < messages && sent[c] - answered[c] < AHEAD) {
                char text[128], line[160];
                long n = ++sent[c];
                payload(text, n, c + 1);
                int len = snprintf(line, sizeof line, "r %ld %s\n", n, text);
                write_all(to[c], line, (size_t)len);
            }
            if (answered[c] == messages) {
                close(to[c]);
                to[c] = -1;
                open_children--;
            }
        }
        sleep_ms(4);
        for (int c = 0; c < children; c++) {
            if (have[c] == sizeof inbox[c]) die("answer too long");
            ssize_t n;
            struct pollfd pfd = { from[c], POLLIN, 0 };
            if (poll(&pfd, 1, 0) <= 0) continue;
            n = read(from[c], inbox[c] + have[c], sizeof inbox[c] - have[c]);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) continue;
            have[c] += (size_t)n;
            char *start = inbox[c], *nl;
            while ((nl = memchr(start, '\n', have[c] - (size_t)(start - inbox[c]))) != NULL) {
                *nl = 0;
                long number = -1, sum = -1;
                if (sscanf(start, "a %ld %ld", &number, &sum) != 2) number = -1;
                long want = answered[c] + 1;
                if (number != want || sum != payload_sum(want, c + 1)) {
                    say("BAD from C%d: expected answer %ld (sum %ld), got '%.60s'\n", c + 1, want, payload_sum(want, c + 1), start);
                    bad++;
                    if (number > want && number <= sent[c]) want = number;
                }
                answered[c] = want;
                total++;
                if (total % 100 == 0) say("TICK %ld\n", total);
                start = nl + 1;
            }
            have[c] -= (size_t)(start - inbox[c]);
            memmove(inbox[c], start, have[c]);
        }
    }

    char verdict[256] = "OK";
    int failed = 0;
    for (int c = 0; c < children; c++) {
        int status;
        while (waitpid(pids[c], &status, 0) == -1) {
            if (errno != EINTR) { status = -1; break; }
        }
        if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            if (!failed) verdict[0] = 0;
            failed = 1;
            size_t used = strlen(verdict);
            snprintf(verdict + used, sizeof verdict - used, "%sC%d:%s%d", used ? "," : "", c + 1,
                     status == -1 ? "lost" : WIFEXITED(status) ? "exit" : "signal",
                     status == -1 ? errno : WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        }
    }
    say("DONE answers=%ld bad=%ld children=%s\n", total, bad, verdict);
    return bad || failed ? 1 : 0;
}
