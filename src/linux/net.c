/* Sockets for the guest (this file: creating, naming, connecting and accepting; net_msg.c:
 * sending and receiving; net_sockopt.c: options): each guest socket is a host socket of the same family (IPv4, IPv6,
 * unix), reached only through the guest's fd table. Addresses pass the network policy
 * (netpolicy.h) before bind, listen, connect and addressed sends. Blocking calls never block
 * in the host kernel where it can be avoided: they try without waiting and then wait through
 * wait.h, which honours the VM deadline. accept also carries the server-mode hooks: freezing
 * at boot, and the ephemeral connection budget; calls on the program's listening sockets go
 * through listener.h, which keeps them private at boot and per VM afterwards. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "base/time.h"
#include "linux/counters.h"
#include "linux/epoll.h"
#include "linux/listener.h"
#include "linux/net_internal.h"
#include "linux/netpolicy.h"
#include "linux/process.h"
#include "linux/syscalls.h"
#include "linux/wait.h"
#include "vm/guest_mem.h"

struct lx_fd *sock_fd(struct lx_proc *p, uint64_t reg)
{
    return fdt_get(&p->fds, int_arg(reg));
}

/* ---- addresses ---- */

long read_sockaddr(struct lx_proc *p, uint64_t gva, uint64_t len_reg,
                   struct sockaddr_storage *ss, socklen_t *len)
{
    int n = int_arg(len_reg);
    if (n < 0 || (size_t)n > sizeof *ss)
        return -EINVAL;
    memset(ss, 0, sizeof *ss);
    if (n && gm_read(p->vm, ss, gva, (size_t)n))
        return -EFAULT;
    *len = (socklen_t)n;
    return 0;
}

long check_policy(struct lx_proc *p, enum np_direction dir,
                         const struct sockaddr_storage *ss, socklen_t len)
{
    struct np_addr a;
    int err = np_addr_parse(&a, ss, len);
    return err ? err : np_check(&p->env->net, dir, &a);
}

long check_destination(struct lx_proc *p, const struct sockaddr_storage *ss,
                              socklen_t len)
{
    return check_policy(p, NP_CONNECT, ss, len);
}

long prepare_addr_out(struct lx_proc *p, uint64_t addr, uint64_t lenp,
                             struct addr_out *o)
{
    *o = (struct addr_out){ .addr = addr, .lenp = lenp };
    if (!addr)
        return 0;
    int len;
    if (gm_read(p->vm, &len, lenp, sizeof len))
        return -EFAULT;
    if (len < 0)
        return -EINVAL;
    o->cap = (size_t)len < sizeof(struct sockaddr_storage) ? (size_t)len
                                                           : sizeof(struct sockaddr_storage);
    if ((o->cap && !gm_span(p->vm, addr, o->cap, GM_WRITE)) ||
        !gm_span(p->vm, lenp, sizeof len, GM_WRITE))
        return -EFAULT;
    return 0;
}

long finish_addr_out(struct lx_proc *p, const struct addr_out *o,
                            const struct sockaddr_storage *ss, socklen_t len)
{
    if (!o->addr)
        return 0;
    size_t n = len < o->cap ? len : o->cap;
    if ((n && gm_write(p->vm, o->addr, ss, n)) || gm_write(p->vm, o->lenp, &len, sizeof len))
        return -EFAULT;
    return 0;
}

int64_t sock_timeout_ns(int host_fd, int opt)
{
    struct timeval tv;
    socklen_t len = sizeof tv;
    if (getsockopt(host_fd, SOL_SOCKET, opt, &tv, &len) < 0 || (tv.tv_sec == 0 && tv.tv_usec == 0))
        return -1;
    if (tv.tv_sec < 0 || tv.tv_sec > INT64_MAX / 1000000000 - 1)
        return -1;
    return (int64_t)tv.tv_sec * 1000000000 + (int64_t)tv.tv_usec * 1000;
}

/* ---- creating, naming and connecting sockets ---- */

