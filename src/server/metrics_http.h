/* --metrics HOST:PORT: the host's own HTTP listener for GET /metrics. It is not the guest's
 * (no --allow-listen applies) and its thread reads only the atomic counters of struct
 * metrics, never guest memory. */
#ifndef KVMS_METRICS_HTTP_H
#define KVMS_METRICS_HTTP_H
#include "server/metrics.h"

/* Binds and listens on `address` ("HOST:PORT", "[V6]:PORT", ":PORT" = any address). Returns
 * the listening fd, or -1 after a message naming the address and why. */
int metrics_listen(const char *address);

/* Serves GET /metrics on `fd` from a thread of its own for the rest of the process's life.
 * 0, or -1 after a message. */
int metrics_serve(int fd, const struct metrics *m);

#endif
