/* Process-level calls: exit, thread pointer, thread bookkeeping. */
#include <asm/prctl.h>
#include <errno.h>

#include "linux/process.h"
#include "linux/syscalls.h"
#include "vm/engine.h"
#include "vm/guest_mem.h"

long sys_exit(struct lx_proc *p, const uint64_t a[6])
{
    /* The last thread leaving ends the process. */
    return lx_thread_exit(p, (int)(a[0] & 0xff));
}

long sys_exit_group(struct lx_proc *p, const uint64_t a[6])
{
    p->exited = true;
    p->exit_status = (int)(a[0] & 0xff);
    return 0;
}

long sys_arch_prctl(struct lx_proc *p, const uint64_t a[6])
{
    switch (a[0]) {
    case ARCH_SET_FS:
        if (a[1] >= (1ull << 47))
            return -EPERM;
        return vm_set_fsbase(p->vm, a[1]) ? -EIO : 0;
    case ARCH_GET_FS:
        return gm_write_u64(p->vm, a[1], vm_get_fsbase(p->vm));
    case ARCH_GET_CPUID:
        return 1;              /* cpuid is not trapped: it always works */
    default:
        return -EINVAL;
    }
}

long sys_set_tid_address(struct lx_proc *p, const uint64_t a[6])
{
    lx_current_thread(p)->clear_child_tid = a[0];
    return lx_current_tid(p);
}

long sys_set_robust_list(struct lx_proc *p, const uint64_t a[6])
{
    if (a[1] != 24)            /* sizeof(struct robust_list_head) */
        return -EINVAL;
    p->task.robust_list = a[0];
    p->task.robust_list_len = a[1];
    return 0;
}

long sys_rseq(struct lx_proc *p, const uint64_t a[6])
{
    (void)p;
    (void)a;
    return -ENOSYS;            /* glibc carries on without restartable sequences */
}
