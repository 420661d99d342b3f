/* Socket options of guest sockets (see net.c): passed on to the host socket within limits,
 * some refused, and a listener's per VM (listener.h). */
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

#define OPTLEN_MAX 256          /* socket option values we pass on */

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
