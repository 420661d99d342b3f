/* The file-system permission policy: building the roots, matching guest paths against them
 * and opening beneath them (see policy.h for the design). */
#include "linux/policy.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "base/log.h"
#include "linux/counters.h"
#include "vm/elf.h"

#define MAX_SYMLINKS 40     /* Linux's limit on symlinks followed in one resolution */

#ifndef BPF_FS_MAGIC
#define BPF_FS_MAGIC 0xcafe4a11
#endif
#ifndef TRACEFS_MAGIC
#define TRACEFS_MAGIC 0x74726163
#endif

/* ------------------------------------------------------------------ path strings */

int fsp_push_component(char *out, size_t cap, size_t *out_len, const char *name, size_t n)
{
    size_t len = *out_len;
    if (n == 0 || (n == 1 && name[0] == '.'))
        return 0;
    if (n == 2 && name[0] == '.' && name[1] == '.') {
        while (len > 0 && out[len - 1] != '/')
            len--;
        if (len > 0)
            len--;
    } else {
        if (len + 1 + n >= cap)
            return -ENAMETOOLONG;
        out[len++] = '/';
        memcpy(out + len, name, n);
        len += n;
    }
    out[len] = 0;
    *out_len = len;
    return 0;
}

/* Appends the components of `path` to out (which holds out_len bytes of a normalised
 * absolute path, "" for "/"), dropping empty and "." components and, with `dotdot`,
 * resolving ".." lexically (without, ".." is kept as a name). */
static int append_components(char *out, size_t cap, size_t *out_len, const char *path,
                             bool dotdot)
{
    const char *s = path;
    out[*out_len] = 0;
    while (*s) {
        while (*s == '/')
            s++;
        if (!*s)
            break;
        const char *end = strchrnul(s, '/');
        size_t n = (size_t)(end - s);
        int err;
        if (!dotdot && n == 2 && s[0] == '.' && s[1] == '.') {
            /* kept as a name: push it by hand, as the helper would resolve it */
            if (*out_len + 3 >= cap)
                return -ENAMETOOLONG;
            memcpy(out + *out_len, "/..", 4);
            *out_len += 3;
            err = 0;
        } else {
            err = fsp_push_component(out, cap, out_len, s, n);
        }
        if (err)
            return err;
        s = end;
    }
    return 0;
}

static int finish_path(char *out, size_t cap, size_t len)
{
    if (len == 0) {
        if (cap < 2)
            return -ENAMETOOLONG;
        strcpy(out, "/");
    }
    return 0;
}

int fsp_absolute(char *out, size_t cap, const char *base, const char *path)
{
    if (cap == 0)
        return -ENAMETOOLONG;
    if (!path[0])
        return -ENOENT;
    size_t len = 0;
    out[0] = 0;
    int err = 0;
    if (path[0] != '/')
        err = append_components(out, cap, &len, base, false);
    if (!err)
        err = append_components(out, cap, &len, path, false);
    return err ? err : finish_path(out, cap, len);
}

int fsp_lexical(char *out, size_t cap, const char *abs_path)
{
    if (cap == 0)
        return -ENAMETOOLONG;
    size_t len = 0;
    out[0] = 0;
    int err = append_components(out, cap, &len, abs_path, true);
    return err ? err : finish_path(out, cap, len);
}

static bool first_component_is(const char *abs_path, const char *name)
{
    size_t n = strlen(name);
    return abs_path[0] == '/' && strncmp(abs_path + 1, name, n) == 0 &&
           (abs_path[1 + n] == 0 || abs_path[1 + n] == '/');
}

bool fsp_is_pseudo(const char *abs_path)
{
    return first_component_is(abs_path, "proc") || first_component_is(abs_path, "sys");
}

/* Whether `path` is `prefix` or lies below it (both normalised, absolute). */
static bool covers(const char *prefix, size_t prefix_len, const char *path)
{
    if (prefix_len == 1)            /* "/" */
        return true;
    return strncmp(path, prefix, prefix_len) == 0 &&
           (path[prefix_len] == 0 || path[prefix_len] == '/');
}

const struct fsp_root *fsp_match(const struct fs_policy *pol, const char *path,
                                 const char **rel)
{
    const struct fsp_root *best = NULL;
    for (size_t i = 0; i < pol->nroots; i++) {
        const struct fsp_root *r = &pol->roots[i];
        if (best && r->guest_len <= best->guest_len)
            continue;
        /* (Below a file root nothing exists: opening there gives ENOTDIR, as on Linux.) */
        if (covers(r->guest, r->guest_len, path))
            best = r;
    }
    if (best && rel) {
        const char *tail = path + (best->guest_len == 1 ? 1 : best->guest_len);
        while (*tail == '/')
            tail++;
        *rel = *tail ? tail : ".";
    }
    return best;
}

