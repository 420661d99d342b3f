/* Checking and loading the process and its fds from a snapshot file (see snapshot.h): every
 * count and index is checked before use, and loading makes real host objects holding what
 * the frozen fds held. */
#include "linux/snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "base/time.h"
#include "linux/epoll.h"
#include "linux/fdfrozen.h"
#include "linux/fs.h"
#include "linux/netpolicy.h"
#include "linux/policy.h"
#include "linux/process.h"
#include "linux/snapshot_internal.h"
#include "vm/engine.h"

/* ------------------------------------------------------------------ checking */

static bool bool_ok(const void *b) { return *(const uint8_t *)b <= 1; }

static bool str_ok(const char *s, size_t cap) { return memchr(s, '\0', cap) != NULL; }

/* The plain data copied into p, checked where the code indexes or trusts it. */
static int decode_proc(const void *data, uint64_t len, struct lx_proc *p, int64_t *saved,
                       char *err, size_t errlen)
{
    struct snap_cursor c;
    snap_cursor_init(&c, data, len);
    struct proc_sizes s;
    const struct proc_sizes sizes = PROC_SIZES;
    snap_take_copy(&c, &s, sizeof s);
    if (c.bad || memcmp(&s, &sizes, sizeof s) != 0)
        return snap_error(err, errlen, "damaged snapshot: the process section's layout differs");
    int32_t ids[3];
    snap_take_copy(&c, ids, sizeof ids);
    uint32_t exited = snap_take_u32(&c);
    *saved = (int64_t)snap_take_u64(&c);
    snap_take_copy(&c, &p->task, sizeof p->task);
    snap_take_copy(&c, &p->stats, sizeof p->stats);
    const uint8_t *sig = snap_take(&c, sizeof p->sig);
    const uint8_t *mm = snap_take(&c, sizeof p->mm);
    const uint8_t *server = snap_take(&c, sizeof p->server);
    int32_t th[4];
    snap_take_copy(&c, th, sizeof th);
    uint64_t wait_seq = snap_take_u64(&c);
    if (c.bad || exited || ids[0] != LX_MASTER_PID || ids[1] != LX_MASTER_PPID)
        return snap_error(err, errlen, "damaged snapshot: the process section is inconsistent");
    /* Bools and counts first, in the file's bytes: only then into the structs. */
    struct lx_signals sg;
    struct lx_mm m;
    struct lx_server_state sv;
    memcpy(&sg, sig, sizeof sg);
    memcpy(&m, mm, sizeof m);
    bool ok = str_ok(p->task.exe_path, sizeof p->task.exe_path) &&
              str_ok(p->task.cwd, sizeof p->task.cwd) &&
              str_ok(p->task.root, sizeof p->task.root) && p->task.ngroups >= 0 &&
              p->task.ngroups <= 1 && m.nwipe <= LX_MM_MAX_WIPE &&
              m.nfree <= LX_MM_MAX_RANGES && bool_ok(sig + offsetof(struct lx_signals, suspended));
    for (int i = 0; ok && i <= LX_MAX_TIMERS; i++) {
        size_t at = i == LX_MAX_TIMERS ? offsetof(struct lx_signals, itimer_real)
                                       : offsetof(struct lx_signals, timers) +
                                             (size_t)i * sizeof(struct lx_timer);
        const struct lx_timer *tm = i == LX_MAX_TIMERS ? &sg.itimer_real : &sg.timers[i];
        ok = bool_ok(sig + at + offsetof(struct lx_timer, used)) && tm->signo >= 0 &&
             tm->signo <= LX_NSIG;
    }
    const size_t bools[] = { offsetof(struct lx_server_state, listen_privately),
                             offsetof(struct lx_server_state, frozen),
                             offsetof(struct lx_server_state, boot_failed),
                             offsetof(struct lx_server_state, limit_aborts),
                             offsetof(struct lx_server_state, memory_exceeded),
                             offsetof(struct lx_server_state, deadline_hit) };
    for (size_t i = 0; ok && i < sizeof bools / sizeof bools[0]; i++)
        ok = bool_ok(server + bools[i]);
    for (int i = 0; ok && i < LX_MAX_LISTENERS; i++)
        ok = bool_ok(server + offsetof(struct lx_server_state, listeners) +
                     (size_t)i * sizeof(struct lx_listener) +
                     offsetof(struct lx_listener, read_shut));
    if (ok) {
        memcpy(&sv, server, sizeof sv);
        ok = sv.frozen && sv.nlisteners >= 0 && sv.nlisteners <= LX_MAX_LISTENERS;
    }
    if (!ok)
        return snap_error(err, errlen, "damaged snapshot: the process state is inconsistent");
    if (th[2] < 1 || th[2] > LX_MAX_THREADS || th[0] < 0 || th[0] >= th[2] || th[1] < 1 ||
        th[1] > th[2] || th[3] < 0)
        return snap_error(err, errlen, "damaged snapshot: the thread table is inconsistent");
    struct lx_threads *t = &p->threads;
    *t = (struct lx_threads){ .current = th[0], .count = th[1], .used = th[2],
                              .next_tid = th[3], .wait_seq = wait_seq };
    for (int i = 0; i < t->used; i++) {
        const uint8_t *slot = snap_take(&c, sizeof t->slot[i]);
        if (!slot || !bool_ok(slot + offsetof(struct lx_thread, in_event_wait)) ||
            !bool_ok(slot + offsetof(struct lx_thread, preempted)) ||
            !bool_ok(slot + offsetof(struct lx_thread, redo_call)))
            return snap_error(err, errlen, "damaged snapshot: the thread table is inconsistent");
        memcpy(&t->slot[i], slot, sizeof t->slot[i]);
        if (t->slot[i].state > LX_THREAD_POLL)
            return snap_error(err, errlen, "damaged snapshot: thread %d has no valid state", i);
    }
    if (c.left)
        return snap_error(err, errlen, "damaged snapshot: the process section has the wrong length");
    p->pid = LX_MASTER_PID;
    p->ppid = LX_MASTER_PPID;
    p->sig = sg;
    p->mm = m;
    p->server = sv;
    return 0;
}

