/* poll, ppoll, select, pselect6. All four become one host ppoll() on the host fds behind the
 * guest's numbers, bounded by the VM deadline (wait.h). A listener the process may not accept
 * from (listener.h) is left out, so it never looks ready; at boot, a wait on a listener freezes
 * the program instead (server mode's readiness point). */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "base/time.h"
#include "linux/listener.h"
#include "linux/process.h"
#include "linux/syscalls.h"
#include "linux/wait.h"
#include "vm/guest_mem.h"

/* More entries than the guest can have fds is -EINVAL (Linux: more than RLIMIT_NOFILE). */
#define POLL_MAX LX_MAX_FDS

_Static_assert(sizeof(struct pollfd) == 8, "struct pollfd must be the x86-64 kernel layout");

struct poll_set {
    struct pollfd *fds;
    nfds_t n;
};

static long poll_attempt(void *ctx, int64_t timeout_ns)
{
    struct poll_set *s = ctx;
    struct timespec ts = ns_timespec(timeout_ns);
    int r = ppoll(s->fds, s->n, timeout_ns < 0 ? NULL : &ts, NULL);
    return r < 0 ? -errno : r;
}

static long wait_on(struct lx_proc *p, struct pollfd *fds, nfds_t n, int64_t timeout_ns)
{
    struct poll_set s = { .fds = fds, .n = n };
    long r = lx_wait_fds(p, timeout_ns, poll_attempt, &s, fds, n);
    return r < 0 ? r : 0;
}

/* At boot, a wait on a listener freezes the program, unless something is ready already. */
static bool freezes_here(struct lx_proc *p, struct pollfd *fds, nfds_t n, int64_t timeout_ns)
{
    struct poll_set s = { .fds = fds, .n = n };
    long ready = poll_attempt(&s, 0);
    return (ready == 0 || ready == -EINTR) && lx_freeze_for_readiness(p, timeout_ns);
}

/* Reads a guest timespec into ns; NULL = forever (-1). Values past ~292 years are forever. */
static long read_timespec_ns(struct lx_proc *p, uint64_t gva, int64_t *ns)
{
    *ns = -1;
    if (!gva)
        return 0;
    struct timespec ts;
    if (gm_read(p->vm, &ts, gva, sizeof ts))
        return -EFAULT;
    if (!timespec_valid(&ts))
        return -EINVAL;
    int64_t v = timespec_ns(&ts);
    if (v != INT64_MAX)
        *ns = v;
    return 0;
}

/* Like Linux, select and the p-variants report the time left whatever the call returned (an
 * EINTR too), unless the timeout was zero or none; a failed write is ignored, as there. A
 * wait switched out so that other threads run reports nothing yet: it is redone. */
static long report_time_left(struct lx_proc *p, long r, uint64_t gva, int64_t timeout_ns,
                             uint64_t end_ns, bool timeval)
{
    if (r == -LX_ESWITCH || timeout_ns <= 0)
        return r;
    uint64_t now = now_ns();
    uint64_t left = end_ns > now ? end_ns - now : 0;
    if (timeval) {
        struct { int64_t sec, usec; } tv = { (int64_t)(left / NS_PER_SEC),
                                             (int64_t)(left % NS_PER_SEC / 1000) };
        gm_write(p->vm, gva, &tv, sizeof tv);
    } else {
        struct timespec ts = { .tv_sec = (time_t)(left / NS_PER_SEC),
                               .tv_nsec = (long)(left % NS_PER_SEC) };
        gm_write(p->vm, gva, &ts, sizeof ts);
    }
    return r;
}


/* ---- poll ---- */

