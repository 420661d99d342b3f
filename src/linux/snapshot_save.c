/* Saving the process and its fds in a snapshot file (see snapshot.h, docs/snapshot-format.md).
 * The plain-data parts of struct lx_proc are stored as they are in memory: the file's
 * version string carries their layout, so a file from another build is refused before
 * they are read. Every count and index in them is checked before use. */
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

/* ------------------------------------------------------------------ saving */

static int refuse(int guest_fd, const char *kind)
{
    fprintf(stderr, "kvmserver: snapshot: guest fd %d (%s) cannot be saved in a snapshot\n",
            guest_fd, kind);
    return -1;
}

static void put_blob(struct snap_buf *b, const void *data, size_t len)
{
    snap_put_u32(b, (uint32_t)len);
    snap_put(b, data, len);
}

/* The bytes a pipe's read end holds, without taking them: tee'd into a scratch pipe. */
static int pipe_bytes(int reader, int bytes, int capacity, struct snap_buf *b)
{
    if (bytes <= 0) {
        put_blob(b, NULL, 0);
        return 0;
    }
    int p[2];
    if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
        return -1;
    char *buf = malloc((size_t)bytes);
    int rc = -1;
    if (buf && fcntl(p[1], F_SETPIPE_SZ, capacity) >= 0 &&
        tee(reader, p[1], (size_t)bytes, SPLICE_F_NONBLOCK) == bytes &&
        read(p[0], buf, (size_t)bytes) == bytes) {
        put_blob(b, buf, (size_t)bytes);
        rc = 0;
    }
    free(buf);
    close(p[0]);
    close(p[1]);
    return rc;
}

static void put_queue(struct snap_buf *b, const struct lx_frozen_fd *fz)
{
    snap_put_u32(b, fz ? (uint32_t)fz->nmsgs : 0);
    const unsigned char *data = fz ? fz->queue : NULL;
    for (size_t m = 0; fz && m < fz->nmsgs; m++) {
        put_blob(b, data, fz->msg_len[m]);
        data += fz->msg_len[m];
    }
}

/* Which of kvmserver's own standard streams the host object is. */
static int which_stdio(int host_fd)
{
    struct stat a, b;
    if (fstat(host_fd, &a) < 0)
        return -1;
    for (int k = 0; k < 3; k++)
        if (fstat(k, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino &&
            a.st_rdev == b.st_rdev)
            return k;
    return -1;
}

static int listener_index(const struct lx_proc *p, int host_fd)
{
    struct stat st;
    if (fstat(host_fd, &st) < 0)
        return -1;
    for (int i = 0; i < p->server.nlisteners; i++)
        if (p->server.listeners[i].ino == (uint64_t)st.st_ino)
            return i;
    return -1;
}

static int save_listener(const struct lx_proc *p, int i, const struct lx_fd *f,
                         struct snap_buf *b)
{
    int idx = listener_index(p, f->host_fd);
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (idx < 0 || getsockname(f->host_fd, (struct sockaddr *)&ss, &len) < 0)
        return refuse(i, "a listening socket without a record");
    snap_put_u32(b, (uint32_t)idx);
    put_blob(b, &ss, len);
    snap_put_u32(b, N_LISTENER_OPTS);
    for (size_t k = 0; k < N_LISTENER_OPTS; k++) {
        int v = 0;
        socklen_t vl = sizeof v;
        if (getsockopt(f->host_fd, listener_opts[k][0], listener_opts[k][1], &v, &vl) < 0)
            v = -1;     /* not an option of this family: left alone */
        snap_put_u32(b, (uint32_t)v);
    }
    return 0;
}

static int save_path(const struct lx_proc *p, int i, const struct lx_fd *f,
                     const struct lx_frozen_fd *fz, struct snap_buf *b)
{
    char path[PATH_MAX];
    if (fsp_guest_path_of_fd(&p->env->fs, f->host_fd, path) < 0)
        return refuse(i, "a file that has no path any more (deleted?)");
    snap_put_str(b, path);
    snap_put_u64(b, (uint64_t)fz->offset);
    return 0;
}

static int save_fd(const struct lx_proc *p, int i, struct snap_buf *b)
{
    const struct lx_fdtable *t = &p->fds;
    const struct lx_fd *f = &t->fd[i];
    const struct lx_frozen_fd *fz = f->frozen;
    if (!fz)
        return refuse(i, "not recorded at the freeze");
    struct fd_head h = { .guest_fd = (uint32_t)i, .cloexec = f->cloexec, .type = f->type,
                         .waits = f->waits, .ofd = f->ofd, .peer_ofd = f->peer_ofd,
                         .ofd_first = fz->ofd_first, .object_first = fz->object_first,
                         .peer = fz->peer, .flags = fz->flags };
    struct stat st;
    if (fstat(f->host_fd, &st) < 0)
        return refuse(i, "an fd kvmserver cannot look at");
    const struct lx_frozen_fd *peer = fz->peer >= 0 ? t->fd[fz->peer].frozen : NULL;
    struct snap_buf d = { 0 };
    int rc = 0;
    if (fz->ofd_first != i) {
        h.kind = SK_DUP;
    } else if ((fz->how == FORK_PIPE || fz->how == FORK_SOCKETPAIR) && fz->object_first != i) {
        h.kind = SK_PEER_END;
    } else if (fz->how == FORK_MEMFD && fz->object_first != i) {
        h.kind = SK_REOPEN;
        snap_put_u64(&d, (uint64_t)fz->offset);
    } else switch (fz->how) {
    case FORK_SHARE:
        if (f->type == LX_FT_LISTENER) {
            h.kind = SK_LISTENER;
            rc = save_listener(p, i, f, &d);
        } else if (f->type == LX_FT_STDIO) {
            int k = which_stdio(f->host_fd);
            h.kind = SK_STDIO;
            snap_put_u32(&d, (uint32_t)k);
            if (k < 0)
                rc = refuse(i, "a standard stream that is none of kvmserver's own");
        } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
            h.kind = SK_PATH;
            rc = save_path(p, i, f, fz, &d);
        } else {
            rc = refuse(i, f->type == LX_FT_CONNECTION ? "a connection open at the freeze"
                           : S_ISFIFO(st.st_mode) ? "a named FIFO"
                           : S_ISSOCK(st.st_mode) ? "a socket connected or bound outside"
                                                  : "a shared host object");
        }
        break;
    case FORK_PIPE: {
        h.kind = SK_PIPE;
        snap_put_u32(&d, (uint32_t)fz->pipe_size);
        bool reads = (fz->flags & O_ACCMODE) == O_RDONLY;
        const struct lx_frozen_fd *reader = reads ? fz : peer;
        int reader_fd = reads ? f->host_fd : fz->peer >= 0 ? t->fd[fz->peer].host_fd : -1;
        if (pipe_bytes(reader_fd, reader ? reader->pipe_bytes : 0, fz->pipe_size, &d) < 0)
            rc = refuse(i, "a pipe whose bytes cannot be read");
        break;
    }
    case FORK_SOCKETPAIR:
        h.kind = SK_SOCKETPAIR;
        snap_put_u32(&d, (uint32_t)fz->sock_type);
        put_queue(&d, fz);
        put_queue(&d, peer);
        break;
    case FORK_EVENTFD:
        h.kind = SK_EVENTFD;
        snap_put_u64(&d, fz->count);
        snap_put_u32(&d, fz->semaphore);
        break;
    case FORK_MEMFD:
        h.kind = SK_MEMFD;
        snap_put_str(&d, fz->name);
        snap_put_u64(&d, (uint64_t)fz->size);
        snap_put_u32(&d, fz->mode);
        snap_put_u32(&d, (uint32_t)fz->seals);
        snap_put_u64(&d, (uint64_t)fz->offset);
        if (fz->size > MAX_BLOB)
            rc = refuse(i, "a memfd larger than 64 MiB");
        else
            put_blob(&d, fz->contents, (size_t)fz->size);
        break;
    case FORK_REOPEN:
        h.kind = SK_PATH;
        rc = save_path(p, i, f, fz, &d);
        break;
    case FORK_EPOLL: {
        h.kind = SK_EPOLL;
        const struct lx_epoll *ep = f->epoll;
        snap_put_u32(&d, ep ? (uint32_t)ep->count : 0);
        for (size_t k = 0; ep && k < ep->count; k++) {
            snap_put_u32(&d, (uint32_t)ep->regs[k].guest_fd);
            snap_put_u32(&d, ep->regs[k].events);
            snap_put_u64(&d, ep->regs[k].data);
        }
        break;
    }
    case FORK_EPOLL_DUP:
        h.kind = SK_DUP;
        break;
    }
    if (!rc) {
        snap_put(b, &h, sizeof h);
        snap_put(b, d.data, d.len);
    }
    snap_buf_free(&d);
    return rc;
}

