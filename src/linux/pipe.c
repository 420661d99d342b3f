/* pipe, pipe2, eventfd, eventfd2: host objects private to the guest, numbered like Linux. */
#include <errno.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "linux/process.h"
#include "linux/syscalls.h"
#include "vm/guest_mem.h"

int lx_install_fd(struct lx_proc *p, int host_fd, bool cloexec, enum lx_fd_type type)
{
    int fd = fdt_install(&p->fds, host_fd, 0, cloexec);
    if (fd < 0) {
        close(host_fd);
        return fd;
    }
    p->fds.fd[fd].type = type;
    return fd;
}

bool lx_fds_available(struct lx_proc *p, int needed)
{
    for (int i = 0; i < LX_MAX_FDS && needed > 0; i++)
        if (p->fds.fd[i].kind == LX_FD_FREE)
            needed--;
    return needed <= 0;
}

long lx_install_pair(struct lx_proc *p, const int host[2], bool cloexec, enum lx_fd_type type,
                     uint64_t out_gva)
{
    if (!lx_fds_available(p, 2)) {
        close(host[0]);
        close(host[1]);
        return -EMFILE;
    }
    int fds[2];
    fds[0] = lx_install_fd(p, host[0], cloexec, type);
    fds[1] = lx_install_fd(p, host[1], cloexec, type);   /* cannot fail: two were free */
    /* A fork wires a rebuilt socketpair's ends from this (pipes pair by their inode). */
    p->fds.fd[fds[0]].peer_ofd = p->fds.fd[fds[1]].ofd;
    p->fds.fd[fds[1]].peer_ofd = p->fds.fd[fds[0]].ofd;
    if (gm_write(p->vm, out_gva, fds, sizeof fds)) {
        /* Linux closes both again when it cannot tell the caller their numbers. */
        fdt_close(&p->fds, fds[0]);
        fdt_close(&p->fds, fds[1]);
        return -EFAULT;
    }
    return 0;
}

static long make_pipe(struct lx_proc *p, uint64_t out_gva, int flags)
{
    if (flags & ~(O_CLOEXEC | O_NONBLOCK | O_DIRECT))
        return -EINVAL;
    int host[2];
    if (pipe2(host, (flags & (O_NONBLOCK | O_DIRECT)) | O_CLOEXEC) < 0)
        return -errno;
    return lx_install_pair(p, host, flags & O_CLOEXEC, LX_FT_PIPE, out_gva);
}

long sys_pipe(struct lx_proc *p, const uint64_t a[6])
{
    return make_pipe(p, a[0], 0);
}

long sys_pipe2(struct lx_proc *p, const uint64_t a[6])
{
    return make_pipe(p, a[0], (int)(uint32_t)a[1]);
}

static long make_eventfd(struct lx_proc *p, unsigned int initval, int flags)
{
    if (flags & ~(EFD_CLOEXEC | EFD_NONBLOCK | EFD_SEMAPHORE))
        return -EINVAL;
    if (!lx_fds_available(p, 1))
        return -EMFILE;
    int host = eventfd(initval, (flags & ~EFD_CLOEXEC) | EFD_CLOEXEC);
    if (host < 0)
        return -errno;
    return lx_install_fd(p, host, flags & EFD_CLOEXEC, LX_FT_PIPE);
}

long sys_eventfd(struct lx_proc *p, const uint64_t a[6])
{
    return make_eventfd(p, (uint32_t)a[0], 0);
}

long sys_eventfd2(struct lx_proc *p, const uint64_t a[6])
{
    return make_eventfd(p, (uint32_t)a[0], (int)(uint32_t)a[1]);
}
