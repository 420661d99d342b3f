/* Blocking on the host for the guest, and the server-mode hooks that sit at those waits.
 *
 * The vCPU thread gets a periodic kick signal with SA_RESTART, so a blocking host call made
 * for the guest might never return once a request is out of time. Every wait therefore goes
 * through here: it is cut at the VM's deadline (vm->deadline_ns), which sets
 * p->server.deadline_hit; the VM then stops and the guest never sees the -EINTR returned. */
#ifndef KVMS_WAIT_H
#define KVMS_WAIT_H
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>

#include "linux/process.h"

struct lx_proc;
struct lx_fd;


/* One attempt at a host wait lasting at most timeout_ns (< 0 = no limit). Returns > 0 when
 * something is ready, 0 when the time ran out, or -errno (-EINTR means "try again"). */
typedef long (*lx_wait_attempt)(void *ctx, int64_t timeout_ns);

/* Repeats `attempt` until it reports readiness or an error, the guest's own timeout_ns
 * passes (< 0 = never; returns 0), a signal would interrupt the guest (-EINTR) or the VM
 * deadline passes (deadline_hit, -EINTR). */
long lx_wait_until(struct lx_proc *p, int64_t timeout_ns, lx_wait_attempt attempt, void *ctx);

/* Returned by a wait that would block while another guest thread could run, or wait for
 * something of its own: the call changed nothing yet, so its thread is switched out
 * (lx_thread_park) and redoes the call at its turn. Never seen by the guest. */
#define LX_ESWITCH 530
/* lx_thread_park's answer when the thread that parked is the next to run: redo the call. */
#define LX_EREDO 531

/* lx_wait_until for a call that can be redone from the start (nothing done before its
 * wait), waiting for the host fds `fds` (what `attempt` polls; more than LX_WAIT_FDS is
 * fine, the scheduler then lets the thread look for itself). In a multi-threaded program
 * it waits here only while no other thread can run, nor become runnable before a ready fd
 * (a timed wait, or another thread's fds); else it returns -LX_ESWITCH. The guest's
 * timeout counts from the call's first try. */
long lx_wait_fds(struct lx_proc *p, int64_t timeout_ns, lx_wait_attempt attempt, void *ctx,
                 const struct pollfd *fds, nfds_t n);

/* Waits until host_fd reports one of `events` (or an error/hang-up): 0, or -EINTR at the
 * deadline, or -errno (-LX_ESWITCH: see lx_wait_fds). Call it before a blocking host
 * accept/recv/send/read/write, which is then redone after a switch. */
int lx_wait_fd(struct lx_proc *p, int host_fd, short events);
/* The same with the guest's own limit (SO_RCVTIMEO...): 1 ready, 0 timed out, -errno.
 * `redoable`: as lx_wait_fd (else it waits here, holding up the other threads). */
int lx_wait_fd_timeout(struct lx_proc *p, int host_fd, short events, int64_t timeout_ns,
                       bool redoable);

/* True when host_fd is in blocking mode (no O_NONBLOCK on its open file). */
bool lx_host_fd_blocks(int host_fd);

/* Server hooks (and linux/listener.h). The guest is about to wait for a connection while
 * booting, and nothing it waits for is ready: freeze it there and return true (the caller
 * returns 0; the dispatcher records the call and each request VM redoes it) — unless a
 * warm-up is due: then start it and return false, and the wait goes on. Also false while
 * another guest thread can still run: the wait lets it run first (the program is frozen
 * only when every thread waits), and comes back here; and while the wait's own time limit
 * (timeout_ns, < 0 = none) says the program has work due soon: it does that work first,
 * for up to LX_FREEZE_SETTLE_NS after its first wait for a connection, so that no fork
 * has to. During the warm-up, when it pauses after a request (pause_due), the same wait
 * with no connection open tells it once the other threads block, and returns false. */
#define LX_FREEZE_SETTLE_NS (1000 * 1000000ull)
/* The longest one wait for a connection waits, before the freeze, for the other threads to
 * block (then it freezes with them runnable, and says so). */
#define LX_QUIESCE_MAX_NS (500 * 1000000ull)
bool lx_freeze_for_readiness(struct lx_proc *p, int64_t timeout_ns);
/* Is the warm-up over, a wait for a connection due to freeze the program (lx_freeze_hooks)? */
static inline bool lx_warmup_over(const struct lx_proc *p)
{
    return p->server.freeze && p->server.freeze->freeze_due(p->server.freeze_ctx);
}
/* Should a wait for a connection go to lx_freeze_for_readiness: to freeze the program, or
 * to tell the warm-up that it is quiet? */
static inline bool lx_freeze_due(const struct lx_proc *p)
{
    return lx_warmup_over(p) || (p->server.freeze &&
                                 p->server.freeze->pause_due(p->server.freeze_ctx));
}

#endif
