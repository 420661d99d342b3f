/* Signals: sending them (kill, tgkill, timers), and waiting for them (pause, sigsuspend, a
 * wait's temporary mask); see sig.h. */
#include "linux/sig.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "base/time.h"
#include "linux/process.h"
#include "linux/signal_internal.h"
#include "linux/syscalls.h"
#include "linux/wait.h"
#include "vm/guest_mem.h"

/* ---- sending -------------------------------------------------------------------------- */

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

bool lx_sig_acts(const struct lx_proc *p, int sig)
{
    uint64_t handler = sig == SIGKILL ? GUEST_SIG_DFL : p->sig.action[sig - 1].handler;
    return handler == GUEST_SIG_DFL ? default_terminates(sig) : handler != GUEST_SIG_IGN;
}

/* The running thread's tid as the thread table knows it: the first thread's stays
 * LX_FIRST_TID, whatever pid it shows (see process.h). */
static int own_tid(const struct lx_proc *p)
{
    int tid = p->threads.slot[p->threads.current].tid;
    return tid ? tid : LX_FIRST_TID;
}

uint64_t lx_sig_pending_here(const struct lx_proc *p)
{
    int tid = own_tid(p);
    uint64_t here = 0;
    for (uint64_t rest = p->sig.pending; rest; rest &= rest - 1) {
        int sig = __builtin_ctzll(rest) + 1;
        if (!p->sig.target[sig - 1] || p->sig.target[sig - 1] == tid)
            here |= sig_bit(sig);
    }
    return here;
}

int lx_sig_next_deliverable(const struct lx_proc *p)
{
    uint64_t ready = lx_sig_pending_here(p) & ~p->sig.blocked;
    return ready ? __builtin_ctzll(ready) + 1 : 0;
}

/* The signals guest thread `slot` blocks: the running one's are in p->sig, the others' were
 * saved when they were switched out (a wait's temporary mask included). */
static uint64_t thread_blocked(const struct lx_proc *p, int slot)
{
    return slot == p->threads.current ? p->sig.blocked : p->threads.slot[slot].sigmask;
}

static int slot_of_tid(const struct lx_proc *p, int tid)
{
    for (int i = 0; i < p->threads.used; i++)
        if (p->threads.slot[i].state != LX_THREAD_FREE && p->threads.slot[i].tid == tid)
            return i;
    return p->threads.current;
}

static bool thread_waits(const struct lx_thread *th)
{
    return th->state == LX_THREAD_FUTEX || th->state == LX_THREAD_SLEEP ||
           th->state == LX_THREAD_POLL;
}

/* The thread that takes a signal for the process, as Linux chooses it: the first thread if
 * it does not block it, else the running one if it does not, else the first one waiting
 * that does not; -1 if none (it stays pending for whichever unblocks it first). */
static int process_signal_taker(const struct lx_proc *p, int sig)
{
    const struct lx_threads *t = &p->threads;
    if (t->count == 0)
        return t->current;
    int waiting = -1;
    for (int i = 0; i < t->used; i++) {
        const struct lx_thread *th = &t->slot[i];
        if (th->state == LX_THREAD_FREE || (thread_blocked(p, i) & sig_bit(sig)))
            continue;
        if (th->tid == LX_FIRST_TID || th->tid == 0)
            return i;
        if (waiting < 0 && thread_waits(th))
            waiting = i;
    }
    const struct lx_thread *cur = &t->slot[t->current];
    if (cur->state == LX_THREAD_RUNNABLE && !(thread_blocked(p, t->current) & sig_bit(sig)))
        return t->current;
    return waiting;
}

