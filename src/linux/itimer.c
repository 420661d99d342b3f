/* Timers that raise signals: alarm, setitimer(ITIMER_REAL) and timer_create. They are plain
 * data in struct lx_signals (CLOCK_MONOTONIC expiries), fired by signal.c at the end of a
 * system call and during waits; a guest that spins without system calls sees its signal
 * late. */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <sys/time.h>
#include <time.h>

#include "base/time.h"
#include "linux/process.h"
#include "linux/syscalls.h"
#include "linux/wait.h"
#include "vm/guest_mem.h"

#define NS_PER_US 1000ll
#define GUEST_SIGEV_SIGNAL 0
#define GUEST_SIGEV_NONE 1
#define GUEST_SIGEV_THREAD_ID 4

struct guest_itimerval { int64_t interval_sec, interval_usec, value_sec, value_usec; };
struct guest_itimerspec { int64_t interval_sec, interval_nsec, value_sec, value_nsec; };
struct guest_sigevent {
    uint64_t value;
    int32_t signo, notify;
    int32_t tid;
    uint8_t pad[64 - 20];
};

static int64_t left_ns(const struct lx_timer *t)
{
    if (!t->next_ns)
        return 0;
    int64_t left = t->next_ns - (int64_t)now_ns();
    return left > 0 ? left : 1;     /* due but not fired yet: Linux shows it as about to */
}

/* Beyond ~73 years nothing fires anyway; the cap keeps expiry arithmetic from overflowing. */
#define MAX_TIMER_NS (INT64_MAX / 4)

static void arm(struct lx_timer *t, int64_t value_ns, int64_t interval_ns)
{
    value_ns = value_ns > MAX_TIMER_NS ? MAX_TIMER_NS : value_ns;
    interval_ns = interval_ns > MAX_TIMER_NS ? MAX_TIMER_NS : interval_ns;
    t->next_ns = value_ns ? (int64_t)now_ns() + value_ns : 0;
    t->interval_ns = value_ns ? interval_ns : 0;
    t->overrun = 0;
}

long sys_alarm(struct lx_proc *p, const uint64_t a[6])
{
    struct lx_timer *t = &p->sig.itimer_real;
    int64_t left = left_ns(t);
    t->signo = SIGALRM;
    arm(t, (int64_t)(uint32_t)a[0] * NS_PER_SEC, 0);
    /* Whole seconds left, rounded to the nearest as Linux does (at least 1 if armed). */
    long secs = (long)((left + NS_PER_SEC / 2) / NS_PER_SEC);
    return left && !secs ? 1 : secs;
}

static struct guest_itimerval itimerval_of(const struct lx_timer *t)
{
    int64_t left = left_ns(t);
    return (struct guest_itimerval){
        .interval_sec = t->interval_ns / NS_PER_SEC,
        .interval_usec = (t->interval_ns % NS_PER_SEC) / NS_PER_US,
        .value_sec = left / NS_PER_SEC,
        .value_usec = (left % NS_PER_SEC + NS_PER_US - 1) / NS_PER_US,
    };
}

static bool timeval_ok(int64_t sec, int64_t usec)
{
    return sec >= 0 && usec >= 0 && usec < 1000000 && sec < INT64_MAX / NS_PER_SEC;
}

long sys_getitimer(struct lx_proc *p, const uint64_t a[6])
{
    int which = (int)(uint32_t)a[0];
    struct guest_itimerval v = { 0 };
    if (which == ITIMER_REAL)
        v = itimerval_of(&p->sig.itimer_real);
    else if (which != ITIMER_VIRTUAL && which != ITIMER_PROF)
        return -EINVAL;
    return gm_write(p->vm, a[1], &v, sizeof v) ? -EFAULT : 0;
}

long sys_setitimer(struct lx_proc *p, const uint64_t a[6])
{
    int which = (int)(uint32_t)a[0];
    struct guest_itimerval nv = { 0 };
    if (a[1] && gm_read(p->vm, &nv, a[1], sizeof nv))
        return -EFAULT;
    if (!timeval_ok(nv.value_sec, nv.value_usec) ||
        !timeval_ok(nv.interval_sec, nv.interval_usec))
        return -EINVAL;
    if (which == ITIMER_VIRTUAL || which == ITIMER_PROF)
        return -EINVAL;             /* CPU-time timers: not kept */
    if (which != ITIMER_REAL)
        return -EINVAL;
    struct lx_timer *t = &p->sig.itimer_real;
    struct guest_itimerval old = itimerval_of(t);
    t->signo = SIGALRM;
    arm(t, nv.value_sec * NS_PER_SEC + nv.value_usec * NS_PER_US,
        nv.interval_sec * NS_PER_SEC + nv.interval_usec * NS_PER_US);
    if (a[2] && gm_write(p->vm, a[2], &old, sizeof old))
        return -EFAULT;
    return 0;
}

static struct lx_timer *timer_of(struct lx_proc *p, uint64_t id)
{
    if (id >= LX_MAX_TIMERS || !p->sig.timers[id].used)
        return NULL;
    return &p->sig.timers[id];
}

