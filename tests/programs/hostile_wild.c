/* Wild memory accesses, one per run, chosen by argv[1]. Every mode must end in SIGSEGV:
 * the guest's system area (GDT, IDT, ring-0 code and stack at 0x1000-0x9fff) is not
 * reachable from user mode, nor is unmapped, non-canonical or kernel-half memory, and data
 * pages are not executable. A mode that survives prints "survived" and exits 0. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void read_at(uintptr_t address) { (void)*(volatile uint64_t *)address; }
static void write_at(uintptr_t address) { *(volatile uint64_t *)address = 0x4141414141414141ull; }
static void call_at(uintptr_t address) { ((void (*)(void))address)(); }

static const struct {
    const char *name;
    void (*access)(uintptr_t);
    uintptr_t address;
} modes[] = {
    {"read-deadbeef", read_at, 0xdeadbeef000},
    {"write-deadbeef", write_at, 0xdeadbeef000},
    {"read-gdt", read_at, 0x1000},
    {"write-gdt", write_at, 0x1000},
    {"write-tss", write_at, 0x1080},
    {"read-idt", read_at, 0x2000},
    {"write-idt", write_at, 0x2000},
    {"read-kcode", read_at, 0x3000},
    {"write-kcode", write_at, 0x3000},
    {"call-kcode", call_at, 0x3000},
    {"write-uentry", write_at, 0x4000},
    {"write-clock-page", write_at, 0x5000},
    {"write-vdso", write_at, 0x6000},
    {"read-kstack", read_at, 0x9ff8},
    {"write-kstack", write_at, 0x9ff8},
    {"read-noncanonical", read_at, 0x8000000000000000ull},
    {"write-noncanonical", write_at, 0x0000800000000000ull},
    {"read-kernel-half", read_at, 0xffffffff81000000ull},
    {"write-kernel-half", write_at, 0xffff888000000000ull},
    {"call-deadbeef", call_at, 0xdeadbeef000},
};

int main(int argc, char **argv)
{
    if (argc != 2) {
        fputs("usage: hostile_wild MODE\n", stderr);
        return 2;
    }
    const char *mode = argv[1];
    printf("mode %s\n", mode);
    fflush(stdout);
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        if (strcmp(mode, modes[i].name) == 0) {
            modes[i].access(modes[i].address);
            puts("survived");
            return 0;
        }
    }
    if (strcmp(mode, "exec-data") == 0 || strcmp(mode, "exec-stack") == 0) {
        static unsigned char data_page[4096] __attribute__((aligned(4096)));
        unsigned char stack_code[16];
        unsigned char *code = mode[5] == 'd' ? data_page : stack_code;
        code[0] = 0xc3;  /* ret: harmless if it were allowed to run */
        call_at((uintptr_t)code);
        puts("survived");
        return 0;
    }
    if (strcmp(mode, "exec-mmap-rw") == 0) {
        unsigned char *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (page == MAP_FAILED)
            return 3;
        page[0] = 0xc3;
        call_at((uintptr_t)page);
        puts("survived");
        return 0;
    }
    if (strcmp(mode, "after-munmap") == 0 || strcmp(mode, "prot-none") == 0
        || strcmp(mode, "write-readonly") == 0) {
        unsigned char *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (page == MAP_FAILED)
            return 3;
        page[0] = 1;
        if (mode[0] == 'a' && munmap(page, 4096) != 0)
            return 3;
        if (mode[0] == 'p' && mprotect(page, 4096, PROT_NONE) != 0)
            return 3;
        if (mode[0] == 'w') {
            if (mprotect(page, 4096, PROT_READ) != 0)
                return 3;
            write_at((uintptr_t)page);
        } else {
            read_at((uintptr_t)page);
        }
        puts("survived");
        return 0;
    }
    if (strcmp(mode, "mprotect-gdt") == 0) {
        /* Asking for the system area must not make it reachable. */
        int result = mprotect((void *)0x1000, 4096, PROT_READ | PROT_WRITE);
        printf("mprotect(0x1000) = %d\n", result);
        fflush(stdout);
        write_at(0x1000);
        puts("survived");
        return 0;
    }
    if (strcmp(mode, "mmap-fixed-idt") == 0) {
        void *p = mmap((void *)0x2000, 4096, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        printf("mmap(0x2000, MAP_FIXED) %s\n", p == MAP_FAILED ? "failed" : "succeeded");
        fflush(stdout);
        if (p != MAP_FAILED) {
            /* If it "worked" the IDT must still be intact: a fault has to be reported. */
            memset(p, 0, 4096);
        }
        write_at(0xdeadbeef000);
        puts("survived");
        return 0;
    }
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
}
