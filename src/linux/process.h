/* The Linux personality's state for one guest process: one member per area, each with its
 * owner's init, fork and destroy (what a boot, a request VM and an ephemeral reset call). */
#ifndef KVMS_PROCESS_H
#define KVMS_PROCESS_H
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/time.h"
#include "linux/env.h"
#include "linux/fdtable.h"
#include "linux/listener.h"
#include "linux/mm.h"
#include "linux/sig.h"
#include "linux/thread.h"

struct vm;

/* The booted program is pid 1 with parent 0. Each request VM generation (a fork, and each
 * reset) is a new process, as a forked child would be: a new pid, below LX_PID_MAX, with
 * the frozen program as its parent. Libraries that detect a fork by a changed getpid()
 * (OpenSSL's DRBG) reseed then. The first thread's tid stays LX_FIRST_TID inside the thread
 * table, and is shown as the pid: its libc cached the tid at start, so a call naming
 * LX_FIRST_TID still reaches it (see lx_thread_exists). */
#define LX_MASTER_PID 1
#define LX_MASTER_PPID 0
#define LX_FIRST_TID 1
#define LX_PID_MAX 4194304  /* Linux's largest pid_max */
#define LX_PID_RESERVED 300 /* Linux hands out pids above this after a wrap */
#define LX_NSIG 64

struct lx_sigaction {       /* kernel layout of struct sigaction (rt_sigaction) */
    uint64_t handler;
    uint64_t flags;
    uint64_t restorer;
    uint64_t mask;
};

#define LX_MAX_TIMERS 32

struct lx_timer {           /* ITIMER_REAL, or one timer_create timer */
    bool used;
    int32_t signo;          /* 0: SIGEV_NONE */
    int32_t clock;          /* timer_create's clock, for absolute times */
    int64_t next_ns;        /* CLOCK_MONOTONIC expiry; 0 = disarmed */
    int64_t interval_ns;
    int32_t overrun;        /* expiries missed before the signal was delivered */
    int32_t tid;            /* SIGEV_THREAD_ID: the thread it signals; 0 = the process */
    uint64_t value;         /* sigev_value */
};

/* All plain data: a fork and a reset copy it with the rest of struct lx_proc. */
struct lx_signals {
    struct lx_sigaction action[LX_NSIG];   /* index = signal number - 1 */
    uint64_t blocked;
    uint64_t pending;                      /* not yet delivered: bit = signal number - 1 */
    struct lx_sig_origin origin[LX_NSIG];  /* how each pending signal was sent */
    int32_t target[LX_NSIG];               /* the thread it was sent to; 0 = any */
    struct lx_altstack altstack;           /* the running thread's (thread.h) */
    bool suspended;                        /* in rt_sigsuspend: after the handler... */
    uint64_t suspend_mask;                 /* ...the mask goes back to this */
    struct lx_timer itimer_real;           /* alarm, setitimer(ITIMER_REAL): SIGALRM */
    struct lx_timer timers[LX_MAX_TIMERS]; /* timer_create: id = index */
};

/* Plain data: all default dispositions, nothing blocked or pending, no timers at the start;
 * a fork copies it; nothing to free. */
static inline void lx_sig_init(struct lx_signals *s) { *s = (struct lx_signals){ 0 }; }
static inline void lx_sig_fork(struct lx_signals *dst, const struct lx_signals *src)
{
    *dst = *src;
}
static inline void lx_sig_destroy(struct lx_signals *s) { (void)s; }

/* Server mode's view of the process (server/ sets the policy fields; the syscall handlers
 * report through the others and stop the VM with *stop when one becomes true). */
/* How server mode follows a VM's connections (-e: one per request VM life), implemented by
 * the server layer (server/conn.c) and called by the personality where a connection
 * starts, ends or is waited for. None (NULL: the master, a plain run, request VMs without
 * -e): any number of connections, and none of them ends anything. */
struct lx_server_hooks {
    /* May the program take a connection now? false: its listeners are left out of event
     * waits, and an accept fails with EAGAIN. */
    bool (*accept_allowed)(void *ctx);
    /* It blocks for a connection it may not take: the request is over. */
    void (*wait_for_connection)(void *ctx);
    /* It took one, as guest fd `fd`. */
    void (*accepted)(void *ctx, struct lx_proc *p, int fd);
    /* It closed guest fd `fd`. */
    void (*closed)(void *ctx, int fd);
    /* After each system call: must the VM stop, for the server's reasons? */
    bool (*should_stop)(void *ctx);
};

/* How a boot reaches its freeze, implemented by the server layer (server/warmup.c) and
 * called from the guest's thread (the state behind them is shared with the warm-up
 * thread). NULL (request VMs, a snapshot's master): no freeze. */
