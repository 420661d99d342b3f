/* The VM engine's interface: one guest address space and one vCPU that runs an unmodified
 * x86-64 Linux program. The engine knows KVM, memory and faults, not Linux: every guest
 * system call is handed to the handler registered in vm_ops. */
#ifndef KVMS_VM_H
#define KVMS_VM_H
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <linux/kvm.h>

#include "vm/layout.h"
#include "vm/paging.h"
#include "vm/transport.h"
#include "vm/working_set.h"

struct platform;
struct syscall_sites;
struct vm_snapshot;
struct vm_image;

struct vm_syscall {
    uint64_t nr;
    uint64_t arg[6];
};

/* A fault of the program that the engine did not resolve itself (vm_ops.fault). */
struct vm_fault {
    unsigned vector;          /* x86 exception vector */
    uint64_t error;           /* its error code; 0 for vectors without one */
    uint64_t addr;            /* CR2 for a page fault, else 0 */
    int signal;               /* what Linux raises for it: SIGSEGV, SIGBUS, SIGFPE, ... */
    struct kvm_regs regs;     /* the program's registers at the fault (its RIP, RSP, RFLAGS) */
};

struct vm;
struct vm_ops {
    /* Runs one guest system call and returns RAX. Setting *stop ends vm_run(). */
    long (*syscall)(void *ctx, struct vm *vm, const struct vm_syscall *call, bool *stop);
    /* Shared transport: may this call run on a poller thread now, off the vCPU thread?
     * Only if it cannot block and touches no vCPU state. */
    bool (*can_serve_shared)(void *ctx, struct vm *vm, const struct vm_syscall *call);
    /* On a poller thread, after it ran `call`: must the guest still come back by an exit
     * (for after_syscall, with the poller's result)? NULL: never. */
    bool (*exit_after_shared)(void *ctx, struct vm *vm, const struct vm_syscall *call,
                              long ret);
    /* On the vCPU thread, after a call that came by an exit (ret: its result): may deliver
     * a signal (vm_set_user_regs). Returns RAX. NULL: nothing to do. */
    long (*after_syscall)(void *ctx, struct vm *vm, const struct vm_syscall *call, long ret,
                          bool *stop);
    /* A fault of the program: true if it resumes (the callback set its registers with
     * vm_set_user_regs, e.g. in a signal handler); false makes it the program's crash. */
    bool (*fault)(void *ctx, struct vm *vm, const struct vm_fault *f);
    /* The kick timer stopped the guest while it ran its own code: it may be interrupted
     * here (vm_get_user_regs/vm_set_user_regs), e.g. by a timer's signal. NULL: never. */
    void (*interrupt)(void *ctx, struct vm *vm);
    /* Is an interrupt due? Checked at every kick, so cheap. */
    bool (*interrupt_due)(void *ctx, struct vm *vm);
};

enum vm_run_result {
    VM_STOPPED,       /* the syscall handler asked to stop (e.g. exit_group) */
    VM_CRASHED,       /* guest fault: crash_signal and crash_report say what happened */
    VM_TIMED_OUT,     /* the deadline passed */
    VM_HOST_ERROR,    /* KVM failed: crash_report says why */
};

struct vm_params {
    uint64_t mem_size;        /* bytes of guest address space (identity-mapped) */
    bool rewrite_syscalls;    /* rewrite syscall sites where a trap is dear (syscall_sites.h) */
    bool verbose;
};

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
    struct vm_transport transport;
    struct syscall_sites *sites;   /* rewritten syscall sites; NULL when not rewriting */
    uint64_t fault_frame;     /* inside vm_ops.fault: the ring-0 iret frame; else 0 */
    bool in_interrupt;        /* inside vm_ops.interrupt: the registers are the program's */
    bool user_regs_set;       /* vm_set_user_regs was called in this exit... */
    struct kvm_regs user_regs;   /* ...with these */
    timer_t kick_timer;       /* kicks KVM_RUN on the thread that runs this VM */
    bool kick_armed;
};

/* Engine-internal: the vCPU of a VM whose vm_fd exists; MSR writes. */
int vm_create_vcpu(struct vm *vm);
int vm_alloc_slots(struct vm *vm);
int vm_set_msrs(struct vm *vm, const uint32_t *index, const uint64_t *value, unsigned n);

/* Opens /dev/kvm and creates the VM with its system area; prints an actionable message and
 * returns -1 on failure. */
int vm_create(struct vm *vm, const struct vm_params *params);
void vm_destroy(struct vm *vm);

/* Maps [gva, gva+len) (page aligned) to the same guest-physical pages with PROT_* rights,
 * for the program's own memory. */
