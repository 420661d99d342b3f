/* Memory calls: brk and the mmap area. The engine maps pages (vm_map); this file decides
 * where, deterministically, and keeps the free list. */
#include "linux/mm.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/units.h"
#include "linux/process.h"
#include "linux/syscalls.h"
#include "vm/engine.h"
#include "vm/guest_mem.h"
#include "vm/layout.h"

static uint64_t page_up(uint64_t x) { return (x + PAGE - 1) & ~(PAGE - 1); }

/* Removes [start, end) from the free list (it is being used). */
static void take_range(struct lx_mm *mm, uint64_t start, uint64_t end)
{
    if (end > mm->mmap_top) {
        uint64_t old_top = mm->mmap_top;
        mm->mmap_top = end;
        if (start > old_top)
            mm_free(mm, old_top, start - old_top);   /* the gap below stays free */
    }
    size_t out = 0;
    for (size_t i = 0; i < mm->nfree; i++) {
        struct lx_range r = mm->free[i];
        if (r.end <= start || r.start >= end) {
            mm->free[out++] = r;
        } else if (r.start < start && r.end > end) {
            /* [start, end) lies inside this one range: split it in two. */
            mm->free[out] = (struct lx_range){ r.start, start };
            if (mm->nfree < LX_MM_MAX_RANGES) {
                memmove(&mm->free[out + 2], &mm->free[i + 1],
                        (mm->nfree - i - 1) * sizeof mm->free[0]);
                mm->free[out + 1] = (struct lx_range){ end, r.end };
                mm->nfree = mm->nfree + 1 - (i - out);
                return;
            }
            out++;       /* no room for the upper part: it leaks from the allocator */
        } else if (r.start < start) {
            mm->free[out++] = (struct lx_range){ r.start, start };
        } else if (r.end > end) {
            mm->free[out++] = (struct lx_range){ end, r.end };
        }
    }
    mm->nfree = out;
}

uint64_t mm_alloc(struct lx_mm *mm, uint64_t len)
{
    for (size_t i = 0; i < mm->nfree; i++) {
        if (mm->free[i].end - mm->free[i].start >= len) {
            uint64_t at = mm->free[i].start;
            take_range(mm, at, at + len);
            return at;
        }
    }
    if (mm->mmap_top > mm->mmap_limit || len > mm->mmap_limit - mm->mmap_top)
        return 0;      /* (a MAP_FIXED mapping may have taken the top past the limit) */
    uint64_t at = mm->mmap_top;
    mm->mmap_top += len;
    return at;
}

void mm_free(struct lx_mm *mm, uint64_t addr, uint64_t len)
{
    uint64_t start = addr, end = addr + len;
    if (start < mm->mmap_base)
        start = mm->mmap_base;
    if (end > mm->mmap_top)
        end = mm->mmap_top;
    if (start >= end)
        return;
    /* Insert sorted, then merge neighbours. */
    size_t i = 0;
    while (i < mm->nfree && mm->free[i].start < start)
        i++;
    if (mm->nfree == LX_MM_MAX_RANGES)
        return;            /* the range leaks from the allocator; memory is still released */
    memmove(&mm->free[i + 1], &mm->free[i], (mm->nfree - i) * sizeof mm->free[0]);
    mm->free[i] = (struct lx_range){ start, end };
    mm->nfree++;
    size_t out = 0;
    for (size_t j = 0; j < mm->nfree; j++) {
        if (out && mm->free[out - 1].end >= mm->free[j].start) {
            if (mm->free[j].end > mm->free[out - 1].end)
                mm->free[out - 1].end = mm->free[j].end;
        } else {
            mm->free[out++] = mm->free[j];
        }
    }
    mm->nfree = out;
    /* A free range touching the top lowers it: the area stays compact. */
    if (out && mm->free[out - 1].end == mm->mmap_top) {
        mm->mmap_top = mm->free[out - 1].start;
        mm->nfree--;
    }
}

/* ---- MADV_WIPEONFORK ranges: unmapped or replaced memory leaves the list, as on Linux
 * the flag goes with the mapping. Where the list has no room to split a range, the range
 * stays whole: wiping more than asked is safe, a kept secret is not. */

