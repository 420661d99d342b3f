/* libFuzzer target for elf_parse(): besides memory errors (ASan/UBSan), checks on every
 * accepted input the guarantees elf.h promises the loader, so a wrong "accept" is a crash. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "vm/elf.h"
#include "vm/layout.h"

#define PAGE ((uint64_t)GUEST_PAGE_SIZE)

static void require(int ok)
{
    if (!ok)
        abort();
}

static void check_accepted(const struct elf_info *in, size_t size, uint64_t max_vaddr)
{
    require(in->nloads >= 1 && in->nloads <= ELF_MAX_LOADS);
    require(in->span_start % PAGE == 0 && in->span_end % PAGE == 0);
    require(in->span_start < in->span_end);
    if (in->pie)
        require(in->span_end - in->span_start <= max_vaddr);
    else
        require(in->span_start >= SYSTEM_AREA_END && in->span_end <= max_vaddr);

    uint64_t prev_end = 0, total = 0;
    int entry_ok = 0, phdr_ok = in->phdr_vaddr == 0;
    for (size_t i = 0; i < in->nloads; i++) {
        const struct elf_load *l = &in->loads[i];
        require(l->memsz > 0 && l->filesz <= l->memsz);
        require(l->offset <= size && l->filesz <= size - l->offset);
        require((l->vaddr - l->offset) % PAGE == 0);
        require(l->vaddr >= in->span_start &&
                l->vaddr - in->span_start <= in->span_end - in->span_start);
        require(l->memsz <= in->span_end - l->vaddr);
        require((l->prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC)) == 0);
        if (i > 0)
            require(l->vaddr / PAGE * PAGE >= prev_end);
        prev_end = (l->vaddr + l->memsz + PAGE - 1) / PAGE * PAGE;
        total += l->memsz;
        if (in->entry >= l->vaddr && in->entry - l->vaddr < l->memsz && (l->prot & PROT_EXEC))
            entry_ok = 1;
        if (in->phdr_vaddr >= l->vaddr && in->phdr_vaddr - l->vaddr < l->memsz)
            phdr_ok = 1;
    }
    require(total <= in->span_end - in->span_start);
    require(entry_ok && phdr_ok);
    require(in->phentsize == 56 && in->phnum >= 1);
    if (in->has_interp)
        require(in->interp[0] != '\0' && memchr(in->interp, '\0', sizeof(in->interp)) != NULL);
    require(in->tls_align == 0 || (in->tls_align & (in->tls_align - 1)) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct elf_info info;
    char err[128];
    /* The limits the engine uses in practice, and a small one the input picks, which makes
     * the address-limit checks reachable. */
    uint64_t limits[] = { 1ull << 47, (uint64_t)(size ? data[size - 1] : 0) << 16 };
    for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
        if (elf_parse(data, size, limits[i], &info, err, sizeof(err)) == 0)
            check_accepted(&info, size, limits[i]);
        else
            require(err[0] != '\0' && memchr(err, '\0', sizeof(err)) != NULL);
    }
    return 0;
}
