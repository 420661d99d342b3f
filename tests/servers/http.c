/* See http.h. Requests are hostile input: every length is checked against its buffer, numbers
 * are bounded before use, and anything unexpected is answered with a 4xx and a closed
 * connection rather than guessed at. */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define SECRET_MAX 64               /* including the terminating NUL */
#define EAT_MAX_MIB 65536           /* /eat?mb= above this is refused, not attempted */
#define SLEEP_MAX_MS 60000
#define WRITE_WAIT_MS 5000          /* how long a full socket buffer may stall one response */

/* Route state. Both a global and a heap copy, because kvmserver must isolate both the program's
 * data segment and the memory it allocated before freezing. */
static unsigned long global_counter;
static unsigned long *heap_counter;
static char global_secret[SECRET_MAX];
static char *heap_secret;

void http_app_init(void)
{
    heap_counter = calloc(1, sizeof *heap_counter);
    heap_secret = calloc(1, SECRET_MAX);
    if (!heap_counter || !heap_secret) {
        fputs("out of memory\n", stderr);
        exit(1);
    }
}

void http_check_usage(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT|unix:/path\n", argc > 0 ? argv[0] : "server");
        exit(2);
    }
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static int parse_port(const char *text)
{
    char *end;
    errno = 0;
    long port = strtol(text, &end, 10);
    if (errno || end == text || *end || port < 1 || port > 65535) {
        fprintf(stderr, "bad port '%s'\n", text);
        exit(2);
    }
    return (int)port;
}

int http_listen(const char *spec, bool nonblocking)
{
    int type = SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0);
    int fd;
    if (strncmp(spec, "unix:", 5) == 0) {
        struct sockaddr_un addr = { .sun_family = AF_UNIX };
        const char *path = spec + 5;
        if (!*path || strlen(path) >= sizeof addr.sun_path) {
            fprintf(stderr, "bad unix socket path '%s'\n", path);
            exit(2);
        }
        memcpy(addr.sun_path, path, strlen(path) + 1);
        fd = socket(AF_UNIX, type, 0);
        if (fd < 0)
            die("socket");
        if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0)
            die("bind");
    } else {
        struct sockaddr_in addr = { .sin_family = AF_INET,
                                    .sin_port = htons((uint16_t)parse_port(spec)),
                                    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        fd = socket(AF_INET, type, 0);
        if (fd < 0)
            die("socket");
        int one = 1;
        /* Lets a test restart on a port still in TIME_WAIT; failure is harmless. */
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0)
            die("bind");
    }
    if (listen(fd, 128) < 0)
        die("listen");
    return fd;
}

int http_accept(int listener)
{
    for (;;) {
        int fd = accept(listener, NULL, NULL);
        if (fd >= 0 || (errno != EINTR && errno != ECONNABORTED))
            return fd;
    }
}

void http_conn_init(struct http_conn *conn, int fd)
{
    conn->fd = fd;
    conn->used = 0;
}

/* Writes everything, waiting (bounded) when a non-blocking socket is full. */
static bool write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n > 0) {
            data += n;
            len -= (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd wait = { .fd = fd, .events = POLLOUT };
            if (poll(&wait, 1, WRITE_WAIT_MS) <= 0)
                return false;
        } else {
            return false;
        }
    }
    return true;
}

struct response {
    int status;
    bool keep_alive;
    char body[256];
};

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

/* One write per response: a separate write for the body would meet Nagle's algorithm and the
 * client's delayed ACK on keep-alive connections (40 ms per request). */
static bool send_response(int fd, const struct response *r)
{
    char out[512];
    int n = snprintf(out, sizeof out,
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                     "Connection: %s\r\n\r\n%s",
                     r->status, reason(r->status), strlen(r->body),
                     r->keep_alive ? "keep-alive" : "close", r->body);
    if (n < 0 || (size_t)n >= sizeof out)
        return false;
    return write_all(fd, out, (size_t)n);
}

static void set_body(struct response *r, int status, const char *text)
{
    r->status = status;
    snprintf(r->body, sizeof r->body, "%s", text);
}

/* Finds `name=` in a query string ("a=1&b=2"); returns the value (up to '&' or the end) and its
 * length through *len, or NULL. */
static const char *query_value(const char *query, const char *name, size_t *len)
{
    size_t name_len = strlen(name);
    for (const char *p = query; p && *p; ) {
        if (strncmp(p, name, name_len) == 0 && p[name_len] == '=') {
            const char *value = p + name_len + 1;
            *len = strcspn(value, "&");
            return value;
        }
        p = strchr(p, '&');
        if (p)
            p++;
    }
    return NULL;
}

