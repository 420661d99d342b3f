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

struct lx_epoll {
    size_t count, cap;
    struct lx_epoll_reg *regs;
};

void lx_epoll_free(struct lx_epoll *ep);
/* A new host epoll instance holding ep's registrations, with each guest fd resolved in
 * `fds` (whose host fds are the new owner's). Returns the host epoll fd (or -errno) and a
 * deep copy of the record in *copy. */
int lx_epoll_clone(const struct lx_epoll *ep, struct lx_fdtable *fds, struct lx_epoll **copy);

#endif
