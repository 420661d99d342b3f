/* File-system calls on open fds: ftruncate, fsync, locks (flock and fcntl), sendfile,
 * memfd_create, statfs. A blocking lock is taken by polling so that it ends at the VM's
 * deadline like every other wait (wait.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "linux/fs.h"
#include "linux/process.h"
#include "linux/syscalls.h"
#include "linux/wait.h"
#include "vm/guest_mem.h"

#define LOCK_POLL_NS 2000000        /* how often a blocked lock is retried */
#define MEMFD_NAME_MAX 249          /* Linux: 255 minus the "memfd:" prefix */

_Static_assert(sizeof(struct flock) == 32, "struct flock must be the x86-64 kernel layout");
_Static_assert(sizeof(struct statfs) == 120, "struct statfs must be the x86-64 kernel layout");

long sys_ftruncate(struct lx_proc *p, const uint64_t a[6])
{
    long host = fs_host_fd(p, (uint32_t)a[0]);
    if (host < 0)
        return host;
    if ((int64_t)a[1] < 0)
        return -EINVAL;
    return ftruncate((int)host, (off_t)a[1]) < 0 ? -errno : 0;
}

long sys_fsync(struct lx_proc *p, const uint64_t a[6])
{
    long host = fs_host_fd(p, (uint32_t)a[0]);
    if (host < 0)
        return host;
    return fsync((int)host) < 0 ? -errno : 0;
}

long sys_fdatasync(struct lx_proc *p, const uint64_t a[6])
{
    long host = fs_host_fd(p, (uint32_t)a[0]);
    if (host < 0)
        return host;
    return fdatasync((int)host) < 0 ? -errno : 0;
}

/* ------------------------------------------------------------------ locks */

struct lock_try {
    int host_fd;
    int cmd;                /* non-blocking form */
    struct flock fl;
    int flock_op;           /* flock(): LOCK_SH/LOCK_EX | LOCK_NB; cmd 0 */
};

static long try_lock(void *ctx, int64_t timeout_ns)
{
    struct lock_try *t = ctx;
    int r = t->cmd ? fcntl(t->host_fd, t->cmd, &t->fl) : flock(t->host_fd, t->flock_op);
    if (r == 0)
        return 1;
    if (errno != EAGAIN && errno != EACCES && errno != EWOULDBLOCK)
        return -errno;
    int64_t nap = timeout_ns < 0 || timeout_ns > LOCK_POLL_NS ? LOCK_POLL_NS : timeout_ns;
    struct timespec ts = { 0, (long)nap };
    nanosleep(&ts, NULL);
    return 0;
}

/* Waits for the lock until it is free or the VM's deadline passes. */
static long lock_blocking(struct lx_proc *p, struct lock_try *t)
{
    long r = lx_wait_until(p, -1, try_lock, t);
    return r > 0 ? 0 : r;
}

long sys_flock(struct lx_proc *p, const uint64_t a[6])
{
    long host = fs_host_fd(p, (uint32_t)a[0]);
    if (host < 0)
        return host;
    int op = (int)(uint32_t)a[1];
    int kind = op & ~LOCK_NB;
    if (kind != LOCK_SH && kind != LOCK_EX && kind != LOCK_UN)
        return -EINVAL;
    if (kind == LOCK_UN || (op & LOCK_NB))
        return flock((int)host, op) < 0 ? -errno : 0;
    struct lock_try t = { .host_fd = (int)host, .flock_op = op | LOCK_NB };
    return lock_blocking(p, &t);
}

long fs_fcntl_lock(struct lx_proc *p, int host_fd, unsigned cmd, uint64_t arg)
{
    struct flock fl;
    if (gm_read(p->vm, &fl, arg, sizeof fl))
        return -EFAULT;
    if (fl.l_type != F_RDLCK && fl.l_type != F_WRLCK && fl.l_type != F_UNLCK)
        return -EINVAL;
    if (fl.l_whence != SEEK_SET && fl.l_whence != SEEK_CUR && fl.l_whence != SEEK_END)
        return -EINVAL;
    bool ofd = cmd == F_OFD_GETLK || cmd == F_OFD_SETLK || cmd == F_OFD_SETLKW;
    if (ofd && fl.l_pid != 0)
        return -EINVAL;
    switch (cmd) {
    case F_GETLK:
    case F_OFD_GETLK:
        if (fcntl(host_fd, (int)cmd, &fl) < 0)
            return -errno;
        /* Other VMs of this server are one host process: their locks never conflict. */
        if (fl.l_type != F_UNLCK && !ofd)
            fl.l_pid = fl.l_pid == getpid() ? p->pid : fl.l_pid;
        return gm_write(p->vm, arg, &fl, sizeof fl);
    case F_SETLK:
    case F_OFD_SETLK:
        return fcntl(host_fd, (int)cmd, &fl) < 0 ? -errno : 0;
    case F_SETLKW:
    case F_OFD_SETLKW: {
        struct lock_try t = { .host_fd = host_fd, .cmd = cmd == F_SETLKW ? F_SETLK : F_OFD_SETLK,
                              .fl = fl };
        return lock_blocking(p, &t);
    }
    default:
        return -EINVAL;
    }
}

