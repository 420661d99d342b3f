/* The -e connection lifecycle behind the personality's server hooks (see conn.h). */
#include "server/conn.h"

#include "base/time.h"
#include "vm/engine.h"

static bool accept_allowed(void *ctx)
{
    const struct srv_conn *c = ctx;
    return c->accepts_left != 0;
}

static void wait_for_connection(void *ctx)
{
    struct srv_conn *c = ctx;
    c->done = true;
}

static void accepted(void *ctx, struct lx_proc *p, int fd)
{
    struct srv_conn *c = ctx;
    if (c->accepts_left <= 0)
        return;
    c->fd = fd;
    c->accepted_ns = now_ns();
    if (--c->accepts_left == 0) {
        /* The request's time starts now: from here on the connection's limit, not the
         * one between two event waits. */
        p->server.busy_limit_ns = 0;
        if (c->request_limit_ns)
            vm_set_deadline(p->vm, c->accepted_ns + c->request_limit_ns);
    }
}

static void closed(void *ctx, int fd)
{
    struct srv_conn *c = ctx;
    if (fd == c->fd) {
        c->fd = -1;
        c->done = true;
    }
}

static bool should_stop(void *ctx)
{
    const struct srv_conn *c = ctx;
    return c->done;
}

static const struct lx_server_hooks conn_hooks = {
    .accept_allowed = accept_allowed,
    .wait_for_connection = wait_for_connection,
    .accepted = accepted,
    .closed = closed,
    .should_stop = should_stop,
};

void srv_conn_start(struct srv_conn *c, struct lx_proc *p, uint64_t request_limit_ns)
{
    *c = (struct srv_conn){ .accepts_left = 1, .fd = -1, .request_limit_ns = request_limit_ns };
    p->server.hooks = &conn_hooks;
    p->server.hooks_ctx = c;
}
