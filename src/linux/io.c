/* read/write and the other calls on open fds. Data moves directly between the host fd and the
 * guest buffer (checked with gm_span), so there is no bounce copy. Argument types follow the
 * kernel's prototypes: an `unsigned int fd` is the low 32 bits of its register, an `int dirfd`
 * is those bits taken as signed. */
#include <asm/termbits.h>       /* the kernel's struct termios, which TCGETS fills */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "linux/epoll.h"
#include "linux/fs.h"
#include "linux/process.h"
#include "linux/syscalls.h"
#include "linux/wait.h"
#include "vm/engine.h"
#include "vm/guest_mem.h"

/* Linux never moves more than this in one call (INT_MAX rounded down to a page). */
#define GUEST_IOV_MAX 1024
#define GUEST_PAGE 4096

_Static_assert(sizeof(struct stat) == 144, "struct stat must be the x86-64 kernel layout");

static long fd_arg(uint64_t reg) { return (long)(uint32_t)reg; }

static size_t cap_rw(uint64_t len) { return len > MAX_RW_COUNT ? MAX_RW_COUNT : (size_t)len; }

/* Linux's first check (access_ok): the whole range, before any capping, lies in the
 * program's address space. */
static bool in_address_space(const struct vm *vm, uint64_t gva, uint64_t len)
{
    uint64_t end = vm_user_end(vm);
    return gva <= end && len <= end - gva;
}

/* A host pointer for the guest buffer [gva, gva + *len). Linux copies until the first fault
 * and reports what it moved, so a buffer whose tail is inaccessible shrinks to its accessible
 * head (*len is updated); NULL (-EFAULT) when not even its first byte is. A zero-length buffer
 * touches no memory, so any pointer (NULL too) is fine: the host gets a harmless one. */
static void *guest_buf(struct vm *vm, uint64_t gva, size_t *len, int access)
{
    static char nothing;
    if (*len == 0)
        return &nothing;
    if (!in_address_space(vm, gva, *len))
        return NULL;
    void *whole = gm_span(vm, gva, *len, access);
    if (whole)
        return whole;
    size_t head = 0;            /* bounded by *len <= MAX_RW_COUNT: at most 512Ki pages */
    while (head < *len) {
        uint64_t at = gva + head;
        if (at < gva)
            break;
        size_t chunk = GUEST_PAGE - (size_t)(at % GUEST_PAGE);
        if (chunk > *len - head)
            chunk = *len - head;
        if (!gm_span(vm, at, chunk, access))
            break;
        head += chunk;
    }
    if (head == 0)
        return NULL;
    *len = head;
    return gm_span(vm, gva, head, access);
}

/* A blocking connection or pipe could outlive the VM's deadline in the host call: wait for
 * it in lx_wait_fd (which stops at the deadline) first. Files and stdio never wait long. */
static long wait_ready(struct lx_proc *p, struct lx_fd *f, short events)
{
    /* Anything that can block (sockets of any origin, pipes, terminals) waits through the
     * deadline-aware wait; files and memory devices never block, so they skip the poll. So
     * does an epoll fd, whose read and write fail at once (EINVAL): polled first, it would
     * wait for one of its events. */
    if (f->type == LX_FT_EPOLL || fdt_never_waits(f) || !lx_host_fd_blocks(f->host_fd))
        return 0;
    return lx_wait_fd(p, f->host_fd, events);
}

/* A write to a pipe or socket with no reader raises SIGPIPE in the writer (the host's own
 * SIGPIPE is not the guest's business: the host ignores it or dies of it, either way the
 * guest's disposition decides here). */
static long finish_write(struct lx_proc *p, long r)
{
    if (r == -EPIPE)
        sys_tkill(p, (const uint64_t[6]){ (uint64_t)p->pid, SIGPIPE });
    return r;
}

/* The engine's periodic kick is a signal with SA_RESTART; retrying on EINTR as well keeps a
 * stray interruption from reaching the guest (a partial transfer returns a count, never EINTR). */
