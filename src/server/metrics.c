/* Server counters and their Prometheus text exposition (see metrics.h). */
#include "server/metrics.h"

#include "base/time.h"
#include "linux/wait.h"
#include "vm/engine.h"

#ifndef KVMS_VERSION
#define KVMS_VERSION "unknown"
#endif

#define NS 1ull
#define US (1000 * NS)
#define MS (1000 * US)
#define S (1000 * MS)

struct histogram_desc {
    const char *name, *help;
    double scale;                      /* exported value = counted value * scale */
    unsigned nbounds;
    uint64_t bounds[METRICS_MAX_BUCKETS];   /* upper bounds, ascending */
};

static const struct histogram_desc request_desc = {
    "kvmserver_request_duration_seconds",
    "Time an ephemeral request VM served one connection, from accept to close.", 1e-9, 16,
    { 100 * US, 250 * US, 500 * US, 1 * MS, 2500 * US, 5 * MS, 10 * MS, 25 * MS, 50 * MS,
      100 * MS, 250 * MS, 500 * MS, 1 * S, 2500 * MS, 5 * S, 10 * S },
};
static const struct histogram_desc reset_desc = {
    "kvmserver_reset_duration_seconds",
    "Time a reset of a request VM to the frozen image took.", 1e-9, 14,
    { 5 * US, 10 * US, 25 * US, 50 * US, 100 * US, 250 * US, 500 * US, 1 * MS, 2500 * US,
      5 * MS, 10 * MS, 25 * MS, 50 * MS, 100 * MS },
};
static const struct histogram_desc pages_desc = {
    "kvmserver_reset_pages",
    "Pages a reset of a request VM copied back from the frozen image.", 1, 16,
    { 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768 },
};

static void add(atomic_uint_fast64_t *counter, uint64_t n)
{
    atomic_fetch_add_explicit(counter, n, memory_order_relaxed);
}

static uint64_t get(const atomic_uint_fast64_t *counter)
{
    return atomic_load_explicit(counter, memory_order_relaxed);
}

/* The sum is published before the count (the buckets), which a scrape reads first: a
 * scrape that counts an observation has its value in the sum too. */
static void observe(struct histogram *h, const struct histogram_desc *d, uint64_t value)
{
    unsigned i = 0;
    while (i < d->nbounds && value > d->bounds[i])
        i++;
    add(&h->sum, value);
    atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_release);
}

void metrics_request_end(struct metrics *m, uint64_t accepted_ns, enum vm_run_result res,
                         uint64_t exits)
{
    add(&m->vm_exits, exits);
    if (res == VM_TIMED_OUT)
        add(&m->timeouts, 1);
    else if (res == VM_CRASHED)
        add(&m->crashes, 1);
    if (accepted_ns) {
        observe(&m->request_ns, &request_desc, now_ns() - accepted_ns);
        atomic_fetch_add_explicit(&m->served, 1, memory_order_release);
    }
}

void metrics_count_reset(struct metrics *m, const struct vm_reset_stats *st)
{
    observe(&m->reset_ns, &reset_desc, st->ns);
    observe(&m->reset_pages, &pages_desc, st->pages_restored);
    add(&m->pages_released, st->pages_released);
}

/* ---- the exposition ---- */

static void family(FILE *out, const char *name, const char *type, const char *help)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void counter(FILE *out, const char *name, const char *help, uint64_t value)
{
    family(out, name, "counter", help);
    fprintf(out, "%s %llu\n", name, (unsigned long long)value);
}

static uint64_t histogram_count(const struct histogram *h, const struct histogram_desc *d)
{
    uint64_t n = 0;
    for (unsigned i = 0; i <= d->nbounds; i++)
        n += get(&h->bucket[i]);
    return n;
}

static void histogram(FILE *out, const struct histogram *h, const struct histogram_desc *d)
{
    family(out, d->name, "histogram", d->help);
    uint64_t cumulative = 0;
    for (unsigned i = 0; i <= d->nbounds; i++) {
        cumulative += atomic_load_explicit(&h->bucket[i], memory_order_acquire);
        if (i < d->nbounds)
            fprintf(out, "%s_bucket{le=\"%.9g\"} %llu\n", d->name, d->bounds[i] * d->scale,
                    (unsigned long long)cumulative);
        else
            fprintf(out, "%s_bucket{le=\"+Inf\"} %llu\n", d->name,
                    (unsigned long long)cumulative);
    }
    fprintf(out, "%s_sum %.9g\n%s_count %llu\n", d->name, get(&h->sum) * d->scale, d->name,
            (unsigned long long)cumulative);
}

