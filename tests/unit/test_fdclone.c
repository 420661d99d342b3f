/* Unit tests for fdt_freeze/lx_fds_fork on real host objects: each clone (a request VM's fd
 * table) sees every object as it was at the freeze, and what a clone writes reaches neither
 * the frozen source nor another clone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "same_host_object.h"

#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "linux/fdprep.h"
#include "linux/fdtable.h"

struct tables {
    struct lx_fdtable src, a, b;    /* the frozen master and two request VMs */
};

static int setup(void **state)
{
    *state = calloc(1, sizeof(struct tables));
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    struct tables *t = *state;
    lx_fds_destroy(&t->src);
    lx_fds_destroy(&t->a);
    lx_fds_destroy(&t->b);
    free(t);
    return 0;
}

static int install(struct lx_fdtable *t, int host, enum lx_fd_type type)
{
    int fd = fdt_install(t, host, 0, false);
    assert_true(fd >= 0);
    t->fd[fd].type = type;
    return fd;
}

/* Both ends numbered as lx_install_pair numbers them. */
static void install_pair(struct lx_fdtable *t, const int host[2], int out[2])
{
    out[0] = install(t, host[0], LX_FT_PIPE);
    out[1] = install(t, host[1], LX_FT_PIPE);
    t->fd[out[0]].peer_ofd = t->fd[out[1]].ofd;
    t->fd[out[1]].peer_ofd = t->fd[out[0]].ofd;
}

static int dup_fd(struct lx_fdtable *t, int guest_fd)
{
    int host = fcntl(t->fd[guest_fd].host_fd, F_DUPFD_CLOEXEC, 3);
    assert_true(host >= 0);
    int fd = fdt_install_dup(t, &t->fd[guest_fd], host, 0, false);
    assert_true(fd >= 0);
    return fd;
}

static void freeze_and_clone(struct tables *t)
{
    assert_int_equal(fdt_freeze(&t->src), 0);
    assert_int_equal(lx_fds_fork(&t->a, &t->src), 0);
    assert_int_equal(lx_fds_fork(&t->b, &t->src), 0);
}

static int host(struct lx_fdtable *t, int guest_fd)
{
    struct lx_fd *f = fdt_get(t, guest_fd);
    assert_non_null(f);
    return f->host_fd;
}

/* What a nonblocking read gets now: "" when empty, "EOF" at end of file, "EAGAIN". */
static const char *read_now(int fd)
{
    static char buf[64];
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    int err = errno;
    fcntl(fd, F_SETFL, fl);
    if (n < 0)
        return err == EAGAIN ? "EAGAIN" : strerror(err);
    if (n == 0)
        return "EOF";
    buf[n] = '\0';
    return buf;
}

static int queued(int fd)
{
    int n = -1;
    assert_int_equal(ioctl(fd, FIONREAD, &n), 0);
    return n;
}

