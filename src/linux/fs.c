/* Opening files and looking at paths: open/openat/creat, the stat and access families,
 * readlink, the working directory, umask and close_range. Every path goes through the
 * policy (policy.h); /proc and /sys go to the synthesized files (procfs.h). */
#include "linux/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "linux/procfs.h"
#include "linux/process.h"
#include "linux/syscalls.h"
#include "vm/guest_mem.h"

#define MAX_PSEUDO_LINKS 8      /* /proc/self/cwd -> ... -> /proc/self/root: enough */

static int dirfd_arg(uint64_t reg) { return (int)(uint32_t)reg; }

/* ------------------------------------------------------------------ shared helpers */

long fs_read_path(struct lx_proc *p, uint64_t gva, char out[PATH_MAX])
{
    return gm_read_str(p->vm, out, gva, PATH_MAX);
}

long fs_read_name(struct lx_proc *p, uint64_t gva, char out[PATH_MAX])
{
    long len = fs_read_path(p, gva, out);
    return len == 0 ? -ENOENT : len;      /* an empty path names nothing, as on Linux */
}

long fs_host_fd(struct lx_proc *p, long guest_fd)
{
    struct lx_fd *f = fdt_get(&p->fds, guest_fd);
    return f ? f->host_fd : -EBADF;
}

long fs_dir_host_fd(struct lx_proc *p, long guest_fd)
{
    long host = fs_host_fd(p, guest_fd);
    if (host < 0)
        return host;
    struct stat st;
    if (fstat((int)host, &st) < 0)
        return -errno;
    return S_ISDIR(st.st_mode) ? host : -ENOTDIR;
}

long fs_open_name(struct lx_proc *p, int dirfd, uint64_t path_gva, int flags, unsigned mode,
                  int need)
{
    char path[PATH_MAX];
    long n = fs_read_name(p, path_gva, path);
    return n < 0 ? n : fs_open_path(p, dirfd, path, flags, mode, need);
}

long fs_path(struct lx_proc *p, int dirfd, const char *path, char out[PATH_MAX])
{
    fs_ready(p);
    char base[PATH_MAX] = "/";
    const char *rel = path;
    if (path[0] == '/' && p->task.root[0]) {
        /* From the chroot's root; the policy's walk stops ".." there (policy.h). */
        strcpy(base, p->task.root);
        rel += strspn(rel, "/");
        rel = rel[0] ? rel : ".";
    } else if (path[0] != '/' && dirfd == AT_FDCWD) {
        strcpy(base, p->task.cwd);
    } else if (path[0] != '/') {
        long host = fs_dir_host_fd(p, dirfd);
        if (host < 0)
            return host;
        int err = fsp_guest_path_of_fd(fs_policy(p), (int)host, base);
        if (err)
            return err;
    }
    int err = fsp_absolute(out, PATH_MAX, base, rel);
    if (err)
        return err;
    size_t len = strlen(out);
    if (path[strlen(path) - 1] == '/' && strcmp(out, "/") != 0) {
        if (len + 1 >= PATH_MAX)
            return -ENAMETOOLONG;
        memcpy(out + len, "/", 2);      /* "name/" must still name a directory */
    }
    return 0;
}

/* Logs a refusal under the path the policy refused (a symlink's target, not the link). */
static void log_denied(const struct fsp_result *r, const char *base, const char *path,
                       int need)
{
    char abs[PATH_MAX];
    if (r && r->guest[0])
        fsp_log_denied(r->guest, need);
    else if (fsp_absolute(abs, sizeof abs, base, path) == 0)
        fsp_log_denied(abs, need);
}

static long open_pseudo(struct lx_proc *p, const char *path, int flags, unsigned mode,
                        int need, int depth);

static long open_from(struct lx_proc *p, const char *base, const char *path, int flags,
                      unsigned mode, int need, int depth)
{
    struct fsp_result r;
    int err = fsp_open(fs_policy(p), p->task.root, base, path, flags, mode, need, &r);
    if (err) {
        if (r.denied)
            log_denied(&r, base, path, need);
        return err;
    }
    if (r.pseudo)
        return open_pseudo(p, r.guest, flags, mode, need, depth);
    return r.fd;
}

