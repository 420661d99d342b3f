/* Test server: answers each connection with what the process knows about its own identity
 * and its fork-detection state, then closes it (tests/e2e/test_randomness.py). Under
 * `kvmserver -e` each request is a new process generation, as a forked child is: a new pid,
 * the same one through every interface, MADV_WIPEONFORK memory zero again, and the kernel's
 * random bytes fresh. */
#include "http.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MARK 0xab

static int boot_pid, peer[2], urandom_fd;
static unsigned char *wiped, *kept;

/* The pid field of /proc/self/stat, or the number after "key" in /proc/self/status. */
static long proc_number(const char *file, const char *key)
{
    char buf[4096];
    FILE *f = fopen(file, "re");
    if (!f)
        return -errno;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *at = key ? strstr(buf, key) : buf;
    return at ? strtol(at + (key ? strlen(key) : 0), NULL, 10) : -1;
}

static long link_number(const char *path)
{
    char buf[64];
    ssize_t n = readlink(path, buf, sizeof buf - 1);
    if (n < 0)
        return -errno;
    buf[n] = 0;
    return strtol(buf, NULL, 10);
}

/* 8 bytes in hex from the kernel's generator: the fd opened before the freeze, or getrandom. */
static const char *random_hex(char out[17], bool from_fd)
{
    unsigned char b[8] = { 0 };
    if ((from_fd ? read(urandom_fd, b, sizeof b) : getrandom(b, sizeof b, 0)) != sizeof b)
        return "failed";
    for (int i = 0; i < 8; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
    return out;
}

/* 0 or -errno: a signal nobody handles (ignored), aimed in one of the ways libc does. */
static int result(int ret) { return ret < 0 ? -errno : ret; }

static void answer(int fd)
{
    char req[HTTP_MAX_HEAD];
    (void)!read(fd, req, sizeof req);
    struct ucred cred = { 0 };
    socklen_t len = sizeof cred;
    int cred_ok = getsockopt(peer[0], SOL_SOCKET, SO_PEERCRED, &cred, &len);
    char body[1024], from_fd[17], from_call[17];
    int n = snprintf(body, sizeof body,
        "pid=%d tid=%ld ppid=%d boot_pid=%d rawpid=%ld stat=%ld status=%ld self=%ld "
        "kill=%d tgkill=%d pthread_kill=%d raise=%d peercred=%d wiped=%d kept=%d "
        "bad_advice=%d urandom=%s getrandom=%s\n",
        getpid(), (long)syscall(SYS_gettid), getppid(), boot_pid, (long)syscall(SYS_getpid),
        proc_number("/proc/self/stat", NULL), proc_number("/proc/self/status", "\nPid:"),
        link_number("/proc/self"), result(kill(getpid(), SIGUSR1)),
        result((int)syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), SIGUSR1)),
        -pthread_kill(pthread_self(), SIGUSR1), result(raise(SIGUSR1)),
        cred_ok < 0 ? -errno : cred.pid, wiped[0], kept[0],
        result(madvise(wiped, 4096, -1)), random_hex(from_fd, true),
        random_hex(from_call, false));
    /* What a request writes here must not reach the next one either. */
    wiped[0] = kept[0] = 0x5a;
    char head[128];
    int h = snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n"
                     "Connection: close\r\n\r\n", n);
    (void)!write(fd, head, (size_t)h);
    (void)!write(fd, body, (size_t)n);
}

int main(int argc, char **argv)
{
    http_check_usage(argc, argv);
    signal(SIGUSR1, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);         /* a client that hung up must not end the server */
    boot_pid = getpid();
    urandom_fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (urandom_fd < 0)
        return 1;
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, peer) < 0)
        return 1;
    wiped = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (wiped == MAP_FAILED)
        return 1;
    kept = wiped + 4096;
    /* Both pages flagged, the second taken back: only the first is wiped in a fork. */
    if (madvise(wiped, 8192, MADV_WIPEONFORK) || madvise(kept, 4096, MADV_KEEPONFORK))
        return 1;
    wiped[0] = kept[0] = MARK;
    int listener = http_listen(argv[1], false);
    for (;;) {
        int fd = http_accept(listener);
        if (fd < 0)
            return 1;
        answer(fd);
        close(fd);
    }
}
