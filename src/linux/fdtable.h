/* Guest file descriptors: Linux numbering (lowest free number first, so select() works),
 * each mapped to a host fd that only this guest can reach. */
#ifndef KVMS_FDTABLE_H
#define KVMS_FDTABLE_H
#include <stdbool.h>
#include <stdint.h>

#define LX_MAX_FDS 1024

enum lx_fd_kind { LX_FD_FREE = 0, LX_FD_HOST };

/* What the host object behind an fd is, where a fork or a reset must treat it specially. */
enum lx_fd_type {
    LX_FT_OTHER = 0,    /* anything else: a fork gets its own copy where the host object
                         * allows (fdclone.c) */
    LX_FT_STDIO,        /* the host's own standard streams: shared by every fork, as a
                         * forked process shares its terminal or log */
    LX_FT_LISTENER,     /* a listening socket: shared by every fork (the kernel spreads
                         * connections over them) */
    LX_FT_CONNECTION,   /* an accepted connection */
    LX_FT_EPOLL,        /* an epoll instance: recreated per fork from its registrations */
    LX_FT_PIPE,         /* pipe/socketpair/eventfd ends */
};

struct lx_epoll;        /* linux/epoll.h: the recorded registrations of an epoll fd */
struct lx_frozen_fd;    /* fdclone.c: what a fork rebuilds an fd of the frozen master from */

/* Whether I/O on an fd can wait: looked up once (fstat), since a host fd keeps its type. */
enum lx_fd_waits { LX_WAITS_UNKNOWN = 0, LX_WAITS_NEVER, LX_WAITS_MAYBE };

struct lx_fd {
    enum lx_fd_kind kind;
    int host_fd;
    bool cloexec;
    enum lx_fd_type type;
    enum lx_fd_waits waits;     /* see fdt_never_waits */
    uint32_t ofd;               /* open file description: dups share it (offset, flags) */
    uint32_t peer_ofd;          /* a socketpair end: the other end's ofd */
    struct lx_epoll *epoll;     /* LX_FT_EPOLL: one reference (dups share the record) */
    struct lx_frozen_fd *frozen;  /* the frozen master's: owned (fdt_freeze) */
};

struct lx_fdtable {
    struct lx_fd fd[LX_MAX_FDS];
    uint32_t last_ofd;
    int frozen_top;     /* fdt_freeze: highest open guest fd + 1 (0: look at all) */
};

/* Where a scan of a frozen table may stop: past its highest open fd (all of it if unknown). */
static inline int fdt_frozen_end(const struct lx_fdtable *t)
{
    return t->frozen_top > 0 && t->frozen_top <= LX_MAX_FDS ? t->frozen_top : LX_MAX_FDS;
}

/* Guest 0/1/2 become dups of host 0/1/2. */
int lx_fds_init(struct lx_fdtable *t);
/* Installs host_fd at the lowest free guest number >= min; returns it or -EMFILE. */
int fdt_install(struct lx_fdtable *t, int host_fd, int min, bool cloexec);
/* A duplicate of orig (dup, fcntl F_DUPFD): host_fd at the lowest free number >= min,
 * sharing orig's open file description. Returns the guest fd or -EMFILE. */
int fdt_install_dup(struct lx_fdtable *t, const struct lx_fd *orig, int host_fd, int min,
                    bool cloexec);
/* The entry for a guest fd, or NULL (-> -EBADF) if it is not open. */
struct lx_fd *fdt_get(struct lx_fdtable *t, long guest_fd);
/* Regular files and memory devices (/dev/null, /dev/zero, /dev/urandom...) never make a
 * read or write wait, whatever O_NONBLOCK says: no need to poll them first. */
bool fdt_never_waits(struct lx_fd *f);
/* Closes a guest fd and its host fd: 0 or -EBADF. */
int fdt_close(struct lx_fdtable *t, long guest_fd);
void lx_fds_destroy(struct lx_fdtable *t);
/* Records, once at the freeze, what each fd's host object holds (pipe and socket queues,
 * eventfd counters, file offsets and flags) without changing it: 0 or -errno (fdclone.c). */
int fdt_freeze(struct lx_fdtable *t);
/* A copy of the frozen src for a fork or a reset: same numbers, each object as it was at the
 * freeze, private to dst unless it is meant to be shared (fdclone.c). 0 or -errno; on error
 * dst is empty and a message says which fd failed. */
int lx_fds_fork(struct lx_fdtable *dst, const struct lx_fdtable *src);
/* Frees what fdt_freeze recorded for one fd (fdt_close calls it). */
void fdt_free_frozen(struct lx_frozen_fd *fz);

#endif
