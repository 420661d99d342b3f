/* Which system calls a poller thread may run for the shared-memory transport: calls that
 * cannot block (or whose fd is ready right now) and that touch no vCPU state and no memory
 * slots. Anything else is answered "exit instead" and runs on the vCPU thread. */
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include "base/time.h"
#include "linux/listener.h"
#include "linux/process.h"
#include "linux/syscalls.h"
#include "linux/thread.h"
#include "linux/wait.h"
#include "vm/engine.h"

/* What a ready pipe or socket takes in one write without waiting: a pipe that polls
 * writable has a free buffer, which holds PIPE_BUF bytes; a longer write, or one whose
 * length the poller does not know (writev, sendmsg), may wait for a reader there. */
#define READY_WRITE_MAX 4096

/* Would an operation on this guest fd wait? A zero-timeout poll of the host fd says, for
 * `len` bytes (reads: any length; they return what is there). A poller thread must never
 * wait: it holds the VM's exec lock, and the vCPU thread could not stop at its deadline. */
static bool fd_ready(struct lx_proc *p, uint64_t guest_fd, short events, uint64_t len)
{
    struct lx_fd *f = fdt_get(&p->fds, (long)(uint32_t)guest_fd);
    if (!f || fdt_never_waits(f))
        return true;                   /* -EBADF, or a file: at once */
    int flags = lx_fd_status_flags(p, f);
    if (flags >= 0 && (flags & O_NONBLOCK))
        return true;                   /* EAGAIN rather than a wait */
    if (events == POLLOUT && len > READY_WRITE_MAX)
        return false;
    /* Where the call itself would wait: a listener's private one at boot, whose public
     * socket (not listening yet) always polls as hung up. */
    int host = lx_wait_host_fd(p, f);
    if (host < 0)
        return true;                   /* never ready for this VM: answered at once */
    struct pollfd pfd = { .fd = host, .events = events };
    return poll(&pfd, 1, 0) > 0;
}

bool lx_can_serve_shared(void *ctx, struct vm *vm, const struct vm_syscall *call)
{
    struct lx_proc *p = ctx;
    (void)vm;
    const uint64_t *a = call->arg;
    /* A signal to deliver, or a timer due: only an exit can enter the handler. */
    if ((p->sig.pending & ~p->sig.blocked) ||
        (p->sig.pending && call->nr == __NR_rt_sigprocmask))
        return false;
    int64_t timer = lx_signal_next_timer_ns(p);
    if (timer >= 0 && (uint64_t)timer <= now_ns())
        return false;
    /* The table's rows say which calls (syscalls.h, LX_SC_POLLER*). An epoll wait only
     * when events are there already: a real wait belongs to the vCPU thread; poll and
     * select never (the timeout is in different places: not worth it). */
    const struct lx_syscall_desc *d = lx_syscall_of(call->nr);
    unsigned flags = d ? d->flags : 0;
    /* At boot a wait for events or a connection may freeze the program, or first let its
     * other threads run: the vCPU thread's work (the poller never switches threads). */
    if (p->server.listen_privately && !p->server.storage && (flags & LX_SC_EVENT_WAIT))
        return false;
    /* A look without waiting while another guest thread can run: the vCPU thread lets
     * that one go first (lx_wait_fds). Served here, an event loop that always finds
     * something ready (its own eventfd, woken by its own tasks) would keep its workers off
     * the vCPU for as long as it loops: V8's idle-time marking spun so ~40,000 times. */
    bool epoll_look = ((call->nr == __NR_epoll_wait || call->nr == __NR_epoll_pwait) &&
                       (int)a[3] == 0) || call->nr == __NR_epoll_pwait2;
    if (epoll_look && lx_thread_others_runnable(p))
        return false;
    /* MSG_WAITALL waits for the whole length; a write waits unless it fits (the length is
     * a[2], unknown for writev and sendmsg). */
    if ((call->nr == __NR_recvfrom && (a[3] & MSG_WAITALL)) ||
        (call->nr == __NR_recvmsg && (a[2] & MSG_WAITALL)))
        return false;
    if (flags & LX_SC_POLLER_IN)
        return fd_ready(p, a[0], POLLIN, 0);
    if (flags & LX_SC_POLLER_OUT)
        return fd_ready(p, a[0], POLLOUT,
                        call->nr == __NR_write || call->nr == __NR_sendto ? a[2] : UINT64_MAX);
    if (call->nr == __NR_fcntl && (a[1] == F_SETLKW || a[1] == F_OFD_SETLKW))
        return false;                  /* waits for a lock */
    return flags & LX_SC_POLLER;
}
