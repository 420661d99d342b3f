/* Host bugs the syscall fuzzer found (tests/e2e/test_fuzz_syscalls.py), one mode each:
 *   pause, sigsuspend   a thread waits for a signal that another thread sends: the sender
 *                       must get to run (it used to hold the vCPU until the deadline)
 *   poll, poll-none,    the same for a wait for a pipe (or for no fd at all) with a handler
 *   read                without SA_RESTART: the wait ends with EINTR (the handler ran, then
 *                       the call was redone and waited again, for ever)
 *   epoll-read          read and write on an epoll fd fail at once with EINVAL (a read used
 *                       to wait for one of its events)
 *   clone-stack         a thread started on a non-canonical stack (its child exits at once,
 *                       touching no stack): kvmserver refuses it with EINVAL, where it used
 *                       to stop the VM; Linux starts it. Floating point must work after. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t got, done;
static volatile pid_t waiter_tid;
static int pipe_fds[2];
static void on_usr1(int sig) { (void)sig; got = 1; }

static void *waiter(void *arg)
{
    const char *mode = arg;
    waiter_tid = (pid_t)syscall(SYS_gettid);
    int r;
    if (strcmp(mode, "pause") == 0) {
        r = pause();
    } else if (strcmp(mode, "poll") == 0) {
        struct pollfd pfd = { .fd = pipe_fds[0], .events = POLLIN };
        r = poll(&pfd, 1, -1);
    } else if (strcmp(mode, "poll-none") == 0) {
        r = poll(NULL, 0, -1);
    } else if (strcmp(mode, "read") == 0) {
        char c;
        r = (int)read(pipe_fds[0], &c, 1);
    } else {
        sigset_t none;
        sigemptyset(&none);
        r = sigsuspend(&none);
    }
    printf("%s returned %d (errno %s), handler ran: %d\n", mode, r,
           r < 0 && errno == EINTR ? "EINTR" : "other", (int)got);
    done = 1;
    return NULL;
}

static long raw_clone(long flags, long stack)
{
    long ret;
    register long r10 __asm__("r10") = 0, r8 __asm__("r8") = 0;
    __asm__ volatile("syscall\n\ttest %%rax, %%rax\n\tjnz 1f\n\t"
                     "mov $60, %%eax\n\txor %%edi, %%edi\n\tsyscall\n\tud2\n1:"
                     : "=a"(ret) : "a"(SYS_clone), "D"(flags), "S"(stack), "d"(0), "r"(r10),
                       "r"(r8) : "rcx", "r11", "memory");
    return ret;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "clone-stack") == 0) {
        long flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD |
                     CLONE_SYSVSEM;
        long r = raw_clone(flags, 0x800000000000l);
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
        volatile double d = 1.5;
        d *= 2;
        printf("clone %s, then %.1f\n", r > 0 ? "started" : r == -22 ? "EINVAL" : "other", d);
        return 0;
    }
    if (strcmp(mode, "epoll-read") == 0) {
        int ep = epoll_create1(0);
        char buf[8] = "";
        long r = read(ep, buf, sizeof buf);
        int read_errno = errno;
        long w = write(ep, buf, sizeof buf);
        printf("read %ld (%s), write %ld (%s)\n", r, read_errno == EINVAL ? "EINVAL" : "other",
               w, errno == EINVAL ? "EINVAL" : "other");
        return 0;
    }
    if (pipe(pipe_fds))
        return 1;
    struct sigaction sa = { .sa_handler = on_usr1 };
    sigaction(SIGUSR1, &sa, NULL);
    pthread_t t;
    pthread_create(&t, NULL, waiter, (void *)mode);
    while (!waiter_tid)
        sched_yield();
    /* It is in its wait, or about to be: a signal before the wait would not end it, so
     * one goes every 20 ms until it has ended (a standard signal does not queue, so the
     * handler runs once or more, and `got` reads the same). */
    while (!done) {
        struct timespec ts = {0, 20000000};
        nanosleep(&ts, NULL);
        if (!done)
            syscall(SYS_tgkill, getpid(), waiter_tid, SIGUSR1);
    }
    pthread_join(t, NULL);
    return 0;
}