/* One fd record: its head and its kind's data, checked but not acted on. */
struct fd_rec {
    struct fd_head h;
    struct snap_cursor data;    /* the kind's data */
};

static bool skip_blob(struct snap_cursor *c)
{
    uint32_t n = snap_take_u32(c);
    return n <= MAX_BLOB && snap_take(c, n) != NULL;
}

static bool skip_queue(struct snap_cursor *c)
{
    uint32_t n = snap_take_u32(c);
    for (uint32_t m = 0; m < n && !c->bad; m++)
        skip_blob(c);
    return !c->bad;
}

static bool index_ok(int32_t i) { return i >= 0 && i < LX_MAX_FDS; }

/* Takes one record from c into r: false when it is damaged. */
static bool take_fd(struct snap_cursor *c, struct fd_rec *r)
{
    if (!snap_take_copy(c, &r->h, sizeof r->h))
        return false;
    const struct fd_head *h = &r->h;
    if (h->guest_fd >= LX_MAX_FDS || h->cloexec > 1 || h->type > LX_FT_PIPE ||
        h->waits > LX_WAITS_MAYBE || !index_ok(h->ofd_first) || !index_ok(h->object_first) ||
        h->peer < -1 || h->peer >= LX_MAX_FDS)
        return false;
    struct snap_cursor start = *c;
    char s[PATH_MAX];
    switch (h->kind) {
    case SK_STDIO:
        if (snap_take_u32(c) > 2)
            return false;
        break;
    case SK_PATH:
        snap_take_str(c, s, sizeof s);
        snap_take_u64(c);
        break;
    case SK_LISTENER: {
        if (snap_take_u32(c) >= LX_MAX_LISTENERS)
            return false;
        uint32_t alen = snap_take_u32(c);
        if (alen > sizeof(struct sockaddr_storage) || alen < sizeof(sa_family_t))
            return false;
        snap_take(c, alen);
        if (snap_take_u32(c) != N_LISTENER_OPTS)
            return false;
        snap_take(c, N_LISTENER_OPTS * sizeof(uint32_t));
        break;
    }
    case SK_PIPE:
        snap_take_u32(c);
        skip_blob(c);
        break;
    case SK_SOCKETPAIR:
        snap_take_u32(c);
        skip_queue(c);
        skip_queue(c);
        break;
    case SK_EVENTFD:
        snap_take_u64(c);
        if (snap_take_u32(c) > 1)
            return false;
        break;
    case SK_MEMFD:
        snap_take_str(c, s, NAME_MAX + 1);
        snap_take(c, 8 + 4 + 4 + 8);
        skip_blob(c);
        break;
    case SK_EPOLL: {
        uint32_t n = snap_take_u32(c);
        if (n > LX_MAX_FDS * 4u)
            return false;
        snap_take(c, (uint64_t)n * 16);
        break;
    }
    case SK_REOPEN:
        snap_take_u64(c);
        /* fall through */
    case SK_PEER_END:
        if (h->object_first >= (int32_t)h->guest_fd)
            return false;
        break;
    case SK_DUP:
        break;
    default:
        return false;
    }
    if (c->bad)
        return false;
    snap_cursor_init(&r->data, start.p, start.left - c->left);
    return true;
}

