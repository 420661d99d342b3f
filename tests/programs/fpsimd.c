/* Floating point and vector state. Exact IEEE operations print in hex (%a); libm
 * transcendentals print at 12 digits because glibc picks FMA/non-FMA variants by CPUID, and
 * the guest's CPUID may differ from the host's. The AVX2 path and the scalar path compute the
 * same thing, so the output does not depend on which one runs. */
#include <fenv.h>
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "verdict.h"

static volatile double seeds[4] = {2.0, 0.1, 1e300, -3.75};

static void exact_arithmetic(void)
{
    double a = seeds[0], b = seeds[1], c = seeds[2], d = seeds[3];
    printf("sqrt(2)=%a\n", sqrt(a));
    printf("0.1*3=%a\n", b * 3);
    printf("1e300*1e300=%g\n", c * c);
    printf("-3.75/0.1=%.17g\n", d / b);
    printf("fma(0.1,10,-1)=%a\n", fma(b, 10.0, -1.0));
    printf("nan=%g\n", sqrt(d));
    printf("denormal=%a\n", 0x1p-1022 * b);
    printf("float: %.9g %.9g\n", (float)b, (float)b * (float)3.0);
    long double third = 1.0L / (long double)(seeds[0] + 1.0);
    printf("long double 1/3=%.21Lg\n", third);
    printf("rint(2.5)=%g nearbyint(-0.5)=%g\n", rint(2.5 + b - 0.1), nearbyint(-0.5 + b - 0.1));
    printf("printf: %.3f %e %g %.0f\n", 3.14159265358979, 6.02214076e23, 1e-5, 0.5);
}

static void libm(void)
{
    double x = seeds[1];
    printf("sin=%.12g cos=%.12g tan=%.12g\n", sin(x), cos(x), tan(x));
    printf("exp=%.12g log=%.12g pow=%.12g\n", exp(x), log(x), pow(x, 2.5));
    printf("atan2=%.12g cbrt=%.12g hypot=%.12g\n", atan2(x, -1.0), cbrt(27.5), hypot(3.0, x));
}

static void control_words(void)
{
    uint32_t mxcsr = 0;
    uint16_t x87_control = 0;
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(x87_control));
    printf("mxcsr=%#x x87cw=%#x\n", mxcsr & 0xff80 /* control bits only: flags and DAZ vary */, x87_control);
    verdict("rounding to nearest", fegetround() == FE_TONEAREST);
    fesetround(FE_UPWARD);
    volatile double up = seeds[0] / 3.0;
    fesetround(FE_TONEAREST);
    printf("2/3 rounded up=%a\n", up);
}

/* Sum of i*i over int32 lanes, AVX2 and scalar. */
__attribute__((target("avx2"))) static int64_t sum_squares_avx2(const int32_t *v, size_t n)
{
    __m256i acc = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i x = _mm256_loadu_si256((const __m256i *)(v + i));
        __m256i lo = _mm256_mul_epi32(x, x);
        __m256i hi = _mm256_mul_epi32(_mm256_srli_epi64(x, 32), _mm256_srli_epi64(x, 32));
        acc = _mm256_add_epi64(acc, _mm256_add_epi64(lo, hi));
    }
    int64_t lanes[4];
    _mm256_storeu_si256((__m256i *)lanes, acc);
    int64_t sum = lanes[0] + lanes[1] + lanes[2] + lanes[3];
    for (; i < n; i++)
        sum += (int64_t)v[i] * v[i];
    return sum;
}

static int64_t sum_squares_scalar(const int32_t *v, size_t n)
{
    int64_t sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += (int64_t)v[i] * v[i];
    return sum;
}

static void vectors(void)
{
    static int32_t values[1003];
    for (size_t i = 0; i < 1003; i++)
        values[i] = (int32_t)(i * 2654435761u) >> 8;
    int64_t scalar = sum_squares_scalar(values, 1003);
    int64_t best = __builtin_cpu_supports("avx2") ? sum_squares_avx2(values, 1003) : scalar;
    printf("sum of squares=%lld\n", (long long)best);
    verdict("vector and scalar agree", best == scalar);

    __m128d pair = _mm_set_pd(seeds[0], seeds[1]);
    __m128d root = _mm_sqrt_pd(pair);
    double out[2];
    _mm_storeu_pd(out, root);
    printf("sse2 sqrt=%a %a\n", out[0], out[1]);
}

/* Linux keeps every vector register across a system call. Load xmm0-15 (and the ymm upper
 * halves when AVX exists), do a raw getpid, and compare. */
static void registers_survive_syscall(void)
{
    unsigned char before[16][16], after[16][16];
    for (int r = 0; r < 16; r++)
        for (int b = 0; b < 16; b++)
            before[r][b] = (unsigned char)(r * 16 + b + 1);
    long nr = SYS_getpid;
    __asm__ volatile(
        "movdqu 0(%1), %%xmm0\n movdqu 16(%1), %%xmm1\n movdqu 32(%1), %%xmm2\n"
        "movdqu 48(%1), %%xmm3\n movdqu 64(%1), %%xmm4\n movdqu 80(%1), %%xmm5\n"
        "movdqu 96(%1), %%xmm6\n movdqu 112(%1), %%xmm7\n movdqu 128(%1), %%xmm8\n"
        "movdqu 144(%1), %%xmm9\n movdqu 160(%1), %%xmm10\n movdqu 176(%1), %%xmm11\n"
        "movdqu 192(%1), %%xmm12\n movdqu 208(%1), %%xmm13\n movdqu 224(%1), %%xmm14\n"
        "movdqu 240(%1), %%xmm15\n"
        "syscall\n"
        "movdqu %%xmm0, 0(%2)\n movdqu %%xmm1, 16(%2)\n movdqu %%xmm2, 32(%2)\n"
        "movdqu %%xmm3, 48(%2)\n movdqu %%xmm4, 64(%2)\n movdqu %%xmm5, 80(%2)\n"
        "movdqu %%xmm6, 96(%2)\n movdqu %%xmm7, 112(%2)\n movdqu %%xmm8, 128(%2)\n"
        "movdqu %%xmm9, 144(%2)\n movdqu %%xmm10, 160(%2)\n movdqu %%xmm11, 176(%2)\n"
        "movdqu %%xmm12, 192(%2)\n movdqu %%xmm13, 208(%2)\n movdqu %%xmm14, 224(%2)\n"
        "movdqu %%xmm15, 240(%2)\n"
        : "+a"(nr)
        : "r"(before), "r"(after)
        : "rcx", "r11", "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6",
          "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
    verdict("xmm0-15 survive a syscall", memcmp(before, after, sizeof before) == 0);
}

__attribute__((target("avx"))) static int ymm_survives_syscall(void)
{
    unsigned char before[32], after[32];
    for (int b = 0; b < 32; b++)
        before[b] = (unsigned char)(0xa0 + b);
    long nr = SYS_getpid;
    __asm__ volatile("vmovdqu (%1), %%ymm7\n vmovdqu %%ymm7, %%ymm15\n syscall\n"
                     "vmovdqu %%ymm15, (%2)\n vzeroupper\n"
                     : "+a"(nr)
                     : "r"(before), "r"(after)
                     : "rcx", "r11", "memory", "xmm7", "xmm15");
    return memcmp(before, after, sizeof before) == 0;
}

int main(void)
{
    exact_arithmetic();
    libm();
    control_words();
    vectors();
    registers_survive_syscall();
    verdict("ymm upper halves survive a syscall (if AVX)",
            !__builtin_cpu_supports("avx") || ymm_survives_syscall());
    return failures ? 1 : 0;
}
