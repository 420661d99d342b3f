/* The file-system permission policy (--allow-read, --allow-write, --allow-all, --volume) and
 * the resolution of guest paths to host files under it.
 *
 * Every allowed tree is a "root": a guest path plus an O_PATH fd the host opened once, at
 * start-up, on what the user named. A guest path is opened relative to the fd of the deepest
 * root that covers it, with openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS): the kernel
 * itself keeps `..` and symlinks inside that root, so there is no check-then-open race. A
 * symlink that leaves its root (or `..` past it) makes the kernel refuse (EXDEV); the path is
 * then walked component by component here, each symlink's text spliced in as a guest path,
 * and the result is opened beneath whichever root covers it - or denied if none does.
 * /proc and /sys are never the host's: paths there are handed to the synthesized files
 * (procfs.h), and a host fd that lands on a procfs/sysfs-like file system by any other route
 * is closed and refused. */
#ifndef KVMS_POLICY_H
#define KVMS_POLICY_H
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "base/str_list.h"

enum fsp_need {
    FSP_READ = 1,
    FSP_WRITE = 2,
    FSP_LOOK = 4,       /* metadata only (stat, access, readlink, chdir): read or write */
};

struct fsp_root {
    char *guest;            /* absolute, normalised guest path ("/" or no trailing '/') */
    size_t guest_len;
    char *host;             /* the host path it was opened as (canonical) */
    int fd;                 /* O_PATH, close-on-exec */
    bool dir;               /* a file root matches only its exact path */
    bool read, write;
    bool volume;            /* from --volume: its own mode only, shadows what is beneath */
};

struct fs_policy {
    struct fsp_root *roots;
    size_t nroots;
};

/* What the policy is built from: the command line's --allow-all, --allow-read,
 * --allow-write and --volume, and the program (which is always readable). */
struct fsp_rules {
    bool allow_all;
    struct str_list read, write, volumes;
    const char *program;        /* NULL = none */
};

/* Builds the roots from the rules: those given, the program and its ELF interpreter (read),
 * /dev/null and /dev/zero (read, write), /dev/urandom and /dev/random (read). Paths that do
 * not exist are reported on `log` and skipped. Returns 0, or -1 after a message on `log` for a
 * volume that is malformed or cannot be opened. */
int fsp_init(struct fs_policy *pol, const struct fsp_rules *rules, FILE *log);
void fsp_destroy(struct fs_policy *pol);

/* --- path strings (pure) --- */

/* `path` made absolute against the absolute directory `base`, with empty and "."
 * components removed and ".." kept. 0 or -ENAMETOOLONG / -ENOENT (empty path). */
int fsp_absolute(char *out, size_t cap, const char *base, const char *path);
/* Lexical normalisation of an absolute path, ".." included (popping at "/" stays there). */
int fsp_lexical(char *out, size_t cap, const char *abs_path);
/* The deepest root covering the absolute guest path, and the path relative to it ("." for
 * the root itself); NULL if none covers it. */
const struct fsp_root *fsp_match(const struct fs_policy *pol, const char *path,
                                 const char **rel);
/* Whether `path` is a strict ancestor of some root (a directory the guest must be able to
 * pass through to reach it). */
bool fsp_is_ancestor(const struct fs_policy *pol, const char *path);

/* Adds one path component (n bytes at name) to the normalised absolute path out of
 * *out_len bytes ("" for "/"): "" and "." change nothing, ".." drops the last component
 * (lexically). Keeps out NUL-terminated; -ENAMETOOLONG past cap. */
int fsp_push_component(char *out, size_t cap, size_t *out_len, const char *name, size_t n);

/* Whether the path names the synthesized areas: its first component is "proc" or "sys". */
bool fsp_is_pseudo(const char *abs_path);
/* Whether root grants `need`. */
bool fsp_grants(const struct fsp_root *root, int need);

/* --- resolution --- */

struct fsp_result {
    int fd;                         /* the host fd (close-on-exec), when >= 0 */
    bool pseudo;                    /* no fd: `guest` names a synthesized file (/proc, /sys) */
    bool denied;                    /* -EACCES from the policy (log it), not from the host */
    const struct fsp_root *root;    /* where it was opened */
    char guest[PATH_MAX];           /* absolute guest path (symlinks expanded if walked);
                                     * when denied: the path refused */
};

/* Opens `path` (relative paths from the absolute guest directory `base`) with the open(2)
 * flags and mode, after checking `need` against the covering root. Returns 0 with out->fd,
 * 0 with out->pseudo, or -errno (out->denied tells a policy refusal). O_CLOEXEC is always
 * added on the host. `root` is the process's root after a chroot (a canonical guest path;
 * NULL or "" = "/"): symlinks with absolute targets start there, and ".." stops there.
 * The same for the calls below. */
int fsp_open(const struct fs_policy *pol, const char *root, const char *base, const char *path,
             int flags, unsigned mode, int need, struct fsp_result *out);

/* For calls that change a directory entry (mkdir, unlink, rename, symlink) or read one
 * without following it (readlink): the parent directory opened O_PATH (out->fd) after
 * checking `need` on it, and the last component in `name`. "." and ".." as the last
 * component give -EINVAL, "/" gives -EBUSY, a root's own mount point -EBUSY. */
int fsp_open_parent(const struct fs_policy *pol, const char *root, const char *base,
                    const char *path, int need, struct fsp_result *out,
                    char name[NAME_MAX + 1]);

/* Every symlink expanded: the canonical guest path (what chdir keeps for getcwd). */
int fsp_canonical(const struct fs_policy *pol, const char *root, const char *base,
                  const char *path, char out[PATH_MAX], bool *pseudo);

/* The guest path of a host fd the guest holds (for *at calls with a dirfd, fchdir,
 * /proc/self/fd): the kernel's name for it, mapped back through the volumes. -ENOENT when
 * it was deleted, -ENOTDIR when it is no path at all (a pipe, a socket). */
int fsp_guest_path_of_fd(const struct fs_policy *pol, int host_fd, char out[PATH_MAX]);

/* "kvmserver: denied read of PATH (allow with --allow-read=PATH)", once per path. */
void fsp_log_denied(const char *guest_path, int need);

#endif
