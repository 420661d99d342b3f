/* The guest's address space bookkeeping: brk and the mmap area. Addresses are handed out
 * deterministically (the same sequence of calls gives the same addresses), which a reset to
 * a frozen image relies on. */
#ifndef KVMS_MM_H
#define KVMS_MM_H
#include <stdint.h>
#include <stddef.h>

#define LX_MM_MAX_RANGES 4096
#define LX_MM_MAX_WIPE 64

struct lx_range { uint64_t start, end; };   /* [start, end) */

struct lx_mm {
    uint64_t brk_start, brk_cur, brk_mapped, brk_limit;
    uint64_t mmap_base, mmap_limit;     /* the mmap area [mmap_base, mmap_limit) */
    uint64_t mmap_top;                  /* never-used space starts here */
    uint64_t charged_bytes;             /* mapped since boot, or since a request VM started
                                         * from the frozen image */
    size_t nwipe;                       /* MADV_WIPEONFORK ranges: sorted, disjoint */
    struct lx_range wipe[LX_MM_MAX_WIPE];
    size_t nfree;                       /* freed ranges below mmap_top, sorted, coalesced */
    struct lx_range free[LX_MM_MAX_RANGES];
};

struct lx_proc;
struct load_info;
/* A freshly loaded program's layout: brk right after the image, then the mmap area up to
 * just below the stack. */
void lx_mm_init(struct lx_mm *mm, const struct load_info *li);
/* Allocates len bytes (page multiple) in the mmap area: lowest fit first, deterministic.
 * Returns the address or 0 when the area is full. */
uint64_t mm_alloc(struct lx_mm *mm, uint64_t len);
/* Returns [addr, addr+len) to the free list. */
void mm_free(struct lx_mm *mm, uint64_t addr, uint64_t len);

/* A fork's address-space bookkeeping: the frozen one's areas and lists (their used part:
 * this runs at every reset); memory it maps from now on is charged afresh. */
void lx_mm_fork(struct lx_mm *dst, const struct lx_mm *src);
/* A new request VM generation: zero the wipe-on-fork ranges, as fork(2) does for the child. */
void lx_mm_wipe_on_fork(struct lx_proc *p);
/* Bookkeeping only (the memory is the VM's): nothing to free. */
static inline void lx_mm_destroy(struct lx_mm *mm) { (void)mm; }

#endif
