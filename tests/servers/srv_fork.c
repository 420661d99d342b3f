/* The classic isolation baseline: fork a child per connection (natively; the benchmark
 * compares kvmserver's ephemeral VMs against it). The child serves the connection and exits. */
#include "http.h"

#include <signal.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    http_check_usage(argc, argv);
    http_app_init();
    int listener = http_listen(argv[1], false);
    signal(SIGCHLD, SIG_IGN);               /* children are reaped by the kernel */
    static struct http_conn conn;
    for (;;) {
        int fd = http_accept(listener);
        if (fd < 0)
            return 1;
        pid_t child = fork();
        if (child == 0) {
            close(listener);
            http_conn_init(&conn, fd);
            while (http_conn_service(&conn) == CONN_OPEN)
                ;
            _exit(0);
        }
        close(fd);
    }
}
