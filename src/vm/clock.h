/* Host side of the guest clock: TSC calibration and the publisher of the clock page that the
 * guest vDSO (src/guest/vdso) reads. */
#ifndef KVMS_CLOCK_H
#define KVMS_CLOCK_H
#include <stdint.h>

#include "vm/clock_page.h"

struct clock_calibration {
    uint64_t tsc_hz;          /* 0: the TSC cannot serve as a clock, the vDSO uses syscalls */
    uint64_t mult;            /* ns = (delta_tsc * mult) >> shift */
    uint32_t shift;
    const char *source;       /* where tsc_hz came from, for diagnostics */
};

/* Finds the TSC frequency once per process (later calls return the first result); thread
 * safe. Returns 0, or -1 if the TSC is not usable as a clock here (not invariant, or no
 * plausible frequency): pages then carry mult = 0 and the vDSO falls back to system calls. */
int clock_calibrate(void);
/* Calibrates with a frequency measured earlier in this same host boot (a snapshot's), which
 * spares the 20 ms measurement; only before the first clock_calibrate. */
void clock_adopt(uint64_t tsc_hz);

/* The calibration in use (calibrating first if needed). */
const struct clock_calibration *clock_get_calibration(void);

/* Computes mult/shift for a TSC frequency: the largest shift (<= 32) for which a delta of
 * CLOCK_MAX_DELTA_SEC seconds still fits a 64-bit product. Returns -1 for an implausible hz. */
#define CLOCK_MAX_DELTA_SEC 1024
int clock_compute_mult_shift(uint64_t tsc_hz, uint64_t *mult, uint32_t *shift);

/* Call at every VM exit: refreshes the page if its publication is not ours or is older than
 * 1 ms, otherwise costs one rdtsc. tsc_offset is what the guest's TSC reads minus the host's;
 * mono_lag_ns how far the guest's MONOTONIC runs behind the host's (a request VM that skipped
 * the time it sat frozen; REALTIME and BOOTTIME stay the host's). The caller serializes
 * updates of one page (one vCPU thread per VM); the guest itself may read concurrently (seq). */
void clock_page_update(struct clock_page *cp, int64_t tsc_offset, uint64_t mono_lag_ns);

/* What the guest reads from the page for one slot at this moment (the vDSO's computation, on
 * the host, retrying while the page is being written). 0, or -1 when the page has no TSC clock. */
int clock_page_read(const struct clock_page *cp, int slot, int64_t tsc_offset, uint64_t *ns);

/* Rebases the page on the host clocks now (MONOTONIC mono_lag_ns behind). Guest readings of
 * MONOTONIC/BOOTTIME never go backwards across refreshes with one lag: when the guest has run
 * ahead of the host, the page keeps the guest's value and runs slightly slow (at most 488 ppm)
 * until the host catches up. A new lag steps MONOTONIC at once: the caller sets one only
 * before the guest has read the clock (the time it skips is time it did not run). REALTIME
 * and BOOTTIME follow MONOTONIC at the host's offsets, re-read every 10 ms. */
void clock_page_refresh(struct clock_page *cp, int64_t tsc_offset, uint64_t mono_lag_ns);

#endif
