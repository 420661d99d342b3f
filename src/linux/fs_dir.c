/* Calls that change directory entries or file metadata by path: mkdir, unlink/rmdir, rename,
 * link, symlink, truncate, chmod, chown, utimensat; and getdents64. Each needs write
 * permission where it changes something (--allow-write). Entries are changed relative to
 * their parent directory opened beneath an allowed root, so the last component is never
 * followed outside it. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "linux/fs.h"
#include "linux/process.h"
#include "linux/syscalls.h"
#include "vm/guest_mem.h"

#define GETDENTS_MAX (1u << 20)     /* per call; callers loop */

static int dirfd_arg(uint64_t reg) { return (int)(uint32_t)reg; }

/* The parent of a path argument, with write permission on it. */
static long parent_for_write(struct lx_proc *p, int dirfd, uint64_t path_gva,
                             struct fsp_result *res, char name[NAME_MAX + 1])
{
    char path[PATH_MAX];
    long n = fs_read_name(p, path_gva, path);
    if (n < 0)
        return n;
    long err = fs_open_parent(p, dirfd, path, FSP_WRITE, res, name);
    if (err)
        return err;
    if (res->pseudo)
        return -EACCES;             /* nothing in /proc or /sys is created or removed */
    return 0;
}

static long done(struct fsp_result *res, int r)
{
    int err = r < 0 ? -errno : 0;
    close(res->fd);
    return err;
}

static long mkdir_at(struct lx_proc *p, int dirfd, uint64_t path_gva, unsigned mode)
{
    struct fsp_result res;
    char name[NAME_MAX + 1];
    long err = parent_for_write(p, dirfd, path_gva, &res, name);
    if (err)
        return err;
    return done(&res, mkdirat(res.fd, name, mode & 07777 & ~p->task.umask));
}

long sys_mkdir(struct lx_proc *p, const uint64_t a[6])
{
    return mkdir_at(p, AT_FDCWD, a[0], (unsigned)a[1]);
}

long sys_mkdirat(struct lx_proc *p, const uint64_t a[6])
{
    return mkdir_at(p, dirfd_arg(a[0]), a[1], (unsigned)a[2]);
}

static long unlink_at(struct lx_proc *p, int dirfd, uint64_t path_gva, int flags)
{
    if (flags & ~AT_REMOVEDIR)
        return -EINVAL;
    struct fsp_result res;
    char name[NAME_MAX + 1];
    long err = parent_for_write(p, dirfd, path_gva, &res, name);
    if (err)
        return err;
    return done(&res, unlinkat(res.fd, name, flags));
}

long sys_unlink(struct lx_proc *p, const uint64_t a[6])
{
    return unlink_at(p, AT_FDCWD, a[0], 0);
}

long sys_rmdir(struct lx_proc *p, const uint64_t a[6])
{
    return unlink_at(p, AT_FDCWD, a[0], AT_REMOVEDIR);
}

long sys_unlinkat(struct lx_proc *p, const uint64_t a[6])
{
    return unlink_at(p, dirfd_arg(a[0]), a[1], (int)(uint32_t)a[2]);
}

/* rename and link: both entries need write permission (a hard link from a read-only tree
 * into a writable one would make the file writable). */
static long two_entries(struct lx_proc *p, int olddirfd, uint64_t old_gva, int newdirfd,
                        uint64_t new_gva, unsigned flags, bool link)
{
    struct fsp_result from, to;
    char old_name[NAME_MAX + 1], new_name[NAME_MAX + 1];
    long err = parent_for_write(p, olddirfd, old_gva, &from, old_name);
    if (err)
        return err;
    err = parent_for_write(p, newdirfd, new_gva, &to, new_name);
    if (err) {
        close(from.fd);
        return err;
    }
    long r = link ? linkat(from.fd, old_name, to.fd, new_name, 0)
                  : syscall(SYS_renameat2, from.fd, old_name, to.fd, new_name, flags);
    err = r < 0 ? -errno : 0;
    close(from.fd);
    close(to.fd);
    return err;
}

long sys_rename(struct lx_proc *p, const uint64_t a[6])
{
    return two_entries(p, AT_FDCWD, a[0], AT_FDCWD, a[1], 0, false);
}

long sys_renameat(struct lx_proc *p, const uint64_t a[6])
{
    return two_entries(p, dirfd_arg(a[0]), a[1], dirfd_arg(a[2]), a[3], 0, false);
}

