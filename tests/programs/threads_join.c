/* pthread_create and pthread_join: results come back, each thread has its own tid, and a
 * thread's stack is its own. */
#include <pthread.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#define NTHREADS 6

static long main_tid;

static void *work(void *arg)
{
    long n = (long)arg;
    volatile char stack_use[4096];              /* runs on the thread's own stack */
    for (int i = 0; i < (int)sizeof stack_use; i++)
        stack_use[i] = (char)(n + i);
    long tid = syscall(SYS_gettid);
    long ok = tid > 0 && tid != main_tid && getpid() != tid;
    return (void *)(n * n * 100 + ok * 10 + (stack_use[7] == (char)(n + 7)));
}

int main(void)
{
    main_tid = syscall(SYS_gettid);
    printf("main tid is pid: %s\n", main_tid == getpid() ? "yes" : "no");
    pthread_t t[NTHREADS];
    for (long i = 0; i < NTHREADS; i++)
        if (pthread_create(&t[i], NULL, work, (void *)i)) {
            printf("pthread_create failed\n");
            return 1;
        }
    for (int i = 0; i < NTHREADS; i++) {
        void *ret;
        if (pthread_join(t[i], &ret)) {
            printf("pthread_join failed\n");
            return 1;
        }
        printf("thread %d returned %ld\n", i, (long)ret);
    }
    /* A second round reuses the freed stacks and thread slots. */
    for (int round = 0; round < 20; round++) {
        pthread_t x;
        void *ret;
        if (pthread_create(&x, NULL, work, (void *)(long)round) || pthread_join(x, &ret))
            return 1;
        if ((long)ret != round * round * 100 + 11) {
            printf("round %d: %ld\n", round, (long)ret);
            return 1;
        }
    }
    printf("20 more create/join rounds: ok\n");
    return 0;
}