static long transfer(struct lx_proc *p, const uint64_t a[6], bool to_guest)
{
    struct lx_fd *f = fdt_get(&p->fds, fd_arg(a[0]));
    if (!f)
        return -EBADF;
    if (a[2] && !in_address_space(p->vm, a[1], a[2]))
        return -EFAULT;
    size_t len = cap_rw(a[2]);
    void *buf = guest_buf(p->vm, a[1], &len, to_guest ? GM_WRITE : GM_READ);
    if (!buf)
        return -EFAULT;
    long err = wait_ready(p, f, to_guest ? POLLIN : POLLOUT);
    if (err)
        return err;
    ssize_t n;
    do
        n = to_guest ? read(f->host_fd, buf, len) : write(f->host_fd, buf, len);
    while (n < 0 && errno == EINTR);
    return n < 0 ? (to_guest ? -errno : finish_write(p, -errno)) : (long)n;
}

long sys_read(struct lx_proc *p, const uint64_t a[6])
{
    return transfer(p, a, true);
}

long sys_write(struct lx_proc *p, const uint64_t a[6])
{
    return transfer(p, a, false);
}

/* Positioned variants: the offset is a signed 64-bit value (the host rejects < 0). */
long sys_pread64(struct lx_proc *p, const uint64_t a[6])
{
    struct lx_fd *f = fdt_get(&p->fds, fd_arg(a[0]));
    if (!f)
        return -EBADF;
    if (a[2] && !in_address_space(p->vm, a[1], a[2]))
        return -EFAULT;
    size_t len = cap_rw(a[2]);
    void *buf = guest_buf(p->vm, a[1], &len, GM_WRITE);
    if (!buf)
        return -EFAULT;
    ssize_t n;
    do
        n = pread(f->host_fd, buf, len, (off_t)a[3]);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : (long)n;
}

long sys_pwrite64(struct lx_proc *p, const uint64_t a[6])
{
    struct lx_fd *f = fdt_get(&p->fds, fd_arg(a[0]));
    if (!f)
        return -EBADF;
    if (a[2] && !in_address_space(p->vm, a[1], a[2]))
        return -EFAULT;
    size_t len = cap_rw(a[2]);
    const void *buf = guest_buf(p->vm, a[1], &len, GM_READ);
    if (!buf)
        return -EFAULT;
    ssize_t n;
    do
        n = pwrite(f->host_fd, buf, len, (off_t)a[3]);
    while (n < 0 && errno == EINTR);
    return n < 0 ? finish_write(p, -errno) : (long)n;
}

struct guest_iovec {
    uint64_t base, len;
};

/* Translates the guest's iovec array into host iovecs; returns how many to use. Like Linux:
 * more than 1024 entries or a length that is negative as ssize_t is -EINVAL, the total is
 * silently capped at MAX_RW_COUNT (later entries shrink, possibly to zero), and the transfer
 * stops at the first inaccessible byte (-EFAULT if that is the first byte of all). */
static long map_iovec(struct vm *vm, uint64_t gva, uint64_t count, int access,
                      struct iovec *out)
{
    if (count > GUEST_IOV_MAX)
        return -EINVAL;
    struct guest_iovec g[GUEST_IOV_MAX];
    if (count && gm_read(vm, g, gva, (size_t)count * sizeof g[0]))
        return -EFAULT;
    for (size_t i = 0; i < count; i++)
        if (g[i].len > (uint64_t)SSIZE_MAX)
            return -EINVAL;
    for (size_t i = 0; i < count; i++)
        if (g[i].len && !in_address_space(vm, g[i].base, g[i].len))
            return -EFAULT;
    size_t total = 0;
    for (size_t i = 0; i < count; i++) {
        size_t want = g[i].len > MAX_RW_COUNT - total ? MAX_RW_COUNT - total : (size_t)g[i].len;
        size_t len = want;
        void *buf = guest_buf(vm, g[i].base, &len, access);
        if (!buf)
            return total ? (long)i : -EFAULT;
        out[i] = (struct iovec){ .iov_base = buf, .iov_len = len };
        total += len;
        if (len < want)
            return (long)i + 1;
    }
    return (long)count;
}

