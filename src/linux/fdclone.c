/* Giving a fork its own fd table. Every request VM starts from the frozen master's fds as a
 * forked process would, but privately: pipes, socketpairs, eventfds and memfds are rebuilt
 * with what they held at the freeze, files on disk get their own open file description at
 * the frozen offset, epoll instances are rebuilt from their registrations. Only what is
 * meant to be shared keeps the master's host object: the listener, the host's standard
 * streams, devices, and sockets that reach outside the guest.
 *
 * fdt_freeze looks at the master once (it never runs again, and no fork touches its private
 * objects), so each fork or reset only creates and fills the new objects. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "linux/epoll.h"
#include "linux/fdfrozen.h"
#include "linux/fdtable.h"

void fdt_free_frozen(struct lx_frozen_fd *fz)
{
    if (!fz)
        return;
    free(fz->queue);
    free(fz->msg_len);
    if (fz->contents)
        munmap((void *)fz->contents, (size_t)fz->size);
    free(fz);
}

static int fail_fd(int guest_fd, const char *what, int err)
{
    log_error("guest fd %d: %s: %s", guest_fd, what, strerror(err));
    return -err;
}

/* ------------------------------------------------------------------ freezing */

static void host_link(int host_fd, char *buf, size_t size)
{
    char path[32];
    snprintf(path, sizeof path, "/proc/self/fd/%d", host_fd);
    ssize_t n = readlink(path, buf, size - 1);
    buf[n < 0 ? 0 : n] = '\0';
}

/* eventfd state from /proc/self/fdinfo: the counter cannot be read without consuming it. */
static int read_eventfd(int host_fd, struct lx_frozen_fd *fz)
{
    char path[40], buf[512];
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", host_fd);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    int err = errno;
    close(fd);
    if (n < 0)
        return -err;
    buf[n] = '\0';
    const char *count = strstr(buf, "eventfd-count:");
    if (!count)
        return -ENOTSUP;
    fz->count = strtoull(count + strlen("eventfd-count:"), NULL, 16);
    /* Older kernels do not show these: one id per open eventfd, no semaphores seen. */
    const char *id = strstr(buf, "eventfd-id:");
    fz->eventfd_id = id ? strtoull(id + strlen("eventfd-id:"), NULL, 10) : 0;
    const char *sem = strstr(buf, "eventfd-semaphore:");
    fz->semaphore = sem && strtol(sem + strlen("eventfd-semaphore:"), NULL, 10) != 0;
    return 0;
}

static bool unnamed_unix(const struct sockaddr_storage *ss, socklen_t len)
{
    return ss->ss_family == AF_UNIX && len == sizeof(sa_family_t);
}

/* A connected AF_UNIX socket whose ends both have no name: made by socketpair (here, or
 * received from elsewhere). */
static bool is_socketpair_end(int host_fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(host_fd, (struct sockaddr *)&ss, &len) < 0 || !unnamed_unix(&ss, len))
        return false;
    len = sizeof ss;
    return getpeername(host_fd, (struct sockaddr *)&ss, &len) == 0 && unnamed_unix(&ss, len);
}

#define PEEK_MAX (1u << 20)     /* more than any AF_UNIX socket buffer holds */
#define PEEK_MSGS_MAX 65536

static bool peer_gone(int host_fd)
{
    struct pollfd p = { .fd = host_fd, .events = POLLRDHUP };
    return poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP));
}

/* What a socket end would read next, looked at with MSG_PEEK (datagrams one by one through
 * SO_PEEK_OFF, which is put back). In-flight fds cannot be copied: refused. */
