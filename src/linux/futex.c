/* futex between guest threads (thread.h): a wait on a word that still holds
 * the expected value blocks the calling thread and runs another; wakes mark waiters
 * runnable and the waker carries on. */
#include <errno.h>
#include <linux/futex.h>
#include <stdint.h>
#include <time.h>

#include "base/time.h"
#include "linux/process.h"
#include "linux/syscalls.h"
#include "linux/thread.h"
#include "linux/wait.h"
#include "vm/guest_mem.h"

/* The wait's end on CLOCK_MONOTONIC (< 0 = none). FUTEX_WAIT takes a relative time,
 * FUTEX_WAIT_BITSET an absolute one on CLOCK_MONOTONIC or, with FUTEX_CLOCK_REALTIME, on
 * CLOCK_REALTIME. */
static long wait_end_ns(struct lx_proc *p, uint64_t ts_gva, bool absolute, bool realtime,
                        int64_t *out)
{
    *out = -1;
    if (!ts_gva)
        return 0;
    struct timespec ts, now;
    if (gm_read(p->vm, &ts, ts_gva, sizeof ts))
        return -EFAULT;
    if (!timespec_valid(&ts))
        return -EINVAL;
    int64_t ns = timespec_ns(&ts);      /* saturates: "forever", without overflow */
    int64_t mono = (int64_t)now_ns();
    if (absolute) {
        clock_gettime(realtime ? CLOCK_REALTIME : CLOCK_MONOTONIC, &now);
        if (!realtime)
            ns = lx_mono_to_host(p, ns);
        ns -= timespec_ns(&now);
        if (ns < 0)
            ns = 0;
    }
    *out = ns > INT64_MAX - mono ? INT64_MAX : mono + ns;
    return 0;
}

static long futex_wait(struct lx_proc *p, const uint64_t a[6], int op, bool realtime)
{
    uint32_t value, bitset = op == FUTEX_WAIT_BITSET ? (uint32_t)a[5] : UINT32_MAX;
    if (bitset == 0)
        return -EINVAL;
    if (gm_read(p->vm, &value, a[0], sizeof value))
        return -EFAULT;
    if (value != (uint32_t)a[2])
        return -EAGAIN;
    int64_t end;
    long err = wait_end_ns(p, a[3], op == FUTEX_WAIT_BITSET, realtime, &end);
    if (err)
        return err;
    struct lx_thread *cur = lx_current_thread(p);
    cur->state = LX_THREAD_FUTEX;
    cur->futex_addr = a[0];
    cur->futex_bitset = bitset;
    cur->wait_seq = ++p->threads.wait_seq;
    cur->wake_at_ns = end;
    return lx_sched_switch(p);
}

/* FUTEX_WAKE_OP: *uaddr2 = oldval OP oparg; wake on uaddr; if (oldval CMP cmparg) wake on
 * uaddr2 as well. */
static long futex_wake_op(struct lx_proc *p, const uint64_t a[6], int n, int n2)
{
    uint32_t enc = (uint32_t)a[5];
    unsigned op = (enc >> 28) & 7, cmp = (enc >> 24) & 15;
    int32_t oparg = (int32_t)(enc << 8) >> 20, cmparg = (int32_t)(enc << 20) >> 20;
    if ((enc >> 28) & FUTEX_OP_OPARG_SHIFT)
        oparg = (int32_t)(1u << (oparg & 31));
    if (a[4] & 3)
        return -EINVAL;
    int32_t old;
    if (gm_read(p->vm, &old, a[4], sizeof old))
        return -EFAULT;
    uint32_t newval;
    switch (op) {
    case FUTEX_OP_SET: newval = (uint32_t)oparg; break;
    case FUTEX_OP_ADD: newval = (uint32_t)old + (uint32_t)oparg; break;
    case FUTEX_OP_OR: newval = (uint32_t)old | (uint32_t)oparg; break;
    case FUTEX_OP_ANDN: newval = (uint32_t)old & ~(uint32_t)oparg; break;
    case FUTEX_OP_XOR: newval = (uint32_t)old ^ (uint32_t)oparg; break;
    default: return -ENOSYS;
    }
    bool hit;
    switch (cmp) {
    case FUTEX_OP_CMP_EQ: hit = old == cmparg; break;
    case FUTEX_OP_CMP_NE: hit = old != cmparg; break;
    case FUTEX_OP_CMP_LT: hit = old < cmparg; break;
    case FUTEX_OP_CMP_LE: hit = old <= cmparg; break;
    case FUTEX_OP_CMP_GT: hit = old > cmparg; break;
    case FUTEX_OP_CMP_GE: hit = old >= cmparg; break;
    default: return -ENOSYS;
    }
    if (gm_write(p->vm, a[4], &newval, sizeof newval))
        return -EFAULT;
    int woken = lx_futex_wake(p, a[0], UINT32_MAX, n);
    if (hit)
        woken += lx_futex_wake(p, a[4], UINT32_MAX, n2);
    return woken;
}

long sys_futex(struct lx_proc *p, const uint64_t a[6])
{
    int op = (int)a[1] & FUTEX_CMD_MASK;
    bool realtime = (a[1] & FUTEX_CLOCK_REALTIME) != 0;
    if (a[0] & 3)
        return -EINVAL;             /* futex words are aligned u32s */
    if (realtime && op != FUTEX_WAIT && op != FUTEX_WAIT_BITSET)
        return -ENOSYS;
    /* Linux wakes at least one waiter whatever the count says. */
    int n = (int)(uint32_t)a[2] < 1 ? 1 : (int)(uint32_t)a[2];
    int n2 = (int)(uint32_t)a[3];
    switch (op) {
    case FUTEX_WAIT: case FUTEX_WAIT_BITSET:
        return futex_wait(p, a, op, realtime);
    case FUTEX_WAKE:
        return lx_futex_wake(p, a[0], UINT32_MAX, n);
    case FUTEX_WAKE_BITSET:
        if ((uint32_t)a[5] == 0)
            return -EINVAL;
        return lx_futex_wake(p, a[0], (uint32_t)a[5], n);
    case FUTEX_WAKE_OP:
        return futex_wake_op(p, a, n, n2 < 0 ? 0 : n2);
    case FUTEX_REQUEUE: case FUTEX_CMP_REQUEUE: {
        if ((int)(uint32_t)a[2] < 0 || n2 < 0 || (a[4] & 3))
            return -EINVAL;
        if (op == FUTEX_CMP_REQUEUE) {
            uint32_t value;
            if (gm_read(p->vm, &value, a[0], sizeof value))
                return -EFAULT;
            if (value != (uint32_t)a[5])
                return -EAGAIN;
        }
        int woken = lx_futex_wake(p, a[0], UINT32_MAX, (int)(uint32_t)a[2]);
        return woken + lx_futex_requeue(p, a[0], a[4], n2);
    }
    default:
        return -ENOSYS;
    }
}
