/* Warm-up requests (see warmup.h). */
#include "server/warmup.h"
#include "server/http_end.h"

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

#include "base/time.h"

#define WARMUP_IO_TIMEOUT_S 5
/* The longest the warm-up waits, after one of its requests, for the program to be quiet
 * (the personality's own wait for its threads is LX_QUIESCE_MAX_NS, 500 ms). */
#define WARMUP_PAUSE_MAX_NS (1000 * 1000000ll)
/* The most requests sent past the count to end after one that woke a helper thread, and the
 * most since the last such request for it to be looked for. */
#define WARMUP_EXTRA_MAX 64u

struct warmup {
    struct boot_freeze *freeze;
    unsigned count;
    int listener;                   /* the private listener (host fd) */
    struct sockaddr_storage addr;
    socklen_t addr_len;
};

/* Where to connect: the private listener's address (loopback, or an abstract unix name). */
static int connect_address(struct warmup *w, int listener)
{
    w->addr_len = sizeof w->addr;
    if (getsockname(listener, (struct sockaddr *)&w->addr, &w->addr_len) < 0)
        return -1;
    if (w->addr.ss_family != AF_INET && w->addr.ss_family != AF_INET6 &&
        w->addr.ss_family != AF_UNIX) {
        errno = EAFNOSUPPORT;
        return -1;
    }
    return 0;
}

/* A socket to connect to the private listener with. That listener accepts only the warm-up:
 * over TCP, a connection from the listener's own loopback address and the port published
 * here before connecting; over unix sockets, one from this process (linux/listener.h). */
