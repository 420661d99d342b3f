/* Guest threads (see thread.h): the thread table, the scheduler and its time slices,
 * clone/clone3, thread exit and the switch points that are not futexes. */
#include "linux/thread.h"

#include <errno.h>
#include <limits.h>
#include <linux/sched.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>

#include "base/time.h"
#include "linux/process.h"
#include "linux/syscalls.h"
#include "linux/wait.h"
#include "vm/guest_mem.h"

#define EXIT_DEADLOCK 1
/* Longest host wait of a thread waiting for more fds than LX_WAIT_FDS while another one
 * waits for fds too: they take turns, so an event for the other is seen this late at worst. */
#define EVENT_SLICE_NS (10 * 1000000ll)

void lx_threads_init(struct lx_threads *t)
{
    t->current = 0;
    t->count = 1;
    t->used = 1;
    t->next_tid = LX_FIRST_TID + 1;
    t->wait_seq = 0;
    memset(&t->slot[0], 0, sizeof t->slot[0]);
    t->slot[0].tid = LX_FIRST_TID;
    t->slot[0].state = LX_THREAD_RUNNABLE;
    t->slot[0].wake_at_ns = -1;
    t->slot[0].restart_nr = -1;
    t->slot[0].call_nr = -1;
}

size_t lx_threads_copy_size(const struct lx_threads *t)
{
    int used = t->used < 0 ? 0 : t->used > LX_MAX_THREADS ? LX_MAX_THREADS : t->used;
    return offsetof(struct lx_threads, slot) + (size_t)used * sizeof t->slot[0];
}

void lx_threads_fork(struct lx_threads *dst, const struct lx_threads *src)
{
    memcpy(dst, src, lx_threads_copy_size(src));
    /* The host fds its waits recorded are the frozen process's (lx_threads_rebind). */
    for (int i = 0; i < dst->used; i++)
        dst->slot[i].nwait = -1;
}

/* The guest fd of host_fd in the frozen process, or -1 (the boot's private listeners, the
 * only fds waited for under another host fd, are closed by then). */
static int frozen_guest_fd(const struct lx_proc *p, int host_fd)
{
    int top = fdt_frozen_end(&p->fds);
    for (int g = 0; g < top; g++)
        if (p->fds.fd[g].kind != LX_FD_FREE && p->fds.fd[g].host_fd == host_fd)
            return g;
    return -1;
}

void lx_threads_rebind(struct lx_proc *dst, const struct lx_proc *src)
{
    const struct lx_threads *from = &src->threads;
    for (int i = 0; i < dst->threads.used && i < from->used; i++) {
        const struct lx_thread *frozen = &from->slot[i];
        struct lx_thread *th = &dst->threads.slot[i];
        if (frozen->state != LX_THREAD_POLL || frozen->nwait < 0 || frozen->nwait > LX_WAIT_FDS)
            continue;
        int n = 0;
        for (; n < frozen->nwait; n++) {
            int g = frozen_guest_fd(src, frozen->wait[n].fd);
            struct lx_fd *f = g < 0 ? NULL : fdt_get(&dst->fds, g);
            if (!f)
                break;          /* not one of its fds (the boot's private listener): it looks */
            th->wait[n] = frozen->wait[n];
            th->wait[n].fd = lx_wait_host_fd(dst, f);
        }
        if (n == frozen->nwait)
            th->nwait = n;
    }
}

struct lx_thread *lx_current_thread(struct lx_proc *p)
{
    return &p->threads.slot[p->threads.current];
}

int lx_current_tid(const struct lx_proc *p)
{
    int tid = p->threads.slot[p->threads.current].tid;
    /* The first thread is shown as the process (0: a table never set up, in unit tests). */
    return tid == LX_FIRST_TID || tid == 0 ? p->pid : tid;
}

