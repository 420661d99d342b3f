/* Giving a fork its own fd table: the same guest numbers, host objects shared where the
 * frozen program expects sharing (files, the listening socket) and rebuilt where each fork
 * must have its own (epoll instances). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "linux/epoll.h"
#include "linux/fdtable.h"

int fdt_clone(struct lx_fdtable *dst, const struct lx_fdtable *src)
{
    memset(dst, 0, sizeof *dst);
    /* Plain fds first: epoll instances resolve their registrations against them. */
    for (int i = 0; i < LX_MAX_FDS; i++) {
        const struct lx_fd *f = &src->fd[i];
        if (f->kind == LX_FD_FREE || f->type == LX_FT_EPOLL)
            continue;
        int host = fcntl(f->host_fd, F_DUPFD_CLOEXEC, 3);
        if (host < 0)
            goto fail;
        dst->fd[i] = *f;
        dst->fd[i].host_fd = host;
    }
    for (int i = 0; i < LX_MAX_FDS; i++) {
        const struct lx_fd *f = &src->fd[i];
        if (f->kind == LX_FD_FREE || f->type != LX_FT_EPOLL)
            continue;
        struct lx_epoll *copy = NULL;
        int host = lx_epoll_clone(f->epoll, dst, &copy);
        if (host < 0) {
            errno = -host;
            goto fail;
        }
        dst->fd[i] = *f;
        dst->fd[i].host_fd = host;
        dst->fd[i].epoll = copy;
    }
    return 0;
fail:;
    int err = errno;
    fdt_close_all(dst);
    return -err;
}
