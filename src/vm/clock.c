/* TSC calibration and the clock-page publisher (see clock.h and vm/clock_page.h). */
#include "vm/clock.h"

#include <cpuid.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define NSEC_PER_SEC 1000000000ull
#define MIN_TSC_HZ   100000000ull      /* 100 MHz: anything below is not a real TSC */
#define MAX_TSC_HZ   20000000000ull    /* 20 GHz */
#define CALIBRATION_NS 20000000ull     /* measuring window when no exact source exists */
#define REFRESH_NS 1000000ull          /* rebase the page on the host clock every 1 ms */
#define OFFSET_REFRESH_NS 10000000ull  /* re-read REALTIME/BOOTTIME at most every 10 ms */
#define OFFSET_JITTER_NS 1000          /* offset changes below this are measurement noise */
#define OFFSET_SAMPLE_NS 20000         /* REALTIME/BOOTTIME read within 20 us of MONOTONIC... */
#define OFFSET_SAMPLE_TRIES 8          /* ...tried this many more times at most */
#define MAX_LEAD_NS NSEC_PER_SEC       /* a guest "ahead" by more than this is garbage */
#define SLEW_HORIZON_NS 10000000ull    /* a guest ahead of the host gives its lead back over 10 ms */
#define SLEW_DIVISOR 2048              /* ... but runs at most 1/2048 (488 ppm) slow */
#define GOOD_SAMPLE_NS 500             /* a (tsc, clock) pair taken within 0.5 us is precise enough */

static struct clock_calibration calibration;
static pthread_once_t calibration_once = PTHREAD_ONCE_INIT;
static uint64_t adopted_hz;     /* clock_adopt: a measurement this host made before */

static inline uint64_t rdtsc_ordered(void)
{
    uint32_t lo, hi;
    __asm__ volatile("lfence; rdtsc" : "=a"(lo), "=d"(hi) :: "memory");
    return ((uint64_t)hi << 32) | lo;
}

static inline uint64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

/* A (tsc, CLOCK_MONOTONIC) pair: the TSC at the middle of the clock_gettime call, from the
 * tightest of up to `tries` attempts, stopping early at one within `good_window` ticks. A
 * preemption inside the window would otherwise skew the pair by up to a time slice. */
static void sample_tsc_and_monotonic(int tries, uint64_t good_window, uint64_t *tsc,
                                     uint64_t *ns)
{
    uint64_t best_window = UINT64_MAX;
    for (int i = 0; i < tries && best_window > good_window; i++) {
        uint64_t t0 = rdtsc_ordered();
        uint64_t now = clock_ns(CLOCK_MONOTONIC);
        uint64_t t1 = rdtsc_ordered();
        if (t1 - t0 < best_window) {
            best_window = t1 - t0;
            *tsc = t0 + (t1 - t0) / 2;
            *ns = now;
        }
    }
}

static uint64_t tsc_hz_from_sysfs(void)
{
    FILE *f = fopen("/sys/devices/system/cpu/cpu0/tsc_freq_khz", "re");
    unsigned long long khz = 0;
    if (!f)
        return 0;
    if (fscanf(f, "%llu", &khz) != 1)
        khz = 0;
    fclose(f);
    return khz <= MAX_TSC_HZ / 1000 ? khz * 1000 : 0;
}

/* CPUID 0x15: TSC = crystal * ebx / eax, exact when the crystal frequency (ecx) is given. */
static uint64_t tsc_hz_from_cpuid_15(void)
{
    unsigned eax, ebx, ecx, edx;
    if ((unsigned)__get_cpuid_max(0, NULL) < 0x15u)
        return 0;
    __cpuid(0x15, eax, ebx, ecx, edx);
    if (eax == 0 || ebx == 0 || ecx == 0)
        return 0;
    return (uint64_t)ecx * ebx / eax;
}

