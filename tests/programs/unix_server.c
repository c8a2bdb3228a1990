/*
 * unix_server NAME MODE BACKLOG [hold]: a server on a listening unix stream socket.
 *   NAME: a path, or @name for the abstract namespace. MODE (octal) is given to the socket file.
 *   For every connection it accepts it writes "HELLO <n> <pid>\n" (n counts the connections it served,
 *   since it started) and closes it, and prints "SERVED <n>".
 *   With "hold" it does not accept before SIGUSR1 ("RELEASED" once it got it), so clients wait in the
 *   backlog. Prints "READY <pid>" once it listens.
 */
#include "common.h"
#include <stddef.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

static volatile sig_atomic_t released;
static void on_usr1(int sig) { (void)sig; released = 1; }

int main(int argc, char **argv)
{
    if (argc < 4) { say("usage: unix_server NAME MODE BACKLOG [hold]\n"); return 2; }
    const char *name = argv[1];
    int hold = argc > 4 && strcmp(argv[4], "hold") == 0;
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    socklen_t length;
    if (name[0] == '@') {
        strncpy(a.sun_path + 1, name + 1, sizeof a.sun_path - 2);
        length = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name + 1));
    } else {
        strncpy(a.sun_path, name, sizeof a.sun_path - 1);
        unlink(name);
        length = sizeof a;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1 || bind(fd, (struct sockaddr *)&a, length) == -1) die("bind");
    if (name[0] != '@' && chmod(name, (mode_t)strtol(argv[2], NULL, 8)) == -1) die("chmod");
    if (listen(fd, atoi(argv[3])) == -1) die("listen");
    on_signal(SIGUSR1, on_usr1, SA_RESTART);
    say("READY %d\n", (int)getpid());
    if (hold) {
        while (!released) pause();
        say("RELEASED\n");
    }
    for (int served = 1;; served++) {
        int c = accept(fd, NULL, NULL);
        if (c == -1) { if (errno == EINTR) { served--; continue; } die("accept"); }
        char line[64];
        int n = snprintf(line, sizeof line, "HELLO %d %d\n", served, (int)getpid());
        if (write(c, line, (size_t)n) != n) die("write");
        close(c);
        say("SERVED %d\n", served);
    }
}
