/* Sizes every layer shares, and the page test they need. */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define PAGE 4096ull            /* the x86-64 page, host and guest */
#define KIB (1ull << 10)
#define MIB (1ull << 20)
#define GIB (1ull << 30)

/* Whether the page at p (PAGE bytes) reads as zeros. */
static inline bool page_is_zero(const void *p)
{
    const uint64_t *w = p;
    return w[0] == 0 && memcmp(w, w + 1, PAGE - sizeof *w) == 0;
}
