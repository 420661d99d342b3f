/* Saving and loading the vCPU state one guest thread owns (see engine.h), so that several
 * guest threads can take turns on the VM's single vCPU. */
#include <stddef.h>
#include <sys/ioctl.h>

#include "vm/vm.h"

int vm_thread_save(struct vm *vm, struct vm_thread_cpu *t)
{
    t->regs = vm->run->s.regs.regs;
    t->fs_base = vm_get_fsbase(vm);
    return vm_fpu_save(vm, &t->xsave);
}

int vm_thread_load(struct vm *vm, const struct vm_thread_cpu *t)
{
    if (vm_fpu_load(vm, &t->xsave) || vm_set_fsbase(vm, t->fs_base))
        return -1;
    vm->run->s.regs.regs = t->regs;
    vm->run->kvm_dirty_regs |= KVM_SYNC_X86_REGS;
    return 0;
}

void vm_set_syscall_result(struct vm *vm, uint64_t value)
{
    vm->run->s.regs.regs.rax = value;
    vm->run->kvm_dirty_regs |= KVM_SYNC_X86_REGS;
}

int vm_fpu_save(struct vm *vm, struct kvm_xsave *xsave)
{
    return ioctl(vm->vcpu_fd, KVM_GET_XSAVE, xsave) < 0 ? -1 : 0;
}

int vm_fpu_load(struct vm *vm, const struct kvm_xsave *xsave)
{
    return ioctl(vm->vcpu_fd, KVM_SET_XSAVE, xsave) < 0 ? -1 : 0;
}