long sys_socket(struct lx_proc *p, const uint64_t a[6])
{
    int domain = int_arg(a[0]), type = int_arg(a[1]), protocol = int_arg(a[2]);
    if (domain != AF_INET && domain != AF_INET6 && domain != AF_UNIX)
        return -EAFNOSUPPORT;
    int flags = type & ~0xf;
    if (flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC))
        return -EINVAL;
    switch (type & 0xf) {
    case SOCK_STREAM:
    case SOCK_DGRAM:
    case SOCK_SEQPACKET:
        break;
    case SOCK_RAW:
    case SOCK_PACKET:
        return -EPERM;          /* what an unprivileged process gets */
    default:
        return -EINVAL;
    }
    if (!lx_fds_available(p, 1))
        return -EMFILE;
    int host = socket(domain, type | SOCK_CLOEXEC, protocol);
    if (host < 0)
        return -errno;
    return lx_install_fd(p, host, flags & SOCK_CLOEXEC, LX_FT_OTHER);
}

long sys_socketpair(struct lx_proc *p, const uint64_t a[6])
{
    int domain = int_arg(a[0]), type = int_arg(a[1]), protocol = int_arg(a[2]);
    if (domain == AF_INET || domain == AF_INET6)
        return -EOPNOTSUPP;
    if (domain != AF_UNIX)
        return -EAFNOSUPPORT;
    int flags = type & ~0xf;
    if (flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC))
        return -EINVAL;
    int host[2];
    if (socketpair(AF_UNIX, type | SOCK_CLOEXEC, protocol, host) < 0)
        return -errno;
    return lx_install_pair(p, host, flags & SOCK_CLOEXEC, LX_FT_PIPE, a[3]);
}

/* bind needs listen permission: a bound socket receives what is sent to that address. Port 0
 * (and a unix socket's autobind) picks a fresh address that nobody knows yet, which any
 * client socket gets implicitly anyway; listen() on such a socket is checked by itself. */
static bool binds_fresh_address(const struct sockaddr_storage *ss, socklen_t len)
{
    if (len <= sizeof(sa_family_t))
        return ss->ss_family == AF_UNIX || len == 0;
    if (ss->ss_family == AF_INET || ss->ss_family == AF_UNSPEC)
        return len >= sizeof(struct sockaddr_in) && ((const struct sockaddr_in *)ss)->sin_port == 0;
    if (ss->ss_family == AF_INET6)
        return len >= offsetof(struct sockaddr_in6, sin6_scope_id) &&
               ((const struct sockaddr_in6 *)ss)->sin6_port == 0;
    return false;
}

long sys_bind(struct lx_proc *p, const uint64_t a[6])
{
    const struct lx_fd *f = sock_fd(p, a[0]);
    if (!f)
        return -EBADF;
    struct sockaddr_storage ss;
    socklen_t len;
    long err = read_sockaddr(p, a[1], a[2], &ss, &len);
    if (err)
        return err;
    if (!binds_fresh_address(&ss, len)) {
        err = check_policy(p, NP_LISTEN, &ss, len);
        if (err)
            return err;
        err = lx_listener_bind(p, f, &ss, len);
        if (err)
            return err < 0 ? err : 0;
    }
    return bind(f->host_fd, (struct sockaddr *)&ss, len) < 0 ? -errno : 0;
}

long sys_listen(struct lx_proc *p, const uint64_t a[6])
{
    struct lx_fd *f = sock_fd(p, a[0]);
    if (!f)
        return -EBADF;
    int type;
    socklen_t tlen = sizeof type;
    if (getsockopt(f->host_fd, SOL_SOCKET, SO_TYPE, &type, &tlen) < 0)
        return -errno;          /* ENOTSOCK for files */
    if (type == SOCK_STREAM || type == SOCK_SEQPACKET) {
        /* Whatever bind (or no bind) chose: the address connections will come to. */
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        if (getsockname(f->host_fd, (struct sockaddr *)&ss, &len) < 0)
            return -errno;
        /* An unbound unix socket has no address to check: the host refuses to listen. */
        if (!(ss.ss_family == AF_UNIX && len <= sizeof(sa_family_t))) {
            long err = check_policy(p, NP_LISTEN, &ss, len);
            if (err)
                return err;
        }
    }
    long err = lx_listener_listen(p, f, int_arg(a[1]));
    if (err)
        return err;
    f->type = LX_FT_LISTENER;
    return 0;
}

