/* A program's start as Linux makes it: the engine loads the images (load_program), and the
 * initial stack the x86-64 ABI promises goes below the stack top it leaves: argc, argv,
 * envp, and the auxiliary vector describing the images, the vDSO and the host's CPU. */
#include "linux/process.h"

#include <elf.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/random.h>
#include <unistd.h>

#include "base/log.h"
#include "base/units.h"
#include "vm/engine.h"

#define MAX_STRINGS_SIZE (1ull << 20)   /* argv + envp bytes, as a sane cap */

/* Writes downward from sp, never below low (the stack region's bottom). */
struct stack_builder {
    struct vm *vm;
    uint64_t sp, low;
    bool failed;
};

static uint64_t push_bytes(struct stack_builder *b, const void *data, size_t len)
{
    uint8_t *dst = len <= b->sp - b->low ? vm_host_span(b->vm, b->sp - len, len) : NULL;
    if (!dst) {
        b->failed = true;
        return 0;
    }
    b->sp -= len;
    memcpy(dst, data, len);
    return b->sp;
}

static uint64_t push_string(struct stack_builder *b, const char *s)
{
    return push_bytes(b, s, strlen(s) + 1);
}

static size_t count(char *const v[])
{
    size_t n = 0;
    while (v[n])
        n++;
    return n;
}

static int build_stack(struct vm *vm, const struct load_info *li, const char *execfn,
                       char *const argv[], char *const envp[], uint64_t *sp_out)
{
    size_t argc = count(argv), envc = count(envp), strings = strlen(execfn) + 1;
    for (size_t i = 0; i < argc; i++)
        strings += strlen(argv[i]) + 1;
    for (size_t i = 0; i < envc; i++)
        strings += strlen(envp[i]) + 1;
    if (strings > MAX_STRINGS_SIZE) {
        log_error("argument list and environment too long");
        return -1;
    }

    struct stack_builder b = { vm, li->stack_top, li->stack_low, false };
    uint64_t execfn_at = push_string(&b, execfn);
    uint64_t *argv_at = calloc(argc + envc + 1, sizeof *argv_at);
    if (!argv_at)
        return -1;
    uint64_t *envp_at = argv_at + argc;
    for (size_t i = 0; i < argc; i++)
        argv_at[i] = push_string(&b, argv[i]);
    for (size_t i = 0; i < envc; i++)
        envp_at[i] = push_string(&b, envp[i]);
    uint64_t platform_at = push_string(&b, "x86_64");
    uint8_t random[16];
    if (getrandom(random, sizeof random, 0) != sizeof random)
        memset(random, 0x5a, sizeof random);
    b.sp &= ~15ull;
    uint64_t random_at = push_bytes(&b, random, sizeof random);

    uint64_t auxv[][2] = {
        { AT_SYSINFO_EHDR, VDSO_ADDR },
        { AT_MINSIGSTKSZ, getauxval(AT_MINSIGSTKSZ) ? getauxval(AT_MINSIGSTKSZ) : 2048 },
        { AT_HWCAP, getauxval(AT_HWCAP) },
        { AT_PAGESZ, PAGE },
        { AT_CLKTCK, (uint64_t)sysconf(_SC_CLK_TCK) },
        { AT_PHDR, li->phdr },
        { AT_PHENT, li->phent },
        { AT_PHNUM, li->phnum },
        { AT_BASE, li->interp_bias },
        { AT_FLAGS, 0 },
        { AT_ENTRY, li->program_entry },
        { AT_UID, getuid() },
        { AT_EUID, geteuid() },
        { AT_GID, getgid() },
        { AT_EGID, getegid() },
        { AT_SECURE, 0 },
        { AT_RANDOM, random_at },
        { AT_HWCAP2, getauxval(AT_HWCAP2) },
        { AT_EXECFN, execfn_at },
        { AT_PLATFORM, platform_at },
        { AT_NULL, 0 },
    };
    size_t words = 1 + argc + 1 + envc + 1 + 2 * (sizeof auxv / sizeof auxv[0]);
    uint64_t *w = calloc(words, sizeof *w);
    if (!w) {
        free(argv_at);
        return -1;
    }
    uint64_t *at = w;
    *at++ = argc;
    for (size_t i = 0; i < argc; i++)
        *at++ = argv_at[i];
    *at++ = 0;
    for (size_t i = 0; i < envc; i++)
        *at++ = envp_at[i];
    *at++ = 0;
    memcpy(at, auxv, sizeof auxv);
    free(argv_at);
    /* rsp is 16-byte aligned at argc: the words go just above the aligned address. */
    if (b.sp - b.low >= words * sizeof *w)
        b.sp = ((b.sp - words * sizeof *w) & ~15ull) + words * sizeof *w;
    uint64_t sp = push_bytes(&b, w, words * sizeof *w);
    free(w);
    if (b.failed) {
        log_error("argument list and environment do not fit the guest stack");
        return -1;
    }
    *sp_out = sp;
    return 0;
}

int lx_load_program(struct vm *vm, const char *path, char *const argv[], char *const envp[],
                    uint64_t dylink_base, struct load_info *li, uint64_t *sp)
{
    if (load_program(vm, path, dylink_base, li) < 0)
        return -1;
    return build_stack(vm, li, path, argv, envp, sp);
}