/* /proc/self/fd/N of a pipe or socket: the same object again, never with more access than
 * the guest's fd has (a read-only fd must not come back writable). */
static long reopen_guest_fd(struct lx_proc *p, int guest_fd, int flags)
{
    long host = fs_host_fd(p, guest_fd);
    if (host < 0)
        return -ENOENT;
    int have = fcntl((int)host, F_GETFL);
    if (have < 0)
        return -errno;
    if (have & O_PATH)
        return -EACCES;
    int want = flags & O_ACCMODE;
    bool can_read = (have & O_ACCMODE) != O_WRONLY, can_write = (have & O_ACCMODE) != O_RDONLY;
    if (((want == O_RDONLY || want == O_RDWR) && !can_read) ||
        ((want == O_WRONLY || want == O_RDWR || (flags & O_TRUNC)) && !can_write))
        return -EACCES;
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%ld", host);
    int fd = open(link, (flags & (O_ACCMODE | O_NONBLOCK | O_APPEND | O_PATH)) | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

static long open_pseudo(struct lx_proc *p, const char *path, int flags, unsigned mode,
                        int need, int depth)
{
    struct pfs_node node;
    int err = pfs_lookup(p, path, &node);
    if (err)
        return err;
    switch (node.kind) {
    case PFS_CONTENT:
        return pfs_open_content(p, &node, flags);
    case PFS_GUEST_FD:
        return reopen_guest_fd(p, node.guest_fd, flags);
    case PFS_LINK:
        /* The link itself is the last component: O_NOFOLLOW refuses it (an O_PATH stat of
         * it shows its target: links here are not objects of their own). */
        if ((flags & O_NOFOLLOW) && !(flags & O_PATH) && strcmp(node.target, node.link_text) == 0)
            return -ELOOP;
        if (depth >= MAX_PSEUDO_LINKS)
            return -ELOOP;
        return open_from(p, "/", node.target, flags, mode, need, depth + 1);
    }
    return -ENOENT;
}

long fs_open_path(struct lx_proc *p, int dirfd, const char *path, int flags, unsigned mode,
                  int need)
{
    char abs[PATH_MAX];
    long err = fs_path(p, dirfd, path, abs);
    return err ? err : open_from(p, "/", abs, flags, mode, need, 0);
}

long fs_open_parent(struct lx_proc *p, int dirfd, const char *path, int need,
                    struct fsp_result *res, char name[NAME_MAX + 1])
{
    char abs[PATH_MAX];
    long err = fs_path(p, dirfd, path, abs);
    if (err)
        return err;
    err = fsp_open_parent(fs_policy(p), p->task.root, "/", abs, need, res, name);
    if (err && res->denied)
        log_denied(res, "/", abs, need);
    return err;
}

/* ------------------------------------------------------------------ open */

/* What reaches the host: no O_ASYNC (signals are not delivered that way), nothing unknown. */
#define OPEN_FLAGS_PASSED (O_ACCMODE | O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_APPEND | \
                           O_NONBLOCK | O_DSYNC | O_DIRECT | O_LARGEFILE | O_DIRECTORY | \
                           O_NOFOLLOW | O_NOATIME | O_CLOEXEC | O_SYNC | O_PATH | \
                           O_TMPFILE)

static int open_need(int flags)
{
    if (flags & O_PATH)
        return FSP_LOOK;
    int need = 0;
    int acc = flags & O_ACCMODE;
    if (acc == O_RDONLY || acc == O_RDWR)
        need |= FSP_READ;
    if (acc == O_WRONLY || acc == O_RDWR || (flags & (O_TRUNC | O_CREAT)) ||
        (flags & O_TMPFILE) == O_TMPFILE)
        need |= FSP_WRITE;
    return need;
}

static long do_openat(struct lx_proc *p, int dirfd, uint64_t path_gva, int flags,
                      unsigned mode)
{
    char path[PATH_MAX];
    long len = fs_read_name(p, path_gva, path);
    if (len < 0)
        return len;
    if ((flags & O_ACCMODE) == O_ACCMODE && !(flags & O_PATH))
        return -EINVAL;
    flags &= OPEN_FLAGS_PASSED;
    if (flags & O_PATH)             /* Linux ignores the rest with O_PATH */
        flags &= O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
    fs_ready(p);
    if ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE)
        mode &= 07777 & ~p->task.umask;
    else
        mode = 0;
    long host = fs_open_path(p, dirfd, path, flags, mode, open_need(flags));
    if (host < 0)
        return host;
    return lx_install_fd(p, (int)host, (flags & O_CLOEXEC) != 0, LX_FT_OTHER);
}