bool lx_thread_exists(const struct lx_proc *p, int tid)
{
    /* The first thread answers to the pid, and to the tid its libc cached before a fork. */
    if (tid == p->pid)
        tid = LX_FIRST_TID;
    if (p->threads.count == 0)
        return tid == LX_FIRST_TID;
    for (int i = 0; i < p->threads.used; i++)
        if (p->threads.slot[i].state != LX_THREAD_FREE && p->threads.slot[i].tid == tid)
            return true;
    return false;
}

bool lx_multithreaded(const struct lx_proc *p)
{
    return p->threads.count > 1;
}

static bool is_waiting(const struct lx_thread *th)
{
    return th->state == LX_THREAD_FUTEX || th->state == LX_THREAD_SLEEP;
}

/* Timed waits that are over become runnable: a futex wait times out, a sleep ends, a wait
 * for fds is redone (and finds its time up). */
static void expire_waits(struct lx_threads *t, int64_t now)
{
    for (int i = 0; i < t->used; i++) {
        struct lx_thread *th = &t->slot[i];
        if (is_waiting(th) && th->wake_at_ns >= 0 && th->wake_at_ns <= now) {
            th->resume_ret = th->state == LX_THREAD_FUTEX ? -ETIMEDOUT : 0;
            th->state = LX_THREAD_RUNNABLE;
        } else if (th->state == LX_THREAD_POLL && th->event_end_ns >= 0 &&
                   th->event_end_ns <= now) {
            th->state = LX_THREAD_RUNNABLE;
        }
    }
}

/* Could another thread take the vCPU at the end of this one's slice: it is runnable, or it
 * waits for something that may come meanwhile (its fds, or the time)? */
static bool others_may_run(const struct lx_threads *t)
{
    for (int i = 0; i < t->used; i++) {
        const struct lx_thread *th = &t->slot[i];
        if (i != t->current && (th->state == LX_THREAD_RUNNABLE || th->state == LX_THREAD_POLL ||
                                (is_waiting(th) && th->wake_at_ns >= 0)))
            return true;
    }
    return false;
}

/* The engine kicks every slice while another thread may run, else at its default. */
static void update_kick(struct lx_proc *p)
{
    if (p->vm)
        vm_set_kick_interval(p->vm, others_may_run(&p->threads) ? (uint64_t)LX_SLICE_NS : 0);
}

/* Round robin: the threads after the current one first, the current one last. */
static int next_in(const struct lx_threads *t, bool (*pick)(const struct lx_proc *,
                                                            const struct lx_thread *),
                   const struct lx_proc *p)
{
    for (int k = 1; k <= t->used; k++) {
        int i = (t->current + k) % t->used;
        if (pick(p, &t->slot[i]))
            return i;
    }
    return -1;
}

static bool is_runnable(const struct lx_proc *p, const struct lx_thread *th)
{
    (void)p;
    return th->state == LX_THREAD_RUNNABLE;
}

/* A thread waiting for fds that must run to look for itself: the scheduler does not know
 * its fds, or it is the boot's wait for a connection, due to freeze now that it may. */
static bool must_look(const struct lx_proc *p, const struct lx_thread *th)
{
    return th->state == LX_THREAD_POLL &&
           (th->nwait < 0 || (th->wait_freezes && lx_freeze_due(p)));
}

/* The boot's wait for a connection, which has waited LX_QUIESCE_MAX_NS for the other
 * threads to block: it runs before them, and freezes with them runnable. */
static bool freeze_overdue(const struct lx_proc *p, const struct lx_thread *th)
{
    return must_look(p, th) && th->wait_freezes && th->quiesce_since_ns &&
           now_ns() - th->quiesce_since_ns >= LX_QUIESCE_MAX_NS;
}

static bool is_polling(const struct lx_proc *p, const struct lx_thread *th)
{
    (void)p;
    return th->state == LX_THREAD_POLL;
}

static bool others_in_state(const struct lx_threads *t, enum lx_thread_state state)
{
    for (int i = 0; i < t->used; i++)
        if (i != t->current && t->slot[i].state == state)
            return true;
    return false;
}

