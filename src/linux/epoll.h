/* epoll instances as the guest sees them: the host epoll fd does the waiting, and every
 * registration is also recorded here, so a fork or a reset can rebuild the instance with
 * its own host fds. */
#ifndef KVMS_EPOLL_H
#define KVMS_EPOLL_H
#include <stddef.h>
#include <stdint.h>

struct lx_fdtable;

struct lx_epoll_reg {
    int guest_fd;
    uint32_t events;
    uint64_t data;
};

/* One per epoll instance, shared by the guest fds that duplicate it (dup, F_DUPFD: tokio
 * clones its registry that way). */
struct lx_epoll {
    unsigned refs;
    size_t count, cap;
    struct lx_epoll_reg *regs;
};

/* Another guest fd refers to ep; returns ep. */
struct lx_epoll *lx_epoll_get(struct lx_epoll *ep);
/* A guest fd referring to ep is gone: the record is freed with its last one. */
void lx_epoll_put(struct lx_epoll *ep);
/* A new host epoll instance holding ep's registrations, with each guest fd resolved in
 * `fds` (whose host fds are the new owner's). Returns the host epoll fd (or -errno) and a
 * deep copy of the record in *copy. */
int lx_epoll_clone(const struct lx_epoll *ep, struct lx_fdtable *fds, struct lx_epoll **copy);

struct lx_proc;
/* The guest is closing (or dup2-replacing) guest_fd: drop its registrations from every epoll
 * record of p, and from the host instances. Call it BEFORE the host fd is closed (the host
 * registration can only be removed through it; another VM may keep the open file alive). */
void lx_epoll_forget_fd(struct lx_proc *p, int guest_fd);
/* A listener of p became spent or usable again (accept budget, shutdown, listen): take the
 * spent ones out of p's host epoll instances and put the others back (the records keep
 * them all, so epoll_ctl still answers as if they were there). */
void lx_epoll_sync_listeners(struct lx_proc *p);

#endif
