/*
 * clone_files: a parent and a child made with clone(CLONE_FILES), sharing one table of descriptors.
 * Prints "READY <pid> <child pid>", then "TICK n" now and then; the child only sleeps.
 */
#include "common.h"
#include <sched.h>
#include <sys/wait.h>

static char stack[64 * 1024];

static int child_main(void *arg)
{
    (void)arg;
    for (;;) sleep_ms(1000);
}

int main(void)
{
    int child = clone(child_main, stack + sizeof stack, CLONE_FILES | SIGCHLD, NULL);
    if (child == -1) die("clone");
    say("READY %d %d\n", getpid(), child);
    for (long n = 0;; n++) {
        if (n % 50 == 0) say("TICK %ld\n", n);
        sleep_ms(10);
    }
}