static int decode_fds(const void *data, uint64_t len, struct fd_rec *recs, uint32_t *n,
                      uint32_t *last_ofd, char *err, size_t errlen)
{
    struct snap_cursor c;
    snap_cursor_init(&c, data, len);
    *n = snap_take_u32(&c);
    *last_ofd = snap_take_u32(&c);
    if (c.bad || *n > LX_MAX_FDS)
        return snap_error(err, errlen, "damaged snapshot: no valid fd table");
    int32_t prev = -1;
    for (uint32_t i = 0; i < *n; i++) {
        if (!take_fd(&c, &recs[i]) || (int32_t)recs[i].h.guest_fd <= prev)
            return snap_error(err, errlen, "damaged snapshot: fd record %u is inconsistent", i);
        prev = (int32_t)recs[i].h.guest_fd;
    }
    if (c.left)
        return snap_error(err, errlen, "damaged snapshot: the fd table has the wrong length");
    return 0;
}

int lx_snapshot_check(const struct snap_reader *r, char *err, size_t errlen)
{
    uint64_t len;
    const void *data = snap_section(r, SNAP_PROC, &len);
    struct lx_proc *p = calloc(1, sizeof *p);
    struct fd_rec *recs = calloc(LX_MAX_FDS, sizeof *recs);
    int64_t saved;
    uint32_t n, last;
    int rc = -1;
    if (!p || !recs)
        snap_error(err, errlen, "out of memory");
    else if (decode_proc(data, len, p, &saved, err, errlen) == 0) {
        data = snap_section(r, SNAP_FDS, &len);
        rc = decode_fds(data, len, recs, &n, &last, err, errlen);
    }
    free(p);
    free(recs);
    return rc;
}

/* ------------------------------------------------------------------ loading */

/* O_NONBLOCK as the record says, on or off. */
static int set_nonblock(int fd, int flags)
{
    int now = fcntl(fd, F_GETFL);
    if (now < 0 || fcntl(fd, F_SETFL, (now & ~O_NONBLOCK) | (flags & O_NONBLOCK)) < 0)
        return -errno;
    return 0;
}

static const void *take_blob(struct snap_cursor *c, uint32_t *n)
{
    *n = snap_take_u32(c);
    return snap_take(c, *n);
}

