/* Program loading (see load_program in engine.h). */
#include "vm/engine.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "base/units.h"
#include "vm/elf.h"
#include "vm/layout.h"
#include "vm/vm.h"

#define MAX_PROGRAM_SIZE (1ull << 31)
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

int load_program(struct vm *vm, const char *path, uint64_t dylink_base, struct load_info *out)
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
    out->program_entry = prog.elf.entry + prog.bias;
    out->phdr = prog.elf.phdr_vaddr ? prog.elf.phdr_vaddr + prog.bias : 0;
    out->phnum = prog.elf.phnum;
    out->phent = prog.elf.phentsize;
    out->interp_bias = dynamic ? interp.bias : 0;
    out->entry = dynamic ? interp.elf.entry + interp.bias : out->program_entry;
    out->image_end = image_end(&prog);
    if (dynamic && image_end(&interp) > out->image_end)
        out->image_end = image_end(&interp);
    out->stack_low = stack_low;
    out->stack_top = stack_top;
    out->program_base = prog.base;
    out->interp_base = dynamic ? interp.base : 0;
    rc = 0;
out:
    free(prog.bytes);
    free(interp.bytes);
    return rc;
}