/* When the next timed wait of another thread ends (a futex wait, a sleep, a wait for fds). */
static int64_t earliest_wake(const struct lx_threads *t)
{
    int64_t best = -1;
    for (int i = 0; i < t->used; i++) {
        const struct lx_thread *th = &t->slot[i];
        int64_t at = is_waiting(th) ? th->wake_at_ns
                   : th->state == LX_THREAD_POLL ? th->event_end_ns : -1;
        if (at >= 0 && (best < 0 || at < best))
            best = at;
    }
    return best;
}

/* A thread's registers that user mode cannot be entered with (a non-canonical address): the
 * program ends as if it had crashed there. */
static long cannot_resume(struct lx_proc *p, int tid)
{
    fprintf(stderr, "kvmserver: guest thread %d cannot resume: a non-canonical instruction or "
            "stack address\n", tid);
    p->exited = true;
    p->exit_status = 128 + 11;
    return -EFAULT;
}

static long host_failure(struct lx_proc *p, const char *what)
{
    fprintf(stderr, "kvmserver: cannot %s a guest thread's CPU state\n", what);
    p->exited = true;
    p->exit_status = 128 + 9;
    return -EIO;
}

/* Puts thread `next` on the vCPU (the current one is saved unless it has exited) and
 * returns the RAX it resumes with. A thread switched out before its call ran is saved
 * with RCX (the return address) rewound onto its `syscall` and RAX = the call number. */
static long run_thread(struct lx_proc *p, int next)
{
    struct lx_threads *t = &p->threads;
    struct lx_thread *cur = &t->slot[t->current], *nt = &t->slot[next];
    nt->state = LX_THREAD_RUNNABLE;     /* it runs, or (an event wait) looks again */
    if (next == t->current) {
        if (cur->restart_nr >= 0) {
            /* The thread that parked itself is the one to run: it redoes its call at once,
             * on the host (lx_proc_syscall), without entering the guest to make it again. */
            cur->restart_nr = -1;
            return -LX_EREDO;
        }
        return cur->resume_ret;
    }
    if (cur->state != LX_THREAD_FREE) {
        if (vm_thread_save(p->vm, &cur->cpu))
            return host_failure(p, "save");
        /* This exit already set the exact registers it resumes with (a preempted thread put
         * back on the vCPU, a signal frame): those are its state, not the call's exit. */
        if (vm_user_regs_were_set(p->vm)) {
            vm_get_user_regs(p->vm, 0, &cur->cpu.regs);
            cur->preempted = true;
            cur->restart_nr = -1;
        } else if (cur->restart_nr >= 0) {
            cur->cpu.regs.rcx -= SYSCALL_INSN_LEN;
            cur->resume_ret = cur->restart_nr;
            cur->restart_nr = -1;
            cur->redo_call = true;
        }
    }
    if (vm_thread_load(p->vm, &nt->cpu))
        return host_failure(p, "load");
    /* It resumes exactly where its slice ended, not as a system call returns. */
    if (nt->preempted) {
        nt->preempted = false;
        if (vm_set_user_regs(p->vm, &nt->cpu.regs))
            return cannot_resume(p, nt->tid);
    }
    cur->sigmask = p->sig.blocked;      /* signal masks are per thread */
    p->sig.blocked = nt->sigmask;
    cur->suspended = p->sig.suspended;
    cur->suspend_mask = p->sig.suspend_mask;
    p->sig.suspended = nt->suspended;
    p->sig.suspend_mask = nt->suspend_mask;
    cur->altstack = p->sig.altstack;
    p->sig.altstack = nt->altstack;
    t->current = next;
    while (t->used > 1 && t->slot[t->used - 1].state == LX_THREAD_FREE)
        t->used--;
    t->slice_start_ns = (int64_t)now_ns();
    update_kick(p);
    return nt->resume_ret;
}