static void wipe_remove(struct lx_mm *mm, uint64_t start, uint64_t end)
{
    for (size_t i = 0; i < mm->nwipe; i++) {
        struct lx_range *r = &mm->wipe[i];
        if (r->end <= start || r->start >= end)
            continue;
        if (r->start < start && r->end > end) {
            if (mm->nwipe == LX_MM_MAX_WIPE)
                return;
            memmove(r + 1, r, (mm->nwipe - i) * sizeof *r);
            mm->nwipe++;
            r[0].end = start;
            r[1].start = end;
            return;
        }
        if (r->start < start) {
            r->end = start;
        } else if (r->end > end) {
            r->start = end;
        } else {
            memmove(r, r + 1, (mm->nwipe - i - 1) * sizeof *r);
            mm->nwipe--;
            i--;
        }
    }
}

static long wipe_add(struct lx_mm *mm, uint64_t start, uint64_t end)
{
    for (size_t i = 0; i < mm->nwipe; i++)
        if (mm->wipe[i].start <= start && mm->wipe[i].end >= end)
            return 0;                   /* already flagged */
    wipe_remove(mm, start, end);
    size_t i = 0;
    while (i < mm->nwipe && mm->wipe[i].start < start)
        i++;
    bool joins_below = i > 0 && mm->wipe[i - 1].end == start;
    bool joins_above = i < mm->nwipe && mm->wipe[i].start == end;
    if (joins_below && joins_above) {
        mm->wipe[i - 1].end = mm->wipe[i].end;
        memmove(&mm->wipe[i], &mm->wipe[i + 1], (mm->nwipe - i - 1) * sizeof mm->wipe[0]);
        mm->nwipe--;
    } else if (joins_below) {
        mm->wipe[i - 1].end = end;
    } else if (joins_above) {
        mm->wipe[i].start = start;
    } else {
        if (mm->nwipe == LX_MM_MAX_WIPE)
            return -EAGAIN;
        memmove(&mm->wipe[i + 1], &mm->wipe[i], (mm->nwipe - i) * sizeof mm->wipe[0]);
        mm->wipe[i] = (struct lx_range){ start, end };
        mm->nwipe++;
    }
    return 0;
}

/* mremap moved or grew [old, old+len) to `to`: the flag goes with the memory. */
static void wipe_follow(struct lx_mm *mm, uint64_t old, uint64_t len, uint64_t to,
                        uint64_t new_len)
{
    struct lx_range moved[LX_MM_MAX_WIPE];
    size_t n = 0;
    for (size_t i = 0; i < mm->nwipe; i++) {
        uint64_t s = mm->wipe[i].start > old ? mm->wipe[i].start : old;
        uint64_t e = mm->wipe[i].end < old + len ? mm->wipe[i].end : old + len;
        if (s < e)
            moved[n++] = (struct lx_range){ to + (s - old), to + (e - old) };
    }
    /* The grown part belongs to the mapping's last page. */
    if (n && moved[n - 1].end == to + len)
        moved[n - 1].end = to + new_len;
    for (size_t i = 0; i < n; i++)
        wipe_add(mm, moved[i].start, moved[i].end);
}

void lx_mm_init(struct lx_mm *mm, const struct load_info *li)
{
    uint64_t room = li->stack_low - li->image_end;
    uint64_t brk_span = room / 4 < GIB ? room / 4 : GIB;
    memset(mm, 0, sizeof *mm);
    mm->brk_start = mm->brk_cur = mm->brk_mapped = li->image_end;
    mm->mmap_base = mm->mmap_top = (li->image_end + brk_span + 2 * MIB - 1) & ~(2 * MIB - 1);
    mm->brk_limit = mm->mmap_base;
    mm->mmap_limit = (li->stack_low - MIB) & ~(2 * MIB - 1);
}

void lx_mm_fork(struct lx_mm *dst, const struct lx_mm *src)
{
    memcpy(dst, src, offsetof(struct lx_mm, free));
    memcpy(dst->free, src->free, src->nfree * sizeof src->free[0]);
    dst->charged_bytes = 0;
}

