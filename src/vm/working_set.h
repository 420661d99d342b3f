/* The set of guest pages a fork has ever written (found by D bits, or written by the host):
 * what a reset copies back from the frozen image. Pages stay in the set across resets, so
 * the next request finds them already private and takes no fault on them. */
#ifndef KVMS_WORKING_SET_H
#define KVMS_WORKING_SET_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct working_set {
    uint64_t *pages;          /* guest-physical page addresses, in order of discovery */
    size_t count, cap;
    uint8_t **chunks;         /* membership bitmap, allocated per 128 MiB of guest memory */
    size_t nchunks;
    bool lost;                /* a page could not be recorded (out of memory): the set is
                               * incomplete, and only a full reset restores the fork */
};

int ws_init(struct working_set *ws, uint64_t mem_size);
void ws_free(struct working_set *ws);
/* Adds every page overlapping [addr, addr+len). Returns how many were new; a page that
 * cannot be recorded sets `lost`. */
size_t ws_add_range(struct working_set *ws, uint64_t addr, uint64_t len);
bool ws_contains(const struct working_set *ws, uint64_t page);
/* Removes from ws every page that is in `drop`. */
void ws_forget(struct working_set *ws, const struct working_set *drop);
/* Empties the set, keeping its memory for the next use. */
void ws_clear(struct working_set *ws);

#endif
