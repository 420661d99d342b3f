/* The clock page: published by the host at CLOCK_PAGE_ADDR (read-only to the guest) so the
 * vDSO answers clock_gettime/gettimeofday/time without leaving the guest.
 *   ns(clock) = base_ns[clock] + (((rdtsc() - tsc_base) * mult) >> shift)
 * The host only rewrites it while the vCPU is stopped, but bumps `seq` (odd while writing)
 * so a reader on another CPU (a future shared transport) can retry. */
#ifndef KVMS_CLOCK_PAGE_H
#define KVMS_CLOCK_PAGE_H
#include <stdint.h>

enum { CLOCK_PAGE_REALTIME = 0, CLOCK_PAGE_MONOTONIC = 1, CLOCK_PAGE_BOOTTIME = 2,
       CLOCK_PAGE_NCLOCKS = 3 };

/* The page's slot for a Linux clock id, or -1 for clocks only the host answers. The vDSO and
 * the host's clock_gettime both read through this, so a raw system call and a vDSO call agree. */
static inline int clock_page_slot(int linux_clock_id)
{
    switch (linux_clock_id) {
    case 0: case 5:             /* CLOCK_REALTIME, CLOCK_REALTIME_COARSE */
        return CLOCK_PAGE_REALTIME;
    case 1: case 4: case 6:     /* CLOCK_MONOTONIC, _RAW, _COARSE */
        return CLOCK_PAGE_MONOTONIC;
    case 7:                     /* CLOCK_BOOTTIME */
        return CLOCK_PAGE_BOOTTIME;
    default:
        return -1;
    }
}

struct clock_page {
    volatile uint32_t seq;
    uint32_t shift;
    uint64_t mult;
    uint64_t tsc_base;                        /* guest TSC at the moment the bases were taken */
    uint64_t base_ns[CLOCK_PAGE_NCLOCKS];
    uint64_t resolution_ns;                   /* what clock_getres reports */
    uint64_t mono_lag_ns;                     /* host MONOTONIC - guest's, as the bases were
                                               * taken (the vDSO does not read it) */
};

#endif
