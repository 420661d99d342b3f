/* Test server: one select() over the listener and every open connection. select() only takes
 * descriptors below FD_SETSIZE, so a connection numbered higher is refused. */
#include "http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

static struct http_conn *conns[FD_SETSIZE];    /* indexed by descriptor; NULL = not open */

int main(int argc, char **argv)
{
    http_check_usage(argc, argv);
    http_app_init();
    int listener = http_listen(argv[1], false);
    if (listener >= FD_SETSIZE)
        return 1;
    for (;;) {
        fd_set readable;
        FD_ZERO(&readable);
        FD_SET(listener, &readable);
        int highest = listener;
        for (int fd = 0; fd < FD_SETSIZE; fd++)
            if (conns[fd]) {
                FD_SET(fd, &readable);
                highest = fd > highest ? fd : highest;
            }
        if (select(highest + 1, &readable, NULL, NULL, NULL) < 0) {
            if (errno == EINTR)
                continue;
            perror("select");
            return 1;
        }
        for (int fd = 0; fd <= highest; fd++) {
            if (fd == listener || !conns[fd] || !FD_ISSET(fd, &readable))
                continue;
            if (http_conn_service(conns[fd]) == CONN_DONE) {
                close(fd);
                free(conns[fd]);
                conns[fd] = NULL;
            }
        }
        if (FD_ISSET(listener, &readable)) {
            int fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
            if (fd < 0)
                continue;
            struct http_conn *conn = fd < FD_SETSIZE ? malloc(sizeof *conn) : NULL;
            if (!conn) {
                close(fd);
                continue;
            }
            http_conn_init(conn, fd);
            conns[fd] = conn;
        }
    }
}