static int peek_queue(int host_fd, struct lx_frozen_fd *fz)
{
    int queued = 0;
    if (ioctl(host_fd, FIONREAD, &queued) < 0)
        return -errno;
    if (queued == 0 && fz->sock_type == SOCK_STREAM)
        return 0;
    unsigned char *buf = malloc(PEEK_MAX);
    if (!buf)
        return -ENOMEM;
    bool stream = fz->sock_type == SOCK_STREAM;
    int off = 0, err = 0;
    if (!stream && setsockopt(host_fd, SOL_SOCKET, SO_PEEK_OFF, &off, sizeof off) < 0) {
        err = -errno;
        goto out;
    }
    size_t used = 0;
    for (;;) {
        struct iovec iov = { buf + used, PEEK_MAX - used };
        char control[256];
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
                              .msg_controllen = sizeof control };
        /* MSG_TRUNC gives a datagram's whole length; on a stream it would drop data. */
        ssize_t n = recvmsg(host_fd, &msg, MSG_PEEK | MSG_DONTWAIT | MSG_CMSG_CLOEXEC |
                                           (stream ? 0 : MSG_TRUNC));
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n < 0) {
            err = -errno;
            break;
        }
        /* Past the last datagram of a socket whose peer is gone, every peek reads 0 (EOF),
         * as an empty datagram does: a reader cannot tell them apart either. */
        if (n == 0 && !stream && peer_gone(host_fd))
            break;
        if (fz->nmsgs >= PEEK_MSGS_MAX) {
            err = -ENOTSUP;
            break;
        }
        /* Fds in flight cannot be copied (peeking made them new host fds: closed again);
         * credentials are not kept. */
        bool fds = (msg.msg_flags & MSG_CTRUNC) != 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                continue;
            fds = true;
            for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++)
                close(((int *)CMSG_DATA(c))[i]);
        }
        if (fds || (msg.msg_flags & MSG_TRUNC) || (size_t)n > PEEK_MAX - used ||
            (stream && n != queued)) {
            err = -ENOTSUP;
            break;
        }
        size_t *lens = realloc(fz->msg_len, (fz->nmsgs + 1) * sizeof *lens);
        if (!lens) {
            err = -ENOMEM;
            break;
        }
        fz->msg_len = lens;
        fz->msg_len[fz->nmsgs++] = (size_t)n;
        used += (size_t)n;
        if (stream)
            break;      /* a stream peek returns everything queued */
    }
    if (!stream) {
        off = -1;
        if (setsockopt(host_fd, SOL_SOCKET, SO_PEEK_OFF, &off, sizeof off) < 0 && !err)
            err = -errno;
    }
    if (!err) {
        fz->queue = buf;
        buf = NULL;
    }
out:
    free(buf);
    return err;
}

static int freeze_memfd(int host_fd, const char *link, struct lx_frozen_fd *fz,
                        const struct stat *st)
{
    /* "/memfd:NAME (deleted)" */
    const char *name = link + strlen("/memfd:");
    size_t len = strlen(name);
    const char *suffix = " (deleted)";
    if (len >= strlen(suffix) && strcmp(name + len - strlen(suffix), suffix) == 0)
        len -= strlen(suffix);
    if (len > sizeof fz->name - 1)
        len = sizeof fz->name - 1;
    memcpy(fz->name, name, len);
    fz->name[len] = '\0';
    fz->size = st->st_size;
    fz->mode = st->st_mode & 07777;
    fz->seals = fcntl(host_fd, F_GET_SEALS);
    if (fz->seals < 0)
        return -errno;
    /* Forks copy from a mapping: write() from memory beats copy_file_range between memfds
     * (240-460 against 280-650 us a MiB on this machine, idle to busy). */
    if (fz->size > 0) {
        void *map = mmap(NULL, (size_t)fz->size, PROT_READ, MAP_SHARED, host_fd, 0);
        if (map == MAP_FAILED)
            return -errno;
        fz->contents = map;
    }
    return 0;
}