/* Nothing to wait for but the time. */
static long sleep_attempt(void *ctx, int64_t timeout_ns)
{
    (void)ctx;
    struct timespec ts = ns_timespec(timeout_ns);
    if (timeout_ns < 0)
        ts = (struct timespec){ .tv_sec = 3600 };
    return nanosleep(&ts, NULL) < 0 ? -EINTR : 0;
}

/* Every thread waits: the VM is idle, not busy (busy_limit_ns times only work). */
static long idle_wait(struct lx_proc *p, int64_t timeout_ns, lx_wait_attempt attempt, void *ctx)
{
    uint64_t busy = p->server.busy_limit_ns;
    if (p->vm)
        vm_set_kick_interval(p->vm, 0);     /* nobody runs: nothing to slice */
    if (busy)
        vm_set_deadline(p->vm, 0);
    long err = lx_wait_until(p, timeout_ns, attempt, ctx);
    if (busy)
        vm_set_deadline(p->vm, now_ns() + busy);
    return err;
}

struct poll_union {
    struct pollfd fds[LX_MAX_THREADS * LX_WAIT_FDS];
    int owner[LX_MAX_THREADS * LX_WAIT_FDS];    /* the slot whose wait it is */
    nfds_t n;
};

static long poll_union_attempt(void *ctx, int64_t timeout_ns)
{
    struct poll_union *u = ctx;
    struct timespec ts = { .tv_sec = timeout_ns / 1000000000, .tv_nsec = timeout_ns % 1000000000 };
    int r = ppoll(u->fds, u->n, timeout_ns < 0 ? NULL : &ts, NULL);
    return r < 0 ? -errno : r;
}

/* The fds every thread waiting for fds (and known to the host) waits for. */
static void collect_polls(const struct lx_threads *t, struct poll_union *u)
{
    u->n = 0;
    for (int i = 0; i < t->used; i++) {
        const struct lx_thread *th = &t->slot[i];
        for (int j = 0; th->state == LX_THREAD_POLL && j < th->nwait && j < LX_WAIT_FDS; j++) {
            u->fds[u->n] = th->wait[j];
            u->fds[u->n].revents = 0;
            u->owner[u->n++] = i;
        }
    }
}

/* The threads whose fds the poll found ready become runnable, to redo their calls. */
static void wake_ready_polls(struct lx_threads *t, const struct poll_union *u)
{
    for (nfds_t k = 0; k < u->n; k++)
        if (u->fds[k].revents)
            t->slot[u->owner[k]].state = LX_THREAD_RUNNABLE;
}

/* Every thread waits, some for fds (all known): one host wait for all of them, until one
 * is ready or timeout_ns. */
static long wait_for_polls(struct lx_proc *p, int64_t timeout_ns)
{
    struct poll_union u;
    collect_polls(&p->threads, &u);
    long r = idle_wait(p, timeout_ns, poll_union_attempt, &u);
    if (r > 0)
        wake_ready_polls(&p->threads, &u);
    return r;
}

bool lx_sched_preempt_due(const struct lx_proc *p)
{
    const struct lx_threads *t = &p->threads;
    int64_t now = (int64_t)now_ns();
    return t->count > 1 && now - t->slice_start_ns >= LX_SLICE_NS && others_may_run(t);
}

/* Marks the waits for fds that are ready now runnable (one host ppoll that does not wait). */
static void look_at_polls(struct lx_proc *p)
{
    struct poll_union u;
    collect_polls(&p->threads, &u);
    if (u.n && poll_union_attempt(&u, 0) > 0)
        wake_ready_polls(&p->threads, &u);
}

