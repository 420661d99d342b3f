/* Sockets for the guest: each guest socket is a host socket of the same family (IPv4, IPv6,
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
#include "linux/netpolicy.h"
#include "linux/process.h"
#include "linux/syscalls.h"
#include "linux/wait.h"
#include "vm/guest_mem.h"

#define GUEST_IOV_MAX 1024      /* UIO_MAXIOV */
#define CONTROL_MAX 8192        /* ancillary data per message (Linux: optmem_max, ~20 KiB) */
#define OPTLEN_MAX 256          /* socket option values we pass on */
#define MMSG_MAX 1024           /* Linux caps vlen at UIO_MAXIOV too */

#define RECV_FLAGS (MSG_OOB | MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT | MSG_WAITALL | MSG_ERRQUEUE)
#define SEND_FLAGS (MSG_OOB | MSG_DONTROUTE | MSG_DONTWAIT | MSG_EOR | MSG_MORE | \
                    MSG_NOSIGNAL | MSG_CONFIRM | MSG_FASTOPEN)

/* The x86-64 kernel's struct msghdr and struct mmsghdr, as the guest lays them out. */
struct guest_msghdr {
    uint64_t name;
    uint32_t namelen, pad0;
    uint64_t iov, iovlen, control, controllen;
    int32_t flags;
    uint32_t pad1;
};
_Static_assert(sizeof(struct guest_msghdr) == 56, "x86-64 struct msghdr");
#define GMSG_NAMELEN_OFF 8
#define GMSG_CONTROLLEN_OFF 40
#define GMSG_FLAGS_OFF 48
#define GMMSG_SIZE 64
#define GMMSG_LEN_OFF 56
_Static_assert(sizeof(struct iovec) == 16, "x86-64 struct iovec");

static int int_arg(uint64_t reg) { return (int)(uint32_t)reg; }

static struct lx_fd *sock_fd(struct lx_proc *p, uint64_t reg)
{
    return fdt_get(&p->fds, int_arg(reg));
}

/* ---- addresses ---- */