static long vector_transfer(struct lx_proc *p, const uint64_t a[6], bool to_guest)
{
    struct lx_fd *f = fdt_get(&p->fds, fd_arg(a[0]));
    if (!f)
        return -EBADF;
    struct iovec iov[GUEST_IOV_MAX];
    long count = map_iovec(p->vm, a[1], a[2], to_guest ? GM_WRITE : GM_READ, iov);
    if (count < 0)
        return count;
    long err = wait_ready(p, f, to_guest ? POLLIN : POLLOUT);
    if (err)
        return err;
    ssize_t n;
    do
        n = to_guest ? readv(f->host_fd, iov, (int)count) : writev(f->host_fd, iov, (int)count);
    while (n < 0 && errno == EINTR);
    return n < 0 ? (to_guest ? -errno : finish_write(p, -errno)) : (long)n;
}

long sys_readv(struct lx_proc *p, const uint64_t a[6])
{
    return vector_transfer(p, a, true);
}

long sys_writev(struct lx_proc *p, const uint64_t a[6])
{
    return vector_transfer(p, a, false);
}

long sys_close(struct lx_proc *p, const uint64_t a[6])
{
    int fd = (int)fd_arg(a[0]);
    if (!fdt_get(&p->fds, fd))
        return -EBADF;
    lx_epoll_forget_fd(p, fd);      /* while its host fd still exists to unregister */
    fdt_close(&p->fds, fd);
    if (p->server.hooks)
        p->server.hooks->closed(p->server.hooks_ctx, fd);
    return 0;
}

long sys_lseek(struct lx_proc *p, const uint64_t a[6])
{
    struct lx_fd *f = fdt_get(&p->fds, fd_arg(a[0]));
    if (!f)
        return -EBADF;
    unsigned int whence = (uint32_t)a[2];
    if (whence > SEEK_HOLE)
        return -EINVAL;
    off_t r = lseek(f->host_fd, (off_t)a[1], (int)whence);
    return r < 0 ? -errno : (long)r;
}

/* Terminal queries reach the host only for host terminals: the request numbers mean
 * something else to other drivers. */
static bool is_host_tty(int host_fd)
{
    struct termios t;
    return ioctl(host_fd, TCGETS, &t) == 0;
}

long sys_ioctl(struct lx_proc *p, const uint64_t a[6])
{
    struct lx_fd *f = fdt_get(&p->fds, fd_arg(a[0]));
    if (!f)
        return -EBADF;
    unsigned int request = (uint32_t)a[1];
    switch (request) {
    case FIOCLEX:
        f->cloexec = true;
        return 0;
    case FIONCLEX:
        f->cloexec = false;
        return 0;
    case FIONBIO: {
        int on;
        if (gm_read(p->vm, &on, a[2], sizeof on))
            return -EFAULT;
        struct lx_listener *l = lx_listener_of(p, f);
        if (l) {                /* this VM's flag alone: the host socket is shared */
            l->status_flags = on ? l->status_flags | O_NONBLOCK : l->status_flags & ~O_NONBLOCK;
            return 0;
        }
        return ioctl(f->host_fd, FIONBIO, &on) < 0 ? -errno : 0;
    }
    case FIONREAD: {
        int avail;
        if (ioctl(f->host_fd, FIONREAD, &avail) < 0)
            return -errno;
        return gm_write(p->vm, a[2], &avail, sizeof avail);
    }
    case TCGETS: {
        struct termios t;
        if (ioctl(f->host_fd, TCGETS, &t) < 0)
            return -ENOTTY;
        return gm_write(p->vm, a[2], &t, sizeof t);
    }
    case TIOCGWINSZ: {
        struct winsize w;
        if (!is_host_tty(f->host_fd))
            return -ENOTTY;
        if (ioctl(f->host_fd, TIOCGWINSZ, &w) < 0)
            return -errno;
        return gm_write(p->vm, a[2], &w, sizeof w);
    }
    default:
        return -ENOTTY;
    }
}

long sys_fstat(struct lx_proc *p, const uint64_t a[6])
{
    struct lx_fd *f = fdt_get(&p->fds, fd_arg(a[0]));
    if (!f)
        return -EBADF;
    struct stat st;
    if (fstat(f->host_fd, &st) < 0)
        return -errno;
    return gm_write(p->vm, a[1], &st, sizeof st);
}

/* A new guest fd for the same open file, at the lowest free number >= min. Host fds stay
 * close-on-exec and away from the host's stdio numbers. */
