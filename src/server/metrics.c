/* Server counters (see metrics.h). */
#include "server/metrics.h"

#include "vm/fork.h"

void metrics_count_request(struct metrics *m, const struct vm_reset_stats *st, uint64_t exits)
{
    atomic_fetch_add(&m->requests, 1);
    atomic_fetch_add(&m->reset_ns, st->ns);
    atomic_fetch_add(&m->pages_restored, st->pages_restored);
    atomic_fetch_add(&m->vm_exits, exits);
}

void metrics_print(const struct metrics *m, FILE *out)
{
    uint64_t n = atomic_load(&m->requests);
    if (!n) {
        fprintf(out, "kvmserver: no request VM was reset\n");
        return;
    }
    fprintf(out, "kvmserver: %llu resets; per reset: %.1f us, %.1f pages restored, "
            "%.1f VM exits\n", (unsigned long long)n,
            atomic_load(&m->reset_ns) / 1e3 / (double)n,
            atomic_load(&m->pages_restored) / (double)n,
            atomic_load(&m->vm_exits) / (double)n);
}