static long poll_common(struct lx_proc *p, uint64_t fds_gva, uint64_t nfds_reg, int64_t timeout_ns)
{
    uint32_t nfds = (uint32_t)nfds_reg;
    if (nfds > POLL_MAX)
        return -EINVAL;
    struct pollfd guest[POLL_MAX], host[POLL_MAX];
    size_t bytes = (size_t)nfds * sizeof guest[0];
    if (nfds && gm_read(p->vm, guest, fds_gva, bytes))
        return -EFAULT;

    bool on_listener = false;
    for (uint32_t i = 0; i < nfds; i++) {
        const struct lx_fd *f = guest[i].fd >= 0 ? fdt_get(&p->fds, guest[i].fd) : NULL;
        on_listener |= f && f->type == LX_FT_LISTENER && (guest[i].events & POLLIN);
    }
    bool any_invalid = false;
    for (uint32_t i = 0; i < nfds; i++) {
        host[i] = (struct pollfd){ .fd = -1, .events = guest[i].events };
        if (guest[i].fd < 0)
            continue;
        const struct lx_fd *f = fdt_get(&p->fds, guest[i].fd);
        if (!f)
            any_invalid = true;         /* answered POLLNVAL below, at once */
        else
            host[i].fd = lx_wait_host_fd(p, f);    /* -1: never ready */
    }
    if (on_listener && !any_invalid && lx_freeze_due(p) && timeout_ns != 0 &&
        freezes_here(p, host, nfds, timeout_ns))
        return 0;
    long err = wait_on(p, host, nfds, any_invalid ? 0 : timeout_ns);
    if (err)
        return err;
    long ready = 0;
    for (uint32_t i = 0; i < nfds; i++) {
        short revents = host[i].revents;
        if (guest[i].fd >= 0 && !fdt_get(&p->fds, guest[i].fd))
            revents = POLLNVAL;
        guest[i].revents = revents;
        ready += revents != 0;
    }
    if (nfds && gm_write(p->vm, fds_gva, guest, bytes))
        return -EFAULT;
    return ready;
}

static int64_t ms_to_ns(int ms)
{
    return ms < 0 ? -1 : (int64_t)ms * 1000000;
}

long sys_poll(struct lx_proc *p, const uint64_t a[6])
{
    return poll_common(p, a[0], a[1], ms_to_ns((int)(uint32_t)a[2]));
}

long sys_ppoll(struct lx_proc *p, const uint64_t a[6])
{
    int64_t timeout_ns;
    long err = read_timespec_ns(p, a[2], &timeout_ns);
    if (!err)
        err = lx_signal_wait_mask(p, a[3], a[4]);
    if (err)
        return err;
    uint64_t end = timeout_ns < 0 ? 0 : lx_wait_end_ns(p, timeout_ns);
    long r = poll_common(p, a[0], a[1], timeout_ns);
    return report_time_left(p, r, a[2], timeout_ns, end, false);
}

/* ---- select ---- */

#define SET_WORDS (LX_MAX_FDS / 64)

enum { SEL_READ, SEL_WRITE, SEL_EXCEPT, SEL_SETS };

/* What makes an fd "ready" for each set, as Linux's select defines it from poll bits. */
static const short want_bits[SEL_SETS] = { POLLIN | POLLRDNORM | POLLRDBAND,
                                           POLLOUT | POLLWRNORM | POLLWRBAND, POLLPRI };
static const short ready_bits[SEL_SETS] = {
    POLLIN | POLLRDNORM | POLLRDBAND | POLLHUP | POLLERR,
    POLLOUT | POLLWRNORM | POLLWRBAND | POLLERR, POLLPRI };

static bool bit(const uint64_t *set, int fd) { return set[fd / 64] >> (fd % 64) & 1; }

