/* Test server: per request, a helper thread suspends the main thread the way JavaScriptCore's
 * garbage collector suspends Bun's: it blocks the signal itself, sends it with tgkill to the
 * tid the main thread had when the program started (under kvmserver, before the freeze: the
 * tid its libc cached), while that thread waits in epoll_pwait with a mask that lets the
 * signal through, and waits on a semaphore the handler posts. The answer says how the wait
 * ended: "wait -1 EINTR handler 1 helper 1" when the signal reached the waiting thread.
 * tests/e2e/test_signals.py runs it natively and under kvmserver. */
#include "http.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static pid_t boot_tid;
static sem_t handshake;
static volatile sig_atomic_t handled;
static int helper_saw;

static void on_suspend(int sig)
{
    (void)sig;
    handled++;
    sem_post(&handshake);
}

static void *suspender(void *arg)
{
    (void)arg;
    struct timespec pause = { 0, 20 * 1000 * 1000 };
    nanosleep(&pause, NULL);        /* the main thread is in its wait by then */
    syscall(SYS_tgkill, getpid(), boot_tid, SIGUSR1);
    struct timespec limit;
    clock_gettime(CLOCK_REALTIME, &limit);
    limit.tv_sec += 2;
    helper_saw = sem_timedwait(&handshake, &limit) == 0;
    return NULL;
}

static int route(const char *path, const char *query, char *body, size_t size)
{
    (void)path;
    (void)query;
    int never[2];
    if (pipe(never) < 0)
        return 500;
    int ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN };
    epoll_ctl(ep, EPOLL_CTL_ADD, never[0], &ev);
    sigset_t during;
    sigprocmask(SIG_BLOCK, NULL, &during);
    sigdelset(&during, SIGUSR1);
    handled = 0;
    helper_saw = 0;
    pthread_t t;
    if (pthread_create(&t, NULL, suspender, NULL) != 0)
        return 500;
    struct epoll_event out;
    int r = epoll_pwait(ep, &out, 1, 2000, &during);
    int err = errno;
    pthread_join(t, NULL);
    snprintf(body, size, "wait %d %s handler %d helper %d\n", r, r < 0 ? strerrorname_np(err) : "-",
             (int)handled, helper_saw);
    close(ep);
    close(never[0]);
    close(never[1]);
    return 200;
}

int main(int argc, char **argv)
{
    http_check_usage(argc, argv);
    boot_tid = (pid_t)syscall(SYS_gettid);
    sem_init(&handshake, 0, 0);
    struct sigaction sa = { .sa_handler = on_suspend };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, NULL);     /* every thread blocks it but in the wait */
    http_app_init();
    http_set_app_route(route);
    return http_serve_blocking(http_listen(argv[1], false));
}