void lx_sched_preempt(struct lx_proc *p)
{
    struct lx_threads *t = &p->threads;
    int64_t now = (int64_t)now_ns();
    t->slice_start_ns = now;        /* switched or not, the next look is a slice away */
    expire_waits(t, now);
    look_at_polls(p);
    int next = next_in(t, is_runnable, p);
    /* A wait whose fds the host does not know (a fork's wait on the boot's listener) must
     * run to look: it gets the slice when no other thread can take it. */
    if (next == t->current) {
        int look = next_in(t, must_look, p);
        if (look >= 0)
            next = look;
    }
    if (next < 0 || next == t->current) {
        update_kick(p);
        return;
    }
    struct lx_thread *cur = &t->slot[t->current];
    cur->preempted = true;      /* stopped in its own code: every register as it is */
    bool next_preempted = t->slot[next].preempted;
    if (p->stats.profile)
        p->stats.profile->thread_switches++;
    long rax = run_thread(p, next);
    if (p->exited || next_preempted)
        return;
    /* The vCPU stopped in user code, but the thread now on it stopped in a system call:
     * it resumes as the call returns. */
    struct kvm_regs user = t->slot[next].cpu.regs;
    vm_syscall_return_regs(&user, rax);
    if (vm_set_user_regs(p->vm, &user))
        cannot_resume(p, t->slot[next].tid);
}

long lx_sched_switch(struct lx_proc *p)
{
    struct lx_threads *t = &p->threads;
    if (p->stats.profile)
        p->stats.profile->thread_switches++;
    for (;;) {
        int64_t now = (int64_t)now_ns();
        expire_waits(t, now);
        int next = next_in(t, freeze_overdue, p);
        if (next < 0)
            next = next_in(t, is_runnable, p);
        if (next < 0)
            next = next_in(t, must_look, p);
        if (next >= 0)
            return run_thread(p, next);
        /* A timer's signal may be for a thread other than this one: look again then. */
        int64_t wake = earliest_wake(t), timer = lx_signal_next_timer_ns(p);
        if (timer >= 0 && (wake < 0 || timer < wake))
            wake = timer;
        int64_t until_wake = wake < 0 ? -1 : wake > now ? wake - now : 0;
        int polling = next_in(t, is_polling, p);
        if (polling >= 0) {
            long err = wait_for_polls(p, until_wake);
            if (err < 0 && p->server.deadline_hit)
                return err;             /* the VM deadline: the VM stops */
            /* A signal for the program: a waiting thread redoes its call, which it ends. */
            if (err == -EINTR && next_in(t, is_runnable, p) < 0)
                return run_thread(p, polling);
            continue;
        }
        if (wake < 0 && t->count > 1) {
            fprintf(stderr, "kvmserver: deadlock: all %d guest threads wait on futexes with "
                    "no time limit, and only a guest thread could wake them\n", t->count);
            p->exited = true;
            p->exit_status = EXIT_DEADLOCK;
            return 0;
        }
        /* A lone thread that waits forever waits until the VM's deadline, as a hung
         * program would. */
        long err = idle_wait(p, until_wake, sleep_attempt, NULL);
        if (err < 0 && p->server.deadline_hit)
            return err;             /* the VM deadline: the VM stops */
        /* Else a signal woke the thread it is for (lx_signal_send): it runs next. */
    }
}

/* The waiter on addr that has waited longest, or NULL. */
static struct lx_thread *oldest_waiter(struct lx_threads *t, uint64_t addr, uint32_t bitset)
{
    struct lx_thread *best = NULL;
    for (int i = 0; i < t->used; i++) {
        struct lx_thread *th = &t->slot[i];
        if (th->state == LX_THREAD_FUTEX && th->futex_addr == addr &&
            (th->futex_bitset & bitset) && (!best || th->wait_seq < best->wait_seq))
            best = th;
    }
    return best;
}

int lx_futex_wake(struct lx_proc *p, uint64_t addr, uint32_t bitset, int n)
{
    int woken = 0;
    struct lx_thread *th;
    while (woken < n && (th = oldest_waiter(&p->threads, addr, bitset))) {
        th->state = LX_THREAD_RUNNABLE;
        th->resume_ret = 0;
        woken++;
    }
    if (woken)
        update_kick(p);
    p->server.warmup_wakes += (unsigned)woken;
    return woken;
}

