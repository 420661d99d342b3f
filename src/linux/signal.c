/* Signals: dispositions, masks, the alternate stack, and delivery to guest handlers as
 * Linux does it (see sig.h). A frame is what the kernel's x86-64 rt_sigframe is: the
 * restorer's address, a ucontext with the registers, the mask and the alternate stack, the
 * siginfo, and the XSAVE image uc_mcontext.fpregs points to. Sending signals and waiting
 * for them: signal_send.c. */
#include "base/time.h"
#include "linux/sig.h"

#include <cpuid.h>
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "linux/process.h"
#include "linux/syscalls.h"
#include "linux/signal_internal.h"
#include "linux/wait.h"
#include "vm/engine.h"
#include "vm/guest_mem.h"
#include "vm/layout.h"

#define GUEST_MINSIGSTKSZ 2048
#define GUEST_SS_AUTODISARM INT32_MIN   /* 1 << 31; not in glibc's headers */
#define GUEST_SA_RESTORER 0x04000000u
#define GUEST_REDZONE 128
#define UC_FP_XSTATE 1
#define UC_SIGCONTEXT_SS 2
#define UC_STRICT_RESTORE_SS 4
#define XSAVE_HEADER 512                /* XSTATE_BV, then XCOMP_BV and reserved words */
#define XSAVE_SW_BYTES 464              /* the fxsave area's words left to software */
#define XFEATURE_PKRU 9
#define XFEATURE_MASK_FPSSE 3ull        /* XSTATE_BV bits of the x87 and SSE components */
#define RFLAGS_TF 0x100ull
#define RFLAGS_DF 0x400ull

_Static_assert(sizeof(struct lx_sigaction) == 32, "kernel struct sigaction layout");


static bool sig_valid(int sig) { return sig >= 1 && sig <= LX_NSIG; }

struct guest_stack {            /* stack_t */
    uint64_t sp;
    int32_t flags;
    int32_t pad;
    uint64_t size;
};

struct guest_sigcontext {       /* struct sigcontext: glibc's gregs[REG_R8..REG_CR2] */
    uint64_t r8, r9, r10, r11, r12, r13, r14, r15, rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp;
    uint64_t rip, rflags;
    uint16_t cs, gs, fs, ss;
    uint64_t err, trapno, oldmask, cr2;
    uint64_t fpstate;
    uint64_t reserved[8];
};

struct guest_ucontext {         /* the kernel's struct ucontext */
    uint64_t flags, link;
    struct guest_stack stack;
    struct guest_sigcontext mcontext;
    uint64_t sigmask;
};

struct guest_siginfo {
    int32_t signo, err, code, pad;
    union {
        uint64_t addr;                                  /* faults */
        struct { int32_t pid; uint32_t uid; } kill;     /* SI_USER, SI_TKILL */
        struct { int32_t tid, overrun; uint64_t value; } timer;
    } u;
    uint8_t rest[128 - 32];
};

struct guest_sigframe {
    uint64_t restorer;          /* the handler returns here: rt_sigreturn */
    struct guest_ucontext uc;
    struct guest_siginfo info;
};

_Static_assert(sizeof(struct guest_sigcontext) == 256, "struct sigcontext");
_Static_assert(offsetof(struct guest_ucontext, sigmask) == 296, "struct ucontext");
_Static_assert(sizeof(struct guest_siginfo) == 128, "siginfo_t");

/* ---- dispositions, masks, the alternate stack ---------------------------------------- */

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
        /* Ignoring a signal discards it if pending, as on Linux. */
        if (act.handler == GUEST_SIG_IGN)
            p->sig.pending &= ~sig_bit(sig);
    }
    /* As on Linux, the new action stays installed even if writing the old one faults. */
    if (a[2] && gm_write(p->vm, a[2], &old, sizeof old))
        return -EFAULT;
    return 0;
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
    /* Signals this unblocks arrive when the call returns (lx_signal_after_syscall). */
    if (a[2] && gm_write(p->vm, a[2], &old, sizeof old))
        return -EFAULT;
    return 0;
}

