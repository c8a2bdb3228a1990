/* The memory hash both benchmark targets use to prove a restart gave their memory back intact:
   four independent multiply-xor lanes, position dependent (a swapped or zeroed page changes it) and fast. */
#ifndef MEMHASH_H
#define MEMHASH_H
#include <stddef.h>
#include <stdint.h>

static inline uint64_t hash_words(const void *memory, size_t bytes)
{
    const uint64_t *w = (const uint64_t *)memory;
    size_t n = bytes / sizeof(uint64_t);
    uint64_t h0 = 1, h1 = 2, h2 = 3, h3 = 4;
    const uint64_t k = 0x100000001B3ULL;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        h0 = (h0 ^ w[i]) * k;
        h1 = (h1 ^ w[i + 1]) * k;
        h2 = (h2 ^ w[i + 2]) * k;
        h3 = (h3 ^ w[i + 3]) * k;
    }
    for (; i < n; i++) h0 = (h0 ^ w[i]) * k;
    uint64_t h = h0;
    h = (h ^ h1) * k;
    h = (h ^ h2) * k;
    h = (h ^ h3) * k;
    return h ^ (uint64_t)n;
}
#endif
