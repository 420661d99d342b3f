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
#include "vm/engine.h"

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
    atomic_bool ephemeral;                /* -e: a request is one accepted connection */
    atomic_uint_fast64_t served;          /* -e: connections whose request VM ended them */
    atomic_uint_fast64_t vms_live;        /* request VMs running (not stopped by a failure) */
    atomic_uint_fast64_t vm_exits;        /* total over the requests that ended */
    atomic_uint_fast64_t timeouts, crashes;
    struct histogram request_ns;          /* -e: one connection, accept to close */
    struct histogram reset_ns, reset_pages;
    atomic_uint_fast64_t pages_released;  /* kept pages resets stopped copying */
};

/* A request VM's run ended how `res` says, after `exits` VM exits. accepted_ns: with -e,
 * when it accepted its connection (now closed); 0 when it accepted none. */
void metrics_request_end(struct metrics *m, uint64_t accepted_ns, enum vm_run_result res,
                         uint64_t exits);
void metrics_count_reset(struct metrics *m, const struct vm_reset_stats *st);

/* Connections accepted since the freeze. */
uint64_t metrics_requests(const struct metrics *m);
/* -e: connections accepted and not yet ended (a VM counts from its accept, not from waking
 * up for a connection another VM may take). 0 without -e. */
uint64_t metrics_in_flight(const struct metrics *m);

/* The Prometheus text exposition format (version 0.0.4). */
void metrics_format(const struct metrics *m, FILE *out);
/* One summary line for the end of a run. */
void metrics_print(const struct metrics *m, FILE *out);

#endif