static int send_queue(int to, struct snap_cursor *c)
{
    uint32_t n = snap_take_u32(c);
    for (uint32_t m = 0; m < n; m++) {
        uint32_t len;
        const uint8_t *data = take_blob(c, &len);
        if (send(to, data, len, MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)len)
            return errno ? -errno : -EIO;
    }
    return 0;
}

static int make_pipe(struct fd_rec *r, int *spare)
{
    uint32_t size = snap_take_u32(&r->data), bytes;
    const void *data = take_blob(&r->data, &bytes);
    int p[2];
    /* Non-blocking while it is filled: more bytes than it holds fail instead of waiting. */
    if (pipe2(p, O_CLOEXEC | O_NONBLOCK | (r->h.flags & O_DIRECT)) < 0)
        return -errno;
    int err = 0;
    if (size != 65536 && fcntl(p[0], F_SETPIPE_SZ, (int)size) < 0)
        err = -errno;
    if (!err && bytes && write(p[1], data, bytes) != (ssize_t)bytes)
        err = -EAGAIN;
    bool reads = (r->h.flags & O_ACCMODE) == O_RDONLY;
    if (!err)
        err = set_nonblock(reads ? p[0] : p[1], r->h.flags);
    if (!err)       /* the other end's own flags come with its record (or it is closed) */
        err = set_nonblock(reads ? p[1] : p[0], 0);
    if (err) {
        close(p[0]);
        close(p[1]);
        return err;
    }
    *spare = reads ? p[1] : p[0];
    return reads ? p[0] : p[1];
}

static int make_socketpair(struct fd_rec *r, int *spare)
{
    int type = (int)snap_take_u32(&r->data);
    if (type != SOCK_STREAM && type != SOCK_DGRAM && type != SOCK_SEQPACKET)
        return -EINVAL;
    int s[2];
    if (socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, s) < 0)
        return -errno;
    int err = send_queue(s[1], &r->data);       /* what this end reads next */
    if (!err)
        err = send_queue(s[0], &r->data);       /* what the peer reads next */
    if (!err)
        err = set_nonblock(s[0], r->h.flags);
    if (err) {
        close(s[0]);
        close(s[1]);
        return err;
    }
    *spare = s[1];
    return s[0];
}

static int make_eventfd(struct fd_rec *r)
{
    uint64_t count = snap_take_u64(&r->data);
    bool sem = snap_take_u32(&r->data);
    int fd = eventfd(0, EFD_CLOEXEC | (sem ? EFD_SEMAPHORE : 0) |
                            ((r->h.flags & O_NONBLOCK) ? EFD_NONBLOCK : 0));
    if (fd < 0)
        return -errno;
    if (count && (count == UINT64_MAX || write(fd, &count, sizeof count) != sizeof count)) {
        close(fd);
        return -EINVAL;
    }
    return fd;
}

static int reopen_proc(int fd, int flags, off_t offset)
{
    char path[32];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    int n = open(path, (flags & ~(O_CREAT | O_TRUNC | O_EXCL | O_NOCTTY)) | O_CLOEXEC);
    if (n < 0)
        return -errno;
    if (offset > 0 && lseek(n, offset, SEEK_SET) < 0) {
        close(n);
        return -errno;
    }
    return n;
}

static int make_memfd(struct fd_rec *r)
{
    char name[NAME_MAX + 1];
    snap_take_str(&r->data, name, sizeof name);
    uint64_t size = snap_take_u64(&r->data);
    uint32_t mode = snap_take_u32(&r->data), seals = snap_take_u32(&r->data);
    uint64_t offset = snap_take_u64(&r->data);
    uint32_t len;
    const void *data = take_blob(&r->data, &len);
    if (len != size || offset > INT64_MAX)
        return -EINVAL;
    int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -errno;
    int err = 0;
    if ((size && ftruncate(fd, (off_t)size) < 0) ||
        (len && pwrite(fd, data, len, 0) != (ssize_t)len) || fchmod(fd, mode & 07777) < 0 ||
        (seals && fcntl(fd, F_ADD_SEALS, (int)seals) < 0))
        err = errno ? -errno : -EIO;
    int out = err ? err : reopen_proc(fd, r->h.flags, (off_t)offset);
    close(fd);
    return out;
}