long sys_rt_sigpending(struct lx_proc *p, const uint64_t a[6])
{
    if (a[1] > GUEST_SIGSET_SIZE)
        return -EINVAL;
    uint64_t set = lx_sig_pending_here(p) & p->sig.blocked;
    return gm_write(p->vm, a[0], &set, (size_t)a[1]) ? -EFAULT : 0;
}

static bool on_altstack(const struct lx_signals *s, uint64_t sp)
{
    return s->altstack.size && sp > s->altstack.sp && sp - s->altstack.sp <= s->altstack.size;
}

static uint64_t user_rsp(struct lx_proc *p)
{
    struct kvm_regs r;
    vm_get_user_regs(p->vm, 0, &r);
    return r.rsp;
}

/* sigaltstack's work; from rt_sigreturn too (with_checks false: Linux ignores errors). */
static long set_altstack(struct lx_proc *p, const struct guest_stack *ss, bool onstack)
{
    struct lx_signals *s = &p->sig;
    int mode = ss->flags & ~GUEST_SS_AUTODISARM;
    if (onstack)
        return -EPERM;
    if (mode != SS_DISABLE && mode != SS_ONSTACK && mode != 0)
        return -EINVAL;
    if (mode == SS_DISABLE) {
        s->altstack.sp = 0;
        s->altstack.size = 0;
    } else if (ss->size < GUEST_MINSIGSTKSZ) {
        return -ENOMEM;
    } else {
        s->altstack.sp = ss->sp;
        s->altstack.size = ss->size;
    }
    s->altstack.flags = ss->flags & GUEST_SS_AUTODISARM;
    return 0;
}

static struct guest_stack altstack_now(const struct lx_signals *s, uint64_t sp)
{
    return (struct guest_stack){
        .sp = s->altstack.sp,
        .size = s->altstack.size,
        .flags = (s->altstack.size == 0 ? SS_DISABLE : on_altstack(s, sp) ? SS_ONSTACK : 0) |
                 (s->altstack.flags & GUEST_SS_AUTODISARM),
    };
}

long sys_sigaltstack(struct lx_proc *p, const uint64_t a[6])
{
    uint64_t sp = user_rsp(p);
    struct guest_stack old = altstack_now(&p->sig, sp);
    if (a[0]) {
        struct guest_stack ss;
        if (gm_read(p->vm, &ss, a[0], sizeof ss))
            return -EFAULT;
        long err = set_altstack(p, &ss, on_altstack(&p->sig, sp));
        if (err)
            return err;
    }
    if (a[1] && gm_write(p->vm, a[1], &old, sizeof old))
        return -EFAULT;
    return 0;
}

/* ---- delivery ------------------------------------------------------------------------ */

/* The size of the XSAVE image a frame carries: the standard-format area of the features
 * the host enabled (what KVM_GET_XSAVE fills), as CPUID reports it. */
static uint32_t xsave_size(void)
{
    static uint32_t size;
    if (!size) {
        unsigned eax, ebx, ecx, edx;
        uint32_t s = 512 + 64;
        if (__get_cpuid_count(0xd, 0, &eax, &ebx, &ecx, &edx) && ebx > s)
            s = ebx;
        size = s < sizeof(((struct kvm_xsave *)0)->region) - 4 ? s : 512 + 64;
    }
    return size;
}

static uint64_t xsave_features(void)
{
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid_count(0xd, 0, &eax, &ebx, &ecx, &edx))
        return 3;
    return eax | (uint64_t)edx << 32;
}

static void to_sigcontext(struct guest_sigcontext *mc, const struct kvm_regs *r)
{
    *mc = (struct guest_sigcontext){
        .r8 = r->r8, .r9 = r->r9, .r10 = r->r10, .r11 = r->r11, .r12 = r->r12,
        .r13 = r->r13, .r14 = r->r14, .r15 = r->r15, .rdi = r->rdi, .rsi = r->rsi,
        .rbp = r->rbp, .rbx = r->rbx, .rdx = r->rdx, .rax = r->rax, .rcx = r->rcx,
        .rsp = r->rsp, .rip = r->rip, .rflags = r->rflags, .cs = 0x33, .ss = 0x2b,
    };
}

