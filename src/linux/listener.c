/* The program's listening sockets in server mode (see listener.h). */
#include "linux/listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/log.h"
#include "linux/epoll.h"
#include "linux/process.h"
#include "vm/engine.h"

static bool host_inode(int host_fd, uint64_t *ino)
{
    struct stat st;
    if (fstat(host_fd, &st) < 0)
        return false;
    *ino = st.st_ino;
    return true;
}

struct lx_listener *lx_listener_of(struct lx_proc *p, const struct lx_fd *f)
{
    struct lx_server_state *s = &p->server;
    uint64_t ino;
    if (f->type != LX_FT_LISTENER || s->nlisteners == 0 || !host_inode(f->host_fd, &ino))
        return NULL;
    for (int i = 0; i < s->nlisteners; i++)
        if (s->listeners[i].ino == ino)
            return &s->listeners[i];
    return NULL;
}

/* A host fd of one of the guest's listening fds on this socket, or -1 if it closed them. */
static int guest_host_fd(struct lx_proc *p, uint64_t ino)
{
    for (int fd = 0; fd < LX_MAX_FDS; fd++) {
        const struct lx_fd *f = fdt_get(&p->fds, fd);
        uint64_t i;
        if (f && f->type == LX_FT_LISTENER && host_inode(f->host_fd, &i) && i == ino)
            return f->host_fd;
    }
    return -1;
}

static int sock_int(int fd, int name)
{
    int v = -1;
    socklen_t len = sizeof v;
    return getsockopt(fd, SOL_SOCKET, name, &v, &len) < 0 ? -1 : v;
}

/* ---- boot: sockets inherited by socket activation ---- */

static bool same_address(const struct sockaddr_storage *a, socklen_t alen,
                         const struct sockaddr_storage *b, socklen_t blen)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return alen >= sizeof *x && blen >= sizeof *y && x->sin_port == y->sin_port &&
               x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return alen >= offsetof(struct sockaddr_in6, sin6_scope_id) &&
               blen >= offsetof(struct sockaddr_in6, sin6_scope_id) &&
               x->sin6_port == y->sin6_port && !memcmp(&x->sin6_addr, &y->sin6_addr, 16);
    }
    /* unix: the path (or abstract name) bytes; a path given with its NUL matches one
     * without. */
    size_t off = offsetof(struct sockaddr_un, sun_path);
    if (alen <= off || blen <= off)
        return false;
    size_t an = alen - off, bn = blen - off;
    const char *ap = ((const struct sockaddr_un *)a)->sun_path;
    const char *bp = ((const struct sockaddr_un *)b)->sun_path;
    if (ap[0])
        an = strnlen(ap, an);
    if (bp[0])
        bn = strnlen(bp, bn);
    return an == bn && !memcmp(ap, bp, an);
}

long lx_listener_bind(struct lx_proc *p, const struct lx_fd *f, const struct sockaddr_storage *ss,
                      socklen_t len)
{
    struct lx_server_state *s = &p->server;
    if (!s->listen_privately)
        return 0;
    int host = f->host_fd;
    for (int i = 0; i < s->nactivated; i++) {
        int act = s->activated[i];
        struct sockaddr_storage name;
        socklen_t name_len = sizeof name;
        if (act < 0 || sock_int(act, SO_TYPE) != sock_int(host, SO_TYPE) ||
            sock_int(act, SO_DOMAIN) != sock_int(host, SO_DOMAIN) ||
            getsockname(act, (struct sockaddr *)&name, &name_len) < 0 ||
            !same_address(&name, name_len, ss, len))
            continue;
        /* The guest's socket keeps its number and its status flags (O_NONBLOCK). */
        int flags = fcntl(host, F_GETFL);
        if (flags < 0 || fcntl(act, F_SETFL, flags) < 0 || dup3(act, host, O_CLOEXEC) < 0)
            return -errno;
        close(act);
        s->activated[i] = -1;
        return 1;
    }
    return 0;
}

void lx_listeners_drop_activated(struct lx_proc *p)
{
    struct lx_server_state *s = &p->server;
    for (int i = 0; i < s->nactivated; i++) {
        if (s->activated[i] < 0)
            continue;
        log_warn("the program bound no socket to the address of inherited "
                "socket fd %d (socket activation): it is not served", s->activated[i]);
        close(s->activated[i]);
        s->activated[i] = -1;
    }
    s->nactivated = 0;
}