/* A decimal number in [0, max], all of the value; false otherwise. */
static bool query_number(const char *query, const char *name, unsigned long max,
                         unsigned long *out)
{
    size_t len;
    const char *value = query_value(query, name, &len);
    if (!value || len == 0 || len > 9)
        return false;
    unsigned long n = 0;
    for (size_t i = 0; i < len; i++) {
        if (value[i] < '0' || value[i] > '9')
            return false;
        n = n * 10 + (unsigned long)(value[i] - '0');
    }
    if (n > max)
        return false;
    *out = n;
    return true;
}

static void route_counter(struct response *r)
{
    global_counter++;
    (*heap_counter)++;
    r->status = 200;
    snprintf(r->body, sizeof r->body, "global=%lu heap=%lu\n", global_counter, *heap_counter);
}

static bool secret_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-';
}

static void route_secret(struct response *r, const char *query)
{
    size_t len;
    const char *value = query_value(query, "set", &len);
    if (value) {
        if (len == 0 || len >= SECRET_MAX) {
            set_body(r, 400, "secret must be 1-63 characters\n");
            return;
        }
        for (size_t i = 0; i < len; i++)
            if (!secret_char_ok(value[i])) {
                set_body(r, 400, "secret characters: A-Z a-z 0-9 _ -\n");
                return;
            }
        memcpy(global_secret, value, len);
        global_secret[len] = '\0';
        memcpy(heap_secret, value, len);
        heap_secret[len] = '\0';
        set_body(r, 200, "stored\n");
        return;
    }
    r->status = 200;
    snprintf(r->body, sizeof r->body, "global=%s heap=%s\n",
             global_secret[0] ? global_secret : "none", heap_secret[0] ? heap_secret : "none");
}

static _Noreturn void route_spin(void)
{
    volatile unsigned long turns = 0;
    for (;;)
        turns++;
}

/* External and volatile: the compiler cannot see it is NULL, so it emits a real store (not a
 * trap instruction, nor nothing at all) and the guest takes a genuine page fault. */
int *volatile http_crash_target;

static void route_crash(void)
{
    *http_crash_target = 1;
}

static void route_eat(struct response *r, const char *query)
{
    unsigned long mib;
    if (!query_number(query, "mb", EAT_MAX_MIB, &mib)) {
        set_body(r, 400, "usage: /eat?mb=N\n");
        return;
    }
    size_t bytes = (size_t)mib << 20;       /* mib <= 65536: no overflow on 64-bit */
    char *block = malloc(bytes ? bytes : 1);
    if (!block) {
        set_body(r, 503, "out of memory\n");
        return;
    }
    for (size_t offset = 0; offset < bytes; offset += 4096)
        ((volatile char *)block)[offset] = 1;   /* touch every page so it is really used */
    free(block);
    r->status = 200;
    snprintf(r->body, sizeof r->body, "ate %lu MiB\n", mib);
}

static void route_sleep(struct response *r, const char *query)
{
    unsigned long ms;
    if (!query_number(query, "ms", SLEEP_MAX_MS, &ms)) {
        set_body(r, 400, "usage: /sleep?ms=N\n");
        return;
    }
    struct timespec left = { .tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000 };
    while (nanosleep(&left, &left) < 0 && errno == EINTR)
        ;
    r->status = 200;
    snprintf(r->body, sizeof r->body, "slept %lu ms\n", ms);
}

/* An outgoing connection to 127.0.0.1:port, answered with its outcome ("connect: 0" or the
 * errno), so a test can see the network policy refuse it. */