void lx_mm_wipe_on_fork(struct lx_proc *p)
{
    for (size_t i = 0; i < p->mm.nwipe && i < LX_MM_MAX_WIPE; i++)
        vm_discard(p->vm, p->mm.wipe[i].start, p->mm.wipe[i].end - p->mm.wipe[i].start);
}

/* Counts memory the program maps. Past the limit the call fails with ENOMEM, as a boot
 * under --max-main-memory expects; a request VM's request is aborted instead. */
static bool charge(struct lx_proc *p, uint64_t bytes)
{
    uint64_t limit = p->server.memory_limit;
    if (limit && (bytes > limit || p->mm.charged_bytes > limit - bytes)) {
        if (p->server.limit_aborts)
            p->server.memory_exceeded = true;
        return false;
    }
    p->mm.charged_bytes += bytes;
    return true;
}

long sys_brk(struct lx_proc *p, const uint64_t a[6])
{
    struct lx_mm *mm = &p->mm;
    uint64_t want = a[0];
    if (want < mm->brk_start || want > mm->brk_limit)
        return (long)mm->brk_cur;
    uint64_t want_mapped = page_up(want);
    if (want_mapped > mm->brk_mapped) {
        if (!charge(p, want_mapped - mm->brk_mapped) || vm_map(p->vm, mm->brk_mapped, want_mapped - mm->brk_mapped, PROT_READ | PROT_WRITE))
            return (long)mm->brk_cur;
        mm->brk_mapped = want_mapped;
    } else if (want_mapped < page_up(mm->brk_cur)) {
        /* Shrinking: what grows back later must read as zeros. */
        vm_discard(p->vm, want_mapped, page_up(mm->brk_cur) - want_mapped);
        wipe_remove(mm, want_mapped, page_up(mm->brk_cur));
    }
    mm->brk_cur = want;
    return (long)want;
}

static bool range_ok(const struct lx_proc *p, uint64_t addr, uint64_t len)
{
    uint64_t end = vm_user_end(p->vm);
    return addr % PAGE == 0 && addr >= SYSTEM_AREA_END && addr <= end && len <= end - addr;
}

/* Fills a private file mapping by reading the file: no host mapping is shared. */
static long fill_from_file(struct lx_proc *p, uint64_t addr, uint64_t len, int guest_fd,
                           uint64_t offset)
{
    struct lx_fd *f = fdt_get(&p->fds, guest_fd);
    if (!f)
        return -EBADF;
    uint8_t *dst = vm_host_span(p->vm, addr, len);
    uint64_t done = 0;
    while (done < len) {
        ssize_t n = pread(f->host_fd, dst + done, len - done, (off_t)(offset + done));
        if (n < 0 && errno == EINTR)
            continue;      /* retry: returning early would leave the mapping half filled */
        if (n < 0)
            return -errno;
        if (n == 0)
            break;         /* past the end of the file: the rest stays zero */
        done += (uint64_t)n;
    }
    return 0;
}

/* Is any page of [addr, addr+len) mapped (MAP_FIXED_NOREPLACE must not replace it)? */
static bool range_in_use(struct lx_proc *p, uint64_t addr, uint64_t len)
{
    return vm_mapped_pages(p->vm, addr, len) != 0;
}

