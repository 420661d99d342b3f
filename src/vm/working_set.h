/* The set of guest pages a fork keeps private across resets (found by D bits, or written by
 * the host): what a reset copies back from the frozen image. A kept page spares the next
 * request its fault, but a write to it is no longer seen (its D bit stays set), so it would
 * be copied at every reset forever. So a page is kept for a number of resets; then, if the
 * request just served left it as frozen, it is released (dropped back to the image, its D
 * bit cleared, so a new write is seen again). A page that request changed, or that is
 * written again right after its release, is kept WS_KEEP_GROWTH times as long: the kept set
 * follows what requests write now, and a page written by every request stays kept without
 * the drop and three faults back a release would cost it. */
#ifndef KVMS_WORKING_SET_H
#define KVMS_WORKING_SET_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Resets a page is kept for: first WS_KEEP_FIRST, then WS_KEEP_GROWTH times longer each time
 * it is found changed when its time is over, or written again right after its release, up
 * to WS_KEEP_MAX. */
#define WS_KEEP_FIRST 4u
#define WS_KEEP_GROWTH 8u
#define WS_KEEP_MAX 1024u

struct working_set {
    uint64_t *pages;          /* guest-physical page addresses, in order of discovery */
    uint32_t *due;            /* per entry: the reset (ws_age call) at which it is released */
    size_t count, cap;
    uint8_t **chunks;         /* a byte per page (membership, keep time), allocated per
                               * 128 MiB of guest memory */
    size_t nchunks;
    uint32_t age;             /* ws_age calls so far */
    uint64_t *released;       /* pages the last ws_age released, in order */
    size_t nreleased, released_cap;
    bool lost;                /* a page could not be recorded (out of memory): the set is
                               * incomplete, and only a full reset restores the fork */
};

int ws_init(struct working_set *ws, uint64_t mem_size);
void ws_free(struct working_set *ws);
/* Adds every page overlapping [addr, addr+len). Returns how many were new; a page that
 * cannot be recorded sets `lost`. */
size_t ws_add_range(struct working_set *ws, uint64_t addr, uint64_t len);
/* Adds the pages as ws_add_range does, never to be released (the host rewrites them). */
void ws_pin_range(struct working_set *ws, uint64_t addr, uint64_t len);
bool ws_contains(const struct working_set *ws, uint64_t page);
/* Removes from ws every page that is in `drop`. */
void ws_forget(struct working_set *ws, const struct working_set *drop);
/* Counts one reset and ends the keep time of the pages whose time is over, before they are
 * copied back: a page that `changed` says differs from its frozen contents is kept longer;
 * the others are removed and listed in released[0..nreleased), for the caller to drop back
 * to the image before the vCPU runs again. Where the list cannot grow, pages stay kept
 * (still restored by copy). Returns how many were released. */
size_t ws_age(struct working_set *ws, bool (*changed)(void *ctx, uint64_t page), void *ctx);
/* Empties the set, keeping its memory for the next use. */
void ws_clear(struct working_set *ws);

#endif
