/* Unit tests for the server-mode part of a fork (lx_server_fork, linux/listener.c): a request
 * VM starts from the frozen policy and listener records, with none of the flags the last
 * request (or the boot) raised. The other parts have theirs next to their owners' tests:
 * lx_mm_fork (test_mm.c), lx_threads_fork (test_threads.c), lx_fds_fork (test_fdclone.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "linux/process.h"

static void test_server_fork_keeps_policy_and_listeners(void **state)
{
    (void)state;
    static struct lx_server_state frozen, child;
    frozen.memory_limit = 1 << 20;
    frozen.nlisteners = 1;
    frozen.listeners[0] = (struct lx_listener){ .ino = 42, .family = 2, .type = 1,
                                                .private_fd = -1, .backlog = 128,
                                                .shadow_fd = -1 };
    frozen.frozen = true;                   /* the master stopped at its wait */
    static const struct lx_freeze_hooks boot_freeze = { 0 };
    frozen.freeze = &boot_freeze;           /* the boot's, still installed */
    frozen.freeze_ctx = &frozen;
    frozen.pending_nr = 43;
    memset(&child, 0x5a, sizeof child);     /* what the last request left */
    assert_int_equal(lx_server_fork(&child, &frozen), 0);
    assert_false(child.frozen);
    assert_null(child.freeze);                      /* never frozen again */
    assert_null(child.freeze_ctx);
    assert_null(child.hooks);                       /* the server installs its own */
    assert_null(child.hooks_ctx);
    assert_false(child.memory_exceeded);
    assert_false(child.deadline_hit);
    assert_false(child.boot_failed);
    assert_int_equal(child.pending_nr, 43);         /* the wait every fork resumes */
    assert_int_equal(child.memory_limit, 1 << 20);
    assert_int_equal(child.nlisteners, 1);
    assert_memory_equal(&child.listeners[0], &frozen.listeners[0], sizeof frozen.listeners[0]);
    /* A request that shut its listener down, or ran past its limits: gone next time. */
    child.listeners[0].read_shut = true;
    child.listeners[0].backlog = 1;
    child.memory_exceeded = child.deadline_hit = true;
    assert_int_equal(lx_server_fork(&child, &frozen), 0);
    assert_false(child.listeners[0].read_shut);
    assert_int_equal(child.listeners[0].backlog, 128);
    assert_false(child.memory_exceeded || child.deadline_hit);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_server_fork_keeps_policy_and_listeners),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
