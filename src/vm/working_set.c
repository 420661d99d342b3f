/* Working-set bookkeeping for forks (see working_set.h). */
#include "vm/working_set.h"

#include <stdlib.h>
#include <string.h>

#define PAGE_SHIFT 12
#define CHUNK_PAGES (1u << 15)                  /* 128 MiB of guest memory per chunk */

/* A page's byte: whether it is in the set, whether the last ws_age released it, and the
 * log2 of the resets it is kept for (0 until it first joins). */
#define MEMBER    0x80u
#define RELEASED  0x40u
#define KEEP_MASK 0x0fu
#define KEEP_PINNED 0x0fu

static unsigned log2u(unsigned n)
{
    unsigned l = 0;
    while (n >>= 1)
        l++;
    return l;
}

/* The log2 keep time after `keep` that a page earned by being written again. */
static unsigned longer(unsigned keep)
{
    keep += log2u(WS_KEEP_GROWTH);
    return keep > log2u(WS_KEEP_MAX) ? log2u(WS_KEEP_MAX) : keep;
}

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
    free(ws->due);
    free(ws->released);
    memset(ws, 0, sizeof *ws);
}

/* The byte of `page`, or NULL when its chunk is outside memory or absent. */
static uint8_t *byte_of(const struct working_set *ws, uint64_t page)
{
    uint64_t index = page >> PAGE_SHIFT;
    size_t chunk = (size_t)(index / CHUNK_PAGES);
    if (chunk >= ws->nchunks || !ws->chunks[chunk])
        return NULL;
    return &ws->chunks[chunk][index % CHUNK_PAGES];
}

/* The entry arrays with room for one more, or false (and `lost`). */
static bool make_room(struct working_set *ws)
{
    if (ws->count < ws->cap)
        return true;
    size_t cap = ws->cap ? ws->cap * 2 : 1024;
    uint64_t *pages = realloc(ws->pages, cap * sizeof *pages);
    if (pages)
        ws->pages = pages;
    uint32_t *due = pages ? realloc(ws->due, cap * sizeof *due) : NULL;
    if (!due) {
        ws->lost = true;
        return false;
    }
    ws->due = due;
    ws->cap = cap;
    return true;
}

static int add_page(struct working_set *ws, uint64_t page, bool pin)
{
    size_t chunk = (size_t)((page >> PAGE_SHIFT) / CHUNK_PAGES);
    if (chunk >= ws->nchunks)
        return 0;                   /* not memory: nothing there to restore */
    if (!ws->chunks[chunk] && !(ws->chunks[chunk] = calloc(1, CHUNK_PAGES))) {
        ws->lost = true;
        return 0;
    }
    uint8_t *byte = byte_of(ws, page);
    if (*byte & MEMBER) {
        if (pin)
            *byte |= KEEP_PINNED;
        return 0;
    }
    if (!make_room(ws))
        return 0;
    unsigned keep = *byte & KEEP_MASK;
    if (pin)
        keep = KEEP_PINNED;
    else if (!(*byte & RELEASED))
        keep = keep == KEEP_PINNED ? keep : log2u(WS_KEEP_FIRST);
    else                                    /* written again right after its release */
        keep = longer(keep);
    *byte = (uint8_t)((*byte & RELEASED) | MEMBER | keep);
    ws->due[ws->count] = ws->age + (1u << (keep == KEEP_PINNED ? 0 : keep));
    ws->pages[ws->count++] = page;
    return 1;
}

static size_t add_range(struct working_set *ws, uint64_t addr, uint64_t len, bool pin)
{
    if (!len)
        return 0;
    size_t added = 0;
    uint64_t first = addr >> PAGE_SHIFT, last = (addr + len - 1) >> PAGE_SHIFT;
    if (last < first)
        return 0;
    for (uint64_t p = first; p <= last; p++)
        added += (size_t)add_page(ws, p << PAGE_SHIFT, pin);
    return added;
}

size_t ws_add_range(struct working_set *ws, uint64_t addr, uint64_t len)
{
    return add_range(ws, addr, len, false);
}

void ws_pin_range(struct working_set *ws, uint64_t addr, uint64_t len)
{
    add_range(ws, addr, len, true);
}

bool ws_contains(const struct working_set *ws, uint64_t page)
{
    const uint8_t *byte = byte_of(ws, page);
    return byte && (*byte & MEMBER);
}

void ws_forget(struct working_set *ws, const struct working_set *drop)
{
    if (!drop->count)
        return;
    size_t kept = 0;
    for (size_t i = 0; i < ws->count; i++) {
        uint64_t page = ws->pages[i];
        if (ws_contains(drop, page)) {
            *byte_of(ws, page) &= (uint8_t)~MEMBER;
        } else {
            ws->due[kept] = ws->due[i];
            ws->pages[kept++] = page;
        }
    }
    ws->count = kept;
}

/* Is entry i's keep time over at the current age? */
static bool expired(const struct working_set *ws, size_t i)
{
    if ((*byte_of(ws, ws->pages[i]) & KEEP_MASK) == KEEP_PINNED)
        return false;
    return (int32_t)(ws->due[i] - ws->age) <= 0;
}

size_t ws_age(struct working_set *ws, bool (*changed)(void *ctx, uint64_t page), void *ctx)
{
    for (size_t i = 0; i < ws->nreleased; i++)
        *byte_of(ws, ws->released[i]) &= (uint8_t)~RELEASED;
    ws->nreleased = 0;
    ws->age++;
    size_t n = 0;
    for (size_t i = 0; i < ws->count; i++) {
        if (!expired(ws, i))
            continue;
        uint8_t *byte = byte_of(ws, ws->pages[i]);
        if (changed(ctx, ws->pages[i])) {   /* still written: kept longer, not released */
            unsigned keep = longer(*byte & KEEP_MASK);
            *byte = (uint8_t)((*byte & ~KEEP_MASK) | keep);
            ws->due[i] = ws->age + (1u << keep);
        } else {
            n++;
        }
    }
    if (!n)
        return 0;
    if (n > ws->released_cap) {
        uint64_t *grown = realloc(ws->released, n * sizeof *grown);
        if (!grown)
            return 0;            /* kept a while longer: still restored by copy */
        ws->released = grown;
        ws->released_cap = n;
    }
    size_t kept = 0;
    for (size_t i = 0; i < ws->count; i++) {
        uint64_t page = ws->pages[i];
        if (expired(ws, i)) {
            uint8_t *byte = byte_of(ws, page);
            *byte = (uint8_t)((*byte & ~MEMBER) | RELEASED);
            ws->released[ws->nreleased++] = page;
        } else {
            ws->due[kept] = ws->due[i];
            ws->pages[kept++] = page;
        }
    }
    ws->count = kept;
    return n;
}

void ws_clear(struct working_set *ws)
{
    for (size_t i = 0; i < ws->count; i++)
        *byte_of(ws, ws->pages[i]) &= (uint8_t)~MEMBER;
    ws->count = 0;
}
