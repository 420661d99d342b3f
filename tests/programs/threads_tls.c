/* Thread-local storage: each thread sees its own copy of __thread variables (FS base per
 * thread), also across switches, and its own errno. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <unistd.h>

#define NTHREADS 5

static __thread long tls_value = 7;
static __thread char tls_name[16] = "initial";
static long seen[NTHREADS];
static int errno_ok[NTHREADS];

static void *work(void *arg)
{
    long n = (long)arg;
    long before = tls_value;                     /* the initial image, not main's value */
    tls_value = n * 11;
    snprintf(tls_name, sizeof tls_name, "thread-%ld", n);
    errno = (int)n + 100;
    for (int i = 0; i < 50; i++) {
        sched_yield();
        usleep(100);
        if (tls_value != n * 11)
            return (void *)1;
    }
    errno_ok[n] = errno == (int)n + 100;
    seen[n] = before * 1000 + tls_value;
    return tls_name[7] == (char)('0' + n) ? NULL : (void *)2;
}

int main(void)
{
    tls_value = 12345;
    pthread_t t[NTHREADS];
    int bad = 0;
    for (long i = 0; i < NTHREADS; i++)
        if (pthread_create(&t[i], NULL, work, (void *)i))
            return 1;
    for (int i = 0; i < NTHREADS; i++) {
        void *ret;
        pthread_join(t[i], &ret);
        printf("thread %d: result %ld, value %ld, errno kept %d\n", i, (long)ret, seen[i],
               errno_ok[i]);
        bad |= ret != NULL || seen[i] != 7000 + i * 11 || !errno_ok[i];
    }
    printf("main still has %ld and \"%s\"\n", tls_value, tls_name);
    return bad || tls_value != 12345;
}