static void test_pipe_with_bytes(void **state)
{
    struct tables *t = *state;
    int p[2], g[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    assert_int_equal(write(p[1], "abc", 3), 3);
    install_pair(&t->src, p, g);
    freeze_and_clone(t);
    assert_false(same_host_object(host(&t->a, g[0]), p[0]));
    assert_int_equal(write(host(&t->a, g[1]), "X", 1), 1);
    assert_string_equal(read_now(host(&t->a, g[0])), "abcX");
    assert_string_equal(read_now(host(&t->b, g[0])), "abc");
    assert_int_equal(queued(p[0]), 3);              /* the frozen pipe is untouched */
    /* Every reset clones again from the same frozen state. */
    lx_fds_destroy(&t->a);
    assert_int_equal(lx_fds_fork(&t->a, &t->src), 0);
    assert_string_equal(read_now(host(&t->a, g[0])), "abc");
}

/* Fds made ahead by the helper (fdprep.c) are the frozen state, whatever the last request
 * did to its own; what it retires is closed, every fd the request opened included. */
static void test_made_ahead_as_frozen_and_retired_closed(void **state)
{
    struct tables *t = *state;
    signal(SIGPIPE, SIG_IGN);
    int p[2], g[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    assert_int_equal(write(p[1], "abc", 3), 3);
    install_pair(&t->src, p, g);
    assert_int_equal(fdt_freeze(&t->src), 0);
    struct lx_fd_prep *prep = lx_fd_prep_start(&t->src, NULL);
    assert_non_null(prep);
    for (int request = 0; request < 20; request++) {
        /* The helper may not be done yet: then the fds are made as a reset makes them. */
        if (!lx_fd_prep_take(prep, &t->a))
            assert_int_equal(lx_fds_fork(&t->a, &t->src), 0);
        assert_string_equal(read_now(host(&t->a, g[0])), "abc");
        assert_int_equal(write(host(&t->a, g[1]), "X", 1), 1);
        int extra[2];
        assert_int_equal(pipe2(extra, O_CLOEXEC), 0);
        int opened = fdt_install(&t->a, extra[0], 900, false);    /* far above the frozen */
        assert_true(opened >= 900);
        lx_fd_prep_retire(prep, &t->a);
        for (int i = 0; i < LX_MAX_FDS; i++)
            assert_null(fdt_get(&t->a, i));
        /* Its read end is closed, by the helper or here: the write end sees no reader. */
        assert_int_equal(fcntl(extra[1], F_SETFL, O_NONBLOCK), 0);
        ssize_t n;
        for (int tries = 0; tries < 2000 && (n = write(extra[1], "x", 1)) == 1; tries++)
            usleep(1000);
        assert_int_equal(n, -1);
        assert_int_equal(errno, EPIPE);
        close(extra[1]);
    }
    lx_fd_prep_stop(prep);
    assert_int_equal(queued(p[0]), 3);              /* the frozen pipe is untouched */
}

static void test_pipe_flags_per_end(void **state)
{
    struct tables *t = *state;
    int p[2], g[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    assert_int_equal(fcntl(p[1], F_SETFL, O_NONBLOCK), 0);
    assert_int_equal(fcntl(p[1], F_SETPIPE_SZ, 1 << 20), 1 << 20);
    install_pair(&t->src, p, g);
    freeze_and_clone(t);
    assert_false(fcntl(host(&t->a, g[0]), F_GETFL) & O_NONBLOCK);
    assert_true(fcntl(host(&t->a, g[1]), F_GETFL) & O_NONBLOCK);
    assert_int_equal(fcntl(host(&t->a, g[1]), F_GETPIPE_SZ), 1 << 20);
}

static void test_half_closed_pipes(void **state)
{
    struct tables *t = *state;
    int r[2], w[2];
    assert_int_equal(pipe2(r, O_CLOEXEC), 0);
    assert_int_equal(write(r[1], "H", 1), 1);
    close(r[1]);
    int reader = install(&t->src, r[0], LX_FT_PIPE);
    assert_int_equal(pipe2(w, O_CLOEXEC), 0);
    close(w[0]);
    int writer = install(&t->src, w[1], LX_FT_PIPE);
    freeze_and_clone(t);
    assert_string_equal(read_now(host(&t->a, reader)), "H");
    assert_string_equal(read_now(host(&t->a, reader)), "EOF");
    signal(SIGPIPE, SIG_IGN);
    errno = 0;
    assert_int_equal(write(host(&t->a, writer), "x", 1), -1);
    assert_int_equal(errno, EPIPE);
    assert_string_equal(read_now(host(&t->b, reader)), "H");
}

static void test_socketpair_both_ways(void **state)
{
    struct tables *t = *state;
    int s[2], g[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s), 0);
    assert_int_equal(write(s[0], "to1", 3), 3);
    assert_int_equal(write(s[1], "to0", 3), 3);
    install_pair(&t->src, s, g);
    freeze_and_clone(t);
    int a0 = host(&t->a, g[0]), a1 = host(&t->a, g[1]);
    assert_int_equal(write(a0, "+", 1), 1);
    assert_string_equal(read_now(a1), "to1+");
    assert_string_equal(read_now(a0), "to0");
    assert_string_equal(read_now(host(&t->b, g[1])), "to1");
    assert_string_equal(read_now(host(&t->b, g[0])), "to0");
    assert_int_equal(queued(s[0]), 3);
    assert_int_equal(queued(s[1]), 3);
}

static void test_socketpair_datagrams(void **state)
{
    struct tables *t = *state;
    int s[2], g[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, s), 0);
    assert_int_equal(write(s[1], "one", 3), 3);
    assert_int_equal(write(s[1], "two!", 4), 4);
    close(s[1]);                                    /* the peer is gone: EOF after both */
    g[0] = install(&t->src, s[0], LX_FT_PIPE);
    freeze_and_clone(t);
    int a0 = host(&t->a, g[0]);
    assert_string_equal(read_now(a0), "one");
    assert_string_equal(read_now(a0), "two!");
    assert_string_equal(read_now(a0), "EOF");
    int off = 0;
    socklen_t len = sizeof off;
    assert_int_equal(getsockopt(s[0], SOL_SOCKET, SO_PEEK_OFF, &off, &len), 0);
    assert_int_equal(off, -1);                      /* the master's socket as it was */
    assert_string_equal(read_now(s[0]), "one");
}

static void test_eventfd_counter(void **state)
{
    struct tables *t = *state;
    int e = eventfd(5, EFD_CLOEXEC | EFD_SEMAPHORE | EFD_NONBLOCK);
    assert_true(e >= 0);
    int g = install(&t->src, e, LX_FT_PIPE);
    freeze_and_clone(t);
    int a = host(&t->a, g);
    assert_true(fcntl(a, F_GETFL) & O_NONBLOCK);
    uint64_t v = 0;
    assert_int_equal(read(a, &v, sizeof v), sizeof v);
    assert_int_equal(v, 1);                         /* a semaphore: one at a time */
    v = 10;
    assert_int_equal(write(a, &v, sizeof v), sizeof v);
    int b = host(&t->b, g);
    assert_int_equal(fcntl(b, F_SETFL, 0), 0);
    uint64_t seen[6];
    for (int i = 0; i < 5; i++)
        assert_int_equal(read(b, &seen[i], sizeof v), sizeof v);
    assert_int_equal(fcntl(b, F_SETFL, O_NONBLOCK), 0);
    assert_int_equal(read(b, &seen[5], sizeof v), -1);   /* 5 in b, not 14 */
    assert_int_equal(fcntl(e, F_SETFL, O_NONBLOCK), 0);
    int count = 0;
    while (read(e, &v, sizeof v) == sizeof v)
        count++;
    assert_int_equal(count, 5);
}

static void test_eventfd_counter_above_nine(void **state)
{
    struct tables *t = *state;
    int e = eventfd(26, EFD_CLOEXEC);               /* fdinfo shows the counter in hex */
    assert_true(e >= 0);
    int g = install(&t->src, e, LX_FT_PIPE);
    freeze_and_clone(t);
    uint64_t v = 0;
    assert_int_equal(read(host(&t->a, g), &v, sizeof v), sizeof v);
    assert_int_equal(v, 26);
    assert_false(fcntl(host(&t->a, g), F_GETFL) & O_NONBLOCK);
}

static void test_memfd_private(void **state)
{
    struct tables *t = *state;
    int m = memfd_create("frozen-memfd", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    assert_true(m >= 0);
    assert_int_equal(write(m, "frozen", 6), 6);
    assert_int_equal(lseek(m, 3, SEEK_SET), 3);
    assert_int_equal(fcntl(m, F_ADD_SEALS, F_SEAL_SHRINK), 0);
    int g = install(&t->src, m, LX_FT_OTHER);
    int d = dup_fd(&t->src, g);
    freeze_and_clone(t);
    int a = host(&t->a, g);
    assert_false(same_host_object(a, m));
    assert_int_equal(fcntl(a, F_GET_SEALS), F_SEAL_SHRINK);
    char link[64], path[32];
    snprintf(path, sizeof path, "/proc/self/fd/%d", a);
    ssize_t n = readlink(path, link, sizeof link - 1);
    link[n > 0 ? n : 0] = '\0';
    assert_string_equal(link, "/memfd:frozen-memfd (deleted)");
    assert_string_equal(read_now(a), "zen");
    assert_int_equal(write(host(&t->a, d), "W", 1), 1);   /* the dup shares the offset */
    char buf[16] = "";
    assert_int_equal(pread(a, buf, sizeof buf, 0), 7);
    assert_memory_equal(buf, "frozenW", 7);
    assert_string_equal(read_now(host(&t->b, g)), "zen");
    memset(buf, 0, sizeof buf);
    assert_int_equal(pread(m, buf, sizeof buf, 0), 6);
    assert_string_equal(buf, "frozen");
}

static void test_memfd_read_only_stays_so(void **state)
{
    struct tables *t = *state;
    int m = memfd_create("ro", MFD_CLOEXEC);
    assert_true(m >= 0);
    assert_int_equal(write(m, "text", 4), 4);
    char path[32];
    snprintf(path, sizeof path, "/proc/self/fd/%d", m);
    int g = install(&t->src, open(path, O_RDONLY | O_CLOEXEC), LX_FT_OTHER);
    close(m);
    freeze_and_clone(t);
    int a = host(&t->a, g);
    assert_string_equal(read_now(a), "text");
    assert_int_equal(write(a, "x", 1), -1);
    assert_int_equal(errno, EBADF);
}

static void test_file_offset(void **state)
{
    struct tables *t = *state;
    char path[] = "/tmp/kvms-fdclone-XXXXXX";
    int f = mkostemp(path, O_CLOEXEC);
    assert_true(f >= 0);
    unlink(path);
    assert_int_equal(write(f, "0123456789", 10), 10);
    assert_int_equal(lseek(f, 4, SEEK_SET), 4);
    assert_int_equal(fcntl(f, F_SETFL, O_APPEND), 0);
    int g = install(&t->src, f, LX_FT_OTHER);
    int d = dup_fd(&t->src, g);
    freeze_and_clone(t);
    int a = host(&t->a, g);
    assert_true(fcntl(a, F_GETFL) & O_APPEND);
    assert_int_equal(fcntl(a, F_SETFL, 0), 0);
    char buf[8] = "";
    assert_int_equal(read(a, buf, 2), 2);
    assert_memory_equal(buf, "45", 2);
    assert_int_equal(lseek(host(&t->a, d), 0, SEEK_CUR), 6);   /* its dup moved too */
    assert_int_equal(lseek(host(&t->b, g), 0, SEEK_CUR), 4);
    assert_true(fcntl(host(&t->b, g), F_GETFL) & O_APPEND);
    assert_int_equal(lseek(f, 0, SEEK_CUR), 4);
    /* The file itself is shared, as after fork(2): writes reach the disk. */
    assert_int_equal(pwrite(a, "Z", 1, 0), 1);
    assert_int_equal(pread(f, buf, 1, 0), 1);
    assert_int_equal(buf[0], 'Z');
}

/* Deno keeps its SQLite caches open read-only with O_NOFOLLOW: the copies reopen them. */
static void test_file_opened_nofollow(void **state)
{
    struct tables *t = *state;
    char path[] = "/tmp/kvms-fdclone-XXXXXX";
    int w = mkostemp(path, O_CLOEXEC);
    assert_true(w >= 0);
    assert_int_equal(write(w, "cache", 5), 5);
    close(w);
    int g = install(&t->src, open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC), LX_FT_OTHER);
    unlink(path);
    freeze_and_clone(t);
    assert_string_equal(read_now(host(&t->a, g)), "cache");
    assert_string_equal(read_now(host(&t->b, g)), "cache");
}

static void test_dup_shares_the_clone(void **state)
{
    struct tables *t = *state;
    int p[2], g[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    assert_int_equal(write(p[1], "ab", 2), 2);
    install_pair(&t->src, p, g);
    int rd = dup_fd(&t->src, g[0]), wd = dup_fd(&t->src, g[1]);
    int s[2], sg[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s), 0);
    install_pair(&t->src, s, sg);
    int sd = dup_fd(&t->src, sg[1]);
    freeze_and_clone(t);
    assert_true(same_host_object(host(&t->a, rd), host(&t->a, g[0])));
    assert_true(same_host_object(host(&t->a, wd), host(&t->a, g[1])));
    assert_int_equal(write(host(&t->a, wd), "c", 1), 1);
    assert_string_equal(read_now(host(&t->a, rd)), "abc");
    assert_string_equal(read_now(host(&t->a, g[0])), "EAGAIN");
    assert_int_equal(write(host(&t->a, sg[0]), "s", 1), 1);
    assert_string_equal(read_now(host(&t->a, sd)), "s");
    assert_false(same_host_object(host(&t->a, sd), s[1]));
}

static void test_epoll_dup_shares_the_new_instance(void **state)
{
    struct tables *t = *state;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    assert_true(ep >= 0);
    int g = install(&t->src, ep, LX_FT_EPOLL);
    int d = dup_fd(&t->src, g);
    int e = install(&t->src, eventfd(1, EFD_CLOEXEC), LX_FT_PIPE);
    freeze_and_clone(t);
    struct epoll_event ev = { .events = EPOLLIN };
    assert_int_equal(epoll_ctl(host(&t->a, g), EPOLL_CTL_ADD, host(&t->a, e), &ev), 0);
    assert_int_equal(epoll_wait(host(&t->a, d), &ev, 1, 0), 1);     /* the same instance */
    assert_int_equal(epoll_wait(host(&t->b, d), &ev, 1, 0), 0);     /* not another VM's */
    assert_int_equal(epoll_wait(ep, &ev, 1, 0), 0);                 /* nor the master's */
}

static void test_shared_kinds_stay_shared(void **state)
{
    struct tables *t = *state;
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(l >= 0);
    int g = install(&t->src, l, LX_FT_LISTENER);
    int n = install(&t->src, open("/dev/null", O_RDWR | O_CLOEXEC), LX_FT_OTHER);
    freeze_and_clone(t);
    assert_true(same_host_object(host(&t->a, g), l));
    assert_true(same_host_object(host(&t->b, n), host(&t->src, n)));
}

static void test_unknown_kind_fails_safe(void **state)
{
    struct tables *t = *state;
    int tf = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
    assert_true(tf >= 0);
    install(&t->src, tf, LX_FT_OTHER);
    assert_int_equal(fdt_freeze(&t->src), -ENOTSUP);
}

static void test_unfrozen_source_is_refused(void **state)
{
    struct tables *t = *state;
    int p[2], g[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    install_pair(&t->src, p, g);
    assert_int_equal(lx_fds_fork(&t->a, &t->src), -EINVAL);
    assert_null(fdt_get(&t->a, g[0]));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pipe_with_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_made_ahead_as_frozen_and_retired_closed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pipe_flags_per_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_half_closed_pipes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_socketpair_both_ways, setup, teardown),
        cmocka_unit_test_setup_teardown(test_socketpair_datagrams, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eventfd_counter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eventfd_counter_above_nine, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memfd_private, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memfd_read_only_stays_so, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_offset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_opened_nofollow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dup_shares_the_clone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_epoll_dup_shares_the_new_instance, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shared_kinds_stay_shared, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_kind_fails_safe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unfrozen_source_is_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
