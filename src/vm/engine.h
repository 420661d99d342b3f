/* The engine's API: everything the layers above (linux/, server/) may call. The engine
 * runs one unmodified x86-64 program in a KVM VM (one address space, one vCPU) and knows KVM,
 * memory and faults, not Linux: every guest system call is handed to the handler registered
 * with vm_set_ops. `struct vm` is opaque here; its fields are the engine's own (vm/vm.h).
 * Guest memory is reached through vm/guest_mem.h (checked, as the program could) or
 * vm_host_span/vm_host_copy (the host's own writes, recorded for the reset).
 * Cost: every accessor is an out-of-line call (a few ns); the cheapest path one sits on, a
 * system call served by the shared transport, takes microseconds. */
#ifndef KVMS_ENGINE_H
#define KVMS_ENGINE_H
#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/kvm.h>

#include "vm/layout.h"

struct poller;
struct vm;
struct vm_snapshot;

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
    VM_CRASHED,       /* guest fault: vm_crash_signal and vm_crash_report say what */
    VM_TIMED_OUT,     /* the deadline passed */
    VM_HOST_ERROR,    /* KVM failed: vm_crash_report says why */
};

struct vm_params {
    uint64_t mem_size;        /* bytes of guest address space (identity-mapped) */
    bool rewrite_syscalls;    /* rewrite syscall sites where a trap is dear (syscall_sites.h) */
    bool verbose;
};

/* --- Creating and destroying ---------------------------------------------------------- */

/* An empty VM for vm_create, vm_fork or vm_image_load to make a VM in; NULL without memory. */
struct vm *vm_new(void);
/* Opens /dev/kvm and creates the VM with its system area; prints an actionable message and
 * returns -1 on failure. */
int vm_create(struct vm *vm, const struct vm_params *params);
/* Destroys what vm_create, vm_fork or vm_image_load made in vm, and frees it. NULL: nothing. */
void vm_delete(struct vm *vm);
/* The handler of the guest's system calls and faults (ctx is passed to each of them). */
void vm_set_ops(struct vm *vm, const struct vm_ops *ops, void *ctx);
/* --profile: time KVM_RUN and the translation flushes too (vm_get_stats). */
void vm_set_profiling(struct vm *vm, bool on);

/* --- Loading a program ---------------------------------------------------------------- */

/* Loading an ELF program into a fresh VM: its PT_LOAD segments at their addresses (or at a
 * load bias for PIE), and an empty stack region. A dynamically linked program (PT_INTERP)
 * is loaded as Linux's execve does it: the program and its interpreter (ld.so) both
 * mapped, and the entry point the interpreter's; ld.so maps the shared libraries itself
 * through the guest's system calls. What goes on the stack (for Linux: argc, argv, envp,
 * the auxiliary vector) is the personality's: it writes it below stack_top
 * (vm_host_span) and starts the program with vm_set_entry. */
struct load_info {
    uint64_t entry;        /* where the guest starts: the interpreter's entry if it has one */
    uint64_t image_end;    /* page-aligned end of the highest loaded image: where brk starts */
    uint64_t stack_low;    /* lowest address of the stack region... */
    uint64_t stack_top;    /* ...and where the initial stack starts, downward (16-aligned) */
    uint64_t program_base; /* where the program's lowest segment is */
    uint64_t interp_base;  /* where the interpreter's lowest segment is; 0 without one */
    /* The images as the program's start-up code is told of them: */
    uint64_t program_entry;            /* the program's own entry point (not ld.so's) */
    uint64_t phdr, phnum, phent;       /* the program's headers in memory; phdr 0: none */
    uint64_t interp_bias;              /* the interpreter's load bias; 0 without one */
};

#define LOADER_STACK_SIZE (8ull << 20)

/* Loads `path`. `dylink_base` is where a position-independent image goes: a static-PIE
 * program, or the interpreter of a dynamic one (a dynamic PIE program then goes just above
 * its interpreter). Prints "kvmserver: PATH: reason" and returns -1 on failure. */
int load_program(struct vm *vm, const char *path, uint64_t dylink_base, struct load_info *out);

