/* Hardware VMX/SVM flavour: syscalls arrive from the ring-0 entry stub through an I/O port. */
#include "guest/stubs.h"
#include "vm/layout.h"
#include "vm/platform.h"
#include "vm/vm.h"

static bool hw_is_syscall_exit(const struct vm *vm, const struct kvm_run *run)
{
    (void)vm;
    return run->exit_reason == KVM_EXIT_IO && run->io.port == PORT_SYSCALL &&
           run->io.direction == KVM_EXIT_IO_OUT;
}

static bool hw_complete_return(struct kvm_regs *regs)
{
    /* sysretq to a non-canonical RCX faults in ring 0 on the user's stack (on Intel). */
    return regs->rcx < (1ull << 47);
}

const struct platform platform_hw = {
    .name = "hardware",
    .syscall_entry = KCODE_ADDR + 16,   /* kvms_kcode_hw_syscall, checked in vm.c */
    .shared_transport = false,          /* exits cost ~1 us here: the ring-0 stub just exits */
    .is_syscall_exit = hw_is_syscall_exit,
    .complete_return = hw_complete_return,
};