/* How a fork rebuilds this fd, and what it needs for that, from the host object. */
static int freeze_one(const struct lx_fd *f, struct lx_frozen_fd *fz)
{
    fz->peer = -1;
    fz->flags = fcntl(f->host_fd, F_GETFL);
    if (fz->flags < 0)
        return -errno;
    switch (f->type) {
    case LX_FT_LISTENER: case LX_FT_CONNECTION: case LX_FT_STDIO:
        fz->how = FORK_SHARE;
        return 0;
    case LX_FT_EPOLL:
        fz->how = FORK_EPOLL;
        return 0;
    case LX_FT_OTHER: case LX_FT_PIPE:
        break;
    }
    struct stat st;
    if (fstat(f->host_fd, &st) < 0)
        return -errno;
    fz->dev = st.st_dev;
    fz->ino = st.st_ino;
    char link[PATH_MAX];
    host_link(f->host_fd, link, sizeof link);
    if (S_ISFIFO(st.st_mode)) {
        /* A named FIFO may have a writer or reader outside: shared, like a socket. */
        if (strncmp(link, "pipe:", 5) != 0) {
            fz->how = FORK_SHARE;
            return 0;
        }
        fz->how = FORK_PIPE;
        fz->pipe_size = fcntl(f->host_fd, F_GETPIPE_SZ);
        if (fz->pipe_size < 0)
            return -errno;
        if ((fz->flags & O_ACCMODE) == O_RDONLY && ioctl(f->host_fd, FIONREAD, &fz->pipe_bytes) < 0)
            return -errno;
        return 0;
    }
    if (S_ISSOCK(st.st_mode)) {
        if (f->type != LX_FT_PIPE && !is_socketpair_end(f->host_fd)) {
            fz->how = FORK_SHARE;    /* it reaches outside the guest, as after fork(2) */
            return 0;
        }
        fz->how = FORK_SOCKETPAIR;
        socklen_t len = sizeof fz->sock_type;
        if (getsockopt(f->host_fd, SOL_SOCKET, SO_TYPE, &fz->sock_type, &len) < 0)
            return -errno;
        return peek_queue(f->host_fd, fz);
    }
    if (S_ISREG(st.st_mode) && strncmp(link, "/memfd:", 7) == 0) {
        fz->how = FORK_MEMFD;
        fz->offset = lseek(f->host_fd, 0, SEEK_CUR);
        if (fz->offset < 0)
            return -errno;
        return freeze_memfd(f->host_fd, link, fz, &st);
    }
    if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) {
        fz->how = FORK_REOPEN;
        fz->offset = (fz->flags & O_PATH) ? 0 : lseek(f->host_fd, 0, SEEK_CUR);
        if (fz->offset < 0)
            return -errno;
        return 0;
    }
    if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
        fz->how = FORK_SHARE;        /* devices keep no per-open state we could copy */
        return 0;
    }
    if (strcmp(link, "anon_inode:[eventfd]") == 0) {
        fz->how = FORK_EVENTFD;
        return read_eventfd(f->host_fd, fz);
    }
    if (strcmp(link, "anon_inode:[eventpoll]") == 0) {
        fz->how = FORK_EPOLL_DUP;
        return 0;
    }
    /* No way to give a fork its own copy: never share it instead. */
    log_error("%s: request VMs cannot get a private copy of this kind of fd",
            link);
    return -ENOTSUP;
}

static bool same_ofd(const struct lx_fdtable *t, int a, int b)
{
    const struct lx_frozen_fd *x = t->fd[a].frozen, *y = t->fd[b].frozen;
    switch (x->how) {
    case FORK_PIPE:
        return y->how == FORK_PIPE && x->dev == y->dev && x->ino == y->ino &&
               (x->flags & O_ACCMODE) == (y->flags & O_ACCMODE);
    case FORK_SOCKETPAIR:
        return y->how == FORK_SOCKETPAIR && x->ino == y->ino && x->dev == y->dev;
    case FORK_EVENTFD:
        if (y->how != FORK_EVENTFD)
            return false;
        return x->eventfd_id ? x->eventfd_id == y->eventfd_id : t->fd[a].ofd == t->fd[b].ofd;
    case FORK_EPOLL_DUP:
        return false;           /* resolved against the epoll fd itself below */
    default:
        return y->how == x->how && t->fd[a].ofd == t->fd[b].ofd;
    }
}

