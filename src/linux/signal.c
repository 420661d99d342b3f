/* Signal dispositions, the blocked mask and the alternate stack, kept the way the kernel keeps
 * them so the guest reads back what it set. Delivery to a guest handler is not implemented
 * yet: a signal the guest sends itself is ignored or ends the process, as its default action
 * says; with a handler installed it ends the process too, with a note on stderr. */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>

#include "linux/process.h"
#include "linux/syscalls.h"
#include "vm/guest_mem.h"

#define GUEST_SIGSET_SIZE 8
#define GUEST_MINSIGSTKSZ 2048
#define GUEST_SIG_DFL 0
#define GUEST_SIG_IGN 1
#define GUEST_SS_AUTODISARM INT32_MIN   /* 1 << 31; not in glibc's headers */

_Static_assert(sizeof(struct lx_sigaction) == 32, "kernel struct sigaction layout");

static uint64_t sig_bit(int sig) { return 1ull << (sig - 1); }
static const uint64_t UNBLOCKABLE = (1ull << (SIGKILL - 1)) | (1ull << (SIGSTOP - 1));

static bool sig_valid(int sig) { return sig >= 1 && sig <= LX_NSIG; }

long sys_rt_sigaction(struct lx_proc *p, const uint64_t a[6])
{
    int sig = (int)(uint32_t)a[0];
    if (a[3] != GUEST_SIGSET_SIZE)
        return -EINVAL;
    struct lx_sigaction act;
    if (a[1] && gm_read(p->vm, &act, a[1], sizeof act))
        return -EFAULT;
    if (!sig_valid(sig) || (a[1] && (sig == SIGKILL || sig == SIGSTOP)))
        return -EINVAL;
    struct lx_sigaction *slot = &p->sig.action[sig - 1];
    struct lx_sigaction old = *slot;
    if (a[1]) {
        act.mask &= ~UNBLOCKABLE;
        *slot = act;
    }
    /* As on Linux, the new action stays installed even if writing the old one faults. */
    if (a[2] && gm_write(p->vm, a[2], &old, sizeof old))
        return -EFAULT;
    return 0;
}

static long send_to_self(struct lx_proc *p, int sig);

/* Signals that were pending and are no longer blocked arrive now, lowest number first. */
static void deliver_unblocked(struct lx_proc *p)
{
    uint64_t ready = p->sig.pending & ~p->sig.blocked;
    for (int sig = 1; ready && sig <= LX_NSIG && !p->exited; sig++) {
        if (!(ready & sig_bit(sig)))
            continue;
        p->sig.pending &= ~sig_bit(sig);
        ready &= ~sig_bit(sig);
        send_to_self(p, sig);
    }
}

long sys_rt_sigprocmask(struct lx_proc *p, const uint64_t a[6])
{
    int how = (int)(uint32_t)a[0];
    if (a[3] != GUEST_SIGSET_SIZE)
        return -EINVAL;
    uint64_t old = p->sig.blocked;
    if (a[1]) {
        uint64_t set;
        if (gm_read(p->vm, &set, a[1], sizeof set))
            return -EFAULT;
        set &= ~UNBLOCKABLE;
        switch (how) {
        case SIG_BLOCK:   p->sig.blocked |= set; break;
        case SIG_UNBLOCK: p->sig.blocked &= ~set; break;
        case SIG_SETMASK: p->sig.blocked = set; break;
        default:          return -EINVAL;
        }
    }
    if (a[2] && gm_write(p->vm, a[2], &old, sizeof old))
        return -EFAULT;
    deliver_unblocked(p);
    return 0;
}

struct guest_stack {            /* stack_t */
    uint64_t sp;
    int32_t flags;
    int32_t pad;
    uint64_t size;
};