int lx_snapshot_save(struct snap_writer *w, struct lx_proc *p)
{
    /* The working directory and umask are settled here, in this process: a program that
     * made no file-system call yet would otherwise take them from the snaprun process. */
    fs_ready(p);
    struct snap_buf b = { 0 };
    const struct proc_sizes sizes = PROC_SIZES;
    snap_put(&b, &sizes, sizeof sizes);
    int32_t ids[3] = { p->pid, p->ppid, p->exit_status };
    snap_put(&b, ids, sizeof ids);
    snap_put_u32(&b, p->exited);
    snap_put_u64(&b, now_ns());
    snap_put(&b, &p->task, sizeof p->task);
    snap_put(&b, &p->stats, sizeof p->stats);
    snap_put(&b, &p->sig, sizeof p->sig);
    snap_put(&b, &p->mm, sizeof p->mm);
    snap_put(&b, &p->server, sizeof p->server);
    const struct lx_threads *t = &p->threads;
    int32_t th[4] = { t->current, t->count, t->used, t->next_tid };
    snap_put(&b, th, sizeof th);
    snap_put_u64(&b, t->wait_seq);
    snap_put(&b, t->slot, (size_t)t->used * sizeof t->slot[0]);
    snap_add(w, SNAP_PROC, b.data, b.len);
    bool failed = b.failed;
    snap_buf_free(&b);

    int rc = 0, n = 0;
    for (int i = 0; i < LX_MAX_FDS; i++)
        n += p->fds.fd[i].kind != LX_FD_FREE;
    snap_put_u32(&b, (uint32_t)n);
    snap_put_u32(&b, p->fds.last_ofd);
    for (int i = 0; i < LX_MAX_FDS && !rc; i++)
        if (p->fds.fd[i].kind != LX_FD_FREE)
            rc = save_fd(p, i, &b);
    snap_add(w, SNAP_FDS, b.data, b.len);
    failed |= b.failed;
    snap_buf_free(&b);
    if (failed) {
        fprintf(stderr, "kvmserver: snapshot: out of memory\n");
        return -1;
    }
    return rc;
}