static void from_sigcontext(struct kvm_regs *r, const struct guest_sigcontext *mc)
{
    r->r8 = mc->r8; r->r9 = mc->r9; r->r10 = mc->r10; r->r11 = mc->r11; r->r12 = mc->r12;
    r->r13 = mc->r13; r->r14 = mc->r14; r->r15 = mc->r15; r->rdi = mc->rdi; r->rsi = mc->rsi;
    r->rbp = mc->rbp; r->rbx = mc->rbx; r->rdx = mc->rdx; r->rax = mc->rax; r->rcx = mc->rcx;
    r->rsp = mc->rsp; r->rip = mc->rip; r->rflags = mc->rflags;
}

/* What a fault puts in siginfo_t and the sigcontext. */
struct fault_info {
    int code;
    uint64_t addr, err, trapno, cr2;
};

static void fill_info(const struct lx_proc *p, struct guest_siginfo *info, int sig,
                      const struct fault_info *fault)
{
    memset(info, 0, sizeof *info);
    info->signo = sig;
    if (fault) {
        info->code = fault->code;
        info->u.addr = fault->addr;
        return;
    }
    const struct lx_sig_origin *o = &p->sig.origin[sig - 1];
    info->code = o->code;
    if (o->code == SI_TIMER) {
        info->u.timer.tid = o->a;
        info->u.timer.overrun = o->b;
        info->u.timer.value = o->value;
    } else if (o->code == SI_USER || o->code == SI_TKILL) {
        info->u.kill.pid = o->a;
        info->u.kill.uid = (uint32_t)o->b;
    }
}

/* Runs sig's handler with the interrupted context `ctx`: writes the frame, sets the mask,
 * enters the handler. False if the frame cannot be written (the process then dies of
 * SIGSEGV, as on Linux). */
static bool run_handler(struct lx_proc *p, int sig, const struct kvm_regs *ctx,
                        const struct fault_info *fault)
{
    struct lx_signals *s = &p->sig;
    struct lx_sigaction *act = &s->action[sig - 1];
    if (!(act->flags & GUEST_SA_RESTORER))
        return false;           /* x86-64 Linux requires one: libc always gives it */
    struct kvm_xsave *fpu = &(struct kvm_xsave){ 0 };
    if (vm_fpu_save(p->vm, fpu))
        return false;
    uint64_t sp = ctx->rsp;
    struct guest_stack saved_stack = altstack_now(s, sp);
    if ((act->flags & SA_ONSTACK) && s->altstack.size && !on_altstack(s, sp))
        sp = s->altstack.sp + s->altstack.size;
    else
        sp -= GUEST_REDZONE;
    uint32_t fsize = xsave_size();
    uint64_t fp = (sp - fsize - 4) & ~63ull;
    uint64_t frame_at = ((fp - sizeof(struct guest_sigframe)) & ~15ull) - 8;

    struct guest_sigframe f;
    memset(&f, 0, sizeof f);
    f.restorer = act->restorer;
    f.uc.flags = UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS;
    f.uc.stack = saved_stack;
    to_sigcontext(&f.uc.mcontext, ctx);
    f.uc.mcontext.fpstate = fp;
    f.uc.mcontext.oldmask = s->blocked;
    if (fault) {
        f.uc.mcontext.err = fault->err;
        f.uc.mcontext.trapno = fault->trapno;
        f.uc.mcontext.cr2 = fault->cr2;
    }
    uint64_t old_mask = s->suspended ? s->suspend_mask : s->blocked;
    f.uc.sigmask = old_mask;
    fill_info(p, &f.info, sig, fault);

    uint8_t *image = (uint8_t *)fpu->region;
    uint32_t sw[2] = { FP_XSTATE_MAGIC1, fsize + 4 };
    uint64_t sw_features = xsave_features();
    uint32_t xsize = fsize, magic2 = FP_XSTATE_MAGIC2;
    memcpy(image + XSAVE_SW_BYTES, sw, sizeof sw);
    memcpy(image + XSAVE_SW_BYTES + 8, &sw_features, 8);
    memcpy(image + XSAVE_SW_BYTES + 16, &xsize, 4);
    if (gm_write(p->vm, frame_at, &f, sizeof f) || gm_write(p->vm, fp, image, fsize) ||
        gm_write(p->vm, fp + fsize, &magic2, 4))
        return false;

    /* The handler starts with a clean FPU, as on Linux (the interrupted state is in the
     * frame); the protection keys the host set stay. */
    uint32_t mxcsr_mask, mxcsr = 0x1f80;
    uint16_t fcw = 0x37f;
    uint64_t bv;
    memcpy(&mxcsr_mask, image + 28, 4);
    memcpy(&bv, image + XSAVE_HEADER, 8);
    memset(image, 0, XSAVE_HEADER + 64);
    memcpy(image, &fcw, 2);
    memcpy(image + 24, &mxcsr, 4);
    memcpy(image + 28, &mxcsr_mask, 4);
    /* x87 and SSE marked present with those values: with neither, KVM_SET_XSAVE keeps the
     * vCPU's MXCSR (Linux's copy_uabi_to_xstate), so the handler would inherit its rounding. */
    bv = (bv & 1ull << XFEATURE_PKRU) | XFEATURE_MASK_FPSSE;
    memcpy(image + XSAVE_HEADER, &bv, 8);
    if (vm_fpu_load(p->vm, fpu))
        return false;

    s->suspended = false;
    s->blocked = old_mask | (act->mask & ~UNBLOCKABLE);
    if (!(act->flags & SA_NODEFER))
        s->blocked |= sig_bit(sig);
    uint64_t handler = act->handler;
    if (act->flags & SA_RESETHAND)
        act->handler = GUEST_SIG_DFL;
    if ((act->flags & SA_ONSTACK) && (s->altstack.flags & GUEST_SS_AUTODISARM) &&
        s->altstack.size && !on_altstack(s, ctx->rsp)) {
        s->altstack.sp = 0;
        s->altstack.size = 0;
    }
    struct kvm_regs r = *ctx;
    r.rip = handler;
    r.rsp = frame_at;
    r.rdi = (uint64_t)sig;
    r.rsi = frame_at + offsetof(struct guest_sigframe, info);
    r.rdx = frame_at + offsetof(struct guest_sigframe, uc);
    r.rax = 0;
    r.rflags &= ~(RFLAGS_TF | RFLAGS_DF);
    return vm_set_user_regs(p->vm, &r) == 0;
}