struct lx_freeze_hooks {
    /* Should a wait for a connection freeze the program now? (Not while a warm-up runs.) */
    bool (*freeze_due)(void *ctx);
    /* Is a warm-up due before the freeze? */
    bool (*warmup_due)(void *ctx);
    /* Starts it, once, at the first wait for a connection, with the private listener's host
     * fd: the freeze is not due until it is done. 0, or -errno when it cannot start. */
    int (*warmup_start)(void *ctx, int listener_host_fd);
    /* The loopback port its connections come from (listener.h: only those are accepted at
     * boot); 0 until it has one. */
    uint32_t (*warmup_port)(void *ctx);
    /* Did it fail to reach the program's listener? */
    bool (*warmup_failed)(void *ctx);
    /* Does the warm-up wait, after its request, for the program to be quiet: waiting for a
     * connection with every thread blocked and no connection open? (Its JIT's helper
     * threads then do a request's work before the next request, as between real ones.) */
    bool (*pause_due)(void *ctx);
    /* It is, having accepted `accepted` warm-up connections (quiet); or its other threads
     * did not block within LX_QUIESCE_MAX_NS (!quiet: the warm-up stops waiting). woke: since
     * it was last quiet, a futex wake made one of its threads runnable (the request gave its
     * helper threads work: a garbage collector's parallel phase, a JIT's compile). */
    void (*warmup_quiet)(void *ctx, unsigned accepted, bool quiet, bool woke);
};

struct lx_server_state {
    const struct lx_freeze_hooks *freeze;   /* NULL: none */
    void *freeze_ctx;
    bool listen_privately;  /* boot: listeners are private until the freeze (listener.h);
                             * a storage VM's for good */
    bool storage;           /* the storage subcommand's storage VM (listener.h) */
    const struct lx_storage_routes *storage_routes;  /* request programs: NULL, or where a
                                                      * connect reaches the storage VM */
    /* Boot: listening host sockets inherited by socket activation, each given to the guest
     * socket that binds its address (listener.h); -1 once given. */
    int nactivated;
    int activated[LX_MAX_LISTENERS];
    int nlisteners;
    struct lx_listener listeners[LX_MAX_LISTENERS];
    uint64_t settle_end_ns; /* boot: a freeze waits for work due before this (wait.h) */
    bool frozen;            /* -> it did: the pending call is in `pending_nr/args` */
    bool boot_failed;       /* -> no, it cannot be: the VM's crash_report says why */
    unsigned warmup_accepted;   /* boot: the warm-up's connections the program took */
    unsigned warmup_wakes;      /* boot: threads futex wakes made runnable since the warm-up
                                 * last saw the program quiet */
    uint64_t pending_nr, pending_args[6];
    const struct lx_server_hooks *hooks;    /* NULL: none */
    void *hooks_ctx;
    uint64_t memory_limit;  /* bytes the program may map (at boot: --max-main-memory; in a
                             * request VM: beyond the frozen image); 0 = any */
    bool limit_aborts;      /* request VMs: going past the limit aborts the request */
    bool memory_exceeded;   /* -> it tried to: the VM stops */
    bool deadline_hit;      /* a blocking host call reached the VM's deadline */
    uint64_t busy_limit_ns; /* non-ephemeral request VMs: how long the program may work
                             * between two waits for events (--max-request-time); 0 = any */
};

/* listener.c. Boot: no policy, no listeners (server/ sets what it wants after init). */
void lx_server_init(struct lx_server_state *s);
/* A fork: the policy and listeners as frozen, no request's flags, and a storage VM's own
 * copies of its private listeners. 0, or -errno with a message. */
int lx_server_fork(struct lx_server_state *dst, const struct lx_server_state *src);
/* Closes what the listener records hold (a request VM's option sockets, boot's private
 * listeners). */
void lx_server_destroy(struct lx_server_state *s);

/* What a fork inherits as it is: plain data, copied with one assignment (a field added here
 * is inherited, never left over from the last request). */
struct lx_task {
    uint64_t robust_list, robust_list_len;
    int ngroups;                   /* info.c: supplementary groups (0, or 1: its own gid) */
    char exe_path[PATH_MAX];       /* host path of the program: /proc/self/exe */
    char cwd[PATH_MAX];            /* fs.c: the guest's working directory (a guest path);
                                    * "" until the first file-system call sets it up */
    unsigned umask;                /* fs.c: valid once cwd is set */
    char root[PATH_MAX];           /* fs.c: chroot's directory (a canonical guest path);
                                    * "" = the sandbox's own "/" */
};

/* process.c: exe_path is the program's real path; the rest starts empty. */
void lx_task_init(struct lx_task *t, const char *exe_path);
static inline void lx_task_fork(struct lx_task *dst, const struct lx_task *src) { *dst = *src; }
static inline void lx_task_destroy(struct lx_task *t) { (void)t; }

#define LX_PROFILE_CALLS 512    /* = LX_NR_SYSCALLS: every number the table has a row for */

/* --profile: what a VM's system calls cost, per call number, and its thread switches;
 * owned by the server layer, which sums it over requests. */
struct lx_profile {
    uint64_t calls[LX_PROFILE_CALLS], ns[LX_PROFILE_CALLS];
    uint64_t thread_switches;
};

