/*
 * files FILE DIR: holds descriptors of every supported kind, then blocks reading an empty pipe.
 *
 *   3  FILE, O_RDWR, at offset 12345
 *   4  FILE, O_WRONLY|O_APPEND, close-on-exec
 *   5  DIR/unlinked.tmp: written ("unlinked content" x 100), unlinked, at offset 7
 *   6  /dev/null, O_WRONLY
 *   7  read end of a pipe holding 3 bytes, 8 its write end (O_NONBLOCK)
 *   9  DIR, O_RDONLY|O_DIRECTORY
 *   10 read end of an empty pipe (the program blocks reading it), 11 its write end
 *   20 dup of 3 (same open file description, same offset)
 * Prints "FD <fd> <offset or -1> <F_GETFL in octal> <FD_CLOEXEC 0/1>" for each, then "READY <pid>".
 * SIGUSR1 (no SA_RESTART) interrupts the read: it prints "WOKE <n> <offset of 3>" and reads again.
 */
#include "common.h"
#include <fcntl.h>

static volatile sig_atomic_t usr1;
static void on_usr1(int sig) { (void)sig; usr1++; }

static void place(int fd, int want)
{
    if (fd == want) return;
    if (dup3(fd, want, fcntl(fd, F_GETFD) & FD_CLOEXEC ? O_CLOEXEC : 0) == -1) die("dup3");
    close(fd);
}

int main(int argc, char **argv)
{
    if (argc < 3) { say("usage: files FILE DIR\n"); return 2; }
    char unlinked[4096];
    snprintf(unlinked, sizeof unlinked, "%s/unlinked.tmp", argv[2]);

    place(open(argv[1], O_RDWR), 30);
    place(open(argv[1], O_WRONLY | O_APPEND | O_CLOEXEC), 31);
    int u = open(unlinked, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (u == -1) die("open unlinked");
    for (int i = 0; i < 100; i++)
        if (write(u, "unlinked content", 16) != 16) die("write unlinked");
    if (unlink(unlinked) == -1) die("unlink");
    place(u, 32);
    place(open("/dev/null", O_WRONLY), 33);
    int full[2], empty[2];
    if (pipe(full) == -1 || pipe(empty) == -1) die("pipe");
    if (write(full[1], "abc", 3) != 3) die("write pipe");
    fcntl(full[1], F_SETFL, O_NONBLOCK);
    place(full[0], 34);
    place(full[1], 35);
    place(open(argv[2], O_RDONLY | O_DIRECTORY), 36);
    place(empty[0], 37);
    place(empty[1], 38);
    /* Now move them to their final numbers (all of 3..11 are free again). */
    place(30, 3); place(31, 4); place(32, 5); place(33, 6); place(34, 7); place(35, 8); place(36, 9);
    place(37, 10); place(38, 11);
    if (lseek(3, 12345, SEEK_SET) != 12345) die("lseek 3");
    if (lseek(5, 7, SEEK_SET) != 7) die("lseek 5");
    if (dup2(3, 20) == -1) die("dup2");

    static const int fds[] = { 3, 4, 5, 6, 7, 8, 9, 10, 11, 20 };
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++) {
        int fd = fds[i];
        long long pos = lseek(fd, 0, SEEK_CUR);
        say("FD %d %lld %o %d\n", fd, pos, fcntl(fd, F_GETFL), (fcntl(fd, F_GETFD) & FD_CLOEXEC) ? 1 : 0);
    }
    on_signal(SIGUSR1, on_usr1, 0);
    say("READY %d\n", (int)getpid());

    char c;
    for (;;) {
        ssize_t r = read(10, &c, 1);
        if (r == -1 && errno == EINTR) {
            say("WOKE %d %lld\n", (int)usr1, (long long)lseek(3, 0, SEEK_CUR));
            continue;
        }
        say("READ %zd\n", r);
        sleep_ms(10);
    }
}
