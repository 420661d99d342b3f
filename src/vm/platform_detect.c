/* The platform self-test: enter user mode at a `syscall` with LSTAR pointing at the
 * user-executable entry stub (whose first instruction is the MMIO store), and look at the
 * privilege level the store ran at. Ring 3: kvm_pvm semantics. Ring 0: hardware. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "base/log.h"
#include "guest/stubs.h"

#include "vm/layout.h"
#include "vm/platform.h"
#include "vm/vm.h"

const struct platform *platform_detect(struct vm *vm)
{
    struct kvm_sregs initial;
    if (ioctl(vm->vcpu_fd, KVM_GET_SREGS, &initial) < 0) {
        log_error("platform self-test: KVM_GET_SREGS: %s", strerror(errno));
        return NULL;
    }
    vm_set_entry(vm, STUB_GVA(UENTRY_ADDR, kvms_uentry_start, kvms_uentry_probe), 0);
    const struct platform *found = NULL;
    for (int attempt = 0; attempt < 3 && !found; attempt++) {
        if (ioctl(vm->vcpu_fd, KVM_RUN, 0) < 0) {
            if (errno == EINTR)
                continue;
            log_error("platform self-test: KVM_RUN: %s", strerror(errno));
            return NULL;
        }
        struct kvm_run *run = vm->run;
        if (run->exit_reason != KVM_EXIT_MMIO || run->mmio.phys_addr != vm->mem_size) {
            log_error("platform self-test: unexpected exit %u at rip %#llx — "
                    "this KVM behaves like no flavour we know", run->exit_reason,
                    (unsigned long long)run->s.regs.regs.rip);
            return NULL;
        }
        struct kvm_sregs now;
        if (ioctl(vm->vcpu_fd, KVM_GET_SREGS, &now) < 0) {
            log_error("platform self-test: KVM_GET_SREGS: %s",
                    strerror(errno));
            return NULL;
        }
        found = (now.cs.selector & 3) == 3 ? &platform_pvm : &platform_hw;
    }
    if (!found) {
        log_error("platform self-test did not finish");
        return NULL;
    }
    if (ioctl(vm->vcpu_fd, KVM_SET_SREGS, &initial) < 0) {
        log_error("platform self-test: KVM_SET_SREGS: %s", strerror(errno));
        return NULL;
    }
    return found;
}
