/* Counters a running server keeps: requests served and what their resets cost. */
#ifndef KVMS_METRICS_H
#define KVMS_METRICS_H
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

struct vm_reset_stats;

struct metrics {
    atomic_uint_fast64_t requests;
    atomic_uint_fast64_t reset_ns;        /* total */
    atomic_uint_fast64_t pages_restored;  /* total */
    atomic_uint_fast64_t vm_exits;        /* total over requests */
};

void metrics_count_request(struct metrics *m, const struct vm_reset_stats *st, uint64_t exits);
void metrics_print(const struct metrics *m, FILE *out);

#endif
