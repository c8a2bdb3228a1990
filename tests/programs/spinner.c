/*
 * spinner: spins in user space, adding 1 to a counter in memory, with no system call at all.
 * Prints "COUNTER <address of the counter>" and "READY <pid>". Whatever instruction it is stopped at,
 * the counter in memory tells how far it got: a process that runs even a microsecond changes it.
 */
#include "common.h"

volatile uint64_t spins;

int main(void)
{
    say("COUNTER %p\n", (void *)&spins);
    say("READY %d\n", (int)getpid());
    for (;;) spins++;
}
