/* Server mode's side of a request VM's connections with -e: the VM takes one connection,
 * is timed from its accept, and its request is over when the program closes it or waits
 * for another. The personality asks through struct lx_server_hooks. */
#ifndef KVMS_SERVER_CONN_H
#define KVMS_SERVER_CONN_H
#include <stdbool.h>
#include <stdint.h>

#include "linux/process.h"

struct srv_conn {
    int accepts_left;           /* connections this VM may still accept */
    int fd;                     /* guest fd of this request's connection, or -1 */
    uint64_t accepted_ns;       /* when it was accepted (now_ns); 0: not yet */
    uint64_t request_limit_ns;  /* how long the connection may last from its accept
                                 * (--max-request-time; until the accept the VM is timed
                                 * by the personality's busy_limit_ns); 0 = any */
    bool done;                  /* -> the request is over: the VM stops, and is reset */
};

/* A request VM's new life: one connection, timed by request_limit_ns; installs the hooks
 * in p (after lx_proc_fork). */
void srv_conn_start(struct srv_conn *c, struct lx_proc *p, uint64_t request_limit_ns);

#endif
