/* A thread blocked in poll or epoll_wait with no time limit must not keep the others from
 * running: here the others are the ones that will make its fds ready (a pipe, an eventfd),
 * after computing, yielding and sleeping. Also a poll whose own timeout ends first. */
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

static int pipe_fds[2];
static int event_fd;
static volatile long work_result;

static void nap_ms(long ms)
{
    struct timespec ts = { 0, ms * 1000000 };
    nanosleep(&ts, NULL);
}

static void *pipe_writer(void *arg)
{
    (void)arg;
    long x = 0;
    for (long i = 0; i < 3000000; i++)
        x += i % 7;
    work_result = x;
    sched_yield();
    nap_ms(5);
    if (write(pipe_fds[1], "p", 1) != 1)
        return (void *)1;
    return NULL;
}

static void *event_writer(void *arg)
{
    (void)arg;
    nap_ms(3);
    uint64_t one = 1;
    if (write(event_fd, &one, sizeof one) != sizeof one)
        return (void *)1;
    return NULL;
}

int main(void)
{
    if (pipe(pipe_fds) || (event_fd = eventfd(0, 0)) < 0)
        return 1;
    pthread_t t;
    if (pthread_create(&t, NULL, pipe_writer, NULL))
        return 1;
    struct pollfd pfd = { .fd = pipe_fds[0], .events = POLLIN };
    int n = poll(&pfd, 1, -1);
    char c = 0;
    if (n == 1 && read(pipe_fds[0], &c, 1) != 1)
        return 1;
    printf("poll: %d ready, read '%c', writer computed %ld\n", n, c, work_result);
    pthread_join(t, NULL);
    int bad = n != 1 || c != 'p';

    int ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN, .data.u32 = 77 }, got = { 0 };
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, event_fd, &ev))
        return 1;
    if (pthread_create(&t, NULL, event_writer, NULL))
        return 1;
    n = epoll_wait(ep, &got, 1, -1);
    printf("epoll_wait: %d ready, data %u\n", n, got.data.u32);
    pthread_join(t, NULL);
    bad |= n != 1 || got.data.u32 != 77;

    /* Its own timeout ends while another thread sleeps longer: 0, on time. */
    if (pthread_create(&t, NULL, pipe_writer, NULL))
        return 1;
    struct pollfd never = { .fd = event_fd, .events = POLLOUT | POLLIN };
    uint64_t drain;
    if (read(event_fd, &drain, sizeof drain) != sizeof drain)
        return 1;
    never.events = POLLIN;
    n = poll(&never, 1, 1);
    printf("poll with 1 ms: %d\n", n);
    pthread_join(t, NULL);
    return bad || n != 0;
}
