/* Stress for the syscall transports: a random mix of calls that the shared-memory poller
 * serves (socket writes and reads), calls it must hand back to the vCPU thread (sleeps,
 * waits with timeouts), and calls answered in the guest (getpid, the vDSO clock). Every
 * write's side effect is counted: the bytes that arrive must equal the writes that
 * succeeded, so a call executed twice or lost shows up. With "scribble" (only inside
 * kvmserver, where the transport's page exists at 0xb000) the program also writes garbage
 * over that page between calls, as a hostile guest would. Prints "ok" and exits 0. */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define SHARED_PAGE 0xb000ul

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next_random(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static long drain(int fd)
{
    char buf[4096];
    long total = 0;
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
            total += n;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            perror("recv");
            exit(2);
        }
        return total;
    }
}

int main(int argc, char **argv)
{
    long iterations = argc > 1 ? atol(argv[1]) : 20000;
    int scribble = argc > 2 && !strcmp(argv[2], "scribble");
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
        perror("socketpair");
        return 2;
    }
    int pipefd[2];
    if (pipe(pipefd) < 0)
        return 2;
    long written = 0, received = 0;
    for (long i = 0; i < iterations; i++) {
        switch (next_random() % 8) {
        case 0: case 1: case 2:
            if (send(sv[0], "x", 1, MSG_DONTWAIT) == 1)
                written++;
            break;
        case 3:
            received += drain(sv[1]);
            break;
        case 4:
            if (syscall(SYS_getpid) != getpid())
                return 3;
            break;
        case 5: {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            break;
        }
        case 6:
            if (i % 64 == 0) {           /* a blocking call now and then */
                struct timespec nap = { 0, (long)(next_random() % 200000) };
                nanosleep(&nap, NULL);
            }
            break;
        case 7:
            if (i % 64 == 1) {           /* a wait that times out: nothing comes */
                struct pollfd p = { .fd = pipefd[0], .events = POLLIN };
                if (poll(&p, 1, 1) != 0)
                    return 4;
            }
            break;
        }
        if (scribble && next_random() % 16 == 0) {
            /* The request and response lines and the awake word. Left alone: the spin limit
             * (word 2; a huge one only makes the guest's own calls wait) and the request
             * number (word 8): raising it IS publishing a call, which the host then runs
             * with whatever the request line holds, as if the guest had made it again. */
            volatile uint64_t *page = (volatile uint64_t *)SHARED_PAGE;
            unsigned word = next_random() % 19;
            word = word == 0 ? 1 : word + 8;
            page[word] = next_random() % 4 ? next_random() : 0;
        }
    }
    received += drain(sv[1]);
    if (received != written) {
        printf("lost or repeated calls: %ld bytes received for %ld writes\n", received, written);
        return 1;
    }
    printf("ok\n");
    return 0;
}
