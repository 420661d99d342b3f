/* Graceful stop (see stop.h). */
#include "server/stop.h"

#include <stdio.h>
#include <time.h>

#include "base/time.h"

#define POLL_NS 5000000ull      /* how often the count of busy VMs is looked at */
#define SETTLE_NS 20000000ull   /* see wait_for_requests */

uint64_t wait_for_requests(const struct metrics *m, double timeout_s, const sigset_t *signals)
{
    const uint64_t start = now_ns();
    const uint64_t limit = (uint64_t)(timeout_s * 1e9);
    /* A VM that accepted a connection just before the listener went down counts it a
     * moment later: give it that moment before trusting a count of zero. */
    for (;;) {
        const uint64_t spent = now_ns() - start;
        const uint64_t busy = metrics_in_flight(m);
        if ((busy == 0 && spent >= SETTLE_NS) || spent >= limit)
            return busy;
        const uint64_t wait = limit - spent < POLL_NS ? limit - spent : POLL_NS;
        const struct timespec ts = { .tv_nsec = (long)wait };
        if (sigtimedwait(signals, NULL, &ts) > 0)
            return busy;    /* asked twice: stop now */
    }
}
