/* Test server for per-request copies of fds made before the first accept (test_fd_fork.py).
 * Before listening it makes a pipe (with a dup of its read end), a socketpair, an eventfd, a
 * memfd, a pipe whose write end is closed and one whose read end is closed, and opens its own
 * binary. Each connection writes into all of them, reads them back and answers one line: a
 * request VM that starts from the frozen state gives the same line every time. */
#include "http.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

static int pipe_fds[2], pipe_dup, pair[2], efd, mfd, file_fd, half_read, half_write;

static void check(bool ok, const char *what)
{
    if (!ok) {
        perror(what);
        exit(1);
    }
}

static void make_objects(const char *self)
{
    check(pipe2(pipe_fds, O_NONBLOCK) == 0, "pipe2");
    check(write(pipe_fds[1], "F", 1) == 1, "write pipe");
    pipe_dup = dup(pipe_fds[0]);
    check(pipe_dup >= 0, "dup");
    check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, pair) == 0, "socketpair");
    check(write(pair[0], "S0", 2) == 2 && write(pair[1], "S1", 2) == 2, "write socketpair");
    efd = eventfd(3, EFD_NONBLOCK);
    check(efd >= 0, "eventfd");
    mfd = memfd_create("frozen", 0);
    check(mfd >= 0 && write(mfd, "frozen", 6) == 6, "memfd");
    file_fd = open(self, O_RDONLY);
    check(file_fd >= 0 && lseek(file_fd, 1, SEEK_SET) == 1, "open self");
    int half[2];
    check(pipe2(half, O_NONBLOCK) == 0 && write(half[1], "H", 1) == 1, "half pipe");
    close(half[1]);
    half_read = half[0];
    check(pipe2(half, O_NONBLOCK) == 0, "half pipe 2");
    close(half[0]);
    half_write = half[1];
}

static void read_text(int fd, char *out, size_t size)
{
    ssize_t n = read(fd, out, size - 1);
    out[n > 0 ? n : 0] = '\0';
}

/* One line for what each object holds after this request's writes. */
static int answer(char *out, size_t size)
{
    char piped[16], sp0[16], sp1[16], mem[16], half[16];
    if (write(pipe_fds[1], "A", 1) != 1)
        return snprintf(out, size, "pipe write: %s\n", strerror(errno));
    read_text(pipe_dup, piped, sizeof piped);           /* the dup reads the same pipe */
    if (write(pair[0], "x", 1) != 1 || write(pair[1], "y", 1) != 1)
        return snprintf(out, size, "socketpair write: %s\n", strerror(errno));
    read_text(pair[1], sp1, sizeof sp1);
    read_text(pair[0], sp0, sizeof sp0);
    uint64_t add = 2, count = 0;
    if (write(efd, &add, sizeof add) != sizeof add || read(efd, &count, sizeof count) != sizeof count)
        return snprintf(out, size, "eventfd: %s\n", strerror(errno));
    if (write(mfd, "W", 1) != 1)
        return snprintf(out, size, "memfd write: %s\n", strerror(errno));
    ssize_t m = pread(mfd, mem, sizeof mem - 1, 0);
    mem[m > 0 ? m : 0] = '\0';
    char four[4];
    if (read(file_fd, four, sizeof four) != sizeof four)
        return snprintf(out, size, "file read: %s\n", strerror(errno));
    off_t file_pos = lseek(file_fd, 0, SEEK_CUR);
    read_text(half_read, half, sizeof half);
    ssize_t eof = read(half_read, four, 1);
    errno = 0;
    ssize_t broken = write(half_write, "B", 1);
    int broken_errno = errno;
    return snprintf(out, size, "pipe=%s sp0=%s sp1=%s efd=%llu memfd=%s file=%lld half=%s,%zd "
                    "epipe=%zd,%d\n", piped, sp0, sp1, (unsigned long long)count, mem,
                    (long long)file_pos, half, eof, broken, broken_errno);
}

/* Every path gets the answer. */
static int route(const char *path, const char *query, char *body, size_t size)
{
    (void)path;
    (void)query;
    return answer(body, size) < (int)size ? 200 : 500;
}

int main(int argc, char **argv)
{
    http_check_usage(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    make_objects(argv[0]);
    http_set_app_route(route);
    return http_serve_blocking(http_listen(argv[1], false));
}