long sys_renameat2(struct lx_proc *p, const uint64_t a[6])
{
    unsigned flags = (uint32_t)a[4];
    if (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT))
        return -EINVAL;
    return two_entries(p, dirfd_arg(a[0]), a[1], dirfd_arg(a[2]), a[3], flags, false);
}

long sys_link(struct lx_proc *p, const uint64_t a[6])
{
    return two_entries(p, AT_FDCWD, a[0], AT_FDCWD, a[1], 0, true);
}

long sys_linkat(struct lx_proc *p, const uint64_t a[6])
{
    /* AT_SYMLINK_FOLLOW would follow the old path's link on the host: not offered. */
    if ((uint32_t)a[4] & ~(unsigned)AT_EMPTY_PATH)
        return (uint32_t)a[4] & AT_SYMLINK_FOLLOW ? -EPERM : -EINVAL;
    if ((uint32_t)a[4] & AT_EMPTY_PATH)
        return -ENOENT;             /* needs CAP_DAC_READ_SEARCH on Linux */
    return two_entries(p, dirfd_arg(a[0]), a[1], dirfd_arg(a[2]), a[3], 0, true);
}

/* A symlink's text is never resolved here: opening through it goes through the policy. */
static long symlink_at(struct lx_proc *p, uint64_t target_gva, int dirfd, uint64_t path_gva)
{
    char target[PATH_MAX];
    long n = fs_read_name(p, target_gva, target);
    if (n < 0)
        return n;
    struct fsp_result res;
    char name[NAME_MAX + 1];
    long err = parent_for_write(p, dirfd, path_gva, &res, name);
    if (err)
        return err;
    return done(&res, symlinkat(target, res.fd, name));
}

long sys_symlink(struct lx_proc *p, const uint64_t a[6])
{
    return symlink_at(p, a[0], AT_FDCWD, a[1]);
}

long sys_symlinkat(struct lx_proc *p, const uint64_t a[6])
{
    return symlink_at(p, a[0], dirfd_arg(a[1]), a[2]);
}

/* ------------------------------------------------------------------ metadata by path */

/* The object a path names, O_PATH, for a change that needs write permission. */
static long path_for_write(struct lx_proc *p, int dirfd, uint64_t path_gva, bool nofollow)
{
    return fs_open_name(p, dirfd, path_gva, O_PATH | (nofollow ? O_NOFOLLOW : 0), 0, FSP_WRITE);
}

/* Whether the file behind a guest fd may have its metadata changed: files that have a path
 * need write permission there; pipes, sockets, memfds and deleted files have none. */
static long fd_for_write(struct lx_proc *p, long guest_fd)
{
    long host = fs_host_fd(p, guest_fd);
    if (host < 0)
        return host;
    char guest[PATH_MAX];
    if (fsp_guest_path_of_fd(fs_policy(p), (int)host, guest) != 0)
        return host;
    if (fsp_is_pseudo(guest))
        return -EPERM;
    const struct fsp_root *root = fsp_match(fs_policy(p), guest, NULL);
    if (!root || !fsp_grants(root, FSP_WRITE)) {
        fsp_log_denied(guest, FSP_WRITE);
        return -EACCES;
    }
    return host;
}

static void proc_fd_link(char out[64], long host_fd)
{
    snprintf(out, 64, "/proc/self/fd/%ld", host_fd);
}

long sys_truncate(struct lx_proc *p, const uint64_t a[6])
{
    if ((int64_t)a[1] < 0)
        return -EINVAL;
    long fd = fs_open_name(p, AT_FDCWD, a[0], O_WRONLY, 0, FSP_WRITE);
    if (fd < 0)
        return fd;
    int err = ftruncate((int)fd, (off_t)a[1]) < 0 ? -errno : 0;
    close((int)fd);
    return err;
}

static long chmod_at(struct lx_proc *p, int dirfd, uint64_t path_gva, unsigned mode, int flags)
{
    if (flags & ~AT_SYMLINK_NOFOLLOW)
        return -EINVAL;
    long fd = path_for_write(p, dirfd, path_gva, flags & AT_SYMLINK_NOFOLLOW);
    if (fd < 0)
        return fd;
    char link[64];
    proc_fd_link(link, fd);
    struct stat st;
    int err = fstat((int)fd, &st) < 0 ? -errno : 0;
    if (!err && S_ISLNK(st.st_mode))
        err = -EOPNOTSUPP;          /* as Linux says for a link's own mode */
    if (!err && chmod(link, mode & 07777) < 0)
        err = -errno;
    close((int)fd);
    return err;
}

