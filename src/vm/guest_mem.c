/* The one door to guest memory (see guest_mem.h). */
#include "vm/guest_mem.h"

#include <errno.h>
#include <string.h>

#include "base/units.h"
#include "vm/vm.h"

void *gm_span(struct vm *vm, uint64_t gva, size_t len, int access)
{
    /* Page 0 is never the program's data, even where it holds the rewritten sites' sled
     * unguarded by a protection key (syscall_sites.h): EFAULT, as on Linux. */
    if (gva < PAGE || gva > vm->user_end || len > vm->user_end - gva)
        return NULL;
    uint64_t need = PTE_P | PTE_U | ((access & GM_WRITE) ? PTE_W : 0);
    uint64_t first = gva & ~(PAGE - 1);
    uint64_t end = gva + len;
    /* Identity mapping: each page must map to itself, or a host pointer computed from gva
     * would not be what the guest sees. */
    for (uint64_t page = first; page < end || page == first; page += PAGE) {
        uint64_t pte = pt_lookup(&vm->pt, page);
        /* A protection key on a page means its data is not the program's to touch. */
        if ((pte & need) != need || (pte & PTE_ADDR_MASK) != page || (pte & PTE_PKEY_MASK))
            return NULL;
        if (len == 0)
            break;
    }
    if ((access & GM_WRITE) && vm->origin)
        ws_add_range(&vm->ws, gva, len);    /* host writes carry no D bit */
    return vm->mem + gva;
}

int gm_read(struct vm *vm, void *dst, uint64_t gva, size_t len)
{
    const void *src = gm_span(vm, gva, len, GM_READ);
    if (!src)
        return -EFAULT;
    memcpy(dst, src, len);
    return 0;
}

int gm_write(struct vm *vm, uint64_t gva, const void *src, size_t len)
{
    void *dst = gm_span(vm, gva, len, GM_WRITE);
    if (!dst)
        return -EFAULT;
    memcpy(dst, src, len);
    return 0;
}

long gm_read_str(struct vm *vm, char *dst, uint64_t gva, size_t cap)
{
    size_t copied = 0;
    while (copied < cap) {
        /* Copy up to the end of the current page: the next page may not be mapped. */
        uint64_t at = gva + copied;
        if (at < gva)
            return -EFAULT;
        size_t chunk = PAGE - (at & (PAGE - 1));
        if (chunk > cap - copied)
            chunk = cap - copied;
        const char *src = gm_span(vm, at, chunk, GM_READ);
        if (!src)
            return -EFAULT;
        const char *nul = memchr(src, 0, chunk);
        size_t n = nul ? (size_t)(nul - src) : chunk;
        memcpy(dst + copied, src, n);
        copied += n;
        if (nul) {
            dst[copied] = 0;
            return (long)copied;
        }
    }
    return -ENAMETOOLONG;
}

int gm_read_u64(struct vm *vm, uint64_t gva, uint64_t *out)
{
    return gm_read(vm, out, gva, sizeof *out);
}

int gm_write_u64(struct vm *vm, uint64_t gva, uint64_t v)
{
    return gm_write(vm, gva, &v, sizeof v);
}
