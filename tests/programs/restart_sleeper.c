/*
 * restart_sleeper KIND MS CODE: sleeps MS milliseconds in one kind of sleep, then exits with CODE.
 *
 *   sleep      glibc sleep(MS / 1000) once (it passes one timespec as both request and remainder)
 *   nanosleep  nanosleep(&request, &remaining), again with the remainder after EINTR
 *   clock      clock_nanosleep(CLOCK_MONOTONIC, 0, &request, &remaining), again with the remainder after EINTR
 *   absolute   clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, NULL), again after EINTR
 * Prints "READY <pid>", then "SLEEPING <kind> <ms> <CLOCK_MONOTONIC ms at the start>" right before the sleep
 * and, when it is over, "WOKE <elapsed ms> <EINTR count> <what sleep() returned, or 0> <CLOCK_MONOTONIC ms now>",
 * and exits with CODE.
 */
#include "common.h"

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
    if (argc < 4) { say("usage: restart_sleeper KIND MS CODE\n"); return 2; }
    const char *kind = argv[1];
    long ms = atol(argv[2]);
    int code = atoi(argv[3]);
    say("READY %d\n", (int)getpid());
    long long start = now_ms();
    say("SLEEPING %s %ld %lld\n", kind, ms, start);

    int interrupted = 0;
    unsigned left = 0;
    struct timespec request = { ms / 1000, (ms % 1000) * 1000000L }, remaining = { 0, 0 };
    if (strcmp(kind, "sleep") == 0) {
        left = sleep((unsigned)(ms / 1000));
    } else if (strcmp(kind, "nanosleep") == 0) {
        while (nanosleep(&request, &remaining) == -1 && errno == EINTR) {
            interrupted++;
            request = remaining;
        }
    } else if (strcmp(kind, "clock") == 0) {
        int r;
        while ((r = clock_nanosleep(CLOCK_MONOTONIC, 0, &request, &remaining)) == EINTR) {
            interrupted++;
            request = remaining;
        }
    } else if (strcmp(kind, "absolute") == 0) {
        struct timespec deadline;
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += request.tv_sec;
        deadline.tv_nsec += request.tv_nsec;
        if (deadline.tv_nsec >= 1000000000L) { deadline.tv_sec++; deadline.tv_nsec -= 1000000000L; }
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, NULL) == EINTR) interrupted++;
    } else {
        say("unknown kind %s\n", kind);
        return 2;
    }
    long long end = now_ms();
    say("WOKE %lld %d %u %lld\n", end - start, interrupted, left, end);
    return code;
}
