/* epoll for the guest: a host epoll instance per guest epoll fd does the waiting, and every
 * registration is recorded (linux/epoll.h) so forks can rebuild the instance with their own
 * host fds. The host registration carries the guest's own data word, so events go to the
 * guest without translation. */
#include "linux/epoll.h"
#include "base/time.h"
#include "linux/listener.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "linux/process.h"
#include "linux/syscalls.h"
#include "linux/wait.h"
#include "vm/guest_mem.h"

/* The guest's struct epoll_event is packed on x86-64, and so is the host's: the host may
 * write events straight into guest memory. */
_Static_assert(sizeof(struct epoll_event) == 12, "struct epoll_event must be packed (x86-64)");

/* Events returned per call at most; fewer than asked is always allowed by epoll. */
#define EPOLL_BATCH 1024
/* Linux refuses larger maxevents with EINVAL (INT_MAX / sizeof(struct epoll_event)). */
#define EP_MAX_EVENTS (INT_MAX / 12)

static int fd_arg(uint64_t reg) { return (int)(uint32_t)reg; }

/* ---- the record ---- */

static struct lx_epoll_reg *find_reg(struct lx_epoll *ep, int guest_fd)
{
    for (size_t i = 0; i < ep->count; i++)
        if (ep->regs[i].guest_fd == guest_fd)
            return &ep->regs[i];
    return NULL;
}

static int add_reg(struct lx_epoll *ep, int guest_fd, uint32_t events, uint64_t data)
{
    if (ep->count == ep->cap) {
        /* One registration per guest fd at most, so the record never outgrows the table. */
        size_t cap = ep->cap ? ep->cap * 2 : 8;
        if (cap > LX_MAX_FDS)
            cap = LX_MAX_FDS;
        if (cap <= ep->count)
            return -ENOSPC;
        struct lx_epoll_reg *regs = realloc(ep->regs, cap * sizeof *regs);
        if (!regs)
            return -ENOMEM;
        ep->regs = regs;
        ep->cap = cap;
    }
    ep->regs[ep->count++] = (struct lx_epoll_reg){ .guest_fd = guest_fd, .events = events,
                                                   .data = data };
    return 0;
}

static void del_reg(struct lx_epoll *ep, struct lx_epoll_reg *r)
{
    *r = ep->regs[--ep->count];     /* order does not matter */
}

struct lx_epoll *lx_epoll_get(struct lx_epoll *ep)
{
    ep->refs++;
    return ep;
}

void lx_epoll_put(struct lx_epoll *ep)
{
    if (!ep || --ep->refs > 0)
        return;
    free(ep->regs);
    free(ep);
}

int lx_epoll_clone(const struct lx_epoll *ep, struct lx_fdtable *fds, struct lx_epoll **copy)
{
    *copy = NULL;
    struct lx_epoll *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->refs = 1;
    int host = epoll_create1(EPOLL_CLOEXEC);
    if (host < 0) {
        int err = errno;
        free(c);
        return -err;
    }
    for (size_t i = 0; ep && i < ep->count; i++) {
        const struct lx_epoll_reg *r = &ep->regs[i];
        struct lx_fd *f = fdt_get(fds, r->guest_fd);
        if (!f)
            continue;           /* closed since: nothing to re-add */
        struct epoll_event ev = { .events = r->events, .data.u64 = r->data };
        /* A registration the host refuses now cannot fire either: leave it out of both. */
        if (epoll_ctl(host, EPOLL_CTL_ADD, f->host_fd, &ev) < 0)
            continue;
        int err = add_reg(c, r->guest_fd, r->events, r->data);
        if (err) {
            close(host);
            lx_epoll_put(c);
            return err;
        }
    }
    *copy = c;
    return host;
}

static bool is_epoll(const struct lx_fd *f)
{
    return f->kind != LX_FD_FREE && f->type == LX_FT_EPOLL && f->epoll;
}

void lx_epoll_forget_fd(struct lx_proc *p, int guest_fd)
{
    struct lx_fd *target = fdt_get(&p->fds, guest_fd);
    for (int i = 0; i < LX_MAX_FDS; i++) {
        struct lx_fd *e = &p->fds.fd[i];
        if (!is_epoll(e))
            continue;
        struct lx_epoll_reg *r = find_reg(e->epoll, guest_fd);
        if (!r)
            continue;
        int host = target ? lx_wait_host_fd(p, target) : -1;
        if (host >= 0)
            epoll_ctl(e->host_fd, EPOLL_CTL_DEL, host, NULL);
        del_reg(e->epoll, r);
    }
}

