/* Allocator churn: many sizes from bytes to megabytes (brk and mmap paths), realloc that grows
 * and shrinks, frees in a scrambled order. Every block carries a pattern derived from its slot
 * and is verified before it changes, so lost or overlapping memory shows up as a mismatch. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SLOTS = 512, ROUNDS = 20000 };

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t next_random(void)  /* xorshift64: deterministic everywhere */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static size_t random_size(void)
{
    uint64_t r = next_random();
    switch (r % 16) {
    case 0: return 1 + (r >> 8) % (1u << 20);   /* up to 1 MiB: mmap threshold crossings */
    case 1: case 2: return 1 + (r >> 8) % 65536;
    default: return 1 + (r >> 8) % 512;
    }
}

struct block {
    unsigned char *data;
    size_t size;
    unsigned char seed;
};

static struct block blocks[SLOTS];

static void fill(struct block *b)
{
    for (size_t i = 0; i < b->size; i++)
        b->data[i] = (unsigned char)(b->seed + i * 7);
}

/* Checks the first n bytes; large blocks are sampled at both ends and in strides. */
static int intact(const struct block *b, size_t n)
{
    size_t step = n > 65536 ? 4093 : 1;
    for (size_t i = 0; i < n; i += step)
        if (b->data[i] != (unsigned char)(b->seed + i * 7))
            return 0;
    return n == 0 || b->data[n - 1] == (unsigned char)(b->seed + (n - 1) * 7);
}

int main(void)
{
    uint64_t checksum = 0;
    int errors = 0;
    for (int round = 0; round < ROUNDS; round++) {
        struct block *b = &blocks[next_random() % SLOTS];
        uint64_t action = next_random() % 4;
        if (b->data && !intact(b, b->size))
            errors++;
        if (!b->data || action == 0) {
            free(b->data);
            b->size = random_size();
            b->seed = (unsigned char)round;
            b->data = action == 0 && (round & 1) ? calloc(1, b->size) : malloc(b->size);
            if (!b->data)
                return 2;
            if (action == 0 && (round & 1))
                for (size_t i = 0; i < b->size; i += 1 + i / 8)
                    if (b->data[i] != 0)
                        errors++;
            fill(b);
        } else if (action == 1) {
            size_t new_size = random_size();
            unsigned char *p = realloc(b->data, new_size);
            if (!p)
                return 2;
            b->data = p;
            size_t kept = new_size < b->size ? new_size : b->size;
            if (!intact(b, kept))
                errors++;
            b->size = new_size;
            fill(b);
        } else {
            for (size_t i = 0; i < b->size; i += 64)
                checksum = checksum * 31 + b->data[i];
        }
    }
    for (int i = 0; i < SLOTS; i++) {
        if (blocks[i].data && !intact(&blocks[i], blocks[i].size))
            errors++;
        free(blocks[i].data);
    }

    /* Aligned allocations. */
    for (size_t align = 16; align <= (1u << 20); align <<= 2) {
        void *p = aligned_alloc(align, align * 3);
        if (!p || (uintptr_t)p % align != 0)
            errors++;
        free(p);
    }
    printf("checksum=%016llx\n", (unsigned long long)checksum);
    printf("errors=%d\n", errors);
    puts(errors ? "malloc churn: FAIL" : "malloc churn: ok");
    return errors ? 1 : 0;
}
