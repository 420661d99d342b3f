/* The set of guest pages a fork has ever written (found by D bits, or written by the host):
 * what a reset copies back from the frozen image. Pages stay in the set across resets, so
 * the next request finds them already private and takes no fault on them. */
#ifndef KVMS_WORKING_SET_H
#define KVMS_WORKING_SET_H
#include <stddef.h>
#include <stdint.h>

struct working_set {
    uint64_t *pages;          /* guest-physical page addresses, in order of discovery */
    size_t count, cap;
    uint8_t **chunks;         /* membership bitmap, allocated per 128 MiB of guest memory */
    size_t nchunks;
};

int ws_init(struct working_set *ws, uint64_t mem_size);
void ws_free(struct working_set *ws);
/* Adds every page overlapping [addr, addr+len). Returns how many were new. */
size_t ws_add_range(struct working_set *ws, uint64_t addr, uint64_t len);

#endif
