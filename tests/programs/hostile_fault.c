/* CPU exceptions and abuse of the user stack, one per run (argv[1]):
 *   ud2 (SIGILL), int3 (SIGTRAP), div0 / divmin (SIGFPE), stack-overflow (SIGSEGV),
 *   trap-flag (SIGTRAP), alignment-check (SIGBUS natively), loop (never ends),
 *   syscall-bad-rsp (exit 7: the syscall path must not use the user stack),
 *   fault-bad-rsp (SIGILL: exception delivery must not use the user stack either),
 *   syscall-garbage-regs (exit 9 after a getpid with every other register garbage). */
#include <limits.h>
#include <stdio.h>
#include <string.h>

static volatile int zero = 0, minus_one = -1, int_min = INT_MIN;
static volatile int depth_limit = INT_MAX;  /* never reached; keeps the recursion "finite" */

__attribute__((noinline)) static int recurse(int depth)
{
    volatile char frame[256];
    frame[0] = (char)depth;
    if (depth >= depth_limit)
        return depth;
    return recurse(depth + 1) + frame[0];
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fputs("usage: hostile_fault MODE\n", stderr);
        return 2;
    }
    const char *mode = argv[1];
    printf("mode %s\n", mode);
    fflush(stdout);
    if (strcmp(mode, "ud2") == 0)
        __asm__ volatile("ud2");
    else if (strcmp(mode, "int3") == 0)
        __asm__ volatile("int3");
    else if (strcmp(mode, "div0") == 0)
        printf("%d\n", 100 / zero);
    else if (strcmp(mode, "divmin") == 0)
        printf("%d\n", int_min / minus_one);
    else if (strcmp(mode, "stack-overflow") == 0)
        printf("%d\n", recurse(0));
    else if (strcmp(mode, "trap-flag") == 0)
        __asm__ volatile("pushf\n orq $0x100, (%%rsp)\n popf\n nop\n nop" : : : "memory", "cc");
    else if (strcmp(mode, "alignment-check") == 0) {
        static char buffer[16] __attribute__((aligned(16)));
        __asm__ volatile("pushf\n orq $0x40000, (%%rsp)\n popf\n"
                         "movl 1(%0), %%eax\n"
                         "pushf\n andq $~0x40000, (%%rsp)\n popf\n"
                         : : "r"(buffer) : "rax", "memory", "cc");
    } else if (strcmp(mode, "loop") == 0) {
        for (;;)
            __asm__ volatile("" ::: "memory");
    } else if (strcmp(mode, "syscall-bad-rsp") == 0) {
        __asm__ volatile("xor %%esp, %%esp\n mov $60, %%eax\n mov $7, %%edi\n syscall\n ud2" ::: "memory");
    } else if (strcmp(mode, "syscall-noncanonical-rsp") == 0) {
        __asm__ volatile("mov $0x8000000000000000, %%rsp\n mov $60, %%eax\n mov $7, %%edi\n syscall\n ud2"
                         ::: "memory");
    } else if (strcmp(mode, "fault-bad-rsp") == 0) {
        __asm__ volatile("xor %%esp, %%esp\n ud2" ::: "memory");
    } else if (strcmp(mode, "syscall-garbage-regs") == 0) {
        /* getpid with junk everywhere, then exit(9) on a junk stack. */
        __asm__ volatile("mov $-1, %%rbx\n mov $-1, %%rbp\n mov $0x2000, %%rsp\n"
                         "mov $-1, %%rdi\n mov $-1, %%rsi\n mov $-1, %%rdx\n mov $-1, %%r8\n"
                         "mov $-1, %%r9\n mov $-1, %%r10\n mov $-1, %%r12\n mov $-1, %%r13\n"
                         "mov $-1, %%r14\n mov $-1, %%r15\n mov $39, %%eax\n syscall\n"
                         "mov $60, %%eax\n mov $9, %%edi\n syscall\n ud2"
                         ::: "memory");
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    puts("survived");
    return 0;
}
