/* Host clock publisher: TSC calibration accuracy and the clock page it writes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "vm/clock.h"

#define NSEC_PER_SEC 1000000000ull

static uint64_t tsc_now(void)
{
    uint32_t lo, hi;
    __asm__ volatile("lfence; rdtsc" : "=a"(lo), "=d"(hi) :: "memory");
    return ((uint64_t)hi << 32) | lo;
}

static uint64_t host_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

/* What the vDSO computes from a page at a given TSC. */
static uint64_t page_ns(const struct clock_page *cp, int slot, uint64_t tsc)
{
    uint64_t delta = (int64_t)(tsc - cp->tsc_base) > 0 ? tsc - cp->tsc_base : 0;
    return cp->base_ns[slot] + (uint64_t)(((unsigned __int128)delta * cp->mult) >> cp->shift);
}

static uint64_t abs_diff(uint64_t a, uint64_t b)
{
    return a > b ? a - b : b - a;
}

static int require_tsc(void **state)
{
    (void)state;
    if (clock_calibrate() != 0) {
        print_message("TSC unusable here (%s): clock tests skipped\n",
                      clock_get_calibration()->source);
        skip();
    }
    return 0;
}

static void test_mult_shift_rejects_implausible_frequencies(void **state)
{
    (void)state;
    uint64_t mult;
    uint32_t shift;
    assert_int_equal(clock_compute_mult_shift(0, &mult, &shift), -1);
    assert_int_equal(clock_compute_mult_shift(50000000, &mult, &shift), -1);
    assert_int_equal(clock_compute_mult_shift(30000000000ull, &mult, &shift), -1);
}

/* Every plausible frequency gets a 64-bit-safe mult for CLOCK_MAX_DELTA_SEC and converts one
 * second of ticks to one second within 1 ppm. */
static void test_mult_shift_precision_and_range(void **state)
{
    (void)state;
    static const uint64_t freqs[] = { 100000000ull, 1000000000ull, 2100000000ull,
                                      2893437000ull, 5000000000ull, 20000000000ull };
    for (size_t i = 0; i < sizeof(freqs) / sizeof(freqs[0]); i++) {
        uint64_t mult;
        uint32_t shift;
        assert_int_equal(clock_compute_mult_shift(freqs[i], &mult, &shift), 0);
        unsigned __int128 max_product = (unsigned __int128)freqs[i] * CLOCK_MAX_DELTA_SEC * mult;
        assert_true(max_product <= UINT64_MAX);
        uint64_t one_second = (freqs[i] * mult) >> shift;
        assert_true(abs_diff(one_second, NSEC_PER_SEC) <= 1000);
    }
}

/* The calibrated rate matches CLOCK_MONOTONIC over 100 ms within 0.1%. */
static void test_calibration_matches_monotonic(void **state)
{
    (void)state;
    const struct clock_calibration *cal = clock_get_calibration();
    print_message("TSC %llu Hz from %s, mult %llu shift %u\n", (unsigned long long)cal->tsc_hz,
                  cal->source, (unsigned long long)cal->mult, cal->shift);
    uint64_t tsc0 = tsc_now(), ns0 = host_ns(CLOCK_MONOTONIC);
    struct timespec pause = { 0, 100000000 };
    nanosleep(&pause, NULL);
    uint64_t tsc1 = tsc_now(), ns1 = host_ns(CLOCK_MONOTONIC);
    uint64_t computed = (uint64_t)(((unsigned __int128)(tsc1 - tsc0) * cal->mult) >> cal->shift);
    uint64_t measured = ns1 - ns0;
    assert_true(abs_diff(computed, measured) * 1000 <= measured);
}

