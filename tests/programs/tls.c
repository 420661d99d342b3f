/* Thread-local storage in the main thread: initialised (.tdata) and zeroed (.tbss) variables,
 * an over-aligned one, and the %fs self-pointer glibc's TCB keeps at offset 0. */
#include <stdint.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "verdict.h"

/* From the kernel's asm/prctl.h, which musl's toolchain lacks. */
#ifndef ARCH_SET_FS
#define ARCH_SET_FS 0x1002
#define ARCH_GET_FS 0x1003
#endif

static __thread int initialised = 42;
static __thread long long initialised_wide = -1234567890123ll;
static __thread int zeroed;
static __thread char zeroed_block[1000];
static _Alignas(64) __thread unsigned char aligned_64[64] = {1, 2, 3};
static __thread const char *pointer = "tls string";

/* Not inlined, so the compiler has to reread TLS rather than reuse constants. */
__attribute__((noinline)) static int *address_of_initialised(void) { return &initialised; }

int main(void)
{
    printf("initialised=%d wide=%lld zeroed=%d pointer=%s aligned[2]=%d\n",
           initialised, initialised_wide, zeroed, pointer, aligned_64[2]);
    int all_zero = 1;
    for (size_t i = 0; i < sizeof zeroed_block; i++)
        all_zero &= zeroed_block[i] == 0;
    verdict("tbss zero", all_zero && zeroed == 0);
    verdict("64-byte alignment", ((uintptr_t)aligned_64 & 63) == 0);

    initialised += 1;
    zeroed = 7;
    zeroed_block[999] = 'z';
    *address_of_initialised() += 10;
    printf("after writes: initialised=%d zeroed=%d last=%c\n", initialised, zeroed, zeroed_block[999]);

    uintptr_t self = 0;
    __asm__ volatile("mov %%fs:0, %0" : "=r"(self));
    unsigned long fs_base = 0;
    verdict("arch_prctl(ARCH_GET_FS)", syscall(SYS_arch_prctl, ARCH_GET_FS, &fs_base) == 0);
    verdict("%fs:0 points to the TCB", self == fs_base && self != 0);
    verdict("TLS lies below the TCB", (uintptr_t)&initialised < fs_base
                                          && (uintptr_t)&zeroed < fs_base);
    /* Flip the base to a copy and back: the variables must follow %fs. */
    verdict("arch_prctl(ARCH_SET_FS) same base", syscall(SYS_arch_prctl, ARCH_SET_FS, fs_base) == 0);
    printf("reread: initialised=%d\n", *address_of_initialised());
    return failures ? 1 : 0;
}
