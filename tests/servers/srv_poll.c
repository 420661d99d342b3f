/* Test server: one poll() over the listener and every open connection. */
#include "http.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CONNS 64

static struct pollfd fds[MAX_CONNS + 1];    /* [0] is the listener */
static struct http_conn conns[MAX_CONNS + 1];

int main(int argc, char **argv)
{
    http_check_usage(argc, argv);
    http_app_init();
    fds[0] = (struct pollfd){ .fd = http_listen(argv[1], false), .events = POLLIN };
    nfds_t count = 1;
    for (;;) {
        if (poll(fds, count, -1) < 0) {
            if (errno == EINTR)
                continue;
            perror("poll");
            return 1;
        }
        /* Connections first, backwards, so removing one (moving the last into its slot) does
         * not skip any. The listener's slot 0 is never moved. */
        for (nfds_t i = count - 1; i >= 1; i--) {
            if (!fds[i].revents)
                continue;
            if (http_conn_service(&conns[i]) == CONN_DONE) {
                close(fds[i].fd);
                count--;
                fds[i] = fds[count];
                conns[i] = conns[count];
            }
        }
        if (fds[0].revents & POLLIN) {
            int fd = accept4(fds[0].fd, NULL, NULL, SOCK_CLOEXEC);
            if (fd < 0)
                continue;
            if (count > MAX_CONNS) {        /* full: refuse rather than grow without bound */
                close(fd);
                continue;
            }
            fds[count] = (struct pollfd){ .fd = fd, .events = POLLIN };
            http_conn_init(&conns[count], fd);
            count++;
        }
    }
}
