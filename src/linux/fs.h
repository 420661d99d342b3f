/* Shared by the file-system calls (fs*.c, io.c, procfs.c): the guest's working directory,
 * guest path arguments and the policy-checked open that every path-taking call goes through. */
#ifndef KVMS_FS_H
#define KVMS_FS_H
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "linux/fs_task.h"
#include "linux/policy.h"

struct lx_proc;

/* Copies a guest path argument: its length, -EFAULT or -ENAMETOOLONG. */
long fs_read_path(struct lx_proc *p, uint64_t gva, char out[PATH_MAX]);
/* The same, for calls where an empty path is an error: -ENOENT for "". */
long fs_read_name(struct lx_proc *p, uint64_t gva, char out[PATH_MAX]);
/* A guest path argument as the policy sees it: made absolute against the directory of
 * `dirfd` (p->task.cwd for AT_FDCWD; -EBADF, -ENOTDIR), or against p->task.root after a
 * chroot when it is absolute. ".." is kept for the policy's walk, which stops it at the
 * root; a trailing '/' is kept. 0, or -ENAMETOOLONG / -ENOENT (""). */
long fs_path(struct lx_proc *p, int dirfd, const char *path, char out[PATH_MAX]);

/* Opens a guest path the way the guest's open would, /proc and /sys included: a host fd
 * (close-on-exec) or -errno; policy refusals are logged. */
long fs_open_path(struct lx_proc *p, int dirfd, const char *path, int flags, unsigned mode,
                  int need);
/* fs_open_path for a path still in guest memory (fs_read_name first). */
long fs_open_name(struct lx_proc *p, int dirfd, uint64_t path_gva, int flags, unsigned mode,
                  int need);
/* The host fd of a guest fd that must name a directory: -EBADF, -ENOTDIR. */
long fs_dir_host_fd(struct lx_proc *p, long guest_fd);
/* The parent directory of a guest path for a call that changes or reads the entry itself:
 * host O_PATH fd in res->fd and the last component in name; paths in /proc and /sys give
 * res->pseudo (no fd). Refusals are logged. */
long fs_open_parent(struct lx_proc *p, int dirfd, const char *path, int need,
                    struct fsp_result *res, char name[NAME_MAX + 1]);

/* A guest fd's host fd, or -EBADF. */
long fs_host_fd(struct lx_proc *p, long guest_fd);

/* fs_fd.c: fcntl's lock commands (F_GETLK, F_SETLK(W), F_OFD_*) on a host fd. */
long fs_fcntl_lock(struct lx_proc *p, int host_fd, unsigned cmd, uint64_t arg);

#endif
