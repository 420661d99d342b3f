/* The bundled example `make run` serves: a small static HTTP server, one connection at a time.
 *
 *   httpd [PORT]        (default 8000; listens on 127.0.0.1 only)
 *
 * Every answer shows how many requests this process has served. Natively the number grows.
 * Under `kvmserver -e` every request runs in a VM reset to the moment the server first waited
 * for a connection, so every visitor sees "1": nothing a request changes survives it. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static unsigned long requests_served;   /* the per-process counter the page shows */

static int listen_on(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        perror("socket");
        exit(1);
    }
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(fd, 64) < 0) {
        perror("bind/listen");
        exit(1);
    }
    return fd;
}

/* Reads until the end of the request head (or 4 KiB, or the peer gives up). The request
 * itself does not matter: every path gets the same page. */
static void read_request(int fd)
{
    char buf[4096];
    size_t used = 0;
    while (used < sizeof buf - 1) {
        ssize_t n = read(fd, buf + used, sizeof buf - 1 - used);
        if (n <= 0)
            return;
        used += (size_t)n;
        buf[used] = '\0';
        if (strstr(buf, "\r\n\r\n"))
            return;
    }
}

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

static void answer(int fd)
{
    requests_served++;
    char body[1024];
    int body_len = snprintf(body, sizeof body,
        "<!doctype html>\n<html><head><title>kvmserver example</title></head>\n"
        "<body style=\"font-family: sans-serif\">\n"
        "<h1>Hello from inside a KVM virtual machine!</h1>\n"
        "<p>This process has served <b>%lu</b> request%s.</p>\n"
        "<p>With <code>kvmserver -e</code> every request starts from the same frozen state, "
        "so this number stays at 1 however often you reload.</p>\n"
        "</body></html>\n",
        requests_served, requests_served == 1 ? "" : "s");
    char response[1280];
    int len = snprintf(response, sizeof response,
        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
        "Content-Length: %d\r\nConnection: close\r\n\r\n%s", body_len, body);
    if (body_len > 0 && len > 0 && (size_t)len < sizeof response)
        send_all(fd, response, (size_t)len);
}

int main(int argc, char **argv)
{
    int port = 8000;
    if (argc > 1) {
        char *end;
        long value = strtol(argv[1], &end, 10);
        if (end == argv[1] || *end || value < 1 || value > 65535) {
            fprintf(stderr, "usage: %s [PORT]\n", argv[0]);
            return 2;
        }
        port = (int)value;
    }
    int listener = listen_on(port);
    fprintf(stderr, "httpd: serving http://127.0.0.1:%d/\n", port);
    for (;;) {
        int fd = accept(listener, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            perror("accept");
            return 1;
        }
        read_request(fd);
        answer(fd);
        close(fd);
    }
}
