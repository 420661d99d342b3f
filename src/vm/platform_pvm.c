/* kvm_pvm flavour: syscalls arrive as an MMIO store from the user-mode entry stub. */
#include "vm/layout.h"
#include "vm/platform.h"
#include "vm/vm.h"

static bool pvm_is_syscall_exit(const struct vm *vm, const struct kvm_run *run)
{
    return run->exit_reason == KVM_EXIT_MMIO && run->mmio.is_write &&
           run->mmio.phys_addr == vm->mem_size;   /* SYSCALL_MMIO_ADDR's frame */
}

static bool pvm_can_return(const struct kvm_regs *regs)
{
    (void)regs;          /* the stub returns with a user-mode jump: nothing to guard */
    return true;
}

const struct platform platform_pvm = {
    .name = "kvm_pvm",
    .syscall_entry = UENTRY_ADDR,
    .is_syscall_exit = pvm_is_syscall_exit,
    .can_return = pvm_can_return,
};