long sys_open(struct lx_proc *p, const uint64_t a[6])
{
    return do_openat(p, AT_FDCWD, a[0], (int)(uint32_t)a[1], (unsigned)a[2]);
}

long sys_openat(struct lx_proc *p, const uint64_t a[6])
{
    return do_openat(p, dirfd_arg(a[0]), a[1], (int)(uint32_t)a[2], (unsigned)a[3]);
}

long sys_creat(struct lx_proc *p, const uint64_t a[6])
{
    return do_openat(p, AT_FDCWD, a[0], O_CREAT | O_WRONLY | O_TRUNC, (unsigned)a[1]);
}

long sys_close_range(struct lx_proc *p, const uint64_t a[6])
{
    unsigned first = (uint32_t)a[0], last = (uint32_t)a[1], flags = (uint32_t)a[2];
    if (flags & ~(unsigned)(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC))
        return -EINVAL;
    if (first > last)
        return -EINVAL;
    for (unsigned fd = first; fd <= last && fd < LX_MAX_FDS; fd++) {
        struct lx_fd *f = fdt_get(&p->fds, fd);
        if (!f)
            continue;
        if (flags & CLOSE_RANGE_CLOEXEC)
            f->cloexec = true;
        else
            sys_close(p, (const uint64_t[6]){ fd });
    }
    return 0;
}

/* ------------------------------------------------------------------ stat and access */

/* An O_PATH host fd for a stat-like call: the fd itself with AT_EMPTY_PATH and an empty
 * path, else the path (the link itself with nofollow). */
static long path_fd(struct lx_proc *p, int dirfd, uint64_t path_gva, bool nofollow,
                    bool empty_ok, bool *owned)
{
    char path[PATH_MAX];
    *owned = false;
    if (path_gva == 0 && empty_ok) {
        path[0] = 0;                /* Linux 6.11+ takes NULL for an empty path */
    } else {
        long n = fs_read_path(p, path_gva, path);
        if (n < 0)
            return n;
    }
    if (path[0] == 0) {
        if (!empty_ok)
            return -ENOENT;
        if (dirfd != AT_FDCWD)
            return fs_host_fd(p, dirfd);
        strcpy(path, ".");
    }
    *owned = true;
    return fs_open_path(p, dirfd, path, O_PATH | (nofollow ? O_NOFOLLOW : 0), 0, FSP_LOOK);
}

static long stat_at(struct lx_proc *p, int dirfd, uint64_t path_gva, uint64_t buf_gva,
                    int flags)
{
    if (flags & ~(AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT | AT_EMPTY_PATH))
        return -EINVAL;
    bool owned;
    long fd = path_fd(p, dirfd, path_gva, flags & AT_SYMLINK_NOFOLLOW, flags & AT_EMPTY_PATH,
                      &owned);
    if (fd < 0)
        return fd;
    struct stat st;
    int err = fstat((int)fd, &st) < 0 ? -errno : 0;
    if (owned)
        close((int)fd);
    return err ? err : gm_write(p->vm, buf_gva, &st, sizeof st);
}

long sys_newfstatat(struct lx_proc *p, const uint64_t a[6])
{
    return stat_at(p, dirfd_arg(a[0]), a[1], a[2], (int)(uint32_t)a[3]);
}

long sys_stat(struct lx_proc *p, const uint64_t a[6])
{
    return stat_at(p, AT_FDCWD, a[0], a[1], 0);
}

long sys_lstat(struct lx_proc *p, const uint64_t a[6])
{
    return stat_at(p, AT_FDCWD, a[0], a[1], AT_SYMLINK_NOFOLLOW);
}