long sys_mmap(struct lx_proc *p, const uint64_t a[6])
{
    uint64_t addr = a[0], len = a[1];
    int prot = (int)a[2], flags = (int)a[3], fd = (int)a[4];
    uint64_t offset = a[5];
    int type = flags & MAP_TYPE;
    if (len == 0 || (type != MAP_PRIVATE && type != MAP_SHARED && type != MAP_SHARED_VALIDATE))
        return -EINVAL;
    if (prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC))
        return -EINVAL;
    if (offset % PAGE)
        return -EINVAL;
    bool anonymous = flags & MAP_ANONYMOUS;
    if (!anonymous && type != MAP_PRIVATE)
        return -ENODEV;    /* shared file mappings would write back to the host file */
    if (len > vm_user_end(p->vm))
        return -ENOMEM;
    len = page_up(len);

    /* Every check before any side effect: a failed call changes nothing. */
    struct lx_mm *mm = &p->mm;
    if (!anonymous && !fdt_get(&p->fds, fd))
        return -EBADF;
    bool fixed = flags & (MAP_FIXED | MAP_FIXED_NOREPLACE);
    if (fixed) {
        if (!range_ok(p, addr, len))
            return (flags & MAP_FIXED) ? -EINVAL : -ENOMEM;
        if (!(flags & MAP_FIXED) && range_in_use(p, addr, len))
            return -EEXIST;
    }
    /* A PROT_NONE reservation costs nothing until it is made accessible (mprotect charges
     * it then): runtimes reserve far more address space than they use. */
    bool accessible = prot != PROT_NONE;
    if (accessible && !charge(p, len))
        return -ENOMEM;
    if (fixed) {
        if (addr < mm->mmap_limit && addr + len > mm->mmap_base)
            take_range(mm, addr, addr + len);
        vm_discard(p->vm, addr, len);       /* MAP_FIXED replaces: new memory is zero */
        wipe_remove(mm, addr, addr + len);
    } else {
        addr = mm_alloc(mm, len);
        if (!addr) {
            if (accessible)
                mm->charged_bytes -= len;
            return -ENOMEM;
        }
    }
    if (!anonymous) {
        if (vm_map(p->vm, addr, len, PROT_READ | PROT_WRITE))
            return -ENOMEM;
        long err = fill_from_file(p, addr, len, fd, offset);
        if (err) {
            mm_free(mm, addr, len);
            return err;
        }
        if (prot != (PROT_READ | PROT_WRITE))
            vm_protect(p->vm, addr, len, prot);
        return (long)addr;
    }
    if (vm_map(p->vm, addr, len, prot))
        return -ENOMEM;
    return (long)addr;
}

long sys_munmap(struct lx_proc *p, const uint64_t a[6])
{
    uint64_t addr = a[0], len = page_up(a[1]);
    if (!a[1] || !range_ok(p, addr, len))
        return -EINVAL;
    /* What was usable is given back to the memory limit, or a long-lived VM that maps and
     * unmaps would run into it. */
    uint64_t usable = vm_mapped_pages(p->vm, addr, len) * PAGE;
    p->mm.charged_bytes -= usable < p->mm.charged_bytes ? usable : p->mm.charged_bytes;
    vm_unmap(p->vm, addr, len);
    mm_free(&p->mm, addr, len);
    wipe_remove(&p->mm, addr, addr + len);
    return 0;
}

long sys_mprotect(struct lx_proc *p, const uint64_t a[6])
{
    uint64_t addr = a[0], len = page_up(a[1]);
    int prot = (int)a[2];
    if (prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC | PROT_GROWSDOWN | PROT_GROWSUP))
        return -EINVAL;
    if (!range_ok(p, addr, len))
        return addr % PAGE ? -EINVAL : -ENOMEM;
    if (prot & (PROT_READ | PROT_WRITE | PROT_EXEC)) {
        /* Pages of a reservation that become usable now are charged now. */
        uint64_t newly = len - vm_mapped_pages(p->vm, addr, len) * PAGE;
        if (newly && !charge(p, newly))
            return -ENOMEM;
    }
    return vm_protect(p->vm, addr, len, prot & (PROT_READ | PROT_WRITE | PROT_EXEC)) ? -ENOMEM : 0;
}

/* The advice values Linux knows (6.x); any other is EINVAL, which BoringSSL and Zig's
 * CSPRNG probe for before they trust MADV_WIPEONFORK to work. */
static bool known_advice(int advice)
{
    return (advice >= 0 && advice <= MADV_DONTNEED) || (advice >= MADV_FREE && advice <= 25 /* COLLAPSE */) ||
           (advice >= 100 && advice <= 103);   /* HWPOISON, SOFT_OFFLINE, GUARD_* */
}

