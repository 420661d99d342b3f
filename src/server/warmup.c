/* Warm-up requests (see warmup.h). */
#include "server/warmup.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define WARMUP_IO_TIMEOUT_S 5

struct warmup {
    struct lx_proc *proc;
    unsigned count;
    struct sockaddr_storage addr;
    socklen_t addr_len;
};

/* Where to connect: the listener's own address, with a wildcard turned into loopback. */
static int connect_address(struct warmup *w, int listener)
{
    w->addr_len = sizeof w->addr;
    if (getsockname(listener, (struct sockaddr *)&w->addr, &w->addr_len) < 0)
        return -1;
    if (w->addr.ss_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&w->addr;
        if (in->sin_addr.s_addr == htonl(INADDR_ANY))
            in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    } else if (w->addr.ss_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&w->addr;
        if (IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr))
            in6->sin6_addr = in6addr_loopback;
    } else if (w->addr.ss_family != AF_UNIX) {
        errno = EAFNOSUPPORT;
        return -1;
    }
    return 0;
}

static int open_connection(const struct warmup *w)
{
    int fd = socket(w->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = { .tv_sec = WARMUP_IO_TIMEOUT_S };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (const struct sockaddr *)&w->addr, w->addr_len) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* One GET / with Connection: close, reading the response to its end. */
static int one_request(const struct warmup *w)
{
    static const char request[] =
        "GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: kvmserver-warmup\r\n"
        "Connection: close\r\n\r\n";
    int fd = open_connection(w);
    if (fd < 0)
        return -1;
    int rc = send(fd, request, sizeof request - 1, MSG_NOSIGNAL) == sizeof request - 1 ? 0 : -1;
    char buf[4096];
    ssize_t n;
    while (rc == 0 && (n = recv(fd, buf, sizeof buf, 0)) != 0)
        if (n < 0)
            rc = -1;
    close(fd);
    return rc;
}

static void *warmup_main(void *arg)
{
    struct warmup *w = arg;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    unsigned ok = 0;
    for (unsigned i = 0; i < w->count; i++)
        ok += one_request(w) == 0;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr, "kvmserver: warm-up: %u of %u requests answered in %.1f ms\n", ok,
            w->count, (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);
    /* Freeze at the program's next wait. It may be blocked in one already: an empty
     * connection wakes it (if it is left pending, a request VM gets it and sees EOF). */
    __atomic_store_n(&w->proc->server.freeze_on_wait, true, __ATOMIC_RELEASE);
    int fd = open_connection(w);
    if (fd >= 0)
        close(fd);
    free(w);
    return NULL;
}

static void warmup_start(void *ctx, int listener_host_fd)
{
    struct warmup *w = ctx;
    pthread_t thread;
    if (connect_address(w, listener_host_fd) < 0 ||
        pthread_create(&thread, NULL, warmup_main, w) != 0) {
        fprintf(stderr, "kvmserver: warm-up skipped: cannot reach the listener: %s\n",
                strerror(errno));
        __atomic_store_n(&w->proc->server.freeze_on_wait, true, __ATOMIC_RELEASE);
        free(w);
        return;
    }
    pthread_detach(thread);
}

void warmup_arm(struct lx_proc *p, unsigned count)
{
    struct warmup *w = calloc(1, sizeof *w);
    if (!w)
        return;
    w->proc = p;
    w->count = count;
    p->server.warmup = warmup_start;
    p->server.warmup_ctx = w;
}
