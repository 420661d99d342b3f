/* futex for single-threaded guests: there is never another thread to wake or to be woken
 * by, so wakes find no waiter and a wait can only end by its timeout. Real waiting between
 * guest threads comes with thread support. */
#include <errno.h>
#include <linux/futex.h>
#include <time.h>

#include "linux/process.h"
#include "linux/syscalls.h"
#include "linux/wait.h"
#include "vm/guest_mem.h"

/* Nothing to wait for: only the time passes. */
static long sleep_attempt(void *ctx, int64_t timeout_ns)
{
    (void)ctx;
    struct timespec ts = { .tv_sec = timeout_ns / 1000000000, .tv_nsec = timeout_ns % 1000000000 };
    if (timeout_ns < 0)
        ts = (struct timespec){ .tv_sec = 3600 };
    return nanosleep(&ts, NULL) < 0 ? -EINTR : 0;
}

static long wait_timeout_ns(struct lx_proc *p, uint64_t ts_gva, bool absolute, int64_t *out)
{
    *out = -1;
    if (!ts_gva)
        return 0;
    struct timespec ts;
    if (gm_read(p->vm, &ts, ts_gva, sizeof ts))
        return -EFAULT;
    if (ts.tv_sec < 0 || ts.tv_nsec < 0 || ts.tv_nsec >= 1000000000)
        return -EINVAL;
    int64_t ns = ts.tv_sec * 1000000000ll + ts.tv_nsec;
    if (absolute) {                     /* FUTEX_WAIT_BITSET takes an absolute time */
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        ns -= now.tv_sec * 1000000000ll + now.tv_nsec;
        if (ns < 0)
            ns = 0;
    }
    *out = ns;
    return 0;
}

long sys_futex(struct lx_proc *p, const uint64_t a[6])
{
    int op = (int)a[1] & FUTEX_CMD_MASK;
    switch (op) {
    case FUTEX_WAKE: case FUTEX_WAKE_OP: case FUTEX_REQUEUE: case FUTEX_CMP_REQUEUE:
    case FUTEX_WAKE_BITSET:
        return 0;                       /* no other thread: nobody to wake */
    case FUTEX_WAIT: case FUTEX_WAIT_BITSET: {
        uint32_t value;
        if (gm_read(p->vm, &value, a[0], sizeof value))
            return -EFAULT;
        if (op == FUTEX_WAIT_BITSET && (uint32_t)a[5] == 0)
            return -EINVAL;
        if (value != (uint32_t)a[2])
            return -EAGAIN;
        int64_t timeout;
        long err = wait_timeout_ns(p, a[3], op == FUTEX_WAIT_BITSET, &timeout);
        if (err)
            return err;
        /* No thread can wake us: the wait lasts its timeout (forever is cut at the VM's
         * deadline, as a hung program would be). */
        err = lx_wait_until(p, timeout, sleep_attempt, NULL);
        return err < 0 ? err : -ETIMEDOUT;
    }
    default:
        return -ENOSYS;
    }
}