uint64_t metrics_requests(const struct metrics *m)
{
    if (!get(&m->boot_ns))
        return 0;   /* connections so far are the warm-up's */
    return get(&m->lx.accepted) - get(&m->accepted_at_ready);
}

uint64_t metrics_in_flight(const struct metrics *m)
{
    if (!atomic_load(&m->ephemeral))
        return 0;
    /* served before accepted: every ended connection was accepted first, so the difference
     * of the two reads cannot go below zero */
    const uint64_t served = atomic_load_explicit(&m->served, memory_order_acquire);
    const uint64_t requests = metrics_requests(m);
    return requests > served ? requests - served : 0;
}

void metrics_format(const struct metrics *m, FILE *out)
{
    family(out, "kvmserver_build_info", "gauge", "The kvmserver version, as a label.");
    fprintf(out, "kvmserver_build_info{version=\"%s\"} 1\n", KVMS_VERSION);
    family(out, "kvmserver_boot_seconds", "gauge",
           "Time the program took to boot to readiness (absent while it boots).");
    if (get(&m->boot_ns))
        fprintf(out, "kvmserver_boot_seconds %.9g\n", get(&m->boot_ns) * 1e-9);
    counter(out, "kvmserver_requests_total", "Connections accepted by request VMs.",
            metrics_requests(m));
    histogram(out, &m->request_ns, &request_desc);
    histogram(out, &m->reset_ns, &reset_desc);
    histogram(out, &m->reset_pages, &pages_desc);
    counter(out, "kvmserver_reset_pages_released_total", "Pages request VMs had kept private "
            "across resets and dropped back to the frozen image, unwritten for a while.",
            get(&m->pages_released));
    counter(out, "kvmserver_vm_exits_total", "VM exits of request VMs, counted as each "
            "request ends.", get(&m->vm_exits));
    /* Without -e a VM serves connections continuously: busy. */
    const uint64_t live = get(&m->vms_live);
    const uint64_t busy = atomic_load(&m->ephemeral) ? metrics_in_flight(m) : live;
    family(out, "kvmserver_request_vms", "gauge", "Request VMs serving a connection (busy) "
           "or waiting for one (idle).");
    fprintf(out, "kvmserver_request_vms{state=\"busy\"} %llu\n", (unsigned long long)busy);
    fprintf(out, "kvmserver_request_vms{state=\"idle\"} %llu\n",
            (unsigned long long)(live > busy ? live - busy : 0));
    counter(out, "kvmserver_request_timeouts_total",
            "Requests cut off at --max-request-time.", get(&m->timeouts));
    counter(out, "kvmserver_guest_crashes_total", "Request VMs whose program crashed.",
            get(&m->crashes));
    static const char *const kinds[LX_DENIAL_KINDS] = {
        [LX_DENIED_READ] = "read", [LX_DENIED_WRITE] = "write",
        [LX_DENIED_CONNECT] = "connect", [LX_DENIED_LISTEN] = "listen",
    };
    family(out, "kvmserver_denied_total", "counter", "Calls the permission policy refused "
           "(env: host variables withheld from the guest at start-up).");
    for (unsigned k = 0; k < LX_DENIAL_KINDS; k++)
        fprintf(out, "kvmserver_denied_total{kind=\"%s\"} %llu\n", kinds[k],
                (unsigned long long)get(&m->lx.denied[k]));
    fprintf(out, "kvmserver_denied_total{kind=\"env\"} %llu\n",
            (unsigned long long)get(&m->env_withheld));
    counter(out, "kvmserver_unsupported_syscalls_total", "System calls answered ENOSYS.",
            get(&m->lx.unsupported_syscalls));
}

void metrics_print(const struct metrics *m, FILE *out)
{
    uint64_t n = histogram_count(&m->reset_ns, &reset_desc);
    if (!n) {
        fprintf(out, "kvmserver: no request VM was reset\n");
        return;
    }
    fprintf(out, "kvmserver: %llu resets; per reset: %.1f us, %.1f pages restored, "
            "%.1f VM exits\n", (unsigned long long)n,
            get(&m->reset_ns.sum) / 1e3 / (double)n,
            get(&m->reset_pages.sum) / (double)n,
            get(&m->vm_exits) / (double)n);
}
