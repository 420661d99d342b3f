/* What differs between KVM flavours, behind one small interface. The engine picks a flavour
 * once per VM by a self-test (platform_detect) and never asks which one runs.
 *  - kvm_pvm (our machines): a user `syscall` jumps to LSTAR but stays in ring 3, so the
 *    entry is a user-executable stub that exits with an MMIO store.
 *  - hardware VMX/SVM: `syscall` enters ring 0; the entry is a ring-0 stub that exits with
 *    `out` and returns with `sysretq`. */
#ifndef KVMS_PLATFORM_H
#define KVMS_PLATFORM_H
#include <stdbool.h>
#include <stdint.h>
#include <linux/kvm.h>

struct vm;

struct platform {
    const char *name;
    uint64_t syscall_entry;           /* LSTAR */
    bool shared_transport;            /* the entry stub can use the shared-memory transport */
    bool trap_is_dear;                /* `syscall` traps to the hypervisor: rewrite sites */
    bool software_walks;              /* shadow paging: KVM walks the guest's tables in
                                       * software whenever a page lacks a writable
                                       * translation, setting A in every entry it passes;
                                       * hardware caches upper entries and may not */
    /* Is this exit a system call? */
    bool (*is_syscall_exit)(const struct vm *vm, const struct kvm_run *run);
    /* Prepares the return from a system call whose result is already in RAX: false if the
     * return cannot be done safely (then the guest is treated as crashed). */
    bool (*complete_return)(struct kvm_regs *regs);
    /* At a system-call exit: resume user mode with exactly `user` (canonical RIP,
     * user-settable RFLAGS), all registers included. */
    void (*resume_user)(struct vm *vm, const struct kvm_regs *user);
};

extern const struct platform platform_pvm;
extern const struct platform platform_hw;

/* Runs the self-test in `vm` (whose system area is set up, LSTAR at the user entry) and
 * returns the matching flavour, or NULL after printing why. */
const struct platform *platform_detect(struct vm *vm);

#endif
