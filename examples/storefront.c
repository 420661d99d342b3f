/* An HTTP front for `kvmserver -e storage ./kvstore SOCKET ++ run ./storefront PORT SOCKET`:
 * each request runs in a freshly reset request VM, and keeps what must outlive it in the
 * storage VM (examples/kvstore.c), reached over the unix socket SOCKET.
 *
 *   GET /visits        this process's own count (1 under -e: reset with the VM) and the
 *                      storage VM's count of all visits (it grows)
 *   GET /slow?key=K    a slow backend (200 ms) with a cache in front: the first request for
 *                      K computes it, later ones (in other request VMs) find it in storage
 *   GET /whoami[?ms=N] the pid of the storage VM that answers (then waits N ms, at most 2000):
 *                      with --1-to-1 each request VM has a storage VM of its own
 *
 *   storefront PORT SOCKET      (listens on 127.0.0.1:PORT) */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define SLOW_BACKEND_MS 200

static const char *storage_path;
static unsigned long local_visits;     /* this process's: reset with every request VM */

static void send_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        data += n;
        len -= (size_t)n;
    }
}

/* Sends one command to the storage VM and reads its one-line answer into out (without the
 * newline). Returns 0, or -1 with a message in out. */
static int storage_call(const char *command, char *out, size_t size)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s", storage_path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        snprintf(out, size, "storage unreachable: %s", strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    send_all(fd, command, strlen(command));
    size_t used = 0;
    while (used < size - 1) {
        ssize_t n = read(fd, out + used, size - 1 - used);
        if (n <= 0)
            break;
        used += (size_t)n;
        if (memchr(out, '\n', used))
            break;
    }
    close(fd);
    out[used] = '\0';
    char *nl = strchr(out, '\n');
    if (!nl) {
        snprintf(out, size, "storage gave no answer");
        return -1;
    }
    *nl = '\0';
    return 0;
}

static int route(const char *path, char *body, size_t size)
{
    char answer[320], command[128];
    if (!strcmp(path, "/visits")) {
        local_visits++;
        if (storage_call("incr visits\n", answer, sizeof answer) < 0)
            return snprintf(body, size, "%s\n", answer), 502;
        snprintf(body, size, "local=%lu storage=%s\n", local_visits, answer);
        return 200;
    }
    if (!strncmp(path, "/slow?key=", 10) && strlen(path + 10) > 0 && strlen(path + 10) < 60 &&
        !strpbrk(path + 10, " \r\n")) {
        const char *key = path + 10;
        snprintf(command, sizeof command, "get cache.%s\n", key);
        if (storage_call(command, answer, sizeof answer) < 0)
            return snprintf(body, size, "%s\n", answer), 502;
        if (strcmp(answer, "-")) {
            snprintf(body, size, "value=%s cached=yes\n", answer);
            return 200;
        }
        struct timespec slow = { 0, SLOW_BACKEND_MS * 1000000L };
        nanosleep(&slow, NULL);
        unsigned long value = 5381;
        for (const char *c = key; *c; c++)
            value = value * 33 + (unsigned char)*c;
        snprintf(command, sizeof command, "set cache.%s %lu\n", key, value);
        if (storage_call(command, answer, sizeof answer) < 0)
            return snprintf(body, size, "%s\n", answer), 502;
        snprintf(body, size, "value=%lu cached=no\n", value);
        return 200;
    }
    if (!strcmp(path, "/whoami") || !strncmp(path, "/whoami?ms=", 11)) {
        if (storage_call("pid\n", answer, sizeof answer) < 0)
            return snprintf(body, size, "%s\n", answer), 502;
        long ms = path[7] ? strtol(path + 11, NULL, 10) : 0;
        if (ms > 0 && ms <= 2000) {
            struct timespec wait = { ms / 1000, (ms % 1000) * 1000000L };
            nanosleep(&wait, NULL);
        }
        snprintf(body, size, "storage_pid=%s\n", answer);
        return 200;
    }
    snprintf(body, size, "try /visits, /slow?key=K or /whoami\n");
    return 404;
}

/* One request per connection: reads the request line, answers, closes. */
static void serve_connection(int fd)
{
    char buf[4096];
    size_t used = 0;
    while (used < sizeof buf - 1 && !memmem(buf, used, "\r\n\r\n", 4)) {
        ssize_t n = read(fd, buf + used, sizeof buf - 1 - used);
        if (n <= 0)
            return;
        used += (size_t)n;
    }
    buf[used] = '\0';
    char path[256] = "";
    if (sscanf(buf, "GET %255s ", path) != 1)
        return;
    char body[512], response[768];
    int status = route(path, body, sizeof body);
    int len = snprintf(response, sizeof response,
                       "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                       "Connection: close\r\n\r\n%s", status, status == 200 ? "OK" : "Error",
                       strlen(body), body);
    if (len > 0 && (size_t)len < sizeof response)
        send_all(fd, response, (size_t)len);
}

int main(int argc, char **argv)
{
    long port = argc == 3 ? strtol(argv[1], NULL, 10) : 0;
    if (port < 1 || port > 65535) {
        fprintf(stderr, "usage: %s PORT STORAGE-SOCKET\n", argv[0]);
        return 2;
    }
    storage_path = argv[2];
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (listener < 0 || setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(listener, 64) < 0) {
        perror("storefront: socket/bind/listen");
        return 1;
    }
    for (;;) {
        int fd = accept(listener, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            perror("storefront: accept");
            return 1;
        }
        serve_connection(fd);
        close(fd);
    }
}