int lx_futex_requeue(struct lx_proc *p, uint64_t addr, uint64_t addr2, int n)
{
    int moved = 0;
    struct lx_thread *th;
    if (addr == addr2)
        return 0;
    while (moved < n && (th = oldest_waiter(&p->threads, addr, UINT32_MAX))) {
        th->futex_addr = addr2;
        moved++;
    }
    return moved;
}

long lx_thread_exit(struct lx_proc *p, int status)
{
    struct lx_threads *t = &p->threads;
    if (t->count <= 1) {
        p->exited = true;
        p->exit_status = status & 0xff;
        return 0;
    }
    struct lx_thread *cur = &t->slot[t->current];
    if (cur->clear_child_tid) {
        /* pthread_join waits for this word to become 0. */
        uint32_t zero = 0;
        if (gm_write(p->vm, cur->clear_child_tid, &zero, sizeof zero) == 0)
            lx_futex_wake(p, cur->clear_child_tid, UINT32_MAX, 1);
    }
    lx_signal_forget_thread(p, cur->tid);
    cur->state = LX_THREAD_FREE;
    cur->tid = 0;
    t->count--;
    return lx_sched_switch(p);
}

long lx_thread_sleep(struct lx_proc *p, int64_t ns, uint64_t rem_gva)
{
    struct lx_thread *cur = lx_current_thread(p);
    cur->state = LX_THREAD_SLEEP;
    cur->wake_at_ns = ns_after((int64_t)now_ns(), ns);
    cur->sleep_rem_gva = rem_gva;
    return lx_sched_switch(p);
}

long lx_thread_pause(struct lx_proc *p)
{
    struct lx_thread *cur = lx_current_thread(p);
    cur->state = LX_THREAD_SLEEP;
    cur->wake_at_ns = -1;               /* only a signal ends it (lx_signal_send) */
    cur->sleep_rem_gva = 0;
    return lx_sched_switch(p);
}

long lx_thread_yield(struct lx_proc *p)
{
    struct lx_thread *cur = lx_current_thread(p);
    cur->state = LX_THREAD_RUNNABLE;
    cur->resume_ret = 0;
    return lx_sched_switch(p);
}

static int64_t min_limit(int64_t a, int64_t b)     /* < 0 = no limit */
{
    return a < 0 ? b : b < 0 ? a : a < b ? a : b;
}

int lx_thread_others_runnable(const struct lx_proc *p)
{
    const struct lx_threads *t = &p->threads;
    int n = 0;
    for (int i = 0; i < t->used; i++)
        n += i != t->current && t->slot[i].state == LX_THREAD_RUNNABLE;
    return n;
}

