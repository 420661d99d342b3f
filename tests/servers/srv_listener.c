/* Test server: requests that do things to the listening socket, which every kvmserver request
 * VM shares (tests/e2e/test_listener.py). http.c's blocking loop with these routes of its own:
 *   /state       what this process sees of the listener: its O_NONBLOCK, SO_ACCEPTCONN and
 *                SO_RCVBUF
 *   /shutdown    shutdown(SHUT_RDWR) on the listener, then a non-blocking accept
 *   /disconnect  connect(AF_UNSPEC) on the listener (Linux: it stops listening), then accept
 *   /setsockopt  SO_RCVBUF = 4096 on the listener; answers what getsockopt says then
 *   /listen      listen() again with a backlog of 1
 *   /nonblock    fcntl(F_SETFL, O_NONBLOCK) on the listener;  /fionbio  ioctl(FIONBIO)
 *   /bind        bind() the listener to its own address again
 *   /accept2     tries to accept a second connection while this one is served: accept4,
 *                poll, epoll, through a dup and through a copy passed over a socketpair
 *                (the listener made non-blocking first) */
#include "http.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static int listener;

static int sock_int(int fd, int name)
{
    int v = -1;
    socklen_t len = sizeof v;
    return getsockopt(fd, SOL_SOCKET, name, &v, &len) < 0 ? -errno : v;
}

static const char *errno_name(int r)
{
    if (r >= 0)
        return "ok";
    switch (errno) {
    case EAGAIN: return "EAGAIN";
    case EINVAL: return "EINVAL";
    case EISCONN: return "EISCONN";
    case ENOTCONN: return "ENOTCONN";
    default: return strerror(errno);
    }
}

/* accept4 without waiting; an accepted connection is closed at once. */
static const char *try_accept(int fd)
{
    int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    const char *what = errno_name(c);
    if (c >= 0)
        close(c);
    return what;
}

static int ready_now(int fd)
{
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    return poll(&pfd, 1, 0);
}

static int epoll_ready_now(int fd)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = { .events = EPOLLIN }, out;
    int n = ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0 ? -1 : epoll_wait(ep, &out, 1, 0);
    if (ep >= 0)
        close(ep);
    return n;
}

/* The listener sent to ourselves over a socketpair comes back as a new fd. */
static int passed_copy(int fd)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return -1;
    char byte = 'x';
    union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } control;
    struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                        .msg_controllen = sizeof control.buf };
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
    int copy = -1;
    if (sendmsg(sv[0], &m, 0) == 1 && recvmsg(sv[1], &m, MSG_CMSG_CLOEXEC) == 1 &&
        (c = CMSG_FIRSTHDR(&m)) && c->cmsg_type == SCM_RIGHTS)
        memcpy(&copy, CMSG_DATA(c), sizeof copy);
    close(sv[0]);
    close(sv[1]);
    return copy;
}

static int route(const char *path, const char *query, char *body, size_t cap)
{
    (void)query;
    int one = 1, r;
    if (!strcmp(path, "/state")) {
        int fl = fcntl(listener, F_GETFL);
        snprintf(body, cap, "nonblock=%d acceptconn=%d rcvbuf=%d\n",
                 fl >= 0 && (fl & O_NONBLOCK), sock_int(listener, SO_ACCEPTCONN),
                 sock_int(listener, SO_RCVBUF));
    } else if (!strcmp(path, "/shutdown")) {
        r = shutdown(listener, SHUT_RDWR);
        const char *result = errno_name(r);
        snprintf(body, cap, "shutdown=%s accept=%s acceptconn=%d\n", result,
                 r < 0 ? "-" : try_accept(listener), sock_int(listener, SO_ACCEPTCONN));
    } else if (!strcmp(path, "/disconnect")) {
        struct sockaddr unspec = { .sa_family = AF_UNSPEC };
        r = connect(listener, &unspec, sizeof unspec);
        const char *result = errno_name(r);
        /* Only if it stopped listening: else a blocking accept would wait. */
        snprintf(body, cap, "connect=%s accept=%s\n", result, r < 0 ? "-" : try_accept(listener));
    } else if (!strcmp(path, "/setsockopt")) {
        int size = 4096;
        r = setsockopt(listener, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
        snprintf(body, cap, "setsockopt=%s rcvbuf=%d\n", errno_name(r),
                 sock_int(listener, SO_RCVBUF));
    } else if (!strcmp(path, "/listen")) {
        snprintf(body, cap, "listen=%s\n", errno_name(listen(listener, 1)));
    } else if (!strcmp(path, "/nonblock")) {
        r = fcntl(listener, F_SETFL, O_NONBLOCK);
        snprintf(body, cap, "fcntl=%s nonblock=%d\n", errno_name(r),
                 (fcntl(listener, F_GETFL) & O_NONBLOCK) != 0);
    } else if (!strcmp(path, "/fionbio")) {
        r = ioctl(listener, FIONBIO, &one);
        snprintf(body, cap, "ioctl=%s nonblock=%d\n", errno_name(r),
                 (fcntl(listener, F_GETFL) & O_NONBLOCK) != 0);
    } else if (!strcmp(path, "/bind")) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        getsockname(listener, (struct sockaddr *)&ss, &len);
        snprintf(body, cap, "bind=%s\n", errno_name(bind(listener, (struct sockaddr *)&ss, len)));
    } else if (!strcmp(path, "/accept2")) {
        /* Non-blocking: a blocking accept would wait for the next client (under kvmserver -e
         * it ends the request). A dup and a passed copy share the open file and its flag. */
        fcntl(listener, F_SETFL, O_NONBLOCK);
        int dup_fd = dup(listener), copy = passed_copy(listener);
        snprintf(body, cap, "accept=%s poll=%d epoll=%d dup_accept=%s dup_poll=%d "
                 "passed_accept=%s passed_poll=%d passed_epoll=%d\n",
                 try_accept(listener), ready_now(listener), epoll_ready_now(listener),
                 try_accept(dup_fd), ready_now(dup_fd), copy < 0 ? "none" : try_accept(copy),
                 ready_now(copy), epoll_ready_now(copy));
        close(dup_fd);
        if (copy >= 0)
            close(copy);
    } else {
        return 0;
    }
    return 200;
}

int main(int argc, char **argv)
{
    http_check_usage(argc, argv);
    http_app_init();
    listener = http_listen(argv[1], false);
    http_set_app_route(route);
    return http_serve_blocking(listener);
}
