/* glibc's string functions pick SSE2/AVX2/EVEX variants by CPUID; check them against plain
 * loops over every alignment and many lengths, which also exercises vector state handling. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

enum { AREA = 4096 };
static unsigned char source[AREA + 64], target[AREA + 64], expected[AREA + 64];

static int failures;

static void check(const char *what, int good)
{
    if (!good && failures++ < 10)
        printf("mismatch: %s\n", what);
}

int main(void)
{
    for (size_t i = 0; i < sizeof source; i++)
        source[i] = (unsigned char)(i * 37 + 11) | 1;  /* never zero */
    static const size_t lengths[] = {0, 1, 2, 3, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65,
                                     127, 128, 129, 255, 256, 511, 1000, 2048, 4000};
    unsigned long cases = 0;
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
        size_t n = lengths[li];
        for (size_t src_off = 0; src_off < 32; src_off += 3) {
            for (size_t dst_off = 0; dst_off < 32; dst_off += 5) {
                memset(target, 0, sizeof target);
                memcpy(target + dst_off, source + src_off, n);
                int same = 1;
                for (size_t i = 0; i < sizeof target; i++) {
                    unsigned char want = i >= dst_off && i < dst_off + n ? source[src_off + i - dst_off] : 0;
                    same &= target[i] == want;
                }
                check("memcpy", same);
                check("memcmp equal", memcmp(target + dst_off, source + src_off, n) == 0);
                if (n > 0) {
                    target[dst_off + n - 1] ^= 0x80;
                    int sign = memcmp(target + dst_off, source + src_off, n);
                    check("memcmp differs", sign != 0);
                }
                cases++;
            }
            /* memmove with overlap both ways, against a byte-by-byte model. */
            memcpy(target, source, sizeof target);
            memcpy(expected, source, sizeof expected);
            for (size_t i = n; i-- > 0;)
                expected[src_off + 7 + i] = expected[src_off + i];
            memmove(target + src_off + 7, target + src_off, n);
            check("memmove forward overlap", memcmp(target, expected, sizeof target) == 0);
            memcpy(target, source, sizeof target);
            memcpy(expected, source, sizeof expected);
            for (size_t i = 0; i < n; i++)
                expected[src_off + i] = expected[src_off + 9 + i];
            memmove(target + src_off, target + src_off + 9, n);
            check("memmove backward overlap", memcmp(target, expected, sizeof target) == 0);

            /* strlen/strchr/memchr/memset on a NUL-terminated copy. */
            memcpy(target, source, sizeof target);
            target[src_off + n] = 0;
            check("strlen", strlen((char *)target + src_off) == n);
            if (n > 0) {
                unsigned char last = target[src_off + n - 1];
                const char *hit = strchr((char *)target + src_off, last);
                check("strchr", hit && (unsigned char)*hit == last);
                check("memchr", memchr(target + src_off, last, n) == (void *)hit);
            }
            check("strchr NUL", strchr((char *)target + src_off, 0) == (char *)target + src_off + n);
            memset(target + src_off, 0xee, n);
            int filled = 1;
            for (size_t i = 0; i < n; i++)
                filled &= target[src_off + i] == 0xee;
            check("memset", filled && target[src_off + n] == 0);
        }
    }
    printf("cases=%lu failures=%d\n", cases, failures);
    puts(failures ? "strings: FAIL" : "strings: ok");
    return failures ? 1 : 0;
}
