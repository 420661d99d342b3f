/* The graceful stop on SIGTERM: stop accepting connections, let the requests in flight
 * finish up to --shutdown-timeout. */
#ifndef KVMS_STOP_H
#define KVMS_STOP_H
#include <signal.h>
#include <stdint.h>

#include "linux/process.h"
#include "server/metrics.h"

/* Shuts down the listening sockets the frozen program made. Request VMs share them, so from
 * now on new connections are refused (TCP: reset; unix: ECONNREFUSED), queued TCP ones too,
 * and a VM waiting in accept wakes with an error. */
void stop_accepting(const struct lx_proc *master);

/* With -e: waits until no accepted connection is left open, timeout_s passes or one of
 * `signals` arrives again. Returns the requests still in flight (cut short). */
uint64_t wait_for_requests(const struct metrics *m, double timeout_s, const sigset_t *signals);

#endif
