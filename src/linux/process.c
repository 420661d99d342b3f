/* Setting up a guest process and handing each of its system calls to the table. */
#include "linux/process.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>

#include "base/log.h"
#include "base/time.h"
#include "base/units.h"
#include "linux/listener.h"
#include "linux/syscalls.h"
#include "linux/wait.h"
#include "vm/engine.h"

/* Tells the entry stub what getpid and getppid answer (vm_set_stub_answers). */
static void publish_ids(struct lx_proc *p)
{
    if (p->vm)
        vm_set_stub_answers(p->vm, (const struct vm_stub_answer[STUB_ANSWERS]){
                                       { SYS_getpid, (uint64_t)p->pid },
                                       { SYS_getppid, (uint64_t)p->ppid } });
}

/* A pid for a new request VM generation: one counter for all request VMs, so no two live
 * ones share a pid until 4 million generations later, as Linux reuses pids; never one
 * that a thread of the frozen program already has as its tid. */
static int new_fork_pid(const struct lx_proc *frozen)
{
    static _Atomic uint64_t generations;
    int lowest = frozen->threads.next_tid > LX_PID_RESERVED ? frozen->threads.next_tid
                                                            : LX_PID_RESERVED;
    if (lowest > LX_PID_MAX / 2)
        lowest = LX_PID_MAX / 2;    /* a program that made millions of threads */
    uint64_t n = atomic_fetch_add_explicit(&generations, 1, memory_order_relaxed);
    return lowest + (int)(n % (uint64_t)(LX_PID_MAX - lowest));
}

void lx_task_init(struct lx_task *t, const char *exe_path)
{
    *t = (struct lx_task){ 0 };
    if (!realpath(exe_path, t->exe_path))
        snprintf(t->exe_path, sizeof t->exe_path, "%s", exe_path);
}

/* Each part, in member order (struct lx_proc): init, fork and destroy below call them all. */
int lx_proc_init(struct lx_proc *p, struct vm *vm, const struct lx_env *env,
                 const struct load_info *li, const char *exe_path)
{
    memset(p, 0, sizeof *p);
    p->vm = vm;
    p->env = env;
    p->pid = LX_MASTER_PID;
    p->ppid = LX_MASTER_PPID;
    publish_ids(p);
    lx_task_init(&p->task, exe_path);
    lx_stats_init(&p->stats);
    lx_sig_init(&p->sig);
    lx_mm_init(&p->mm, li);
    lx_server_init(&p->server);
    if (lx_fds_init(&p->fds) < 0) {
        log_error("cannot set up the guest's standard streams");
        return -1;
    }
    lx_threads_init(&p->threads);
    return 0;
}

void lx_proc_destroy(struct lx_proc *p)
{
    lx_task_destroy(&p->task);
    lx_stats_destroy(&p->stats);
    lx_sig_destroy(&p->sig);
    lx_mm_destroy(&p->mm);
    lx_server_destroy(&p->server);
    lx_fds_destroy(&p->fds);
    lx_threads_destroy(&p->threads);
}

int lx_proc_freeze(struct lx_proc *p)
{
    int err = fdt_freeze(&p->fds);
    if (err < 0)
        log_error("cannot record the frozen program's file descriptors for "
                "request VMs: %s", strerror(-err));
    return err;
}

/* Every member of struct lx_proc, in order: lx_proc_fork below makes each one, so a member
 * added without being listed here (and made there) fails the build. */