void lx_epoll_sync_listeners(struct lx_proc *p)
{
    for (int i = 0; i < LX_MAX_FDS; i++) {
        struct lx_fd *e = &p->fds.fd[i];
        if (!is_epoll(e))
            continue;
        for (size_t j = 0; j < e->epoll->count; j++) {
            const struct lx_epoll_reg *r = &e->epoll->regs[j];
            struct lx_fd *t = fdt_get(&p->fds, r->guest_fd);
            if (!t || t->type != LX_FT_LISTENER)
                continue;
            /* Already in (EEXIST) or already out (ENOENT): nothing to do. At boot the
             * host instance watches the private listener. */
            const struct lx_listener *l = lx_listener_of(p, t);
            int watched = l && l->private_fd >= 0 ? l->private_fd : t->host_fd;
            int host = lx_wait_host_fd(p, t);
            struct epoll_event ev = { .events = r->events, .data.u64 = r->data };
            if (host < 0)
                epoll_ctl(e->host_fd, EPOLL_CTL_DEL, watched, NULL);
            else
                epoll_ctl(e->host_fd, EPOLL_CTL_ADD, host, &ev);
        }
    }
}

/* ---- system calls ---- */

static long new_epoll(struct lx_proc *p, bool cloexec)
{
    struct lx_epoll *rec = calloc(1, sizeof *rec);
    if (!rec)
        return -ENOMEM;
    rec->refs = 1;
    int host = epoll_create1(EPOLL_CLOEXEC);
    if (host < 0) {
        int err = errno;
        free(rec);
        return -err;
    }
    int fd = lx_install_fd(p, host, cloexec, LX_FT_EPOLL);
    if (fd < 0) {
        free(rec);
        return fd;
    }
    p->fds.fd[fd].epoll = rec;
    return fd;
}

long sys_epoll_create(struct lx_proc *p, const uint64_t a[6])
{
    if ((int)(uint32_t)a[0] <= 0)
        return -EINVAL;
    return new_epoll(p, false);
}

long sys_epoll_create1(struct lx_proc *p, const uint64_t a[6])
{
    int flags = (int)(uint32_t)a[0];
    if (flags & ~EPOLL_CLOEXEC)
        return -EINVAL;
    return new_epoll(p, flags & EPOLL_CLOEXEC);
}

/* epoll_ctl for a listener that is out of its host instance (spent): the record alone
 * answers, with the errors Linux would give. */
static long ctl_record_only(struct lx_epoll *ep, int op, int fd, const struct epoll_event *ev)
{
    struct lx_epoll_reg *r = find_reg(ep, fd);
    switch (op) {
    case EPOLL_CTL_ADD:
        return r ? -EEXIST : add_reg(ep, fd, ev->events, ev->data.u64);
    case EPOLL_CTL_MOD:
        if (!r)
            return -ENOENT;
        r->events = ev->events;
        r->data = ev->data.u64;
        return 0;
    default:
        if (!r)
            return -ENOENT;
        del_reg(ep, r);
        return 0;
    }
}

long sys_epoll_ctl(struct lx_proc *p, const uint64_t a[6])
{
    int epfd = fd_arg(a[0]), op = (int)(uint32_t)a[1], fd = fd_arg(a[2]);
    struct epoll_event ev = { 0 };
    if (op == EPOLL_CTL_ADD || op == EPOLL_CTL_MOD) {
        if (gm_read(p->vm, &ev, a[3], sizeof ev))
            return -EFAULT;
        /* Unprivileged Linux ignores EPOLLWAKEUP; the host might not (it can run as root). */
        ev.events &= ~(uint32_t)EPOLLWAKEUP;
    } else if (op != EPOLL_CTL_DEL) {
        return -EINVAL;
    }
    struct lx_fd *e = fdt_get(&p->fds, epfd), *t = fdt_get(&p->fds, fd);
    if (!e || !t)
        return -EBADF;
    if (!is_epoll(e) || epfd == fd)
        return -EINVAL;
    if (lx_listener_spent(p, t))
        return ctl_record_only(e->epoll, op, fd, &ev);

    struct lx_epoll_reg *r = find_reg(e->epoll, fd);
    int host = lx_wait_host_fd(p, t);     /* a listener's private one at boot */
    if (epoll_ctl(e->host_fd, op, host, &ev) < 0) {
        int err = errno;
        if (op == EPOLL_CTL_DEL && err == ENOENT && r)
            del_reg(e->epoll, r);       /* keep the record in step with the host */
        return -err;
    }
    if (op == EPOLL_CTL_DEL) {
        if (r)
            del_reg(e->epoll, r);
        return 0;
    }
    if (r) {
        r->events = ev.events;
        r->data = ev.data.u64;
        return 0;
    }
    int err = add_reg(e->epoll, fd, ev.events, ev.data.u64);
    if (err)
        epoll_ctl(e->host_fd, EPOLL_CTL_DEL, host, NULL);
    return err;
}

