/* Synthesized /proc and /sys: what the guest finds there describes the sandbox (pid 1, one
 * CPU, its own mappings and limits), never the host. A file's content is generated when it is
 * opened, into a memfd, so read, pread, lseek, fstat and mmap work on it unchanged. The
 * host's own /proc is never opened for the guest. */
#ifndef KVMS_PROCFS_H
#define KVMS_PROCFS_H
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

struct lx_proc;

enum pfs_kind {
    PFS_CONTENT,    /* a generated file: pfs_open_content */
    PFS_LINK,       /* a symlink (/proc/self/exe, cwd, root, /proc/self/fd/N of a path):
                     * resolve `target` as a guest path through the policy */
    PFS_GUEST_FD,   /* /proc/self/fd/N of a pipe, socket or other nameless object */
};

struct pfs_node {
    enum pfs_kind kind;
    char target[PATH_MAX];  /* PFS_LINK: the guest path (with the rest of the looked-up path
                             * appended); PFS_CONTENT: the file's normalised path */
    char link_text[PATH_MAX];   /* PFS_LINK, PFS_GUEST_FD: readlink's text ("" for a path
                                 * that only passes through /proc: "/proc/../etc") */
    int guest_fd;           /* PFS_GUEST_FD */
    bool writable;          /* PFS_CONTENT: writes are accepted and discarded (comm) */
};

/* Looks up an absolute path whose first component is /proc or /sys ("." and "//" removed,
 * ".." kept). 0, or -ENOENT for what does not exist in the sandbox, -EACCES for what is never
 * shown (mem, environ, auxv). */
int pfs_lookup(struct lx_proc *p, const char *path, struct pfs_node *out);
/* A host fd (close-on-exec) with the content of a PFS_CONTENT node, opened read-only, or
 * write-only/read-write for a writable node. -errno on failure. */
int pfs_open_content(struct lx_proc *p, const struct pfs_node *node, int flags);

/* The readlink text of a path in the synthesized area (exe, cwd, root, self, fd/N). */
long pfs_readlink(struct lx_proc *p, const char *path, char *buf, size_t cap);

#endif
