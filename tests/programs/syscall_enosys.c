/* Undefined system-call numbers through libc's syscall(), each made twice in a row from the
 * same site: on kvm_pvm the host may rewrite a site it has seen into `call *%rax`, and a
 * number that names executable memory would then run it (vm/syscall_sites.h). Every call
 * must answer ENOSYS: numbers past page 0's sled, across the system area (its pages as
 * src/vm/layout.h places them, the entry stub at 0x4000 and the vDSO at 0x6000-0x7fff
 * included), x32 numbers with and without the x32 bit, huge and negative ones, the address
 * of a function of this program and of pages it maps executable.
 *
 *   syscall_enosys [STRIDE]   the system area is walked every STRIDE bytes (default 64)
 *
 * Prints one line a number; exits 1 if any call answered otherwise, so a kernel that
 * defines one of these (x32 enabled answers 0x40000200-0x40000223) shows natively. Linux
 * takes the low 32 bits of a number only: every number here has undefined low bits. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define X32_BIT 0x40000000L

static int failures;

static void result(long ret, int err)
{
    if (ret == -1 && err == ENOSYS) {
        printf(" ENOSYS");
    } else {
        printf(" %ld (%s)", ret, ret == -1 ? strerror(err) : "no error");
        failures++;
    }
}

/* Both calls from libc's one syscall() site: the first may get it rewritten. */
static void twice(const char *label, long nr)
{
    if (label)
        printf("%s:", label);
    else
        printf("%#lx:", (unsigned long)nr);
    for (int round = 0; round < 2; round++) {
        errno = 0;
        long ret = syscall(nr, 0L, 0L, 0L, 0L, 0L, 0L);
        result(ret, errno);
    }
    printf("\n");
}

/* Code the numbers below name: were it called, the answer would be its own. */
__attribute__((noinline)) static long own_function(void)
{
    __asm__ volatile("");
    return 0x5eed;
}

/* A page of `ret` instructions, left executable (and writable for `jit`). */
static void *code_page(int prot)
{
    uint8_t *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED)
        return NULL;
    memset(page, 0xc3, 4096);
    if (mprotect(page, 4096, prot)) {
        munmap(page, 4096);
        return NULL;
    }
    return page;
}

int main(int argc, char **argv)
{
    long stride = argc > 1 ? strtol(argv[1], NULL, 0) : 64;
    if (stride <= 0) {
        fprintf(stderr, "usage: syscall_enosys [STRIDE]\n");
        return 2;
    }
    /* Past the sled's end (0x1d0) in page 0; 0x1d0-0x1d5 are Linux 6.18's newest calls. */
    static const long page0[] = { 0x1e0, 0x1f0, 0x1ff, 0x224, 0x2ff, 0x3ff, 0x400, 0x800, 0xfff };
    for (size_t i = 0; i < sizeof page0 / sizeof page0[0]; i++)
        twice(NULL, page0[i]);
    /* x32's own numbers, without the x32 bit and with it; with it also a 64-bit-only
     * number (rt_sigaction) and system-area addresses. */
    for (long nr = 512; nr <= 547; nr++)
        twice(NULL, nr);
    for (long nr = 512; nr <= 547; nr++)
        twice(NULL, X32_BIT | nr);
    static const long x32[] = { X32_BIT | 13, X32_BIT | 0x1f0, X32_BIT | 0x4000,
                                X32_BIT | 0x7c5e };
    for (size_t i = 0; i < sizeof x32 / sizeof x32[0]; i++)
        twice(NULL, x32[i]);
    /* The system area's pages (GDT and TSS, IDT, ring-0 code, the entry stub, the clock
     * page and the stub's answers, the vDSO, the ring-0 stack, the MMIO and shared pages)
     * and a vDSO address glibc's syscall() once crashed on; then all of it by STRIDE. */
    static const long area[] = { 0x1000, 0x1080, 0x2000, 0x3000, 0x4000, 0x4001, 0x5000,
                                 0x5800, 0x6000, 0x7c5e, 0x8000, 0xa000, 0xb000, 0xffff,
                                 0x10000 };
    for (size_t i = 0; i < sizeof area / sizeof area[0]; i++)
        twice(NULL, area[i]);
    for (long nr = 0x1000; nr < 0x10000; nr += stride)
        twice(NULL, nr);
    /* Huge and negative: the upper half as an address, the lower one undefined. */
    static const long huge[] = {
        0x100004000L, 0x100007c5eL, 0x7fff00004000L, (long)0xffffffff00004000ull,
        (long)0x8000000000004000ull, 0x7fffffff, 0x80000000L, 0xffffffffL, INT64_MAX,
        -1, -2, -ENOSYS, -4096,
    };
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++)
        twice(NULL, huge[i]);
    /* The program's own code, a page it mapped executable and one it generates code in;
     * labelled, as their addresses differ from run to run. Inside a page the low 32 bits
     * are at least 0x800, no call. */
    twice("own function", (long)(uintptr_t)own_function);
    void *rx = code_page(PROT_READ | PROT_EXEC);
    void *jit = code_page(PROT_READ | PROT_WRITE | PROT_EXEC);
    if (!rx || !jit) {
        printf("mmap: %s\n", strerror(errno));
        return 1;
    }
    twice("executable page", (long)(uintptr_t)rx + 0x800);
    twice("jit page", (long)(uintptr_t)jit + 0x800);
    printf("own function answers %#lx\n", own_function());
    return failures ? 1 : 0;
}
