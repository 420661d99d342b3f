/* Sending and receiving on guest sockets (see net.c): messages with their iovecs, ancillary
 * data (fds passed both ways through the guest's fd table), and the blocking behaviour of a
 * socket honouring SO_RCVTIMEO/SO_SNDTIMEO and the VM deadline. */
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

#define GUEST_IOV_MAX 1024      /* UIO_MAXIOV */
#define CONTROL_MAX 8192        /* ancillary data per message (Linux: optmem_max, ~20 KiB) */
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

/* ---- waiting like a blocking socket ---- */


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
