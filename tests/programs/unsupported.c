/*
 * unsupported KIND: holds one descriptor the engine cannot checkpoint yet, at fd 3, then waits.
 *   KIND: userfaultfd, unixdgram (AF_UNIX datagram socket bound to
 *         ./sock in the working directory, a datagram waiting in it), socketpair (AF_UNIX stream socketpair: 3 and 4), fanotify, pidfd (of its parent)
 * Prints "HOLDS <kind> <fd>" then "READY <pid>". SIGUSR1 prints "USR1 <n>" (to show it still works).
 */
#include "common.h"
#include <netinet/in.h>
#include <fcntl.h>
#include <sys/fanotify.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/un.h>

static volatile sig_atomic_t usr1;
static void on_usr1(int sig) { (void)sig; usr1++; }

int main(int argc, char **argv)
{
    const char *kind = argc > 1 ? argv[1] : "inet";
    int fd;
    if (strcmp(kind, "socketpair") == 0) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1) die("socketpair");
        fd = sv[0];
    } else if (strcmp(kind, "userfaultfd") == 0) {
        fd = (int)syscall(SYS_userfaultfd, 0);
        if (fd == -1) die("userfaultfd");
    } else if (strcmp(kind, "unixdgram") == 0) {
        fd = socket(AF_UNIX, SOCK_DGRAM, 0);
        struct sockaddr_un a = { .sun_family = AF_UNIX, .sun_path = "sock" };
        if (fd == -1 || bind(fd, (struct sockaddr *)&a, sizeof a) == -1) die("unix socket");
        /* A datagram waiting in it carries its sender's address, which a restart could not give back. */
        int sender = socket(AF_UNIX, SOCK_DGRAM, 0);
        if (sender == -1 || sendto(sender, "x", 1, 0, (struct sockaddr *)&a, sizeof a) != 1) die("sendto");
        close(sender);
    } else if (strcmp(kind, "fanotify") == 0) {
        fd = fanotify_init(FAN_CLASS_NOTIF, O_RDONLY);
        if (fd == -1) die("fanotify_init");
    } else if (strcmp(kind, "pidfd") == 0) {
        /* Of its parent, the launcher: a process outside the checkpoint (a pidfd of itself is saved). */
        fd = (int)syscall(SYS_pidfd_open, getppid(), 0);
        if (fd == -1) die("pidfd_open");
    } else {
        say("unknown kind %s\n", kind);
        return 2;
    }
    say("HOLDS %s %d\n", kind, fd);
    on_signal(SIGUSR1, on_usr1, SA_RESTART);
    say("READY %d\n", (int)getpid());
    sig_atomic_t seen = 0;
    for (;;) {
        pause();
        if (usr1 != seen) {
            seen = usr1;
            say("USR1 %d\n", (int)seen);
        }
    }
}
