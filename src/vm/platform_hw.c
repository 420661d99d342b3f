/* Hardware VMX/SVM flavour: syscalls arrive from the ring-0 entry stub through an I/O port. */
#include <string.h>

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

static void hw_resume_user(struct vm *vm, const struct kvm_regs *user)
{
    /* sysretq would take RIP from RCX and RFLAGS from R11: return by the boot iretq
     * instead, from a frame on the ring-0 stack, which no exception uses during a call.
     * KVM then does not step past the `out` either: RIP is no longer on it. */
    struct kvm_regs *r = &vm->run->s.regs.regs;
    uint64_t frame_gva = KSTACK_ADDR + KSTACK_SIZE - 5 * 8;
    uint64_t frame[5] = { user->rip, SEL_UCODE, user->rflags, user->rsp, SEL_UDATA };
    memcpy(vm->mem + frame_gva, frame, sizeof frame);
    uint64_t kflags = r->rflags;
    *r = *user;
    r->rsp = frame_gva;
    r->rip = STUB_GVA(KCODE_ADDR, kvms_kcode_start, kvms_kcode_iret);
    r->rflags = kflags;
    vm->run->kvm_dirty_regs |= KVM_SYNC_X86_REGS;
}

const struct platform platform_hw = {
    .name = "hardware",
    .syscall_entry = KCODE_ADDR + 16,   /* kvms_kcode_hw_syscall, checked in vm.c */
    .shared_transport = false,          /* exits cost ~1 us here: the ring-0 stub just exits */
    .is_syscall_exit = hw_is_syscall_exit,
    .complete_return = hw_complete_return,
    .resume_user = hw_resume_user,
};
