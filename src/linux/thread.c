/* Cooperative guest threads (see thread.h): the thread table, the scheduler, clone/clone3,
 * thread exit and the switch points that are not futexes. */
#include "linux/thread.h"

#include <errno.h>
#include <limits.h>
#include <linux/sched.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>

#include "linux/process.h"
#include "linux/syscalls.h"
#include "linux/wait.h"
#include "vm/guest_mem.h"

#define SYSCALL_INSN_LEN 2      /* `syscall` is 0f 05: rewinding RCX by this redoes it */
#define EXIT_DEADLOCK 1
/* Longest host wait of one thread's event wait while another thread also waits for
 * events: they take turns, so an event for the other is seen this late at worst. */
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
}

size_t lx_threads_copy_size(const struct lx_threads *t)
{
    int used = t->used < 0 ? 0 : t->used > LX_MAX_THREADS ? LX_MAX_THREADS : t->used;
    return offsetof(struct lx_threads, slot) + (size_t)used * sizeof t->slot[0];
}

void lx_threads_fork(struct lx_threads *dst, const struct lx_threads *src)
{
    memcpy(dst, src, lx_threads_copy_size(src));
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

/* Timed waits that are over become runnable: a futex wait times out, a sleep ends. */
static void expire_waits(struct lx_threads *t, int64_t now)
{
    for (int i = 0; i < t->used; i++) {
        struct lx_thread *th = &t->slot[i];
        if (is_waiting(th) && th->wake_at_ns >= 0 && th->wake_at_ns <= now) {
            th->resume_ret = th->state == LX_THREAD_FUTEX ? -ETIMEDOUT : 0;
            th->state = LX_THREAD_RUNNABLE;
        }
    }
}

/* Round robin: the threads after the current one first, the current one last. A thread
 * in an event wait takes its turn too (it looks for events, and waits only when nobody
 * else can run). */
static int next_runnable(const struct lx_threads *t)
{
    for (int k = 1; k <= t->used; k++) {
        int i = (t->current + k) % t->used;
        if (t->slot[i].state == LX_THREAD_RUNNABLE || t->slot[i].state == LX_THREAD_POLL)
            return i;
    }
    return -1;
}

static bool others_in_state(const struct lx_threads *t, enum lx_thread_state state)
{
    for (int i = 0; i < t->used; i++)
        if (i != t->current && t->slot[i].state == state)
            return true;
    return false;
}

static int64_t earliest_wake(const struct lx_threads *t)
{
    int64_t best = -1;
    for (int i = 0; i < t->used; i++) {
        const struct lx_thread *th = &t->slot[i];
        if (is_waiting(th) && th->wake_at_ns >= 0 && (best < 0 || th->wake_at_ns < best))
            best = th->wake_at_ns;
    }
    return best;
}

static int64_t now_ns(void)
{
    return (int64_t)lx_now_ns();
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
            p->vm->run->s.regs.regs.rcx -= SYSCALL_INSN_LEN;
            cur->resume_ret = cur->restart_nr;
            cur->restart_nr = -1;
        }
        return cur->resume_ret;
    }
    if (cur->state != LX_THREAD_FREE) {
        if (vm_thread_save(p->vm, &cur->cpu))
            return host_failure(p, "save");
        if (cur->restart_nr >= 0) {
            cur->cpu.regs.rcx -= SYSCALL_INSN_LEN;
            cur->resume_ret = cur->restart_nr;
            cur->restart_nr = -1;
        }
    }
    if (vm_thread_load(p->vm, &nt->cpu))
        return host_failure(p, "load");
    cur->sigmask = p->sig.blocked;      /* signal masks are per thread */
    p->sig.blocked = nt->sigmask;
    cur->suspended = p->sig.suspended;
    cur->suspend_mask = p->sig.suspend_mask;
    p->sig.suspended = nt->suspended;
    p->sig.suspend_mask = nt->suspend_mask;
    t->current = next;
    while (t->used > 1 && t->slot[t->used - 1].state == LX_THREAD_FREE)
        t->used--;
    return nt->resume_ret;
}

/* Nothing to wait for but the time. */
static long sleep_attempt(void *ctx, int64_t timeout_ns)
{
    (void)ctx;
    struct timespec ts = { .tv_sec = timeout_ns / 1000000000, .tv_nsec = timeout_ns % 1000000000 };
    if (timeout_ns < 0)
        ts = (struct timespec){ .tv_sec = 3600 };
    return nanosleep(&ts, NULL) < 0 ? -EINTR : 0;
}

