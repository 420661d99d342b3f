/* A request VM's file descriptors made ahead: while a request runs, a helper thread closes
 * the fds the last request left and makes the next request's fresh copies of the frozen
 * master's (lx_fds_fork: new pipes, eventfds, epoll instances, reopened files), so a reset
 * only moves table entries. The copies come from the frozen record, which never changes,
 * exactly as a reset would make them; when the helper is behind, the reset makes them
 * itself. */
#ifndef KVMS_FDPREP_H
#define KVMS_FDPREP_H
#include <sched.h>
#include <stdbool.h>

#include "linux/fdtable.h"

struct lx_fd_prep;

/* Starts the helper for forks of `frozen` (a frozen master's table), on `cpus` (NULL: any);
 * NULL if it cannot: then resets make and close the fds themselves. A helper on the VM's
 * own CPU would only take turns with it. */
struct lx_fd_prep *lx_fd_prep_start(const struct lx_fdtable *frozen, const cpu_set_t *cpus);
/* Stops it, closing what it holds. */
void lx_fd_prep_stop(struct lx_fd_prep *prep);
/* The open fds of `fds` go to the helper to close, and `fds` is left empty; or, if it has
 * not closed the last ones yet, they are closed here. */
void lx_fd_prep_retire(struct lx_fd_prep *prep, struct lx_fdtable *fds);
/* dst (empty) takes a fork's fds made ahead: true; false when none are ready (make them). */
bool lx_fd_prep_take(struct lx_fd_prep *prep, struct lx_fdtable *dst);

#endif