static int warmup_socket(struct warmup *w)
{
    int fd = socket(w->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = { .tv_sec = WARMUP_IO_TIMEOUT_S };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (w->addr.ss_family != AF_UNIX) {
        struct sockaddr_storage self = w->addr;
        socklen_t len = w->addr_len;
        if (self.ss_family == AF_INET)
            ((struct sockaddr_in *)&self)->sin_port = 0;
        else
            ((struct sockaddr_in6 *)&self)->sin6_port = 0;
        if (bind(fd, (struct sockaddr *)&self, len) < 0 ||
            getsockname(fd, (struct sockaddr *)&self, &len) < 0) {
            close(fd);
            return -1;
        }
        uint16_t port = self.ss_family == AF_INET ? ((struct sockaddr_in *)&self)->sin_port
                                                  : ((struct sockaddr_in6 *)&self)->sin6_port;
        __atomic_store_n(&w->freeze->warmup_port, ntohs(port), __ATOMIC_RELEASE);
    }
    return fd;
}

static int connect_listener(const struct warmup *w, int fd)
{
    return connect(fd, (const struct sockaddr *)&w->addr, w->addr_len);
}

/* The warm-up's requests take turns among the shapes clients send: a JIT runtime that saw
 * one shape only specialises its header parsing to it, and the first real request of
 * another shape deoptimises that code (and the code inlined with it, such as a React
 * page's render functions) in every request VM, since each starts from the frozen image.
 * Measured with Deno serving tests/servers/runtime/react_ssr.js through node:http: after
 * 200 warm-up requests of one shape, a request from curl or wrk deoptimised 1-13 functions
 * and recompiled up to 10, per request VM; after the mix, none. Each HTTP/1.1 shape orders
 * its headers differently, and there are more than 4 of them: a site reading the headers
 * object then has more maps than V8 specialises to (4) and takes any order without a
 * deoptimisation. With 4, wrk's order (Connection before Host) was new to that site in
 * node:http's parserOnIncoming, and every request VM deoptimised it in 6 of 8 boots (0 of 8
 * with these). Adding python-requests' keep-alive shape too cost Node's React page at -w 200
 * an exit more a request and 734 against 875 req/s, so there are no more than that needs.
 * All ask for /. */
static const struct request_shape {
    const char *text;
    bool keep_alive;        /* the program keeps the connection: the client closes it */
} request_shapes[] = {
    /* load balancers' health checks */
    { "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", false },
    /* wrk -H "Connection: close", which puts its own headers first */
    { "GET / HTTP/1.1\r\nConnection: close\r\nHost: localhost\r\n\r\n", false },
    /* curl, which keeps the connection by default (so does wrk) */
    { "GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n",
      true },
    { "GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n"
      "Connection: close\r\n\r\n", false },
    /* a browser */
    { "GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) "
      "kvmserver-warmup\r\nAccept: text/html,application/xhtml+xml,*/*;q=0.8\r\n"
      "Accept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate\r\n"
      "Cookie: warmup=1\r\nUpgrade-Insecure-Requests: 1\r\nConnection: keep-alive\r\n\r\n",
      true },
    /* a reverse proxy (nginx's default upstream request is HTTP/1.0) */
    { "GET / HTTP/1.0\r\nHost: localhost\r\nX-Real-IP: 127.0.0.1\r\n"
      "X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\nUser-Agent: kvmserver-warmup\r\n"
      "Connection: close\r\n\r\n", false },
};
#define N_SHAPES (sizeof request_shapes / sizeof request_shapes[0])

/* Warm-up request number i; 0 once its response has come. A request that asks the program
 * to close is sent both ways a connection then ends: half of them read until the program
 * closes, the others close once they hold the whole response, as wrk and curl do. The
 * program then sees the client's end first, which takes other paths: Deno's node:http ends
 * its readable side (flow, Readable.read, endReadable), and when the warm-up never took
 * them, every request VM deoptimised those functions and compiled them again. *connected
 * tells whether the program got the connection. */
static int one_request(struct warmup *w, unsigned i, bool *connected)
{
    const struct request_shape *shape = &request_shapes[i % N_SHAPES];
    bool close_first = shape->keep_alive || i / N_SHAPES % 2;
    size_t len = strlen(shape->text);
    int fd = warmup_socket(w);
    *connected = false;
    if (fd < 0 || connect_listener(w, fd) < 0) {
        int err = errno;
        if (fd >= 0)
            close(fd);
        fprintf(stderr, "kvmserver: warm-up: cannot connect to the program's listener: %s\n",
                strerror(err));
        __atomic_store_n(&w->freeze->warmup_failed, true, __ATOMIC_RELEASE);
        return -1;
    }
    *connected = true;
    int rc = send(fd, shape->text, len, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
    struct http_end end;
    http_end_init(&end);
    bool complete = false;
    char buf[4096];
    ssize_t n;
    while (rc == 0 && !(complete && close_first) && (n = recv(fd, buf, sizeof buf, 0)) != 0)
        if (n < 0)
            rc = -1;
        else
            complete = http_end_feed(&end, buf, (size_t)n);
    close(fd);
    return rc;
}

/* After a request, until the program is quiet having taken `connections` of the warm-up's
 * connections: its helper threads then finish what the request gave them (a JIT's compiles)
 * before the next one, which installs the results. Sent back to back, the requests kept the
 * one vCPU to the main thread: Deno's React page froze with 4-25 compiles done and not
 * installed, and every request VM installed them again (and deoptimised some). A program
 * that is not quiet in time ends the pauses for the rest of the warm-up. Returns whether
 * it was quiet and the request had woken one of its threads. */
static bool pause_until_quiet(struct warmup *w, unsigned connections)
{
    struct boot_freeze *f = w->freeze;
    uint64_t deadline = now_ns() + WARMUP_PAUSE_MAX_NS;
    struct timespec until = { .tv_sec = (time_t)(deadline / NS_PER_SEC),
                              .tv_nsec = (long)(deadline % NS_PER_SEC) };
    pthread_mutex_lock(&f->lock);
    while (f->pausing && f->quiet_accepted < connections &&
           pthread_cond_timedwait(&f->quiet, &f->lock, &until) != ETIMEDOUT) {
    }
    if (f->pausing && f->quiet_accepted < connections) {
        fprintf(stderr, "kvmserver: warm-up: the program was not quiet within %lld ms of "
                "request %u (a connection left open?); the rest of the warm-up does not wait "
                "for it\n", WARMUP_PAUSE_MAX_NS / 1000000, connections);
        f->pausing = false;
    }
    bool woke = f->pausing && f->quiet_accepted >= connections && f->quiet_woke;
    pthread_mutex_unlock(&f->lock);
    return woke;
}

/* Whether request i (0-based), the next, is sent. A garbage-collected runtime's requests
 * fill its young generation, and every so many of them one collects it: in parallel, so
 * it wakes the helper threads. Frozen at a random point, the image often has that space
 * nearly full, and then every request VM collects it, again and again. Deno's React page
 * did, in 10 of 17 boots of 1,000 warm-up requests: 0.94k req/s and 911-925 us in the guest
 * a request against 1.22k and 714 us when frozen after a collection. So past the count,
 * while helper threads were woken by one of the last WARMUP_EXTRA_MAX requests and not by
 * the last one, another follows, up to WARMUP_EXTRA_MAX (or the count, if less) more. */
static bool another_request(const struct warmup *w, unsigned i, unsigned last_woke)
{
    if (i < w->count)
        return true;
    unsigned extra_max = w->count < WARMUP_EXTRA_MAX ? w->count : WARMUP_EXTRA_MAX;
    if (last_woke == UINT32_MAX || last_woke + 1 == i || i - last_woke > WARMUP_EXTRA_MAX ||
        i - w->count >= extra_max)
        return false;
    pthread_mutex_lock(&w->freeze->lock);
    bool pausing = w->freeze->pausing;      /* without the pauses, nothing is seen */
    pthread_mutex_unlock(&w->freeze->lock);
    return pausing;
}

/* The warm-up's one line, before the freeze is due (tests read the requests sent from it). */
static void report(const struct warmup *w, const struct timespec *t0, unsigned ok,
                   unsigned sent, unsigned last_woke)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
    if (sent > w->count)
        fprintf(stderr, "kvmserver: warm-up: %u of %u requests answered in %.1f ms (%u past "
                "-w, to freeze after one that woke a helper thread: %s)\n", ok, sent, ms,
                sent - w->count, last_woke + 1 == sent ? "done" : "none did");
    else    /* of -w's count, also when a failure ended the warm-up early */
        fprintf(stderr, "kvmserver: warm-up: %u of %u requests answered in %.1f ms\n", ok,
                w->count, ms);
}

static void *warmup_main(void *arg)
{
    struct warmup *w = arg;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    unsigned ok = 0, connections = 0, sent = 0, last_woke = UINT32_MAX;
    for (unsigned i = 0; another_request(w, i, last_woke) &&
                         !__atomic_load_n(&w->freeze->warmup_failed, __ATOMIC_ACQUIRE); i++) {
        bool connected;
        ok += one_request(w, i, &connected) == 0;
        sent++;
        connections += connected;
        if (connected && pause_until_quiet(w, connections))
            last_woke = i;
    }
    pthread_mutex_lock(&w->freeze->lock);
    w->freeze->pausing = false;
    pthread_mutex_unlock(&w->freeze->lock);
    report(w, &t0, ok, sent, last_woke);
    /* Freeze at the program's next wait. It may be blocked in one already: an empty
     * connection wakes it (if it is left pending, the freeze closes it with the private
     * listener); after a failure, shutting that listener down does (the program's accept
     * fails, and its next wait ends the boot). Neither the process nor its listener is
     * touched after the freeze is due: the freeze, and closing the listener, may follow. */
    int fd = -1;
    if (__atomic_load_n(&w->freeze->warmup_failed, __ATOMIC_ACQUIRE))
        shutdown(w->listener, SHUT_RD);
    else
        fd = warmup_socket(w);
    __atomic_store_n(&w->freeze->due, true, __ATOMIC_RELEASE);
    if (fd >= 0) {
        connect_listener(w, fd);
        close(fd);
    }
    free(w);
    return NULL;
}

static int warmup_start(void *ctx, int listener_host_fd)
{
    struct boot_freeze *f = ctx;
    struct warmup *w = f->warmup;
    pthread_t thread;
    int err = 0;
    f->warmup = NULL;                           /* once */
    __atomic_store_n(&f->due, false, __ATOMIC_RELEASE);
    w->listener = listener_host_fd;
    pthread_mutex_lock(&f->lock);
    f->pausing = true;
    pthread_mutex_unlock(&f->lock);
    if (connect_address(w, listener_host_fd) < 0)
        err = errno;
    else
        err = pthread_create(&thread, NULL, warmup_main, w);
    if (err) {
        pthread_mutex_lock(&f->lock);
        f->pausing = false;
        pthread_mutex_unlock(&f->lock);
        fprintf(stderr, "kvmserver: cannot start the warm-up: %s\n", strerror(err));
        free(w);
        return -err;
    }
    pthread_detach(thread);
    return 0;
}

static bool pause_due(void *ctx)
{
    struct boot_freeze *f = ctx;
    pthread_mutex_lock(&f->lock);
    bool pausing = f->pausing;
    pthread_mutex_unlock(&f->lock);
    return pausing;
}

static void warmup_quiet(void *ctx, unsigned accepted, bool quiet, bool woke)
{
    struct boot_freeze *f = ctx;
    pthread_mutex_lock(&f->lock);
    if (!quiet)
        f->pausing = false;
    else if (accepted > f->quiet_accepted) {
        f->quiet_accepted = accepted;
        f->quiet_woke = woke;
    } else
        f->quiet_woke |= woke;
    pthread_cond_broadcast(&f->quiet);
    pthread_mutex_unlock(&f->lock);
}

static bool freeze_due(void *ctx)
{
    return __atomic_load_n(&((struct boot_freeze *)ctx)->due, __ATOMIC_ACQUIRE);
}

static bool warmup_due(void *ctx)
{
    return ((struct boot_freeze *)ctx)->warmup != NULL;
}

static uint32_t warmup_port(void *ctx)
{
    return __atomic_load_n(&((struct boot_freeze *)ctx)->warmup_port, __ATOMIC_ACQUIRE);
}

static bool warmup_failed(void *ctx)
{
    return __atomic_load_n(&((struct boot_freeze *)ctx)->warmup_failed, __ATOMIC_ACQUIRE);
}

static const struct lx_freeze_hooks boot_freeze_hooks = { .freeze_due = freeze_due,
                                                          .warmup_due = warmup_due,
                                                          .warmup_start = warmup_start,
                                                          .warmup_port = warmup_port,
                                                          .warmup_failed = warmup_failed,
                                                          .pause_due = pause_due,
                                                          .warmup_quiet = warmup_quiet };

void boot_freeze_install(struct boot_freeze *f, struct lx_proc *p)
{
    *f = (struct boot_freeze){ .due = true };
    pthread_mutex_init(&f->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&f->quiet, &attr);
    pthread_condattr_destroy(&attr);
    p->server.freeze = &boot_freeze_hooks;
    p->server.freeze_ctx = f;
}

void warmup_arm(struct boot_freeze *f, unsigned count)
{
    struct warmup *w = calloc(1, sizeof *w);
    if (!w)
        return;
    w->freeze = f;
    w->count = count;
    f->warmup = w;
}
