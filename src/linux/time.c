/* Clocks and sleeps. Reading a clock is normally answered inside the guest by the vDSO; these
 * handlers are the fallback and forward to the host clocks. Sleeps happen on the host, restart
 * after the engine's periodic kick signal, and never run past the VM's deadline. */
#include <errno.h>
#include <stdint.h>
#include <sys/time.h>
#include <time.h>

#include "base/time.h"
#include "linux/process.h"
#include "linux/syscalls.h"
#include "linux/wait.h"
#include "vm/engine.h"
#include "vm/guest_mem.h"


_Static_assert(sizeof(struct timespec) == 16 && sizeof(struct timeval) == 16,
               "x86-64 kernel layouts");

/* The host clock that answers for a guest clock id, or -1 if Linux has no such clock. Dynamic
 * (negative) ids name other processes' CPU clocks or posix clocks: not supported yet. The
 * guest is one thread on the host's vCPU thread, so both CPU-time clocks are that thread's. */
static clockid_t host_clock(int id)
{
    switch (id) {
    case CLOCK_REALTIME: case CLOCK_MONOTONIC: case CLOCK_MONOTONIC_RAW:
    case CLOCK_REALTIME_COARSE: case CLOCK_MONOTONIC_COARSE: case CLOCK_BOOTTIME:
    case CLOCK_REALTIME_ALARM: case CLOCK_BOOTTIME_ALARM: case CLOCK_TAI:
        return id;
    case CLOCK_PROCESS_CPUTIME_ID: case CLOCK_THREAD_CPUTIME_ID:
        return CLOCK_THREAD_CPUTIME_ID;
    default:
        return -1;
    }
}

/* A clock as the guest sees it: what its vDSO reads from the clock page where the page has
 * that clock (a raw system call then never disagrees with the vDSO, not even by the few us
 * the guest's TSC offset is uncertain by), otherwise the host's. */
static int guest_clock(struct lx_proc *p, clockid_t clk, struct timespec *ts)
{
    uint64_t ns;
    if (vm_guest_clock_ns(p->vm, clk, &ns) == 0) {
        *ts = (struct timespec){ .tv_sec = (time_t)(ns / NS_PER_SEC),
                                 .tv_nsec = (long)(ns % NS_PER_SEC) };
        return 0;
    }
    return clock_gettime(clk, ts) < 0 ? -errno : 0;
}

long sys_clock_gettime(struct lx_proc *p, const uint64_t a[6])
{
    clockid_t clk = host_clock((int)(uint32_t)a[0]);
    if (clk < 0)
        return -EINVAL;
    struct timespec ts;
    int err = guest_clock(p, clk, &ts);
    if (err)
        return err;             /* e.g. the alarm clocks on a host without an RTC */
    return gm_write(p->vm, a[1], &ts, sizeof ts);
}

long sys_clock_getres(struct lx_proc *p, const uint64_t a[6])
{
    clockid_t clk = host_clock((int)(uint32_t)a[0]);
    if (clk < 0)
        return -EINVAL;
    struct timespec res;
    if (clock_getres(clk, &res) < 0)
        return -errno;
    return a[1] ? gm_write(p->vm, a[1], &res, sizeof res) : 0;
}

long sys_gettimeofday(struct lx_proc *p, const uint64_t a[6])
{
    if (a[0]) {
        struct timespec ts;
        guest_clock(p, CLOCK_REALTIME, &ts);
        struct timeval tv = { .tv_sec = ts.tv_sec, .tv_usec = ts.tv_nsec / 1000 };
        if (gm_write(p->vm, a[0], &tv, sizeof tv))
            return -EFAULT;
    }
    if (a[1]) {
        /* The kernel's timezone is UTC with no DST unless someone sets it. */
        const struct { int32_t minuteswest, dsttime; } tz = { 0, 0 };
        if (gm_write(p->vm, a[1], &tz, sizeof tz))
            return -EFAULT;
    }
    return 0;
}

long sys_time(struct lx_proc *p, const uint64_t a[6])
{
    struct timespec ts;
    guest_clock(p, CLOCK_REALTIME, &ts);
    int64_t now = ts.tv_sec;
    if (a[0] && gm_write(p->vm, a[0], &now, sizeof now))
        return -EFAULT;
    return (long)now;
}

/* now + delta, both valid; saturates at the largest time. */
static struct timespec timespec_add(struct timespec now, struct timespec delta)
{
    struct timespec r = { .tv_nsec = now.tv_nsec + delta.tv_nsec };
    time_t carry = 0;
    if (r.tv_nsec >= NS_PER_SEC) {
        r.tv_nsec -= NS_PER_SEC;
        carry = 1;
    }
    if (__builtin_add_overflow(now.tv_sec, delta.tv_sec, &r.tv_sec) ||
        __builtin_add_overflow(r.tv_sec, carry, &r.tv_sec))
        return (struct timespec){ .tv_sec = INT64_MAX, .tv_nsec = NS_PER_SEC - 1 };
    return r;
}

long lx_sleep_interrupted(struct lx_proc *p, uint64_t rem_gva, int64_t left_ns)
{
    if (!rem_gva)
        return -EINTR;
    struct timespec left = ns_timespec(left_ns > 0 ? left_ns : 0);
    return gm_write(p->vm, rem_gva, &left, sizeof left) ? -EFAULT : -EINTR;
}

