/* Guest threads: every thread of the program takes turns on the VM's single vCPU. The host
 * switches between them inside system calls (futex waits, yields, sleeps, thread exit, and
 * any wait for fds: event waits, blocking reads, writes and accepts) and at the end of a
 * time slice (lx_sched_preempt). The table is plain data with no pointers, so copying
 * struct lx_proc copies the threads (server mode forks and resets do). */
#ifndef KVMS_THREAD_H
#define KVMS_THREAD_H
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>

#include "vm/engine.h"

#define LX_MAX_THREADS 64
#define LX_WAIT_FDS 8           /* host fds a switched-out wait records for the scheduler */

enum lx_thread_state {
    LX_THREAD_FREE = 0,     /* unused slot */
    LX_THREAD_RUNNABLE,     /* running, or ready to run */
    LX_THREAD_FUTEX,        /* in FUTEX_WAIT on futex_addr */
    LX_THREAD_SLEEP,        /* in nanosleep until wake_at_ns */
    LX_THREAD_POLL,         /* switched out of a wait for fds: runs again (and redoes its
                             * call) when one of them is ready or its time is up */
};

/* sigaltstack's setting: each thread has its own (a new one has none, as on Linux). */
struct lx_altstack {
    uint64_t sp, size;          /* size 0: none */
    int flags;                  /* SS_AUTODISARM */
};

struct lx_thread {
    int tid;
    enum lx_thread_state state;
    long resume_ret;            /* RAX of its pending system call when it runs again */
    uint64_t futex_addr;
    uint32_t futex_bitset;
    uint64_t wait_seq;          /* futex waiters are woken oldest first */
    int64_t wake_at_ns;         /* CLOCK_MONOTONIC end of a timed wait; < 0 = none */
    uint64_t sleep_rem_gva;     /* SLEEP: where a signal writes the time left; 0 = none */
    int64_t restart_nr;         /* >= 0: switched out before its call ran; redo it */
    int64_t call_nr;            /* the system call it is in, or made last; -1: none yet */
    bool redo_call;             /* its registers sit on that call's `syscall`, which it
                                 * makes again when it runs: a signal waits for the redo,
                                 * which sees it and brings the handler as it returns */
    bool in_event_wait;         /* inside a wait for fds that is being redone... */
    bool preempted;             /* cpu.regs are its user registers, not a system call's
                                 * exit: taken off the vCPU in its own code at a slice's
                                 * end (lx_sched_preempt), or in an exit that had already
                                 * set them (vm_set_user_regs) */
    int64_t event_end_ns;       /* ...which ends then (CLOCK_MONOTONIC; < 0 = never) */
    bool wait_freezes;          /* ...and is the boot's wait for a connection (it freezes
                                 * once no other thread can run, or LX_QUIESCE_MAX_NS after
                                 * its first try, quiesce_since_ns) */
    uint64_t quiesce_since_ns;
    bool yield_first;           /* a look without waiting, redone after the others ran */
    int nwait;                  /* POLL: the host fds it waits for, in wait[]; -1 = not
                                 * known (too many, or a fork's copy): it runs to look */
    struct pollfd wait[LX_WAIT_FDS];
    uint64_t clear_child_tid;   /* CLONE_CHILD_CLEARTID / set_tid_address */
    uint64_t sigmask;           /* its blocked signals while it is not the running thread
                                 * (the running one's are in lx_signals.blocked) */
    bool suspended;             /* the same for rt_sigsuspend's state (lx_signals) */
    uint64_t suspend_mask;
    struct lx_altstack altstack;    /* and for its alternate signal stack */
    struct vm_thread_cpu cpu;   /* valid while it is not the running thread */
};

struct lx_threads {
    int current;                /* slot of the running thread */
    int count;                  /* live threads; 0 until lx_threads_init (unit tests) */
    int used;                   /* slots [0, used) may be live: what a copy must take */
    int next_tid;
    uint64_t wait_seq;
    int64_t slice_start_ns;     /* when the running thread got the vCPU (CLOCK_MONOTONIC) */
    struct lx_thread slot[LX_MAX_THREADS];
};

