/* Privileged and hypervisor instructions from user mode, one per run (argv[1]). Natively each
 * raises #GP (SIGSEGV) or #UD (SIGILL); in the guest they must end the same way and never
 * reach the host as if ring 0 had issued them. A mode that survives prints "survived". */
#include <stdio.h>
#include <string.h>

static void hlt(void) { __asm__ volatile("hlt"); }
static void cli(void) { __asm__ volatile("cli"); }
static void sti(void) { __asm__ volatile("sti"); }
static void in_port(void) { unsigned char v; __asm__ volatile("inb $0x10, %0" : "=a"(v)); }
static void out_syscall_port(void) { __asm__ volatile("outb %%al, $0x10" : : "a"(0)); }
static void out_exception_port(void) { __asm__ volatile("outb %%al, $0x8e" : : "a"(0)); }
static void out_dx(void) { __asm__ volatile("outl %%eax, %%dx" : : "a"(0), "d"(0x3f8)); }
static void read_cr3(void) { unsigned long v; __asm__ volatile("mov %%cr3, %0" : "=r"(v)); }
static void write_cr3(void) { __asm__ volatile("mov %0, %%cr3" : : "r"(0ul)); }
static void write_cr0(void) { __asm__ volatile("mov %0, %%cr0" : : "r"(0ul)); }
static void rdmsr(void) { unsigned a, d; __asm__ volatile("rdmsr" : "=a"(a), "=d"(d) : "c"(0xc0000080)); }
static void wrmsr_lstar(void) { __asm__ volatile("wrmsr" : : "c"(0xc0000082), "a"(0), "d"(0)); }
static void wrmsr_efer(void) { __asm__ volatile("wrmsr" : : "c"(0xc0000080), "a"(0), "d"(0)); }
static void lgdt(void) { static unsigned char d[10]; __asm__ volatile("lgdt %0" : : "m"(d)); }
static void lidt(void) { static unsigned char d[10]; __asm__ volatile("lidt %0" : : "m"(d)); }
static void ltr(void) { __asm__ volatile("ltr %w0" : : "r"(0x40)); }
static void invlpg(void) { __asm__ volatile("invlpg (%0)" : : "r"(0x1000ul) : "memory"); }
static void wbinvd(void) { __asm__ volatile("wbinvd"); }
static void swapgs(void) { __asm__ volatile("swapgs"); }
static void xsetbv(void) { __asm__ volatile("xsetbv" : : "c"(0), "a"(1), "d"(0)); }
static void vmcall(void) { long r = 0; __asm__ volatile("vmcall" : "+a"(r) : : "memory"); }
static void vmmcall(void) { long r = 0; __asm__ volatile("vmmcall" : "+a"(r) : : "memory"); }
static void int_dpl0_gate(void) { __asm__ volatile("int $0x0e"); }  /* DPL-0 gate: #GP */
static void iret_to_ring0(void)
{
    /* An iretq frame naming the kernel code selector: the CPU refuses (#GP). */
    __asm__ volatile("mov %%rsp, %%rax\n push $0x18\n push %%rax\n pushf\n push $0x10\n"
                     "lea 1f(%%rip), %%rax\n push %%rax\n iretq\n 1:\n"
                     : : : "rax", "memory");
}
static void far_jump_ring0(void)
{
    static const struct { unsigned long offset; unsigned short selector; } __attribute__((packed))
        target = {0x3000, 0x10};
    __asm__ volatile("rex64 ljmp *%0" : : "m"(target));
}

static const struct { const char *name; void (*run)(void); } modes[] = {
    {"hlt", hlt}, {"cli", cli}, {"sti", sti}, {"in", in_port},
    {"out-syscall-port", out_syscall_port}, {"out-exception-port", out_exception_port},
    {"out-dx", out_dx}, {"read-cr3", read_cr3}, {"write-cr3", write_cr3},
    {"write-cr0", write_cr0}, {"rdmsr", rdmsr}, {"wrmsr-lstar", wrmsr_lstar},
    {"wrmsr-efer", wrmsr_efer}, {"lgdt", lgdt}, {"lidt", lidt}, {"ltr", ltr},
    {"invlpg", invlpg}, {"wbinvd", wbinvd}, {"swapgs", swapgs}, {"xsetbv", xsetbv},
    {"vmcall", vmcall}, {"vmmcall", vmmcall}, {"int-dpl0-gate", int_dpl0_gate},
    {"iret-ring0", iret_to_ring0}, {"ljmp-ring0", far_jump_ring0},
};

int main(int argc, char **argv)
{
    if (argc != 2) {
        fputs("usage: hostile_priv MODE\n", stderr);
        return 2;
    }
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        if (strcmp(argv[1], modes[i].name) == 0) {
            printf("mode %s\n", argv[1]);
            fflush(stdout);
            modes[i].run();
            puts("survived");
            return 0;
        }
    }
    fprintf(stderr, "unknown mode %s\n", argv[1]);
    return 2;
}