/* The hypervisor timing leaf (KVM and VMware): TSC frequency in kHz. */
static uint64_t tsc_hz_from_hypervisor_leaf(void)
{
    unsigned eax, ebx, ecx, edx;
    __cpuid(1, eax, ebx, ecx, edx);
    if (!(ecx & (1u << 31)))                  /* not running under a hypervisor */
        return 0;
    __cpuid(0x40000000, eax, ebx, ecx, edx);
    if (eax < 0x40000010 || eax > 0x400000ff)
        return 0;
    __cpuid(0x40000010, eax, ebx, ecx, edx);
    return (uint64_t)eax * 1000;
}

static uint64_t tsc_hz_by_measuring(void)
{
    uint64_t tsc0, ns0, tsc1, ns1;
    sample_tsc_and_monotonic(8, 0, &tsc0, &ns0);
    struct timespec pause = { 0, (long)CALIBRATION_NS };
    while (nanosleep(&pause, &pause) != 0) {
    }
    sample_tsc_and_monotonic(8, 0, &tsc1, &ns1);
    if (ns1 <= ns0 || tsc1 <= tsc0)
        return 0;
    return (uint64_t)((unsigned __int128)(tsc1 - tsc0) * NSEC_PER_SEC / (ns1 - ns0));
}

/* The TSC only makes a clock if it ticks at a constant rate through P- and C-states. */
static bool tsc_is_usable(void)
{
    unsigned eax, ebx, ecx, edx;
    if ((unsigned)__get_cpuid_max(0x80000000, NULL) >= 0x80000007u) {
        __cpuid(0x80000007, eax, ebx, ecx, edx);
        if (edx & (1u << 8))
            return true;
    }
    /* Hypervisors often hide the invariant bit; trust the host kernel's choice then. */
    char name[32] = "";
    FILE *f = fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "re");
    if (f) {
        if (!fgets(name, sizeof(name), f))
            name[0] = '\0';
        fclose(f);
    }
    return strcmp(name, "tsc\n") == 0;
}

int clock_compute_mult_shift(uint64_t tsc_hz, uint64_t *mult, uint32_t *shift)
{
    if (tsc_hz < MIN_TSC_HZ || tsc_hz > MAX_TSC_HZ)
        return -1;
    unsigned __int128 max_delta = (unsigned __int128)tsc_hz * CLOCK_MAX_DELTA_SEC;
    for (uint32_t s = 32;; s--) {
        uint64_t m = (uint64_t)((((unsigned __int128)NSEC_PER_SEC << s) + tsc_hz / 2) / tsc_hz);
        if (s == 0 || max_delta * m <= UINT64_MAX) {
            *mult = m;
            *shift = s;
            return 0;
        }
    }
}

static void calibrate_once(void)
{
    static const struct {
        const char *name;
        uint64_t (*hz)(void);
    } sources[] = {
        { "sysfs tsc_freq_khz", tsc_hz_from_sysfs },
        { "cpuid 0x15", tsc_hz_from_cpuid_15 },
        { "cpuid 0x40000010", tsc_hz_from_hypervisor_leaf },
        { "measured against CLOCK_MONOTONIC", tsc_hz_by_measuring },
    };
    calibration = (struct clock_calibration){ .source = "unusable TSC" };
    if (!tsc_is_usable())
        return;
    if (adopted_hz &&
        clock_compute_mult_shift(adopted_hz, &calibration.mult, &calibration.shift) == 0) {
        calibration.tsc_hz = adopted_hz;
        calibration.source = "measured before this boot's snapshot";
        return;
    }
    for (size_t i = 0; i < sizeof(sources) / sizeof(sources[0]); i++) {
        uint64_t hz = sources[i].hz();
        if (clock_compute_mult_shift(hz, &calibration.mult, &calibration.shift) == 0) {
            calibration.tsc_hz = hz;
            calibration.source = sources[i].name;
            return;
        }
    }
    calibration = (struct clock_calibration){ .source = "no plausible TSC frequency" };
}

