/* Cost per call of a few system calls, natively or inside kvmserver. Prints one line per
 * call: "NAME NS_PER_CALL". The write goes to fd 1, which the script points at /dev/null. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 20000;
    struct timespec ts;
    double t0 = now_ns();
    /* glibc's own wrappers, not syscall(): their number is a constant, so on kvm_pvm the
     * host may rewrite their sites (syscall()'s it never does). */
    for (long i = 0; i < n; i++)
        getpid();                      /* glibc caches nothing here: a real call */
    double t1 = now_ns();
    for (long i = 0; i < n; i++)
        getuid();                      /* the same triviality, but answered by the host */
    double t1b = now_ns();
    for (long i = 0; i < n; i++)
        if (write(1, "x", 1) != 1)
            return 1;
    double t2 = now_ns();
    for (long i = 0; i < n; i++)
        clock_gettime(CLOCK_MONOTONIC, &ts);   /* through the vDSO where there is one */
    double t3 = now_ns();
    fprintf(stderr, "getpid %.0f\ngetuid %.0f\nwrite %.0f\nclock_gettime %.1f\n",
            (t1 - t0) / n, (t1b - t1) / n, (t2 - t1b) / n, (t3 - t2) / n);
    return 0;
}