#define MEMBER_END(m) (offsetof(struct lx_proc, m) + sizeof ((struct lx_proc *)0)->m)
#define FOLLOWS(m, prev)                                                                      \
    _Static_assert(offsetof(struct lx_proc, m) - MEMBER_END(prev) <                         \
                       _Alignof(__typeof__(((struct lx_proc *)0)->m)),                        \
                   "struct lx_proc: a member between " #prev " and " #m " is not forked")
_Static_assert(offsetof(struct lx_proc, vm) == 0, "struct lx_proc starts with vm");
FOLLOWS(env, vm);
FOLLOWS(pid, env);
FOLLOWS(ppid, pid);
FOLLOWS(exit_status, ppid);
FOLLOWS(exited, exit_status);
FOLLOWS(task, exited);
FOLLOWS(stats, task);
FOLLOWS(sig, stats);
FOLLOWS(mm, sig);
FOLLOWS(server, mm);
FOLLOWS(fds, server);
FOLLOWS(threads, fds);
_Static_assert(sizeof(struct lx_proc) - MEMBER_END(threads) < _Alignof(struct lx_proc),
               "struct lx_proc: a member after threads is not forked");

int lx_proc_fork(struct lx_proc *dst, const struct lx_proc *src, struct vm *vm, bool fds_made)
{
    dst->vm = vm;
    dst->env = src->env;
    /* A new process, as a forked child is: a new pid, its parent the frozen program. */
    dst->pid = new_fork_pid(src);
    dst->ppid = src->pid;
    publish_ids(dst);
    dst->exited = false;
    dst->exit_status = 0;
    lx_task_fork(&dst->task, &src->task);
    lx_stats_fork(&dst->stats, &src->stats);
    lx_sig_fork(&dst->sig, &src->sig);  /* plain data: dispositions, mask, timers */
    lx_mm_fork(&dst->mm, &src->mm);
    lx_mm_wipe_on_fork(dst);            /* its wipe-on-fork memory is zero, as after fork(2) */
    int err = lx_server_fork(&dst->server, &src->server);
    if (err < 0)
        return err;
    /* The threads before the fds, and rebound to them after: their waits name host fds. */
    lx_threads_fork(&dst->threads, &src->threads);
    if (!fds_made && (err = lx_fds_fork(&dst->fds, &src->fds)) < 0) {
        log_error("cannot give a request VM its file descriptors: %s", strerror(-err));
        return err;
    }
    lx_threads_rebind(dst, src);
    return 0;
}

static void shift_deadline(int64_t *t, int64_t by)
{
    if (*t > 0)
        *t = by > 0 && *t > INT64_MAX - by ? INT64_MAX : *t + by;
}

void lx_proc_shift_deadlines(struct lx_proc *p, int64_t by_ns)
{
    shift_deadline(&p->sig.itimer_real.next_ns, by_ns);
    for (int i = 0; i < LX_MAX_TIMERS; i++)
        shift_deadline(&p->sig.timers[i].next_ns, by_ns);
    for (int i = 0; i < p->threads.used; i++) {
        shift_deadline(&p->threads.slot[i].wake_at_ns, by_ns);
        shift_deadline(&p->threads.slot[i].event_end_ns, by_ns);
    }
}

void lx_proc_skip_frozen_time(struct lx_proc *p, uint64_t skipped_ns)
{
    /* The fork's deadlines are the frozen process's, on the host's clock: all of them move. */
    vm_set_mono_lag(p->vm, skipped_ns);
    lx_proc_shift_deadlines(p, skipped_ns > INT64_MAX ? INT64_MAX : (int64_t)skipped_ns);
}

int64_t lx_mono_to_host(const struct lx_proc *p, int64_t guest_ns)
{
    int64_t lag = p->vm ? (int64_t)vm_mono_lag(p->vm) : 0;
    return guest_ns > INT64_MAX - lag ? INT64_MAX : guest_ns + lag;
}

bool lx_accept_allowed(const struct lx_proc *p)
{
    return !p->server.hooks || p->server.hooks->accept_allowed(p->server.hooks_ctx);
}

long lx_proc_syscall(struct lx_proc *p, uint64_t nr, const uint64_t a[6])
{
    struct lx_thread *caller = lx_current_thread(p);
    caller->redo_call = false;
    caller->call_nr = (int64_t)nr;
    long ret = lx_dispatch(p, nr, a);
    /* A wait that would hold up the other threads: they run, and this one redoes it (here,
     * when it is the next to run). */
    while (ret == -LX_ESWITCH) {
        ret = lx_thread_park(p, nr);
        if (ret != -LX_EREDO)
            return ret;
        ret = lx_dispatch(p, nr, a);
    }
    caller->in_event_wait = false;
    caller->wait_freezes = false;
    caller->quiesce_since_ns = 0;
    return ret;
}

static long on_syscall(void *ctx, struct vm *vm, const struct vm_syscall *call, bool *stop)
{
    struct lx_proc *p = ctx;
    /* A long-lived request VM is only timed while it works: waiting for the next event is
     * not a request taking long. */
    bool event_wait = lx_syscall_is(call->nr, LX_SC_EVENT_WAIT);
    bool timed_wait = p->server.busy_limit_ns && event_wait;
    if (timed_wait)
        vm_set_deadline(vm, 0);
    long ret = lx_proc_syscall(p, call->nr, call->arg);
    if (timed_wait && p->server.busy_limit_ns)
        vm_set_deadline(vm, now_ns() + p->server.busy_limit_ns);
    if (p->server.frozen) {
        /* The program waits for its first connection: each fork redoes this call. */
        p->server.pending_nr = call->nr;
        memcpy(p->server.pending_args, call->arg, sizeof call->arg);
    }
    if (lx_must_stop(p))
        *stop = true;
    return ret;
}

bool lx_must_stop(const struct lx_proc *p)
{
    return p->exited || p->server.frozen || p->server.memory_exceeded ||
           p->server.deadline_hit ||
           (p->server.hooks && p->server.hooks->should_stop(p->server.hooks_ctx));
}

/* A kick found the program in its own code: a signal due is delivered first, else the
 * running thread's slice may be over (lx_sched_preempt). */
static bool interrupt_due(void *ctx, struct vm *vm)
{
    return lx_signal_interrupt_due(ctx, vm) || lx_sched_preempt_due(ctx);
}

static void interrupt(void *ctx, struct vm *vm)
{
    if (lx_signal_interrupt_due(ctx, vm))
        lx_signal_interrupt(ctx, vm);
    else
        lx_sched_preempt(ctx);
}

const struct vm_ops lx_vm_ops = { .syscall = on_syscall,
                                  .can_serve_shared = lx_can_serve_shared,
                                  .exit_after_shared = lx_signal_exit_after_shared,
                                  .after_syscall = lx_signal_after_syscall,
                                  .fault = lx_signal_fault,
                                  .interrupt = interrupt,
                                  .interrupt_due = interrupt_due };