long sys_statx(struct lx_proc *p, const uint64_t a[6])
{
    int flags = (int)(uint32_t)a[2];
    unsigned mask = (uint32_t)a[3];
    if (flags & ~(AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT | AT_EMPTY_PATH | AT_STATX_SYNC_TYPE))
        return -EINVAL;
    if ((flags & AT_STATX_SYNC_TYPE) == AT_STATX_SYNC_TYPE)
        return -EINVAL;
    if (mask & STATX__RESERVED)
        return -EINVAL;
    bool owned;
    long fd = path_fd(p, dirfd_arg(a[0]), a[1], flags & AT_SYMLINK_NOFOLLOW,
                      flags & AT_EMPTY_PATH, &owned);
    if (fd < 0)
        return fd;
    struct statx stx;
    int err = statx((int)fd, "", AT_EMPTY_PATH | (flags & AT_STATX_SYNC_TYPE), mask, &stx) < 0
                  ? -errno : 0;
    if (owned)
        close((int)fd);
    return err ? err : gm_write(p->vm, a[4], &stx, sizeof stx);
}

static long access_at(struct lx_proc *p, int dirfd, uint64_t path_gva, unsigned mode,
                      int flags)
{
    if (mode & ~(unsigned)(R_OK | W_OK | X_OK))
        return -EINVAL;
    if (flags & ~(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH))
        return -EINVAL;
    char path[PATH_MAX];
    long n = fs_read_path(p, path_gva, path);
    if (n < 0)
        return n;
    int need = (mode & W_OK ? FSP_WRITE : 0) | (mode & (R_OK | X_OK) ? FSP_READ : 0);
    long fd;
    bool owned = true;
    if (n == 0 && (flags & AT_EMPTY_PATH) && dirfd != AT_FDCWD) {
        fd = fs_host_fd(p, dirfd);
        owned = false;
    } else {
        fd = fs_open_path(p, dirfd, n ? path : ".",
                          O_PATH | (flags & AT_SYMLINK_NOFOLLOW ? O_NOFOLLOW : 0), 0,
                          need ? need : FSP_LOOK);
    }
    if (fd < 0)
        return fd;
    long r = syscall(SYS_faccessat2, (int)fd, "", mode, AT_EMPTY_PATH | (flags & AT_EACCESS));
    long err = r < 0 ? -errno : 0;
    if (owned)
        close((int)fd);
    return err;
}

long sys_access(struct lx_proc *p, const uint64_t a[6])
{
    return access_at(p, AT_FDCWD, a[0], (uint32_t)a[1], 0);
}

long sys_faccessat(struct lx_proc *p, const uint64_t a[6])
{
    return access_at(p, dirfd_arg(a[0]), a[1], (uint32_t)a[2], 0);
}

long sys_faccessat2(struct lx_proc *p, const uint64_t a[6])
{
    return access_at(p, dirfd_arg(a[0]), a[1], (uint32_t)a[2], (int)(uint32_t)a[3]);
}

/* ------------------------------------------------------------------ readlink */

static long readlink_path(struct lx_proc *p, const char *base, const char *path, char *buf,
                          size_t cap, int depth)
{
    struct fsp_result r;
    int err = fsp_open(fs_policy(p), p->task.root, base, path, O_PATH | O_NOFOLLOW, 0,
                       FSP_LOOK, &r);
    if (err) {
        if (r.denied)
            log_denied(&r, base, path, FSP_LOOK);
        return err;
    }
    if (!r.pseudo) {
        ssize_t n = readlinkat(r.fd, "", buf, cap);
        int e = errno;
        close(r.fd);
        if (n < 0)
            return e == ENOENT ? -EINVAL : -e;     /* "" on a non-link: not a link */
        return n;
    }
    struct pfs_node node;
    if (strcmp(r.guest, "/proc/self") != 0 && strcmp(r.guest, "/proc/thread-self") != 0) {
        err = pfs_lookup(p, r.guest, &node);
        if (err)
            return err;
        /* "/proc/self/cwd/x": x itself, wherever the link leads. */
        if (node.kind == PFS_LINK && strcmp(node.target, node.link_text) != 0)
            return depth >= MAX_PSEUDO_LINKS ? -ELOOP
                                             : readlink_path(p, "/", node.target, buf, cap,
                                                             depth + 1);
    }
    return pfs_readlink(p, r.guest, buf, cap);
}