/* --- Memory, registers, running ------------------------------------------------------- */

/* Guest addresses below this are for the program; the VM's guest-physical size. */
uint64_t vm_user_end(const struct vm *vm);
uint64_t vm_mem_size(const struct vm *vm);
/* The host's own copy of program memory [from, from+len) to [to, to+len), whatever the page
 * rights (mremap moving a mapping); the ranges do not overlap. 0, or -1 outside the
 * program's range. In a fork the destination pages join the working set. */
int vm_host_copy(struct vm *vm, uint64_t to, uint64_t from, uint64_t len);

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
typedef void (*vm_mapping_fn)(void *ctx, uint64_t va, uint64_t size, bool write, bool exec);
void vm_for_each_mapping(const struct vm *vm, vm_mapping_fn fn, void *ctx);
/* A host pointer to [gva, gva+len) for the host's own writes into program memory (file
 * contents, moved mappings), whatever the page rights; NULL outside the program's range.
 * In a fork the pages join the working set. */
uint8_t *vm_host_span(struct vm *vm, uint64_t gva, uint64_t len);

/* A Linux clock (CLOCK_REALTIME, MONOTONIC, BOOTTIME and their variants) as the guest's vDSO
 * reads it now, in ns: system calls answer from the same page, so the two never disagree
 * (without a TSC clock, from the host's clocks with the same lag). Returns -1 for clocks the
 * page does not carry. */
int vm_guest_clock_ns(struct vm *vm, int linux_clock_id, uint64_t *ns);
/* From now on the guest's CLOCK_MONOTONIC (and _RAW, _COARSE) runs lag_ns behind the host's;
 * REALTIME and BOOTTIME stay the host's, as over a suspend. It steps the guest's clock, so
 * set it only while the guest has not read the clock since the time it skips (a fork before
 * it runs). Forks and resets keep the VM's lag; a fork starts at 0. */
void vm_set_mono_lag(struct vm *vm, uint64_t lag_ns);
uint64_t vm_mono_lag(const struct vm *vm);

/* A system call the entry stub answers inside the guest, without an exit: the call with
 * this number returns `value`. */
struct vm_stub_answer {
    uint64_t nr;        /* its low 32 bits are compared with EAX */
    uint64_t value;
};
/* Publishes them (layout.h, STUB_ANSWER_ADDR). Until then a VM answers none; a reset puts
 * back the frozen ones: publish again after it. */
void vm_set_stub_answers(struct vm *vm, const struct vm_stub_answer answer[STUB_ANSWERS]);

/* Registers for the start of the program (ring-3 entry at rip with stack rsp). */
void vm_set_entry(struct vm *vm, uint64_t rip, uint64_t rsp);
int vm_set_fsbase(struct vm *vm, uint64_t base);
uint64_t vm_get_fsbase(struct vm *vm);

/* The vCPU state one guest thread owns, for guest threads that take turns on the
 * single vCPU: general registers as they are at a syscall exit (or, for a thread whose time
 * slice ended, as the program had them), FS base, FPU/SSE/AVX. The
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
/* Registers saved at a system call's exit (vm_thread_save) made the ones the program gets
 * back when that call returns result_rax: for a thread put on the vCPU outside an exit. */
void vm_syscall_return_regs(struct kvm_regs *regs, long result_rax);
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
/* Stops the kick timer of the calling thread's VM (before the thread moves on). */
void vm_disarm(struct vm *vm);
/* The kick timer's period from now on (0: the default, 50 ms): shorter while the layer
 * above may want to interrupt the guest sooner (vm_ops.interrupt). */
void vm_set_kick_interval(struct vm *vm, uint64_t ns);

/* In vm_ops.syscall or after_syscall: was vm_set_user_regs called in this exit? */
bool vm_user_regs_were_set(const struct vm *vm);

