/* Test server: level-triggered epoll over non-blocking sockets; new connections come from
 * accept4(SOCK_NONBLOCK) until it reports EAGAIN. */
#include "http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_EVENTS 32

static void accept_all(int epoll_fd, int listener)
{
    for (;;) {
        int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;                          /* EAGAIN: drained; other errors: try next time */
        struct http_conn *conn = malloc(sizeof *conn);
        if (!conn) {
            close(fd);
            continue;
        }
        http_conn_init(conn, fd);
        struct epoll_event event = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = conn };
        if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &event) < 0) {
            close(fd);
            free(conn);
        }
    }
}

int main(int argc, char **argv)
{
    http_check_usage(argc, argv);
    http_app_init();
    int listener = http_listen(argv[1], true);
    int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd < 0) {
        perror("epoll_create1");
        return 1;
    }
    /* data.ptr NULL marks the listener; connections carry their struct http_conn. */
    struct epoll_event event = { .events = EPOLLIN, .data.ptr = NULL };
    if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, listener, &event) < 0) {
        perror("epoll_ctl");
        return 1;
    }
    for (;;) {
        struct epoll_event events[MAX_EVENTS];
        int ready = epoll_wait(epoll_fd, events, MAX_EVENTS, -1);
        if (ready < 0) {
            if (errno == EINTR)
                continue;
            perror("epoll_wait");
            return 1;
        }
        for (int i = 0; i < ready; i++) {
            struct http_conn *conn = events[i].data.ptr;
            if (!conn) {
                accept_all(epoll_fd, listener);
                continue;
            }
            /* Level-triggered: one read per wake-up is enough, epoll reports leftovers again.
             * Closing the descriptor removes it from the epoll set. */
            if (http_conn_service(conn) == CONN_DONE) {
                close(conn->fd);
                free(conn);
            }
        }
    }
}