static bool same_object(const struct lx_frozen_fd *x, const struct lx_frozen_fd *y)
{
    if (x->how != y->how || x->dev != y->dev)
        return false;
    if (x->how == FORK_PIPE || x->how == FORK_MEMFD)
        return x->ino == y->ino;
    return x->how == FORK_SOCKETPAIR &&
           (x->ino == y->ino || (x->peer_ino && x->peer_ino == y->ino) ||
            (y->peer_ino && y->peer_ino == x->ino));
}

/* Groups the fds: which share an open file description, which are ends of one object. */
static int link_frozen(struct lx_fdtable *t)
{
    for (int i = 0; i < LX_MAX_FDS; i++) {
        struct lx_frozen_fd *fz = t->fd[i].frozen;
        if (!fz || fz->how != FORK_SOCKETPAIR || !t->fd[i].peer_ofd)
            continue;
        for (int j = 0; j < LX_MAX_FDS && !fz->peer_ino; j++)
            if (t->fd[j].frozen && t->fd[j].ofd == t->fd[i].peer_ofd &&
                t->fd[j].frozen->how == FORK_SOCKETPAIR)
                fz->peer_ino = t->fd[j].frozen->ino;
    }
    /* A dup received through SCM_RIGHTS has no record of its peer: take its twin's. */
    for (int i = 0; i < LX_MAX_FDS; i++) {
        struct lx_frozen_fd *fz = t->fd[i].frozen;
        for (int j = 0; fz && fz->how == FORK_SOCKETPAIR && !fz->peer_ino && j < LX_MAX_FDS; j++)
            if (t->fd[j].frozen && same_ofd(t, i, j))
                fz->peer_ino = t->fd[j].frozen->peer_ino;
    }
    for (int i = 0; i < LX_MAX_FDS; i++) {
        struct lx_frozen_fd *fz = t->fd[i].frozen;
        if (!fz)
            continue;
        fz->ofd_first = fz->object_first = i;
        for (int j = 0; j < i; j++) {
            const struct lx_frozen_fd *o = t->fd[j].frozen;
            if (o && fz->ofd_first == i && same_ofd(t, j, i))
                fz->ofd_first = j;
            if (o && fz->object_first == i && same_object(o, fz))
                fz->object_first = j;
        }
        /* The later fds of one epoll instance are its duplicates in the fork too. */
        if (fz->how == FORK_EPOLL && fz->ofd_first != i)
            fz->how = FORK_EPOLL_DUP;
        if (fz->how == FORK_EPOLL_DUP) {
            int epoll = -1;
            for (int j = 0; j < LX_MAX_FDS && epoll < 0; j++)
                if (t->fd[j].type == LX_FT_EPOLL && t->fd[j].ofd == t->fd[i].ofd)
                    epoll = j;
            if (epoll < 0)      /* its registrations are unknown: it cannot be rebuilt */
                return fail_fd(i, "a duplicated epoll fd whose original was closed", ENOTSUP);
            fz->ofd_first = epoll;
        }
        if (fz->how == FORK_PIPE || fz->how == FORK_SOCKETPAIR) {
            for (int j = 0; j < LX_MAX_FDS && fz->peer < 0; j++) {
                const struct lx_frozen_fd *o = t->fd[j].frozen;
                if (o && j != i && same_object(o, fz) && !same_ofd(t, i, j))
                    fz->peer = j;
            }
        }
    }
    return 0;
}

