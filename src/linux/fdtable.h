/* Guest file descriptors: Linux numbering (lowest free number first, so select() works),
 * each mapped to a host fd that only this guest can reach. */
#ifndef KVMS_FDTABLE_H
#define KVMS_FDTABLE_H
#include <stdbool.h>

#define LX_MAX_FDS 1024

enum lx_fd_kind { LX_FD_FREE = 0, LX_FD_HOST };

/* What the host object behind an fd is, where a fork or a reset must treat it specially. */
enum lx_fd_type {
    LX_FT_OTHER = 0,    /* files, stdio: a fork shares the host fd (dup) */
    LX_FT_LISTENER,     /* a listening socket: shared by every fork (the kernel spreads
                         * connections over them) */
    LX_FT_CONNECTION,   /* an accepted connection */
    LX_FT_EPOLL,        /* an epoll instance: recreated per fork from its registrations */
    LX_FT_PIPE,         /* pipe/socketpair/eventfd ends: recreated empty per fork */
};

struct lx_epoll;        /* linux/epoll.h: the recorded registrations of an epoll fd */

/* Whether I/O on an fd can wait: looked up once (fstat), since a host fd keeps its type. */
enum lx_fd_waits { LX_WAITS_UNKNOWN = 0, LX_WAITS_NEVER, LX_WAITS_MAYBE };

struct lx_fd {
    enum lx_fd_kind kind;
    int host_fd;
    bool cloexec;
    enum lx_fd_type type;
    enum lx_fd_waits waits;     /* see fdt_never_waits */
    struct lx_epoll *epoll;     /* LX_FT_EPOLL: owned */
};

struct lx_fdtable {
    struct lx_fd fd[LX_MAX_FDS];
};

/* Guest 0/1/2 become dups of host 0/1/2. */
int fdt_init_stdio(struct lx_fdtable *t);
/* Installs host_fd at the lowest free guest number >= min; returns it or -EMFILE. */
int fdt_install(struct lx_fdtable *t, int host_fd, int min, bool cloexec);
/* The entry for a guest fd, or NULL (-> -EBADF) if it is not open. */
struct lx_fd *fdt_get(struct lx_fdtable *t, long guest_fd);
/* Regular files and memory devices (/dev/null, /dev/zero, /dev/urandom...) never make a
 * read or write wait, whatever O_NONBLOCK says: no need to poll them first. */
bool fdt_never_waits(struct lx_fd *f);
/* Closes a guest fd and its host fd: 0 or -EBADF. */
int fdt_close(struct lx_fdtable *t, long guest_fd);
void fdt_close_all(struct lx_fdtable *t);
/* A copy of src for a fork: same numbers, host fds duplicated or rebuilt (fdclone.c). */
int fdt_clone(struct lx_fdtable *dst, const struct lx_fdtable *src);

#endif