/* ---- boot: the private listener ---- */

/* A listener of the guest socket's kind that only this process can reach in practice:
 * loopback port 0, or a fresh abstract unix name (autobind). Non-blocking: the host never
 * waits in accept. */
static int open_private(const struct lx_listener *l)
{
    int fd = socket(l->family, l->type | SOCK_CLOEXEC | SOCK_NONBLOCK, l->protocol);
    if (fd < 0)
        return -errno;
    struct sockaddr_storage ss = { .ss_family = (sa_family_t)l->family };
    socklen_t len = sizeof(sa_family_t);
    if (l->family == AF_INET) {
        ((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof(struct sockaddr_in);
    } else if (l->family == AF_INET6) {
        ((struct sockaddr_in6 *)&ss)->sin6_addr = in6addr_loopback;
        len = sizeof(struct sockaddr_in6);
    }
    if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, l->backlog) < 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    return fd;
}

/* What listen() itself does to an inet socket that bind() never named: a wildcard address
 * and an ephemeral port, so that getsockname tells the program its port. */
static int autobind(int host_fd, const struct sockaddr_storage *name)
{
    struct sockaddr_storage any = { .ss_family = name->ss_family };
    socklen_t len;
    if (name->ss_family == AF_INET) {
        if (((const struct sockaddr_in *)name)->sin_port)
            return 0;
        len = sizeof(struct sockaddr_in);
    } else if (name->ss_family == AF_INET6) {
        if (((const struct sockaddr_in6 *)name)->sin6_port)
            return 0;
        len = sizeof(struct sockaddr_in6);
    } else {
        return 0;
    }
    return bind(host_fd, (struct sockaddr *)&any, len) < 0 ? -errno : 0;
}

/* Before a new record: forget the ones whose every guest fd was closed. */
static void drop_closed(struct lx_proc *p)
{
    struct lx_server_state *s = &p->server;
    int kept = 0;
    for (int i = 0; i < s->nlisteners; i++) {
        if (guest_host_fd(p, s->listeners[i].ino) < 0) {
            close(s->listeners[i].private_fd);
            continue;
        }
        s->listeners[kept++] = s->listeners[i];
    }
    s->nlisteners = kept;
}

static long listen_privately(struct lx_proc *p, struct lx_fd *f, int backlog)
{
    struct lx_server_state *s = &p->server;
    struct lx_listener l = { .private_fd = -1, .backlog = backlog, .shadow_fd = -1 };
    int host = f->host_fd;
    l.family = sock_int(host, SO_DOMAIN);
    l.type = sock_int(host, SO_TYPE);
    l.protocol = sock_int(host, SO_PROTOCOL);
    if (l.type != SOCK_STREAM && l.type != SOCK_SEQPACKET)
        return -EOPNOTSUPP;         /* Linux: datagram sockets do not listen */
    struct sockaddr_storage name, peer;
    socklen_t len = sizeof name, peer_len = sizeof peer;
    if (getsockname(host, (struct sockaddr *)&name, &len) < 0)
        return -errno;
    if (name.ss_family == AF_UNIX && len <= sizeof(sa_family_t))
        return -EINVAL;             /* Linux: no listening on an unbound unix socket */
    if (getpeername(host, (struct sockaddr *)&peer, &peer_len) == 0)
        return -EINVAL;             /* connected */
    long err = autobind(host, &name);
    if (err)
        return err;
    if (s->nlisteners == LX_MAX_LISTENERS)
        drop_closed(p);
    if (s->nlisteners == LX_MAX_LISTENERS) {
        log_error("more than %d listening sockets before the freeze",
                LX_MAX_LISTENERS);
        return -ENOBUFS;
    }
    l.status_flags = fcntl(host, F_GETFL);
    if (l.status_flags < 0 || !host_inode(host, &l.ino))
        return -errno;
    l.private_fd = open_private(&l);
    if (l.private_fd < 0) {
        log_error("cannot open the private listener the warm-up connects "
                "to: %s", strerror(-l.private_fd));
        return l.private_fd;
    }
    s->listeners[s->nlisteners++] = l;
    return 0;
}

long lx_listener_listen(struct lx_proc *p, struct lx_fd *f, int backlog)
{
    struct lx_listener *l = lx_listener_of(p, f);
    if (l) {
        l->backlog = backlog;
        if (l->read_shut) {
            l->read_shut = false;
            lx_epoll_sync_listeners(p);
        }
        return 0;
    }
    if (!p->server.listen_privately)    /* a request VM's own new socket */
        return listen(f->host_fd, backlog) < 0 ? -errno : 0;
    return listen_privately(p, f, backlog);
}

bool lx_accepted_from_warmup(struct lx_proc *p, int conn)
{
    struct sockaddr_storage local, peer;
    socklen_t local_len = sizeof local, peer_len = sizeof peer;
    if (getsockname(conn, (struct sockaddr *)&local, &local_len) < 0 ||
        getpeername(conn, (struct sockaddr *)&peer, &peer_len) < 0 ||
        peer.ss_family != local.ss_family)
        return false;
    if (peer.ss_family == AF_UNIX) {
        struct ucred cred;
        socklen_t len = sizeof cred;
        return getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 &&
               cred.pid == getpid();
    }
    /* The warm-up binds its socket to the private listener's loopback address and a port it
     * publishes before connecting; nobody else can hold that address and port meanwhile. */
    uint32_t port = p->server.freeze ? p->server.freeze->warmup_port(p->server.freeze_ctx) : 0;
    if (peer.ss_family == AF_INET) {
        const struct sockaddr_in *a = (void *)&peer, *b = (void *)&local;
        return a->sin_addr.s_addr == b->sin_addr.s_addr && ntohs(a->sin_port) == port;
    }
    if (peer.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (void *)&peer, *b = (void *)&local;
        return !memcmp(&a->sin6_addr, &b->sin6_addr, sizeof a->sin6_addr) &&
               ntohs(a->sin6_port) == port;
    }
    return false;
}

/* ---- the freeze ---- */

int lx_listeners_publish(struct lx_proc *p)
{
    struct lx_server_state *s = &p->server;
    if (s->storage)
        return 0;                   /* private for good: lx_storage_routes_of */
    s->listen_privately = false;
    lx_listeners_drop_activated(p);
    int kept = 0, rc = 0;
    for (int i = 0; i < s->nlisteners; i++) {
        struct lx_listener l = s->listeners[i];
        /* Whatever is still queued there (the warm-up's last connection) is reset with it. */
        close(l.private_fd);
        l.private_fd = -1;
        int host = guest_host_fd(p, l.ino);
        if (host < 0 || rc < 0)
            continue;
        if (listen(host, l.backlog) < 0 ||
            fcntl(host, F_SETFL, l.status_flags | O_NONBLOCK) < 0) {
            vm_set_crash_report(p->vm, "cannot make the program's socket listen at the "
                                "freeze: %s", strerror(errno));
            rc = -1;
            continue;
        }
        s->listeners[kept++] = l;
    }
    s->nlisteners = kept;
    return rc;
}

void lx_server_init(struct lx_server_state *s)
{
    *s = (struct lx_server_state){ 0 };
}

/* A fork of the storage VM: its own copies of the private listeners (a reset closes them). */
static int storage_fork_listeners(struct lx_server_state *s)
{
    int err = 0;
    for (int i = 0; i < s->nlisteners; i++) {
        struct lx_listener *l = &s->listeners[i];
        if (l->private_fd < 0)
            continue;
        l->private_fd = err ? -1 : fcntl(l->private_fd, F_DUPFD_CLOEXEC, 0);
        if (l->private_fd < 0 && !err)
            err = -errno;
    }
    return err;
}

int lx_server_fork(struct lx_server_state *dst, const struct lx_server_state *src)
{
    *dst = *src;
    dst->frozen = false;
    dst->boot_failed = false;
    dst->hooks = NULL;              /* the server sets its own for this VM */
    dst->hooks_ctx = NULL;
    dst->freeze = NULL;             /* a fork is never frozen again */
    dst->freeze_ctx = NULL;
    dst->memory_exceeded = false;
    dst->deadline_hit = false;
    int err = dst->storage ? storage_fork_listeners(dst) : 0;
    if (err < 0)
        log_error("cannot give the storage VM its listeners: %s", strerror(-err));
    return err;
}

void lx_server_destroy(struct lx_server_state *s)
{
    for (int i = 0; i < s->nlisteners; i++) {
        struct lx_listener *l = &s->listeners[i];
        if (l->private_fd >= 0)
            close(l->private_fd);
        if (l->shadow_fd >= 0)
            close(l->shadow_fd);
        l->private_fd = l->shadow_fd = -1;
    }
}

/* ---- the storage VM's listeners ---- */

int lx_storage_routes_of(struct lx_proc *storage, struct lx_storage_routes *out)
{
    struct lx_server_state *s = &storage->server;
    lx_listeners_drop_activated(storage);
    out->n = 0;
    for (int i = 0; i < s->nlisteners; i++) {
        const struct lx_listener *l = &s->listeners[i];
        struct lx_storage_route *r = &out->route[out->n];
        int host = guest_host_fd(storage, l->ino);
        if (host < 0)
            continue;               /* closed before the freeze */
        r->path_len = sizeof r->path;
        r->name_len = sizeof r->name;
        r->ino = l->ino;
        r->fd = -1;
        if (l->family != AF_UNIX ||
            getsockname(host, (struct sockaddr *)&r->path, &r->path_len) < 0 ||
            getsockname(l->private_fd, (struct sockaddr *)&r->name, &r->name_len) < 0) {
            vm_set_crash_report(storage->vm, "the storage program listens on a socket that "
                                "is not a unix socket; request VMs reach it only through "
                                "unix sockets");
            return -1;
        }
        out->n++;
    }
    if (out->n == 0) {
        vm_set_crash_report(storage->vm,
                            "the storage program waits without listening on a unix socket");
        return -1;
    }
    return 0;
}

bool lx_storage_route(const struct lx_proc *p, struct sockaddr_storage *ss, socklen_t *len)
{
    const struct lx_storage_routes *routes = p->server.storage_routes;
    if (!routes || ss->ss_family != AF_UNIX)
        return false;
    for (int i = 0; i < routes->n; i++) {
        const struct lx_storage_route *r = &routes->route[i];
        if (same_address(&r->path, r->path_len, ss, *len)) {
            *ss = r->name;
            *len = r->name_len;
            return true;
        }
    }
    return false;
}

void lx_listeners_stop(const struct lx_proc *frozen)
{
    for (unsigned i = 0; i < LX_MAX_FDS; i++) {
        const struct lx_fd *f = &frozen->fds.fd[i];
        if (f->kind == LX_FD_HOST && f->type == LX_FT_LISTENER &&
            shutdown(f->host_fd, SHUT_RDWR) < 0 && errno != ENOTCONN)
            log_error("cannot shut the listener down (guest fd %u): %s", i, strerror(errno));
    }
}

void lx_listeners_wait(const struct lx_proc *frozen)
{
    struct pollfd pfd[LX_MAX_LISTENERS];
    nfds_t n = 0;
    /* Every request, so only as far as the frozen table's last fd (its forks share its
     * listeners' host sockets). */
    int top = fdt_frozen_end(&frozen->fds);
    for (int i = 0; i < top && n < LX_MAX_LISTENERS; i++) {
        const struct lx_fd *f = &frozen->fds.fd[i];
        if (f->kind == LX_FD_HOST && f->type == LX_FT_LISTENER)
            pfd[n++] = (struct pollfd){ .fd = f->host_fd, .events = POLLIN };
    }
    /* EINTR: the engine's kick, or a signal for kvmserver, which wakes the listeners itself. */
    while (n && poll(pfd, n, -1) < 0 && errno == EINTR)
        ;
}

static struct lx_listener *listener_by_ino(struct lx_server_state *s, uint64_t ino)
{
    for (int i = 0; i < s->nlisteners; i++)
        if (s->listeners[i].ino == ino)
            return &s->listeners[i];
    return NULL;
}

int lx_storage_pair(const struct lx_proc *storage, const struct lx_storage_routes *shared,
                    struct lx_storage_routes *pair)
{
    *pair = *shared;
    for (int i = 0; i < pair->n; i++)
        pair->route[i].fd = -1;
    for (int i = 0; i < pair->n; i++) {
        struct lx_storage_route *r = &pair->route[i];
        const struct lx_listener *l =
            listener_by_ino((struct lx_server_state *)&storage->server, r->ino);
        r->fd = l ? open_private(l) : -ENOENT;
        r->name_len = sizeof r->name;
        if (r->fd < 0 || getsockname(r->fd, (struct sockaddr *)&r->name, &r->name_len) < 0) {
            int err = r->fd < 0 ? r->fd : -errno;
            for (int j = 0; j <= i; j++)
                if (pair->route[j].fd >= 0)
                    close(pair->route[j].fd);
            return err;
        }
    }
    return 0;
}

int lx_storage_take(struct lx_proc *fork, const struct lx_storage_routes *pair)
{
    for (int i = 0; i < pair->n; i++) {
        struct lx_listener *l = listener_by_ino(&fork->server, pair->route[i].ino);
        if (!l)
            continue;
        if (l->private_fd >= 0)
            close(l->private_fd);
        l->private_fd = fcntl(pair->route[i].fd, F_DUPFD_CLOEXEC, 0);
        if (l->private_fd < 0)
            return -errno;
    }
    return 0;
}

/* ---- what one VM does to a listener ---- */

int lx_fd_status_flags(struct lx_proc *p, const struct lx_fd *f)
{
    const struct lx_listener *l = lx_listener_of(p, f);
    if (l)
        return l->status_flags;
    int fl = fcntl(f->host_fd, F_GETFL);
    return fl < 0 ? -errno : fl;
}

int lx_wait_host_fd(struct lx_proc *p, const struct lx_fd *f)
{
    if (f->type != LX_FT_LISTENER)
        return f->host_fd;
    if (!lx_accept_allowed(p))
        return -1;
    const struct lx_listener *l = lx_listener_of(p, f);
    if (!l)
        return f->host_fd;
    if (l->read_shut)
        return -1;
    return l->private_fd >= 0 ? l->private_fd : f->host_fd;
}

bool lx_listener_spent(struct lx_proc *p, const struct lx_fd *f)
{
    return f->type == LX_FT_LISTENER && lx_wait_host_fd(p, f) < 0;
}

/* Linux: SHUT_RD (or RDWR) on a TCP listener stops it listening; SHUT_WR does nothing. A
 * unix listener's accept fails as well once its receiving side is shut. */
long lx_listener_shutdown(struct lx_proc *p, struct lx_listener *l, int how)
{
    if (how != SHUT_WR && !l->read_shut) {
        l->read_shut = true;
        lx_epoll_sync_listeners(p);
    }
    return 0;
}

/* Linux: connecting a TCP listener is EISCONN, but AF_UNSPEC disconnects it (it stops
 * listening); a unix listener cannot connect (EINVAL). */
long lx_listener_connect(struct lx_proc *p, struct lx_listener *l,
                         const struct sockaddr_storage *ss, socklen_t len)
{
    if (l->family == AF_UNIX)
        return -EINVAL;
    if (len >= sizeof(sa_family_t) && ss->ss_family == AF_UNSPEC)
        return lx_listener_shutdown(p, l, SHUT_RD);
    return -EISCONN;
}

static int find_opt(const struct lx_listener *l, int level, int name)
{
    for (int i = 0; i < l->nopts; i++)
        if (l->opts[i][0] == level && l->opts[i][1] == name)
            return i;
    return -1;
}

long lx_listener_setsockopt(struct lx_proc *p, struct lx_listener *l, int host_fd, int level,
                            int name, const void *val, socklen_t len)
{
    if (p->server.listen_privately)
        return setsockopt(host_fd, level, name, val, len) < 0 ? -errno : 0;
    bool known = find_opt(l, level, name) >= 0;
    if (!known && l->nopts == LX_LISTENER_OPTS)
        return -ENOMEM;
    if (l->shadow_fd < 0) {
        l->shadow_fd = socket(l->family, l->type | SOCK_CLOEXEC, l->protocol);
        if (l->shadow_fd < 0)
            return -errno;
    }
    /* The host checks and normalises the value (SO_RCVBUF doubles...) on the VM's socket. */
    if (setsockopt(l->shadow_fd, level, name, val, len) < 0)
        return -errno;
    if (!known) {
        l->opts[l->nopts][0] = level;
        l->opts[l->nopts++][1] = name;
    }
    return 0;
}

int lx_listener_option_fd(const struct lx_listener *l, int host_fd, int level, int name)
{
    return l->shadow_fd >= 0 && find_opt(l, level, name) >= 0 ? l->shadow_fd : host_fd;
}
