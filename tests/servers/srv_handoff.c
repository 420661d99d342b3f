/* Test server: hands work to a background thread, the way a JIT queues its compiles to
 * helper threads. Right before it first waits for a connection (a blocking accept), and at
 * each request, the main thread posts a job to a worker thread that waits on a condition
 * variable; the worker counts the jobs it did. Every answer says how many jobs had been
 * posted and done when the request came, before it posts its own: "posted P done D".
 * Under `kvmserver -e` (tests/e2e/test_quiesce.py) the freeze must wait for the worker, so
 * every request sees the boot's job done, and with -w N each warm-up request's job too.
 * A third thread blocks for good in a read of a pipe nobody writes (as a runtime's helper
 * thread may): giving the worker its turn must not leave the vCPU to that read.
 * `srv_handoff spin PORT` adds a thread that never blocks (sched_yield in a loop), and first
 * waits for a connection in poll (where a wait takes turns by looking without waiting while
 * another thread is runnable): the freeze must still come, once kvmserver stops waiting.
 * `srv_handoff ready PORT` answers only once the worker did the request's own job, and
 * waits for it the way an event loop with work of its own does (V8's incremental marking
 * through libuv): zero-timeout epoll looks that always find the loop's own eventfd ready,
 * as each turn's task writes it again. The looks must let the worker run (the answer is
 * "posted P done P"); after READY_LOOKS_MAX of them it answers anyway, with the job not
 * done.
 * `srv_handoff install PORT` is a JIT that compiles what its first requests found hot: only
 * the first INSTALL_JOBS requests post a job, and each request first installs the jobs done
 * since the one before (V8 installs finished compiles on its main thread), answering
 * "installed now N of I". The warm-up must pause after each request until the worker has
 * run, so that the next one installs its job: otherwise jobs done only at the freeze are
 * installed again by every request VM (N > 0). */
#include "http.h"

#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static unsigned posted, done, installed, requests;
static bool install_mode;
static int own_task = -1, loop_epoll = -1;     /* "ready": the loop's eventfd and epoll set */

#define READY_LOOKS_MAX 100000
#define INSTALL_JOBS 2

static void *worker(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&lock);
    for (;;) {
        while (done == posted)
            pthread_cond_wait(&wake, &lock);
        done++;
    }
    return NULL;
}

static void *reader(void *arg)
{
    char byte;
    return (void *)(long)read(*(int *)arg, &byte, 1);
}

static void *spinner(void *arg)
{
    (void)arg;
    for (;;)
        sched_yield();
    return NULL;
}

static void post_job(void)
{
    pthread_mutex_lock(&lock);
    posted++;
    pthread_cond_signal(&wake);
    pthread_mutex_unlock(&lock);
}

static bool job_done(void)
{
    pthread_mutex_lock(&lock);
    bool caught_up = done == posted;
    pthread_mutex_unlock(&lock);
    return caught_up;
}

/* Each turn runs the loop's task, which posts itself again by writing the eventfd. */
static void wait_by_ready_looks(void)
{
    uint64_t one = 1, count;
    if (write(own_task, &one, sizeof one) != sizeof one)
        return;
    for (int looks = 0; looks < READY_LOOKS_MAX && !job_done(); looks++) {
        struct epoll_event event;
        if (epoll_wait(loop_epoll, &event, 1, 0) == 1 &&
            read(own_task, &count, sizeof count) == sizeof count &&
            write(own_task, &one, sizeof one) != sizeof one)
            return;
    }
}

static int route(const char *path, const char *query, char *body, size_t size)
{
    (void)path;
    (void)query;
    if (install_mode) {
        pthread_mutex_lock(&lock);
        unsigned now = done - installed;
        installed = done;
        snprintf(body, size, "installed now %u of %u\n", now, installed);
        pthread_mutex_unlock(&lock);
        if (++requests <= INSTALL_JOBS)
            post_job();
        return 200;
    }
    if (own_task >= 0) {            /* "ready": this request's own job first */
        post_job();
        wait_by_ready_looks();
    }
    pthread_mutex_lock(&lock);
    snprintf(body, size, "posted %u done %u\n", posted, done);
    pthread_mutex_unlock(&lock);
    if (own_task < 0)
        post_job();
    return 200;
}

int main(int argc, char **argv)
{
    bool spin = argc == 3 && strcmp(argv[1], "spin") == 0;
    bool ready = argc == 3 && strcmp(argv[1], "ready") == 0;
    install_mode = argc == 3 && strcmp(argv[1], "install") == 0;
    if (spin || ready || install_mode)
        argv++, argc--;
    if (ready) {
        own_task = eventfd(0, EFD_NONBLOCK);
        loop_epoll = epoll_create1(0);
        struct epoll_event watch = { .events = EPOLLIN };
        if (own_task < 0 || loop_epoll < 0 ||
            epoll_ctl(loop_epoll, EPOLL_CTL_ADD, own_task, &watch) < 0) {
            perror("srv_handoff: epoll");
            return 1;
        }
    }
    http_check_usage(argc, argv);
    http_app_init();
    http_set_app_route(route);
    int listener = http_listen(argv[1], false);
    static int never_written[2];
    pthread_t threads[3];
    if (pipe(never_written) < 0 ||
        pthread_create(&threads[0], NULL, reader, &never_written[0]) != 0 ||
        pthread_create(&threads[1], NULL, worker, NULL) != 0 ||
        (spin && pthread_create(&threads[2], NULL, spinner, NULL) != 0)) {
        perror("srv_handoff: threads");
        return 1;
    }
    post_job();
    struct pollfd first = { .fd = listener, .events = POLLIN };
    if (spin && poll(&first, 1, -1) < 0) {
        perror("poll");
        return 1;
    }
    return http_serve_blocking(listener);
}
