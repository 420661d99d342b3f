/* Clocks through both the vDSO-capable libc calls and raw system calls. Prints verdicts. */
#include <stdint.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "verdict.h"

static int64_t ns(struct timespec t) { return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec; }

static int64_t now(clockid_t id)
{
    struct timespec t = {0, 0};
    if (clock_gettime(id, &t) != 0)
        return -1;
    return ns(t);
}

static int valid(struct timespec t) { return t.tv_sec >= 0 && t.tv_nsec >= 0 && t.tv_nsec < 1000000000; }

int main(void)
{
    int64_t previous = now(CLOCK_MONOTONIC), decreases = 0;
    for (int i = 0; i < 100000; i++) {
        int64_t t = now(CLOCK_MONOTONIC);
        decreases += t < previous;
        previous = t;
    }
    verdict("CLOCK_MONOTONIC never decreases", previous > 0 && decreases == 0);

    struct timespec raw = {0, 0};
    verdict("raw clock_gettime syscall",
            syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &raw) == 0 && valid(raw));
    int64_t mono = now(CLOCK_MONOTONIC);
    verdict("raw syscall agrees with libc", mono >= ns(raw) && mono - ns(raw) < 1000000000);
    /* Alternating raw calls and libc (vDSO) reads: time never goes back across the two. */
    int64_t last = mono, backwards = 0;
    for (int i = 0; i < 1000; i++) {
        syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &raw);
        int64_t libc = now(CLOCK_MONOTONIC);
        backwards += ns(raw) < last || libc < ns(raw);
        last = libc;
    }
    verdict("raw syscalls and libc reads never go back", backwards == 0);

    time_t seconds = time(NULL);
    int64_t real = now(CLOCK_REALTIME);
    verdict("CLOCK_REALTIME within 1 s of time()",
            real / 1000000000 - seconds >= 0 && real / 1000000000 - seconds <= 1);
    verdict("CLOCK_REALTIME after 2024", seconds > 1704067200);
    struct timeval tv;
    verdict("gettimeofday agrees", gettimeofday(&tv, NULL) == 0 && tv.tv_sec - seconds >= 0
                                       && tv.tv_sec - seconds <= 1 && tv.tv_usec < 1000000);

    int64_t coarse = now(CLOCK_MONOTONIC_COARSE), boot = now(CLOCK_BOOTTIME);
    verdict("CLOCK_MONOTONIC_COARSE works", coarse > 0);
    verdict("CLOCK_BOOTTIME >= CLOCK_MONOTONIC", boot >= mono);
    struct timespec resolution = {0, 0};
    verdict("clock_getres(MONOTONIC) <= 1 ms",
            clock_getres(CLOCK_MONOTONIC, &resolution) == 0 && valid(resolution)
                && ns(resolution) > 0 && ns(resolution) <= 1000000);

    int64_t before = now(CLOCK_MONOTONIC);
    struct timespec ten_ms = {0, 10000000};
    verdict("nanosleep 10 ms returns 0", nanosleep(&ten_ms, NULL) == 0);
    int64_t slept = now(CLOCK_MONOTONIC) - before;
    verdict("nanosleep slept >= 10 ms", slept >= 10000000);
    verdict("nanosleep slept < 2 s", slept < 2000000000);

    struct timespec deadline = {0, 0};
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_nsec += 5000000;
    if (deadline.tv_nsec >= 1000000000) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000;
    }
    verdict("clock_nanosleep TIMER_ABSTIME",
            clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, NULL) == 0
                && now(CLOCK_MONOTONIC) >= ns(deadline));
    struct timespec zero = {0, 0};
    verdict("nanosleep 0 returns 0", nanosleep(&zero, NULL) == 0);
    return failures ? 1 : 0;
}
