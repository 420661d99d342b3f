/* Host time: monotonic nanoseconds and timespec checks. Header-only; every layer may use it. */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define NS_PER_SEC 1000000000ll

/* CLOCK_MONOTONIC in nanoseconds: deadlines, waits and timings. */
static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * (uint64_t)NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

/* Linux's rule for a time argument: no negative field, nanoseconds below one second. */
static inline bool timespec_valid(const struct timespec *t)
{
    return t->tv_sec >= 0 && t->tv_nsec >= 0 && t->tv_nsec < NS_PER_SEC;
}

/* A valid timespec in nanoseconds; INT64_MAX from ~292 years on ("forever", never wrapping
 * into the past). */
static inline int64_t timespec_ns(const struct timespec *t)
{
    if (t->tv_sec >= INT64_MAX / NS_PER_SEC - 1)
        return INT64_MAX;
    return t->tv_sec * NS_PER_SEC + t->tv_nsec;
}

/* The time ns (>= 0) after now, saturating at INT64_MAX ("forever"). */
static inline int64_t ns_after(int64_t now, int64_t ns)
{
    return ns > INT64_MAX - now ? INT64_MAX : now + ns;
}

/* Nanoseconds (>= 0) as a timespec, for the host's sleeps and timed waits. */
static inline struct timespec ns_timespec(int64_t ns)
{
    return (struct timespec){ .tv_sec = ns / NS_PER_SEC, .tv_nsec = ns % NS_PER_SEC };
}
