/* Loading a static program into a fresh VM: its PT_LOAD segments at their addresses (or at
 * a load bias for static-PIE) and the initial stack the x86-64 ABI promises (argc, argv,
 * envp, auxv). */
#ifndef KVMS_LOADER_H
#define KVMS_LOADER_H
#include <stdint.h>

struct vm;

struct load_info {
    uint64_t entry;        /* relocated entry point */
    uint64_t sp;           /* initial stack pointer (at argc) */
    uint64_t image_end;    /* page-aligned end of the loaded image: where brk starts */
    uint64_t stack_low;    /* lowest address of the stack region */
};

#define LOADER_STACK_SIZE (8ull << 20)

/* Loads `path` with the given argv/envp (NULL-terminated). `pie_base` is where a static-PIE
 * image goes. Prints "kvmserver: PATH: reason" and returns -1 on failure. */
int load_program(struct vm *vm, const char *path, char *const argv[], char *const envp[],
                 uint64_t pie_base, struct load_info *out);

#endif