long lx_sched_switch(struct lx_proc *p)
{
    struct lx_threads *t = &p->threads;
    for (;;) {
        int64_t now = now_ns();
        expire_waits(t, now);
        int next = next_runnable(t);
        if (next >= 0)
            return run_thread(p, next);
        int64_t wake = earliest_wake(t);
        if (wake < 0 && t->count > 1 && lx_signal_next_timer_ns(p) < 0) {
            fprintf(stderr, "kvmserver: deadlock: all %d guest threads wait on futexes with "
                    "no time limit, and only a guest thread could wake them\n", t->count);
            p->exited = true;
            p->exit_status = EXIT_DEADLOCK;
            return 0;
        }
        /* A lone thread that waits forever waits until the VM's deadline, as a hung
         * program would. */
        long err = lx_wait_until(p, wake < 0 ? -1 : wake - now, sleep_attempt, NULL);
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
    cur->state = LX_THREAD_FREE;
    cur->tid = 0;
    t->count--;
    return lx_sched_switch(p);
}

long lx_thread_sleep(struct lx_proc *p, int64_t ns)
{
    struct lx_thread *cur = lx_current_thread(p);
    int64_t now = now_ns();
    cur->state = LX_THREAD_SLEEP;
    cur->wake_at_ns = ns > INT64_MAX - now ? INT64_MAX : now + ns;
    return lx_sched_switch(p);
}

long lx_thread_pause(struct lx_proc *p)
{
    struct lx_thread *cur = lx_current_thread(p);
    cur->state = LX_THREAD_SLEEP;
    cur->wake_at_ns = -1;               /* only a signal ends it (lx_signal_send) */
    return lx_sched_switch(p);
}

long lx_thread_yield(struct lx_proc *p)
{
    struct lx_thread *cur = lx_current_thread(p);
    cur->state = LX_THREAD_RUNNABLE;
    cur->resume_ret = 0;
    return lx_sched_switch(p);
}

static bool stopping(const struct lx_proc *p)
{
    return p->exited || p->server.frozen || p->server.request_done ||
           p->server.memory_exceeded || p->server.deadline_hit;
}

/* Which argument holds a wait's timeout in milliseconds (an int, < 0 = forever). */
static int timeout_ms_arg(uint64_t nr)
{
    switch (nr) {
    case __NR_epoll_wait: case __NR_epoll_pwait:
        return 3;
    case __NR_poll:
        return 2;
    default:
        return -1;
    }
}

static int64_t min_limit(int64_t a, int64_t b)     /* < 0 = no limit */
{
    return a < 0 ? b : b < 0 ? a : a < b ? a : b;
}

long lx_thread_event_wait(struct lx_proc *p, uint64_t nr, const uint64_t a[6])
{
    struct lx_threads *t = &p->threads;
    int ti = timeout_ms_arg(nr);
    if (t->count <= 1 || ti < 0)
        return lx_dispatch(p, nr, a);
    struct lx_thread *cur = &t->slot[t->current];
    int64_t now = now_ns();
    if (!cur->in_event_wait) {
        /* The first try of this call: its own time limit runs from now. Retries (the
         * thread was switched out and redoes the call) keep it. */
        int guest_ms = (int)(uint32_t)a[ti];
        cur->in_event_wait = true;
        cur->event_end_ns = guest_ms < 0 ? -1 : now + (int64_t)guest_ms * 1000000;
    }
    expire_waits(t, now);
    int64_t left = cur->event_end_ns < 0 ? -1
                 : cur->event_end_ns > now ? cur->event_end_ns - now : 0;
    /* Look without waiting while another thread can run; wait a slice at most while
     * another one waits for events too; never past another thread's timed wait. */
    int64_t wait = left;
    if (others_in_state(t, LX_THREAD_RUNNABLE)) {
        wait = 0;
    } else {
        if (others_in_state(t, LX_THREAD_POLL))
            wait = min_limit(wait, EVENT_SLICE_NS);
        int64_t wake = earliest_wake(t);
        if (wake >= 0)
            wait = min_limit(wait, wake > now ? wake - now : 0);
    }
    uint64_t args[6];
    memcpy(args, a, sizeof args);
    int64_t wait_ms = wait < 0 ? -1 : (wait + 999999) / 1000000;
    args[ti] = (uint64_t)(int64_t)(wait_ms > INT_MAX ? INT_MAX : wait_ms);
    long ret = lx_dispatch(p, nr, args);
    if (ret != 0 || stopping(p) || wait == left) {
        cur->in_event_wait = false;     /* events, an error, or the guest's own time is up */
        return ret;
    }
    /* Nothing yet: the others run, and this call is made again at the thread's turn. */
    cur->state = LX_THREAD_POLL;
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
    th->restart_nr = -1;
    th->in_event_wait = false;
    th->event_end_ns = -1;
    th->clear_child_tid = (flags & CLONE_CHILD_CLEARTID) ? child_tid : 0;
    th->sigmask = p->sig.blocked;       /* a new thread inherits its creator's mask */
    th->suspended = false;
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
