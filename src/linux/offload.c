/* Which system calls a poller thread may run for the shared-memory transport: calls that
 * cannot block (or whose fd is ready right now) and that touch no vCPU state and no memory
 * slots. Anything else is answered "exit instead" and runs on the vCPU thread. */
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <sys/syscall.h>

#include "base/time.h"
#include "linux/listener.h"
#include "linux/process.h"
#include "linux/syscalls.h"
#include "linux/wait.h"
#include "vm/vm.h"

/* Would an operation on this guest fd wait? A zero-timeout poll of the host fd says. */
static bool fd_ready(struct lx_proc *p, uint64_t guest_fd, short events)
{
    struct lx_fd *f = fdt_get(&p->fds, (long)(uint32_t)guest_fd);
    if (!f || fdt_never_waits(f))
        return true;                   /* -EBADF, or a file: at once */
    int flags = lx_fd_status_flags(p, f);
    if (flags >= 0 && (flags & O_NONBLOCK))
        return true;                   /* EAGAIN rather than a wait */
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
    if (flags & LX_SC_POLLER_IN)
        return fd_ready(p, a[0], POLLIN);
    if (flags & LX_SC_POLLER_OUT)
        return fd_ready(p, a[0], POLLOUT);
    if (call->nr == __NR_fcntl && (a[1] == F_SETLKW || a[1] == F_OFD_SETLKW))
        return false;                  /* waits for a lock */
    return flags & LX_SC_POLLER;
}