long sys_chmod(struct lx_proc *p, const uint64_t a[6])
{
    return chmod_at(p, AT_FDCWD, a[0], (unsigned)a[1], 0);
}

long sys_fchmodat(struct lx_proc *p, const uint64_t a[6])
{
    return chmod_at(p, dirfd_arg(a[0]), a[1], (unsigned)a[2], 0);
}

long sys_fchmod(struct lx_proc *p, const uint64_t a[6])
{
    long host = fd_for_write(p, (uint32_t)a[0]);
    if (host < 0)
        return host;
    return fchmod((int)host, (unsigned)a[1] & 07777) < 0 ? -errno : 0;
}

static long chown_at(struct lx_proc *p, int dirfd, uint64_t path_gva, uint32_t uid, uint32_t gid,
                     int flags)
{
    if (flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH))
        return -EINVAL;
    long fd = path_for_write(p, dirfd, path_gva, flags & AT_SYMLINK_NOFOLLOW);
    if (fd < 0)
        return fd;
    int err = fchownat((int)fd, "", uid, gid, AT_EMPTY_PATH) < 0 ? -errno : 0;
    close((int)fd);
    return err;
}

long sys_chown(struct lx_proc *p, const uint64_t a[6])
{
    return chown_at(p, AT_FDCWD, a[0], (uint32_t)a[1], (uint32_t)a[2], 0);
}

long sys_lchown(struct lx_proc *p, const uint64_t a[6])
{
    return chown_at(p, AT_FDCWD, a[0], (uint32_t)a[1], (uint32_t)a[2], AT_SYMLINK_NOFOLLOW);
}

long sys_fchownat(struct lx_proc *p, const uint64_t a[6])
{
    int flags = (int)(uint32_t)a[4];
    if (flags & AT_EMPTY_PATH) {
        long host = fd_for_write(p, dirfd_arg(a[0]));
        if (host < 0)
            return host;
        return fchown((int)host, (uint32_t)a[2], (uint32_t)a[3]) < 0 ? -errno : 0;
    }
    return chown_at(p, dirfd_arg(a[0]), a[1], (uint32_t)a[2], (uint32_t)a[3], flags);
}

long sys_fchown(struct lx_proc *p, const uint64_t a[6])
{
    long host = fd_for_write(p, (uint32_t)a[0]);
    if (host < 0)
        return host;
    return fchown((int)host, (uint32_t)a[1], (uint32_t)a[2]) < 0 ? -errno : 0;
}

long sys_utimensat(struct lx_proc *p, const uint64_t a[6])
{
    int flags = (int)(uint32_t)a[3];
    if (flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH))
        return -EINVAL;
    struct timespec times[2];
    if (a[2] && gm_read(p->vm, times, a[2], sizeof times))
        return -EFAULT;
    long fd;
    bool owned = false;
    if (a[1] == 0) {                /* futimens(): the fd itself */
        fd = fd_for_write(p, dirfd_arg(a[0]));
    } else {
        fd = path_for_write(p, dirfd_arg(a[0]), a[1], flags & AT_SYMLINK_NOFOLLOW);
        owned = true;
    }
    if (fd < 0)
        return fd;
    char link[64];
    proc_fd_link(link, fd);
    int err = utimensat(AT_FDCWD, link, a[2] ? times : NULL, 0) < 0 ? -errno : 0;
    if (owned)
        close((int)fd);
    return err;
}

/* ------------------------------------------------------------------ directory listing */

long sys_getdents64(struct lx_proc *p, const uint64_t a[6])
{
    long host = fs_host_fd(p, (uint32_t)a[0]);
    if (host < 0)
        return host;
    unsigned count = (uint32_t)a[2];
    if (count > GETDENTS_MAX)
        count = GETDENTS_MAX;
    void *buf = gm_span(p->vm, a[1], count, GM_WRITE);
    if (!buf)
        return -EFAULT;
    long n = syscall(SYS_getdents64, (int)host, buf, count);
    return n < 0 ? -errno : n;
}
