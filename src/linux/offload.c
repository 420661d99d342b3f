/* Which system calls a poller thread may run for the shared-memory transport: calls that
 * cannot block (or whose fd is ready right now) and that touch no vCPU state and no memory
 * slots. Anything else is answered "exit instead" and runs on the vCPU thread. */
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include "linux/listener.h"
#include "linux/process.h"
#include "linux/wait.h"
#include "vm/vm.h"

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
    struct pollfd pfd = { .fd = f->host_fd, .events = events };
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
    if (timer >= 0 && (uint64_t)timer <= lx_now_ns())
        return false;
    switch (call->nr) {
    case __NR_recvfrom:
        return !(a[3] & MSG_WAITALL) && fd_ready(p, a[0], POLLIN, 0);
    case __NR_recvmsg:
        return !(a[2] & MSG_WAITALL) && fd_ready(p, a[0], POLLIN, 0);
    case __NR_read: case __NR_readv: case __NR_accept: case __NR_accept4:
        return fd_ready(p, a[0], POLLIN, 0);
    case __NR_write: case __NR_sendto:
        return fd_ready(p, a[0], POLLOUT, a[2]);
    case __NR_writev: case __NR_sendmsg:
        return fd_ready(p, a[0], POLLOUT, UINT64_MAX);
    case __NR_epoll_wait: case __NR_epoll_pwait: case __NR_epoll_pwait2:
        /* Only when events are there already: a real wait belongs to the vCPU thread. */
        return fd_ready(p, a[0], POLLIN, 0);
    case __NR_poll: case __NR_ppoll: case __NR_select: case __NR_pselect6:
        return false;                  /* the timeout is in different places: not worth it */
    case __NR_fcntl:
        return a[1] != F_SETLKW && a[1] != F_OFD_SETLKW;
    case __NR_close: case __NR_fstat: case __NR_newfstatat: case __NR_lseek:
    case __NR_pread64: case __NR_pwrite64: case __NR_ioctl: case __NR_dup: case __NR_dup2:
    case __NR_dup3: case __NR_getsockname: case __NR_getpeername: case __NR_setsockopt:
    case __NR_getsockopt: case __NR_shutdown: case __NR_epoll_ctl: case __NR_socket:
    case __NR_clock_gettime: case __NR_clock_getres: case __NR_gettimeofday: case __NR_time:
    case __NR_getrandom: case __NR_uname: case __NR_getuid: case __NR_geteuid:
    case __NR_getgid: case __NR_getegid: case __NR_sysinfo: case __NR_prlimit64:
    case __NR_sched_getaffinity: case __NR_rt_sigaction:
    case __NR_rt_sigprocmask: case __NR_getcwd: case __NR_openat:
    case __NR_madvise:
        return true;
    default:
        /* mmap & co. may flush memory slots under the running vCPU, arch_prctl sets vCPU
         * state, exit and sleeps and futexes wait, clone/futex/sched_yield/gettid/exit switch or
         * name guest threads (thread.h), sigaltstack reads RSP: all on the vCPU thread. */
        return false;
    }
}