void clock_adopt(uint64_t tsc_hz)
{
    adopted_hz = tsc_hz;
    clock_calibrate();
}

int clock_calibrate(void)
{
    pthread_once(&calibration_once, calibrate_once);
    return calibration.tsc_hz ? 0 : -1;
}

const struct clock_calibration *clock_get_calibration(void)
{
    clock_calibrate();
    return &calibration;
}

/* What a guest reading of the page at guest TSC `tsc` gives for one base. */
static uint64_t page_clock_at(const struct clock_page *cp, uint64_t base, uint64_t tsc)
{
    uint64_t delta = (int64_t)(tsc - cp->tsc_base) > 0 ? tsc - cp->tsc_base : 0;
    return base + (uint64_t)(((unsigned __int128)delta * cp->mult) >> cp->shift);
}

/* Keeps an offset between two clocks unless it moved by more than measurement noise (a clock
 * step or a resume from suspend), so BOOTTIME does not jitter against MONOTONIC. */
static uint64_t settle_offset(uint64_t old_offset, uint64_t measured)
{
    int64_t change = (int64_t)(measured - old_offset);
    return change > -OFFSET_JITTER_NS && change < OFFSET_JITTER_NS ? old_offset : measured;
}

/* Whether the page carries a publication of ours; anything else (a zeroed page, a restored
 * snapshot with other parameters) starts afresh. */
static bool page_is_ours(const struct clock_page *cp, const struct clock_calibration *cal)
{
    return cal->mult != 0 && cp->shift == cal->shift && !(cp->seq & 1) &&
           cp->mult <= cal->mult && cp->mult >= cal->mult - cal->mult / SLEW_DIVISOR;
}

void clock_page_update(struct clock_page *cp, int64_t tsc_offset, uint64_t mono_lag_ns)
{
    const struct clock_calibration *cal = clock_get_calibration();
    if (cal->mult == 0) {                /* no TSC clock: the page only has to say so */
        if (cp->mult != 0)
            clock_page_refresh(cp, tsc_offset, mono_lag_ns);
        return;
    }
    /* Between refreshes the page extrapolates the host clock to within parts per million, so
     * rewriting it at every exit would only cost time: one rdtsc decides. */
    uint64_t age = rdtsc_ordered() + (uint64_t)tsc_offset - cp->tsc_base;
    if (page_is_ours(cp, cal) && cp->mono_lag_ns == mono_lag_ns &&
        age < cal->tsc_hz / (NSEC_PER_SEC / REFRESH_NS))
        return;
    clock_page_refresh(cp, tsc_offset, mono_lag_ns);
}

int clock_page_read(const struct clock_page *cp, int slot, int64_t tsc_offset, uint64_t *ns)
{
    uint32_t seq;
    uint64_t now;
    struct clock_page copy;
    do {
        while ((seq = __atomic_load_n(&cp->seq, __ATOMIC_ACQUIRE)) & 1)
            __builtin_ia32_pause();
        copy = *(const struct clock_page *)cp;
        now = rdtsc_ordered() + (uint64_t)tsc_offset;
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
    } while (__atomic_load_n(&cp->seq, __ATOMIC_RELAXED) != seq);
    if (copy.mult == 0)
        return -1;
    *ns = page_clock_at(&copy, copy.base_ns[slot], now);
    return 0;
}

