/* Makes N calls of one kind that kvmserver answers without leaving the VM (getpid and getppid
 * from the per-VM page, clock_gettime and gettimeofday through its vDSO), or of one the host
 * answers (getuid, the control; syscall-getuid, the same through libc's syscall(), whose
 * site the host cannot rewrite), so a test can compare kvmserver's -v exit counters for
 * N = 0 and a large N. Checks the answers agree with each other. Usage: in_vm_calls CALL N */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* Through glibc's wrappers, not syscall(), except for syscall-getuid: on kvm_pvm the host
 * rewrites a wrapper's site, and never syscall()'s, whose number comes from a register
 * (vm/syscall_sites.h). */
static long same_every_time(long (*call)(void), long n)
{
    long first = call(), differ = 0;
    for (long i = 1; i < n; i++)
        differ += call() != first;
    return first < 0 ? 1 : differ;
}

static long call_getpid(void) { return getpid(); }
static long call_getppid(void) { return getppid(); }
static long call_getuid(void) { return getuid(); }
static long call_syscall_getuid(void) { return syscall(SYS_getuid); }

static long clock_goes_back(long n)
{
    struct timespec prev = { 0, 0 }, t;
    long back = 0;
    for (long i = 0; i < n; i++) {
        if (clock_gettime(CLOCK_MONOTONIC, &t) != 0)
            return 1;
        back += t.tv_sec < prev.tv_sec || (t.tv_sec == prev.tv_sec && t.tv_nsec < prev.tv_nsec);
        prev = t;
    }
    return back;
}

static long time_of_day_goes_back(long n)
{
    struct timeval prev = { 0, 0 }, t;
    long back = 0;
    for (long i = 0; i < n; i++) {
        if (gettimeofday(&t, NULL) != 0)
            return 1;
        back += t.tv_sec < prev.tv_sec || (t.tv_sec == prev.tv_sec && t.tv_usec < prev.tv_usec);
        prev = t;
    }
    return back;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fputs("usage: in_vm_calls getpid|getppid|clock_gettime|gettimeofday|getuid|syscall-getuid "
              "N\n", stderr);
        return 2;
    }
    const char *call = argv[1];
    long n = atol(argv[2]), bad;
    if (n <= 0)
        bad = 0;
    else if (!strcmp(call, "getpid"))
        bad = same_every_time(call_getpid, n);
    else if (!strcmp(call, "getppid"))
        bad = same_every_time(call_getppid, n);
    else if (!strcmp(call, "getuid"))
        bad = same_every_time(call_getuid, n);
    else if (!strcmp(call, "syscall-getuid"))
        bad = same_every_time(call_syscall_getuid, n);
    else if (!strcmp(call, "clock_gettime"))
        bad = clock_goes_back(n);
    else if (!strcmp(call, "gettimeofday"))
        bad = time_of_day_goes_back(n);
    else
        return 2;
    printf("%s x%ld: %s\n", call, n, bad ? "inconsistent" : "ok");
    return bad != 0;
}