int fdt_freeze(struct lx_fdtable *t)
{
    t->frozen_top = 0;
    for (int i = 0; i < LX_MAX_FDS; i++) {
        struct lx_fd *f = &t->fd[i];
        if (f->kind == LX_FD_FREE)
            continue;
        t->frozen_top = i + 1;
        fdt_free_frozen(f->frozen);
        f->frozen = calloc(1, sizeof *f->frozen);
        if (!f->frozen)
            return fail_fd(i, "recording it for request VMs", ENOMEM);
        int err = freeze_one(f, f->frozen);
        if (err)
            return fail_fd(i, "cannot record it for private copies in request VMs", -err);
    }
    return link_frozen(t);
}

/* ------------------------------------------------------------------ cloning */

static int set_flags(int host_fd, int frozen_flags, int settable)
{
    int want = frozen_flags & settable;
    if (want && fcntl(host_fd, F_SETFL, want) < 0)
        return -errno;
    return 0;
}

/* O_NONBLOCK per end: ends[0] is fz's, ends[1] its peer's (closed later if none). */
static int set_end_flags(const int ends[2], const struct lx_frozen_fd *fz,
                         const struct lx_frozen_fd *peer)
{
    int err = set_flags(ends[0], fz->flags, O_NONBLOCK);
    if (!err && peer)
        err = set_flags(ends[1], peer->flags, O_NONBLOCK);
    return err;
}

/* A new pipe: ends[0] for the object's first fd, ends[1] for its other end. */
static int new_pipe(const struct lx_fdtable *src, int first, int ends[2])
{
    const struct lx_frozen_fd *fz = src->fd[first].frozen;
    const struct lx_frozen_fd *peer = fz->peer >= 0 ? src->fd[fz->peer].frozen : NULL;
    bool first_reads = (fz->flags & O_ACCMODE) == O_RDONLY;
    int p[2];
    if (pipe2(p, O_CLOEXEC | (fz->flags & O_DIRECT)) < 0)
        return -errno;
    int err = 0;
    if (fz->pipe_size != 65536 && fcntl(p[0], F_SETPIPE_SZ, fz->pipe_size) < 0)
        err = -errno;
    /* The master's read end keeps its bytes: tee links them into the new pipe. */
    int reader = first_reads ? first : fz->peer;
    int bytes = reader >= 0 ? src->fd[reader].frozen->pipe_bytes : 0;
    if (!err && bytes > 0) {
        ssize_t n = tee(src->fd[reader].host_fd, p[1], (size_t)bytes, SPLICE_F_NONBLOCK);
        if (n != bytes)
            err = n < 0 ? -errno : -EAGAIN;
    }
    ends[0] = first_reads ? p[0] : p[1];
    ends[1] = first_reads ? p[1] : p[0];
    if (!err)
        err = set_end_flags(ends, fz, peer);
    if (err) {
        close(p[0]);
        close(p[1]);
    }
    return err;
}

