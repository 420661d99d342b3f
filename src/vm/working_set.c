/* Working-set bookkeeping for forks (see working_set.h). */
#include "vm/working_set.h"

#include <stdlib.h>
#include <string.h>

#define PAGE_SHIFT 12
#define CHUNK_PAGES (1u << 15)                  /* 128 MiB of guest memory per chunk */
#define CHUNK_BYTES (CHUNK_PAGES / 8)

int ws_init(struct working_set *ws, uint64_t mem_size)
{
    memset(ws, 0, sizeof *ws);
    ws->nchunks = (size_t)(((mem_size >> PAGE_SHIFT) + CHUNK_PAGES - 1) / CHUNK_PAGES);
    ws->chunks = calloc(ws->nchunks, sizeof *ws->chunks);
    return ws->chunks ? 0 : -1;
}

void ws_free(struct working_set *ws)
{
    for (size_t i = 0; ws->chunks && i < ws->nchunks; i++)
        free(ws->chunks[i]);
    free(ws->chunks);
    free(ws->pages);
    memset(ws, 0, sizeof *ws);
}

/* The membership bit of `page`, or NULL when its chunk is outside memory or absent. */
static uint8_t *bit_of(const struct working_set *ws, uint64_t page, uint8_t *mask)
{
    uint64_t index = page >> PAGE_SHIFT;
    size_t chunk = (size_t)(index / CHUNK_PAGES);
    if (chunk >= ws->nchunks || !ws->chunks[chunk])
        return NULL;
    uint32_t bit = (uint32_t)(index % CHUNK_PAGES);
    *mask = (uint8_t)(1u << (bit % 8));
    return &ws->chunks[chunk][bit / 8];
}

static int add_page(struct working_set *ws, uint64_t page)
{
    size_t chunk = (size_t)((page >> PAGE_SHIFT) / CHUNK_PAGES);
    if (chunk >= ws->nchunks)
        return 0;                   /* not memory: nothing there to restore */
    if (!ws->chunks[chunk] && !(ws->chunks[chunk] = calloc(1, CHUNK_BYTES))) {
        ws->lost = true;
        return 0;
    }
    uint8_t mask;
    uint8_t *byte = bit_of(ws, page, &mask);
    if (*byte & mask)
        return 0;
    if (ws->count == ws->cap) {
        size_t cap = ws->cap ? ws->cap * 2 : 1024;
        uint64_t *grown = realloc(ws->pages, cap * sizeof *grown);
        if (!grown) {
            ws->lost = true;
            return 0;
        }
        ws->pages = grown;
        ws->cap = cap;
    }
    *byte |= mask;
    ws->pages[ws->count++] = page;
    return 1;
}

size_t ws_add_range(struct working_set *ws, uint64_t addr, uint64_t len)
{
    if (!len)
        return 0;
    size_t added = 0;
    uint64_t first = addr >> PAGE_SHIFT, last = (addr + len - 1) >> PAGE_SHIFT;
    if (last < first)
        return 0;
    for (uint64_t p = first; p <= last; p++)
        added += (size_t)add_page(ws, p << PAGE_SHIFT);
    return added;
}

bool ws_contains(const struct working_set *ws, uint64_t page)
{
    uint8_t mask;
    const uint8_t *byte = bit_of(ws, page, &mask);
    return byte && (*byte & mask);
}

void ws_forget(struct working_set *ws, const struct working_set *drop)
{
    if (!drop->count)
        return;
    size_t kept = 0;
    for (size_t i = 0; i < ws->count; i++) {
        uint64_t page = ws->pages[i];
        if (ws_contains(drop, page)) {
            uint8_t mask;
            *bit_of(ws, page, &mask) &= (uint8_t)~mask;
        } else {
            ws->pages[kept++] = page;
        }
    }
    ws->count = kept;
}

void ws_clear(struct working_set *ws)
{
    for (size_t i = 0; i < ws->count; i++) {
        uint8_t mask;
        *bit_of(ws, ws->pages[i], &mask) &= (uint8_t)~mask;
    }
    ws->count = 0;
}
