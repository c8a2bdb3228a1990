/* The demo's long-running job: counts, keeps a running checksum of its heap, and appends a line
   to a log file every 100 ms. After a restart it must carry on from the same count and checksum. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 2) { fprintf(stderr, "usage: counter LOGFILE\n"); return 2; }
    FILE *log = fopen(argv[1], "a");
    if (!log) { perror(argv[1]); return 1; }
    setvbuf(log, NULL, _IOLBF, 0);
    size_t words = (16u << 20) / sizeof(uint64_t);
    uint64_t *heap = malloc(words * sizeof *heap), x = 88172645463325252ull;
    for (size_t i = 0; i < words; i++) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; heap[i] = x; }
    for (uint64_t count = 1;; count++) {
        uint64_t sum = 0;
        for (size_t i = 0; i < words; i += 4096) sum += heap[i];
        heap[count % words] += count;
        fprintf(log, "pid %d count %llu checksum %016llx\n", getpid(), (unsigned long long)count, (unsigned long long)sum);
        struct timespec ts = { 0, 100 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
}
