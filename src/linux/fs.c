/* Opening files. Until the file-system policy lands (--allow-read/--allow-write), only the
 * device files every program may use are reachable; everything else is denied. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "linux/process.h"
#include "linux/syscalls.h"
#include "vm/guest_mem.h"

/* Always allowed, as the anchor allows them: harmless, and needed by common libraries. */
static const char *const always_allowed[] = { "/dev/null", "/dev/zero", "/dev/urandom",
                                              "/dev/random" };

/* Flags the host open may see: no O_PATH tricks, no O_TMPFILE, no creating anything. */
#define OPEN_FLAGS_PASSED (O_ACCMODE | O_NONBLOCK | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | \
                           O_DIRECTORY | O_APPEND)

static long open_path(struct lx_proc *p, uint64_t path_ptr, int flags)
{
    char path[PATH_MAX];
    long len = gm_read_str(p->vm, path, path_ptr, sizeof path);
    if (len < 0)
        return len;
    if (len == 0)
        return -ENOENT;
    for (size_t i = 0; i < sizeof always_allowed / sizeof always_allowed[0]; i++) {
        if (strcmp(path, always_allowed[i]))
            continue;
        int host = open(path, (flags & OPEN_FLAGS_PASSED) | O_CLOEXEC);
        if (host < 0)
            return -errno;
        int fd = fdt_install(&p->fds, host, 0, flags & O_CLOEXEC);
        if (fd < 0)
            close(host);
        return fd;
    }
    static bool told;
    if (!told) {
        told = true;
        fprintf(stderr, "kvmserver: file system access is not implemented yet: open of %s "
                "denied (further denials are not logged)\n", path);
    }
    return -EACCES;
}

long sys_open(struct lx_proc *p, const uint64_t a[6])
{
    return open_path(p, a[0], (int)a[1]);
}

long sys_openat(struct lx_proc *p, const uint64_t a[6])
{
    /* dirfd only matters for relative paths, which are denied anyway for now. */
    return open_path(p, a[1], (int)a[2]);
}