static void test_update_publishes_host_clocks(void **state)
{
    (void)state;
    struct clock_page cp;
    memset(&cp, 0, sizeof(cp));
    clock_page_update(&cp, 0, 0);
    assert_int_equal(cp.seq, 2);
    assert_int_equal(cp.resolution_ns, 1);
    assert_int_equal(cp.shift, clock_get_calibration()->shift);

    static const struct { int slot; clockid_t host; } clocks[] = {
        { CLOCK_PAGE_REALTIME, CLOCK_REALTIME },
        { CLOCK_PAGE_MONOTONIC, CLOCK_MONOTONIC },
        { CLOCK_PAGE_BOOTTIME, CLOCK_BOOTTIME },
    };
    for (size_t i = 0; i < 3; i++) {
        uint64_t before = host_ns(clocks[i].host);
        uint64_t guest = page_ns(&cp, clocks[i].slot, tsc_now());
        uint64_t after = host_ns(clocks[i].host);
        assert_true(guest + 5000 >= before && guest <= after + 5000);
    }
    clock_page_update(&cp, 0, 0);
    assert_int_equal(cp.seq, 2);                         /* fresh: left alone */
    clock_page_refresh(&cp, 0, 0);
    assert_int_equal(cp.seq, 4);
    cp.tsc_base -= clock_get_calibration()->tsc_hz / 100;  /* 10 ms old */
    clock_page_update(&cp, 0, 0);
    assert_int_equal(cp.seq, 6);
}

/* The page holds guest TSC values: host TSC + offset. */
static void test_update_applies_tsc_offset(void **state)
{
    (void)state;
    struct clock_page cp;
    memset(&cp, 0, sizeof(cp));
    const int64_t offset = -((int64_t)1 << 40);
    clock_page_update(&cp, offset, 0);
    uint64_t before = host_ns(CLOCK_MONOTONIC);
    uint64_t guest = page_ns(&cp, CLOCK_PAGE_MONOTONIC, tsc_now() + (uint64_t)offset);
    uint64_t after = host_ns(CLOCK_MONOTONIC);
    assert_true(guest + 5000 >= before && guest <= after + 5000);
}

/* A guest that has run ahead of the host keeps its time, and the page runs slow until the
 * host catches up; one far ahead (garbage) is reset to the host. */
static void test_update_never_steps_monotonic_back(void **state)
{
    (void)state;
    struct clock_page cp;
    memset(&cp, 0, sizeof(cp));
    clock_page_update(&cp, 0, 0);
    uint64_t nominal = cp.mult;

    for (int slot = 0; slot < CLOCK_PAGE_NCLOCKS; slot++)
        cp.base_ns[slot] += 200000;                      /* guest 200 us ahead */
    clock_page_refresh(&cp, 0, 0);
    uint64_t guest_after = page_ns(&cp, CLOCK_PAGE_MONOTONIC, tsc_now());
    uint64_t host = host_ns(CLOCK_MONOTONIC);
    assert_true(guest_after > host + 100000);
    assert_true(cp.mult < nominal);

    for (int slot = 0; slot < CLOCK_PAGE_NCLOCKS; slot++)
        cp.base_ns[slot] += 10 * NSEC_PER_SEC;           /* nonsense: 10 s ahead */
    clock_page_refresh(&cp, 0, 0);
    uint64_t before = host_ns(CLOCK_MONOTONIC);
    uint64_t guest = page_ns(&cp, CLOCK_PAGE_MONOTONIC, tsc_now());
    uint64_t after = host_ns(CLOCK_MONOTONIC);
    assert_true(guest + 5000 >= before && guest <= after + 5000);
    assert_int_equal(cp.mult, nominal);
}

/* A request VM that skipped the time since its freeze: MONOTONIC runs the lag behind the
 * host's (stepped back from the frozen page at once, not slewed), REALTIME and BOOTTIME are
 * the host's; an update with another lag republishes however fresh the page is. */