/* The time from now on host clock `clk` until `until` there (0 if past). */
static int64_t ns_until(clockid_t clk, struct timespec until)
{
    struct timespec now;
    clock_gettime(clk, &now);
    uint64_t until_ns = timespec_ns(&until), now_clk = timespec_ns(&now);
    uint64_t ns = until_ns > now_clk ? until_ns - now_clk : 0;
    return ns > INT64_MAX ? INT64_MAX : (int64_t)ns;
}

/* Sleeps on host clock `clk` until the absolute time `until`, through EINTR (the engine's kick
 * is a periodic signal), but only until the VM deadline if that comes first: the engine then
 * notices the deadline at its next run. A signal ends it with the time left in rem_gva (a
 * relative sleep's; 0 = none). */
static long sleep_until(struct lx_proc *p, clockid_t clk, struct timespec until, uint64_t rem_gva)
{
    /* Other guest threads run while this one sleeps (thread.h). */
    if (lx_multithreaded(p))
        return lx_thread_sleep(p, ns_until(clk, until), rem_gva);
    const clockid_t wanted_clk = clk;
    const struct timespec wanted = until;
    uint64_t deadline = p->vm ? vm_deadline(p->vm) : 0;
    if (deadline) {
        struct timespec now, mono;
        clock_gettime(clk, &now);
        clock_gettime(CLOCK_MONOTONIC, &mono);
        uint64_t until_ns = timespec_ns(&until), now_clk = timespec_ns(&now);
        uint64_t mono_ns = timespec_ns(&mono);
        uint64_t wanted = until_ns > now_clk ? until_ns - now_clk : 0;
        uint64_t allowed = deadline > mono_ns ? deadline - mono_ns : 0;
        if (wanted > allowed) {
            clk = CLOCK_MONOTONIC;
            until = (struct timespec){ .tv_sec = (time_t)(deadline / NS_PER_SEC),
                                       .tv_nsec = (long)(deadline % NS_PER_SEC) };
        }
    }
    int err;
    for (;;) {
        /* A timer due first ends this sleep early: its signal interrupts it (EINTR). */
        struct timespec stop = until;
        clockid_t stop_clk = clk;
        bool to_timer = false;
        int64_t timer = lx_signal_next_timer_ns(p);
        if (timer >= 0) {
            struct timespec now;
            clock_gettime(clk, &now);
            int64_t timer_left = timer - (int64_t)now_ns();
            if ((int64_t)(timespec_ns(&until) - timespec_ns(&now)) > timer_left) {
                to_timer = true;
                stop_clk = CLOCK_MONOTONIC;
                stop = (struct timespec){ .tv_sec = timer / NS_PER_SEC,
                                          .tv_nsec = timer % NS_PER_SEC };
            }
        }
        err = clock_nanosleep(stop_clk, TIMER_ABSTIME, &stop, NULL);
        if (lx_signal_interrupts(p))
            return lx_sleep_interrupted(p, rem_gva, ns_until(wanted_clk, wanted));
        if (err != EINTR && !to_timer)
            return -err;
    }
}

static long read_timespec(struct lx_proc *p, uint64_t gva, struct timespec *t)
{
    if (gm_read(p->vm, t, gva, sizeof *t))
        return -EFAULT;
    return timespec_valid(t) ? 0 : -EINVAL;
}

/* `rem` is written only when a signal ends the sleep, as on Linux (a deadline cut ends the
 * VM before the guest could look). */
long sys_nanosleep(struct lx_proc *p, const uint64_t a[6])
{
    struct timespec req, now;
    long err = read_timespec(p, a[0], &req);
    if (err)
        return err;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return sleep_until(p, CLOCK_MONOTONIC, timespec_add(now, req), a[1]);
}

/* The host clock to sleep on for a guest clock id, or a negative errno as Linux gives it. */
static clockid_t sleep_clock(int id)
{
    struct timespec probe;
    switch (id) {
    case CLOCK_REALTIME: case CLOCK_MONOTONIC: case CLOCK_BOOTTIME: case CLOCK_TAI:
        return id;
    case CLOCK_REALTIME_ALARM: case CLOCK_BOOTTIME_ALARM:
        /* Sleeping on them needs an RTC (the wake-up-from-suspend part means nothing here). */
        if (clock_gettime(id, &probe) < 0)
            return -EOPNOTSUPP;
        return id == CLOCK_REALTIME_ALARM ? CLOCK_REALTIME : CLOCK_BOOTTIME;
    case CLOCK_MONOTONIC_RAW: case CLOCK_REALTIME_COARSE: case CLOCK_MONOTONIC_COARSE:
    case CLOCK_THREAD_CPUTIME_ID:
        return -EOPNOTSUPP;
    case CLOCK_PROCESS_CPUTIME_ID:
        /* Linux would wait for CPU time a sleeping single-threaded guest never uses. */
    default:
        return -EINVAL;
    }
}

long sys_clock_nanosleep(struct lx_proc *p, const uint64_t a[6])
{
    clockid_t clk = sleep_clock((int)(uint32_t)a[0]);
    if (clk < 0)
        return clk;
    struct timespec req;
    long err = read_timespec(p, a[2], &req);
    if (err)
        return err;
    /* Only TIMER_ABSTIME means anything; Linux ignores the other flag bits. */
    if ((uint32_t)a[1] & TIMER_ABSTIME)
        return sleep_until(p, clk, clk == CLOCK_MONOTONIC
                                       ? ns_timespec(lx_mono_to_host(p, timespec_ns(&req)))
                                       : req, 0);
    struct timespec now;
    clock_gettime(clk, &now);
    return sleep_until(p, clk, timespec_add(now, req), a[3]);
}
