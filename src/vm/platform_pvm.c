/* kvm_pvm flavour: syscalls arrive as an MMIO store from the user-mode entry stub. */
#include "vm/cpu_state.h"
#include "vm/layout.h"
#include "vm/platform.h"
#include "vm/vm.h"

static bool pvm_is_syscall_exit(const struct vm *vm, const struct kvm_run *run)
{
    /* A store to SYSCALL_MMIO_ADDR's frame: a plain call, or a shared one falling back. */
    return run->exit_reason == KVM_EXIT_MMIO && run->mmio.is_write &&
           (run->mmio.phys_addr == vm->mem_size + MMIO_SYSCALL ||
            run->mmio.phys_addr == vm->mem_size + MMIO_SHARED_FALLBACK);
}

static bool pvm_complete_return(struct kvm_regs *regs)
{
    /* What sysret would do; the stub's `jmp *%rcx` is then never reached, and the
     * user's stack is never used. */
    regs->rflags = (regs->r11 & RFLAGS_USER_MASK) | RFLAGS_FIXED | RFLAGS_IF;
    regs->rip = regs->rcx;
    return true;
}

static void pvm_resume_user(struct vm *vm, const struct kvm_regs *user)
{
    /* The exit came from ring 3: the registers are the user's, RIP included. */
    vm->run->s.regs.regs = *user;
    vm->run->kvm_dirty_regs |= KVM_SYNC_X86_REGS;
}

const struct platform platform_pvm = {
    .name = "kvm_pvm",
    .syscall_entry = UENTRY_ADDR,
    .shared_transport = true,
    .trap_is_dear = true,
    .software_walks = true,
    .is_syscall_exit = pvm_is_syscall_exit,
    .complete_return = pvm_complete_return,
    .resume_user = pvm_resume_user,
};