static void test_lag_holds_monotonic_back_alone(void **state)
{
    (void)state;
    const uint64_t lag = 30 * NSEC_PER_SEC;
    struct clock_page cp;
    memset(&cp, 0, sizeof(cp));
    clock_page_update(&cp, 0, 0);                        /* the frozen image's page */
    clock_page_update(&cp, 0, lag);
    assert_int_equal(cp.seq, 4);
    assert_int_equal(cp.mono_lag_ns, lag);
    assert_int_equal(cp.mult, clock_get_calibration()->mult);
    static const struct { int slot; clockid_t host; uint64_t behind; } clocks[] = {
        { CLOCK_PAGE_REALTIME, CLOCK_REALTIME, 0 },
        { CLOCK_PAGE_MONOTONIC, CLOCK_MONOTONIC, lag },
        { CLOCK_PAGE_BOOTTIME, CLOCK_BOOTTIME, 0 },
    };
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < 3; i++) {
            uint64_t before = host_ns(clocks[i].host) - clocks[i].behind;
            uint64_t guest = page_ns(&cp, clocks[i].slot, tsc_now());
            uint64_t after = host_ns(clocks[i].host) - clocks[i].behind;
            assert_true(guest + 5000 >= before && guest <= after + 5000);
        }
        clock_page_refresh(&cp, 0, lag);                 /* the same lag: it holds */
    }
    clock_page_update(&cp, 0, 0);
    uint64_t before = host_ns(CLOCK_MONOTONIC);
    uint64_t guest = page_ns(&cp, CLOCK_PAGE_MONOTONIC, tsc_now());
    assert_true(guest + 5000 >= before && cp.mono_lag_ns == 0);
}

/* Readings of a page refreshed over and over never decrease, and stay near the host. */
static void test_repeated_updates_stay_monotonic(void **state)
{
    (void)state;
    struct clock_page cp;
    memset(&cp, 0, sizeof(cp));
    uint64_t last = 0;
    for (int i = 0; i < 200000; i++) {
        if (i % 3 == 0)
            clock_page_refresh(&cp, 0, 0);
        uint64_t now = page_ns(&cp, CLOCK_PAGE_MONOTONIC, tsc_now());
        assert_true(now >= last);
        uint64_t boot = page_ns(&cp, CLOCK_PAGE_BOOTTIME, tsc_now());
        assert_true(boot >= now);
        last = now;
    }
    assert_true(abs_diff(last, host_ns(CLOCK_MONOTONIC)) < 100000);
}

/* clock_page_update runs at every VM exit: report its cost (target < 100 ns) and that of a
 * full refresh (at most once per millisecond). */
static void test_update_cost(void **state)
{
    (void)state;
    struct clock_page cp;
    memset(&cp, 0, sizeof(cp));
    enum { ROUNDS = 200000 };
    uint64_t start = host_ns(CLOCK_MONOTONIC);
    for (int i = 0; i < ROUNDS; i++)
        clock_page_update(&cp, 0, 0);
    uint64_t per_update = (host_ns(CLOCK_MONOTONIC) - start) / ROUNDS;
    start = host_ns(CLOCK_MONOTONIC);
    for (int i = 0; i < ROUNDS; i++)
        clock_page_refresh(&cp, 0, 0);
    uint64_t per_refresh = (host_ns(CLOCK_MONOTONIC) - start) / ROUNDS;
    print_message("clock_page_update: %llu ns, clock_page_refresh: %llu ns\n",
                  (unsigned long long)per_update, (unsigned long long)per_refresh);
    assert_true(per_update < 2000);   /* generous: shared CI machines are noisy */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mult_shift_rejects_implausible_frequencies),
        cmocka_unit_test(test_mult_shift_precision_and_range),
        cmocka_unit_test_setup(test_calibration_matches_monotonic, require_tsc),
        cmocka_unit_test_setup(test_update_publishes_host_clocks, require_tsc),
        cmocka_unit_test_setup(test_update_applies_tsc_offset, require_tsc),
        cmocka_unit_test_setup(test_lag_holds_monotonic_back_alone, require_tsc),
        cmocka_unit_test_setup(test_update_never_steps_monotonic_back, require_tsc),
        cmocka_unit_test_setup(test_repeated_updates_stay_monotonic, require_tsc),
        cmocka_unit_test_setup(test_update_cost, require_tsc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