static void terminate(struct lx_proc *p, int sig)
{
    p->exited = true;
    p->exit_status = 128 + sig;
}

/* Calls SA_RESTART makes again after the handler; the others fail with EINTR (Linux's
 * list: sleeps, poll/select/epoll, pause and sigsuspend never restart, nor does a futex
 * wait with a time limit). */
static bool restartable(uint64_t nr, const struct kvm_regs *args)
{
    if (nr == __NR_futex)
        return args->r10 == 0;
    switch (nr) {
    case __NR_read: case __NR_readv: case __NR_write: case __NR_writev: case __NR_pread64:
    case __NR_pwrite64: case __NR_accept: case __NR_accept4: case __NR_connect:
    case __NR_recvfrom: case __NR_recvmsg: case __NR_sendto: case __NR_sendmsg:
    case __NR_open: case __NR_openat: case __NR_flock: case __NR_wait4:
    case __NR_fcntl: case __NR_ioctl: case __NR_sendfile:
        return true;
    default:
        return false;
    }
}

static bool raises_sigpipe(const struct vm_syscall *call)
{
    switch (call->nr) {
    case __NR_write: case __NR_writev: case __NR_pwrite64: case __NR_sendfile:
        return true;
    case __NR_sendto:
        return !(call->arg[3] & MSG_NOSIGNAL);
    case __NR_sendmsg:
        return !(call->arg[2] & MSG_NOSIGNAL);
    default:
        return false;
    }
}

bool lx_signal_exit_after_shared(void *ctx, struct vm *vm, const struct vm_syscall *call,
                                 long ret)
{
    struct lx_proc *p = ctx;
    (void)vm;
    /* Served without an exit, the call's end is here: a temporary mask goes unless a signal
     * it lets through ended the call, whose handler the exit brings. */
    if (p->sig.suspended && (ret != -EINTR || !(p->sig.pending & ~p->sig.blocked)))
        lx_sig_end_call_mask(&p->sig);
    return (ret == -EPIPE && raises_sigpipe(call)) || (p->sig.pending & ~p->sig.blocked);
}

