/*
 * tree_channel KIND LINES [slow]      KIND: fifo, pipe, stream, dgram, seqpacket
 *
 * A parent that sends LINES numbered lines "m N PAYLOAD\n" to its child over one channel:
 *   fifo       a FIFO "chan" made in the working directory, opened by path by both (child reads)
 *   pipe       a pipe made before the fork
 *   stream, dgram, seqpacket   a unix socketpair of that type; the child answers "a N\n" for every
 *              25th message over the same socket, and the parent reads those answers as it goes, so
 *              data waits in both directions
 * The parent writes in bursts of 20 lines every 5 ms, faster than the child reads (it takes 128
 * bytes, or one datagram, every 2 ms), so the channel is mostly full: bytes are in flight whenever
 * the processes are checkpointed. The child checks that the numbers follow each other and that each
 * payload is right ("BAD ..." otherwise), and prints "TICK N" every 100 lines. After the last line
 * the parent closes its end (for dgram it sends "end"); the child prints "DONE got=N bad=B" and exits
 * (0 when all is well); the parent checks the answers, reaps it and prints
 * "FINISHED child=exit:CODE answers=A badanswers=B" (exit 0 when all is well).
 * "KID C pid" and "READY pid" come first.
 * With "slow" the parent writes one line every 10 ms and the child reads as soon as it can, so the
 * channel is almost always empty.
 */
#include "common.h"
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

static int payload(char *out, long n)
{
    int len = (int)((n * 11) % 40);
    for (int i = 0; i < len; i++) out[i] = (char)('A' + (n * 3 + i) % 26);
    out[len] = 0;
    return len;
}

static void send_all(int fd, const char *p, size_t n, int datagram)
{
    while (n > 0) {
        ssize_t w = datagram ? send(fd, p, n, 0) : write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) die("write to the channel");
        if (datagram && (size_t)w != n) { say("BAD short datagram send %zd of %zu\n", w, n); exit(3); }
        p += w;
        n -= (size_t)w;
    }
}

static long bad;

static void check_line(char *line, long *expected)
{
    long number = -1;
    char text[64] = "", want[64];
    if (sscanf(line, "m %ld %63s", &number, text) < 1) number = -1;
    payload(want, *expected);
    if (number != *expected || strcmp(text, want) != 0) {
        say("BAD expected %ld, got '%.60s'\n", *expected, line);
        bad++;
        if (number > 0) *expected = number;
    }
    (*expected)++;
    if ((*expected - 1) % 100 == 0) say("TICK %ld\n", *expected - 1);
}

static int slow;

static void child_main(int fd, int sockets, int datagram)
{
    char buffer[4096];
    size_t have = 0;
    long expected = 1;
    for (;;) {
        ssize_t n;
        if (datagram) n = recv(fd, buffer, sizeof buffer - 1, 0);
        else n = read(fd, buffer + have, 128);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) die("read of the channel");
        if (n == 0) break;
        if (datagram) {
            buffer[n] = 0;
            if (strcmp(buffer, "end") == 0) break;
            if (n < 1 || buffer[n - 1] != '\n') { say("BAD datagram without its newline '%.60s'\n", buffer); bad++; }
            else buffer[n - 1] = 0;
            check_line(buffer, &expected);
        } else {
            have += (size_t)n;
            char *start = buffer, *nl;
            while ((nl = memchr(start, '\n', have - (size_t)(start - buffer))) != NULL) {
                *nl = 0;
                check_line(start, &expected);
                start = nl + 1;
                if (sockets && (expected - 1) % 25 == 0) {
                    char answer[32];
                    int len = snprintf(answer, sizeof answer, "a %ld\n", expected - 1);
                    send_all(fd, answer, (size_t)len, 0);
                }
            }
            have -= (size_t)(start - buffer);
            memmove(buffer, start, have);
        }
        if (datagram && sockets && (expected - 1) % 25 == 0) {
            char answer[32];
            int len = snprintf(answer, sizeof answer, "a %ld\n", expected - 1);
            send_all(fd, answer, (size_t)len, 1);
        }
        if (!slow) sleep_ms(2);
    }
    say("DONE got=%ld bad=%ld\n", expected - 1, bad);
    _exit(bad ? 1 : 0);
}

static long answers, bad_answers;
static char answer_buffer[4096];
static size_t answer_have;