void clock_page_refresh(struct clock_page *cp, int64_t tsc_offset, uint64_t mono_lag_ns)
{
    const struct clock_calibration *cal = clock_get_calibration();
    uint32_t seq = cp->seq;
    bool had_page = page_is_ours(cp, cal) && cp->mono_lag_ns == mono_lag_ns;

    uint64_t tsc, host_mono;
    sample_tsc_and_monotonic(4, cal->tsc_hz / (NSEC_PER_SEC / GOOD_SAMPLE_NS), &tsc, &host_mono);
    tsc += (uint64_t)tsc_offset;
    host_mono -= mono_lag_ns;           /* from here on, "host" MONOTONIC is the guest's */

    uint64_t mono = host_mono, mult = cal->mult;
    uint64_t real_offset = 0, boot_offset = 0;
    bool refresh_offsets = true;
    if (had_page) {
        uint64_t guest_mono = page_clock_at(cp, cp->base_ns[CLOCK_PAGE_MONOTONIC], tsc);
        uint64_t lead = guest_mono - host_mono;
        if (guest_mono > host_mono && lead <= MAX_LEAD_NS) {
            /* Never step the guest back: keep its time and run slow enough to give the lead
             * back over SLEW_HORIZON_NS, so a guest that then spins without exits for minutes
             * lags by little more than the lead. */
            mono = guest_mono;
            uint64_t slow_by = (uint64_t)((unsigned __int128)cal->mult * lead / SLEW_HORIZON_NS);
            mult = cal->mult - (slow_by < cal->mult / SLEW_DIVISOR ? slow_by
                                                                   : cal->mult / SLEW_DIVISOR);
        }
        real_offset = cp->base_ns[CLOCK_PAGE_REALTIME] - cp->base_ns[CLOCK_PAGE_MONOTONIC];
        boot_offset = cp->base_ns[CLOCK_PAGE_BOOTTIME] - cp->base_ns[CLOCK_PAGE_MONOTONIC];
        refresh_offsets = host_mono - cp->base_ns[CLOCK_PAGE_MONOTONIC] >= OFFSET_REFRESH_NS ||
                          cp->base_ns[CLOCK_PAGE_MONOTONIC] > mono;
    }
    if (refresh_offsets) {
        /* REALTIME and BOOTTIME read between two MONOTONIC reads, again if the host thread
         * was preempted in between: a preemption there puts the two clocks that far apart
         * in the guest until the next refresh (the likely cause of a 0.24 s gap that
         * test_frozen_clock saw once under load). */
        uint64_t real, boot, mono_before, mono_after;
        for (int tries = 0;; tries++) {
            mono_before = clock_ns(CLOCK_MONOTONIC);
            real = clock_ns(CLOCK_REALTIME);
            boot = clock_ns(CLOCK_BOOTTIME);
            mono_after = clock_ns(CLOCK_MONOTONIC);
            if (mono_after - mono_before <= OFFSET_SAMPLE_NS || tries == OFFSET_SAMPLE_TRIES)
                break;
        }
        uint64_t mono_mid = mono_before + (mono_after - mono_before) / 2 - mono_lag_ns;
        /* BOOTTIME is MONOTONIC plus time suspended: never less, whatever the jitter says. */
        uint64_t boot_measured = (int64_t)(boot - mono_mid) > 0 ? boot - mono_mid : 0;
        real_offset = had_page ? settle_offset(real_offset, real - mono_mid) : real - mono_mid;
        boot_offset = had_page ? settle_offset(boot_offset, boot_measured) : boot_measured;
    }

    /* Odd while writing; x86 keeps stores in order, the fences keep the compiler from
     * reordering them. */
    uint32_t writing = (seq + 1) | 1;
    __atomic_store_n(&cp->seq, writing, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    cp->shift = cal->shift;
    cp->mult = mult;
    cp->tsc_base = tsc;
    cp->base_ns[CLOCK_PAGE_MONOTONIC] = mono;
    cp->base_ns[CLOCK_PAGE_REALTIME] = mono + real_offset;
    cp->base_ns[CLOCK_PAGE_BOOTTIME] = mono + boot_offset;
    cp->resolution_ns = 1;
    cp->mono_lag_ns = mono_lag_ns;
    __atomic_thread_fence(__ATOMIC_RELEASE);
    __atomic_store_n(&cp->seq, writing + 1, __ATOMIC_RELAXED);
}
