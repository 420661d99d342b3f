/* A thread blocked in a plain blocking call (read, recv, write) must not keep the others from
 * running: one thread waits in recv() on a socketpair nobody ever writes (as Deno's signal
 * thread does) for the whole run, while the others block in read() and write() on pipes that
 * only another thread makes ready. Also a recv() with SO_RCVTIMEO ends on time while another
 * thread sleeps longer. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int quiet[2], data_pipe[2], full_pipe[2];
static volatile long work_result;

static void nap_ms(long ms)
{
    struct timespec ts = { 0, ms * 1000000 };
    nanosleep(&ts, NULL);
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *never_answered(void *arg)
{
    (void)arg;
    char c;
    recv(quiet[0], &c, 1, 0);       /* until the program exits */
    return NULL;
}

static void *writer(void *arg)
{
    (void)arg;
    long x = 0;
    for (long i = 0; i < 2000000; i++)
        x += i % 7;
    work_result = x;
    nap_ms(5);
    return write(data_pipe[1], "w", 1) == 1 ? NULL : (void *)1;
}

static void *drainer(void *arg)
{
    (void)arg;
    int queued = 0;
    for (int i = 0; i < 2000 && queued < 65536; i++) {     /* until the pipe is full */
        nap_ms(1);
        if (ioctl(full_pipe[0], FIONREAD, &queued))
            return (void *)1;
    }
    char buf[4096];
    ssize_t n = read(full_pipe[0], buf, sizeof buf);
    return n > 0 ? NULL : (void *)1;
}

static void *sleeper(void *arg)
{
    (void)arg;
    nap_ms(300);
    return NULL;
}

int main(void)
{
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, quiet) || pipe(data_pipe) || pipe(full_pipe))
        return 1;
    pthread_t t0, t;
    if (pthread_create(&t0, NULL, never_answered, NULL))
        return 1;

    if (pthread_create(&t, NULL, writer, NULL))
        return 1;
    char c = 0;
    ssize_t n = read(data_pipe[0], &c, 1);
    printf("read: %zd byte '%c', writer computed %ld\n", n, c, work_result);
    pthread_join(t, NULL);
    int bad = n != 1 || c != 'w';

    /* Fill the pipe, then block in write() until the drainer reads. */
    char chunk[4096];
    memset(chunk, 'x', sizeof chunk);
    if (pthread_create(&t, NULL, drainer, NULL))
        return 1;
    int filled = 0;
    for (int i = 0; i < 16; i++)        /* 64 KiB: the pipe's size; the 17th write waits */
        filled += write(full_pipe[1], chunk, sizeof chunk) == (ssize_t)sizeof chunk;
    n = write(full_pipe[1], chunk, sizeof chunk);
    printf("write: %d chunks fit, then one more of %zd bytes once drained\n", filled, n);
    pthread_join(t, NULL);
    bad |= filled != 16 || n != (ssize_t)sizeof chunk;

    struct timeval tv = { 0, 50000 };
    if (setsockopt(quiet[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv))
        return 1;
    if (pthread_create(&t, NULL, sleeper, NULL))
        return 1;
    long start = now_ms();
    n = recv(quiet[1], &c, 1, 0);
    int err = errno;
    long took = now_ms() - start;
    int on_time = took >= 45 && took < 250;
    printf("recv with SO_RCVTIMEO: %zd (%s), on time: %s\n", n, strerror(err),
           on_time ? "yes" : "no");
    pthread_join(t, NULL);
    bad |= n != -1 || err != EAGAIN || !on_time;
    return bad;
}
