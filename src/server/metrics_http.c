/* The --metrics HTTP listener (see metrics_http.h). One connection at a time, each with
 * short socket timeouts, so a slow scraper cannot hold it for long. */
#include "server/metrics_http.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

#include "base/log.h"

#define REQUEST_MAX 4096
#define IO_TIMEOUT_S 2

int metrics_listen(const char *address)
{
    const char *colon = strrchr(address, ':');
    if (!colon) {
        log_error("--metrics '%s': expected HOST:PORT", address);
        return -1;
    }
    char host[256];
    const char *start = address;
    size_t len = (size_t)(colon - address);
    if (len >= 2 && start[0] == '[' && start[len - 1] == ']') {
        start++;
        len -= 2;
    }
    if (len >= sizeof host) {
        log_error("--metrics '%s': host name too long", address);
        return -1;
    }
    memcpy(host, start, len);
    host[len] = '\0';
    const struct addrinfo hints = { .ai_flags = AI_PASSIVE | AI_NUMERICSERV,
                                    .ai_socktype = SOCK_STREAM };
    struct addrinfo *found;
    int gai = getaddrinfo(len && strcmp(host, "*") ? host : NULL, colon + 1, &hints, &found);
    if (gai) {
        log_error("--metrics %s: %s", address, gai_strerror(gai));
        return -1;
    }
    int fd = -1, err = 0;
    for (struct addrinfo *a = found; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        const int on = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
        if (bind(fd, a->ai_addr, a->ai_addrlen) < 0 || listen(fd, 16) < 0) {
            err = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(found);
    if (fd < 0)
        log_error("--metrics %s: cannot listen: %s", address, strerror(err));
    return fd;
}

struct metrics_http {
    int fd;
    const struct metrics *m;
};

/* One blocking sendmsg: it returns early only on an error or SO_SNDTIMEO (this thread takes
 * no signals), and then the scraper is given up on anyway. */
static void respond(int fd, const char *status, const char *type, const char *body, size_t len)
{
    char head[256];
    int n = snprintf(head, sizeof head, "HTTP/1.1 %s\r\nContent-Type: %s\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n", status, type, len);
    struct iovec iov[2] = { { head, (size_t)n }, { (void *)body, len } };
    const struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 2 };
    if (sendmsg(fd, &msg, MSG_NOSIGNAL) < 0 && errno != EPIPE && errno != ECONNRESET)
        log_error("metrics: sending the answer: %s", strerror(errno));
}

/* Reads the request head; true when it asks for GET /metrics. */
static bool wants_metrics(int fd, bool *complete)
{
    char req[REQUEST_MAX + 1];
    size_t len = 0;
    *complete = false;
    while (len < REQUEST_MAX) {
        ssize_t n = recv(fd, req + len, REQUEST_MAX - len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        len += (size_t)n;
        req[len] = '\0';
        if (strstr(req, "\r\n\r\n") || strstr(req, "\n\n")) {
            *complete = true;
            break;
        }
    }
    static const char get[] = "GET /metrics";
    const char after = req[sizeof get - 1];
    return len >= sizeof get && !memcmp(req, get, sizeof get - 1) &&
           (after == ' ' || after == '?');
}

static void serve_one(int fd, const struct metrics *m)
{
    const struct timeval timeout = { .tv_sec = IO_TIMEOUT_S };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    bool complete;
    if (!wants_metrics(fd, &complete)) {
        if (complete) {
            static const char body[] = "only GET /metrics is served here\n";
            respond(fd, "404 Not Found", "text/plain; charset=utf-8", body, sizeof body - 1);
        }
        return;
    }
    char *body = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&body, &len);
    if (!out) {
        static const char oom[] = "out of memory\n";
        respond(fd, "500 Internal Server Error", "text/plain", oom, sizeof oom - 1);
        return;
    }
    metrics_format(m, out);
    fclose(out);
    respond(fd, "200 OK", "text/plain; version=0.0.4; charset=utf-8", body, len);
    free(body);
}

static void *metrics_thread(void *arg)
{
    const struct metrics_http *h = arg;
    for (;;) {
        int conn = accept4(h->fd, NULL, NULL, SOCK_CLOEXEC);
        if (conn < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE) {
                usleep(100000);     /* out of fds for now: try again later */
                continue;
            }
            log_error("metrics listener: accept: %s; no more metrics",
                    strerror(errno));
            return NULL;
        }
        serve_one(conn, h->m);
        close(conn);
    }
}

int metrics_serve(int fd, const struct metrics *m)
{
    static struct metrics_http h;   /* lives as long as the process */
    h = (struct metrics_http){ .fd = fd, .m = m };
    pthread_t thread;
    int err = pthread_create(&thread, NULL, metrics_thread, &h);
    if (err) {
        log_error("cannot start the metrics thread: %s", strerror(err));
        return -1;
    }
    pthread_detach(thread);
    return 0;
}
