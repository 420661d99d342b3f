/* Test server: the classic blocking loop. accept() one connection, serve its requests
 * (keep-alive included) until it closes, then accept the next. */
#include "http.h"

#include <unistd.h>

int main(int argc, char **argv)
{
    http_check_usage(argc, argv);
    http_app_init();
    int listener = http_listen(argv[1], false);
    static struct http_conn conn;           /* static: 8 KiB of buffer off the stack */
    for (;;) {
        int fd = http_accept(listener);
        if (fd < 0)
            return 1;
        http_conn_init(&conn, fd);
        while (http_conn_service(&conn) == CONN_OPEN)
            ;
        close(fd);
    }
}