static long readlink_at(struct lx_proc *p, int dirfd, uint64_t path_gva, uint64_t buf_gva,
                        uint64_t bufsiz_reg)
{
    int bufsiz = (int)(uint32_t)bufsiz_reg;
    if (bufsiz <= 0)
        return -EINVAL;
    char path[PATH_MAX], abs[PATH_MAX], target[PATH_MAX];
    long n = fs_read_name(p, path_gva, path);
    if (n < 0)
        return n;
    n = fs_path(p, dirfd, path, abs);
    if (n < 0)
        return n;
    n = readlink_path(p, "/", abs, target, sizeof target, 0);
    if (n < 0)
        return n;
    if (n > bufsiz)
        n = bufsiz;                 /* truncated without a NUL, as Linux does */
    return gm_write(p->vm, buf_gva, target, (size_t)n) ? -EFAULT : n;
}

long sys_readlink(struct lx_proc *p, const uint64_t a[6])
{
    return readlink_at(p, AT_FDCWD, a[0], a[1], a[2]);
}

long sys_readlinkat(struct lx_proc *p, const uint64_t a[6])
{
    return readlink_at(p, dirfd_arg(a[0]), a[1], a[2], a[3]);
}

/* ------------------------------------------------------------------ working directory */

long sys_getcwd(struct lx_proc *p, const uint64_t a[6])
{
    fs_ready(p);
    char view[PATH_MAX], cwd[PATH_MAX + 16];
    bool reachable = fs_view(p, p->task.cwd, view);
    snprintf(cwd, sizeof cwd, "%s%s", reachable ? "" : "(unreachable)", view);
    size_t len = strlen(cwd) + 1;
    if (a[1] < len)
        return -ERANGE;
    if (gm_write(p->vm, a[0], cwd, len))
        return -EFAULT;
    return (long)len;
}

/* The canonical guest path of a directory the program names (chdir, chroot), checked
 * against `need`: 0, or -errno after logging a refusal. */
static long directory(struct lx_proc *p, uint64_t path_gva, int need, char canon[PATH_MAX])
{
    char path[PATH_MAX], abs[PATH_MAX];
    long n = fs_read_name(p, path_gva, path);
    if (n < 0)
        return n;
    n = fs_path(p, AT_FDCWD, path, abs);
    if (n < 0)
        return n;
    bool pseudo;
    int err = fsp_canonical(fs_policy(p), p->task.root, "/", abs, canon, &pseudo);
    if (err == -EACCES)
        fsp_log_denied(canon, need);        /* the walk left the refused path there */
    if (err)
        return err;
    if (pseudo)
        return -ENOENT;             /* no directories in the synthesized areas */
    long fd = open_from(p, "/", canon, O_PATH | O_DIRECTORY, 0, need, 0);
    if (fd < 0)
        return fd;
    close((int)fd);
    return 0;
}

long sys_chdir(struct lx_proc *p, const uint64_t a[6])
{
    char canon[PATH_MAX];
    long err = directory(p, a[0], FSP_LOOK, canon);
    if (!err)
        strcpy(p->task.cwd, canon);
    return err;
}

/* A chroot into a directory the policy lets the program read: from then on its absolute
 * paths, and ".." at the new root, stay beneath it (fs_path), as on Linux. The working
 * directory stays where it is. Part of the task, so a fork inherits it and a reset undoes
 * what a request did. */
long sys_chroot(struct lx_proc *p, const uint64_t a[6])
{
    char canon[PATH_MAX];
    long err = directory(p, a[0], FSP_READ, canon);
    if (!err)
        strcpy(p->task.root, strcmp(canon, "/") ? canon : "");
    return err;
}

long sys_fchdir(struct lx_proc *p, const uint64_t a[6])
{
    long host = fs_dir_host_fd(p, (uint32_t)a[0]);
    if (host < 0)
        return host;
    fs_ready(p);
    char guest[PATH_MAX];
    int err = fsp_guest_path_of_fd(fs_policy(p), (int)host, guest);
    if (err)
        return err;
    strcpy(p->task.cwd, guest);
    return 0;
}

long sys_umask(struct lx_proc *p, const uint64_t a[6])
{
    fs_ready(p);
    unsigned old = p->task.umask;
    p->task.umask = (unsigned)a[0] & 0777;
    return old;
}
