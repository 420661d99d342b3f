/* Host waits bounded by the VM deadline (see wait.h). */
#include "linux/wait.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <time.h>

#include "base/log.h"
#include "base/time.h"
#include "linux/listener.h"
#include "linux/process.h"
#include "vm/engine.h"
#include "vm/guest_mem.h"

static uint64_t add_sat(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

long lx_wait_until(struct lx_proc *p, int64_t timeout_ns, lx_wait_attempt attempt, void *ctx)
{
    uint64_t vm_end = p->vm ? vm_deadline(p->vm) : 0;
    uint64_t guest_end = timeout_ns < 0 ? 0 : add_sat(now_ns(), (uint64_t)timeout_ns);
    /* A signal already due ends the call unless something is ready now, as Linux looks
     * once before it sleeps. */
    if (timeout_ns != 0 && lx_signal_interrupts(p)) {
        long r = attempt(ctx, 0);
        return r > 0 || (r < 0 && r != -EINTR) ? r : -EINTR;
    }
    for (;;) {
        uint64_t now = now_ns();
        int64_t left = -1;
        if (timeout_ns >= 0)
            left = guest_end > now ? (int64_t)(guest_end - now) : 0;
        /* The deadline shortens the wait only when it comes strictly first: a guest's
         * zero-timeout poll still runs (and reports) after the deadline. */
        if (vm_end) {
            int64_t vm_left = vm_end > now ? (int64_t)(vm_end - now) : 0;
            if (left < 0 || vm_left < left)
                left = vm_left;
        }
        /* A timer's signal ends the wait, so look again when the next one is due. */
        int64_t timer = lx_signal_next_timer_ns(p);
        if (timer >= 0) {
            int64_t timer_left = (uint64_t)timer > now ? (int64_t)((uint64_t)timer - now) : 0;
            if (left < 0 || timer_left < left)
                left = timer_left;
        }
        long r = attempt(ctx, left);
        if (r > 0 || (r < 0 && r != -EINTR))
            return r;
        if (lx_signal_interrupts(p))
            return -EINTR;              /* the handler runs as the call returns */
        /* Timed out or interrupted (the kick signal): who ended it, if anyone? */
        now = now_ns();
        if (timeout_ns >= 0 && now >= guest_end)
            return 0;
        if (vm_end && now >= vm_end) {
            p->server.deadline_hit = true;
            return -EINTR;
        }
    }
}

struct one_fd {
    int fd;
    short events;
};

static long poll_one(void *ctx, int64_t timeout_ns)
{
    const struct one_fd *w = ctx;
    struct pollfd pfd = { .fd = w->fd, .events = w->events };
    struct timespec ts = ns_timespec(timeout_ns);
    int n = ppoll(&pfd, 1, timeout_ns < 0 ? NULL : &ts, NULL);
    if (n < 0)
        return -errno;
    /* POLLNVAL would mean our own table is wrong: report it rather than spin. */
    if (n > 0 && (pfd.revents & POLLNVAL))
        return -EBADF;
    return n;
}

int lx_wait_fd_timeout(struct lx_proc *p, int host_fd, short events, int64_t timeout_ns,
                       bool redoable)
{
    struct one_fd w = { .fd = host_fd, .events = events };
    struct pollfd set = { .fd = host_fd, .events = events };
    long r = redoable ? lx_wait_fds(p, timeout_ns, poll_one, &w, &set, 1)
                      : lx_wait_until(p, timeout_ns, poll_one, &w);
    return r > 0 ? 1 : (int)r;
}

int lx_wait_fd(struct lx_proc *p, int host_fd, short events)
{
    int r = lx_wait_fd_timeout(p, host_fd, events, -1, true);
    return r > 0 ? 0 : r;
}

bool lx_host_fd_blocks(int host_fd)
{
    int fl = fcntl(host_fd, F_GETFL);
    return fl >= 0 && !(fl & O_NONBLOCK);
}

/* The freeze cannot be reached: the VM stops, and the boot reports why. */
static bool boot_fails(struct lx_proc *p, const char *why)
{
    vm_set_crash_report(p->vm, "%s", why);
    p->server.boot_failed = true;
    p->server.frozen = true;
    return true;
}

static bool connection_open(struct lx_proc *p)
{
    for (int fd = 0; fd < LX_MAX_FDS; fd++) {
        const struct lx_fd *f = fdt_get(&p->fds, fd);
        if (f && f->type == LX_FT_CONNECTION)
            return true;
    }
    return false;
}

bool lx_freeze_for_readiness(struct lx_proc *p, int64_t timeout_ns)
{
    const struct lx_freeze_hooks *h = p->server.freeze;
    void *ctx = p->server.freeze_ctx;
    struct lx_thread *me = lx_current_thread(p);
    bool pause = h && !h->freeze_due(ctx) && h->pause_due(ctx);
    if (pause && connection_open(p))
        return false;           /* within a warm-up request: no pause yet */
    int runnable = lx_thread_others_runnable(p);
    if (runnable) {
        /* Their work (a JIT's compiles, a GC) belongs in the image, but a thread that never
         * blocks would keep the freeze off for good: it waits this long at most. */
        uint64_t now = now_ns();
        if (!me->quiesce_since_ns)
            me->quiesce_since_ns = now;
        if (now - me->quiesce_since_ns < LX_QUIESCE_MAX_NS) {
            me->wait_freezes = true;
            return false;
        }
        if (pause) {
            log_info("warm-up: %d guest thread(s) still runnable after %llu ms; the warm-up "
                     "goes on without waiting for them", runnable,
                     (unsigned long long)((now - me->quiesce_since_ns) / 1000000));
            me->wait_freezes = false;
            h->warmup_quiet(ctx, p->server.warmup_accepted, false, false);
            return false;
        }
        log_info("freezing with %d guest thread(s) still runnable (after %llu ms)", runnable,
                 (unsigned long long)((now - me->quiesce_since_ns) / 1000000));
    }
    if (pause) {
        me->wait_freezes = false;    /* told: this wait need not look again */
        h->warmup_quiet(ctx, p->server.warmup_accepted, true, p->server.warmup_wakes > 0);
        p->server.warmup_wakes = 0;
        return false;
    }
    if (timeout_ns >= 0) {
        /* A timer due soon (Deno's start-up finishes in one): every fork would run it. */
        uint64_t now = now_ns();
        if (!p->server.settle_end_ns)
            p->server.settle_end_ns = now + LX_FREEZE_SETTLE_NS;
        uint64_t settled = p->server.settle_end_ns;
        if (now < settled && add_sat(now, (uint64_t)timeout_ns) < settled)
            return false;
    }
    if (h && h->warmup_due(ctx)) {
        /* Warm-up first: the server layer sends its requests (to the private listener) while
         * the program goes on serving them; it asks for the freeze again once they are done. */
        for (int fd = 0; fd < LX_MAX_FDS; fd++) {
            const struct lx_fd *f = fdt_get(&p->fds, fd);
            int host = f && f->type == LX_FT_LISTENER ? lx_wait_host_fd(p, f) : -1;
            if (host >= 0) {
                int err = h->warmup_start(ctx, host);
                if (err < 0)
                    return boot_fails(p, "the warm-up cannot start (see above); not serving");
                return false;
            }
        }
    }
    if (h && h->warmup_failed(ctx))
        return boot_fails(p, "the warm-up could not reach the program's listener; not serving");
    p->server.frozen = true;
    return true;
}
