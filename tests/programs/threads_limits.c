/* What kvmserver's cooperative threads refuse (output differs from Linux on purpose, so the
 * e2e test checks it against fixed text): a fork-like clone, bad clone3 arguments, and more
 * than 64 threads. */
#include <errno.h>
#include <linux/sched.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t release = PTHREAD_COND_INITIALIZER;
static int released;

static void *parked(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&lock);
    while (!released)
        pthread_cond_wait(&release, &lock);
    pthread_mutex_unlock(&lock);
    return NULL;
}

static const char *err_name(long ret)
{
    return ret >= 0 ? "ok" : strerrorname_np((int)-ret);
}

static long raw(long nr, long a, long b, long c, long d, long e)
{
    long ret = syscall(nr, a, b, c, d, e);
    return ret < 0 ? -errno : ret;
}

int main(void)
{
    /* A new process (fork's flags): there is one address space per VM. */
    printf("clone(SIGCHLD): %s\n", err_name(raw(SYS_clone, SIGCHLD, 0, 0, 0, 0)));
    printf("clone(CLONE_VM|CLONE_VFORK): %s\n",
           err_name(raw(SYS_clone, CLONE_VM | CLONE_VFORK | SIGCHLD, 0, 0, 0, 0)));
    uint64_t args[16] = { 0 };
    printf("clone3(size 8): %s\n", err_name(raw(SYS_clone3, (long)args, 8, 0, 0, 0)));
    printf("clone3(size 1 MiB): %s\n", err_name(raw(SYS_clone3, (long)args, 1 << 20, 0, 0, 0)));
    args[0] = CLONE_VM | CLONE_THREAD | CLONE_SIGHAND | CLONE_NEWNS;
    printf("clone3(thread + CLONE_NEWNS): %s\n",
           err_name(raw(SYS_clone3, (long)args, 88, 0, 0, 0)));

    /* The 64-thread cap: 63 more besides main, then EAGAIN. */
    static pthread_t t[100];
    int created = 0, err = 0;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    while (created < 100 && !(err = pthread_create(&t[created], &attr, parked, NULL)))
        created++;
    printf("threads created: %d, then %s\n", created, err ? strerrorname_np(err) : "none");
    pthread_mutex_lock(&lock);
    released = 1;
    pthread_cond_broadcast(&release);
    pthread_mutex_unlock(&lock);
    for (int i = 0; i < created; i++)
        pthread_join(t[i], NULL);
    /* Slots come back once threads have exited. */
    pthread_t again;
    printf("after joining: create %s\n",
           pthread_create(&again, NULL, parked, NULL) == 0 && !pthread_join(again, NULL)
               ? "ok" : "failed");
    return 0;
}
