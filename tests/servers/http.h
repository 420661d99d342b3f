/* Shared code of the test servers (srv_accept, srv_poll, srv_select, srv_epoll): opening the
 * listener, a per-connection request buffer, a strict HTTP/1.x GET parser and the test routes.
 * Each server differs only in how it waits for sockets, which is what the tests exercise. */
#ifndef KVMS_TEST_HTTP_H
#define KVMS_TEST_HTTP_H
#include <stdbool.h>
#include <stddef.h>

/* Largest request head (request line + headers) accepted; bigger requests get 431. */
#define HTTP_MAX_HEAD 8192

struct http_conn {
    int fd;
    size_t used;                    /* bytes of `in` holding unanswered input */
    char in[HTTP_MAX_HEAD];
};

enum conn_state { CONN_OPEN, CONN_DONE };

/* Allocates the heap state of the routes; call once before listening so that it is part of
 * the frozen image kvmserver forks request VMs from. Exits on failure. */
void http_app_init(void);

/* Opens a listening socket for "PORT" (TCP on 127.0.0.1) or "unix:/path". With `nonblocking`
 * the listener is O_NONBLOCK. Exits with a message on stderr on failure. */
int http_listen(const char *spec, bool nonblocking);

/* Exits with a usage message unless argv has exactly one argument. */
void http_check_usage(int argc, char **argv);

/* The next connection from a blocking listener: accept() again after EINTR or ECONNABORTED.
 * Returns the fd, or -1 on any other error. */
int http_accept(int listener);

void http_conn_init(struct http_conn *conn, int fd);

/* Reads once from the connection (blocking or not, as the socket is) and answers every complete
 * request now buffered. CONN_DONE: the peer closed, an error happened, or the last request asked
 * for the connection to close; the caller closes conn->fd. On a non-blocking socket with no data
 * yet, returns CONN_OPEN. */
enum conn_state http_conn_service(struct http_conn *conn);

#endif
