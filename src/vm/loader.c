/* Program loading (see loader.h). */
#include "vm/engine.h"

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

#include "base/log.h"
#include "base/units.h"
#include "vm/elf.h"
#include "vm/layout.h"
#include "vm/vm.h"

#define MAX_PROGRAM_SIZE (1ull << 31)
#define MAX_STRINGS_SIZE (1ull << 20)   /* argv + envp bytes, as a sane cap */
#define DYN_ALIGN (2ull << 20)          /* a PIE program goes at a 2 MiB boundary */

static uint64_t page_down(uint64_t x) { return x & ~(PAGE - 1); }
static uint64_t page_up(uint64_t x) { return (x + PAGE - 1) & ~(PAGE - 1); }
static uint64_t dyn_align_up(uint64_t x) { return (x + DYN_ALIGN - 1) & ~(DYN_ALIGN - 1); }

static void *read_file(const char *path, size_t *size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        log_error("%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    void *buf = NULL;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > MAX_PROGRAM_SIZE) {
        log_error("%s: not a regular file of a loadable size", path);
        goto out;
    }
    buf = malloc(st.st_size ? (size_t)st.st_size : 1);
    size_t got = 0;
    while (buf && got < (size_t)st.st_size) {
        ssize_t n = read(fd, (char *)buf + got, (size_t)st.st_size - got);
        if (n <= 0) {
            log_error("%s: read failed: %s", path,
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

/* What the auxiliary vector says about the loaded images. */
struct aux_images {
    uint64_t phdr, phnum, phent;   /* the program's headers in memory */
    uint64_t entry;                /* the program's entry (not the interpreter's) */
    uint64_t interp_base;          /* AT_BASE: 0 without an interpreter */
};

static int build_stack(struct vm *vm, const struct aux_images *img, const char *execfn,
                       char *const argv[], char *const envp[], uint64_t stack_top,
                       uint64_t *sp_out)
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
        { AT_PHDR, img->phdr },
        { AT_PHENT, img->phent },
        { AT_PHNUM, img->phnum },
        { AT_BASE, img->interp_base },
        { AT_FLAGS, 0 },
        { AT_ENTRY, img->entry },
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

/* One ELF file read into host memory and validated. */
struct image {
    const char *path;
    uint8_t *bytes;
    size_t size;
    struct elf_info elf;
    uint64_t base;     /* where its lowest page goes */
    uint64_t bias;     /* added to every vaddr: base - span_start (0 for ET_EXEC) */
};

static int read_image(struct image *im, const char *path, uint64_t max_vaddr)
{
    char err[160];
    im->path = path;
    im->bytes = read_file(path, &im->size);
    if (!im->bytes)
        return -1;
    if (elf_parse(im->bytes, im->size, max_vaddr, &im->elf, err, sizeof err) < 0) {
        log_error("%s: not a loadable x86-64 ELF program: %s", path, err);
        return -1;
    }
    return 0;
}

static uint64_t span_size(const struct image *im)
{
    return im->elf.span_end - im->elf.span_start;
}

/* [base, base+size) lies in the program's part of the address space, below the stack. */
static bool fits(uint64_t base, uint64_t size, uint64_t limit)
{
    return base >= SYSTEM_AREA_END && base <= limit && size <= limit - base;
}

/* Puts the image at `base` (page-aligned; ignored for ET_EXEC, which stays where it was
 * linked). elf_parse guaranteed that an ET_EXEC image fits below the stack. */
static int place(struct image *im, uint64_t base, uint64_t limit)
{
    if (!im->elf.pie) {
        im->base = im->elf.span_start;
        im->bias = 0;
        return 0;
    }
    if (!fits(base, span_size(im), limit)) {
        log_error("%s: does not fit the guest address space at %#llx",
                im->path, (unsigned long long)base);
        return -1;
    }
    im->base = base;
    im->bias = base - im->elf.span_start;   /* modulo 2^64: vaddr + bias lands in range */
    return 0;
}

static uint64_t image_end(const struct image *im)
{
    return im->base + span_size(im);
}

static bool overlap(uint64_t a, uint64_t a_end, uint64_t b, uint64_t b_end)
{
    return a < b_end && b < a_end;
}

/* Chooses distinct places for a dynamic program and its interpreter. The interpreter goes
 * at the hint; a PIE program just above it, at the next 2 MiB boundary; an ET_EXEC program
 * where it was linked, with the interpreter moved above it if the hint collides. */
static int place_dynamic(struct image *prog, struct image *interp, uint64_t hint,
                         uint64_t limit)
{
    hint = page_down(hint);
    if (!prog->elf.pie) {
        place(prog, 0, limit);
        uint64_t at = hint;
        if (hint > UINT64_MAX - span_size(interp) ||
            overlap(hint, hint + span_size(interp), prog->base, image_end(prog)))
            at = dyn_align_up(image_end(prog));
        return place(interp, at, limit);
    }
    if (place(interp, hint, limit) < 0)
        return -1;
    return place(prog, dyn_align_up(image_end(interp)), limit);
}

/* Reads the interpreter named by the program's PT_INTERP. The path comes from the program
 * the user chose to run, as it would for execve; only absolute paths are taken, so the
 * outcome does not depend on the working directory. */
static int read_interpreter(const struct image *prog, struct image *interp, uint64_t limit)
{
    const char *path = prog->elf.interp;
    if (path[0] != '/') {
        log_error("%s: interpreter path %s is not absolute", prog->path,
                path);
        return -1;
    }
    if (!prog->elf.phdr_vaddr) {
        /* ld.so finds the program's dynamic section through AT_PHDR. */
        log_error("%s: dynamically linked but its program headers are not "
                "in a loaded segment", prog->path);
        return -1;
    }
    if (read_image(interp, path, limit) < 0)
        return -1;
    if (!interp->elf.pie || interp->elf.has_interp) {
        log_error("%s: interpreter %s is not a self-contained shared object "
                "(ET_DYN without PT_INTERP)", prog->path, path);
        return -1;
    }
    return 0;
}

int load_program(struct vm *vm, const char *path, char *const argv[], char *const envp[],
                 uint64_t dylink_base, struct load_info *out)
{
    struct image prog = { 0 }, interp = { 0 };
    int rc = -1;
    uint64_t stack_top = page_down(vm->user_end - (64 << 10));
    uint64_t stack_low = stack_top - LOADER_STACK_SIZE;
    if (read_image(&prog, path, stack_low) < 0)
        goto out;
    bool dynamic = prog.elf.has_interp;
    if (dynamic) {
        if (read_interpreter(&prog, &interp, stack_low) < 0 ||
            place_dynamic(&prog, &interp, dylink_base, stack_low) < 0)
            goto out;
    } else if (place(&prog, page_down(dylink_base), stack_low) < 0) {
        goto out;
    }
    if (map_segments(vm, prog.bytes, &prog.elf, prog.bias) < 0 ||
        (dynamic && map_segments(vm, interp.bytes, &interp.elf, interp.bias) < 0)) {
        log_error("%s: cannot map its segments", path);
        goto out;
    }
    if (vm_map(vm, stack_low, LOADER_STACK_SIZE,
               PROT_READ | PROT_WRITE | (prog.elf.exec_stack ? PROT_EXEC : 0)) < 0) {
        log_error("cannot map the guest stack");
        goto out;
    }
    struct aux_images aux = {
        .phdr = prog.elf.phdr_vaddr ? prog.elf.phdr_vaddr + prog.bias : 0,
        .phnum = prog.elf.phnum,
        .phent = prog.elf.phentsize,
        .entry = prog.elf.entry + prog.bias,
        .interp_base = dynamic ? interp.bias : 0,
    };
    if (build_stack(vm, &aux, path, argv, envp, stack_top, &out->sp) < 0)
        goto out;
    out->entry = dynamic ? interp.elf.entry + interp.bias : aux.entry;
    out->image_end = image_end(&prog);
    if (dynamic && image_end(&interp) > out->image_end)
        out->image_end = image_end(&interp);
    out->stack_low = stack_low;
    out->program_base = prog.base;
    out->interp_base = dynamic ? interp.base : 0;
    rc = 0;
out:
    free(prog.bytes);
    free(interp.bytes);
    return rc;
}
