/* Exercises what syscall-site rewriting (kvm_pvm, vm/syscall_sites.h) must keep as on
 * Linux; argv[1] picks the case. Every case makes each call at least twice from the same
 * instruction: the first time the host may rewrite it, later times go through the rewrite.
 *   numbers        numbers that are no system call: -ENOSYS. From sites whose number is
 *                  a constant (the host rewrites them); from the `syscall` of such a site
 *                  reached past its constant, with numbers that take every path as a call
 *                  target (past the sled, unmapped, non-canonical); and from a site whose
 *                  number comes from a register (the host leaves it trapping)
 *   bad-stack      a `syscall` made with RSP pointing nowhere usable
 *   call-low       the program's own `call *%rax` to address 0x40: SIGSEGV
 *   call-past-sled the same to 0x300: SIGSEGV
 *   jit            a `syscall` in code the program writes itself, run, then replaced by
 *                  other code with a `syscall` at the same place, run again
 *   page0-jump     a jump into page 0 with a made-up return address: SIGSEGV
 *   page0-write    a write to address 8: SIGSEGV
 *   page0-pointer  system calls given buffers in page 0 (write from it, read into it): EFAULT,
 *                  also where page 0 holds the sled and the program could read it
 * stdout is compared with a native run. On stderr, numbers and bad-stack print the two bytes
 * at their `syscall` instructions after the calls ("site: 0f 05" natively, "ff d0" once
 * rewritten). Built with -mno-red-zone, so the host's red-zone check leaves its sites to be
 * rewritten; syscall_redzone.c is the case it must not rewrite. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/mman.h>
#include <unistd.h>

/* The number in a register: a site the host must leave trapping. */
static long raw_syscall(long nr, const unsigned char **site)
{
    long ret;
    const unsigned char *at;
    __asm__ volatile("lea 1f(%%rip), %[at]\n"
                     "1:\tsyscall"
                     : "=a"(ret), [at] "=&r"(at)
                     : "a"(nr)
                     : "rcx", "r11", "memory");
    *site = at;
    return ret;
}

/* A constant number right before the `syscall` (sites the host rewrites), one function per
 * number: 337-423 are no x86-64 call. fixed_site is fixed_0x190's `syscall`. */
long fixed_0x180(void);
long fixed_0x190(void);
long fixed_0x1a7(void);
extern const unsigned char fixed_site[];
/* int3 padding past the host's look around a site (1 KiB each way): the compiled code
 * around them may hold bytes that read as red-zone use, and the sites would be left. */
__asm__(".text\n"
        ".globl fixed_0x180, fixed_0x190, fixed_0x1a7, fixed_site\n"
        ".skip 1100, 0xcc\n"
        "fixed_0x180:\n\tmov $0x180, %eax\n\tsyscall\n\tret\n"
        "fixed_0x190:\n\tmov $0x190, %eax\n"
        "fixed_site:\n\tsyscall\n\tret\n"
        "fixed_0x1a7:\n\tmov $0x1a7, %eax\n\tsyscall\n\tret\n"
        ".skip 1100, 0xcc\n");

/* Makes fixed_site's call with `nr`, reached past its constant by an indirect call, which
 * the host cannot see: a rewritten site then calls `nr` as an address. */
static long past_the_constant(long nr)
{
    long ret;
    __asm__ volatile("call *%[site]"
                     : "=a"(ret)
                     : "a"(nr), [site] "r"(fixed_site)
                     : "rcx", "r11", "memory");
    return ret;
}

static void print_result(const char *how, long nr, long ret)
{
    printf("%s %#lx: %s\n", how, (unsigned long)nr,
           ret == -ENOSYS ? "-ENOSYS" : strerror((int)-ret));
}