void lx_signal_send(struct lx_proc *p, int sig, int tid, const struct lx_sig_origin *from)
{
    /* The first thread is named by the pid or by LX_FIRST_TID (the tid its libc cached
     * before the freeze, which a runtime then signals it by): one thread, one name. */
    if (tid == p->pid)
        tid = LX_FIRST_TID;
    /* A signal for one thread is blocked or not by that thread's mask, not the sender's. */
    uint64_t target_blocked = thread_blocked(p, tid ? slot_of_tid(p, tid) : p->threads.current);
    if (!lx_sig_acts(p, sig) && !(target_blocked & sig_bit(sig)))
        return;                         /* ignored: discarded at once */
    if (p->sig.pending & sig_bit(sig))
        return;                         /* standard signals do not queue */
    p->sig.pending |= sig_bit(sig);
    p->sig.origin[sig - 1] = *from;
    p->sig.target[sig - 1] = tid == own_tid(p) && !lx_multithreaded(p) ? 0 : tid;
    int taker = tid ? slot_of_tid(p, tid) : process_signal_taker(p, sig);
    if (taker < 0 || (thread_blocked(p, taker) & sig_bit(sig)))
        return;
    /* A thread that waits takes it: its wait ends with EINTR (one waiting for fds redoes its
     * call, which sees the signal), which SA_RESTART may turn into the call made again as
     * its handler returns (lx_signal_after_syscall). It alone may take one for the process,
     * or the running thread could take it while the woken wait ends with nothing to show
     * for it. */
    struct lx_thread *th = &p->threads.slot[taker];
    if (!thread_waits(th))
        return;
    if (!tid)
        p->sig.target[sig - 1] = th->tid ? th->tid : LX_FIRST_TID;
    if (th->state == LX_THREAD_SLEEP) {
        int64_t left = th->wake_at_ns < 0 ? 0 : th->wake_at_ns - (int64_t)now_ns();
        th->resume_ret = lx_sleep_interrupted(p, th->sleep_rem_gva, left);
    } else if (th->state != LX_THREAD_POLL) {
        th->resume_ret = -EINTR;
    }
    th->state = LX_THREAD_RUNNABLE;
}

void lx_signal_forget_thread(struct lx_proc *p, int tid)
{
    for (int sig = 1; sig <= LX_NSIG; sig++)
        if (tid && p->sig.target[sig - 1] == tid) {
            p->sig.pending &= ~sig_bit(sig);
            p->sig.target[sig - 1] = 0;
        }
}

/* A timer that expired raises its signal, and is re-armed or disarmed. */
static void timer_fire(struct lx_proc *p, struct lx_timer *t, int id, int64_t now)
{
    if (!t->next_ns || t->next_ns > now)
        return;
    int64_t missed = 0;
    if (t->interval_ns > 0) {
        missed = (now - t->next_ns) / t->interval_ns;
        t->next_ns += (missed + 1) * t->interval_ns;
    } else {
        t->next_ns = 0;
    }
    if (!t->signo)
        return;
    if (p->sig.pending & sig_bit(t->signo)) {
        t->overrun += (int32_t)(missed + 1);   /* the signal is still on its way */
        return;
    }
    /* A thread it was for that has exited: nobody takes it. */
    if (t->tid && !lx_thread_exists(p, t->tid))
        return;
    t->overrun = (int32_t)missed;
    struct lx_sig_origin from = { .code = id < 0 ? SI_KERNEL : SI_TIMER, .a = id,
                                  .b = t->overrun, .value = t->value };
    lx_signal_send(p, t->signo, t->tid, &from);
}

void lx_sig_fire_timers(struct lx_proc *p)
{
    int64_t now = (int64_t)now_ns();
    timer_fire(p, &p->sig.itimer_real, -1, now);
    for (int i = 0; i < LX_MAX_TIMERS; i++)
        if (p->sig.timers[i].used)
            timer_fire(p, &p->sig.timers[i], i, now);
}

int64_t lx_signal_next_timer_ns(const struct lx_proc *p)
{
    int64_t best = p->sig.itimer_real.next_ns ? p->sig.itimer_real.next_ns : -1;
    for (int i = 0; i < LX_MAX_TIMERS; i++) {
        const struct lx_timer *t = &p->sig.timers[i];
        if (t->used && t->next_ns && (best < 0 || t->next_ns < best))
            best = t->next_ns;
    }
    return best;
}

bool lx_signal_interrupts(struct lx_proc *p)
{
    lx_sig_fire_timers(p);
    return lx_sig_next_deliverable(p) != 0;
}