static int make_path(struct fd_rec *r, const struct lx_env *env)
{
    char path[PATH_MAX];
    snap_take_str(&r->data, path, sizeof path);
    uint64_t offset = snap_take_u64(&r->data);
    int flags = r->h.flags & ~(O_CREAT | O_TRUNC | O_EXCL | O_NOCTTY);
    int acc = flags & O_ACCMODE;
    int need = (flags & O_PATH) ? FSP_LOOK
               : acc == O_RDONLY ? FSP_READ : acc == O_WRONLY ? FSP_WRITE : FSP_READ | FSP_WRITE;
    struct fsp_result res;
    int err = fsp_open(&env->fs, NULL, "/", path, flags, 0, need, &res);
    if (err < 0)
        return err;
    if (res.fd < 0)
        return -ENOTSUP;        /* a synthesized /proc file is a memfd, never a path */
    if (offset && !(flags & O_PATH) && lseek(res.fd, (off_t)offset, SEEK_SET) < 0) {
        err = -errno;
        close(res.fd);
        return err;
    }
    return res.fd;
}

static int make_epoll(struct fd_rec *r, struct lx_epoll **out)
{
    uint32_t n = snap_take_u32(&r->data);
    struct lx_epoll *ep = calloc(1, sizeof *ep);
    if (!ep || (n && !(ep->regs = calloc(n, sizeof *ep->regs)))) {
        free(ep);
        return -ENOMEM;
    }
    ep->refs = 1;
    ep->count = ep->cap = n;
    for (uint32_t k = 0; k < n; k++) {
        ep->regs[k].guest_fd = (int)snap_take_u32(&r->data);
        ep->regs[k].events = snap_take_u32(&r->data);
        ep->regs[k].data = snap_take_u64(&r->data);
        if (!index_ok(ep->regs[k].guest_fd)) {
            lx_epoll_put(ep);
            return -EINVAL;
        }
    }
    int fd = epoll_create1(EPOLL_CLOEXEC);
    if (fd < 0) {
        lx_epoll_put(ep);
        return -errno;
    }
    *out = ep;
    return fd;
}

/* Unix socket paths left behind by a kvmserver that is gone are taken over; a live one
 * (something accepts there) is not. */
static bool stale_unix_path(const struct sockaddr_un *sun, socklen_t len)
{
    if (len <= sizeof(sa_family_t) || sun->sun_path[0] == '\0')
        return false;
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool stale = s >= 0 && connect(s, (const struct sockaddr *)sun, len) < 0 &&
                 errno == ECONNREFUSED;
    if (s >= 0)
        close(s);
    struct stat st;
    return stale && lstat(sun->sun_path, &st) == 0 && S_ISSOCK(st.st_mode) &&
           unlinkat(AT_FDCWD, sun->sun_path, 0) == 0;
}