struct lx_stats {
    uint64_t unknown_syscalls;     /* calls answered -ENOSYS */
    uint64_t handler_ns, fs_handler_ns;   /* -v: host time in handlers, and in file calls */
    struct lx_profile *profile;    /* --profile: where this VM's calls are counted, or NULL */
};

/* Counters start at zero and a fork's go on from the frozen ones; the profile is the server
 * layer's (it points each request VM at its own): nothing to free. */
static inline void lx_stats_init(struct lx_stats *s) { *s = (struct lx_stats){ 0 }; }
static inline void lx_stats_fork(struct lx_stats *dst, const struct lx_stats *src)
{
    *dst = *src;
}
static inline void lx_stats_destroy(struct lx_stats *s) { (void)s; }

/* One guest process: one member per part, each with an init (boot), a fork (a request VM,
 * and each reset) and a destroy (the end of a request VM's life, or of the boot), by its
 * owner; lx_proc_init, lx_proc_fork and lx_proc_destroy call them for every part (process.c
 * lists the members, and fails to build when one is missing). */
struct lx_proc {
    struct vm *vm;
    const struct lx_env *env;      /* shared, read-only; NULL in some unit tests */
    int pid, ppid;                 /* what getpid/getppid answer (published for the stub) */
    int exit_status;               /* valid when exited: 0..255, or 128+signal */
    bool exited;
    struct lx_task task;
    struct lx_stats stats;
    struct lx_signals sig;
    struct lx_mm mm;
    struct lx_server_state server;
    struct lx_fdtable fds;
    struct lx_threads threads;     /* last: a fork copies only its live part */
};

/* May the program take a connection now (lx_server_hooks.accept_allowed)? */
bool lx_accept_allowed(const struct lx_proc *p);
/* Runs one system call of the current thread (lx_dispatch, and the thread switch of a
 * wait that lets the other threads run): RAX for the thread that runs next. */
long lx_proc_syscall(struct lx_proc *p, uint64_t nr, const uint64_t a[6]);

struct load_info;
/* Loads `path` (load_program) and builds the initial stack Linux promises a program: argc,
 * argv and envp (NULL-terminated), the auxiliary vector; *sp: where RSP starts (at argc).
 * 0, or -1 with a message. */
int lx_load_program(struct vm *vm, const char *path, char *const argv[], char *const envp[],
                    uint64_t dylink_base, struct load_info *li, uint64_t *sp);
/* Prepares the process state for a freshly loaded program. */
int lx_proc_init(struct lx_proc *p, struct vm *vm, const struct lx_env *env,
                 const struct load_info *li, const char *exe_path);
void lx_proc_destroy(struct lx_proc *p);
/* Must the VM stop running? The program ended or froze, or its request is over (done, out
 * of memory, out of time). */
bool lx_must_stop(const struct lx_proc *p);
/* Once, when p is frozen for good: records what its fds hold, for lx_proc_fork. */
int lx_proc_freeze(struct lx_proc *p);
/* dst becomes a copy of the frozen process src, running in `vm` (a fork of src's VM, whose
 * memory is already as at the freeze: the new generation's pid and wiped pages go on top).
 * fds_made: dst->fds already holds the fork's fds, made ahead (linux/fdprep.h); else they
 * are made here. A reset is lx_proc_destroy, then this again. */
int lx_proc_fork(struct lx_proc *dst, const struct lx_proc *src, struct vm *vm, bool fds_made);
/* The time since the freeze that a fresh fork (lx_proc_fork) skips, set once before it
 * first runs: its CLOCK_MONOTONIC runs skipped_ns behind the host's (vm_set_mono_lag), and
 * every timer and timed wait it holds from the frozen process ends that much later. The
 * program thus resumes skipped_ns nearer its freeze than it really is, as after a suspend. */
void lx_proc_skip_frozen_time(struct lx_proc *p, uint64_t skipped_ns);
/* Moves every timer and timed wait of p by_ns later (a snapshot's, a skipped time). */
void lx_proc_shift_deadlines(struct lx_proc *p, int64_t by_ns);
/* An absolute CLOCK_MONOTONIC time the guest gives, on the host's clock: later by the lag
 * its clock may run behind (lx_proc_skip_frozen_time); saturates. */
int64_t lx_mono_to_host(const struct lx_proc *p, int64_t guest_ns);

/* Is `pid` the calling process (0 = itself, or its own pid)? */
static inline bool lx_is_self(const struct lx_proc *p, int pid)
{
    return pid == 0 || pid == p->pid;
}

/* offload.c: may this call run on a shared-transport poller thread right now? */
struct vm_syscall;
bool lx_can_serve_shared(void *ctx, struct vm *vm, const struct vm_syscall *call);

/* The engine's syscall handler for a process: vm->ops = &lx_vm_ops, vm->ops_ctx = p. */
extern const struct vm_ops lx_vm_ops;

#endif
