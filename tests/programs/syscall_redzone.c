/* Keeps a value at -8(%rsp) across a `syscall`, as a leaf function compiled with a red zone
 * may. Syscall-site rewriting (vm/syscall_sites.h) turns a site into a call, which pushes
 * exactly there, so the host must leave this site trapping. The number is set right before
 * the `syscall`, as the host wants of a site it rewrites, so only the red zone keeps this
 * one trapping. Prints what it reads back. */
#include <stdint.h>
#include <stdio.h>
#include <sys/syscall.h>

int main(void)
{
    for (int round = 0; round < 3; round++) {
        uint64_t kept;
        long ret;
        __asm__ volatile("movq $0x5afe5afe, -8(%%rsp)\n\t"
                         "mov %[nr], %%eax\n\t"
                         "syscall\n\t"
                         "movq -8(%%rsp), %[kept]"
                         : "=a"(ret), [kept] "=r"(kept)
                         : [nr] "i"(SYS_close), "D"(-1L)
                         : "rcx", "r11", "memory");
        printf("red zone after close(-1) = %ld: %#lx\n", ret, (unsigned long)kept);
    }
    return 0;
}