static int make_listener(struct fd_rec *r, struct lx_proc *p, const struct lx_env *env,
                         int *listener_fd, char *err, size_t errlen)
{
    uint32_t idx = snap_take_u32(&r->data), alen;
    const void *addr = take_blob(&r->data, &alen);
    snap_take_u32(&r->data);
    const uint8_t *opts = snap_take(&r->data, N_LISTENER_OPTS * sizeof(uint32_t));
    if (idx >= (uint32_t)p->server.nlisteners || listener_fd[idx] >= 0)
        return snap_error(err, errlen, "damaged snapshot: guest fd %u names no listener",
                    r->h.guest_fd);
    struct sockaddr_storage ss = { 0 };
    memcpy(&ss, addr, alen);
    struct np_addr a;
    char name[200];
    const struct lx_listener *l = &p->server.listeners[idx];
    if (ss.ss_family != l->family || np_addr_parse(&a, &ss, alen) < 0)
        return snap_error(err, errlen, "damaged snapshot: guest fd %u: a listener without a valid "
                    "address", r->h.guest_fd);
    np_addr_format(&a, name, sizeof name);
    if (!np_allowed(&env->net, NP_LISTEN, &a))
        return snap_error(err, errlen, "the snapshot's listener %s is not allowed by its policy",
                    name);
    int s = socket(l->family, (l->type & 0xf) | SOCK_CLOEXEC, l->protocol);
    if (s < 0)
        return snap_error(err, errlen, "cannot re-create the listener %s: %s", name,
                    strerror(errno));
    for (size_t k = 0; k < N_LISTENER_OPTS; k++) {
        int32_t v;
        memcpy(&v, opts + 4 * k, 4);
        if (v >= 0)
            setsockopt(s, listener_opts[k][0], listener_opts[k][1], &v, sizeof v);
    }
    int rc = bind(s, (struct sockaddr *)&ss, alen);
    if (rc < 0 && errno == EADDRINUSE && ss.ss_family == AF_UNIX &&
        stale_unix_path((struct sockaddr_un *)&ss, alen))
        rc = bind(s, (struct sockaddr *)&ss, alen);
    if (rc < 0 || listen(s, l->backlog) < 0 ||
        fcntl(s, F_SETFL, l->status_flags | O_NONBLOCK) < 0) {
        snap_error(err, errlen, "cannot listen on %s again: %s", name, strerror(errno));
        close(s);
        return -1;
    }
    struct stat st;
    fstat(s, &st);
    p->server.listeners[idx].ino = st.st_ino;
    listener_fd[idx] = s;
    return s;
}

static const char *const kind_names[] = {
    [SK_STDIO] = "a standard stream", [SK_PATH] = "a file", [SK_LISTENER] = "a listener",
    [SK_PIPE] = "a pipe", [SK_SOCKETPAIR] = "a socketpair", [SK_EVENTFD] = "an eventfd",
    [SK_MEMFD] = "a memfd", [SK_EPOLL] = "an epoll instance",
    [SK_PEER_END] = "a pipe or socketpair end", [SK_DUP] = "a duplicate",
    [SK_REOPEN] = "another open of a memfd",
};

/* Makes guest fd r's host object (pass 0: objects; pass 1: duplicates). */
static int make_fd(struct lx_proc *p, struct fd_rec *r, const struct lx_env *env, int *spare,
                   int *listener_fd, char *err, size_t errlen)
{
    struct lx_fdtable *t = &p->fds;
    const struct fd_head *h = &r->h;
    struct lx_epoll *ep = NULL;
    int host = -EINVAL;
    switch (h->kind) {
    case SK_STDIO:
        host = fcntl((int)snap_take_u32(&r->data), F_DUPFD_CLOEXEC, 3);
        break;
    case SK_PATH:
        host = make_path(r, env);
        break;
    case SK_LISTENER:
        host = make_listener(r, p, env, listener_fd, err, errlen);
        if (host < 0)
            return -1;
        break;
    case SK_PIPE:
        host = make_pipe(r, &spare[h->guest_fd]);
        break;
    case SK_SOCKETPAIR:
        host = make_socketpair(r, &spare[h->guest_fd]);
        break;
    case SK_EVENTFD:
        host = make_eventfd(r);
        break;
    case SK_MEMFD:
        host = make_memfd(r);
        break;
    case SK_EPOLL:
        host = make_epoll(r, &ep);
        break;
    case SK_PEER_END:
        host = spare[h->object_first];
        spare[h->object_first] = -1;
        if (host < 0) {
            host = -EBADF;
        } else {
            int e = set_nonblock(host, h->flags);
            if (e < 0) {
                close(host);
                host = e;
            }
        }
        break;
    case SK_REOPEN: {
        uint64_t offset = snap_take_u64(&r->data);
        const struct lx_fd *first = &t->fd[h->object_first];
        host = first->kind != LX_FD_HOST || offset > INT64_MAX
                   ? -EBADF : reopen_proc(first->host_fd, h->flags, (off_t)offset);
        break;
    }
    case SK_DUP: {
        const struct lx_fd *orig = &t->fd[h->ofd_first];
        if (orig->kind != LX_FD_HOST || (uint32_t)h->ofd_first == h->guest_fd) {
            host = -EBADF;
            break;
        }
        host = fcntl(orig->host_fd, F_DUPFD_CLOEXEC, 3);
        if (host >= 0 && h->type == LX_FT_EPOLL) {
            if (orig->epoll)
                ep = lx_epoll_get(orig->epoll);
            else {
                close(host);
                host = -EINVAL;
            }
        }
        break;
    }
    }
    if (host < 0)
        return snap_error(err, errlen, "cannot make guest fd %u (%s) again: %s", h->guest_fd,
                    kind_names[h->kind], strerror(host == -1 ? errno : -host));
    t->fd[h->guest_fd] = (struct lx_fd){ .kind = LX_FD_HOST, .host_fd = host,
                                         .cloexec = h->cloexec, .type = h->type,
                                         .waits = h->waits, .ofd = h->ofd,
                                         .peer_ofd = h->peer_ofd, .epoll = ep };
    return 0;
}

