/*
 * restart_io KIND FIFO: blocks in one system call until data arrives on FIFO (opened O_RDWR, so neither
 * the open nor the read ever sees end-of-file), or until a signal comes for "pause", then reports and exits 0.
 *
 *   read    read(fifo)
 *   poll    poll(fifo, POLLIN, no timeout), then read
 *   select  select(fifo readable, no timeout), then read
 *   pause   pause(); SIGUSR1 has a handler without SA_RESTART
 * Prints "READY <pid>" and "WAITING <kind>" before the call, then "GOT <kind> <return value> <errno> <data>"
 * (data: what was read, up to the first newline, or "-") and "USR1 <n>" if SIGUSR1 came.
 *
 *   write   the other way round: opens FIFO O_WRONLY (so it waits for a reader), prints "READY <pid>", then
 *           writes "LINE <n>\n" into it every 5 ms for ever, and prints "TICK <n>" every 20 lines
 */
#include "common.h"
#include <fcntl.h>
#include <poll.h>
#include <sys/select.h>

static volatile sig_atomic_t usr1;
static void on_usr1(int sig) { (void)sig; usr1++; }

int main(int argc, char **argv)
{
    if (argc < 3) { say("usage: restart_io KIND FIFO\n"); return 2; }
    const char *kind = argv[1];
    if (strcmp(kind, "write") == 0) {
        int out = open(argv[2], O_WRONLY);
        if (out == -1) die("open fifo for writing");
        say("READY %d\n", (int)getpid());
        char line[64];
        for (unsigned long long n = 1;; n++) {
            int len = snprintf(line, sizeof line, "LINE %llu\n", n);
            if (write(out, line, (size_t)len) != len) die("write fifo");
            if (n % 20 == 0) say("TICK %llu\n", n);
            sleep_ms(5);
        }
    }
    int fd = open(argv[2], O_RDWR);
    if (fd == -1) die("open fifo");
    on_signal(SIGUSR1, on_usr1, 0);
    say("READY %d\n", (int)getpid());
    say("WAITING %s\n", kind);

    char data[256] = "-";
    long r;
    int err = 0;
    if (strcmp(kind, "read") == 0) {
        r = read(fd, data, sizeof data - 1);
    } else if (strcmp(kind, "poll") == 0) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        r = poll(&p, 1, -1);
        if (r == 1 && (p.revents & POLLIN)) r = 100 + read(fd, data, sizeof data - 1);
    } else if (strcmp(kind, "select") == 0) {
        fd_set set;
        FD_ZERO(&set);
        FD_SET(fd, &set);
        r = select(fd + 1, &set, NULL, NULL, NULL);
        if (r == 1 && FD_ISSET(fd, &set)) r = 100 + read(fd, data, sizeof data - 1);
    } else if (strcmp(kind, "pause") == 0) {
        r = pause();
    } else {
        say("unknown kind %s\n", kind);
        return 2;
    }
    if (r < 0) err = errno;
    if (r > 0 && strcmp(data, "-") != 0) {
        data[sizeof data - 1] = 0;
        char *nl = strchr(data, '\n');
        if (nl) *nl = 0;
    }
    say("GOT %s %ld %d %s\n", kind, r, err, data);
    if (usr1) say("USR1 %d\n", (int)usr1);
    return 0;
}
