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

static int add_page(struct working_set *ws, uint64_t page)
{
    uint64_t index = page >> PAGE_SHIFT;
    size_t chunk = (size_t)(index / CHUNK_PAGES);
    if (chunk >= ws->nchunks)
        return 0;
    if (!ws->chunks[chunk] && !(ws->chunks[chunk] = calloc(1, CHUNK_BYTES)))
        return 0;
    uint32_t bit = (uint32_t)(index % CHUNK_PAGES);
    uint8_t *byte = &ws->chunks[chunk][bit / 8];
    if (*byte & (1u << (bit % 8)))
        return 0;
    if (ws->count == ws->cap) {
        size_t cap = ws->cap ? ws->cap * 2 : 1024;
        uint64_t *grown = realloc(ws->pages, cap * sizeof *grown);
        if (!grown)
            return 0;
        ws->pages = grown;
        ws->cap = cap;
    }
    *byte |= (uint8_t)(1u << (bit % 8));
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