bool fsp_is_ancestor(const struct fs_policy *pol, const char *path)
{
    size_t n = strlen(path);
    for (size_t i = 0; i < pol->nroots; i++) {
        const struct fsp_root *r = &pol->roots[i];
        if (r->guest_len > n && covers(path, n, r->guest))
            return true;
    }
    return false;
}

bool fsp_grants(const struct fsp_root *root, int need)
{
    if ((need & FSP_READ) && !root->read)
        return false;
    if ((need & FSP_WRITE) && !root->write)
        return false;
    if ((need & FSP_LOOK) && !root->read && !root->write)
        return false;
    return true;
}

/* ------------------------------------------------------------------ building the roots */

static int add_root(struct fs_policy *pol, const char *guest, const char *host, bool read,
                    bool write, bool volume, FILE *log, const char *what)
{
    int fd = open(host, O_PATH | O_CLOEXEC);
    if (fd < 0) {
        if (log && what)
            fprintf(log, "kvmserver: note: %s path %s: %s; ignored\n", what, host,
                    strerror(errno));
        return 0;
    }
    if (fd < 3) {                   /* keep the host's stdio numbers free */
        int moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        close(fd);
        if (moved < 0)
            return -1;
        fd = moved;
    }
    struct stat st;
    char canon[PATH_MAX], norm[PATH_MAX];
    if (fstat(fd, &st) < 0 || !realpath(host, canon) || fsp_lexical(norm, sizeof norm, guest)) {
        close(fd);
        return 0;
    }
    struct fsp_root *grown = realloc(pol->roots, (pol->nroots + 1) * sizeof *grown);
    if (!grown) {
        close(fd);
        return -1;
    }
    pol->roots = grown;
    struct fsp_root *r = &pol->roots[pol->nroots];
    *r = (struct fsp_root){ .guest = strdup(norm), .host = strdup(canon), .fd = fd,
                            .dir = S_ISDIR(st.st_mode), .read = read, .write = write,
                            .volume = volume };
    if (!r->guest || !r->host) {
        free(r->guest);
        free(r->host);
        close(fd);
        return -1;
    }
    r->guest_len = strlen(r->guest);
    pol->nroots++;
    /* The guest sees host paths as they are: a root named through a symlink (/lib on a
     * merged-/usr system) is reachable under its real name too. */
    if (!volume && strcmp(norm, canon) != 0 && strcmp(canon, "/") != 0)
        return add_root(pol, canon, canon, read, write, false, NULL, NULL);
    return 0;
}

static int absolute_host(char out[PATH_MAX], const char *path)
{
    char cwd[PATH_MAX];
    if (path[0] != '/' && !getcwd(cwd, sizeof cwd))
        return -1;
    return fsp_absolute(out, PATH_MAX, path[0] == '/' ? "/" : cwd, path) ? -1 : 0;
}

static int add_identity(struct fs_policy *pol, const char *path, bool read, bool write,
                        FILE *log, const char *what)
{
    char abs[PATH_MAX];
    if (absolute_host(abs, path) < 0) {
        if (log)
            fprintf(log, "kvmserver: note: %s path %s is too long; ignored\n", what, path);
        return 0;
    }
    return add_root(pol, abs, abs, read, write, false, log, what);
}

/* HOST:GUEST[:r|rw] (the option parser has checked the shape). */
static int add_volume(struct fs_policy *pol, const char *spec, FILE *log)
{
    char buf[2 * PATH_MAX];
    if (strlen(spec) >= sizeof buf) {
        fprintf(log, "kvmserver: --volume %s: too long\n", spec);
        return -1;
    }
    strcpy(buf, spec);
    char *guest = strchr(buf, ':');
    if (!guest)
        return -1;
    *guest++ = 0;
    char *mode = strchr(guest, ':');
    bool write = false;
    if (mode) {
        *mode++ = 0;
        write = strcmp(mode, "rw") == 0;
    }
    if (guest[0] != '/') {
        fprintf(log, "kvmserver: --volume %s: the guest path must be absolute\n", spec);
        return -1;
    }
    char host[PATH_MAX];
    if (absolute_host(host, buf) < 0) {
        fprintf(log, "kvmserver: --volume %s: host path too long\n", spec);
        return -1;
    }
    if (access(host, F_OK) < 0) {
        fprintf(log, "kvmserver: --volume %s: %s: %s\n", spec, host, strerror(errno));
        return -1;
    }
    return add_root(pol, guest, host, true, write, true, log, "--volume");
}