long sys_madvise(struct lx_proc *p, const uint64_t a[6])
{
    uint64_t addr = a[0], len = page_up(a[1]);
    int advice = (int)a[2];
    if (!known_advice(advice))
        return -EINVAL;
    if (advice == 100 || advice == 101)     /* MADV_HWPOISON, MADV_SOFT_OFFLINE */
        return -EPERM;                      /* CAP_SYS_ADMIN only */
    if (addr % PAGE || (a[1] && !len))
        return -EINVAL;
    if (!len)
        return 0;
    if (!range_ok(p, addr, len))
        return -ENOMEM;
    if (advice == MADV_DONTNEED || advice == MADV_FREE || advice == MADV_REMOVE)
        vm_discard(p->vm, addr, len);     /* private anonymous memory reads back as zeros */
    /* Fork detection (BoringSSL's) asks that every fork start with this memory zero: each
     * request VM generation is such a fork. */
    if (advice == MADV_WIPEONFORK)
        return wipe_add(&p->mm, addr, addr + len);
    if (advice == MADV_KEEPONFORK)
        wipe_remove(&p->mm, addr, addr + len);
    return 0;
}

long sys_msync(struct lx_proc *p, const uint64_t a[6])
{
    uint64_t addr = a[0], len = page_up(a[1]);
    int flags = (int)a[2];
    if (addr % PAGE || (flags & ~(MS_ASYNC | MS_SYNC | MS_INVALIDATE)) ||
        ((flags & MS_ASYNC) && (flags & MS_SYNC)))
        return -EINVAL;
    if (len < a[1] || !range_ok(p, addr, len))
        return -ENOMEM;
    /* No mapping writes back to a host file (shared file mappings are refused), so there
     * is nothing to flush: only every page must be mapped, as Linux checks. */
    for (uint64_t va = addr; va < addr + len; va += PAGE)
        if (vm_prot_at(p->vm, va) == PROT_NONE)
            return -ENOMEM;
    return 0;
}

long sys_mremap(struct lx_proc *p, const uint64_t a[6])
{
    uint64_t old = a[0], old_len = page_up(a[1]), new_len = page_up(a[2]);
    int flags = (int)a[3];
    if (flags & ~(MREMAP_MAYMOVE) || !new_len || !range_ok(p, old, old_len))
        return -EINVAL;
    if (new_len > vm_user_end(p->vm))
        return -ENOMEM;
    struct lx_mm *mm = &p->mm;
    int prot = vm_prot_at(p->vm, old);
    if (new_len <= old_len) {
        if (new_len < old_len) {
            uint64_t unmap[6] = { old + new_len, old_len - new_len };
            sys_munmap(p, unmap);
        }
        return (long)old;
    }
    /* Grow in place when the pages after it are free in the mmap area. */
    uint64_t tail = old + old_len, extra = new_len - old_len;
    bool in_place = false;
    if (tail == mm->mmap_top && mm->mmap_top <= mm->mmap_limit &&
        extra <= mm->mmap_limit - mm->mmap_top) {
        in_place = true;
    } else {
        for (size_t i = 0; i < mm->nfree; i++)
            if (mm->free[i].start == tail && mm->free[i].end - tail >= extra)
                in_place = true;
    }
    if (!in_place && !(flags & MREMAP_MAYMOVE))
        return -ENOMEM;
    if (!charge(p, extra))
        return -ENOMEM;
    if (in_place) {
        take_range(mm, tail, tail + extra);
        if (vm_map(p->vm, tail, extra, prot))
            return -ENOMEM;
        wipe_follow(mm, old, old_len, old, new_len);
        return (long)old;
    }
    if (!(flags & MREMAP_MAYMOVE))
        return -ENOMEM;
    uint64_t to = mm_alloc(mm, new_len);
    if (!to)
        return -ENOMEM;
    if (vm_map(p->vm, to, new_len, prot == PROT_NONE ? PROT_NONE : prot | PROT_READ)) {
        mm_free(mm, to, new_len);
        return -ENOMEM;
    }
    vm_host_copy(p->vm, to, old, old_len);      /* both ranges are the program's: cannot fail */
    wipe_follow(mm, old, old_len, to, new_len);
    if (prot == PROT_NONE)
        vm_protect(p->vm, to, new_len, PROT_NONE);
    uint64_t unmap[6] = { old, old_len };
    sys_munmap(p, unmap);
    return (long)to;
}