int lx_snapshot_load(const struct snap_reader *r, struct lx_proc *p, struct vm *vm,
                     const struct lx_env *env, char *err, size_t errlen)
{
    uint64_t len;
    const void *data = snap_section(r, SNAP_PROC, &len);
    int64_t saved;
    if (decode_proc(data, len, p, &saved, err, errlen) < 0)
        return -1;
    p->vm = vm;
    p->env = env;
    struct lx_server_state *s = &p->server;
    s->listen_privately = false;
    s->freeze = NULL;
    s->freeze_ctx = NULL;
    s->hooks = NULL;
    s->hooks_ctx = NULL;
    for (int i = 0; i < s->nlisteners; i++) {
        s->listeners[i].private_fd = s->listeners[i].shadow_fd = -1;
        s->listeners[i].nopts = 0;
    }
    /* Timers and timed waits keep the time they had left at the snapshot. */
    lx_proc_shift_deadlines(p, (int64_t)now_ns() - saved);

    struct fd_rec *recs = calloc(LX_MAX_FDS, sizeof *recs);
    int *spare = malloc(LX_MAX_FDS * sizeof *spare);
    int listener_fd[LX_MAX_LISTENERS];
    uint32_t n = 0, last_ofd;
    int rc = -1;
    if (!recs || !spare) {
        snap_error(err, errlen, "out of memory");
        goto out;
    }
    for (int i = 0; i < LX_MAX_FDS; i++)
        spare[i] = -1;
    for (int i = 0; i < LX_MAX_LISTENERS; i++)
        listener_fd[i] = -1;
    data = snap_section(r, SNAP_FDS, &len);
    if (decode_fds(data, len, recs, &n, &last_ofd, err, errlen) < 0)
        goto out;
    p->fds.last_ofd = last_ofd;
    rc = 0;
    for (int pass = 0; pass < 2 && !rc; pass++)
        for (uint32_t i = 0; i < n && !rc; i++)
            if ((recs[i].h.kind == SK_DUP) == (pass == 1))
                rc = make_fd(p, &recs[i], env, spare, listener_fd, err, errlen);
    for (int i = 0; !rc && i < s->nlisteners; i++)
        if (listener_fd[i] < 0)
            rc = snap_error(err, errlen, "damaged snapshot: listener %d has no fd", i);
    if (!rc && lx_proc_freeze(p) < 0)
        rc = snap_error(err, errlen, "the snapshot's fds cannot be given to request VMs");
out:
    for (int i = 0; spare && i < LX_MAX_FDS; i++)
        if (spare[i] >= 0)
            close(spare[i]);
    free(spare);
    free(recs);
    return rc;
}
