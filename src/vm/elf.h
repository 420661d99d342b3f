/* Parser and validator for the program's ELF image. Pure host code: no KVM, no I/O.
 * The image is untrusted: elf_parse() checks every field the loader relies on, so that a
 * loader may use elf_info without further bounds checks on the file. */
#ifndef KVMS_ELF_H
#define KVMS_ELF_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ELF_MAX_LOADS 16

struct elf_load {            /* one PT_LOAD with memsz > 0 */
    uint64_t vaddr, memsz;   /* as in the header (unrelocated) */
    uint64_t offset, filesz; /* [offset, offset+filesz) lies inside the image */
    int prot;                /* PROT_READ|PROT_WRITE|PROT_EXEC from p_flags */
};

struct elf_info {
    bool pie;                /* ET_DYN: must be relocated by adding a load bias */
    uint64_t entry;          /* unrelocated */
    uint64_t phdr_vaddr;     /* where the program headers are in memory (PT_PHDR, or the
                              * PT_LOAD that contains e_phoff), 0 if not loaded */
    uint16_t phnum, phentsize;
    uint64_t span_start, span_end;   /* page-rounded [lowest vaddr, highest vaddr+memsz)
                                      * of the PT_LOADs */
    bool has_interp; char interp[256];  /* PT_INTERP path */
    bool exec_stack;          /* PT_GNU_STACK has PF_X (false without PT_GNU_STACK) */
    uint64_t tls_memsz, tls_align;      /* PT_TLS if present (informational) */
    size_t nloads; struct elf_load loads[ELF_MAX_LOADS];
};

/* Parses and validates an ELF image of `size` bytes. `max_vaddr` is the highest address
 * (exclusive) a segment may reach after relocation; for PIE the caller will add a bias, so
 * the check is span_end - span_start <= max_vaddr. Guarantees on success:
 *  - 1..ELF_MAX_LOADS loads, sorted by vaddr, whose page-rounded ranges do not overlap or
 *    share a page, each with filesz <= memsz and (vaddr - offset) % 4096 == 0;
 *  - ET_EXEC: SYSTEM_AREA_END <= span_start < span_end <= max_vaddr;
 *    ET_DYN:  span_end - span_start <= max_vaddr (the caller picks a bias that fits);
 *  - entry lies inside an executable load; phdr_vaddr, if not 0, inside a load.
 * Returns 0, or -1 with a one-line reason in err (e.g. "truncated program header table",
 * "segment 2 overlaps segment 1"; segments are numbered by program header index). */
int elf_parse(const void *image, size_t size, uint64_t max_vaddr, struct elf_info *out,
              char *err, size_t errlen);

#endif
