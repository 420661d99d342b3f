/* Test server: each connection asks for one route, which changes the address space or
 * probes it, and answers one line. Under `kvmserver -e` every connection must find the
 * mappings exactly as they were when the server first waited in accept():
 *   /fixed-map      maps both fixed addresses with MAP_FIXED and writes there: FAR_ADDR, far
 *                   from any mapping (the VM's page tables get new tables), and near_addr,
 *                   unmapped before the freeze next to other mappings
 *   /fixed-probe    write() from each: "efault efault" when neither is mapped
 *   /fixed-touch-far, /fixed-touch-near   read one directly: SIGSEGV when it is not mapped
 *   /widen          makes the read-only page writable and writes there
 *   /widen-probe    read() into the read-only page: "efault", then its first byte
 *   /widen-touch    writes the read-only page directly: SIGSEGV when it is read-only
 *   /unmap          unmaps the frozen page
 *   /unmap-touch    reads the frozen page directly: its first byte ('M' at the freeze)
 * Paths are matched by prefix of the request line; other paths answer "unknown". */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define PAGE 4096
#define FAR_ADDR ((char *)0x1000000000ull)   /* 64 GiB: inside kvmserver's address space */

static char *ro_page;       /* 'R' bytes, read-only at the freeze */
static char *frozen_page;   /* 'M' bytes, read-write at the freeze */
static char *near_addr;     /* unmapped at the freeze */

static char *map_page(int prot, char fill)
{
    char *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    memset(p, fill, PAGE);
    if (mprotect(p, PAGE, prot) < 0) {
        perror("mprotect");
        exit(1);
    }
    return p;
}

/* Can a system call read one byte at `at`? */
static const char *probe_read(const char *at)
{
    int fds[2];
    if (pipe(fds) < 0)
        return "pipe failed";
    ssize_t n = write(fds[1], at, 1);
    int err = errno;
    close(fds[0]);
    close(fds[1]);
    return n < 0 && err == EFAULT ? "efault" : "readable";
}

static const char *route(const char *path, char *buf, size_t cap)
{
    if (!strncmp(path, "/fixed-map ", 11)) {
        char *const at[] = { FAR_ADDR, near_addr };
        for (int i = 0; i < 2; i++) {
            char *p = mmap(at[i], PAGE, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
            if (p != at[i])
                return "mmap failed";
            p[0] = 'X';
        }
        return "mapped";
    }
    if (!strncmp(path, "/fixed-probe ", 13)) {
        snprintf(buf, cap, "%s %s", probe_read(FAR_ADDR), probe_read(near_addr));
        return buf;
    }
    if (!strncmp(path, "/fixed-touch-far ", 17)) {
        snprintf(buf, cap, "readable %c", *(volatile char *)FAR_ADDR);
        return buf;
    }
    if (!strncmp(path, "/fixed-touch-near ", 18)) {
        snprintf(buf, cap, "readable %c", *(volatile char *)near_addr);
        return buf;
    }
    if (!strncmp(path, "/widen ", 7)) {
        if (mprotect(ro_page, PAGE, PROT_READ | PROT_WRITE) < 0)
            return "mprotect failed";
        ro_page[0] = 'W';
        return "widened";
    }
    if (!strncmp(path, "/widen-probe ", 13)) {
        int fd = open("/dev/zero", O_RDONLY);
        if (fd < 0)
            return "open failed";
        ssize_t n = read(fd, ro_page, 1);
        int err = errno;
        close(fd);
        snprintf(buf, cap, "%s %c", n < 0 && err == EFAULT ? "efault" : "writable", ro_page[0]);
        return buf;
    }
    if (!strncmp(path, "/widen-touch ", 13)) {
        *(volatile char *)ro_page = 'T';
        return "writable";
    }
    if (!strncmp(path, "/unmap ", 7))
        return munmap(frozen_page, PAGE) < 0 ? "munmap failed" : "unmapped";
    if (!strncmp(path, "/unmap-touch ", 13)) {
        snprintf(buf, cap, "frozen %c", *(volatile char *)frozen_page);
        return buf;
    }
    return "unknown";
}

static void serve(int fd)
{
    char req[2048];
    size_t used = 0;
    while (used < sizeof req - 1 && !memmem(req, used, "\r\n\r\n", 4)) {
        ssize_t n = read(fd, req + used, sizeof req - 1 - used);
        if (n <= 0)
            return;
        used += (size_t)n;
    }
    req[used] = 0;
    char buf[64], out[256];
    const char *body = strncmp(req, "GET ", 4) ? "bad request" : route(req + 4, buf, sizeof buf);
    int len = snprintf(out, sizeof out,
                       "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s\n",
                       strlen(body) + 1, body);
    if (write(fd, out, (size_t)len) < 0)
        perror("write");
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    ro_page = map_page(PROT_READ, 'R');
    frozen_page = map_page(PROT_READ | PROT_WRITE, 'M');
    near_addr = map_page(PROT_READ | PROT_WRITE, 0);
    if (munmap(near_addr, PAGE) < 0) {
        perror("munmap");
        return 1;
    }
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1])),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(listener, 64) < 0) {
        perror("listen");
        return 1;
    }
    for (;;) {
        int fd = accept(listener, NULL, NULL);
        if (fd < 0)
            continue;
        serve(fd);
        close(fd);
    }
}
