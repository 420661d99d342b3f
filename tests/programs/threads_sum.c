/* Eight threads sum slices of an array behind a barrier, with a mutex-protected total, an
 * atomic counter and a few yields and sleeps in between. */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <time.h>

#define NTHREADS 8
#define N 80000

static long values[N];
static long total;
static long atomic_adds;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_barrier_t start;

static void *sum(void *arg)
{
    long n = (long)arg, part = 0;
    pthread_barrier_wait(&start);
    for (long i = n * (N / NTHREADS); i < (n + 1) * (N / NTHREADS); i++) {
        part += values[i];
        if (i % 5000 == 0)
            sched_yield();
        __atomic_add_fetch(&atomic_adds, 1, __ATOMIC_RELAXED);
    }
    struct timespec ts = { 0, (n + 1) * 1000000 };
    nanosleep(&ts, NULL);
    pthread_mutex_lock(&lock);
    total += part;
    pthread_mutex_unlock(&lock);
    return NULL;
}

int main(void)
{
    for (long i = 0; i < N; i++)
        values[i] = i * 3 + 1;
    pthread_barrier_init(&start, NULL, NTHREADS + 1);
    pthread_t t[NTHREADS];
    for (long i = 0; i < NTHREADS; i++)
        if (pthread_create(&t[i], NULL, sum, (void *)i))
            return 1;
    pthread_barrier_wait(&start);
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(t[i], NULL);
    printf("total %ld (expected %ld), atomic adds %ld\n", total,
           3l * (N - 1) * N / 2 + N, atomic_adds);
    return 0;
}
