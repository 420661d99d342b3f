/* Program loading (see loader.h). */
#include "vm/loader.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vm/elf.h"
#include "vm/layout.h"
#include "vm/vm.h"

#define PAGE 4096ull
#define MAX_PROGRAM_SIZE (1ull << 31)
#define MAX_STRINGS_SIZE (1ull << 20)   /* argv + envp bytes, as a sane cap */

static uint64_t page_down(uint64_t x) { return x & ~(PAGE - 1); }
static uint64_t page_up(uint64_t x) { return (x + PAGE - 1) & ~(PAGE - 1); }

static void *read_file(const char *path, size_t *size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "kvmserver: %s: cannot open: %s\n", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    void *buf = NULL;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > MAX_PROGRAM_SIZE) {
        fprintf(stderr, "kvmserver: %s: not a regular file of a loadable size\n", path);
        goto out;
    }
    buf = malloc(st.st_size ? (size_t)st.st_size : 1);
    size_t got = 0;
    while (buf && got < (size_t)st.st_size) {
        ssize_t n = read(fd, (char *)buf + got, (size_t)st.st_size - got);
        if (n <= 0) {
            fprintf(stderr, "kvmserver: %s: read failed: %s\n", path,
                    n < 0 ? strerror(errno) : "file shrank");
            free(buf);
            buf = NULL;
            break;
        }
        got += (size_t)n;
    }
    *size = got;
out:
    close(fd);
    return buf;
}

static int map_segments(struct vm *vm, const uint8_t *image, const struct elf_info *elf,
                        uint64_t bias)
{
    for (size_t i = 0; i < elf->nloads; i++) {
        const struct elf_load *l = &elf->loads[i];
        uint64_t start = page_down(l->vaddr + bias);
        uint64_t end = page_up(l->vaddr + bias + l->memsz);
        int err = vm_map(vm, start, end - start, l->prot | PROT_READ);
        if (err)
            return err;
        /* Like mmap of the file: the page's bytes before vaddr come from the file too. */
        uint64_t lead = (l->vaddr + bias) - start;
        memcpy(vm->mem + start, image + (l->offset - lead), lead + l->filesz);
    }
    return 0;
}

struct stack_builder {
    struct vm *vm;
    uint64_t sp;
};

static uint64_t push_bytes(struct stack_builder *b, const void *data, size_t len)
{
    b->sp -= len;
    memcpy(b->vm->mem + b->sp, data, len);
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

static int build_stack(struct vm *vm, const struct elf_info *elf, uint64_t bias,
                       const char *execfn, char *const argv[], char *const envp[],
                       uint64_t stack_top, uint64_t *sp_out)
{
    size_t argc = count(argv), envc = count(envp), strings = strlen(execfn) + 1;
    for (size_t i = 0; i < argc; i++)
        strings += strlen(argv[i]) + 1;
    for (size_t i = 0; i < envc; i++)
        strings += strlen(envp[i]) + 1;
    if (strings > MAX_STRINGS_SIZE) {
        fprintf(stderr, "kvmserver: argument list and environment too long\n");
        return -1;
    }

    struct stack_builder b = { vm, stack_top };
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
        { AT_PHDR, elf->phdr_vaddr ? elf->phdr_vaddr + bias : 0 },
        { AT_PHENT, elf->phentsize },
        { AT_PHNUM, elf->phnum },
        { AT_BASE, 0 },
        { AT_FLAGS, 0 },
        { AT_ENTRY, elf->entry + bias },
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
    b.sp -= words * 8;
    b.sp &= ~15ull;                       /* rsp is 16-byte aligned at argc */
    uint64_t *w = (uint64_t *)(vm->mem + b.sp);
    *w++ = argc;
    for (size_t i = 0; i < argc; i++)
        *w++ = argv_at[i];
    *w++ = 0;
    for (size_t i = 0; i < envc; i++)
        *w++ = envp_at[i];
    *w++ = 0;
    memcpy(w, auxv, sizeof auxv);
    free(argv_at);
    *sp_out = b.sp;
    return 0;
}

int load_program(struct vm *vm, const char *path, char *const argv[], char *const envp[],
                 uint64_t pie_base, struct load_info *out)
{
    size_t size = 0;
    uint8_t *image = read_file(path, &size);
    if (!image)
        return -1;
    int rc = -1;
    struct elf_info elf;
    char err[160];
    uint64_t stack_top = page_down(vm->user_end - (64 << 10));
    uint64_t stack_low = stack_top - LOADER_STACK_SIZE;
    if (elf_parse(image, size, stack_low, &elf, err, sizeof err) < 0) {
        fprintf(stderr, "kvmserver: %s: not a loadable x86-64 ELF program: %s\n", path, err);
        goto out;
    }
    if (elf.has_interp) {
        fprintf(stderr, "kvmserver: %s: dynamically linked (interpreter %s); only static "
                "programs (gcc -static or -static-pie) can run so far\n", path, elf.interp);
        goto out;
    }
    uint64_t bias = elf.pie ? page_down(pie_base) - elf.span_start : 0;
    if (elf.pie && (pie_base < SYSTEM_AREA_END || elf.span_end + bias > stack_low)) {
        fprintf(stderr, "kvmserver: %s: does not fit the guest address space at %#llx\n",
                path, (unsigned long long)pie_base);
        goto out;
    }
    if (map_segments(vm, image, &elf, bias) < 0) {
        fprintf(stderr, "kvmserver: %s: cannot map its segments\n", path);
        goto out;
    }
    if (vm_map(vm, stack_low, LOADER_STACK_SIZE,
               PROT_READ | PROT_WRITE | (elf.exec_stack ? PROT_EXEC : 0)) < 0) {
        fprintf(stderr, "kvmserver: cannot map the guest stack\n");
        goto out;
    }
    if (build_stack(vm, &elf, bias, path, argv, envp, stack_top, &out->sp) < 0)
        goto out;
    out->entry = elf.entry + bias;
    out->image_end = elf.span_end + bias;
    out->stack_low = stack_low;
    rc = 0;
out:
    free(image);
    return rc;
}