/* ------------------------------------------------------------------ sendfile */

long sys_sendfile(struct lx_proc *p, const uint64_t a[6])
{
    struct lx_fd *out = fdt_get(&p->fds, (uint32_t)a[0]);
    struct lx_fd *in = fdt_get(&p->fds, (uint32_t)a[1]);
    if (!out || !in)
        return -EBADF;
    size_t count = a[3] > MAX_RW_COUNT ? MAX_RW_COUNT : (size_t)a[3];
    off_t offset = 0;
    if (a[2] && gm_read(p->vm, &offset, a[2], sizeof offset))
        return -EFAULT;
    if (a[2] && offset < 0)
        return -EINVAL;
    if ((out->type == LX_FT_CONNECTION || out->type == LX_FT_PIPE) &&
        lx_host_fd_blocks(out->host_fd)) {
        int err = lx_wait_fd(p, out->host_fd, POLLOUT);
        if (err)
            return err;
    }
    ssize_t n;
    do
        n = sendfile(out->host_fd, in->host_fd, a[2] ? &offset : NULL, count);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        long err = -errno;
        if (err == -EPIPE)
            sys_tkill(p, (const uint64_t[6]){ (uint64_t)p->pid, 13 /* SIGPIPE */ });
        return err;
    }
    if (a[2] && gm_write(p->vm, a[2], &offset, sizeof offset))
        return -EFAULT;
    return (long)n;
}

/* ------------------------------------------------------------------ memfd, statfs */

long sys_memfd_create(struct lx_proc *p, const uint64_t a[6])
{
    char name[MEMFD_NAME_MAX + 1];
    long n = gm_read_str(p->vm, name, a[0], sizeof name);
    if (n == -ENAMETOOLONG)
        return -EINVAL;
    if (n < 0)
        return n;
    unsigned flags = (uint32_t)a[1];
    unsigned allowed = MFD_CLOEXEC | MFD_ALLOW_SEALING;
#ifdef MFD_NOEXEC_SEAL
    allowed |= MFD_NOEXEC_SEAL | MFD_EXEC;
#endif
    if (flags & ~allowed)
        return -EINVAL;             /* no huge pages: the guest's memory is the VM's */
    int host = memfd_create(name, flags | MFD_CLOEXEC);
    if (host < 0)
        return -errno;
    return lx_install_fd(p, host, (flags & MFD_CLOEXEC) != 0, LX_FT_OTHER);
}

long sys_fstatfs(struct lx_proc *p, const uint64_t a[6])
{
    long host = fs_host_fd(p, (uint32_t)a[0]);
    if (host < 0)
        return host;
    struct statfs st;
    if (fstatfs((int)host, &st) < 0)
        return -errno;
    return gm_write(p->vm, a[1], &st, sizeof st);
}

long sys_statfs(struct lx_proc *p, const uint64_t a[6])
{
    long fd = fs_open_name(p, AT_FDCWD, a[0], O_PATH, 0, FSP_LOOK);
    if (fd < 0)
        return fd;
    struct statfs st;
    int err = fstatfs((int)fd, &st) < 0 ? -errno : 0;
    close((int)fd);
    return err ? err : gm_write(p->vm, a[1], &st, sizeof st);
}

/* ------------------------------------------------------------------ advice, attributes */

long sys_fadvise64(struct lx_proc *p, const uint64_t a[6])
{
    long host = fs_host_fd(p, (uint32_t)a[0]);
    if (host < 0)
        return host;
    int advice = (int)(uint32_t)a[3];
    if (advice < POSIX_FADV_NORMAL || advice > POSIX_FADV_NOREUSE)
        return -EINVAL;
    return 0;                       /* advice only: the page cache is the host's business */
}

/* No extended attributes in the sandbox (ls -l asks for ACLs and security labels): what
 * Linux answers on a file system without them. Nothing is looked up, so nothing leaks. */
long sys_getxattr(struct lx_proc *p, const uint64_t a[6]) { (void)p; (void)a; return -EOPNOTSUPP; }
long sys_lgetxattr(struct lx_proc *p, const uint64_t a[6]) { (void)p; (void)a; return -EOPNOTSUPP; }
long sys_listxattr(struct lx_proc *p, const uint64_t a[6]) { (void)p; (void)a; return -EOPNOTSUPP; }
long sys_llistxattr(struct lx_proc *p, const uint64_t a[6]) { (void)p; (void)a; return -EOPNOTSUPP; }

long sys_fgetxattr(struct lx_proc *p, const uint64_t a[6])
{
    long host = fs_host_fd(p, (uint32_t)a[0]);
    return host < 0 ? host : -EOPNOTSUPP;
}

long sys_flistxattr(struct lx_proc *p, const uint64_t a[6])
{
    long host = fs_host_fd(p, (uint32_t)a[0]);
    return host < 0 ? host : -EOPNOTSUPP;
}