static void route_connect(struct response *r, const char *query)
{
    unsigned long port;
    if (!query_number(query, "port", 65535, &port)) {
        set_body(r, 400, "usage: /connect?port=N\n");
        return;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int err = fd < 0 ? errno : connect(fd, (struct sockaddr *)&to, sizeof to) < 0 ? errno : 0;
    if (fd >= 0)
        close(fd);
    r->status = 200;
    snprintf(r->body, sizeof r->body, "connect: %d\n", err);
}

/* The request being answered, for /stale: its connection and where its head ends. */
static const struct http_conn *answering;
static size_t answering_end;

/* Counts the non-zero bytes of the receive buffer past the request being answered: what an
 * earlier, longer request into this buffer left there. A buffer from the frozen image that no
 * request has used yet has none. */
static void route_stale(struct response *r)
{
    size_t stale = 0;
    for (size_t i = answering_end; i < sizeof answering->in; i++)
        stale += answering->in[i] != 0;
    r->status = 200;
    snprintf(r->body, sizeof r->body, "stale=%zu\n", stale);
}

static http_app_route_fn *app_route;

void http_set_app_route(http_app_route_fn *route)
{
    app_route = route;
}

static void route(struct response *r, const char *path, const char *query)
{
    if (app_route && (r->status = app_route(path, query, r->body, sizeof r->body)) != 0)
        return;
    if (strcmp(path, "/") == 0)
        set_body(r, 200, "hello\n");
    else if (strcmp(path, "/counter") == 0)
        route_counter(r);
    else if (strcmp(path, "/secret") == 0)
        route_secret(r, query);
    else if (strcmp(path, "/spin") == 0)
        route_spin();
    else if (strcmp(path, "/crash") == 0)
        route_crash();
    else if (strcmp(path, "/eat") == 0)
        route_eat(r, query);
    else if (strcmp(path, "/sleep") == 0)
        route_sleep(r, query);
    else if (strcmp(path, "/connect") == 0)
        route_connect(r, query);
    else if (strcmp(path, "/stale") == 0)
        route_stale(r);
    else
        set_body(r, 404, "not found\n");
}

/* Does the comma-separated header value contain `token` (case-insensitive)? */
static bool has_token(const char *value, const char *token)
{
    size_t token_len = strlen(token);
    while (*value) {
        value += strspn(value, " \t,");
        size_t len = strcspn(value, ",");
        size_t trimmed = len;
        while (trimmed > 0 && (value[trimmed - 1] == ' ' || value[trimmed - 1] == '\t'))
            trimmed--;
        if (trimmed == token_len && strncasecmp(value, token, token_len) == 0)
            return true;
        value += len;
    }
    return false;
}

/* Parses one request head (NUL-terminated, lines ending in CRLF, without the final empty line)
 * and fills the response. A malformed request gets 400 and closes the connection. */
static void handle_head(char *head, struct response *r)
{
    r->keep_alive = false;
    char *line_end = strstr(head, "\r\n");
    if (line_end)
        *line_end = '\0';
    char *method = head;
    char *target = strchr(method, ' ');
    char *version = target ? strchr(target + 1, ' ') : NULL;
    if (!target || !version || strchr(version + 1, ' ')) {
        set_body(r, 400, "bad request line\n");
        return;
    }
    *target++ = '\0';
    *version++ = '\0';
    bool http11 = strcmp(version, "HTTP/1.1") == 0;
    if (!http11 && strcmp(version, "HTTP/1.0") != 0) {
        set_body(r, 400, "unsupported HTTP version\n");
        return;
    }
    bool keep_alive = http11;
    for (char *line = line_end ? line_end + 2 : NULL; line && *line; ) {
        char *next = strstr(line, "\r\n");
        if (next) {
            *next = '\0';
            next += 2;
        }
        char *colon = strchr(line, ':');
        if (!colon || colon == line) {
            set_body(r, 400, "bad header\n");
            return;
        }
        *colon = '\0';
        const char *value = colon + 1 + strspn(colon + 1, " \t");
        if (strcasecmp(line, "Connection") == 0) {
            if (has_token(value, "close"))
                keep_alive = false;
            else if (has_token(value, "keep-alive"))
                keep_alive = true;
        } else if (strcasecmp(line, "Transfer-Encoding") == 0 ||
                   (strcasecmp(line, "Content-Length") == 0 && strcmp(value, "0") != 0)) {
            /* These servers read no request bodies; refusing keeps framing unambiguous. */
            set_body(r, 400, "request bodies are not accepted\n");
            return;
        }
        line = next;
    }
    if (strcmp(method, "GET") != 0) {
        r->keep_alive = keep_alive;
        set_body(r, 405, "only GET\n");
        return;
    }
    if (target[0] != '/') {
        set_body(r, 400, "bad target\n");
        return;
    }
    r->keep_alive = keep_alive;
    char *query = strchr(target, '?');
    if (query)
        *query++ = '\0';
    route(r, target, query ? query : "");
}

/* Length of the head including its terminating empty line, or 0 if not complete yet. */
static size_t head_length(const char *data, size_t len)
{
    for (size_t i = 3; i < len; i++)
        if (data[i - 3] == '\r' && data[i - 2] == '\n' && data[i - 1] == '\r' && data[i] == '\n')
            return i + 1;
    return 0;
}

enum conn_state http_conn_service(struct http_conn *conn)
{
    ssize_t n = read(conn->fd, conn->in + conn->used, sizeof conn->in - conn->used);
    if (n == 0)
        return CONN_DONE;
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? CONN_OPEN : CONN_DONE;
    conn->used += (size_t)n;

    for (;;) {
        size_t length = head_length(conn->in, conn->used);
        struct response r = { 0 };
        if (length == 0) {
            if (conn->used < sizeof conn->in)
                return CONN_OPEN;
            set_body(&r, 431, "request head too large\n");
            send_response(conn->fd, &r);
            return CONN_DONE;
        }
        char head[HTTP_MAX_HEAD + 1];
        memcpy(head, conn->in, length - 2);      /* keep the last header's CRLF, drop the blank */
        head[length - 2] = '\0';
        answering = conn;
        answering_end = length;
        if (memchr(head, '\0', length - 2))
            set_body(&r, 400, "NUL in request\n");
        else
            handle_head(head, &r);
        memmove(conn->in, conn->in + length, conn->used - length);
        conn->used -= length;
        if (!send_response(conn->fd, &r) || !r.keep_alive)
            return CONN_DONE;
    }
}

int http_serve_blocking(int listener)
{
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
