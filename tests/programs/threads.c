/* threads: a second thread, both waiting; prints "READY <pid>" once both run. Must be refused. */
#include "common.h"
#include <pthread.h>

static volatile int started;
static void *second(void *arg)
{
    (void)arg;
    started = 1;
    for (;;) pause();
    return NULL;
}

int main(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, second, NULL) != 0) die("pthread_create");
    while (!started) sleep_ms(1);
    say("READY %d\n", (int)getpid());
    for (;;) pause();
}