/* Takes the answers waiting on the socket (all of them with wait, until end-of-file). */
static void read_answers(int fd, int datagram, int wait)
{
    for (;;) {
        ssize_t n;
        if (datagram) n = recv(fd, answer_buffer, sizeof answer_buffer - 1, wait ? 0 : MSG_DONTWAIT);
        else n = recv(fd, answer_buffer + answer_have, sizeof answer_buffer - answer_have, wait ? 0 : MSG_DONTWAIT);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        if (datagram) answer_have = (size_t)n;
        else answer_have += (size_t)n;
        char *start = answer_buffer, *nl;
        while ((nl = memchr(start, '\n', answer_have - (size_t)(start - answer_buffer))) != NULL) {
            *nl = 0;
            long number = -1;
            if (sscanf(start, "a %ld", &number) != 1 || number != (answers + 1) * 25) {
                say("BAD answer '%.40s', expected a %ld\n", start, (answers + 1) * 25);
                bad_answers++;
            }
            answers++;
            start = nl + 1;
        }
        answer_have -= (size_t)(start - answer_buffer);
        memmove(answer_buffer, start, answer_have);
        if (datagram) answer_have = 0;
    }
}

int main(int argc, char **argv)
{
    if (argc != 3 && argc != 4) { say("usage: tree_channel KIND LINES [slow]\n"); return 2; }
    const char *kind = argv[1];
    long lines = atol(argv[2]);
    slow = argc == 4 && strcmp(argv[3], "slow") == 0;
    int sockets = 0, datagram = 0, fds[2];
    if (strcmp(kind, "pipe") == 0) {
        if (pipe(fds) == -1) die("pipe");
    } else if (strcmp(kind, "fifo") == 0) {
        unlink("chan");
        if (mkfifo("chan", 0600) == -1) die("mkfifo");
    } else {
        int type = strcmp(kind, "stream") == 0 ? SOCK_STREAM : strcmp(kind, "dgram") == 0 ? SOCK_DGRAM
                 : strcmp(kind, "seqpacket") == 0 ? SOCK_SEQPACKET : -1;
        if (type == -1) { say("unknown kind %s\n", kind); return 2; }
        if (socketpair(AF_UNIX, type, 0, fds) == -1) die("socketpair");
        sockets = 1;
        datagram = type != SOCK_STREAM;
    }

    pid_t child = fork();
    if (child == -1) die("fork");
    if (child == 0) {
        int fd;
        if (strcmp(kind, "fifo") == 0) {
            fd = open("chan", O_RDONLY);
            if (fd == -1) die("open chan for reading");
        } else {
            close(fds[1]);
            fd = fds[0];
        }
        child_main(fd, sockets, datagram);
    }
    int fd;
    if (strcmp(kind, "fifo") == 0) {
        fd = open("chan", O_WRONLY);
        if (fd == -1) die("open chan for writing");
    } else {
        close(fds[0]);
        fd = fds[1];
    }
    say("KID C %d\n", (int)child);
    say("READY %d\n", (int)getpid());

    for (long n = 1; n <= lines; n++) {
        char text[64], line[96];
        payload(text, n);
        int len = snprintf(line, sizeof line, "m %ld %s\n", n, text);
        send_all(fd, line, (size_t)len, datagram);
        if (slow) sleep_ms(10);
        else if (n % 20 == 0) {
            if (sockets) read_answers(fd, datagram, 0);
            sleep_ms(5);
        }
    }
    if (datagram) send_all(fd, "end", 3, 1);
    else if (sockets) shutdown(fd, SHUT_WR);
    else close(fd);
    if (sockets) {
        if (datagram) {
            /* No end-of-file on a datagram socket while the child holds its end: read until it is gone. */
            while (answers < lines / 25) {
                struct pollfd pfd = { fd, POLLIN, 0 };
                if (poll(&pfd, 1, 2000) <= 0) break;
                read_answers(fd, datagram, 0);
            }
        } else {
            read_answers(fd, datagram, 1);
        }
    }
    int status;
    while (waitpid(child, &status, 0) == -1) {
        if (errno != EINTR) die("waitpid");
    }
    if (sockets && answers != lines / 25) { say("BAD %ld answers, expected %ld\n", answers, lines / 25); bad_answers++; }
    say("FINISHED child=%s:%d answers=%ld badanswers=%ld\n", WIFEXITED(status) ? "exit" : "signal",
        WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), answers, bad_answers);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 && bad_answers == 0 ? 0 : 1;
}