long lx_signal_after_syscall(void *ctx, struct vm *vm, const struct vm_syscall *call, long ret,
                             bool *stop)
{
    struct lx_proc *p = ctx;
    if (p->exited)
        return ret;
    /* A call's temporary mask stays for the handler only of a signal that interrupted it;
     * it returns otherwise (or is a thread switched in to redo its call). */
    if (p->sig.suspended && ret != -EINTR)
        lx_sig_end_call_mask(&p->sig);
    if (ret == -EPIPE && raises_sigpipe(call)) {
        struct lx_sig_origin from = { .code = SI_USER, .a = 0, .b = 0 };
        lx_signal_send(p, SIGPIPE, lx_current_tid(p), &from);
    }
    /* A thread switched in to redo its call: a handler run now would return onto that
     * `syscall` and wait again, where Linux's call ends with EINTR (or restarts, by the
     * call's own rules). The redo sees the signal instead. */
    if (lx_current_thread(p)->redo_call)
        return ret;
    lx_sig_fire_timers(p);
    int sig;
    while ((sig = lx_sig_next_deliverable(p)) && !lx_sig_acts(p, sig))
        p->sig.pending &= ~sig_bit(sig);   /* unblocked, but ignored by now */
    if (!sig) {
        if (p->sig.suspended)
            lx_sig_end_call_mask(&p->sig);
        return ret;
    }
    p->sig.pending &= ~sig_bit(sig);
    if (p->sig.action[sig - 1].handler == GUEST_SIG_DFL || sig == SIGKILL) {
        terminate(p, sig);
        *stop = true;
        return ret;
    }
    /* After rt_sigreturn this is the restored context. A thread switched in returns from
     * its own call, not from the one that exited (the switched-out thread's). */
    struct kvm_regs regs;
    vm_get_user_regs(vm, ret, &regs);
    int64_t own_nr = lx_current_thread(p)->call_nr;
    uint64_t nr = own_nr >= 0 ? (uint64_t)own_nr : call->nr;
    if (ret == -EINTR && !vm_user_regs_were_set(vm) && restartable(nr, &regs) &&
        (p->sig.action[sig - 1].flags & SA_RESTART)) {
        regs.rip -= 2;              /* back onto the `syscall` (or the rewritten call) */
        regs.rax = nr;
    }
    if (!run_handler(p, sig, &regs, NULL)) {
        terminate(p, SIGSEGV);
        *stop = true;
    }
    return ret;
}

bool lx_signal_interrupt_due(void *ctx, struct vm *vm)
{
    struct lx_proc *p = ctx;
    (void)vm;
    if (lx_current_thread(p)->redo_call)
        return false;           /* as above: its redo is the first thing it does */
    int64_t timer = lx_signal_next_timer_ns(p);
    return (timer >= 0 && timer <= (int64_t)now_ns()) || (p->sig.pending & ~p->sig.blocked);
}

void lx_signal_interrupt(void *ctx, struct vm *vm)
{
    struct lx_proc *p = ctx;
    if (p->exited || !lx_signal_interrupts(p))
        return;
    int sig = lx_sig_next_deliverable(p);
    if (!lx_sig_acts(p, sig) || p->sig.action[sig - 1].handler == GUEST_SIG_DFL) {
        /* Ends the process: at its next system call (the engine has no stop here). */
        return;
    }
    p->sig.pending &= ~sig_bit(sig);
    struct kvm_regs regs;
    vm_get_user_regs(vm, 0, &regs);
    if (!run_handler(p, sig, &regs, NULL))
        p->sig.pending |= sig_bit(sig);     /* its stack is gone: it dies at its next call */
}

