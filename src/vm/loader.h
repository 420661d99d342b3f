/* Loading a program into a fresh VM: its PT_LOAD segments at their addresses (or at a load
 * bias for PIE) and the initial stack the x86-64 ABI promises (argc, argv, envp, auxv).
 * A dynamically linked program (PT_INTERP) is loaded as Linux's execve does it: the program
 * and its interpreter (ld.so) both mapped, the auxv describing the program, AT_BASE the
 * interpreter's base and the entry point the interpreter's; ld.so maps the shared libraries
 * itself through the guest's system calls. */
#ifndef KVMS_LOADER_H
#define KVMS_LOADER_H
#include <stdint.h>

struct vm;

struct load_info {
    uint64_t entry;        /* where the guest starts: the interpreter's entry if it has one */
    uint64_t sp;           /* initial stack pointer (at argc) */
    uint64_t image_end;    /* page-aligned end of the highest loaded image: where brk starts */
    uint64_t stack_low;    /* lowest address of the stack region */
    uint64_t program_base; /* where the program's lowest segment is */
    uint64_t interp_base;  /* where the interpreter's lowest segment is; 0 without one */
};

#define LOADER_STACK_SIZE (8ull << 20)

/* Loads `path` with the given argv/envp (NULL-terminated). `dylink_base` is where a
 * position-independent image goes: a static-PIE program, or the interpreter of a dynamic
 * one (a dynamic PIE program then goes just above its interpreter). Prints
 * "kvmserver: PATH: reason" and returns -1 on failure. */
int load_program(struct vm *vm, const char *path, char *const argv[], char *const envp[],
                 uint64_t dylink_base, struct load_info *out);

#endif
