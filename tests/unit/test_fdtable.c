/* Unit tests for the guest fd table: Linux numbering (lowest free first), host fds owned by
 * the table, standard streams. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "same_host_object.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "linux/fdtable.h"

static int open_null(void)
{
    int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    assert_true(fd >= 0);
    return fd;
}

static bool host_fd_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0;
}

static int setup(void **state)
{
    *state = calloc(1, sizeof(struct lx_fdtable));
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    lx_fds_destroy(*state);
    free(*state);
    return 0;
}

static void test_stdio(void **state)
{
    struct lx_fdtable *t = *state;
    assert_int_equal(lx_fds_init(t), 0);
    for (int i = 0; i < 3; i++) {
        if (!host_fd_open(i))
            continue;
        struct lx_fd *f = fdt_get(t, i);
        assert_non_null(f);
        assert_true(f->host_fd >= 3);
        assert_false(f->cloexec);
        assert_int_equal(fcntl(f->host_fd, F_GETFD), FD_CLOEXEC);
        assert_true(same_host_object(i, f->host_fd));
    }
    /* The next guest fd comes after the streams. */
    assert_int_equal(fdt_install(t, open_null(), 0, false), 3);
}

static void test_stdio_with_closed_host_stream(void **state)
{
    struct lx_fdtable *t = *state;
    int saved = fcntl(0, F_DUPFD_CLOEXEC, 3);
    assert_true(saved >= 0);
    close(0);
    int rc = lx_fds_init(t);
    assert_int_equal(dup2(saved, 0), 0);
    close(saved);
    assert_int_equal(rc, 0);
    assert_null(fdt_get(t, 0));
    /* The closed stream's number is the first one handed out, as on Linux. */
    assert_int_equal(fdt_install(t, open_null(), 0, false), 0);
}

static void test_lowest_free_first(void **state)
{
    struct lx_fdtable *t = *state;
    assert_int_equal(fdt_install(t, open_null(), 0, false), 0);
    assert_int_equal(fdt_install(t, open_null(), 0, false), 1);
    assert_int_equal(fdt_install(t, open_null(), 0, true), 2);
    assert_true(fdt_get(t, 2)->cloexec);
    assert_int_equal(fdt_close(t, 1), 0);
    assert_int_equal(fdt_install(t, open_null(), 0, false), 1);
    assert_int_equal(fdt_install(t, open_null(), 0, false), 3);
}

static void test_min(void **state)
{
    struct lx_fdtable *t = *state;
    assert_int_equal(fdt_install(t, open_null(), 10, false), 10);
    assert_int_equal(fdt_install(t, open_null(), 10, false), 11);
    assert_int_equal(fdt_install(t, open_null(), LX_MAX_FDS - 1, false), LX_MAX_FDS - 1);
    int host = open_null();
    assert_int_equal(fdt_install(t, host, LX_MAX_FDS - 1, false), -EMFILE);
    assert_int_equal(fdt_install(t, host, LX_MAX_FDS, false), -EMFILE);
    assert_int_equal(fdt_install(t, host, -1, false), -EINVAL);
    /* A failed install leaves the host fd to the caller. */
    assert_true(host_fd_open(host));
    close(host);
}

static void test_full_table(void **state)
{
    struct lx_fdtable *t = *state;
    /* The table never validates host numbers, so a placeholder fills it without using up
     * this process's own fd limit (closing -1 is harmless). */
    for (int i = 0; i < LX_MAX_FDS; i++)
        assert_int_equal(fdt_install(t, -1, 0, false), i);
    assert_int_equal(fdt_install(t, -1, 0, false), -EMFILE);
    assert_int_equal(fdt_close(t, 500), 0);
    assert_int_equal(fdt_install(t, -1, 0, false), 500);
}

static void test_get_bounds(void **state)
{
    struct lx_fdtable *t = *state;
    assert_null(fdt_get(t, -1));
    assert_null(fdt_get(t, 0));
    assert_null(fdt_get(t, LX_MAX_FDS));
    assert_null(fdt_get(t, 0x100000000l));
    assert_null(fdt_get(t, (long)(~0ul >> 1)));
    int host = open_null();
    assert_int_equal(fdt_install(t, host, 0, false), 0);
    assert_non_null(fdt_get(t, 0));
    assert_int_equal(fdt_get(t, 0)->host_fd, host);
}

static void test_close(void **state)
{
    struct lx_fdtable *t = *state;
    int host = open_null();
    assert_int_equal(fdt_install(t, host, 0, false), 0);
    assert_int_equal(fdt_close(t, 0), 0);
    assert_false(host_fd_open(host));
    assert_null(fdt_get(t, 0));
    assert_int_equal(fdt_close(t, 0), -EBADF);
    assert_int_equal(fdt_close(t, -1), -EBADF);
    assert_int_equal(fdt_close(t, LX_MAX_FDS), -EBADF);
}

static void test_never_waits(void **state)
{
    struct lx_fdtable *t = *state;
    /* A regular file and /dev/null never make I/O wait; a pipe and a socket may. */
    char path[] = "/tmp/kvms-fdtable-XXXXXX";
    int file = mkstemp(path);
    assert_true(file >= 0);
    unlink(path);
    int pipe_ends[2], sock[2];
    assert_int_equal(pipe(pipe_ends), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sock), 0);
    int g_file = fdt_install(t, file, 0, false), g_null = fdt_install(t, open_null(), 0, false);
    int g_pipe = fdt_install(t, pipe_ends[0], 0, false), g_sock = fdt_install(t, sock[0], 0, false);
    assert_true(fdt_never_waits(fdt_get(t, g_file)));
    assert_true(fdt_never_waits(fdt_get(t, g_null)));
    assert_false(fdt_never_waits(fdt_get(t, g_pipe)));
    assert_false(fdt_never_waits(fdt_get(t, g_sock)));
    /* The answer is kept: asking again gives the same, also for a reused slot. */
    assert_true(fdt_never_waits(fdt_get(t, g_file)));
    assert_int_equal(fdt_close(t, g_file), 0);
    assert_int_equal(fdt_install(t, pipe_ends[1], 0, false), g_file);
    assert_false(fdt_never_waits(fdt_get(t, g_file)));
    close(sock[1]);
}

static void test_close_all(void **state)
{
    struct lx_fdtable *t = *state;
    int hosts[5];
    for (int i = 0; i < 5; i++) {
        hosts[i] = open_null();
        assert_int_equal(fdt_install(t, hosts[i], i * 100, false), i * 100);
    }
    lx_fds_destroy(t);
    for (int i = 0; i < 5; i++) {
        assert_false(host_fd_open(hosts[i]));
        assert_null(fdt_get(t, i * 100));
    }
    assert_int_equal(fdt_install(t, open_null(), 0, false), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_stdio, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stdio_with_closed_host_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lowest_free_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_min, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_never_waits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_all, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