/* The program's ELF interpreter, which the loader maps and which reads itself. */
static void add_interpreter(struct fs_policy *pol, const char *program)
{
    int fd = open(program, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
        void *image = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (image != MAP_FAILED) {
            struct elf_info info;
            char err[128];
            if (elf_parse(image, (size_t)st.st_size, UINT64_MAX, &info, err, sizeof err) == 0 &&
                info.has_interp && info.interp[0] == '/')
                add_identity(pol, info.interp, true, false, NULL, NULL);
            munmap(image, (size_t)st.st_size);
        }
    }
    close(fd);
}

/* An identity root gets the rights of every identity root it lies in (--allow-read=/ and
 * --allow-write=/tmp: /tmp is read-write). A volume has its own mode only. */
static void inherit_rights(struct fs_policy *pol)
{
    for (size_t i = 0; i < pol->nroots; i++) {
        struct fsp_root *r = &pol->roots[i];
        if (r->volume)
            continue;
        for (size_t j = 0; j < pol->nroots; j++) {
            const struct fsp_root *a = &pol->roots[j];
            bool inside = a->dir ? covers(a->guest, a->guest_len, r->guest)
                                 : strcmp(a->guest, r->guest) == 0;
            if (a->volume || !inside)
                continue;
            r->read |= a->read;
            r->write |= a->write;
        }
    }
}

int fsp_init(struct fs_policy *pol, const struct fsp_rules *rules, FILE *log)
{
    memset(pol, 0, sizeof *pol);
    int err = 0;
    if (rules->allow_all)
        err |= add_identity(pol, "/", true, true, log, "--allow-all");
    for (size_t i = 0; i < rules->read.count; i++)
        err |= add_identity(pol, rules->read.items[i], true, false, log, "--allow-read");
    for (size_t i = 0; i < rules->write.count; i++)
        err |= add_identity(pol, rules->write.items[i], false, true, log, "--allow-write");
    for (size_t i = 0; i < rules->volumes.count && !err; i++)
        err |= add_volume(pol, rules->volumes.items[i], log);
    /* Always allowed, as the anchor allows them. */
    err |= add_identity(pol, "/dev/null", true, true, NULL, NULL);
    err |= add_identity(pol, "/dev/zero", true, true, NULL, NULL);
    err |= add_identity(pol, "/dev/urandom", true, false, NULL, NULL);
    err |= add_identity(pol, "/dev/random", true, false, NULL, NULL);
    if (rules->program) {
        err |= add_identity(pol, rules->program, true, false, NULL, NULL);
        add_interpreter(pol, rules->program);
    }
    if (err) {
        fsp_destroy(pol);
        return -1;
    }
    inherit_rights(pol);
    return 0;
}

void fsp_destroy(struct fs_policy *pol)
{
    for (size_t i = 0; i < pol->nroots; i++) {
        close(pol->roots[i].fd);
        free(pol->roots[i].guest);
        free(pol->roots[i].host);
    }
    free(pol->roots);
    memset(pol, 0, sizeof *pol);
}

/* ------------------------------------------------------------------ opening */

/* File systems whose files are the host kernel's view of the host (or its controls). */
static bool on_host_kernel_fs(int fd)
{
    struct statfs s;
    if (fstatfs(fd, &s) < 0)
        return true;                /* unknown: refuse */
    switch ((unsigned long)s.f_type) {
    case PROC_SUPER_MAGIC: case SYSFS_MAGIC: case DEBUGFS_MAGIC: case TRACEFS_MAGIC:
    case SECURITYFS_MAGIC: case BPF_FS_MAGIC: case CGROUP_SUPER_MAGIC: case CGROUP2_SUPER_MAGIC:
    case SELINUX_MAGIC: case SMACK_MAGIC: case PSTOREFS_MAGIC: case EFIVARFS_MAGIC:
    case NSFS_MAGIC: case BINFMTFS_MAGIC:
        return true;
    default:
        return false;
    }
}

/* The host open beneath one root. A file root is reopened through the host's own magic link
 * to its O_PATH fd: the same inode it named at start-up, whatever happened to the path. */