long sys_sigaltstack(struct lx_proc *p, const uint64_t a[6])
{
    struct lx_signals *s = &p->sig;
    /* No handler ever runs, so the guest is never on the alternate stack (no SS_ONSTACK, and
     * changing the stack is always allowed). */
    struct guest_stack old = {
        .sp = s->altstack_sp,
        .size = s->altstack_size,
        .flags = (s->altstack_size == 0 ? SS_DISABLE : 0) |
                 (s->altstack_flags & GUEST_SS_AUTODISARM),
    };
    if (a[0]) {
        struct guest_stack ss;
        if (gm_read(p->vm, &ss, a[0], sizeof ss))
            return -EFAULT;
        int mode = ss.flags & ~GUEST_SS_AUTODISARM;
        if (mode != SS_DISABLE && mode != SS_ONSTACK && mode != 0)
            return -EINVAL;
        if (mode == SS_DISABLE) {
            ss.sp = 0;
            ss.size = 0;
        } else if (ss.size < GUEST_MINSIGSTKSZ) {
            return -ENOMEM;
        }
        s->altstack_sp = ss.sp;
        s->altstack_size = ss.size;
        s->altstack_flags = ss.flags;
    }
    if (a[1] && gm_write(p->vm, a[1], &old, sizeof old))
        return -EFAULT;
    return 0;
}

/* What the default action of a signal does to this process: nothing, or the end. Stopping
 * is treated as nothing: nobody could send the SIGCONT. */
static bool default_terminates(int sig)
{
    switch (sig) {
    case SIGCHLD: case SIGURG: case SIGWINCH: case SIGCONT:
    case SIGSTOP: case SIGTSTP: case SIGTTIN: case SIGTTOU:
        return false;
    default:
        return true;
    }
}

/* A valid, non-zero signal sent by the process to itself. A blocked one stays pending
 * until it is unblocked (musl's raise() and abort() block signals around the kill). */
static long send_to_self(struct lx_proc *p, int sig)
{
    if (p->sig.blocked & sig_bit(sig)) {
        p->sig.pending |= sig_bit(sig);
        return 0;
    }
    uint64_t handler = p->sig.action[sig - 1].handler;
    if (sig == SIGKILL)
        handler = GUEST_SIG_DFL;
    if (handler == GUEST_SIG_IGN)
        return 0;
    if (handler == GUEST_SIG_DFL && !default_terminates(sig))
        return 0;
    if (handler != GUEST_SIG_DFL)
        fprintf(stderr, "kvmserver: signal %d has a handler, but delivering signals to "
                        "handlers is not implemented yet; terminating\n", sig);
    p->exited = true;
    p->exit_status = 128 + sig;
    return 0;
}

/* Checks the signal number once the target is known to exist (Linux's order); 0 only probes. */
static long signal_self(struct lx_proc *p, int sig)
{
    if (sig < 0 || sig > LX_NSIG)
        return -EINVAL;
    return sig == 0 ? 0 : send_to_self(p, sig);
}

long sys_kill(struct lx_proc *p, const uint64_t a[6])
{
    int pid = (int)(uint32_t)a[0];
    /* A request VM's parent is the frozen program: it exists, but takes no signals. */
    if (pid == p->ppid && pid > 0)
        return (int)(uint32_t)a[1] == 0 ? 0 : -EPERM;
    /* 0 is our process group, and we are its only member; -1 means everyone but us. */
    if (!lx_is_self(p, pid))
        return -ESRCH;
    return signal_self(p, (int)(uint32_t)a[1]);
}

long sys_tgkill(struct lx_proc *p, const uint64_t a[6])
{
    int tgid = (int)(uint32_t)a[0], tid = (int)(uint32_t)a[1];
    if (tgid <= 0 || tid <= 0)
        return -EINVAL;
    if (tgid != p->pid || !lx_thread_exists(p, tid))
        return -ESRCH;
    return signal_self(p, (int)(uint32_t)a[2]);
}

long sys_tkill(struct lx_proc *p, const uint64_t a[6])
{
    int tid = (int)(uint32_t)a[0];
    if (tid <= 0)
        return -EINVAL;
    if (!lx_thread_exists(p, tid))
        return -ESRCH;
    return signal_self(p, (int)(uint32_t)a[1]);
}