/* si_code of a fault, from the vector and its error code. */
static int fault_code(const struct vm_fault *f)
{
    switch (f->vector) {
    case 0:  return FPE_INTDIV;
    case 1: case 3: return f->vector == 3 ? SI_KERNEL : TRAP_TRACE;
    case 6:  return ILL_ILLOPN;
    case 14:
        /* The system area is mapped for ring 0 only: to the program it is not there. */
        return (f->error & 1) && f->addr >= SYSTEM_AREA_END ? SEGV_ACCERR : SEGV_MAPERR;
    case 16: case 19: return FPE_FLTINV;
    case 17: return BUS_ADRALN;
    default: return SI_KERNEL;
    }
}

bool lx_signal_fault(void *ctx, struct vm *vm, const struct vm_fault *f)
{
    struct lx_proc *p = ctx;
    int sig = f->signal;
    (void)vm;
    /* A blocked or ignored fault signal kills, as Linux's force_sig_fault does. */
    const struct lx_sigaction *act = &p->sig.action[sig - 1];
    if (act->handler == GUEST_SIG_DFL || act->handler == GUEST_SIG_IGN ||
        (p->sig.blocked & sig_bit(sig)))
        return false;
    struct fault_info fi = { .code = fault_code(f), .err = f->error, .trapno = f->vector,
                             .cr2 = f->addr };
    /* si_addr: the address for page faults, the instruction for traps, undefined and
     * arithmetic faults, 0 for protection faults (as the crash line reports it). */
    fi.addr = f->vector == 14 ? f->addr
            : (sig == SIGSEGV || sig == SIGBUS) ? 0 : f->regs.rip;
    if (f->vector == 3)
        fi.addr = 0;                    /* int3: Linux reports SI_KERNEL, no address */
    return run_handler(p, sig, &f->regs, &fi);
}

long sys_rt_sigreturn(struct lx_proc *p, const uint64_t a[6])
{
    (void)a;
    struct kvm_regs regs;
    vm_get_user_regs(p->vm, 0, &regs);
    uint64_t frame_at = regs.rsp - 8;   /* the handler's `ret` popped the restorer */
    struct guest_sigframe f;
    struct kvm_xsave *fpu = &(struct kvm_xsave){ 0 };
    if (gm_read(p->vm, &f, frame_at, sizeof f) || vm_fpu_save(p->vm, fpu))
        goto bad;
    const struct guest_sigcontext *mc = &f.uc.mcontext;
    if (mc->fpstate) {
        uint8_t *image = (uint8_t *)fpu->region;
        uint32_t fsize = xsave_size();
        uint8_t keep_pkru[8];
        unsigned psize, poff, ecx, edx;
        bool pkru = __get_cpuid_count(0xd, XFEATURE_PKRU, &psize, &poff, &ecx, &edx) &&
                    psize <= sizeof keep_pkru && poff + psize <= fsize;
        uint64_t old_bv;
        memcpy(&old_bv, image + XSAVE_HEADER, 8);
        if (pkru)
            memcpy(keep_pkru, image + poff, psize);
        if (gm_read(p->vm, image, mc->fpstate, fsize))
            goto bad;
        /* What KVM_SET_XSAVE would refuse, and the protection keys the host set. */
        uint32_t mxcsr, mask;
        memcpy(&mxcsr, image + 24, 4);
        memcpy(&mask, image + 28, 4);
        mxcsr &= mask ? mask : 0xffbf;
        memcpy(image + 24, &mxcsr, 4);
        uint64_t bv;
        memcpy(&bv, image + XSAVE_HEADER, 8);
        bv &= xsave_features();
        if (pkru) {
            memcpy(image + poff, keep_pkru, psize);
            bv = (bv & ~(1ull << XFEATURE_PKRU)) | (old_bv & (1ull << XFEATURE_PKRU));
        }
        memcpy(image + XSAVE_HEADER, &bv, 8);
        memset(image + XSAVE_HEADER + 8, 0, 56);
        if (vm_fpu_load(p->vm, fpu))
            goto bad;
    }
    from_sigcontext(&regs, mc);
    p->sig.blocked = f.uc.sigmask & ~UNBLOCKABLE;
    (void)set_altstack(p, &f.uc.stack, on_altstack(&p->sig, regs.rsp));
    if (vm_set_user_regs(p->vm, &regs))
        goto bad;
    return (long)regs.rax;
bad:
    terminate(p, SIGSEGV);
    return -EFAULT;
}
