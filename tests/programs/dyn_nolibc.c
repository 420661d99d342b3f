/* A dynamic executable that needs no shared library: ld.so relocates it and jumps to its
 * _start without opening any file. It checks what the kernel-side loader handed over (argv,
 * AT_PHDR/AT_ENTRY/AT_BASE in the auxv) with raw system calls, and exits with argc.
 * Built with -ffreestanding: nothing may turn its loops into calls to libc. */
#include <elf.h>
#include <stddef.h>
#include <stdint.h>

static long syscall3(long nr, long a, long b, long c)
{
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b), "d"(c)
                     : "rcx", "r11", "memory");
    return ret;
}

static size_t length(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

static void say(const char *s)
{
    syscall3(1 /* write */, 1, (long)s, (long)length(s));
}

extern char _start[] __attribute__((visibility("hidden")));
extern const Elf64_Ehdr __ehdr_start __attribute__((visibility("hidden")));   /* the linker's */

__attribute__((used)) void start_c(uint64_t *sp)
{
    long argc = (long)sp[0];
    char **argv = (char **)(sp + 1);
    char **envp = argv + argc + 1;
    uint64_t *aux = (uint64_t *)envp;
    while (*aux)
        aux++;
    aux++;
    uint64_t at_entry = 0, at_base = 0, at_phdr = 0, at_phnum = 0;
    for (; aux[0] != AT_NULL; aux += 2) {
        if (aux[0] == AT_ENTRY)
            at_entry = aux[1];
        else if (aux[0] == AT_BASE)
            at_base = aux[1];
        else if (aux[0] == AT_PHDR)
            at_phdr = aux[1];
        else if (aux[0] == AT_PHNUM)
            at_phnum = aux[1];
    }
    say("dynamic program without libraries\n");
    for (long i = 0; i < argc; i++) {
        say(i ? "arg: " : "program: ");
        say(i ? argv[i] : "(argv[0])");
        say("\n");
    }
    const Elf64_Ehdr *self = &__ehdr_start;
    say(at_entry == (uint64_t)_start ? "AT_ENTRY is _start\n" : "AT_ENTRY wrong\n");
    say(at_base != 0 ? "AT_BASE is set\n" : "AT_BASE missing\n");
    say(at_phdr == (uint64_t)self + self->e_phoff ? "AT_PHDR ok\n" : "AT_PHDR wrong\n");
    say(at_phnum == self->e_phnum ? "AT_PHNUM ok\n" : "AT_PHNUM wrong\n");
    syscall3(231 /* exit_group */, argc, 0, 0);
}

/* ld.so jumps here with the stack as the kernel built it (its own arguments removed). */
__asm__(".globl _start\n"
        "_start:\n"
        "  mov %rsp, %rdi\n"
        "  and $-16, %rsp\n"
        "  call start_c\n"
        "  hlt\n");
