/* Large anonymous mappings: 256 MiB touched sparsely, partial munmap, mremap growth with and
 * without moving, MADV_DONTNEED zeroing, a big PROT_NONE reservation committed piecewise (the
 * way JIT runtimes reserve their heaps). Prints verdicts only. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "verdict.h"

#define MiB (1024ul * 1024ul)

static int all_zero(const unsigned char *p, size_t len, size_t stride)
{
    for (size_t i = 0; i < len; i += stride)
        if (p[i] != 0)
            return 0;
    return 1;
}

int main(void)
{
    const size_t big = 256 * MiB;
    unsigned char *p = mmap(NULL, big, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    verdict("mmap 256 MiB", p != MAP_FAILED);
    if (p == MAP_FAILED)
        return 1;
    verdict("mapping page aligned", ((uintptr_t)p & 4095) == 0);
    verdict("fresh pages read as zero", all_zero(p, big, 1 * MiB + 4096));
    for (size_t off = 0; off < big; off += 1 * MiB + 4096)
        p[off] = (unsigned char)(off >> 20 | 1);
    p[big - 1] = 0x5a;
    int kept = 1;
    for (size_t off = 0; off < big; off += 1 * MiB + 4096)
        kept &= p[off] == (unsigned char)(off >> 20 | 1);
    verdict("sparse writes read back", kept && p[big - 1] == 0x5a);

    /* Punch a hole in the middle, keep both ends. */
    verdict("munmap middle 64 MiB", munmap(p + 96 * MiB, 64 * MiB) == 0);
    verdict("ends survive the hole", p[0] == 1 && p[big - 1] == 0x5a);
    verdict("munmap rest", munmap(p, 96 * MiB) == 0 && munmap(p + 160 * MiB, 96 * MiB) == 0);

    /* mremap: grow 16 -> 64 MiB, moving allowed; contents kept, new tail zero. */
    unsigned char *q = mmap(NULL, 16 * MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    verdict("mmap 16 MiB", q != MAP_FAILED);
    if (q == MAP_FAILED)
        return 1;
    for (size_t off = 0; off < 16 * MiB; off += 4096)
        q[off] = (unsigned char)(off >> 12);
    unsigned char *r = mremap(q, 16 * MiB, 64 * MiB, MREMAP_MAYMOVE);
    verdict("mremap grow to 64 MiB", r != MAP_FAILED);
    if (r == MAP_FAILED)
        return 1;
    int same = 1;
    for (size_t off = 0; off < 16 * MiB; off += 4096)
        same &= r[off] == (unsigned char)(off >> 12);
    verdict("mremap kept contents", same);
    verdict("mremap tail is zero", all_zero(r + 16 * MiB, 48 * MiB, 4096));
    memset(r + 63 * MiB, 0xab, MiB);
    verdict("mremap tail writable", r[64 * MiB - 1] == 0xab);

    /* Shrink in place. */
    unsigned char *s = mremap(r, 64 * MiB, 8 * MiB, 0);
    verdict("mremap shrink in place", s == r && s[4096] == 1);
    verdict("munmap shrunk", munmap(s, 8 * MiB) == 0);

    /* MADV_DONTNEED on private anonymous memory gives zero pages back. */
    unsigned char *d = mmap(NULL, 4 * MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (d == MAP_FAILED)
        return 1;
    memset(d, 0x77, 4 * MiB);
    verdict("madvise DONTNEED", madvise(d + MiB, 2 * MiB, MADV_DONTNEED) == 0);
    verdict("DONTNEED pages read zero", all_zero(d + MiB, 2 * MiB, 512));
    verdict("pages outside DONTNEED kept", d[0] == 0x77 && d[4 * MiB - 1] == 0x77);
    munmap(d, 4 * MiB);

    /* Reserve 1 GiB PROT_NONE, commit two pieces with mprotect, and MAP_FIXED over a third. */
    const size_t reserve = 1024 * MiB;
    unsigned char *v = mmap(NULL, reserve, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    verdict("reserve 1 GiB PROT_NONE", v != MAP_FAILED);
    if (v == MAP_FAILED)
        return 1;
    verdict("mprotect piece RW", mprotect(v + 512 * MiB, 2 * MiB, PROT_READ | PROT_WRITE) == 0);
    v[512 * MiB] = 1;
    v[514 * MiB - 1] = 2;
    verdict("committed piece works", v[512 * MiB] == 1 && v[514 * MiB - 1] == 2);
    unsigned char *f = mmap(v + 900 * MiB, MiB, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    verdict("MAP_FIXED inside reservation", f == v + 900 * MiB);
    f[MiB - 1] = 3;
    verdict("MAP_FIXED piece works", f[MiB - 1] == 3);
    verdict("munmap reservation", munmap(v, reserve) == 0);

    /* Argument errors Linux reports. */
    errno = 0;
    verdict("mmap length 0 -> EINVAL",
            mmap(NULL, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == MAP_FAILED && errno == EINVAL);
    errno = 0;
    verdict("munmap unaligned -> EINVAL", munmap((char *)v + 1, 4096) == -1 && errno == EINVAL);
    return failures ? 1 : 0;
}
