/* Guest file descriptor numbers -> host fds (see fdtable.h). Host fds are always close-on-exec
 * and above the host's own 0/1/2; the guest's close-on-exec flag lives only in the table. */
#include "linux/fdtable.h"
#include "linux/epoll.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

int lx_fds_init(struct lx_fdtable *t)
{
    for (int i = 0; i < 3; i++) {
        fdt_close(t, i);
        int host = fcntl(i, F_DUPFD_CLOEXEC, 3);
        if (host < 0) {
            if (errno == EBADF)
                continue;       /* the host stream is closed: so is the guest's */
            int err = errno;
            for (int j = 0; j < i; j++)
                fdt_close(t, j);
            return -err;
        }
        t->fd[i] = (struct lx_fd){ .kind = LX_FD_HOST, .host_fd = host, .cloexec = false,
                                   .type = LX_FT_STDIO, .ofd = ++t->last_ofd };
    }
    return 0;
}

int fdt_install(struct lx_fdtable *t, int host_fd, int min, bool cloexec)
{
    if (min < 0)
        return -EINVAL;
    for (int i = min; i < LX_MAX_FDS; i++) {
        if (t->fd[i].kind == LX_FD_FREE) {
            /* A plain fd; callers that create sockets or epoll instances set type after. */
            t->fd[i] = (struct lx_fd){ .kind = LX_FD_HOST, .host_fd = host_fd,
                                       .cloexec = cloexec, .type = LX_FT_OTHER,
                                       .ofd = ++t->last_ofd };
            return i;
        }
    }
    return -EMFILE;
}

int fdt_install_dup(struct lx_fdtable *t, const struct lx_fd *orig, int host_fd, int min,
                    bool cloexec)
{
    int fd = fdt_install(t, host_fd, min, cloexec);
    if (fd < 0)
        return fd;
    /* A duplicated epoll fd shares the instance's record: epoll_ctl through either changes
     * both. A fork points it at its own copy of the instance (same ofd). */
    t->fd[fd].type = orig->type;
    t->fd[fd].epoll = orig->epoll ? lx_epoll_get(orig->epoll) : NULL;
    t->fd[fd].ofd = orig->ofd;
    t->fd[fd].peer_ofd = orig->peer_ofd;
    t->fd[fd].waits = orig->waits;
    return fd;
}

bool fdt_never_waits(struct lx_fd *f)
{
    if (f->waits == LX_WAITS_UNKNOWN) {
        struct stat st;
        bool never = fstat(f->host_fd, &st) == 0 &&
                     (S_ISREG(st.st_mode) || (S_ISCHR(st.st_mode) && major(st.st_rdev) == 1));
        f->waits = never ? LX_WAITS_NEVER : LX_WAITS_MAYBE;
    }
    return f->waits == LX_WAITS_NEVER;
}

struct lx_fd *fdt_get(struct lx_fdtable *t, long guest_fd)
{
    if (guest_fd < 0 || guest_fd >= LX_MAX_FDS || t->fd[guest_fd].kind == LX_FD_FREE)
        return NULL;
    return &t->fd[guest_fd];
}

int fdt_close(struct lx_fdtable *t, long guest_fd)
{
    struct lx_fd *f = fdt_get(t, guest_fd);
    if (!f)
        return -EBADF;
    /* Linux frees the descriptor even when close reports an error (EINTR, EIO): so do we,
     * and the guest learns nothing about the host fd. */
    close(f->host_fd);
    lx_epoll_put(f->epoll);
    fdt_free_frozen(f->frozen);
    *f = (struct lx_fd){ .kind = LX_FD_FREE, .host_fd = -1 };
    return 0;
}

void lx_fds_destroy(struct lx_fdtable *t)
{
    for (int i = 0; i < LX_MAX_FDS; i++)
        fdt_close(t, i);
}
