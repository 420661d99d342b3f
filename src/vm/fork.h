/* Freezing a VM and forking request VMs from it; resetting a fork to the frozen state.
 * The frozen master's memory lives in a memfd that nobody writes again; a fork maps it
 * MAP_PRIVATE, so the host kernel does the copy-on-write. A fork's D bits are cleared before
 * it first runs, so from then on a set D bit marks a page it wrote: its working set, which
 * resets copy back from the master (see facts: "reset by keeping the working set") until
 * it is released (see working_set.h).
 * The upper levels' A bits are cleared with them, so a reset scans only the tables the fork
 * has walked. */
#ifndef KVMS_FORK_H
#define KVMS_FORK_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/kvm.h>

#include "vm/engine.h"
#include "vm/paging.h"

struct vm_snapshot {
    struct vm *master;
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    struct kvm_xcrs xcrs;
    struct kvm_xsave *xsave;
    unsigned xsave_ioctl;         /* KVM_GET_XSAVE or KVM_GET_XSAVE2 */
    uint64_t fs_base, gs_base, kernel_gs_base;
    struct paging pt;             /* page-table pool state at the freeze */
    uint8_t *has_data;            /* bit per page: the frozen memfd holds it (not a hole) */
    struct vm_extent { uint64_t start, end; } *data;    /* the same as ranges, in order */
    size_t ndata;
};

/* Frees what vm_snapshot_take or vm_image_load put in snap (not snap itself). */
void vm_snapshot_free(struct vm_snapshot *snap);
/* The part of vm_snapshot_take that records which pages of the master's memfd hold data
 * (has_data, data): 0, or -1 with errno. */
int vm_snapshot_memory(struct vm_snapshot *snap, const struct vm *master);

/* The memory half of vm_reset: pages, page tables and the translations cached from them. */
int vm_reset_memory(struct vm *child, struct vm_reset_stats *stats);

#endif
