/* The graceful stop on SIGTERM: once the listeners are shut (lx_listeners_stop), let the
 * requests in flight finish up to --shutdown-timeout. */
#ifndef KVMS_STOP_H
#define KVMS_STOP_H
#include <signal.h>
#include <stdint.h>

#include "server/metrics.h"

/* With -e: waits until no accepted connection is left open, timeout_s passes or one of
 * `signals` arrives again. Returns the requests still in flight (cut short). */
uint64_t wait_for_requests(const struct metrics *m, double timeout_s, const sigset_t *signals);

#endif
