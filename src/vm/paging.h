/* 4-level x86-64 page tables built by the host inside guest memory, in a pool the guest
 * never maps (the CPU walks them by physical address), so no guest code can edit them.
 * Entries only ever go from not-present to present or gain rights while a vCPU runs:
 * under shadow paging the host's other edits are not seen until the mappings are flushed. */
#ifndef KVMS_PAGING_H
#define KVMS_PAGING_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PTE_P   (1ull << 0)
#define PTE_W   (1ull << 1)
#define PTE_U   (1ull << 2)
#define PTE_A   (1ull << 5)
#define PTE_D   (1ull << 6)
#define PTE_PS  (1ull << 7)
#define PTE_NX  (1ull << 63)
#define PTE_PKEY(key)  ((uint64_t)(key) << 59)   /* protection key (CR4.PKE) */
#define PTE_PKEY_MASK  PTE_PKEY(0xf)
#define PTE_ADDR_MASK 0x000ffffffffff000ull

struct working_set;

struct paging {
    uint8_t *mem;            /* host view of guest-physical memory */
    uint64_t mem_size;
    uint64_t root;           /* guest-physical address of the PML4 (CR3) */
    uint64_t pool_next, pool_end;   /* bump allocator for table pages */
    struct working_set *track;      /* a fork's: table pages the host edits join it */
    struct working_set *granted;    /* a fork's: frames whose leaves gained a right (a reset
                                     * takes it back, so their translations must go) */
    uint64_t revoked;               /* count of edits that took rights away from a present
                                     * entry: those need a flush to be seen */
};

/* The pool [pool_start, pool_end) must lie inside memory and be page aligned. */
int pt_init(struct paging *pt, uint8_t *mem, uint64_t mem_size,
            uint64_t pool_start, uint64_t pool_end);
/* Maps [va, va+len) to [pa, pa+len) in 4 KiB pages with flags (PTE_W|PTE_U|PTE_NX|PTE_PKEY);
 * PTE_P and PTE_A are added. Returns 0, -EINVAL (unaligned, non-canonical) or -ENOMEM
 * (pool exhausted). */
int pt_map(struct paging *pt, uint64_t va, uint64_t pa, uint64_t len, uint64_t flags);
/* Maps one page at va to a guest-physical address outside memory (no memslot behind it):
 * accesses there exit to the host as MMIO. */
int pt_map_mmio(struct paging *pt, uint64_t va, uint64_t pa, uint64_t flags);
/* Changes the flags of present pages in range; absent pages stay absent. */
int pt_protect(struct paging *pt, uint64_t va, uint64_t len, uint64_t flags);
/* The leaf entry for va (4 KiB granularity), or 0 if not present. Every table address read
 * on the way is bounds-checked. */
uint64_t pt_lookup(const struct paging *pt, uint64_t va);

/* Calls fn for every present user leaf below `end`, in address order, with its size and
 * effective rights (write: W at every level; exec: NX at none, as the CPU combines them).
 * Reads only; every table address is bounds-checked. */
typedef void (*pt_leaf_fn)(void *ctx, uint64_t va, uint64_t size, bool write, bool exec);
void pt_for_each_user_leaf(const struct paging *pt, uint64_t end, pt_leaf_fn fn, void *ctx);

/* Clears the D bit of the leaf that maps `frame` at the same address (every user and
 * system mapping is identity-mapped), if there is one. Only valid when the frame's cached
 * translations are dropped before a vCPU runs again: then its next write sets D again. */
void pt_clean(struct paging *pt, uint64_t frame);

/* How many 4 KiB pages of [va, va+len) have leaves with all `flags` bits set. Absent
 * upper-level tables are skipped whole, so the work follows what is mapped, not len. */
uint64_t pt_count(const struct paging *pt, uint64_t va, uint64_t len, uint64_t flags);
/* Calls fn(ctx, frame) for every present leaf whose D bit is set, descending only into
 * upper-level entries whose A bit is set: the CPU sets A in every entry it walks, so the
 * work follows the tables used since the clear, not the address space. With `clear`, clears
 * the leaves' D bits and the upper levels' A bits instead of reporting (only valid before a
 * vCPU has run on these tables: under shadow paging a cleared bit on a live mapping is never
 * set again; later, only pt_clean and pt_prune_clean clear them, under their conditions).
 * Returns the number of leaves visited. */
size_t pt_scan_dirty(struct paging *pt, bool clear, void (*fn)(void *ctx, uint64_t frame),
                     void *ctx);
/* Clears every present leaf's D bit and leaves the upper levels' A bits as they are: for
 * the frozen master's tables (which no vCPU runs on again), whose copies a reset puts back
 * into a fork: a page the fork has not written must not read as dirty there. */
void pt_clear_dirty(struct paging *pt);
/* Clears the A bit of every upper-level entry whose subtree holds no leaf with D set, so
 * the next pt_scan_dirty skips it. Only valid where each write to a page without a writable
 * cached translation walks the tables in software, setting A again on the way (shadow
 * paging: KVM's walker), and where every page with a writable cached translation but a
 * clear D bit is restored by other means (kept in the working set). Returns the number of
 * leaves visited. */
size_t pt_prune_clean(struct paging *pt);

/* A tree read from a snapshot file: every table lies in the pool [pool_start, pool_next)
 * and is reached once, every leaf maps a frame below pool_start (or the MMIO page at
 * mem_size), no huge pages. */
bool pt_valid(const struct paging *pt, uint64_t pool_start);

#endif
