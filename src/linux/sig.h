/* Signal delivery as Linux does it: to a guest handler on its stack or the alternate stack,
 * with siginfo_t and ucontext_t, and back with rt_sigreturn. Synchronous faults come from
 * the engine (vm_ops.fault); sent and timer signals arrive at the end of a system call that
 * came by an exit, end a host wait early with EINTR, or interrupt a guest that runs its own
 * code at the engine's next kick (vm_ops.interrupt: up to ~50 ms late). */
#ifndef KVMS_SIG_H
#define KVMS_SIG_H
#include <stdbool.h>
#include <stdint.h>

struct lx_proc;
struct vm;
struct vm_fault;
struct vm_syscall;

/* How a signal was sent: the si_code and the words siginfo_t carries for it. */
struct lx_sig_origin {
    int32_t code;       /* SI_USER, SI_TKILL, SI_TIMER, SI_KERNEL */
    int32_t a, b;       /* SI_USER/SI_TKILL: pid, uid; SI_TIMER: timer id, overrun */
    uint64_t value;     /* SI_TIMER: sigev_value */
};

/* Makes sig pending for thread tid (0: any thread of the process); a thread that waits is
 * woken with EINTR if the signal would interrupt it. */
void lx_signal_send(struct lx_proc *p, int sig, int tid, const struct lx_sig_origin *from);
/* Thread tid exits: the signals sent to it alone, still pending, go with it (as on Linux;
 * kept, no signal of their numbers could be sent again). */
void lx_signal_forget_thread(struct lx_proc *p, int tid);
/* Expired timers raise their signals; then: would a signal interrupt the running thread's
 * wait now (unblocked and not ignored)? */
bool lx_signal_interrupts(struct lx_proc *p);
/* CLOCK_MONOTONIC ns of the earliest armed timer; < 0 if none (waits end there). */
int64_t lx_signal_next_timer_ns(const struct lx_proc *p);
/* The signal mask argument of ppoll, pselect6 and epoll_pwait*: as rt_sigsuspend's, it is
 * the thread's mask for the call, so a signal it lets through ends the wait and its handler
 * runs with it (the caller's mask comes back at rt_sigreturn); any other end of the call
 * puts the caller's back. 0 for no mask; -EINVAL for a wrong size, -EFAULT for a bad
 * pointer. */
long lx_signal_wait_mask(struct lx_proc *p, uint64_t mask_gva, uint64_t size);

/* vm_ops hooks (process.c registers them). */
long lx_signal_after_syscall(void *ctx, struct vm *vm, const struct vm_syscall *call, long ret,
                             bool *stop);
bool lx_signal_exit_after_shared(void *ctx, struct vm *vm, const struct vm_syscall *call,
                                 long ret);
bool lx_signal_interrupt_due(void *ctx, struct vm *vm);
void lx_signal_interrupt(void *ctx, struct vm *vm);
bool lx_signal_fault(void *ctx, struct vm *vm, const struct vm_fault *f);

#endif