long sys_timer_create(struct lx_proc *p, const uint64_t a[6])
{
    clockid_t clk = (clockid_t)(int32_t)a[0];
    if (clk != CLOCK_REALTIME && clk != CLOCK_MONOTONIC && clk != CLOCK_BOOTTIME)
        return clk == CLOCK_PROCESS_CPUTIME_ID || clk == CLOCK_THREAD_CPUTIME_ID ||
               clk == CLOCK_REALTIME_ALARM || clk == CLOCK_BOOTTIME_ALARM ? -ENOTSUP : -EINVAL;
    struct guest_sigevent ev = { .signo = SIGALRM, .notify = GUEST_SIGEV_SIGNAL };
    if (a[1] && gm_read(p->vm, &ev, a[1], sizeof ev))
        return -EFAULT;
    if (ev.notify != GUEST_SIGEV_SIGNAL && ev.notify != GUEST_SIGEV_NONE &&
        ev.notify != GUEST_SIGEV_THREAD_ID)
        return -EINVAL;
    if (ev.notify != GUEST_SIGEV_NONE && (ev.signo < 1 || ev.signo > LX_NSIG))
        return -EINVAL;
    /* Linux: the thread must be one of ours. */
    if (ev.notify == GUEST_SIGEV_THREAD_ID && (ev.tid <= 0 || !lx_thread_exists(p, ev.tid)))
        return -EINVAL;
    int id = 0;
    while (id < LX_MAX_TIMERS && p->sig.timers[id].used)
        id++;
    if (id == LX_MAX_TIMERS)
        return -EAGAIN;
    int32_t id32 = id;
    if (gm_write(p->vm, a[2], &id32, sizeof id32))
        return -EFAULT;
    struct lx_timer *t = &p->sig.timers[id];
    *t = (struct lx_timer){ .used = true, .value = a[1] ? ev.value : (uint64_t)id,
                            .signo = ev.notify == GUEST_SIGEV_NONE ? 0 : ev.signo, .clock = clk,
                            .tid = ev.notify == GUEST_SIGEV_THREAD_ID ? ev.tid : 0 };
    return 0;
}

static struct guest_itimerspec itimerspec_of(const struct lx_timer *t)
{
    int64_t left = left_ns(t);
    return (struct guest_itimerspec){
        .interval_sec = t->interval_ns / NS_PER_SEC, .interval_nsec = t->interval_ns % NS_PER_SEC,
        .value_sec = left / NS_PER_SEC, .value_nsec = left % NS_PER_SEC,
    };
}

long sys_timer_settime(struct lx_proc *p, const uint64_t a[6])
{
    struct lx_timer *t = timer_of(p, a[0]);
    struct guest_itimerspec nv;
    if (gm_read(p->vm, &nv, a[2], sizeof nv))
        return -EFAULT;
    if (!t)
        return -EINVAL;
    if (nv.value_sec < 0 || nv.value_nsec < 0 || nv.value_nsec >= NS_PER_SEC ||
        nv.interval_sec < 0 || nv.interval_nsec < 0 || nv.interval_nsec >= NS_PER_SEC ||
        nv.value_sec >= INT64_MAX / NS_PER_SEC || nv.interval_sec >= INT64_MAX / NS_PER_SEC)
        return -EINVAL;
    struct guest_itimerspec old = itimerspec_of(t);
    int64_t value = nv.value_sec * NS_PER_SEC + nv.value_nsec;
    if (value && ((int)(uint32_t)a[1] & TIMER_ABSTIME)) {
        /* An absolute time on the timer's clock, taken to the host's. */
        struct timespec now;
        clock_gettime(t->clock, &now);
        if (t->clock == CLOCK_MONOTONIC)
            value = lx_mono_to_host(p, value);
        value -= now.tv_sec * NS_PER_SEC + now.tv_nsec;
        if (value <= 0)
            value = 1;                  /* in the past: fires at once */
    }
    arm(t, value, nv.interval_sec * NS_PER_SEC + nv.interval_nsec);
    if (a[3] && gm_write(p->vm, a[3], &old, sizeof old))
        return -EFAULT;
    return 0;
}

long sys_timer_gettime(struct lx_proc *p, const uint64_t a[6])
{
    struct lx_timer *t = timer_of(p, a[0]);
    if (!t)
        return -EINVAL;
    struct guest_itimerspec v = itimerspec_of(t);
    return gm_write(p->vm, a[1], &v, sizeof v) ? -EFAULT : 0;
}

long sys_timer_getoverrun(struct lx_proc *p, const uint64_t a[6])
{
    struct lx_timer *t = timer_of(p, a[0]);
    return t ? t->overrun : -EINVAL;
}

long sys_timer_delete(struct lx_proc *p, const uint64_t a[6])
{
    struct lx_timer *t = timer_of(p, a[0]);
    if (!t)
        return -EINVAL;
    *t = (struct lx_timer){ 0 };
    return 0;
}