/* Sends what `to` is to read next through `from`, message by message. */
static int refill_queue(int from, const struct lx_frozen_fd *to)
{
    const unsigned char *data = to->queue;
    for (size_t m = 0; m < to->nmsgs; m++) {
        size_t len = to->msg_len[m], done = 0;
        do {
            ssize_t n = send(from, data + done, len - done, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (n < 0)
                return -errno;
            done += (size_t)n;
        } while (done < len);
        data += len;
    }
    return 0;
}

static int new_socketpair(const struct lx_fdtable *src, int first, int ends[2])
{
    const struct lx_frozen_fd *fz = src->fd[first].frozen;
    const struct lx_frozen_fd *peer = fz->peer >= 0 ? src->fd[fz->peer].frozen : NULL;
    if (socketpair(AF_UNIX, fz->sock_type | SOCK_CLOEXEC, 0, ends) < 0)
        return -errno;
    int err = refill_queue(ends[1], fz);
    if (!err && peer)
        err = refill_queue(ends[0], peer);
    if (!err)
        err = set_end_flags(ends, fz, peer);
    if (err) {
        close(ends[0]);
        close(ends[1]);
    }
    return err;
}

static int new_eventfd(const struct lx_frozen_fd *fz)
{
    int flags = EFD_CLOEXEC | (fz->semaphore ? EFD_SEMAPHORE : 0) |
                ((fz->flags & O_NONBLOCK) ? EFD_NONBLOCK : 0);
    bool fits = fz->count <= UINT_MAX;
    int fd = eventfd(fits ? (unsigned)fz->count : 0, flags);
    if (fd < 0)
        return -errno;
    if (!fits && write(fd, &fz->count, sizeof fz->count) != sizeof fz->count) {
        int err = errno;
        close(fd);
        return -err;
    }
    return fd;
}

/* Files keep O_APPEND, O_NONBLOCK and the offset per open file description. */
static int place(int fd, const struct lx_frozen_fd *fz)
{
    int err = set_flags(fd, fz->flags, O_APPEND | O_NONBLOCK);
    if (!err && fz->offset > 0 && lseek(fd, fz->offset, SEEK_SET) < 0)
        err = -errno;
    if (err)
        close(fd);
    return err ? err : fd;
}

static int reopen(int host_fd, const struct lx_frozen_fd *fz)
{
    char path[32];
    snprintf(path, sizeof path, "/proc/self/fd/%d", host_fd);
    /* O_NOFOLLOW (F_GETFL keeps it) was about the program's path; this one is a link. */
    int fd = open(path, (fz->flags & ~(O_CREAT | O_TRUNC | O_EXCL | O_NOCTTY | O_NOFOLLOW)) |
                            O_CLOEXEC);
    if (fd < 0)
        return -errno;
    return place(fd, fz);
}

static int new_memfd(int frozen_fd, const struct lx_frozen_fd *fz)
{
    int fd = memfd_create(fz->name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -errno;
    int err = 0;
    if (fz->size > 0 && ftruncate(fd, fz->size) < 0)
        err = -errno;
    /* Copy only what holds data: a sparse memfd stays sparse. (SEEK_DATA moves the master's
     * offset, which nothing uses any more: forks take theirs from the record.) */
    off_t pos = 0;
    while (!err && pos < fz->size) {
        off_t data = lseek(frozen_fd, pos, SEEK_DATA);
        if (data < 0) {
            if (errno != ENXIO)
                err = -errno;
            break;
        }
        off_t hole = lseek(frozen_fd, data, SEEK_HOLE);
        if (hole < 0) {
            err = -errno;
            break;
        }
        if (hole > fz->size)
            hole = fz->size;
        while (!err && data < hole) {
            ssize_t n = pwrite(fd, fz->contents + data, (size_t)(hole - data), data);
            if (n <= 0)
                err = n < 0 ? -errno : -EIO;
            else
                data += n;
        }
        pos = hole;
    }
    if (!err && (fz->mode & 07777) != 0777 && fchmod(fd, fz->mode) < 0)
        err = -errno;
    if (!err && fz->seals && fcntl(fd, F_ADD_SEALS, fz->seals) < 0)
        err = -errno;
    if (err) {
        close(fd);
        return err;
    }
    if ((fz->flags & O_ACCMODE) != O_RDWR) {
        /* Opened read-only (e.g. a synthesized /proc file): so is the copy. */
        int narrower = reopen(fd, fz);
        close(fd);
        return narrower;
    }
    return place(fd, fz);
}

static const char *how_name(enum fork_how how)
{
    static const char *const names[] = {
        [FORK_SHARE] = "sharing it", [FORK_PIPE] = "a new pipe",
        [FORK_SOCKETPAIR] = "a new socketpair", [FORK_EVENTFD] = "a new eventfd",
        [FORK_MEMFD] = "a copy of the memfd", [FORK_REOPEN] = "reopening the file",
        [FORK_EPOLL] = "a new epoll instance", [FORK_EPOLL_DUP] = "a new epoll instance",
    };
    return names[how];
}

static int dup_host(int host_fd)
{
    int fd = fcntl(host_fd, F_DUPFD_CLOEXEC, 3);
    return fd < 0 ? -errno : fd;
}

/* The host fd for guest fd i of the fork (or -errno); spare[] holds the other ends of new pipes and
 * socketpairs until their fd comes. */
static int clone_one(struct lx_fdtable *dst, const struct lx_fdtable *src, int i, int *spare)
{
    const struct lx_fd *f = &src->fd[i];
    const struct lx_frozen_fd *fz = f->frozen;
    if (fz->how != FORK_SHARE && fz->ofd_first != i)
        return dup_host(dst->fd[fz->ofd_first].host_fd);
    int first = fz->object_first;
    switch (fz->how) {
    case FORK_SHARE:
        return dup_host(f->host_fd);
    case FORK_PIPE: case FORK_SOCKETPAIR: {
        if (first != i) {
            int host = spare[first];
            spare[first] = -1;
            return host >= 0 ? host : -EBADF;
        }
        int ends[2];
        int err = fz->how == FORK_PIPE ? new_pipe(src, i, ends) : new_socketpair(src, i, ends);
        if (err)
            return err;
        spare[i] = ends[1];     /* closed at the end if the master closed that end */
        return ends[0];
    }
    case FORK_EVENTFD:
        return new_eventfd(fz);
    case FORK_MEMFD:
        if (first != i)         /* another open of the same memfd: open the fork's copy */
            return reopen(dst->fd[first].host_fd, fz);
        return new_memfd(f->host_fd, fz);
    case FORK_REOPEN:
        return reopen(f->host_fd, fz);
    case FORK_EPOLL: case FORK_EPOLL_DUP:
        break;
    }
    return -EINVAL;
}

/* Plain fds first, epoll instances resolve their registrations against them; the
 * duplicates of an epoll fd last. */
static int clone_pass(enum fork_how how)
{
    return how == FORK_EPOLL ? 1 : how == FORK_EPOLL_DUP ? 2 : 0;
}

int lx_fds_fork(struct lx_fdtable *dst, const struct lx_fdtable *src)
{
    memset(dst, 0, sizeof *dst);
    dst->last_ofd = src->last_ofd;
    /* Resets run this every time: look only as far as the master had fds. */
    int top = fdt_frozen_end(src);
    int spare[LX_MAX_FDS];
    for (int i = 0; i < top; i++)
        spare[i] = -1;
    int err = 0, failed = -1;
    for (int pass = 0; pass < 3 && !err; pass++) {
        for (int i = 0; i < top && !err; i++) {
            const struct lx_fd *f = &src->fd[i];
            if (f->kind == LX_FD_FREE)
                continue;
            if (!f->frozen) {
                err = -EINVAL;      /* fdt_freeze did not see it: never fall back to sharing */
                failed = i;
                break;
            }
            enum fork_how how = f->frozen->how;
            if (clone_pass(how) != pass)
                continue;
            int host;
            struct lx_epoll *copy = NULL;
            if (how == FORK_EPOLL)
                host = lx_epoll_clone(f->epoll, dst, &copy);
            else if (how == FORK_EPOLL_DUP) {
                const struct lx_fd *instance = &dst->fd[f->frozen->ofd_first];
                host = dup_host(instance->host_fd);
                if (host >= 0)
                    copy = lx_epoll_get(instance->epoll);
            } else
                host = clone_one(dst, src, i, spare);
            if (host < 0) {
                err = host;
                failed = i;
                break;
            }
            dst->fd[i] = *f;
            dst->fd[i].host_fd = host;
            dst->fd[i].epoll = copy;
            if (copy)
                dst->fd[i].type = LX_FT_EPOLL;
            dst->fd[i].frozen = NULL;
        }
    }
    for (int i = 0; i < top; i++)
        if (spare[i] >= 0)
            close(spare[i]);
    if (err) {
        fail_fd(failed, src->fd[failed].frozen ? how_name(src->fd[failed].frozen->how)
                                               : "not recorded at the freeze", -err);
        lx_fds_destroy(dst);
    }
    return err;
}
