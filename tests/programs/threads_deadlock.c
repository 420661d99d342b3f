/* A real deadlock: the main thread joins a thread that waits for a condition nobody will
 * signal. Linux would hang forever; kvmserver ends the program with a message. */
#include <pthread.h>
#include <stdio.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t never = PTHREAD_COND_INITIALIZER;

static void *stuck(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&lock);
    for (;;)
        pthread_cond_wait(&never, &lock);
    return NULL;
}

int main(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, stuck, NULL))
        return 2;
    printf("joining a thread that never ends\n");
    fflush(stdout);
    pthread_join(t, NULL);
    printf("not reached\n");
    return 0;
}
