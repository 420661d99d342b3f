/* Counters a running server keeps, for the summary printed at exit and for the Prometheus
 * text exposition (--metrics). Request-VM threads update them with relaxed atomic adds only;
 * readers (the metrics thread, the exit summary) never touch guest memory or VM state. */
#ifndef KVMS_METRICS_H
#define KVMS_METRICS_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "linux/counters.h"
#include "vm/vm.h"

struct vm_reset_stats;

#define METRICS_MAX_BUCKETS 16

/* Per-bucket counts (not cumulative: an observation is one add), and the sum. */
struct histogram {
    atomic_uint_fast64_t bucket[METRICS_MAX_BUCKETS + 1];   /* last: above every bound */
    atomic_uint_fast64_t sum;
};

struct metrics {
    struct lx_counters lx;                /* counted by the Linux layer (denials, accepts) */
    atomic_uint_fast64_t accepted_at_ready;   /* lx.accepted when the program was frozen:
                                               * connections before it were the warm-up's */
    atomic_uint_fast64_t boot_ns;         /* boot to readiness; 0 = not ready yet */
    atomic_uint_fast64_t env_withheld;    /* host variables the guest was not given */
    atomic_uint_fast64_t vms_live;        /* request VMs running (not stopped by a failure) */
    atomic_uint_fast64_t vms_busy;        /* ... of which serving a connection */
    atomic_uint_fast64_t vm_exits;        /* total over the requests that ended */
    atomic_uint_fast64_t timeouts, crashes;
    struct histogram request_ns;          /* -e: one connection, accept to close */
    struct histogram reset_ns, reset_pages;
};

/* A request VM took a connection (or, without -e, started serving); returns its start. */
uint64_t metrics_request_begin(struct metrics *m);
/* Its connection ended (or, without -e, the VM stopped serving) how `res` says; begun =
 * metrics_request_begin's answer; `timed`: observe it in the duration histogram. */
void metrics_request_end(struct metrics *m, uint64_t begun, bool timed, enum vm_run_result res,
                         uint64_t exits);
/* A request begun but not served (the server is stopping). */
void metrics_request_abandon(struct metrics *m);
void metrics_count_reset(struct metrics *m, const struct vm_reset_stats *st);

/* The Prometheus text exposition format (version 0.0.4). */
void metrics_format(const struct metrics *m, FILE *out);
/* One summary line for the end of a run. */
void metrics_print(const struct metrics *m, FILE *out);

#endif
