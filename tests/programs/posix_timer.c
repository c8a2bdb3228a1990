/*
 * posix_timer: a POSIX timer (CLOCK_MONOTONIC, SIGRTMIN with the value 42, every 20 ms) counted by
 * a handler, which checks the value and the timer id each signal carries (bad++ if wrong).
 * The main thread prints "TICK <n> bad=<n>" every 10 expirations; on SIGUSR1 it prints
 * "TIMER <id> interval=<ns> armed=<0|1>" from timer_gettime on its timer id.
 * A first timer is made and deleted before it, so that this one's id is not the first a process gets.
 * Prints "READY <pid> <timer id>" once armed.
 */
#include "common.h"
#include <time.h>

static timer_t timer;
static volatile sig_atomic_t ticks, bad, asked;

static void on_tick(int sig, siginfo_t *info, void *context)
{
    (void)sig; (void)context;
    if (info->si_value.sival_int != 42 || info->si_timerid != (int)(intptr_t)timer) bad++;
    ticks++;
}

static void on_usr1(int sig) { (void)sig; asked++; }

int main(void)
{
    struct sigaction sa = { .sa_sigaction = on_tick, .sa_flags = SA_SIGINFO | SA_RESTART };
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGRTMIN, &sa, NULL) == -1) die("sigaction");
    on_signal(SIGUSR1, on_usr1, SA_RESTART);
    struct sigevent event = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGRTMIN, .sigev_value.sival_int = 42 };
    timer_t first;
    if (timer_create(CLOCK_MONOTONIC, &event, &first) == -1) die("timer_create");
    if (timer_create(CLOCK_MONOTONIC, &event, &timer) == -1) die("timer_create");
    if (timer_delete(first) == -1) die("timer_delete");
    struct itimerspec every = { .it_interval = { 0, 20000000 }, .it_value = { 0, 20000000 } };
    if (timer_settime(timer, 0, &every, NULL) == -1) die("timer_settime");
    say("READY %d %d\n", (int)getpid(), (int)(intptr_t)timer);
    sig_atomic_t printed = 0, seen = 0;
    for (;;) {
        pause();
        if (ticks / 10 != printed / 10) { printed = ticks; say("TICK %d bad=%d\n", (int)ticks, (int)bad); }
        if (asked != seen) {
            seen = asked;
            struct itimerspec now;
            if (timer_gettime(timer, &now) == -1) say("TIMER %d gone %s\n", (int)(intptr_t)timer, strerror(errno));
            else say("TIMER %d interval=%ld armed=%d\n", (int)(intptr_t)timer, now.it_interval.tv_nsec, now.it_value.tv_nsec || now.it_value.tv_sec);
        }
    }
}
