/* The guest vDSO: answers clock_gettime, gettimeofday, time, clock_getres and getcpu from the
 * host-published clock page and rdtsc, so reading the clock costs no VM exit.
 *
 * Built freestanding as a tiny shared object linked at address 0 (glibc, musl and Go relocate
 * nothing in it: they only add the load address to what they read). It must stay free of
 * relocations, of data and of calls into anything else. Clocks it cannot answer fall back to a
 * real `syscall`, which returns -errno like the kernel's vDSO fallback does. */
#include <stdint.h>

#include "vm/clock_page.h"
#include "vm/layout.h"

/* Linux ABI values (not taken from libc headers: this object has no libc). */
enum { SYS_GETTIMEOFDAY = 96, SYS_TIME = 201, SYS_CLOCK_GETTIME = 228, SYS_CLOCK_GETRES = 229 };
#define NSEC_PER_SEC 1000000000ull
#define NSEC_PER_USEC 1000ull

struct vdso_timespec { int64_t tv_sec; int64_t tv_nsec; };
struct vdso_timeval { int64_t tv_sec; int64_t tv_usec; };
struct vdso_timezone { int tz_minuteswest; int tz_dsttime; };

/* A constant address: the access compiles to an absolute displacement, not a relocation. */
#define CLOCK_PAGE ((const struct clock_page *)CLOCK_PAGE_ADDR)

static long raw_syscall2(long nr, long a0, long a1)
{
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a0), "S"(a1) : "rcx", "r11", "memory");
    return ret;
}

/* lfence keeps rdtsc from running ahead of the clock-page loads before it. */
static inline uint64_t read_tsc_ordered(void)
{
    uint32_t lo, hi;
    __asm__ volatile("lfence; rdtsc" : "=a"(lo), "=d"(hi) :: "memory");
    return ((uint64_t)hi << 32) | lo;
}

/* Reads one clock in nanoseconds. Returns 0 when the page holds no usable TSC calibration
 * (mult == 0), so the caller falls back to the host. The 128-bit product never overflows, so
 * a guest that spins for hours without a VM exit (and thus without a page refresh) still gets
 * the right time. */
static inline int read_clock_ns(int slot, uint64_t *ns)
{
    const struct clock_page *cp = CLOCK_PAGE;
    uint32_t seq, shift;
    uint64_t mult, tsc_base, base, tsc;

    do {
        while ((seq = cp->seq) & 1)
            __builtin_ia32_pause();
        __asm__ volatile("" ::: "memory");
        shift = cp->shift;
        mult = cp->mult;
        tsc_base = cp->tsc_base;
        base = cp->base_ns[slot];
        tsc = read_tsc_ordered();
        __asm__ volatile("" ::: "memory");
    } while (cp->seq != seq);

    if (mult == 0)
        return 0;
    /* A TSC behind the base (another CPU's skew) counts as no time elapsed, never as 2^64. */
    uint64_t delta = (int64_t)(tsc - tsc_base) > 0 ? tsc - tsc_base : 0;
    *ns = base + (uint64_t)(((unsigned __int128)delta * mult) >> (shift & 127));
    return 1;
}

int __vdso_clock_gettime(int clock_id, struct vdso_timespec *ts)
{
    int slot = clock_page_slot(clock_id);
    uint64_t ns;

    /* A NULL ts goes to the host, which answers EFAULT instead of crashing the guest. */
    if (slot < 0 || !ts || !read_clock_ns(slot, &ns))
        return (int)raw_syscall2(SYS_CLOCK_GETTIME, clock_id, (long)ts);
    ts->tv_sec = (int64_t)(ns / NSEC_PER_SEC);
    ts->tv_nsec = (int64_t)(ns % NSEC_PER_SEC);
    return 0;
}

int __vdso_gettimeofday(struct vdso_timeval *tv, struct vdso_timezone *tz)
{
    uint64_t ns;

    if (tv) {
        if (!read_clock_ns(CLOCK_PAGE_REALTIME, &ns))
            return (int)raw_syscall2(SYS_GETTIMEOFDAY, (long)tv, (long)tz);
        tv->tv_sec = (int64_t)(ns / NSEC_PER_SEC);
        tv->tv_usec = (int64_t)(ns % NSEC_PER_SEC / NSEC_PER_USEC);
    }
    if (tz) {
        /* The guest's time zone is UTC as far as the kernel is concerned, like most hosts. */
        tz->tz_minuteswest = 0;
        tz->tz_dsttime = 0;
    }
    return 0;
}

int64_t __vdso_time(int64_t *t)
{
    uint64_t ns;

    if (!read_clock_ns(CLOCK_PAGE_REALTIME, &ns))
        return raw_syscall2(SYS_TIME, (long)t, 0);
    int64_t sec = (int64_t)(ns / NSEC_PER_SEC);
    if (t)
        *t = sec;
    return sec;
}

int __vdso_clock_getres(int clock_id, struct vdso_timespec *res)
{
    if (clock_page_slot(clock_id) < 0 || CLOCK_PAGE->mult == 0)
        return (int)raw_syscall2(SYS_CLOCK_GETRES, clock_id, (long)res);
    if (res) {
        uint64_t resolution = CLOCK_PAGE->resolution_ns;
        res->tv_sec = (int64_t)(resolution / NSEC_PER_SEC);
        res->tv_nsec = (int64_t)(resolution % NSEC_PER_SEC);
    }
    return 0;
}

/* The guest has no per-CPU data the vDSO could read, and CPU numbers are advisory: report
 * CPU 0 on node 0 rather than pay an exit. The third argument (a cache) is unused since 2.6.24. */
long __vdso_getcpu(unsigned *cpu, unsigned *node, void *unused)
{
    (void)unused;
    if (cpu)
        *cpu = 0;
    if (node)
        *node = 0;
    return 0;
}

/* The unversioned-looking names the kernel's vDSO also exports (weak, same LINUX_2.6 version):
 * some runtimes look them up instead of the __vdso_ ones. */
int clock_gettime(int, struct vdso_timespec *)
    __attribute__((weak, alias("__vdso_clock_gettime")));
int gettimeofday(struct vdso_timeval *, struct vdso_timezone *)
    __attribute__((weak, alias("__vdso_gettimeofday")));
int64_t time(int64_t *) __attribute__((weak, alias("__vdso_time")));
int clock_getres(int, struct vdso_timespec *) __attribute__((weak, alias("__vdso_clock_getres")));
long getcpu(unsigned *, unsigned *, void *) __attribute__((weak, alias("__vdso_getcpu")));