long lx_wait_fds(struct lx_proc *p, int64_t timeout_ns, lx_wait_attempt attempt, void *ctx,
                 const struct pollfd *fds, nfds_t n)
{
    struct lx_threads *t = &p->threads;
    /* A poller thread serves a call whose fd was ready: it never switches threads. */
    if (t->count <= 1 || vm_on_poller_thread())
        return lx_wait_until(p, timeout_ns, attempt, ctx);
    struct lx_thread *cur = &t->slot[t->current];
    int64_t now = (int64_t)now_ns();
    bool first_try = !cur->in_event_wait;
    if (first_try) {
        /* The first try of this call: its own time limit runs from now. Redos keep it. */
        cur->in_event_wait = true;
        cur->event_end_ns = timeout_ns < 0 ? -1 : ns_after(now, timeout_ns);
    }
    /* A look without waiting while another thread can run: the others go first, and the
     * look is made at this thread's next turn. On several CPUs they would run meanwhile; here
     * a loop of such looks (an event loop waiting for its workers' results) would keep them
     * off the one vCPU for good. */
    if (first_try && timeout_ns == 0 && others_in_state(t, LX_THREAD_RUNNABLE)) {
        cur->yield_first = true;
        return -LX_ESWITCH;
    }
    expire_waits(t, now);
    int64_t left = cur->event_end_ns < 0 ? -1
                 : cur->event_end_ns > now ? cur->event_end_ns - now : 0;
    bool known = n <= LX_WAIT_FDS;
    /* Look without waiting while another thread can run, or waits for fds the scheduler
     * will wait for together with these; else wait here, but not past another thread's
     * timed wait (nor, with fds the scheduler cannot hold, past a slice). */
    int64_t wait = left;
    if (others_in_state(t, LX_THREAD_RUNNABLE) || (known && others_in_state(t, LX_THREAD_POLL))) {
        wait = 0;
    } else {
        if (others_in_state(t, LX_THREAD_POLL))
            wait = min_limit(wait, EVENT_SLICE_NS);
        int64_t wake = earliest_wake(t);
        if (wake >= 0)
            wait = min_limit(wait, wake > now ? wake - now : 0);
    }
    long r = wait ? idle_wait(p, wait, attempt, ctx) : lx_wait_until(p, 0, attempt, ctx);
    if (r != 0 || wait == left)
        return r;           /* ready, an error or a signal, or the guest's own time is up */
    cur->nwait = known ? (int)n : -1;
    if (known && n)
        memcpy(cur->wait, fds, n * sizeof *fds);
    return -LX_ESWITCH;
}

uint64_t lx_wait_end_ns(struct lx_proc *p, int64_t timeout_ns)
{
    const struct lx_thread *cur = lx_current_thread(p);
    if (cur->in_event_wait && cur->event_end_ns >= 0)
        return (uint64_t)cur->event_end_ns;
    return (uint64_t)ns_after((int64_t)now_ns(), timeout_ns);
}

long lx_thread_park(struct lx_proc *p, uint64_t nr)
{
    struct lx_thread *cur = lx_current_thread(p);
    /* A look that lets the others go first is runnable; a wait waits for its fds. */
    cur->state = cur->yield_first ? LX_THREAD_RUNNABLE : LX_THREAD_POLL;
    cur->yield_first = false;
    cur->restart_nr = (int64_t)nr;
    return lx_sched_switch(p);
}

/* ---- clone and clone3 --------------------------------------------------------------- */

/* Only what pthread_create asks for: a thread in this process. */
#define THREAD_FLAGS (CLONE_VM | CLONE_THREAD | CLONE_SIGHAND)
#define ALLOWED_FLAGS (THREAD_FLAGS | CLONE_FS | CLONE_FILES | CLONE_SYSVSEM | CLONE_SETTLS | \
                       CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID | CLONE_CHILD_SETTID | \
                       CLONE_DETACHED)

static int free_slot(struct lx_threads *t)
{
    for (int i = 0; i < t->used; i++)
        if (t->slot[i].state == LX_THREAD_FREE)
            return i;
    return t->used < LX_MAX_THREADS ? t->used : -1;
}