static long dup_lowest(struct lx_proc *p, const struct lx_fd *f, int min, bool cloexec)
{
    int host = fcntl(f->host_fd, F_DUPFD_CLOEXEC, 3);
    if (host < 0)
        return -errno;
    int fd = fdt_install_dup(&p->fds, f, host, min, cloexec);
    if (fd < 0)
        close(host);
    return fd;
}

/* dup2/dup3 once old != new: newfd is closed silently if open, as on Linux. */
static long dup_onto(struct lx_proc *p, long oldfd, long newfd, bool cloexec)
{
    if (newfd < 0 || newfd >= LX_MAX_FDS)
        return -EBADF;
    struct lx_fd *f = fdt_get(&p->fds, oldfd);
    if (!f)
        return -EBADF;
    int host = fcntl(f->host_fd, F_DUPFD_CLOEXEC, 3);
    if (host < 0)
        return -errno;
    if (fdt_get(&p->fds, newfd)) {
        lx_epoll_forget_fd(p, (int)newfd);
        fdt_close(&p->fds, newfd);
    }
    /* newfd is free: the result */
    int fd = fdt_install_dup(&p->fds, f, host, (int)newfd, cloexec);
    if (fd < 0)
        close(host);
    return fd;
}

/* Only these status flags reach the host; the rest are ignored, as Linux ignores flags it
 * cannot change. */
#define SETFL_PASSED (O_NONBLOCK | O_APPEND)

long sys_fcntl(struct lx_proc *p, const uint64_t a[6])
{
    struct lx_fd *f = fdt_get(&p->fds, fd_arg(a[0]));
    if (!f)
        return -EBADF;
    unsigned int cmd = (uint32_t)a[1];
    uint64_t arg = a[2];
    switch (cmd) {
    case F_DUPFD:
    case F_DUPFD_CLOEXEC:
        if (arg >= LX_MAX_FDS)
            return -EINVAL;
        return dup_lowest(p, f, (int)arg, cmd == F_DUPFD_CLOEXEC);
    case F_GETFD:
        return f->cloexec ? FD_CLOEXEC : 0;
    case F_SETFD:
        f->cloexec = (arg & FD_CLOEXEC) != 0;
        return 0;
    case F_GETFL:
        return lx_fd_status_flags(p, f);
    case F_SETFL: {
        struct lx_listener *l = lx_listener_of(p, f);
        if (l) {                /* this VM's flags alone: the host socket is shared */
            l->status_flags = (l->status_flags & ~SETFL_PASSED) | ((int)arg & SETFL_PASSED);
            return 0;
        }
        int fl = fcntl(f->host_fd, F_GETFL);
        if (fl < 0)
            return -errno;
        int want = (fl & ~SETFL_PASSED) | ((int)arg & SETFL_PASSED);
        if (want != fl && fcntl(f->host_fd, F_SETFL, want) < 0)
            return -errno;
        return 0;
    }
    case F_GETLK: case F_SETLK: case F_SETLKW:
    case F_OFD_GETLK: case F_OFD_SETLK: case F_OFD_SETLKW:
        return fs_fcntl_lock(p, f->host_fd, cmd, arg);
    default:
        return -EINVAL;
    }
}

long sys_dup(struct lx_proc *p, const uint64_t a[6])
{
    struct lx_fd *f = fdt_get(&p->fds, fd_arg(a[0]));
    if (!f)
        return -EBADF;
    return dup_lowest(p, f, 0, false);
}

long sys_dup2(struct lx_proc *p, const uint64_t a[6])
{
    long oldfd = fd_arg(a[0]), newfd = fd_arg(a[1]);
    if (oldfd == newfd)
        return fdt_get(&p->fds, oldfd) ? newfd : -EBADF;
    return dup_onto(p, oldfd, newfd, false);
}

long sys_dup3(struct lx_proc *p, const uint64_t a[6])
{
    long oldfd = fd_arg(a[0]), newfd = fd_arg(a[1]);
    int flags = (int)(uint32_t)a[2];
    if (flags & ~O_CLOEXEC)
        return -EINVAL;
    if (oldfd == newfd)
        return -EINVAL;
    return dup_onto(p, oldfd, newfd, (flags & O_CLOEXEC) != 0);
}