static bool watches_listener(struct lx_proc *p, const struct lx_epoll *ep)
{
    for (size_t i = 0; i < ep->count; i++) {
        const struct lx_fd *t = fdt_get(&p->fds, ep->regs[i].guest_fd);
        if (t && t->type == LX_FT_LISTENER)
            return true;
    }
    return false;
}

struct epoll_wait_ctx {
    int host_fd;
    struct epoll_event *events;
    int max;
};

static long epoll_attempt(void *ctx, int64_t timeout_ns)
{
    struct epoll_wait_ctx *w = ctx;
    struct timespec ts = ns_timespec(timeout_ns);
    int n = epoll_pwait2(w->host_fd, w->events, w->max, timeout_ns < 0 ? NULL : &ts, NULL);
    if (n < 0 && errno == ENOSYS) {
        /* Hosts before Linux 5.11: millisecond timeouts, rounded up so we never spin. */
        int64_t ms = timeout_ns < 0 ? -1 : (timeout_ns + 999999) / 1000000;
        n = epoll_wait(w->host_fd, w->events, w->max, ms > INT_MAX ? INT_MAX : (int)ms);
    }
    return n < 0 ? -errno : n;
}

/* The common part of the epoll_wait family; timeout_ns < 0 = forever. */
static long epoll_wait_common(struct lx_proc *p, uint64_t epfd_reg, uint64_t events_gva,
                              uint64_t maxevents_reg, int64_t timeout_ns)
{
    int maxevents = (int)(uint32_t)maxevents_reg;
    if (maxevents <= 0 || maxevents > EP_MAX_EVENTS)
        return -EINVAL;
    int max = maxevents < EPOLL_BATCH ? maxevents : EPOLL_BATCH;
    struct epoll_event *events =
        gm_span(p->vm, events_gva, (size_t)max * sizeof *events, GM_WRITE);
    if (!events)
        return -EFAULT;
    struct lx_fd *e = fdt_get(&p->fds, fd_arg(epfd_reg));
    if (!e)
        return -EBADF;
    if (!is_epoll(e))
        return -EINVAL;
    struct epoll_wait_ctx w = { .host_fd = e->host_fd, .events = events, .max = max };
    if (lx_freeze_due(p) && timeout_ns != 0 && watches_listener(p, e->epoll)) {
        /* Events ready (edge-triggered ones too, which this look consumes) are the
         * program's: it freezes only in a wait that would block. */
        long ready = epoll_attempt(&w, 0);
        if (ready != 0 && ready != -EINTR)
            return ready;
        if (lx_freeze_for_readiness(p, timeout_ns))
            return 0;
    }
    struct pollfd set = { .fd = e->host_fd, .events = POLLIN };
    return lx_wait_fds(p, timeout_ns, epoll_attempt, &w, &set, 1);
}

static int64_t ms_to_ns(int ms)
{
    return ms < 0 ? -1 : (int64_t)ms * 1000000;
}


long sys_epoll_wait(struct lx_proc *p, const uint64_t a[6])
{
    return epoll_wait_common(p, a[0], a[1], a[2], ms_to_ns((int)(uint32_t)a[3]));
}

long sys_epoll_pwait(struct lx_proc *p, const uint64_t a[6])
{
    long err = lx_signal_wait_mask(p, a[4], a[5]);
    if (err)
        return err;
    return epoll_wait_common(p, a[0], a[1], a[2], ms_to_ns((int)(uint32_t)a[3]));
}

long sys_epoll_pwait2(struct lx_proc *p, const uint64_t a[6])
{
    int64_t timeout_ns = -1;
    if (a[3]) {
        struct timespec ts;
        if (gm_read(p->vm, &ts, a[3], sizeof ts))
            return -EFAULT;
        if (!timespec_valid(&ts))
            return -EINVAL;
        /* Beyond ~292 years: forever, as far as anyone can tell. */
        timeout_ns = timespec_ns(&ts);
        if (timeout_ns == INT64_MAX)
            timeout_ns = -1;
    }
    long err = lx_signal_wait_mask(p, a[4], a[5]);
    if (err)
        return err;
    return epoll_wait_common(p, a[0], a[1], a[2], timeout_ns);
}