static void numbers(void)
{
    static long (*const fixed[])(void) = { fixed_0x180, fixed_0x190, fixed_0x1a7 };
    static const long fixed_nrs[] = { 0x180, 0x190, 0x1a7 };
    static const long nrs[] = {
        0x1f0, 0x1ff, 0x200, 0x201, 0x202, 0x203, 0x204, 0x205, 0x206, 0x207, 0x208, 0x209,
        0x20a, 0x2ff, 0x3ff, 0x400, 0xfff, 0x1000, 0x10000, 0x7fffffff, -1L,
        (long)0x800000000000ffffull,    /* non-canonical as an address; low half invalid */
        0x00007fff0000ffffL,            /* canonical, far above any guest memory */
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        for (int round = 0; round < 3; round++)
            print_result("constant system call", fixed_nrs[i], fixed[i]());
    for (size_t i = 0; i < sizeof nrs / sizeof nrs[0]; i++)
        for (int round = 0; round < 3; round++)
            print_result("past the constant, system call", nrs[i], past_the_constant(nrs[i]));
    const unsigned char *site = NULL;
    for (size_t i = 0; i < sizeof nrs / sizeof nrs[0]; i++)
        for (int round = 0; round < 3; round++)
            print_result("system call", nrs[i], raw_syscall(nrs[i], &site));
    fprintf(stderr, "constant site: %02x %02x\n", fixed_site[0], fixed_site[1]);
    fprintf(stderr, "register site: %02x %02x\n", site[0], site[1]);
}

/* close(-1) with RSP at `stack`: the call a rewrite makes cannot push there. */
static long close_with_stack(uintptr_t stack, const unsigned char **site)
{
    long ret;
    const unsigned char *at;
    __asm__ volatile("lea 1f(%%rip), %[at]\n\t"
                     "mov %%rsp, %%rbx\n\t"
                     "mov %[stack], %%rsp\n\t"
                     "mov %[nr], %%eax\n"
                     "1:\tsyscall\n\t"
                     "mov %%rbx, %%rsp"
                     : "=a"(ret), [at] "=&r"(at)
                     : [nr] "i"(SYS_close), "D"(-1L), [stack] "r"(stack)
                     : "rbx", "rcx", "r11", "memory");
    *site = at;
    return ret;
}

static void bad_stack(void)
{
    static const uintptr_t stacks[] = { 0x10, 0x800000000000f000ull, 0 };
    const unsigned char *site = NULL;
    for (size_t i = 0; i < sizeof stacks / sizeof stacks[0]; i++)
        for (int round = 0; round < 3; round++)
            printf("close(-1) with RSP %#lx: %ld\n", (unsigned long)stacks[i],
                   close_with_stack(stacks[i], &site));
    fprintf(stderr, "site: %02x %02x\n", site[0], site[1]);
}

static void call_rax(long target)
{
    fflush(stdout);
    __asm__ volatile("call *%%rax" : : "a"(target) : "memory");
    printf("returned from a call to %#lx\n", (unsigned long)target);
}

/* Runs `code` (ending in ret) written into a fresh writable, executable page. */
static long run_code(uint8_t *page, const uint8_t *code, size_t len)
{
    memcpy(page, code, len);
    long (*fn)(void) = (long (*)(void))page;
    __asm__ volatile("" : : : "memory");
    return fn();
}

static void jit(void)
{
    uint8_t *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) {
        printf("mmap: %s\n", strerror(errno));
        return;
    }
    /* mov $3,%eax; mov $-1,%edi; syscall; ret: close(-1) */
    static const uint8_t close_bad[] = { 0xb8, 3, 0, 0, 0, 0xbf, 0xff, 0xff, 0xff, 0xff,
                                         0x0f, 0x05, 0xc3 };
    /* mov $0x1f0,%eax; nop x5; syscall; ret: no such call, same place */
    static const uint8_t no_call[] = { 0xb8, 0xf0, 1, 0, 0, 0x90, 0x90, 0x90, 0x90, 0x90,
                                       0x0f, 0x05, 0xc3 };
    for (int round = 0; round < 3; round++)
        printf("jit close(-1): %ld\n", run_code(page, close_bad, sizeof close_bad));
    for (int round = 0; round < 3; round++)
        printf("jit call 0x1f0: %ld\n", run_code(page, no_call, sizeof no_call));
    printf("code reads back as written: %s\n",
           memcmp(page, no_call, sizeof no_call) ? "no" : "yes");
}

static void page0_jump(void)
{
    fflush(stdout);
    /* Push a return address into the middle of main, then jump to the sled's start. */
    __asm__ volatile("lea main+1(%%rip), %%rax\n\t"
                     "push %%rax\n\t"
                     "xor %%eax, %%eax\n\t"
                     "jmp *%%rax" : : : "rax", "memory");
}

static void page0_pointer(void)
{
    int fds[2];
    if (pipe(fds))
        return;
    char *volatile low = (char *)16;    /* volatile: the compiler sees no constant address */
    long wrote = write(fds[1], low, 8);
    printf("write from page 0: %s\n", wrote < 0 ? strerror(errno) : "succeeded");
    if (write(fds[1], "12345678", 8) != 8)
        return;
    long got = read(fds[0], low, 8);
    printf("read into page 0: %s\n", got < 0 ? strerror(errno) : "succeeded");
}

int main(int argc, char **argv)
{
    const char *what = argc > 1 ? argv[1] : "";
    if (!strcmp(what, "numbers"))
        numbers();
    else if (!strcmp(what, "bad-stack"))
        bad_stack();
    else if (!strcmp(what, "call-low"))
        call_rax(0x40);
    else if (!strcmp(what, "call-past-sled"))
        call_rax(0x300);
    else if (!strcmp(what, "jit"))
        jit();
    else if (!strcmp(what, "page0-jump"))
        page0_jump();
    else if (!strcmp(what, "page0-write")) {
        fflush(stdout);
        long *volatile low = (long *)8;
        *low = 1;
    } else if (!strcmp(what, "page0-pointer"))
        page0_pointer();
    else {
        fprintf(stderr, "usage: syscall_sites numbers|bad-stack|call-low|call-past-sled|jit|"
                "page0-jump|page0-write|page0-pointer\n");
        return 2;
    }
    return 0;
}