/* vm_run returns VM_TIMED_OUT once CLOCK_MONOTONIC passes ns; 0: no deadline. */
void vm_set_deadline(struct vm *vm, uint64_t ns);
uint64_t vm_deadline(const struct vm *vm);
/* VM_CRASHED: the signal the crash is (SIGSEGV, SIGILL, SIGFPE, SIGBUS, SIGTRAP). */
int vm_crash_signal(const struct vm *vm);
/* VM_CRASHED, VM_HOST_ERROR: what happened, one line. The layers above set it too when they
 * stop the VM for a reason of theirs. */
const char *vm_crash_report(const struct vm *vm);
void vm_set_crash_report(struct vm *vm, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* --- Snapshot, fork, reset ------------------------------------------------------------ */

/* An empty snapshot for vm_snapshot_take or vm_image_load to fill; NULL without memory. */
struct vm_snapshot *vm_snapshot_new(void);
/* Captures the stopped master's CPU state. The master must not run again, and must outlive
 * the snapshot. 0, or -1 with a message. */
int vm_snapshot_take(struct vm_snapshot *snap, struct vm *master);
void vm_snapshot_delete(struct vm_snapshot *snap);

/* Makes a request VM in `child` (from vm_new) that starts exactly where the master stopped. */
int vm_fork(struct vm *child, const struct vm_snapshot *snap);

struct vm_reset_stats {
    size_t pages_restored;        /* working-set pages copied back */
    size_t pages_new;             /* of which first written in this request */
    size_t pages_dropped;         /* pages that had gained rights: dropped, not copied */
    size_t pages_released;        /* kept pages not copied any more: dropped, not copied */
    bool full;                    /* the working set was incomplete: every page restored */
    uint64_t ns;                  /* time the reset took: */
    uint64_t scan_ns, copy_ns, cpu_ns;  /* finding the dirty pages, putting memory back
                                         * (and the clock page), the vCPU state */
};

/* Brings a fork back to the frozen state. `cpu_anywhere`: the fork stopped somewhere other
 * than a system call (a crash, a timeout), so its segment state is restored too. */
int vm_reset(struct vm *child, bool cpu_anywhere, struct vm_reset_stats *stats);
/* After vm_reset: also forgets the working set (drops every private page), for a fork that
 * has accumulated more than it should keep; later requests fault their pages in again. */
int vm_reset_full(struct vm *child);

/* --- The shared-memory syscall transport (vm_has_shared_transport) ------------------- */

/* The shared-memory transport: instead of exiting (~35 us here), the guest's entry stub
 * publishes a call on the VM's shared page and spins; a host poller thread serves it (~2 us)
 * when vm_ops.can_serve_shared allows. One poller serves many VMs; it spins while they are
 * busy and sleeps when idle. */
struct poller *poller_start(void);
int poller_add(struct poller *pl, struct vm *vm);
/* Ends the poller thread (before the VMs it served go away) and frees it. */
void poller_stop(struct poller *pl);
void poller_set_affinity(struct poller *pl, const cpu_set_t *cpus);
/* Starts serving `vm` from `pl` (after a fork, or again after a reset: re-reads the page). */
void transport_attach(struct vm *vm, struct poller *pl, unsigned spin_us);

/* Stops serving `vm` (which then uses exits only); the poller never touches its memory
 * again. A master is detached before it is frozen. */
void transport_detach(struct vm *vm);

/* --- Statistics and the platform ------------------------------------------------------ */

struct vm_stats {
    uint64_t exits, syscall_exits;   /* VM exits; of them, system calls */
    uint64_t shared_calls;           /* system calls the shared transport's poller served */
    uint64_t flushes;                /* translation flushes after rights were taken away */
    uint64_t guest_ns, flush_ns;     /* vm_set_profiling: time in KVM_RUN and in flushes */
    uint64_t sites_rewritten, sites_refused;   /* syscall sites (vm_params.rewrite_syscalls) */
};
/* The counters so far. Safe from another thread while the VM runs (for a display). */
void vm_get_stats(const struct vm *vm, struct vm_stats *out);
/* The KVM flavour the VM runs on ("kvm_pvm", "hardware"), and whether its entry stub can
 * use the shared-memory transport. */
const char *vm_platform_name(const struct vm *vm);
bool vm_has_shared_transport(const struct vm *vm);

#endif