/* Checks the signal number once the target is known to exist (Linux's order); 0 only probes. */
static long signal_thread(struct lx_proc *p, int sig, int tid, int code)
{
    if (sig < 0 || sig > LX_NSIG)
        return -EINVAL;
    if (sig == 0)
        return 0;
    struct lx_sig_origin from = { .code = code, .a = p->pid, .b = (int32_t)getuid() };
    lx_signal_send(p, sig, tid, &from);
    return 0;
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
    return signal_thread(p, (int)(uint32_t)a[1], 0, SI_USER);
}

long sys_tgkill(struct lx_proc *p, const uint64_t a[6])
{
    int tgid = (int)(uint32_t)a[0], tid = (int)(uint32_t)a[1];
    if (tgid <= 0 || tid <= 0)
        return -EINVAL;
    if (tgid != p->pid || !lx_thread_exists(p, tid))
        return -ESRCH;
    return signal_thread(p, (int)(uint32_t)a[2], tid, SI_TKILL);
}

long sys_tkill(struct lx_proc *p, const uint64_t a[6])
{
    int tid = (int)(uint32_t)a[0];
    if (tid <= 0)
        return -EINVAL;
    if (!lx_thread_exists(p, tid))
        return -ESRCH;
    return signal_thread(p, (int)(uint32_t)a[1], tid, SI_TKILL);
}

/* ---- waiting for a signal ----------------------------------------------------------- */

static long until_signal(void *ctx, int64_t timeout_ns)
{
    struct lx_proc *p = ctx;
    if (lx_signal_interrupts(p))
        return 1;
    int64_t next = lx_signal_next_timer_ns(p);
    if (next >= 0) {
        int64_t to_timer = next - (int64_t)now_ns();
        to_timer = to_timer < 0 ? 0 : to_timer;
        timeout_ns = timeout_ns < 0 || to_timer < timeout_ns ? to_timer : timeout_ns;
    }
    struct timespec ts = ns_timespec(timeout_ns);
    if (timeout_ns < 0)
        ts = (struct timespec){ .tv_sec = 3600 };
    nanosleep(&ts, NULL);
    return lx_signal_interrupts(p) ? 1 : -EINTR;
}

/* Waits until a signal would interrupt: -EINTR then (its handler runs as the call returns),
 * or the VM deadline's -EINTR. */
static long wait_for_signal(struct lx_proc *p)
{
    /* Another guest thread may be the one to send it: it must be able to run. */
    if (lx_multithreaded(p))
        return lx_signal_interrupts(p) ? -EINTR : lx_thread_pause(p);
    long r = lx_wait_until(p, -1, until_signal, p);
    return r < 0 ? r : -EINTR;
}

long sys_pause(struct lx_proc *p, const uint64_t a[6])
{
    (void)a;
    return wait_for_signal(p);
}

long sys_rt_sigsuspend(struct lx_proc *p, const uint64_t a[6])
{
    uint64_t mask;
    if (a[1] != GUEST_SIGSET_SIZE)
        return -EINVAL;
    if (gm_read(p->vm, &mask, a[0], sizeof mask))
        return -EFAULT;
    /* The handler runs with the mask given here; the caller's comes back after it. */
    p->sig.suspend_mask = p->sig.blocked;
    p->sig.suspended = true;
    p->sig.blocked = mask & ~UNBLOCKABLE;
    return wait_for_signal(p);
}

long lx_signal_wait_mask(struct lx_proc *p, uint64_t mask_gva, uint64_t size)
{
    if (!mask_gva)
        return 0;
    if (size != GUEST_SIGSET_SIZE)
        return -EINVAL;
    uint64_t mask;
    if (gm_read(p->vm, &mask, mask_gva, sizeof mask))
        return -EFAULT;
    /* A redo of the call after a thread switch keeps the caller's mask saved the first time. */
    if (!p->sig.suspended) {
        p->sig.suspend_mask = p->sig.blocked;
        p->sig.suspended = true;
    }
    p->sig.blocked = mask & ~UNBLOCKABLE;
    return 0;
}

void lx_sig_end_call_mask(struct lx_signals *s)
{
    s->blocked = s->suspend_mask;
    s->suspended = false;
}