int vm_map(struct vm *vm, uint64_t gva, uint64_t len, int prot);
int vm_protect(struct vm *vm, uint64_t gva, uint64_t len, int prot);
/* Unmaps [gva, gva+len) and discards its content; a later access faults, as on Linux
 * (cached translations of the range's memory slots are flushed: ~0.15 ms here). */
int vm_unmap(struct vm *vm, uint64_t gva, uint64_t len);
/* Discards the content of [gva, gva+len): the next read sees zeros. */
int vm_discard(struct vm *vm, uint64_t gva, uint64_t len);
/* How many pages of [gva, gva+len) the program has mapped (with any rights). */
uint64_t vm_mapped_pages(const struct vm *vm, uint64_t gva, uint64_t len);
/* The PROT_* rights the program has on the page at gva; PROT_NONE when it is not mapped. */
int vm_prot_at(const struct vm *vm, uint64_t gva);
/* Calls fn for every page (or large page) the program has mapped, in address order, with
 * its rights (/proc/self/maps; memory use). */
void vm_for_each_mapping(const struct vm *vm, pt_leaf_fn fn, void *ctx);
/* A host pointer to [gva, gva+len) for the host's own writes into program memory (file
 * contents, moved mappings), whatever the page rights; NULL outside the program's range.
 * In a fork the pages join the working set. */
uint8_t *vm_host_span(struct vm *vm, uint64_t gva, uint64_t len);

/* A Linux clock (CLOCK_REALTIME, MONOTONIC, BOOTTIME and their variants) as the guest's vDSO
 * reads it now, in ns: system calls answer from the same page, so the two never disagree.
 * Returns -1 for clocks the page does not carry, or when the TSC cannot be a clock here. */
int vm_guest_clock_ns(struct vm *vm, int linux_clock_id, uint64_t *ns);

/* Publishes the answers of the calls the entry stub answers inside the guest (layout.h,
 * STUB_ANSWER_ADDR). A reset puts back the frozen ones: publish again after it. */
void vm_set_stub_answers(struct vm *vm, const uint64_t answer[STUB_ANSWERS]);

/* Registers for the start of the program (ring-3 entry at rip with stack rsp). */
void vm_set_entry(struct vm *vm, uint64_t rip, uint64_t rsp);
int vm_set_fsbase(struct vm *vm, uint64_t base);
uint64_t vm_get_fsbase(struct vm *vm);

/* The vCPU state one guest thread owns, for cooperative threads that take turns on the
 * single vCPU: general registers as they are at a syscall exit, FS base, FPU/SSE/AVX. The
 * rest (segments, control registers, GS) is the same for every thread of a program. */
struct vm_thread_cpu {
    struct kvm_regs regs;
    uint64_t fs_base;
    struct kvm_xsave xsave;
};
/* Copies the running state out (call it inside a syscall exit)... */
int vm_thread_save(struct vm *vm, struct vm_thread_cpu *t);
/* ...and puts a saved state on the vCPU: the guest resumes as that thread. 0 or -1. */
int vm_thread_load(struct vm *vm, const struct vm_thread_cpu *t);

/* The registers the program resumes with after this exit: at a system-call exit
 * (result_rax: the call's result) RIP and RFLAGS are where the call returns to; in
 * vm_ops.fault they are the fault's. */
void vm_get_user_regs(struct vm *vm, long result_rax, struct kvm_regs *out);
/* Makes the program resume with exactly these registers (RIP, RSP, RFLAGS and RCX/R11,
 * which a syscall return would otherwise take), from a syscall exit or in vm_ops.fault.
 * RFLAGS keeps only what user code may set. 0, or -1 for a non-canonical RIP. */
int vm_set_user_regs(struct vm *vm, const struct kvm_regs *regs);

/* Is this thread the shared transport's poller? The calls it runs were ready: they must
 * not wait nor switch guest threads. */
bool vm_on_poller_thread(void);

/* At a system-call exit: the result the program resumes with (RAX). */
void vm_set_syscall_result(struct vm *vm, uint64_t value);
#define SYSCALL_INSN_LEN 2      /* `syscall` is 0f 05: rewinding RCX by this redoes it */

/* The FPU/SSE/AVX state alone (XSAVE image, standard format), for signal frames. 0 or -1. */
int vm_fpu_save(struct vm *vm, struct kvm_xsave *xsave);
int vm_fpu_load(struct vm *vm, const struct kvm_xsave *xsave);

/* Runs the vCPU until the handler stops it, the guest crashes or the deadline passes. */
enum vm_run_result vm_run(struct vm *vm);
/* Lets KVM finish the exit the vCPU stopped at (without running the guest), so that the
 * registers describe where it really resumes. Before a freeze or a reset. */
int vm_complete_exit(struct vm *vm);
/* Stops the kick timer of the calling thread's VM (before the thread moves on). */
void vm_disarm(struct vm *vm);

#endif
