/* ELF64 x86-64 program parser. Every header is copied out of the image with memcpy (the
 * image may be unaligned) after its range has been checked, and every sum of two untrusted
 * 64-bit values is checked for overflow before use. */
#include "vm/elf.h"

#include <elf.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "vm/layout.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "headers are read in host order");

#define PAGE_MASK_LOW ((uint64_t)GUEST_PAGE_SIZE - 1)
/* Linux's limit too: a program header table of at most 64 KiB. It also excludes PN_XNUM. */
#define MAX_PHNUM (65536 / sizeof(Elf64_Phdr))

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* [off, off+len) lies inside an image of `size` bytes; no overflow possible. */
static bool in_file(uint64_t off, uint64_t len, size_t size)
{
    return off <= size && len <= size - off;
}

static uint64_t page_down(uint64_t addr)
{
    return addr & ~PAGE_MASK_LOW;
}

/* Callers guarantee addr <= UINT64_MAX - PAGE_MASK_LOW. */
static uint64_t page_up(uint64_t addr)
{
    return (addr + PAGE_MASK_LOW) & ~PAGE_MASK_LOW;
}

static int prot_of(uint32_t p_flags)
{
    return ((p_flags & PF_R) ? PROT_READ : 0) | ((p_flags & PF_W) ? PROT_WRITE : 0) |
           ((p_flags & PF_X) ? PROT_EXEC : 0);
}

static int check_header(const Elf64_Ehdr *eh, size_t size, char *err, size_t errlen)
{
    const unsigned char *id = eh->e_ident;
    if (id[EI_CLASS] != ELFCLASS64)
        return fail(err, errlen, "not a 64-bit ELF file");
    if (id[EI_DATA] != ELFDATA2LSB)
        return fail(err, errlen, "not a little-endian ELF file");
    if (id[EI_VERSION] != EV_CURRENT || eh->e_version != EV_CURRENT)
        return fail(err, errlen, "unknown ELF version");
    /* GNU is what binutils writes when the program uses IFUNCs (glibc static). */
    if (id[EI_OSABI] != ELFOSABI_SYSV && id[EI_OSABI] != ELFOSABI_GNU)
        return fail(err, errlen, "not a Linux ELF file (OS ABI %u)", id[EI_OSABI]);
    if (eh->e_machine != EM_X86_64)
        return fail(err, errlen, "not an x86-64 program (machine %u)", eh->e_machine);
    if (eh->e_type != ET_EXEC && eh->e_type != ET_DYN)
        return fail(err, errlen, "not an executable (ELF type %u)", eh->e_type);
    if (eh->e_ehsize != sizeof(Elf64_Ehdr))
        return fail(err, errlen, "bad ELF header size %u", eh->e_ehsize);
    if (eh->e_phentsize != sizeof(Elf64_Phdr))
        return fail(err, errlen, "bad program header size %u", eh->e_phentsize);
    if (eh->e_phoff == 0 || eh->e_phnum == 0)
        return fail(err, errlen, "no program header table");
    if (eh->e_phnum > MAX_PHNUM)
        return fail(err, errlen, "too many program headers (%u)", eh->e_phnum);
    if (!in_file(eh->e_phoff, (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr), size))
        return fail(err, errlen, "truncated program header table");
    return 0;
}

/* Checks one PT_LOAD by itself; its place among the others is checked by the caller. */
static int check_load(const Elf64_Phdr *ph, unsigned idx, bool pie, size_t size,
                      uint64_t max_vaddr, char *err, size_t errlen)
{
    if (ph->p_filesz > ph->p_memsz)
        return fail(err, errlen, "segment %u: file size exceeds memory size", idx);
    if (!in_file(ph->p_offset, ph->p_filesz, size))
        return fail(err, errlen, "segment %u: file range past end of file", idx);
    /* The end must also survive rounding up to a page. */
    if (ph->p_vaddr > UINT64_MAX - PAGE_MASK_LOW ||
        ph->p_memsz > UINT64_MAX - PAGE_MASK_LOW - ph->p_vaddr)
        return fail(err, errlen, "segment %u: address range overflows", idx);
    if ((ph->p_vaddr - ph->p_offset) & PAGE_MASK_LOW)
        return fail(err, errlen, "segment %u: address and file offset differ modulo the page size",
                    idx);
    if (pie ? ph->p_memsz > max_vaddr : ph->p_vaddr + ph->p_memsz > max_vaddr)
        return fail(err, errlen, "segment %u: does not fit below the address limit 0x%llx", idx,
                    (unsigned long long)max_vaddr);
    /* Linux's vm.mmap_min_addr: the system area lives there. */
    if (!pie && ph->p_memsz && ph->p_vaddr < SYSTEM_AREA_END)
        return fail(err, errlen, "segment %u: below the minimum address 0x%x", idx,
                    SYSTEM_AREA_END);
    return 0;
}

