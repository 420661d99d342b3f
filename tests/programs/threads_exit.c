/* Threads that leave early: pthread_exit while others wait on a condition, a detached
 * thread, and finally the main thread leaving first while a worker finishes the work (the
 * last thread's exit ends the process with status 0). */
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER;
static int finished;
static sem_t detached_done;

static void *leaver(void *arg)
{
    pthread_mutex_lock(&lock);
    finished++;
    pthread_cond_broadcast(&done_cond);
    pthread_mutex_unlock(&lock);
    pthread_exit(arg);                          /* never returns */
}

static void *waiter(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&lock);
    while (finished < 3)
        pthread_cond_wait(&done_cond, &lock);
    pthread_mutex_unlock(&lock);
    return (void *)5;
}

static void *detached(void *arg)
{
    (void)arg;
    usleep(2000);
    sem_post(&detached_done);
    return NULL;
}

static void *last_one(void *arg)
{
    pthread_t main_thread = *(pthread_t *)arg;
    struct timespec ts = { 0, 20 * 1000000 };
    nanosleep(&ts, NULL);
    printf("worker: main has left, finishing the work\n");
    fflush(stdout);
    (void)main_thread;
    return NULL;                                /* the last thread: the process ends, 0 */
}

int main(void)
{
    pthread_t w[2], l[3];
    for (int i = 0; i < 2; i++)
        if (pthread_create(&w[i], NULL, waiter, NULL))
            return 1;
    for (long i = 0; i < 3; i++)
        if (pthread_create(&l[i], NULL, leaver, (void *)(i + 1)))
            return 1;
    for (int i = 0; i < 3; i++) {
        void *ret;
        pthread_join(l[i], &ret);
        printf("leaver %d exited with %ld\n", i, (long)ret);
    }
    for (int i = 0; i < 2; i++) {
        void *ret;
        pthread_join(w[i], &ret);
        printf("waiter %d returned %ld\n", i, (long)ret);
    }
    sem_init(&detached_done, 0, 0);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t d;
    if (pthread_create(&d, &attr, detached, NULL))
        return 1;
    sem_wait(&detached_done);
    printf("detached thread posted\n");
    static pthread_t self;
    self = pthread_self();
    pthread_t last;
    if (pthread_create(&last, NULL, last_one, &self))
        return 1;
    printf("main: leaving first\n");
    fflush(stdout);
    pthread_exit(NULL);
}
