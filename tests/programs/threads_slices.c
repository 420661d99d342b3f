/* A worker that computes for a long time without a system call, beside a main thread that
 * sleeps 2 ms at a time until the worker is done. On Linux the sleeps end on time, on another
 * CPU or by time-slicing one. On kvmserver's one vCPU the worker must be taken off it at the
 * end of a slice, in the middle of its own code, and later resume with every register (the
 * integer ones and the SSE ones its arithmetic lives in) exactly as they were. Prints both
 * threads' results, which a lost or mixed-up register would change, and how many sleeps came
 * more than 150 ms late (a cooperative-only scheduler: the first one waits for the worker).
 * argv[1]: the worker's rounds (default WORK_ROUNDS; fewer where the CPU is emulated). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define WORK_ROUNDS 200000000ull    /* ~0.5 s natively */
#define LATE_NS (150 * 1000000ll)

static atomic_int worker_done;
static uint64_t work_rounds = WORK_ROUNDS;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

/* Integer and floating-point state that lives in registers across the whole loop. */
static void *worker(void *arg)
{
    uint64_t *out = arg;
    uint64_t a = 1, b = 2, c = 3, d = 4;
    double x = 1.0, y = 0.5;
    for (uint64_t i = 0; i < work_rounds; i++) {
        a = a * 6364136223846793005ull + 1442695040888963407ull;
        b ^= a >> 17;
        c += b * 31 + i;
        d = (d << 7 | d >> 57) ^ c;
        x = x * 0.999999 + (double)(a & 0xff) * 1e-9;
        y = y * 0.5 + x * 0.25;
    }
    out[0] = a ^ b ^ c ^ d;
    out[1] = (uint64_t)(x * 1e12) ^ (uint64_t)(y * 1e12);
    atomic_store(&worker_done, 1);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        work_rounds = strtoull(argv[1], NULL, 10);
    uint64_t result[2];
    pthread_t t;
    if (pthread_create(&t, NULL, worker, result) != 0)
        return 1;
    int late = 0, mismatches = 0;
    double first = 0;
    struct timespec two_ms = { 0, 2000000 };
    for (int round = 0; !atomic_load(&worker_done) && round < 100000; round++) {
        int64_t before = now_ns();
        nanosleep(&two_ms, NULL);
        if (now_ns() - before > LATE_NS)
            late++;
        double v = 1.0;         /* the same each round, through the switches */
        for (int k = 0; k < 1000; k++)
            v = v * 1.000001 + 1e-7;
        if (round == 0)
            first = v;
        else if (v != first)
            mismatches++;
    }
    pthread_join(t, NULL);
    printf("worker %016llx %016llx\n", (unsigned long long)result[0],
           (unsigned long long)result[1]);
    printf("main's rounds that differ from its first: %d\n", mismatches);
    printf("sleeps more than 150 ms late: %d\n", late);
    return 0;
}