static int read_interp(const uint8_t *img, size_t size, const Elf64_Phdr *ph, unsigned idx,
                       struct elf_info *out, char *err, size_t errlen)
{
    if (!in_file(ph->p_offset, ph->p_filesz, size))
        return fail(err, errlen, "segment %u: interpreter path past end of file", idx);
    if (ph->p_filesz < 2 || ph->p_filesz > sizeof(out->interp))
        return fail(err, errlen, "segment %u: bad interpreter path length %llu", idx,
                    (unsigned long long)ph->p_filesz);
    const char *path = (const char *)img + ph->p_offset;
    if (path[ph->p_filesz - 1] != '\0')
        return fail(err, errlen, "segment %u: interpreter path not NUL-terminated", idx);
    if (path[0] == '\0')
        return fail(err, errlen, "segment %u: empty interpreter path", idx);
    memcpy(out->interp, path, ph->p_filesz);
    out->has_interp = true;
    return 0;
}

/* The load whose memory holds [vaddr, vaddr+len), or NULL. */
static const struct elf_load *load_holding(const struct elf_info *info, uint64_t vaddr,
                                           uint64_t len)
{
    for (size_t i = 0; i < info->nloads; i++) {
        const struct elf_load *l = &info->loads[i];
        if (vaddr >= l->vaddr && vaddr - l->vaddr <= l->memsz &&
            len <= l->memsz - (vaddr - l->vaddr))
            return l;
    }
    return NULL;
}

/* Where the program header table is in memory (the guest's AT_PHDR), 0 if not loaded. */
static int find_phdr(const Elf64_Ehdr *eh, const Elf64_Phdr *pt_phdr, struct elf_info *out,
                     char *err, size_t errlen)
{
    uint64_t table = (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr);
    if (pt_phdr) {
        if (!load_holding(out, pt_phdr->p_vaddr, table))
            return fail(err, errlen, "PT_PHDR outside any PT_LOAD");
        out->phdr_vaddr = pt_phdr->p_vaddr;
        return 0;
    }
    for (size_t i = 0; i < out->nloads; i++) {
        const struct elf_load *l = &out->loads[i];
        if (eh->e_phoff >= l->offset && eh->e_phoff - l->offset <= l->filesz &&
            table <= l->filesz - (eh->e_phoff - l->offset)) {
            out->phdr_vaddr = l->vaddr + (eh->e_phoff - l->offset);
            return 0;
        }
    }
    return 0;
}