/* Copies a guest socket address in (Linux: 0 <= len <= sizeof(struct sockaddr_storage)). */
static long read_sockaddr(struct lx_proc *p, uint64_t gva, uint64_t len_reg,
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

static long check_policy(struct lx_proc *p, enum np_direction dir,
                         const struct sockaddr_storage *ss, socklen_t len)
{
    struct np_addr a;
    int err = np_addr_parse(&a, ss, len);
    return err ? err : np_check(&p->env->net, dir, &a);
}

/* A destination for sendto/sendmsg: sending to an address is an outgoing connection. */
static long check_destination(struct lx_proc *p, const struct sockaddr_storage *ss,
                              socklen_t len)
{
    return check_policy(p, NP_CONNECT, ss, len);
}

/* Where a call returns an address: validated before the call, so that a bad pointer does
 * not lose a connection or a datagram. */
struct addr_out {
    uint64_t addr, lenp;
    size_t cap;
};

static long prepare_addr_out(struct lx_proc *p, uint64_t addr, uint64_t lenp,
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

/* Linux writes the address truncated to the caller's size, and its full size to *lenp. */
static long finish_addr_out(struct lx_proc *p, const struct addr_out *o,
                            const struct sockaddr_storage *ss, socklen_t len)
{
    if (!o->addr)
        return 0;
    size_t n = len < o->cap ? len : o->cap;
    if ((n && gm_write(p->vm, o->addr, ss, n)) || gm_write(p->vm, o->lenp, &len, sizeof len))
        return -EFAULT;
    return 0;
}

/* ---- waiting like a blocking socket ---- */

/* The guest's SO_RCVTIMEO/SO_SNDTIMEO in ns, or -1 for none. */
static int64_t sock_timeout_ns(int host_fd, int opt)
{
    struct timeval tv;
    socklen_t len = sizeof tv;
    if (getsockopt(host_fd, SOL_SOCKET, opt, &tv, &len) < 0 || (tv.tv_sec == 0 && tv.tv_usec == 0))
        return -1;
    if (tv.tv_sec < 0 || tv.tv_sec > INT64_MAX / 1000000000 - 1)
        return -1;
    return (int64_t)tv.tv_sec * 1000000000 + (int64_t)tv.tv_usec * 1000;
}

static bool is_stream(int host_fd)
{
    int type;
    socklen_t len = sizeof type;
    return getsockopt(host_fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM;
}

static size_t iov_total(const struct msghdr *m)
{
    size_t total = 0;
    for (size_t i = 0; i < m->msg_iovlen; i++)
        total += m->msg_iov[i].iov_len;     /* capped at MAX_RW_COUNT by map_iovec */
    return total;
}

static void iov_advance(struct msghdr *m, size_t n)
{
    while (m->msg_iovlen && n >= m->msg_iov[0].iov_len) {
        n -= m->msg_iov[0].iov_len;
        m->msg_iov++;
        m->msg_iovlen--;
    }
    if (m->msg_iovlen) {
        m->msg_iov[0].iov_base = (char *)m->msg_iov[0].iov_base + n;
        m->msg_iov[0].iov_len -= n;
    }
}

/* One host transfer with the guest's blocking semantics: tried without waiting; if the socket
 * is in blocking mode, waited for (up to its SO_*TIMEO, and the VM deadline) and retried. */
static long transfer_once(struct lx_proc *p, const struct lx_fd *f, struct msghdr *m, int flags,
                          bool sending)
{
    for (;;) {
        ssize_t n = sending ? sendmsg(f->host_fd, m, flags | MSG_DONTWAIT | MSG_NOSIGNAL)
                            : recvmsg(f->host_fd, m, flags | MSG_DONTWAIT);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN || (flags & MSG_DONTWAIT) || !lx_host_fd_blocks(f->host_fd))
            return -errno;
        int64_t limit = sock_timeout_ns(f->host_fd, sending ? SO_SNDTIMEO : SO_RCVTIMEO);
        int w = lx_wait_fd_timeout(p, f->host_fd, sending ? POLLOUT : POLLIN, limit, true);
        if (w < 0)
            return w;
        if (w == 0)
            return -EAGAIN;         /* the guest's own timeout */
    }
}

/* A transfer that a blocking stream socket completes in full (send always; recv with
 * MSG_WAITALL): continued with the data alone after a partial first part. */
static long transfer(struct lx_proc *p, const struct lx_fd *f, struct msghdr *m, int flags,
                     bool sending)
{
    long n = transfer_once(p, f, m, flags, sending);
    size_t want = iov_total(m);
    if (n <= 0 || (size_t)n >= want || (flags & MSG_DONTWAIT))
        return n;
    if (!sending && (!(flags & MSG_WAITALL) || (flags & (MSG_PEEK | MSG_OOB | MSG_ERRQUEUE))))
        return n;
    if (!lx_host_fd_blocks(f->host_fd) || !is_stream(f->host_fd))
        return n;
    struct msghdr rest = { .msg_iov = m->msg_iov, .msg_iovlen = m->msg_iovlen };
    size_t done = (size_t)n;
    while (done < want) {
        iov_advance(&rest, (size_t)n);
        n = transfer_once(p, f, &rest, flags & ~MSG_FASTOPEN, sending);
        if (n == -EINTR && p->server.deadline_hit)
            return n;
        if (n <= 0)
            break;                  /* end of stream or an error: report what moved */
        done += (size_t)n;
    }
    return (long)done;
}

/* A send to a stream whose reader is gone raises SIGPIPE in the guest unless it said
 * MSG_NOSIGNAL (the host never gets the signal: it always sends with MSG_NOSIGNAL). */
static long finish_send(struct lx_proc *p, long r, int flags)
{
    if (r == -EPIPE && !(flags & MSG_NOSIGNAL))
        sys_tkill(p, (const uint64_t[6]){ (uint64_t)p->pid, SIGPIPE });
    return r;
}

/* ---- messages ---- */

struct msg_buffers {
    struct iovec iov[GUEST_IOV_MAX];
    struct sockaddr_storage name;
    _Alignas(struct cmsghdr) unsigned char control[CONTROL_MAX];
};

/* The guest's iovec array, read straight into host iovecs (the layouts agree) and turned
 * into host pointers. As Linux: negative lengths are -EINVAL, the total is capped. */
static long map_iovec(struct vm *vm, uint64_t gva, uint64_t count, int access, struct iovec *iov)
{
    if (count > GUEST_IOV_MAX)
        return -EMSGSIZE;
    if (count && gm_read(vm, iov, gva, (size_t)count * sizeof *iov))
        return -EFAULT;
    static char nothing;
    size_t total = 0;
    for (size_t i = 0; i < count; i++) {
        uint64_t base = (uint64_t)(uintptr_t)iov[i].iov_base;
        uint64_t len = iov[i].iov_len;
        if (len > (uint64_t)SSIZE_MAX)
            return -EINVAL;
        size_t n = len > MAX_RW_COUNT - total ? MAX_RW_COUNT - total : (size_t)len;
        void *host = n ? gm_span(vm, base, n, access) : &nothing;
        if (!host)
            return -EFAULT;
        iov[i] = (struct iovec){ .iov_base = host, .iov_len = n };
        total += n;
    }
    return 0;
}

/* Walks the control messages in buf[0, len) the way the kernel does: stops at a tail too
 * short for a header; a header whose length does not fit is malformed. */
static struct cmsghdr *next_cmsg(unsigned char *buf, size_t len, size_t *off, bool *bad)
{
    *bad = false;
    if (*off >= len || len - *off < sizeof(struct cmsghdr))
        return NULL;
    struct cmsghdr *c = (struct cmsghdr *)(buf + *off);
    if (c->cmsg_len < sizeof *c || c->cmsg_len > len - *off) {
        *bad = true;
        return NULL;
    }
    size_t step = CMSG_ALIGN(c->cmsg_len);
    *off = step > len - *off ? len : *off + step;
    return c;
}

static size_t cmsg_fd_count(const struct cmsghdr *c)
{
    return (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
}

/* Outgoing ancillary data: guest fds become host fds; credentials become the host process's
 * real ones (the guest believes it is pid 1, and the host may be privileged enough to send
 * any credentials). Everything else holds no pointers and is checked by the host kernel. */
static long translate_sent_control(struct lx_proc *p, unsigned char *buf, size_t len)
{
    size_t off = 0;
    bool bad;
    struct cmsghdr *c;
    while ((c = next_cmsg(buf, len, &off, &bad))) {
        if (c->cmsg_level != SOL_SOCKET)
            continue;
        if (c->cmsg_type == SCM_RIGHTS) {
            int *fds = (int *)CMSG_DATA(c);
            for (size_t i = 0; i < cmsg_fd_count(c); i++) {
                const struct lx_fd *f = fdt_get(&p->fds, fds[i]);
                if (!f)
                    return -EBADF;
                fds[i] = f->host_fd;
            }
        } else if (c->cmsg_type == SCM_CREDENTIALS) {
            if (c->cmsg_len != CMSG_LEN(sizeof(struct ucred)))
                return -EINVAL;
            struct ucred cred = { .pid = getpid(), .uid = geteuid(), .gid = getegid() };
            memcpy(CMSG_DATA(c), &cred, sizeof cred);
        }
    }
    return bad ? -EINVAL : 0;
}

/* A listening socket that comes back over a unix socket is still a listener: the server
 * hooks (the accept budget, per-VM state) must see it as one. */
static enum lx_fd_type received_fd_type(int host_fd)
{
    int on = 0;
    socklen_t len = sizeof on;
    return getsockopt(host_fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) == 0 && on
               ? LX_FT_LISTENER : LX_FT_OTHER;
}

/* Incoming ancillary data: received host fds (close-on-exec on the host) become guest fds.
 * When the table is full the rest are closed and the message is cut short with MSG_CTRUNC,
 * as Linux does. Returns the control length to give the guest. */
static size_t adopt_received_control(struct lx_proc *p, unsigned char *buf, size_t len,
                                     bool cloexec, int *msg_flags)
{
    size_t off = 0, keep = len;
    bool bad, full = false;
    struct cmsghdr *c;
    while ((c = next_cmsg(buf, len, &off, &bad))) {
        if (c->cmsg_level != SOL_SOCKET)
            continue;
        if (c->cmsg_type == SCM_CREDENTIALS && c->cmsg_len >= CMSG_LEN(sizeof(struct ucred))) {
            struct ucred cred;
            memcpy(&cred, CMSG_DATA(c), sizeof cred);
            if (cred.pid == getpid()) {
                cred.pid = p->pid;      /* the guest's own socketpair: itself */
                memcpy(CMSG_DATA(c), &cred, sizeof cred);
            }
            continue;
        }
        if (c->cmsg_type != SCM_RIGHTS)
            continue;
        int *fds = (int *)CMSG_DATA(c);
        size_t n = cmsg_fd_count(c);
        for (size_t i = 0; i < n; i++) {
            int fd = full ? -1 : lx_install_fd(p, fds[i], cloexec, received_fd_type(fds[i]));
            if (fd >= 0) {
                fds[i] = fd;
                continue;
            }
            if (!full) {        /* lx_install_fd closed fds[i]; cut the message here */
                full = true;
                keep = (size_t)((unsigned char *)c - buf) + CMSG_SPACE(i * sizeof(int));
                c->cmsg_len = CMSG_LEN(i * sizeof(int));
                *msg_flags |= MSG_CTRUNC;
            } else {
                close(fds[i]);
            }
        }
    }
    return keep < len ? keep : len;
}

static long recvmsg_at(struct lx_proc *p, const struct lx_fd *f, uint64_t msg_gva, int flags,
                       struct msg_buffers *b)
{
    struct guest_msghdr g;
    if (gm_read(p->vm, &g, msg_gva, sizeof g))
        return -EFAULT;
    long err = map_iovec(p->vm, g.iov, g.iovlen, GM_WRITE, b->iov);
    if (err)
        return err;
    size_t name_cap = 0;
    if (g.name) {
        if ((int)g.namelen < 0)
            return -EINVAL;
        name_cap = g.namelen < sizeof b->name ? g.namelen : sizeof b->name;
        if (name_cap && !gm_span(p->vm, g.name, name_cap, GM_WRITE))
            return -EFAULT;
    }
    size_t control_cap = !g.control ? 0 : g.controllen < CONTROL_MAX ? g.controllen : CONTROL_MAX;
    if (control_cap && !gm_span(p->vm, g.control, control_cap, GM_WRITE))
        return -EFAULT;
    struct msghdr m = {
        .msg_name = g.name ? &b->name : NULL, .msg_namelen = g.name ? sizeof b->name : 0,
        .msg_iov = b->iov, .msg_iovlen = g.iovlen,
        .msg_control = control_cap ? b->control : NULL, .msg_controllen = control_cap,
    };
    long n = transfer(p, f, &m, (flags & RECV_FLAGS) | MSG_CMSG_CLOEXEC, false);
    if (n < 0)
        return n;
    /* Linux echoes the caller's MSG_CMSG_CLOEXEC in msg_flags. */
    int out_flags = (m.msg_flags & ~MSG_CMSG_CLOEXEC) | (flags & MSG_CMSG_CLOEXEC);
    size_t control_len = m.msg_control ? m.msg_controllen : 0;
    if (control_len)
        control_len = adopt_received_control(p, b->control, control_len,
                                             flags & MSG_CMSG_CLOEXEC, &out_flags);
    uint64_t controllen_out = control_len;
    if ((control_len && gm_write(p->vm, g.control, b->control, control_len)) ||
        gm_write(p->vm, msg_gva + GMSG_CONTROLLEN_OFF, &controllen_out, sizeof controllen_out) ||
        gm_write(p->vm, msg_gva + GMSG_FLAGS_OFF, &out_flags, sizeof out_flags))
        return -EFAULT;
    if (g.name) {
        size_t k = m.msg_namelen < name_cap ? m.msg_namelen : name_cap;
        uint32_t full_len = m.msg_namelen;
        if ((k && gm_write(p->vm, g.name, &b->name, k)) ||
            gm_write(p->vm, msg_gva + GMSG_NAMELEN_OFF, &full_len, sizeof full_len))
            return -EFAULT;
    }
    return n;
}

static long sendmsg_at(struct lx_proc *p, const struct lx_fd *f, uint64_t msg_gva, int flags,
                       struct msg_buffers *b)
{
    struct guest_msghdr g;
    if (gm_read(p->vm, &g, msg_gva, sizeof g))
        return -EFAULT;
    long err = map_iovec(p->vm, g.iov, g.iovlen, GM_READ, b->iov);
    if (err)
        return err;
    socklen_t namelen = 0;
    if (g.name && g.namelen) {
        err = read_sockaddr(p, g.name, g.namelen, &b->name, &namelen);
        if (!err)
            err = check_destination(p, &b->name, namelen);
        if (err)
            return err;
    }
    size_t control_len = g.control ? g.controllen : 0;
    if (control_len > CONTROL_MAX)
        return -ENOBUFS;
    if (control_len) {
        if (gm_read(p->vm, b->control, g.control, control_len))
            return -EFAULT;
        err = translate_sent_control(p, b->control, control_len);
        if (err)
            return err;
    }
    struct msghdr m = {
        .msg_name = namelen ? &b->name : NULL, .msg_namelen = namelen,
        .msg_iov = b->iov, .msg_iovlen = g.iovlen,
        .msg_control = control_len ? b->control : NULL, .msg_controllen = control_len,
    };
    return finish_send(p, transfer(p, f, &m, flags & SEND_FLAGS, true), flags);
}

long sys_recvmsg(struct lx_proc *p, const uint64_t a[6])
{
    const struct lx_fd *f = sock_fd(p, a[0]);
    if (!f)
        return -EBADF;
    struct msg_buffers b;
    return recvmsg_at(p, f, a[1], int_arg(a[2]), &b);
}

long sys_sendmsg(struct lx_proc *p, const uint64_t a[6])
{
    const struct lx_fd *f = sock_fd(p, a[0]);
    if (!f)
        return -EBADF;
    struct msg_buffers b;
    return sendmsg_at(p, f, a[1], int_arg(a[2]), &b);
}

long sys_sendmmsg(struct lx_proc *p, const uint64_t a[6])
{
    const struct lx_fd *f = sock_fd(p, a[0]);
    if (!f)
        return -EBADF;
    uint32_t vlen = (uint32_t)a[2];
    if (vlen > MMSG_MAX)
        vlen = MMSG_MAX;
    int flags = int_arg(a[3]);
    struct msg_buffers b;
    uint32_t sent = 0;
    for (; sent < vlen; sent++) {
        uint64_t at = a[1] + (uint64_t)sent * GMMSG_SIZE;
        long n = sendmsg_at(p, f, at, flags, &b);
        if (n == -EINTR && p->server.deadline_hit)
            return n;
        uint32_t len = (uint32_t)n;
        if (n >= 0 && gm_write(p->vm, at + GMMSG_LEN_OFF, &len, sizeof len))
            n = -EFAULT;
        if (n < 0)
            return sent ? (long)sent : n;   /* Linux reports what went out before an error */
    }
    return sent;
}

long sys_recvmmsg(struct lx_proc *p, const uint64_t a[6])
{
    const struct lx_fd *f = sock_fd(p, a[0]);
    if (!f)
        return -EBADF;
    uint32_t vlen = (uint32_t)a[2];
    if (vlen > MMSG_MAX)
        vlen = MMSG_MAX;
    int flags = int_arg(a[3]);
    uint64_t end = 0;
    if (a[4]) {
        struct timespec ts;
        if (gm_read(p->vm, &ts, a[4], sizeof ts))
            return -EFAULT;
        if (!timespec_valid(&ts))
            return -EINVAL;
        end = now_ns() + (uint64_t)timespec_ns(&ts);
    }
    struct msg_buffers b;
    uint32_t got = 0;
    long err = 0;
    /* Like Linux, the timeout is looked at between datagrams, not while one is awaited. */
    while (got < vlen) {
        uint64_t at = a[1] + (uint64_t)got * GMMSG_SIZE;
        long n = recvmsg_at(p, f, at, flags & ~MSG_WAITFORONE, &b);
        if (n < 0) {
            err = n;
            break;
        }
        uint32_t len = (uint32_t)n;
        if (gm_write(p->vm, at + GMMSG_LEN_OFF, &len, sizeof len)) {
            err = -EFAULT;
            break;
        }
        got++;
        if (flags & MSG_WAITFORONE)
            flags |= MSG_DONTWAIT;
        if (a[4] && now_ns() >= end)
            break;
        if (flags & MSG_OOB)
            break;
    }
    if (err == -EINTR && p->server.deadline_hit)
        return err;
    if (got == 0)
        return err;
    if (a[4]) {
        uint64_t now = now_ns(), left = end > now ? end - now : 0;
        struct timespec ts = { .tv_sec = (time_t)(left / 1000000000),
                               .tv_nsec = (long)(left % 1000000000) };
        if (gm_write(p->vm, a[4], &ts, sizeof ts))
            return -EFAULT;
    }
    return got;
}

long sys_recvfrom(struct lx_proc *p, const uint64_t a[6])
{
    const struct lx_fd *f = sock_fd(p, a[0]);
    if (!f)
        return -EBADF;
    size_t len = a[2] > MAX_RW_COUNT ? MAX_RW_COUNT : (size_t)a[2];
    static char nothing;
    void *buf = len ? gm_span(p->vm, a[1], len, GM_WRITE) : &nothing;
    if (!buf)
        return -EFAULT;
    struct addr_out out;
    long err = prepare_addr_out(p, a[4], a[5], &out);
    if (err)
        return err;
    struct sockaddr_storage ss;
    struct iovec iov = { .iov_base = buf, .iov_len = len };
    struct msghdr m = { .msg_name = out.addr ? &ss : NULL, .msg_namelen = out.addr ? sizeof ss : 0,
                        .msg_iov = &iov, .msg_iovlen = 1 };
    long n = transfer(p, f, &m, int_arg(a[3]) & RECV_FLAGS, false);
    if (n < 0)
        return n;
    err = finish_addr_out(p, &out, &ss, m.msg_namelen);
    return err ? err : n;
}

long sys_sendto(struct lx_proc *p, const uint64_t a[6])
{
    const struct lx_fd *f = sock_fd(p, a[0]);
    if (!f)
        return -EBADF;
    size_t len = a[2] > MAX_RW_COUNT ? MAX_RW_COUNT : (size_t)a[2];
    static char nothing;
    void *buf = len ? gm_span(p->vm, a[1], len, GM_READ) : &nothing;
    if (!buf)
        return -EFAULT;
    struct sockaddr_storage ss;
    socklen_t sslen = 0;
    if (a[4]) {
        long err = read_sockaddr(p, a[4], a[5], &ss, &sslen);
        if (!err && sslen)
            err = check_destination(p, &ss, sslen);
        if (err)
            return err;
    }
    struct iovec iov = { .iov_base = buf, .iov_len = len };
    struct msghdr m = { .msg_name = sslen ? &ss : NULL, .msg_namelen = sslen,
                        .msg_iov = &iov, .msg_iovlen = 1 };
    int flags = int_arg(a[3]);
    return finish_send(p, transfer(p, f, &m, flags & SEND_FLAGS, true), flags);
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
    if (p->server.accepts_left == 0) {
        /* An ephemeral VM's one connection is taken (through whichever fd); waiting for
         * another means the request is over. */
        if (blocks)
            p->server.request_done = true;
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
            /* At boot only the warm-up is served; anyone else is turned away unseen. */
            if (!p->server.listen_privately || lx_accepted_from_warmup(p, conn))
                break;
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
    if (p->server.accepts_left > 0) {
        p->server.conn_fd = fd;
        p->server.conn_accepted_ns = now_ns();
        if (--p->server.accepts_left == 0) {
            lx_epoll_sync_listeners(p);
            lx_request_started(p);
        }
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

/* ---- socket options ---- */

/* Options the guest may not pass to the host. -ENOPROTOOPT: the value holds guest pointers
 * or guest fds (socket filters, BPF programs), or it is host administration (netfilter,
 * multicast routing), or it would let the host kernel pin guest memory (zero-copy). -EPERM:
 * it needs a capability an ordinary process lacks, and the host may run privileged. */
static long refused_option(int level, int name, bool set)
{
    switch (level) {
    case SOL_SOCKET:
        switch (name) {
        case SO_ATTACH_FILTER:          /* = SO_GET_FILTER, whose size is not its optlen */
        case SO_ATTACH_BPF:
        case SO_ATTACH_REUSEPORT_CBPF:
        case SO_ATTACH_REUSEPORT_EBPF:
        case SO_ZEROCOPY:
            return -ENOPROTOOPT;
        case SO_DEBUG:
        case SO_MARK:
        case SO_RCVBUFFORCE:
        case SO_SNDBUFFORCE:
        case SO_BINDTODEVICE:
        case SO_BINDTOIFINDEX:
        case SO_BUSY_POLL:
        case SO_TXTIME:
        case SO_RESERVE_MEM:
            return set ? -EPERM : 0;
        default:
            return 0;
        }
    case IPPROTO_IP:
        if (name >= 64)                 /* iptables, ipvs, multicast routing */
            return -ENOPROTOOPT;
        if (set && (name == IP_TRANSPARENT || name == IP_IPSEC_POLICY || name == IP_XFRM_POLICY))
            return -EPERM;
        return 0;
    case IPPROTO_IPV6:
        if ((name >= 64 && name <= 71) || name >= 200)  /* ip6tables, multicast routing */
            return -ENOPROTOOPT;
        if (set && (name == IPV6_TRANSPARENT || name == IPV6_IPSEC_POLICY ||
                    name == IPV6_XFRM_POLICY))
            return -EPERM;
        return 0;
    case IPPROTO_TCP:
        if (name == TCP_ZEROCOPY_RECEIVE)
            return -ENOPROTOOPT;
        if (set && (name == TCP_REPAIR || name == TCP_REPAIR_QUEUE || name == TCP_QUEUE_SEQ ||
                    name == TCP_REPAIR_OPTIONS || name == TCP_REPAIR_WINDOW))
            return -EPERM;
        return 0;
    case IPPROTO_UDP:
    case SOL_TLS:
        return 0;
    default:
        return -ENOPROTOOPT;
    }
}

long sys_setsockopt(struct lx_proc *p, const uint64_t a[6])
{
    const struct lx_fd *f = sock_fd(p, a[0]);
    if (!f)
        return -EBADF;
    int level = int_arg(a[1]), name = int_arg(a[2]), optlen = int_arg(a[4]);
    if (optlen < 0)
        return -EINVAL;
    long err = refused_option(level, name, true);
    if (err)
        return err;
    /* Longer values are cut: no option we pass on reads beyond this many bytes. */
    size_t len = (size_t)optlen < OPTLEN_MAX ? (size_t)optlen : OPTLEN_MAX;
    _Alignas(8) unsigned char val[OPTLEN_MAX];
    if (len && gm_read(p->vm, val, a[3], len))
        return -EFAULT;
    if (level == SOL_SOCKET && name == SO_PRIORITY && len >= sizeof(int)) {
        int prio;
        memcpy(&prio, val, sizeof prio);
        if (prio < 0 || prio > 6)
            return -EPERM;      /* higher priorities need CAP_NET_ADMIN */
    }
    struct lx_listener *l = lx_listener_of(p, f);
    if (l)
        return lx_listener_setsockopt(p, l, f->host_fd, level, name, len ? val : NULL,
                                      (socklen_t)len);
    return setsockopt(f->host_fd, level, name, len ? val : NULL, (socklen_t)len) < 0 ? -errno : 0;
}

long sys_getsockopt(struct lx_proc *p, const uint64_t a[6])
{
    const struct lx_fd *f = sock_fd(p, a[0]);
    if (!f)
        return -EBADF;
    int level = int_arg(a[1]), name = int_arg(a[2]);
    long err = refused_option(level, name, false);
    if (err)
        return err;
    int optlen;
    if (gm_read(p->vm, &optlen, a[4], sizeof optlen))
        return -EFAULT;
    if (optlen < 0)
        return -EINVAL;
    socklen_t len = (size_t)optlen < OPTLEN_MAX ? (socklen_t)optlen : OPTLEN_MAX;
    /* Twice the size passed, zeroed: a host option that wrote past its length would still
     * land in our buffer. Some options read their input from the buffer, so it is copied in. */
    _Alignas(8) unsigned char val[2 * OPTLEN_MAX] = { 0 };
    if (len && gm_read(p->vm, val, a[3], len))
        return -EFAULT;
    const struct lx_listener *l = lx_listener_of(p, f);
    if (l && level == SOL_SOCKET && name == SO_ACCEPTCONN) {
        /* The host socket does not listen at boot; a VM may have shut it down for itself
         * (which leaves a unix listener listening, as on Linux). */
        int on = !l->read_shut || l->family == AF_UNIX;
        memcpy(val, &on, sizeof on);
        len = len < sizeof on ? len : sizeof on;
    } else if (getsockopt(l ? lx_listener_option_fd(l, f->host_fd, level, name) : f->host_fd,
                          level, name, val, &len) < 0) {
        return -errno;
    }
    if (len > OPTLEN_MAX)
        len = OPTLEN_MAX;
    if (level == SOL_SOCKET && name == SO_PEERCRED && len >= sizeof(struct ucred)) {
        struct ucred cred;
        memcpy(&cred, val, sizeof cred);
        if (cred.pid == getpid()) {
            cred.pid = p->pid;  /* its own socketpair: the guest itself */
            memcpy(val, &cred, sizeof cred);
        }
    }
    if ((len && gm_write(p->vm, a[3], val, len)) || gm_write(p->vm, a[4], &len, sizeof len))
        return -EFAULT;
    return 0;
}
