/*
 * kernel_objects FIFO: an event loop on an epoll, with an eventfd, a timerfd and a signalfd.
 *   eventfd: counter 3, EFD_SEMAPHORE (not watched).
 *   timerfd: CLOCK_MONOTONIC, every 20 ms; watched (level-triggered, data 1). Prints "TICK <total>".
 *   signalfd: SIGUSR1 and SIGUSR2 (both blocked); watched (data 2). Prints "SIGNAL <signo> <count>".
 *   lazy timerfd: every 10 ms, never watched and read only when asked: at any moment it has expired
 *   and waits to be read. once timerfd: fires once, 10 ms after the start, read only when asked.
 *   FIFO (opened read-write, non-blocking): watched edge-triggered (data 0xf1f0). For each line:
 *     "EVENT": reads the eventfd, prints "EVENTFD <value>" or "EVENTFD none";
 *     "TIMER": prints "TIMER <interval ns>" from timerfd_gettime;
 *     "LAZY" / "ONCE": reads that timer, prints "LAZY <expirations>" / "ONCE <expirations>" or "... none";
 *     anything else: "LINE <text>".
 * Prints "FDS <epoll> <eventfd> <timerfd> <signalfd> <fifo> <lazy> <once>" and "READY <pid>" once set up.
 */
#include "common.h"
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>

int main(int argc, char **argv)
{
    if (argc < 2) { say("usage: kernel_objects FIFO\n"); return 2; }
    int ev = eventfd(3, EFD_SEMAPHORE | EFD_NONBLOCK);
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGUSR1);
    sigaddset(&mask, SIGUSR2);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) == -1) die("sigprocmask");
    int sfd = signalfd(-1, &mask, SFD_NONBLOCK);
    int fifo = open(argv[1], O_RDWR | O_NONBLOCK);
    int ep = epoll_create1(0);
    int lazy = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    int once = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    if (ev == -1 || tfd == -1 || sfd == -1 || fifo == -1 || ep == -1 || lazy == -1 || once == -1) die("setup");
    struct itimerspec every = { .it_interval = { 0, 20000000 }, .it_value = { 0, 20000000 } };
    if (timerfd_settime(tfd, 0, &every, NULL) == -1) die("timerfd_settime");
    struct itimerspec often = { .it_interval = { 0, 10000000 }, .it_value = { 0, 10000000 } };
    if (timerfd_settime(lazy, 0, &often, NULL) == -1) die("timerfd_settime lazy");
    struct itimerspec single = { .it_value = { 0, 10000000 } };
    if (timerfd_settime(once, 0, &single, NULL) == -1) die("timerfd_settime once");
    struct epoll_event e = { .events = EPOLLIN, .data.u64 = 1 };
    if (epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &e) == -1) die("epoll_ctl timer");
    e.data.u64 = 2;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &e) == -1) die("epoll_ctl signalfd");
    e.events = EPOLLIN | EPOLLET;
    e.data.u64 = 0xf1f0;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fifo, &e) == -1) die("epoll_ctl fifo");
    say("FDS %d %d %d %d %d %d %d\n", ep, ev, tfd, sfd, fifo, lazy, once);
    say("READY %d\n", (int)getpid());

    uint64_t ticks = 0;
    int signals = 0;
    char pending[4096];
    size_t used = 0;
    for (;;) {
        struct epoll_event got[8];
        int n = epoll_wait(ep, got, 8, -1);
        if (n == -1) { if (errno == EINTR) continue; die("epoll_wait"); }
        for (int i = 0; i < n; i++) {
            uint64_t data = got[i].data.u64;
            if (data == 1) {
                uint64_t expired;
                if (read(tfd, &expired, sizeof expired) == sizeof expired) {
                    ticks += expired;
                    say("TICK %llu\n", (unsigned long long)ticks);
                }
            } else if (data == 2) {
                struct signalfd_siginfo si;
                while (read(sfd, &si, sizeof si) == sizeof si) say("SIGNAL %u %d\n", si.ssi_signo, ++signals);
            } else if (data == 0xf1f0) {
                ssize_t r;
                while ((r = read(fifo, pending + used, sizeof pending - used - 1)) > 0) used += (size_t)r;
                char *start = pending, *end;
                while ((end = memchr(start, '\n', used - (size_t)(start - pending))) != NULL) {
                    *end = 0;
                    if (strcmp(start, "EVENT") == 0) {
                        uint64_t value;
                        if (read(ev, &value, sizeof value) == sizeof value) say("EVENTFD %llu\n", (unsigned long long)value);
                        else say("EVENTFD none\n");
                    } else if (strcmp(start, "LAZY") == 0 || strcmp(start, "ONCE") == 0) {
                        uint64_t expired;
                        if (read(start[0] == 'L' ? lazy : once, &expired, sizeof expired) == sizeof expired) say("%s %llu\n", start, (unsigned long long)expired);
                        else say("%s none\n", start);
                    } else if (strcmp(start, "TIMER") == 0) {
                        struct itimerspec now;
                        if (timerfd_gettime(tfd, &now) == -1) die("timerfd_gettime");
                        say("TIMER %lld\n", (long long)now.it_interval.tv_sec * 1000000000LL + now.it_interval.tv_nsec);
                    } else {
                        say("LINE %s\n", start);
                    }
                    start = end + 1;
                }
                used -= (size_t)(start - pending);
                memmove(pending, start, used);
            } else {
                say("BAD data %llx\n", (unsigned long long)data);
            }
        }
    }
}