int elf_parse(const void *image, size_t size, uint64_t max_vaddr, struct elf_info *out,
              char *err, size_t errlen)
{
    const uint8_t *img = image;
    memset(out, 0, sizeof(*out));
    if (err && errlen)
        err[0] = '\0';

    if (!img || size < SELFMAG || memcmp(img, ELFMAG, SELFMAG) != 0)
        return fail(err, errlen, "not an ELF file");
    if (size < sizeof(Elf64_Ehdr))
        return fail(err, errlen, "truncated ELF header");
    Elf64_Ehdr eh;
    memcpy(&eh, img, sizeof(eh));
    if (check_header(&eh, size, err, errlen))
        return -1;

    out->pie = eh.e_type == ET_DYN;
    out->entry = eh.e_entry;
    out->phnum = eh.e_phnum;
    out->phentsize = eh.e_phentsize;

    Elf64_Phdr pt_phdr = {0};
    bool seen_phdr = false, seen_tls = false, seen_stack = false;
    unsigned prev_load = 0;
    uint64_t prev_end = 0;   /* page-rounded end of the previous non-empty PT_LOAD */

    for (unsigned i = 0; i < eh.e_phnum; i++) {
        Elf64_Phdr ph;
        memcpy(&ph, img + eh.e_phoff + (uint64_t)i * sizeof(ph), sizeof(ph));
        switch (ph.p_type) {
        case PT_LOAD:
            if (check_load(&ph, i, out->pie, size, max_vaddr, err, errlen))
                return -1;
            if (ph.p_memsz == 0)
                break;   /* maps nothing, as in Linux */
            if (out->nloads > 0 && page_down(ph.p_vaddr) < prev_end) {
                if (ph.p_vaddr < out->loads[out->nloads - 1].vaddr)
                    return fail(err, errlen, "segment %u is below segment %u: PT_LOADs not sorted",
                                i, prev_load);
                /* Shared pages would need merged rights; no linker here emits them. */
                return fail(err, errlen, "segment %u overlaps segment %u", i, prev_load);
            }
            if (out->nloads == ELF_MAX_LOADS)
                return fail(err, errlen, "more than %d PT_LOAD segments", ELF_MAX_LOADS);
            out->loads[out->nloads++] = (struct elf_load){
                .vaddr = ph.p_vaddr, .memsz = ph.p_memsz,
                .offset = ph.p_offset, .filesz = ph.p_filesz,
                .prot = prot_of(ph.p_flags),
            };
            prev_load = i;
            prev_end = page_up(ph.p_vaddr + ph.p_memsz);
            break;
        case PT_INTERP:
            if (out->has_interp)
                return fail(err, errlen, "more than one PT_INTERP");
            if (read_interp(img, size, &ph, i, out, err, errlen))
                return -1;
            break;
        case PT_PHDR:
            if (seen_phdr)
                return fail(err, errlen, "more than one PT_PHDR");
            seen_phdr = true;
            pt_phdr = ph;
            break;
        case PT_TLS:
            if (seen_tls)
                return fail(err, errlen, "more than one PT_TLS");
            seen_tls = true;
            if (ph.p_filesz > ph.p_memsz || ph.p_memsz > max_vaddr)
                return fail(err, errlen, "segment %u: bad PT_TLS size", i);
            if (ph.p_align & (ph.p_align - 1))
                return fail(err, errlen, "segment %u: PT_TLS alignment not a power of two", i);
            out->tls_memsz = ph.p_memsz;
            out->tls_align = ph.p_align;
            break;
        case PT_GNU_STACK:
            if (seen_stack)
                return fail(err, errlen, "more than one PT_GNU_STACK");
            seen_stack = true;
            out->exec_stack = (ph.p_flags & PF_X) != 0;
            break;
        default:
            break;   /* PT_DYNAMIC, PT_NOTE, PT_GNU_RELRO...: the guest's own business */
        }
    }

    if (out->nloads == 0)
        return fail(err, errlen, "no loadable segment");
    /* Sorted and disjoint, so the first and last loads bound the span, and the sum of the
     * sizes cannot exceed it. */
    const struct elf_load *last = &out->loads[out->nloads - 1];
    out->span_start = page_down(out->loads[0].vaddr);
    out->span_end = page_up(last->vaddr + last->memsz);
    if (out->pie ? out->span_end - out->span_start > max_vaddr : out->span_end > max_vaddr)
        return fail(err, errlen, "program does not fit below the address limit 0x%llx",
                    (unsigned long long)max_vaddr);

    const struct elf_load *entry_load = load_holding(out, out->entry, 1);
    if (!entry_load)
        return fail(err, errlen, "entry point 0x%llx outside any segment",
                    (unsigned long long)out->entry);
    if (!(entry_load->prot & PROT_EXEC))
        return fail(err, errlen, "entry point 0x%llx in a non-executable segment",
                    (unsigned long long)out->entry);

    return find_phdr(&eh, seen_phdr ? &pt_phdr : NULL, out, err, errlen);
}
