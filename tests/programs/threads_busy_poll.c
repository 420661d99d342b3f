/* An event loop that looks for its worker's result with zero-timeout polls, the way a
 * runtime's loop runs while it has work of its own (Node at boot, after many warm-up
 * requests): the main thread hands a job to a worker, then polls an eventfd without
 * waiting until the worker signals it. On several CPUs the worker runs meanwhile; on
 * kvmserver's one vCPU the looks must let it run, or the loop never ends. Prints the
 * results and how the looks ended. */
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define JOBS 50
#define MAX_LOOKS 100000000L     /* far more than any run needs: a stuck loop ends anyway */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static int posted, done_fd;
static long sum;

static void *worker(void *arg)
{
    (void)arg;
    int taken = 0;
    for (;;) {
        pthread_mutex_lock(&lock);
        while (taken == posted)
            pthread_cond_wait(&wake, &lock);
        taken++;
        sum += taken * taken;       /* the "work" */
        pthread_mutex_unlock(&lock);
        uint64_t one = 1;
        if (write(done_fd, &one, sizeof one) != sizeof one)
            return NULL;
    }
}

int main(void)
{
    done_fd = eventfd(0, EFD_NONBLOCK);
    pthread_t t;
    if (done_fd < 0 || pthread_create(&t, NULL, worker, NULL) != 0) {
        perror("threads_busy_poll");
        return 1;
    }
    int finished = 0;
    for (int job = 1; job <= JOBS; job++) {
        pthread_mutex_lock(&lock);
        posted++;
        pthread_cond_signal(&wake);
        pthread_mutex_unlock(&lock);
        struct pollfd p = { .fd = done_fd, .events = POLLIN };
        long looks = 0;
        while (poll(&p, 1, 0) == 0 && ++looks < MAX_LOOKS)
            ;
        uint64_t n;
        if (looks < MAX_LOOKS && read(done_fd, &n, sizeof n) == sizeof n)
            finished++;
    }
    pthread_mutex_lock(&lock);
    printf("jobs finished by looking: %d of %d, sum %ld\n", finished, JOBS, sum);
    pthread_mutex_unlock(&lock);
    return finished == JOBS ? 0 : 1;
}
