/* Unit tests for -e's connection lifecycle (server/conn.c) as the personality sees it
 * through its server hooks: one connection per VM life, over when it is closed or when the
 * program blocks for another; a plain VM (no hooks) takes any number. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "linux/process.h"
#include "server/conn.h"

static struct lx_proc proc;
static struct srv_conn conn;

static void test_without_hooks_any_connection(void **state)
{
    (void)state;
    proc = (struct lx_proc){ 0 };
    assert_true(lx_accept_allowed(&proc));
    assert_false(lx_must_stop(&proc));
}

static void test_one_connection_until_closed(void **state)
{
    (void)state;
    proc = (struct lx_proc){ 0 };
    proc.server.busy_limit_ns = 5;
    srv_conn_start(&conn, &proc, 0);
    assert_true(lx_accept_allowed(&proc));
    assert_false(lx_must_stop(&proc));
    proc.server.hooks->accepted(proc.server.hooks_ctx, &proc, 7);
    assert_false(lx_accept_allowed(&proc));       /* its one connection is taken */
    assert_int_equal(conn.fd, 7);
    assert_true(conn.accepted_ns > 0);
    assert_int_equal(proc.server.busy_limit_ns, 0);   /* timed from the accept now */
    assert_false(lx_must_stop(&proc));
    proc.server.hooks->closed(proc.server.hooks_ctx, 6);   /* another fd: nothing ends */
    assert_false(lx_must_stop(&proc));
    proc.server.hooks->closed(proc.server.hooks_ctx, 7);
    assert_true(lx_must_stop(&proc));
    /* The next life starts over. */
    srv_conn_start(&conn, &proc, 0);
    assert_true(lx_accept_allowed(&proc));
    assert_false(lx_must_stop(&proc));
    assert_int_equal(conn.accepted_ns, 0);
}

static void test_waiting_for_another_ends_the_request(void **state)
{
    (void)state;
    proc = (struct lx_proc){ 0 };
    srv_conn_start(&conn, &proc, 0);
    proc.server.hooks->accepted(proc.server.hooks_ctx, &proc, 3);
    proc.server.hooks->wait_for_connection(proc.server.hooks_ctx);
    assert_true(lx_must_stop(&proc));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_without_hooks_any_connection),
        cmocka_unit_test(test_one_connection_until_closed),
        cmocka_unit_test(test_waiting_for_another_ends_the_request),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
