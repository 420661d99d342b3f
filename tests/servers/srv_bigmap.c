/* Test server with a large mapped address space that requests barely touch, as a JIT
 * runtime's reserved heap (Bun maps ~5 GiB): a reset's dirty scan must cost what a request
 * wrote, not what is mapped, and must still find every page written anywhere in it.
 * Before the freeze it maps BIG_SIZE read-write (MAP_NORESERVE) and fills one page per GiB
 * with 'F'. Routes (query: page=N, the page index inside the big mapping):
 *   /bigmap/write?page=N   writes 'W' over page N and answers "wrote"
 *   /bigmap/read?page=N    answers page N's first byte ('F', 'W', or "0" for zero)
 *   /bigmap/spread?count=N increments a byte in each of N pages spread evenly over the
 *                          mapping and answers "wrote N" (the benchmark's request)
 *   /bigmap/fill?count=N   writes 'H' over the first N pages (up to 128 MiB): a heavy
 *                          request, and answers "filled N"
 *   /bigmap/protect?page=N writes page N, makes it read-only and writes it again: crashes
 *   /bigmap/unmap?page=N   writes page N, unmaps it and reads it: crashes */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "http.h"

#define PAGE 4096ull
#define BIG_SIZE (4ull << 30)
#define BIG_PAGES (BIG_SIZE / PAGE)
#define FROZEN_EVERY ((1ull << 30) / PAGE)     /* one page filled per GiB at start */

static char *big;

/* The value of `key`=N in the query, or -1 when absent or past the mapping. */
static long long query_number(const char *query, const char *key, unsigned long long limit)
{
    size_t len = strlen(key);
    for (const char *q = query; q && *q; q = strchr(q, '&') ? strchr(q, '&') + 1 : NULL) {
        if (strncmp(q, key, len) == 0 && q[len] == '=') {
            char *end;
            unsigned long long n = strtoull(q + len + 1, &end, 10);
            return (*end == '\0' || *end == '&') && n < limit ? (long long)n : -1;
        }
    }
    return -1;
}

static int route(const char *path, const char *query, char *body, size_t size)
{
    if (strcmp(path, "/bigmap/write") == 0 || strcmp(path, "/bigmap/read") == 0) {
        long long page = query_number(query, "page", BIG_PAGES);
        if (page < 0) {
            snprintf(body, size, "bad page\n");
            return 400;
        }
        char *at = big + (unsigned long long)page * PAGE;
        if (path[8] == 'w') {
            memset(at, 'W', PAGE);
            snprintf(body, size, "wrote\n");
        } else if (*at) {
            snprintf(body, size, "%c\n", *at);
        } else {
            snprintf(body, size, "0\n");
        }
        return 200;
    }
    if (strcmp(path, "/bigmap/spread") == 0) {
        long long count = query_number(query, "count", 4096);
        if (count <= 0) {
            snprintf(body, size, "bad count\n");
            return 400;
        }
        unsigned long long step = BIG_PAGES / (unsigned long long)count;
        for (long long i = 0; i < count; i++)
            big[(unsigned long long)i * step * PAGE + 64]++;
        snprintf(body, size, "wrote %lld\n", count);
        return 200;
    }
    if (strcmp(path, "/bigmap/protect") == 0 || strcmp(path, "/bigmap/unmap") == 0) {
        long long page = query_number(query, "page", BIG_PAGES);
        if (page < 0) {
            snprintf(body, size, "bad page\n");
            return 400;
        }
        volatile char *at = big + (unsigned long long)page * PAGE;
        *at = 'W';
        if (path[8] == 'p') {
            mprotect((void *)at, PAGE, PROT_READ);
            *at = 'X';
        } else {
            munmap((void *)at, PAGE);
            snprintf(body, size, "%c\n", *at);
        }
        snprintf(body, size, "survived\n");
        return 200;
    }
    if (strcmp(path, "/bigmap/fill") == 0) {
        long long count = query_number(query, "count", (128ull << 20) / PAGE + 1);
        if (count <= 0) {
            snprintf(body, size, "bad count\n");
            return 400;
        }
        memset(big, 'H', (unsigned long long)count * PAGE);
        snprintf(body, size, "filled %lld\n", count);
        return 200;
    }
    return 0;
}

int main(int argc, char **argv)
{
    http_check_usage(argc, argv);
    big = mmap(NULL, BIG_SIZE, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (big == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    for (unsigned long long p = 0; p < BIG_PAGES; p += FROZEN_EVERY)
        memset(big + p * PAGE, 'F', PAGE);
    http_set_app_route(route);
    http_app_init();
    return http_serve_blocking(http_listen(argv[1], false));
}