static long select_common(struct lx_proc *p, const uint64_t a[6], int64_t timeout_ns)
{
    int n = (int)(uint32_t)a[0];
    if (n < 0)
        return -EINVAL;
    if (n > LX_MAX_FDS)
        n = LX_MAX_FDS;         /* Linux too looks no further than the fd table */
    size_t bytes = (size_t)(n + 63) / 64 * sizeof(uint64_t);
    uint64_t in[SEL_SETS][SET_WORDS] = { { 0 } }, out[SEL_SETS][SET_WORDS] = { { 0 } };
    for (int s = 0; s < SEL_SETS; s++)
        if (a[1 + s] && bytes && gm_read(p->vm, in[s], a[1 + s], bytes))
            return -EFAULT;
    if (n % 64)                 /* bits at or above nfds are not looked at */
        for (int s = 0; s < SEL_SETS; s++)
            in[s][n / 64] &= (1ull << (n % 64)) - 1;

    struct pollfd host[LX_MAX_FDS];
    int guest_fd_of[LX_MAX_FDS];
    nfds_t count = 0;
    bool freeze = false;
    for (int fd = 0; fd < n; fd++) {
        short events = 0;
        for (int s = 0; s < SEL_SETS; s++)
            if (bit(in[s], fd))
                events |= want_bits[s];
        if (!events)
            continue;
        const struct lx_fd *f = fdt_get(&p->fds, fd);
        if (!f)
            return -EBADF;
        if (f->type == LX_FT_LISTENER && bit(in[SEL_READ], fd))
            freeze = true;
        int host_fd = lx_wait_host_fd(p, f);
        if (host_fd < 0)
            continue;           /* never ready for this guest any more */
        host[count] = (struct pollfd){ .fd = host_fd, .events = events };
        guest_fd_of[count++] = fd;
    }
    if (freeze && lx_freeze_due(p) && timeout_ns != 0 && freezes_here(p, host, count, timeout_ns))
        return 0;

    long err = wait_on(p, host, count, timeout_ns);
    if (err)
        return err;
    long ready = 0;
    for (nfds_t i = 0; i < count; i++) {
        int fd = guest_fd_of[i];
        for (int s = 0; s < SEL_SETS; s++) {
            if (bit(in[s], fd) && (host[i].revents & ready_bits[s])) {
                out[s][fd / 64] |= 1ull << (fd % 64);
                ready++;
            }
        }
    }
    for (int s = 0; s < SEL_SETS; s++)
        if (a[1 + s] && bytes && gm_write(p->vm, a[1 + s], out[s], bytes))
            return -EFAULT;
    return ready;
}

long sys_select(struct lx_proc *p, const uint64_t a[6])
{
    int64_t timeout_ns = -1;
    uint64_t end = 0;
    if (a[4]) {
        struct { int64_t sec, usec; } tv;
        if (gm_read(p->vm, &tv, a[4], sizeof tv))
            return -EFAULT;
        if (tv.sec < 0 || tv.usec < 0)
            return -EINVAL;
        /* Linux carries whole seconds out of tv_usec rather than refusing them. */
        int64_t sec = tv.sec + tv.usec / 1000000;
        if (sec >= tv.sec && sec < INT64_MAX / NS_PER_SEC - 1)
            timeout_ns = sec * NS_PER_SEC + tv.usec % 1000000 * 1000;
        if (timeout_ns >= 0)
            end = lx_wait_end_ns(p, timeout_ns);
    }
    long r = select_common(p, a, timeout_ns);
    return report_time_left(p, r, a[4], timeout_ns, end, true);
}

long sys_pselect6(struct lx_proc *p, const uint64_t a[6])
{
    int64_t timeout_ns;
    long err = read_timespec_ns(p, a[4], &timeout_ns);
    if (err)
        return err;
    if (a[5]) {                 /* struct { const sigset_t *ss; size_t ss_len; } */
        uint64_t sig[2];
        if (gm_read(p->vm, sig, a[5], sizeof sig))
            return -EFAULT;
        err = lx_signal_wait_mask(p, sig[0], sig[1]);
        if (err)
            return err;
    }
    uint64_t end = timeout_ns < 0 ? 0 : lx_wait_end_ns(p, timeout_ns);
    long r = select_common(p, a, timeout_ns);
    return report_time_left(p, r, a[4], timeout_ns, end, false);
}