long sys_connect(struct lx_proc *p, const uint64_t a[6])
{
    const struct lx_fd *f = sock_fd(p, a[0]);
    if (!f)
        return -EBADF;
    struct sockaddr_storage ss;
    socklen_t len;
    long err = read_sockaddr(p, a[1], a[2], &ss, &len);
    if (err)
        return err;
    struct lx_listener *l = lx_listener_of(p, f);
    if (l)
        return lx_listener_connect(p, l, &ss, len);
    if (len >= sizeof(sa_family_t) && ss.ss_family == AF_UNSPEC) {
        /* Dissolves a datagram association: goes nowhere, needs no permission. */
    } else if (len <= sizeof(sa_family_t)) {
        return -EINVAL;
    } else if (!lx_storage_route(p, &ss, &len)) {   /* the storage VM needs no permission */
        err = check_policy(p, NP_CONNECT, &ss, len);
        if (err)
            return err;
    }
    int host = f->host_fd;
    int fl = fcntl(host, F_GETFL);
    if (fl < 0)
        return -errno;
    /* Unix connects complete or fail at once (a full backlog waits, but briefly); so do
     * non-blocking ones. */
    if ((fl & O_NONBLOCK) || ss.ss_family == AF_UNIX || ss.ss_family == AF_UNSPEC) {
        return connect(host, (struct sockaddr *)&ss, len) < 0 ? -errno : 0;
    }
    /* A blocking TCP connect: started non-blocking, then waited for (deadline, SO_SNDTIMEO). */
    if (fcntl(host, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    int r = connect(host, (struct sockaddr *)&ss, len);
    int e = errno;
    fcntl(host, F_SETFL, fl);
    if (r == 0)
        return 0;
    if (e != EINPROGRESS)
        return -e;
    int w = lx_wait_fd_timeout(p, host, POLLOUT, sock_timeout_ns(host, SO_SNDTIMEO), false);
    if (w < 0)
        return w;
    if (w == 0)
        return -EINPROGRESS;    /* Linux's answer when SO_SNDTIMEO ends a connect */
    int soerr = 0;
    socklen_t elen = sizeof soerr;
    if (getsockopt(host, SOL_SOCKET, SO_ERROR, &soerr, &elen) < 0)
        return -errno;
    return -soerr;
}

/* ---- accept and the server hooks ---- */

static long do_accept(struct lx_proc *p, uint64_t fd_reg, uint64_t addr, uint64_t lenp,
                      int flags)
{
    if (flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC))
        return -EINVAL;
    const struct lx_fd *f = sock_fd(p, fd_reg);
    if (!f)
        return -EBADF;
    const struct lx_listener *l = lx_listener_of(p, f);
    if (l && l->read_shut)
        return -EINVAL;             /* Linux: it does not listen */
    int status = lx_fd_status_flags(p, f);
    bool blocks = status >= 0 && !(status & O_NONBLOCK);
    if (!lx_accept_allowed(p)) {
        /* An ephemeral VM's one connection is taken (through whichever fd). */
        if (blocks)
            p->server.hooks->wait_for_connection(p->server.hooks_ctx);
        return -EAGAIN;
    }
    /* The program's listeners are non-blocking on the host (at boot the private one, later
     * the one every VM shares): a blocking accept waits here and tries again. */
    int host = l ? lx_wait_host_fd(p, f) : f->host_fd;
    struct addr_out out;
    long err = prepare_addr_out(p, addr, lenp, &out);
    if (err)
        return err;
    if (!lx_fds_available(p, 1))
        return -EMFILE;         /* before accepting: the connection stays queued */

    struct sockaddr_storage ss;
    socklen_t len;
    int conn;
    for (;;) {
        /* At boot, a blocking accept is the program waiting for its first client: freeze
         * (also when the warm-up ends while it waits: it wakes the program). */
        if (blocks && f->type == LX_FT_LISTENER && lx_freeze_due(p) &&
            lx_freeze_for_readiness(p, -1))
            return 0;
        /* Waiting here, not in accept4, keeps the deadline in force. Another VM sharing the
         * listener can take the connection between the two: then this one waits again. */
        if (blocks) {
            int w = lx_wait_fd(p, host, POLLIN);
            if (w < 0)
                return w;
        }
        len = sizeof ss;
        conn = accept4(host, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC | (flags & SOCK_NONBLOCK));
        if (conn >= 0) {
            /* At boot only the warm-up is served; anyone else is turned away unseen. Once it
             * is over, its last connection only woke the program: turned away too, so that
             * no connection is open at the freeze (a snapshot could not save one). */
            if (!p->server.listen_privately ||
                (lx_accepted_from_warmup(p, conn) && !lx_warmup_over(p))) {
                if (p->server.listen_privately)
                    p->server.warmup_accepted++;
                break;
            }
            close(conn);
            errno = EAGAIN;
        }
        if (errno == EINTR || (errno == EAGAIN && blocks))
            continue;
        return -errno;
    }
    int fd = lx_install_fd(p, conn, flags & SOCK_CLOEXEC, LX_FT_CONNECTION);
    if (fd < 0)
        return fd;
    if (finish_addr_out(p, &out, &ss, len) < 0) {
        fdt_close(&p->fds, fd);
        return -EFAULT;
    }
    if (l && !p->server.storage)
        lx_count_accepted();
#ifndef NDEBUG
    /* Test hook (debug builds only; tests/e2e/test_seccomp.py): a host call off the serving
     * allow list, made from a handler, must end kvmserver with SIGSYS. Harmless without the
     * filter: execve(NULL) fails with EFAULT. */
    if (!p->server.listen_privately && getenv("KVMS_TEST_SECCOMP_VIOLATION"))
        syscall(SYS_execve, NULL, NULL, NULL);
#endif
    if (p->server.hooks) {
        p->server.hooks->accepted(p->server.hooks_ctx, p, fd);
        if (!lx_accept_allowed(p))
            lx_epoll_sync_listeners(p);     /* its listeners leave the event waits */
    }
    return fd;
}

long sys_accept(struct lx_proc *p, const uint64_t a[6])
{
    return do_accept(p, a[0], a[1], a[2], 0);
}

long sys_accept4(struct lx_proc *p, const uint64_t a[6])
{
    return do_accept(p, a[0], a[1], a[2], int_arg(a[3]));
}

long sys_shutdown(struct lx_proc *p, const uint64_t a[6])
{
    const struct lx_fd *f = sock_fd(p, a[0]);
    if (!f)
        return -EBADF;
    int how = int_arg(a[1]);
    if (how < SHUT_RD || how > SHUT_RDWR)
        return -EINVAL;
    struct lx_listener *l = lx_listener_of(p, f);
    if (l)
        return lx_listener_shutdown(p, l, how);
    return shutdown(f->host_fd, how) < 0 ? -errno : 0;
}

static long socket_name(struct lx_proc *p, const uint64_t a[6], bool peer)
{
    const struct lx_fd *f = sock_fd(p, a[0]);
    if (!f)
        return -EBADF;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int r = peer ? getpeername(f->host_fd, (struct sockaddr *)&ss, &len)
                 : getsockname(f->host_fd, (struct sockaddr *)&ss, &len);
    if (r < 0)
        return -errno;
    int cap;
    if (gm_read(p->vm, &cap, a[2], sizeof cap))
        return -EFAULT;
    if (cap < 0)
        return -EINVAL;
    size_t n = (size_t)cap < len ? (size_t)cap : len;
    if ((n && gm_write(p->vm, a[1], &ss, n)) || gm_write(p->vm, a[2], &len, sizeof len))
        return -EFAULT;
    return 0;
}

long sys_getsockname(struct lx_proc *p, const uint64_t a[6])
{
    return socket_name(p, a, false);
}

long sys_getpeername(struct lx_proc *p, const uint64_t a[6])
{
    return socket_name(p, a, true);
}
