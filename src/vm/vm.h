/* The engine's own view of a VM: struct vm's fields and the functions the engine's files
 * share. Only src/vm includes it; the layers above see vm/engine.h, where struct vm is
 * opaque (tests/layers/check_layers.py). */
#ifndef KVMS_VM_H
#define KVMS_VM_H
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <linux/kvm.h>

#include "vm/engine.h"
#include "vm/layout.h"
#include "vm/paging.h"
#include "vm/transport.h"
#include "vm/working_set.h"

struct platform;
struct syscall_sites;
struct vm_image;

struct vm {
    int vm_fd, vcpu_fd, mem_fd;
    struct kvm_run *run;
    size_t run_size;
    uint8_t *mem;             /* host mapping of guest-physical [0, mem_size) */
    uint64_t mem_size;
    uint64_t user_end;        /* guest addresses below this are for the program */
    bool *slot_registered;    /* per memory slot (memslots.h) */
    uint32_t nslots;
    struct paging pt;
    const struct platform *plat;
    const struct vm_ops *ops;
    void *ops_ctx;
    bool verbose;

    uint64_t deadline_ns;     /* CLOCK_MONOTONIC; 0 = none */
    int crash_signal;         /* VM_CRASHED: SIGSEGV, SIGILL, SIGFPE, SIGBUS, SIGTRAP */
    char crash_report[256];

    uint64_t exits, syscall_exits;   /* counters */
    uint64_t flushes;         /* translation flushes after rights were taken away */
    bool profiling;           /* --profile: time KVM_RUN and the flushes too */
    uint64_t guest_ns, flush_ns;
    const struct vm_snapshot *origin;   /* a fork's frozen image; NULL for a master */
    const struct vm_image *image; /* a master loaded from a snapshot file: its memory */
    struct working_set ws;    /* a fork's pages to restore on reset */
    struct working_set granted;   /* a fork's frames that gained rights since the last reset */
    size_t ws_new;            /* pages that joined ws since the last reset */
    int64_t tsc_offset;       /* guest TSC - host TSC, for the clock page */
    uint64_t mono_lag_ns;     /* host MONOTONIC - guest MONOTONIC (vm_set_mono_lag) */
    struct vm_transport transport;
    struct syscall_sites *sites;   /* rewritten syscall sites; NULL when not rewriting */
    uint64_t fault_frame;     /* inside vm_ops.fault: the ring-0 iret frame; else 0 */
    bool in_interrupt;        /* inside vm_ops.interrupt: the registers are the program's */
    bool user_regs_set;       /* vm_set_user_regs was called in this exit... */
    struct kvm_regs user_regs;   /* ...with these */
    timer_t kick_timer;       /* kicks KVM_RUN on the thread that runs this VM */
    bool kick_armed;
    uint64_t kick_ns;         /* its period: 0 = KICK_INTERVAL_NS (vm_set_kick_interval) */
};

/* The vCPU of a VM whose vm_fd exists; the memory slots; MSR writes. */
int vm_create_vcpu(struct vm *vm);
int vm_alloc_slots(struct vm *vm);
int vm_set_msrs(struct vm *vm, const uint32_t *index, const uint64_t *value, unsigned n);
/* Rebases the VM's clock page on the host clocks now (clock_page_refresh). */
void vm_clock_refresh(struct vm *vm);
/* Closes and unmaps what vm_create, vm_fork or vm_image_load made; vm stays allocated. */
void vm_destroy(struct vm *vm);
/* Lets KVM finish the exit the vCPU stopped at (without running the guest), so that the
 * registers describe where it really resumes. Before a freeze or a reset. */
int vm_complete_exit(struct vm *vm);
/* vm_discard's parts: one page zeroed in place unless it reads as zeros already, and a
 * fork's pages so (fork.c), reading only the ones the host populated: any other reads as
 * its frozen page, zeros in a hole of the image. Looking at an unpopulated page would fault
 * it in: a 252 KiB munmap cost 86 us that way. */
void vm_zero_page(struct vm *vm, uint64_t page);
void vm_fork_zero(struct vm *vm, uint64_t gva, uint64_t len);

#endif