static int open_beneath(const struct fsp_root *r, const char *rel, int flags, unsigned mode,
                        bool no_symlinks)
{
    if (!r->dir) {
        if (strcmp(rel, ".") != 0) {
            errno = ENOTDIR;
            return -1;
        }
        if (flags & O_PATH)
            return fcntl(r->fd, F_DUPFD_CLOEXEC, 3);
        char link[64];
        snprintf(link, sizeof link, "/proc/self/fd/%d", r->fd);
        int fd;
        do
            fd = open(link, (flags & ~(O_NOFOLLOW | O_TMPFILE)) | O_CLOEXEC, mode);
        while (fd < 0 && errno == EINTR);
        return fd;
    }
    struct open_how how = {
        .flags = (uint64_t)(unsigned)(flags | O_CLOEXEC),
        .mode = (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? mode & 07777 : 0,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS |
                   (no_symlinks ? RESOLVE_NO_SYMLINKS : 0),
    };
    long fd;
    do
        fd = syscall(SYS_openat2, r->fd, rel, &how, sizeof how);
    while (fd < 0 && (errno == EINTR || errno == EAGAIN));
    return (int)fd;
}

/* A refusal: `where` is the guest path that no root allows (for the log). */
static int deny(struct fsp_result *out, const char *where)
{
    out->denied = true;
    if (fsp_lexical(out->guest, sizeof out->guest, where))
        snprintf(out->guest, sizeof out->guest, "%s", where);
    return -EACCES;
}

/* Expands the symlinks of an absolute guest path from the left, each one's text taken as a
 * guest path, so that what follows is opened beneath whichever root covers the target.
 * With follow_last false the last component stays as it is. On a refusal (*denied) `out`
 * holds the guest path that no root allows. */
static int walk(const struct fs_policy *pol, const char *proc_root, const char *abs_path,
                bool follow_last, char out[PATH_MAX], bool *pseudo, bool *denied)
{
    size_t root_len = proc_root ? strlen(proc_root) : 0;
    char todo[PATH_MAX], done[PATH_MAX], next[PATH_MAX];
    if (strlen(abs_path) >= sizeof todo)
        return -ENAMETOOLONG;
    strcpy(todo, abs_path);
    const char *rest = todo;
    size_t done_len = 0;
    done[0] = 0;
    int links = 0;
    *pseudo = false;
    for (;;) {
        while (*rest == '/')
            rest++;
        if (!*rest)
            break;
        const char *end = strchrnul(rest, '/');
        size_t n = (size_t)(end - rest);
        const char *after = end;
        while (*after == '/')
            after++;
        bool last = *after == 0;
        if (n == 1 && rest[0] == '.') {
            rest = end;
            continue;
        }
        if (n == 2 && rest[0] == '.' && rest[1] == '.') {
            if (root_len && done_len == root_len && memcmp(done, proc_root, root_len) == 0) {
                rest = end;         /* ".." at the process's root stays there */
                continue;
            }
            while (done_len > 0 && done[done_len - 1] != '/')
                done_len--;
            if (done_len > 0)
                done_len--;
            done[done_len] = 0;
            rest = end;
            continue;
        }
        if (done_len + 1 + n >= sizeof done)
            return -ENAMETOOLONG;
        size_t parent_len = done_len;
        done[done_len++] = '/';
        memcpy(done + done_len, rest, n);
        done_len += n;
        done[done_len] = 0;
        rest = end;

        if (parent_len == 0 && fsp_is_pseudo(done)) {
            /* /proc and /sys are synthesized: the rest is theirs to resolve. */
            if ((size_t)snprintf(next, sizeof next, "%s%s", done, rest) >= sizeof next)
                return -ENAMETOOLONG;
            *pseudo = true;
            return fsp_absolute(out, PATH_MAX, "/", next);
        }
        const char *rel;
        const struct fsp_root *root = fsp_match(pol, done, &rel);
        if (!root) {
            if (fsp_is_ancestor(pol, done))
                continue;           /* passing through towards a root */
            *denied = true;
            if ((size_t)snprintf(next, sizeof next, "%s%s", done, rest) >= sizeof next ||
                fsp_lexical(out, PATH_MAX, next))
                snprintf(out, PATH_MAX, "%s", done);
            return -EACCES;
        }
        if ((last && !follow_last) || !root->dir)
            continue;               /* a file root's own links were followed at start-up */
        int fd = open_beneath(root, rel, O_PATH | O_NOFOLLOW, 0, true);
        if (fd < 0) {
            if (errno == ENOENT && last)
                break;              /* about to be created */
            return -errno;
        }
        struct stat st;
        if (fstat(fd, &st) < 0 || !S_ISLNK(st.st_mode)) {
            close(fd);
            continue;
        }
        char target[PATH_MAX];
        ssize_t len = readlinkat(fd, "", target, sizeof target - 1);
        close(fd);
        if (len < 0)
            return -errno;
        if (len == 0)
            return -ENOENT;
        target[len] = 0;
        if (++links > MAX_SYMLINKS)
            return -ELOOP;
        if (target[0] == '/') {     /* from the process's root */
            done_len = root_len;
            if (root_len)
                memcpy(done, proc_root, root_len);
        } else {
            done_len = parent_len;
        }
        done[done_len] = 0;
        if ((size_t)snprintf(next, sizeof next, "%s/%s", target, rest) >= sizeof next)
            return -ENAMETOOLONG;
        strcpy(todo, next);
        rest = todo;
    }
    snprintf(out, PATH_MAX, "%s", done_len ? done : "/");
    return 0;
}

static int open_resolved(const struct fs_policy *pol, const char *root, const char *abs_path,
                         int flags, unsigned mode, int need, struct fsp_result *out,
                         bool walked)
{
    if (fsp_is_pseudo(abs_path)) {
        out->pseudo = true;
        snprintf(out->guest, sizeof out->guest, "%s", abs_path);
        return 0;
    }
    const char *rel;
    const struct fsp_root *r = fsp_match(pol, abs_path, &rel);
    /* Not covered, or covered without the right: a symlink may still lead somewhere that
     * is; only the walked path is final. After a chroot every path is walked first: its
     * symlinks resolve from the process's root, which the host's openat2 does not know. */
    if (walked || !root || !root[0]) {
        if (r && fsp_grants(r, need)) {
            int fd = open_beneath(r, rel, flags, mode, walked);
            if (fd >= 0 && on_host_kernel_fs(fd)) {
                close(fd);
                if (walked)
                    return deny(out, abs_path);
            } else if (fd >= 0) {
                out->fd = fd;
                out->root = r;
                snprintf(out->guest, sizeof out->guest, "%s", abs_path);
                return 0;
            } else if (errno != EXDEV || walked) {
                return -errno;
            }
        } else if (walked) {
            return deny(out, abs_path);
        }
    }
    char canon[PATH_MAX];
    bool follow_last = !(flags & O_NOFOLLOW) && (flags & (O_CREAT | O_EXCL)) != (O_CREAT | O_EXCL);
    int err = walk(pol, root, abs_path, follow_last, canon, &out->pseudo, &out->denied);
    if (err) {
        if (out->denied)
            strcpy(out->guest, canon);
        return err;
    }
    if (out->pseudo) {
        strcpy(out->guest, canon);
        return 0;
    }
    return open_resolved(pol, root, canon, flags, mode, need, out, true);
}

static void result_init(struct fsp_result *out)
{
    out->fd = -1;
    out->pseudo = out->denied = false;
    out->root = NULL;
    out->guest[0] = 0;
}

int fsp_open(const struct fs_policy *pol, const char *root, const char *base, const char *path,
             int flags, unsigned mode, int need, struct fsp_result *out)
{
    result_init(out);
    char abs[PATH_MAX];
    int err = fsp_absolute(abs, sizeof abs, base, path);
    if (err)
        return err;
    size_t len = strlen(path);
    if (path[len - 1] == '/' && strcmp(abs, "/") != 0) {
        if (flags & O_CREAT)
            return -EISDIR;
        flags |= O_DIRECTORY;       /* "name/" must be a directory */
    }
    return open_resolved(pol, root, abs, flags, mode, need, out, false);
}

int fsp_open_parent(const struct fs_policy *pol, const char *root, const char *base,
                    const char *path, int need, struct fsp_result *out,
                    char name[NAME_MAX + 1])
{
    result_init(out);
    char abs[PATH_MAX];
    int err = fsp_absolute(abs, sizeof abs, base, path);
    if (err)
        return err;
    if (strcmp(abs, "/") == 0)
        return -EBUSY;
    char *slash = strrchr(abs, '/');
    const char *last = slash + 1;
    if (strcmp(last, ".") == 0 || strcmp(last, "..") == 0)
        return -EINVAL;
    if (strlen(last) > NAME_MAX)
        return -ENAMETOOLONG;
    strcpy(name, last);
    if (fsp_is_pseudo(abs)) {
        out->pseudo = true;
        strcpy(out->guest, abs);
        return 0;
    }
    if (slash == abs)
        slash[1] = 0;               /* the parent is "/" */
    else
        *slash = 0;
    err = open_resolved(pol, root, abs, O_PATH | O_DIRECTORY, 0, need, out, false);
    if (err || out->pseudo) {
        if (out->pseudo)            /* "/proc/x/.." style parents: name the whole path */
            snprintf(out->guest + strlen(out->guest), sizeof out->guest - strlen(out->guest),
                     "/%s", name);
        return err;
    }
    /* The mount point of another root cannot be renamed or removed from its parent. */
    char full[PATH_MAX];
    if ((size_t)snprintf(full, sizeof full, "%s/%s", strcmp(out->guest, "/") ? out->guest : "",
                         name) >= sizeof full) {
        close(out->fd);
        out->fd = -1;
        return -ENAMETOOLONG;
    }
    const struct fsp_root *r = fsp_match(pol, full, NULL);
    if ((need & FSP_WRITE) && r && r != out->root && strcmp(r->guest, full) == 0) {
        close(out->fd);
        out->fd = -1;
        return -EBUSY;
    }
    return 0;
}

int fsp_canonical(const struct fs_policy *pol, const char *root, const char *base,
                  const char *path, char out[PATH_MAX], bool *pseudo)
{
    char abs[PATH_MAX];
    int err = fsp_absolute(abs, sizeof abs, base, path);
    if (err)
        return err;
    bool denied = false;
    return walk(pol, root, abs, true, out, pseudo, &denied);
}

int fsp_guest_path_of_fd(const struct fs_policy *pol, int host_fd, char out[PATH_MAX])
{
    char link[64], host[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", host_fd);
    ssize_t n = readlink(link, host, sizeof host - 1);
    if (n < 0)
        return -errno;
    host[n] = 0;
    if (host[0] != '/')
        return -ENOTDIR;
    static const char deleted[] = " (deleted)";
    if ((size_t)n >= sizeof deleted - 1 && strcmp(host + n - (sizeof deleted - 1), deleted) == 0)
        return -ENOENT;
    /* Inside a volume: its guest path. Elsewhere guest paths are host paths. */
    const struct fsp_root *best = NULL;
    size_t best_len = 0;
    for (size_t i = 0; i < pol->nroots; i++) {
        const struct fsp_root *r = &pol->roots[i];
        size_t len = strlen(r->host);
        if (r->volume && len >= best_len && covers(r->host, len, host) &&
            (r->dir || host[len] == 0)) {
            best = r;
            best_len = len;
        }
    }
    if (!best) {
        strcpy(out, host);
        return 0;
    }
    const char *tail = host + (best_len == 1 ? 0 : best_len);
    char joined[PATH_MAX];
    if ((size_t)snprintf(joined, sizeof joined, "%s/%s", best->guest, tail) >= sizeof joined)
        return -ENAMETOOLONG;
    return fsp_lexical(out, PATH_MAX, joined);
}

/* ------------------------------------------------------------------ logging */

void fsp_log_denied(const char *guest_path, int need)
{
    /* 64: a dynamic loader probing its search path is enough. */
    static struct log_once logged = LOG_ONCE_INIT(64);
    lx_count_denied((need & FSP_WRITE) ? LX_DENIED_WRITE : LX_DENIED_READ);
    char key[PATH_MAX + 2];
    snprintf(key, sizeof key, "%c%s", (need & FSP_WRITE) ? 'W' : 'R', guest_path);
    switch (log_once(&logged, key, strlen(key))) {
    case LOG_ONCE_FIRST: {
        const char *flag = (need & FSP_WRITE) ? "--allow-write" : "--allow-read";
        const char *kind = (need & FSP_WRITE) ? "write" : "read";
        char shown[4 * PATH_MAX], fields[sizeof shown + 32];
        log_escape(shown, sizeof shown, guest_path, strlen(guest_path));
        snprintf(fields, sizeof fields, "kind=%s path=\"%s\"", kind, shown);
        log_event(LOG_LEVEL_WARN, "denied", fields, "denied %s of %s (allow with %s=%s)", kind,
                  shown, flag, shown);
        break;
    }
    case LOG_ONCE_FULL:
        log_warn("further denials are not logged");
        break;
    case LOG_ONCE_SEEN:
        break;
    }
}