static long start_thread(struct lx_proc *p, uint64_t flags, uint64_t stack, uint64_t parent_tid,
                         uint64_t child_tid, uint64_t tls, uint64_t exit_signal)
{
    struct lx_threads *t = &p->threads;
    if (!(flags & CLONE_VM) || (flags & THREAD_FLAGS) != THREAD_FLAGS)
        return -ENOSYS;             /* a new process: there is one address space per VM */
    if ((flags & ~(uint64_t)ALLOWED_FLAGS) || exit_signal)
        return -EINVAL;
    if ((flags & CLONE_SETTLS) && tls >= (1ull << 47))
        return -EPERM;
    /* Linux lets a thread start on a non-canonical stack (it faults at its first push);
     * kvm_pvm cannot enter user mode with one, and the whole VM would stop. */
    if (stack >= (1ull << 47))
        return -EINVAL;
    if (t->count < 1 || t->count >= LX_MAX_THREADS)
        return -EAGAIN;
    int i = free_slot(t);
    if (i < 0 || t->next_tid == INT_MAX)
        return -EAGAIN;
    struct lx_thread *th = &t->slot[i];
    /* The new thread starts as a copy of this one, returning 0 from the same call. */
    if (vm_thread_save(p->vm, &th->cpu))
        return -EAGAIN;
    if (stack)
        th->cpu.regs.rsp = stack;
    if (flags & CLONE_SETTLS)
        th->cpu.fs_base = tls;
    if (t->next_tid == p->pid)      /* the first thread shows the pid: never hand it out */
        t->next_tid++;
    int tid = t->next_tid++;
    th->tid = tid;
    th->state = LX_THREAD_RUNNABLE;
    th->resume_ret = 0;
    th->futex_addr = 0;
    th->futex_bitset = 0;
    th->wait_seq = 0;
    th->wake_at_ns = -1;
    th->sleep_rem_gva = 0;
    th->restart_nr = -1;
    th->call_nr = -1;
    th->redo_call = false;
    th->in_event_wait = false;
    th->preempted = false;          /* a copy of a system call's exit */
    th->event_end_ns = -1;
    th->wait_freezes = false;
    th->nwait = -1;
    th->clear_child_tid = (flags & CLONE_CHILD_CLEARTID) ? child_tid : 0;
    th->sigmask = p->sig.blocked;       /* a new thread inherits its creator's mask */
    th->suspended = false;
    th->altstack = (struct lx_altstack){ 0 };   /* CLONE_VM: none of its creator's */
    t->count++;
    if (i == t->used)
        t->used++;
    /* Linux ignores faults on these two writes as well. */
    uint32_t tid32 = (uint32_t)tid;
    if (flags & CLONE_PARENT_SETTID)
        (void)gm_write(p->vm, parent_tid, &tid32, sizeof tid32);
    if (flags & CLONE_CHILD_SETTID)
        (void)gm_write(p->vm, child_tid, &tid32, sizeof tid32);
    return tid;
}

long sys_clone(struct lx_proc *p, const uint64_t a[6])
{
    /* x86-64 order: flags, stack, parent_tid, child_tid, tls. The low byte of flags is the
     * exit signal, which Linux ignores for a thread (clone3 refuses one). */
    return start_thread(p, a[0] & 0xffffffff & ~(uint64_t)CSIGNAL, a[1], a[2], a[3], a[4], 0);
}

struct lx_clone_args {          /* struct clone_args, as far as we read it */
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
    uint64_t set_tid, set_tid_size, cgroup;
};

long sys_clone3(struct lx_proc *p, const uint64_t a[6])
{
    struct lx_clone_args ca = { 0 };
    uint64_t size = a[1];
    if (size < 64)                  /* CLONE_ARGS_SIZE_VER0 */
        return -EINVAL;
    if (size > 4096)
        return -E2BIG;
    size_t known = size < sizeof ca ? (size_t)size : sizeof ca;
    if (gm_read(p->vm, &ca, a[0], known))
        return -EFAULT;
    /* A newer struct is fine as long as what we do not know is zero. */
    for (uint64_t off = sizeof ca; off < size; off += 8) {
        uint64_t word = 0;
        size_t n = size - off < 8 ? (size_t)(size - off) : 8;
        if (gm_read(p->vm, &word, a[0] + off, n))
            return -EFAULT;
        if (word)
            return -E2BIG;
    }
    if (ca.set_tid || ca.set_tid_size || (ca.flags >> 32))
        return -EINVAL;
    if ((ca.stack == 0) != (ca.stack_size == 0) || ca.stack + ca.stack_size < ca.stack)
        return -EINVAL;
    uint64_t top = ca.stack + ca.stack_size;
    return start_thread(p, ca.flags, top, ca.parent_tid, ca.child_tid, ca.tls, ca.exit_signal);
}