struct lx_proc;
void lx_threads_init(struct lx_threads *t);
/* The bytes of the table worth copying (live slots only): a fork copies just these. */
size_t lx_threads_copy_size(const struct lx_threads *t);
/* A fork's thread table: the frozen one's threads, registers and FPU states (live slots);
 * the fds its waiting threads wait for are not known yet... */
void lx_threads_fork(struct lx_threads *dst, const struct lx_threads *src);
/* ...until its fds are made (lx_fds_fork): each becomes the fork's copy of the frozen one. */
void lx_threads_rebind(struct lx_proc *dst, const struct lx_proc *src);
/* Registers and FPU states live in the table: nothing to free. */
static inline void lx_threads_destroy(struct lx_threads *t) { (void)t; }

int lx_current_tid(const struct lx_proc *p);
struct lx_thread *lx_current_thread(struct lx_proc *p);
bool lx_thread_exists(const struct lx_proc *p, int tid);
/* More than one thread has ever been started and is alive. */
bool lx_multithreaded(const struct lx_proc *p);

/* The current thread has set its own state (waiting, or runnable to yield) and stops:
 * runs the next runnable thread, sleeping until the earliest timed wait ends if none is.
 * Returns RAX for the thread that now runs (possibly the caller). A program whose threads
 * all wait with no time limit is deadlocked: it ends with a message. */
long lx_sched_switch(struct lx_proc *p);
/* Time slices: a thread that has had the vCPU for LX_SLICE_NS, and is found in its own code
 * by a kick of the engine (vm_ops.interrupt), gives it to the next thread that can run
 * (round robin): a runnable one, or one whose wait has ended meanwhile (its fds are ready,
 * or its time is up). Without them a thread that computes without system calls (a JIT's
 * background compile) holds up the others, the one that serves requests among them, until
 * it blocks; Linux on one CPU time-slices them too. */
#define LX_SLICE_NS (4 * 1000000ll)
bool lx_sched_preempt_due(const struct lx_proc *p);
void lx_sched_preempt(struct lx_proc *p);
/* Marks up to n futex waiters on addr (bitset matching) runnable; returns how many. */
int lx_futex_wake(struct lx_proc *p, uint64_t addr, uint32_t bitset, int n);
/* Moves up to n waiters from addr to addr2; returns how many. */
int lx_futex_requeue(struct lx_proc *p, uint64_t addr, uint64_t addr2, int n);
/* Thread exit (sys_exit): clears and wakes clear_child_tid, frees the slot and runs another
 * thread; the last thread's exit ends the process (returns with p->exited set). */
long lx_thread_exit(struct lx_proc *p, int status);
/* When a wait for fds with this timeout (>= 0) ends, on CLOCK_MONOTONIC: now + timeout_ns,
 * or, in the redo of a wait that was switched out, the end its first try set. */
uint64_t lx_wait_end_ns(struct lx_proc *p, int64_t timeout_ns);
/* nanosleep for a multi-threaded program: other threads run meanwhile. A signal that ends
 * it writes the time left to rem_gva (0: none), as lx_sleep_interrupted does. */
long lx_thread_sleep(struct lx_proc *p, int64_t ns, uint64_t rem_gva);
/* What an interrupted sleep returns: -EINTR, with the time it had left (<= 0: none) written
 * to the guest's rem_gva when there is one (-EFAULT if that write fails), as Linux does. */
long lx_sleep_interrupted(struct lx_proc *p, uint64_t rem_gva, int64_t left_ns);
/* pause and rt_sigsuspend for a multi-threaded program: other threads run until a signal
 * for this one comes (then -EINTR). */
long lx_thread_pause(struct lx_proc *p);
/* sched_yield: lets the other runnable threads run first. */
long lx_thread_yield(struct lx_proc *p);
/* How many other threads could run now (they are not waiting): the boot must not freeze
 * yet, unless they never stop (lx_freeze_for_readiness). */
int lx_thread_others_runnable(const struct lx_proc *p);
/* The current thread's call `nr` returned -LX_ESWITCH (wait.h): it waits for its fds while
 * the others run, and redoes the call at its turn. Returns RAX for the thread that runs. */
long lx_thread_park(struct lx_proc *p, uint64_t nr);

#endif
