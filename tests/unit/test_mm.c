/* Unit tests for the guest address-space bookkeeping (linux/mm.c): the mmap-area allocator
 * and the memory system calls, on a VM built by hand without KVM (host buffer as guest
 * memory, page-table pool at its top as in vm_create; mem_fd -1 so vm_discard zeroes with
 * memset) and a process whose mm is laid out as lx_mm_init does it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "base/units.h"
#include "linux/mm.h"
#include "linux/process.h"
#include "linux/syscalls.h"
#include "vm/guest_mem.h"
#include "vm/vm.h"

#define MEM_SIZE (64 * MIB)
#define IMAGE_END 0x600000ull            /* where the loaded image ends: brk starts here */

#define SYS(fn, p, ...) sys_##fn((p), (const uint64_t[6]){ __VA_ARGS__ })
#define ANON (MAP_PRIVATE | MAP_ANONYMOUS)
#define RW (PROT_READ | PROT_WRITE)

struct fixture {
    struct vm vm;
    struct lx_env env;
    struct lx_proc proc;
};

static uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) & ~(a - 1); }

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    struct vm *vm = &f->vm;
    void *m = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) {
        free(f);
        return -1;
    }
    vm->mem = m;
    vm->mem_size = MEM_SIZE;
    vm->mem_fd = vm->vm_fd = vm->vcpu_fd = -1;
    uint64_t pool = ((MEM_SIZE / 512) + 2 * MIB) & ~(PAGE - 1);    /* as vm_create */
    vm->user_end = MEM_SIZE - pool;
    if (pt_init(&vm->pt, vm->mem, MEM_SIZE, vm->user_end, MEM_SIZE)) {
        munmap(m, MEM_SIZE);
        free(f);
        return -1;
    }

    /* As lx_mm_init for an image ending at IMAGE_END and an 8 MiB stack at the top. */
    struct lx_proc *p = &f->proc;
    p->vm = vm;
    p->env = &f->env;
    uint64_t stack_low = vm->user_end - 8 * MIB;
    uint64_t room = stack_low - IMAGE_END;
    uint64_t brk_span = room / 4 < (1ull << 30) ? room / 4 : (1ull << 30);
    struct lx_mm *mm = &p->mm;
    mm->brk_start = mm->brk_cur = mm->brk_mapped = IMAGE_END;
    mm->mmap_base = mm->mmap_top = align_up(IMAGE_END + brk_span, 2 * MIB);
    mm->brk_limit = mm->mmap_base;
    mm->mmap_limit = (stack_low - MIB) & ~(2 * MIB - 1);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    munmap(f->vm.mem, f->vm.mem_size);
    free(f);
    return 0;
}

static bool user_rw(struct vm *vm, uint64_t addr, uint64_t len)
{
    return gm_span(vm, addr, len, GM_READ | GM_WRITE) != NULL;
}

static bool all_zero(const uint8_t *b, uint64_t len)
{
    for (uint64_t i = 0; i < len; i++)
        if (b[i])
            return false;
    return true;
}

/* ---- the allocator ---- */

static void test_layout_is_sane(void **state)
{
    struct fixture *f = *state;
    struct lx_mm *mm = &f->proc.mm;
    /* The fixture's numbers are what the other tests rely on. */
    assert_true(mm->brk_start < mm->brk_limit);
    assert_true(mm->brk_limit <= mm->mmap_base);
    assert_true(mm->mmap_base < mm->mmap_limit);
    assert_true(mm->mmap_limit < f->vm.user_end);
    assert_true(mm->mmap_limit - mm->mmap_base >= 16 * MIB);
    assert_int_equal(mm->mmap_base % PAGE, 0);
    assert_int_equal(mm->mmap_limit % PAGE, 0);
}

/* One fixed script of allocations and frees; the addresses it gets go to out[]. */
static void run_script(struct lx_mm *mm, uint64_t out[64])
{
    uint64_t live[64] = { 0 }, len[64] = { 0 };
    uint32_t seed = 12345;
    for (int i = 0; i < 64; i++) {
        seed = seed * 1103515245u + 12345u;
        len[i] = (1 + (seed >> 16) % 7) * PAGE;
        out[i] = live[i] = mm_alloc(mm, len[i]);
        if (i % 3 == 2) {              /* free an earlier one, chosen by the script */
            int victim = (int)((seed >> 8) % (unsigned)i);
            if (live[victim]) {
                mm_free(mm, live[victim], len[victim]);
                live[victim] = 0;
            }
        }
    }
}

static void test_alloc_is_deterministic(void **state)
{
    struct fixture *f = *state;
    struct lx_mm *a = malloc(sizeof *a), *b = malloc(sizeof *b);
    assert_non_null(a);
    assert_non_null(b);
    *a = f->proc.mm;
    *b = f->proc.mm;
    uint64_t out_a[64], out_b[64];
    run_script(a, out_a);
    run_script(b, out_b);
    assert_memory_equal(out_a, out_b, sizeof out_a);
    assert_int_equal(a->mmap_top, b->mmap_top);
    assert_int_equal(a->nfree, b->nfree);
    assert_memory_equal(a->free, b->free, a->nfree * sizeof a->free[0]);
    /* The script did reuse holes (otherwise this test would prove little). */
    assert_true(a->nfree > 0);
    for (int i = 0; i < 64; i++) {
        assert_int_not_equal(out_a[i], 0);
        assert_int_equal(out_a[i] % PAGE, 0);
    }
    free(a);
    free(b);
}

static void test_first_fit_reuses_lowest_hole(void **state)
{
    struct fixture *f = *state;
    struct lx_mm *mm = &f->proc.mm;
    uint64_t base = mm->mmap_base;
    uint64_t a = mm_alloc(mm, PAGE), b = mm_alloc(mm, 2 * PAGE), c = mm_alloc(mm, PAGE),
             d = mm_alloc(mm, 2 * PAGE), e = mm_alloc(mm, PAGE);
    assert_int_equal(a, base);
    assert_int_equal(b, base + PAGE);
    assert_int_equal(c, base + 3 * PAGE);
    assert_int_equal(d, base + 4 * PAGE);
    assert_int_equal(e, base + 6 * PAGE);
    mm_free(mm, d, 2 * PAGE);
    mm_free(mm, b, 2 * PAGE);
    assert_int_equal(mm->nfree, 2);
    /* Too big for either hole: from the top. */
    assert_int_equal(mm_alloc(mm, 3 * PAGE), base + 7 * PAGE);
    /* The lowest hole first, consumed from its start. */
    assert_int_equal(mm_alloc(mm, PAGE), b);
    assert_int_equal(mm_alloc(mm, PAGE), b + PAGE);
    assert_int_equal(mm_alloc(mm, 2 * PAGE), d);
    assert_int_equal(mm->nfree, 0);
    assert_int_equal(mm_alloc(mm, PAGE), base + 10 * PAGE);
}

static void test_neighbours_coalesce(void **state)
{
    struct fixture *f = *state;
    struct lx_mm *mm = &f->proc.mm;
    uint64_t p[5];
    for (int i = 0; i < 5; i++)
        p[i] = mm_alloc(mm, PAGE);
    mm_free(mm, p[1], PAGE);
    mm_free(mm, p[3], PAGE);
    assert_int_equal(mm->nfree, 2);
    mm_free(mm, p[2], PAGE);                 /* joins both neighbours */
    assert_int_equal(mm->nfree, 1);
    assert_int_equal(mm->free[0].start, p[1]);
    assert_int_equal(mm->free[0].end, p[4]);
    /* The merged hole serves one allocation of its whole size. */
    assert_int_equal(mm_alloc(mm, 3 * PAGE), p[1]);
    assert_int_equal(mm->nfree, 0);
}

static void test_freeing_the_top_lowers_it(void **state)
{
    struct fixture *f = *state;
    struct lx_mm *mm = &f->proc.mm;
    uint64_t a = mm_alloc(mm, PAGE), b = mm_alloc(mm, 2 * PAGE), c = mm_alloc(mm, PAGE);
    assert_int_equal(mm->mmap_top, c + PAGE);
    mm_free(mm, c, PAGE);
    assert_int_equal(mm->mmap_top, c);
    assert_int_equal(mm->nfree, 0);
    /* A hole below the top merges with it when the top is freed. */
    mm_free(mm, a, PAGE);
    assert_int_equal(mm->nfree, 1);
    mm_free(mm, b, 2 * PAGE);
    assert_int_equal(mm->mmap_top, mm->mmap_base);
    assert_int_equal(mm->nfree, 0);
    /* Freeing outside the used area changes nothing. */
    mm_free(mm, mm->mmap_base + 10 * PAGE, PAGE);
    mm_free(mm, mm->mmap_base - 4 * PAGE, 2 * PAGE);
    assert_int_equal(mm->nfree, 0);
    assert_int_equal(mm->mmap_top, mm->mmap_base);
}

static void test_exhausting_the_area(void **state)
{
    struct fixture *f = *state;
    struct lx_mm *mm = &f->proc.mm;
    mm->mmap_limit = mm->mmap_base + 16 * PAGE;
    assert_int_equal(mm_alloc(mm, 17 * PAGE), 0);
    assert_int_equal(mm_alloc(mm, UINT64_MAX & ~(PAGE - 1)), 0);
    uint64_t a = mm_alloc(mm, 10 * PAGE), b = mm_alloc(mm, 6 * PAGE);
    assert_int_equal(a, mm->mmap_base);
    assert_int_equal(b, mm->mmap_base + 10 * PAGE);
    assert_int_equal(mm_alloc(mm, PAGE), 0);
    assert_int_equal(mm->mmap_top, mm->mmap_limit);
    mm_free(mm, a + 2 * PAGE, 2 * PAGE);
    assert_int_equal(mm_alloc(mm, 3 * PAGE), 0);
    assert_int_equal(mm_alloc(mm, 2 * PAGE), a + 2 * PAGE);
    assert_int_equal(mm_alloc(mm, PAGE), 0);
}

/* ---- mmap / munmap ---- */

static void test_mmap_anonymous(void **state)
{
    struct fixture *f = *state;
    struct lx_proc *p = &f->proc;
    long a = SYS(mmap, p, 0, 3 * PAGE, RW, ANON, (uint64_t)-1, 0);
    long b = SYS(mmap, p, 0, 5000, PROT_READ, ANON, (uint64_t)-1, 0);   /* rounds up */
    long c = SYS(mmap, p, 0, PAGE, PROT_READ | PROT_EXEC, ANON, (uint64_t)-1, 0);
    long d = SYS(mmap, p, 0x12345000, PAGE, RW, ANON, (uint64_t)-1, 0);   /* a hint only */
    long addrs[] = { a, b, c, d };
    for (size_t i = 0; i < 4; i++) {
        assert_true(addrs[i] > 0);
        assert_int_equal((uint64_t)addrs[i] % PAGE, 0);
        assert_true((uint64_t)addrs[i] >= p->mm.mmap_base);
        assert_true((uint64_t)addrs[i] < p->mm.mmap_limit);
    }
    assert_int_equal(b, a + 3 * PAGE);
    assert_int_equal(c, b + 2 * PAGE);
    assert_int_equal(d, c + PAGE);

    assert_true(user_rw(&f->vm, (uint64_t)a, 3 * PAGE));
    assert_int_equal(pt_lookup(&f->vm.pt, (uint64_t)a) & (PTE_W | PTE_U | PTE_NX),
                     PTE_W | PTE_U | PTE_NX);
    assert_int_equal(pt_lookup(&f->vm.pt, (uint64_t)b + PAGE) & (PTE_W | PTE_U | PTE_NX),
                     PTE_U | PTE_NX);
    assert_int_equal(pt_lookup(&f->vm.pt, (uint64_t)c) & (PTE_W | PTE_U | PTE_NX), PTE_U);
    assert_false(user_rw(&f->vm, (uint64_t)b, 1));
    assert_non_null(gm_span(&f->vm, (uint64_t)b, 2 * PAGE, GM_READ));
    assert_true(all_zero(f->vm.mem + a, 3 * PAGE));
}

static void test_mmap_prot_none_reserves_without_access(void **state)
{
    struct fixture *f = *state;
    struct lx_proc *p = &f->proc;
    long a = SYS(mmap, p, 0, 4 * PAGE, PROT_NONE, ANON, (uint64_t)-1, 0);
    assert_true(a > 0);
    assert_null(gm_span(&f->vm, (uint64_t)a, 1, GM_READ));
    /* The range is reserved: the next allocation comes after it. */
    long b = SYS(mmap, p, 0, PAGE, RW, ANON, (uint64_t)-1, 0);
    assert_int_equal(b, a + 4 * PAGE);
    /* mprotect makes it usable. */
    assert_int_equal(SYS(mprotect, p, (uint64_t)a, 2 * PAGE, RW), 0);
    assert_true(user_rw(&f->vm, (uint64_t)a, 2 * PAGE));
    assert_null(gm_span(&f->vm, (uint64_t)a + 2 * PAGE, 1, GM_READ));
}

static void test_mmap_rejects_bad_arguments(void **state)
{
    struct fixture *f = *state;
    struct lx_proc *p = &f->proc;
    uint64_t top = p->mm.mmap_top;
    assert_int_equal(SYS(mmap, p, 0, 0, RW, ANON, (uint64_t)-1, 0), -EINVAL);
    assert_int_equal(SYS(mmap, p, 0, PAGE, RW | 0x8, ANON, (uint64_t)-1, 0), -EINVAL);
    assert_int_equal(SYS(mmap, p, 0, PAGE, 0x1000000, ANON, (uint64_t)-1, 0), -EINVAL);
    assert_int_equal(SYS(mmap, p, 0, PAGE, RW, ANON, (uint64_t)-1, 0x800), -EINVAL);
    assert_int_equal(SYS(mmap, p, 0, PAGE, RW, MAP_ANONYMOUS, (uint64_t)-1, 0), -EINVAL);
    /* Shared file mappings would write through to the host file. */
    assert_int_equal(SYS(mmap, p, 0, PAGE, PROT_READ, MAP_SHARED, 3, 0), -ENODEV);
    assert_int_equal(SYS(mmap, p, 0, PAGE, PROT_READ, MAP_SHARED_VALIDATE, 3, 0), -ENODEV);
    /* A private mapping of a closed fd. */
    assert_int_equal(SYS(mmap, p, 0, PAGE, PROT_READ, MAP_PRIVATE, 99, 0), -EBADF);
    /* Larger than the whole address space, or wrapping when rounded up. */
    assert_int_equal(SYS(mmap, p, 0, f->vm.user_end + PAGE, RW, ANON, (uint64_t)-1, 0), -ENOMEM);
    assert_int_equal(SYS(mmap, p, 0, UINT64_MAX - 10, RW, ANON, (uint64_t)-1, 0), -ENOMEM);
    /* Bigger than the mmap area. */
    uint64_t area = p->mm.mmap_limit - p->mm.mmap_base;
    assert_int_equal(SYS(mmap, p, 0, area + PAGE, RW, ANON, (uint64_t)-1, 0), -ENOMEM);
    /* MAP_FIXED outside user memory, into the system area, or unaligned. */
    assert_int_equal(SYS(mmap, p, f->vm.user_end, PAGE, RW, ANON | MAP_FIXED, (uint64_t)-1, 0),
                     -EINVAL);
    assert_int_equal(SYS(mmap, p, 0x1000, PAGE, RW, ANON | MAP_FIXED, (uint64_t)-1, 0), -EINVAL);
    assert_int_equal(SYS(mmap, p, 0x2000000 + 8, PAGE, RW, ANON | MAP_FIXED, (uint64_t)-1, 0),
                     -EINVAL);
    assert_int_equal(SYS(mmap, p, f->vm.user_end, PAGE, RW, ANON | MAP_FIXED_NOREPLACE,
                         (uint64_t)-1, 0), -ENOMEM);
    /* None of the refusals used address space. */
    assert_int_equal(p->mm.mmap_top, top);
    assert_int_equal(p->mm.nfree, 0);
}

static void test_map_fixed_takes_range_out_of_free_list(void **state)
{
    struct fixture *f = *state;
    struct lx_proc *p = &f->proc;
    struct lx_mm *mm = &p->mm;
    uint64_t base = mm->mmap_base;
    /* Above the top: the gap below it becomes a hole. */
    long r = SYS(mmap, p, base + 4 * PAGE, 2 * PAGE, RW, ANON | MAP_FIXED, (uint64_t)-1, 0);
    assert_int_equal(r, base + 4 * PAGE);
    assert_true(user_rw(&f->vm, base + 4 * PAGE, 2 * PAGE));
    assert_int_equal(mm->mmap_top, base + 6 * PAGE);
    for (int i = 0; i < 4; i++)
        assert_int_equal(mm_alloc(mm, PAGE), base + i * PAGE);
    assert_int_equal(mm_alloc(mm, PAGE), base + 6 * PAGE);     /* not the fixed range */
}

static void test_map_fixed_splits_a_hole_in_the_middle(void **state)
{
    struct fixture *f = *state;
    struct lx_proc *p = &f->proc;
    struct lx_mm *mm = &p->mm;
    uint64_t h = mm_alloc(mm, 8 * PAGE);
    uint64_t guard = mm_alloc(mm, PAGE);
    mm_free(mm, h, 8 * PAGE);
    assert_int_equal(mm->nfree, 1);
    long r = SYS(mmap, p, h + 2 * PAGE, 3 * PAGE, RW, ANON | MAP_FIXED, (uint64_t)-1, 0);
    assert_int_equal(r, h + 2 * PAGE);
    assert_int_equal(mm->nfree, 2);
    assert_int_equal(mm->free[0].start, h);
    assert_int_equal(mm->free[0].end, h + 2 * PAGE);
    assert_int_equal(mm->free[1].start, h + 5 * PAGE);
    assert_int_equal(mm->free[1].end, h + 8 * PAGE);
    /* Both sides are handed out again, the fixed part never. */
    assert_int_equal(mm_alloc(mm, 3 * PAGE), h + 5 * PAGE);
    assert_int_equal(mm_alloc(mm, 2 * PAGE), h);
    assert_int_equal(mm_alloc(mm, PAGE), guard + PAGE);
}

static void test_map_fixed_over_existing_memory_replaces_it_with_zeros(void **state)
{
    struct fixture *f = *state;
    struct lx_proc *p = &f->proc;
    long a = SYS(mmap, p, 0, 4 * PAGE, RW, ANON, (uint64_t)-1, 0);
    assert_true(a > 0);
    memset(f->vm.mem + a, 0xcc, 4 * PAGE);
    long r = SYS(mmap, p, (uint64_t)a + PAGE, 2 * PAGE, PROT_READ, ANON | MAP_FIXED,
                 (uint64_t)-1, 0);
    assert_int_equal(r, a + PAGE);
    assert_true(all_zero(f->vm.mem + a + PAGE, 2 * PAGE));
    assert_int_equal(f->vm.mem[a + PAGE - 1], 0xcc);
    assert_int_equal(f->vm.mem[a + 3 * PAGE], 0xcc);
    assert_false(user_rw(&f->vm, (uint64_t)a + PAGE, 1));        /* now read-only */
    assert_true(user_rw(&f->vm, (uint64_t)a + 3 * PAGE, PAGE));
}

static void test_munmap_then_mmap_reuses_address(void **state)
{
    struct fixture *f = *state;
    struct lx_proc *p = &f->proc;
    long a = SYS(mmap, p, 0, 3 * PAGE, RW, ANON, (uint64_t)-1, 0);
    long b = SYS(mmap, p, 0, PAGE, RW, ANON, (uint64_t)-1, 0);
    assert_true(a > 0 && b > 0);
    memset(f->vm.mem + a, 0x5a, 3 * PAGE);
    assert_int_equal(SYS(munmap, p, (uint64_t)a, 3 * PAGE), 0);
    assert_null(gm_span(&f->vm, (uint64_t)a, 1, GM_READ));      /* no longer user memory */
    assert_true(user_rw(&f->vm, (uint64_t)b, PAGE));
    long c = SYS(mmap, p, 0, 3 * PAGE, RW, ANON, (uint64_t)-1, 0);
    assert_int_equal(c, a);
    assert_true(user_rw(&f->vm, (uint64_t)c, 3 * PAGE));
    assert_true(all_zero(f->vm.mem + c, 3 * PAGE));             /* fresh memory is zero */
}

static void test_munmap_rejects_bad_arguments(void **state)
{
    struct fixture *f = *state;
    struct lx_proc *p = &f->proc;
    long a = SYS(mmap, p, 0, PAGE, RW, ANON, (uint64_t)-1, 0);
    assert_int_equal(SYS(munmap, p, (uint64_t)a, 0), -EINVAL);
    assert_int_equal(SYS(munmap, p, (uint64_t)a + 1, PAGE), -EINVAL);
    assert_int_equal(SYS(munmap, p, 0x1000, PAGE), -EINVAL);
    assert_int_equal(SYS(munmap, p, f->vm.user_end, PAGE), -EINVAL);
    assert_int_equal(SYS(munmap, p, (uint64_t)a, UINT64_MAX - PAGE), -EINVAL);
    assert_true(user_rw(&f->vm, (uint64_t)a, PAGE));
}

/* ---- brk ---- */

static void test_brk_grows_and_maps_pages(void **state)
{
    struct fixture *f = *state;
    struct lx_proc *p = &f->proc;
    uint64_t start = p->mm.brk_start;
    assert_int_equal(SYS(brk, p, 0), start);                 /* the query glibc makes */
    assert_null(gm_span(&f->vm, start, 1, GM_READ));
    assert_int_equal(SYS(brk, p, start + 10000), start + 10000);
    for (uint64_t off = 0; off < 3 * PAGE; off += PAGE)
        assert_int_equal(pt_lookup(&f->vm.pt, start + off) & (PTE_P | PTE_W | PTE_U),
                         PTE_P | PTE_W | PTE_U);
    assert_int_equal(pt_lookup(&f->vm.pt, start + 3 * PAGE), 0);
    assert_true(user_rw(&f->vm, start, 10000));
    assert_int_equal(SYS(brk, p, 0), start + 10000);
}

static void test_brk_shrink_then_regrow_reads_zeros(void **state)
{
    struct fixture *f = *state;
    struct lx_proc *p = &f->proc;
    uint64_t start = p->mm.brk_start;
    assert_int_equal(SYS(brk, p, start + 4 * PAGE), start + 4 * PAGE);
    memset(f->vm.mem + start, 0xee, 4 * PAGE);
    assert_int_equal(SYS(brk, p, start + PAGE), start + PAGE);
    assert_int_equal(SYS(brk, p, start + 4 * PAGE), start + 4 * PAGE);
    assert_int_equal(f->vm.mem[start + PAGE - 1], 0xee);     /* below the shrink point: kept */
    assert_true(all_zero(f->vm.mem + start + PAGE, 3 * PAGE));
}

static void test_brk_out_of_range_returns_current(void **state)
{
    struct fixture *f = *state;
    struct lx_proc *p = &f->proc;
    uint64_t start = p->mm.brk_start;
    assert_int_equal(SYS(brk, p, start + PAGE), start + PAGE);
    assert_int_equal(SYS(brk, p, start - 1), start + PAGE);
    assert_int_equal(SYS(brk, p, 1), start + PAGE);
    assert_int_equal(SYS(brk, p, p->mm.brk_limit + 1), start + PAGE);
    assert_int_equal(SYS(brk, p, UINT64_MAX), start + PAGE);
    assert_int_equal(p->mm.brk_cur, start + PAGE);
    /* Exactly the limit is allowed. */
    assert_int_equal(SYS(brk, p, p->mm.brk_limit), p->mm.brk_limit);
    /* And shrinking back to the start. */
    assert_int_equal(SYS(brk, p, start), start);
}

/* ---- mremap ---- */

static void test_mremap_grows_in_place_at_top(void **state)
{
    struct fixture *f = *state;
    struct lx_proc *p = &f->proc;
    long a = SYS(mmap, p, 0, 2 * PAGE, RW, ANON, (uint64_t)-1, 0);
    memset(f->vm.mem + a, 0x33, 2 * PAGE);
    assert_int_equal(SYS(mremap, p, (uint64_t)a, 2 * PAGE, 5 * PAGE, 0), a);
    assert_int_equal(p->mm.mmap_top, (uint64_t)a + 5 * PAGE);
    assert_true(user_rw(&f->vm, (uint64_t)a, 5 * PAGE));
    assert_int_equal(f->vm.mem[a + 2 * PAGE - 1], 0x33);
    assert_true(all_zero(f->vm.mem + a + 2 * PAGE, 3 * PAGE));
    /* The next allocation comes after the grown mapping. */
    assert_int_equal(SYS(mmap, p, 0, PAGE, RW, ANON, (uint64_t)-1, 0), a + 5 * PAGE);
}

static void test_mremap_grows_in_place_into_a_hole(void **state)
{
    struct fixture *f = *state;
    struct lx_proc *p = &f->proc;
    long a = SYS(mmap, p, 0, PAGE, RW, ANON, (uint64_t)-1, 0);
    long b = SYS(mmap, p, 0, 3 * PAGE, RW, ANON, (uint64_t)-1, 0);
    long c = SYS(mmap, p, 0, PAGE, RW, ANON, (uint64_t)-1, 0);
    assert_int_equal(SYS(munmap, p, (uint64_t)b, 3 * PAGE), 0);
    assert_int_equal(SYS(mremap, p, (uint64_t)a, PAGE, 3 * PAGE, 0), a);
    assert_true(user_rw(&f->vm, (uint64_t)a, 3 * PAGE));
    /* What is left of the hole is one page, just below c. */
    assert_int_equal(p->mm.nfree, 1);
    assert_int_equal(p->mm.free[0].start, (uint64_t)a + 3 * PAGE);
    assert_int_equal(p->mm.free[0].end, (uint64_t)c);
}

static void test_mremap_moves_when_blocked(void **state)
{
    struct fixture *f = *state;
    struct lx_proc *p = &f->proc;
    long a = SYS(mmap, p, 0, 2 * PAGE, RW, ANON, (uint64_t)-1, 0);
    long blocker = SYS(mmap, p, 0, PAGE, RW, ANON, (uint64_t)-1, 0);
    assert_int_equal(blocker, a + 2 * PAGE);
    for (uint64_t i = 0; i < 2 * PAGE; i++)
        f->vm.mem[a + i] = (uint8_t)(i * 7 + 1);

    /* Blocked and not allowed to move. */
    assert_int_equal(SYS(mremap, p, (uint64_t)a, 2 * PAGE, 4 * PAGE, 0), -ENOMEM);
    assert_true(user_rw(&f->vm, (uint64_t)a, 2 * PAGE));
    assert_int_equal(f->vm.mem[a + 5], 5 * 7 + 1);

    long moved = SYS(mremap, p, (uint64_t)a, 2 * PAGE, 4 * PAGE, MREMAP_MAYMOVE);
    assert_true(moved > 0);
    assert_int_not_equal(moved, a);
    assert_true((uint64_t)moved >= (uint64_t)blocker + PAGE);    /* clear of everything used */
    assert_true(user_rw(&f->vm, (uint64_t)moved, 4 * PAGE));
    for (uint64_t i = 0; i < 2 * PAGE; i++)
        if (f->vm.mem[moved + i] != (uint8_t)(i * 7 + 1))
            fail_msg("byte %llu not preserved by the move", (unsigned long long)i);
    assert_true(all_zero(f->vm.mem + moved + 2 * PAGE, 2 * PAGE));
    /* The old place is gone and reusable; the blocker is untouched. */
    assert_null(gm_span(&f->vm, (uint64_t)a, 1, GM_READ));
    assert_true(user_rw(&f->vm, (uint64_t)blocker, PAGE));
    assert_int_equal(SYS(mmap, p, 0, 2 * PAGE, RW, ANON, (uint64_t)-1, 0), a);
}

static void test_mremap_keeps_protection(void **state)
{
    struct fixture *f = *state;
    struct lx_proc *p = &f->proc;
    long a = SYS(mmap, p, 0, PAGE, PROT_READ, ANON, (uint64_t)-1, 0);
    SYS(mmap, p, 0, PAGE, RW, ANON, (uint64_t)-1, 0);          /* blocks in-place growth */
    long moved = SYS(mremap, p, (uint64_t)a, PAGE, 2 * PAGE, MREMAP_MAYMOVE);
    assert_true(moved > 0);
    assert_non_null(gm_span(&f->vm, (uint64_t)moved, 2 * PAGE, GM_READ));
    assert_null(gm_span(&f->vm, (uint64_t)moved, 1, GM_WRITE));
}

static void test_mremap_shrinks_and_rejects_bad_arguments(void **state)
{
    struct fixture *f = *state;
    struct lx_proc *p = &f->proc;
    long a = SYS(mmap, p, 0, 4 * PAGE, RW, ANON, (uint64_t)-1, 0);
    SYS(mmap, p, 0, PAGE, RW, ANON, (uint64_t)-1, 0);
    assert_int_equal(SYS(mremap, p, (uint64_t)a, 4 * PAGE, PAGE, 0), a);
    assert_true(user_rw(&f->vm, (uint64_t)a, PAGE));
    assert_null(gm_span(&f->vm, (uint64_t)a + PAGE, 1, GM_READ));
    assert_int_equal(SYS(mmap, p, 0, 3 * PAGE, RW, ANON, (uint64_t)-1, 0), a + PAGE);

    assert_int_equal(SYS(mremap, p, (uint64_t)a, PAGE, 0, MREMAP_MAYMOVE), -EINVAL);
    assert_int_equal(SYS(mremap, p, (uint64_t)a + 1, PAGE, 2 * PAGE, MREMAP_MAYMOVE), -EINVAL);
    assert_int_equal(SYS(mremap, p, (uint64_t)a, PAGE, 2 * PAGE, 0x80), -EINVAL);
    assert_int_equal(SYS(mremap, p, (uint64_t)a, PAGE, f->vm.user_end + PAGE, MREMAP_MAYMOVE),
                     -ENOMEM);
}

/* ---- madvise / mprotect ---- */

static void test_madvise_dontneed_zeroes(void **state)
{
    struct fixture *f = *state;
    struct lx_proc *p = &f->proc;
    long a = SYS(mmap, p, 0, 3 * PAGE, RW, ANON, (uint64_t)-1, 0);
    memset(f->vm.mem + a, 0x99, 3 * PAGE);
    assert_int_equal(SYS(madvise, p, (uint64_t)a + PAGE, PAGE, MADV_DONTNEED), 0);
    assert_true(all_zero(f->vm.mem + a + PAGE, PAGE));
    assert_int_equal(f->vm.mem[a + PAGE - 1], 0x99);
    assert_int_equal(f->vm.mem[a + 2 * PAGE], 0x99);
    assert_true(user_rw(&f->vm, (uint64_t)a, 3 * PAGE));       /* still mapped */
    /* Other advice keeps the content. */
    assert_int_equal(SYS(madvise, p, (uint64_t)a, PAGE, MADV_WILLNEED), 0);
    assert_int_equal(f->vm.mem[a], 0x99);
    assert_int_equal(SYS(madvise, p, (uint64_t)a + 1, PAGE, MADV_DONTNEED), -EINVAL);
    assert_int_equal(SYS(madvise, p, f->vm.user_end, PAGE, MADV_DONTNEED), -ENOMEM);
}

static void test_madvise_rejects_unknown_advice(void **state)
{
    struct fixture *f = *state;
    struct lx_proc *p = &f->proc;
    long a = SYS(mmap, p, 0, PAGE, RW, ANON, (uint64_t)-1, 0);
    /* BoringSSL and Zig probe with -1 (and Zig with length 0) before trusting WIPEONFORK. */
    assert_int_equal(SYS(madvise, p, (uint64_t)a, PAGE, (uint64_t)-1), -EINVAL);
    assert_int_equal(SYS(madvise, p, (uint64_t)a, 0, 0xffffffffull), -EINVAL);
    assert_int_equal(SYS(madvise, p, (uint64_t)a, PAGE, 5), -EINVAL);
    assert_int_equal(SYS(madvise, p, (uint64_t)a, 0, MADV_WIPEONFORK), 0);
    assert_int_equal(p->mm.nwipe, 0);
    assert_int_equal(SYS(madvise, p, (uint64_t)a, PAGE, MADV_HWPOISON), -EPERM);
}

/* The wipe-on-fork list as the ranges it holds, "start-end" in pages from `base`. */
static void assert_wipe(const struct lx_mm *mm, uint64_t base, const char *want)
{
    char got[256] = "";
    for (size_t i = 0; i < mm->nwipe; i++) {
        size_t n = strlen(got);
        snprintf(got + n, sizeof got - n, "%s%llu-%llu", i ? " " : "",
                 (unsigned long long)((mm->wipe[i].start - base) / PAGE),
                 (unsigned long long)((mm->wipe[i].end - base) / PAGE));
    }
    assert_string_equal(got, want);
}

static void test_wipe_on_fork_ranges(void **state)
{
    struct fixture *f = *state;
    struct lx_proc *p = &f->proc;
    struct lx_mm *mm = &p->mm;
    uint64_t a = (uint64_t)SYS(mmap, p, 0, 10 * PAGE, RW, ANON, (uint64_t)-1, 0);
    assert_int_equal(SYS(madvise, p, a + 2 * PAGE, 2 * PAGE, MADV_WIPEONFORK), 0);
    assert_int_equal(SYS(madvise, p, a + 6 * PAGE, PAGE, MADV_WIPEONFORK), 0);
    assert_wipe(mm, a, "2-4 6-7");
    assert_int_equal(SYS(madvise, p, a + 4 * PAGE, 2 * PAGE, MADV_WIPEONFORK), 0);
    assert_wipe(mm, a, "2-7");                      /* joins both neighbours */
    assert_int_equal(SYS(madvise, p, a + 3 * PAGE, PAGE, MADV_WIPEONFORK), 0);
    assert_wipe(mm, a, "2-7");                      /* already flagged */
    assert_int_equal(SYS(madvise, p, a + 4 * PAGE, PAGE, MADV_KEEPONFORK), 0);
    assert_wipe(mm, a, "2-4 5-7");
    assert_int_equal(SYS(munmap, p, a + 6 * PAGE, 4 * PAGE), 0);
    assert_wipe(mm, a, "2-4 5-6");                  /* the flag goes with the mapping */
    assert_int_equal(SYS(mmap, p, a + 2 * PAGE, PAGE, RW, ANON | MAP_FIXED, (uint64_t)-1, 0),
                     (long)(a + 2 * PAGE));
    assert_wipe(mm, a, "3-4 5-6");                  /* replaced memory is not flagged */

    /* A new generation: the flagged pages read zero, the others keep their bytes. */
    memset(f->vm.mem + a, 0x77, 6 * PAGE);
    lx_mm_wipe_on_fork(p);
    for (uint64_t pg = 0; pg < 6; pg++)
        assert_int_equal(f->vm.mem[a + pg * PAGE + 7], pg == 3 || pg == 5 ? 0 : 0x77);
}

static void test_wipe_on_fork_follows_mremap(void **state)
{
    struct fixture *f = *state;
    struct lx_proc *p = &f->proc;
    struct lx_mm *mm = &p->mm;
    uint64_t a = (uint64_t)SYS(mmap, p, 0, 2 * PAGE, RW, ANON, (uint64_t)-1, 0);
    uint64_t guard = (uint64_t)SYS(mmap, p, 0, PAGE, RW, ANON, (uint64_t)-1, 0);
    assert_int_equal(SYS(madvise, p, a, 2 * PAGE, MADV_WIPEONFORK), 0);
    long to = SYS(mremap, p, a, 2 * PAGE, 4 * PAGE, MREMAP_MAYMOVE);
    assert_true(to > 0 && (uint64_t)to != a);
    assert_wipe(mm, (uint64_t)to, "0-4");           /* moved, and grown with its last page */
    assert_int_equal(SYS(munmap, p, guard, PAGE), 0);
}

static void test_wipe_on_fork_list_full(void **state)
{
    struct fixture *f = *state;
    struct lx_proc *p = &f->proc;
    struct lx_mm *mm = &p->mm;
    uint64_t n = LX_MM_MAX_WIPE;
    uint64_t a = (uint64_t)SYS(mmap, p, 0, (2 * n + 4) * PAGE, RW, ANON, (uint64_t)-1, 0);
    /* Pages 0-2, then every other page from page 4 on. */
    assert_int_equal(SYS(madvise, p, a, 3 * PAGE, MADV_WIPEONFORK), 0);
    for (uint64_t i = 1; i < n; i++)
        assert_int_equal(SYS(madvise, p, a + (2 * i + 2) * PAGE, PAGE, MADV_WIPEONFORK), 0);
    assert_int_equal(mm->nwipe, n);
    assert_int_equal(SYS(madvise, p, a + (2 * n + 3) * PAGE, PAGE, MADV_WIPEONFORK), -EAGAIN);
    assert_int_equal(mm->nwipe, n);
    /* No room to split: the range stays whole, wiping more rather than less. */
    assert_int_equal(SYS(munmap, p, a + PAGE, PAGE), 0);
    assert_int_equal(mm->nwipe, n);
    assert_int_equal(mm->wipe[0].start, a);
    assert_int_equal(mm->wipe[0].end, a + 3 * PAGE);
    /* Trimming an end needs no room. */
    assert_int_equal(SYS(munmap, p, a + 2 * PAGE, PAGE), 0);
    assert_int_equal(mm->wipe[0].end, a + 2 * PAGE);
}

static void test_memory_limit_is_given_back_by_munmap(void **state)
{
    struct fixture *f = *state;
    struct lx_proc *p = &f->proc;
    p->server.memory_limit = 64 * PAGE;
    p->mm.charged_bytes = 0;
    /* 100 rounds of 32 pages: far past the limit in total, never at once. */
    for (int i = 0; i < 100; i++) {
        long a = SYS(mmap, p, 0, 32 * PAGE, RW, ANON, (uint64_t)-1, 0);
        assert_true(a > 0);
        assert_int_equal(SYS(munmap, p, (uint64_t)a, 32 * PAGE), 0);
    }
    assert_int_equal(p->mm.charged_bytes, 0);
    /* A reservation is charged when it becomes usable, and only then. */
    long r = SYS(mmap, p, 0, 100 * PAGE, PROT_NONE, ANON, (uint64_t)-1, 0);
    assert_true(r > 0);
    assert_int_equal(p->mm.charged_bytes, 0);
    assert_int_equal(SYS(mprotect, p, (uint64_t)r, 40 * PAGE, RW), 0);
    assert_int_equal(p->mm.charged_bytes, 40 * PAGE);
    assert_int_equal(SYS(mprotect, p, (uint64_t)r, 40 * PAGE, RW), 0);   /* no double charge */
    assert_int_equal(p->mm.charged_bytes, 40 * PAGE);
    assert_int_equal(SYS(mprotect, p, (uint64_t)r + 40 * PAGE, 30 * PAGE, RW), -ENOMEM);
    assert_false(p->server.memory_exceeded);            /* boot: ENOMEM, no abort */
}

static void test_mprotect(void **state)
{
    struct fixture *f = *state;
    struct lx_proc *p = &f->proc;
    long a = SYS(mmap, p, 0, 2 * PAGE, RW, ANON, (uint64_t)-1, 0);
    f->vm.mem[a] = 0x42;
    assert_int_equal(SYS(mprotect, p, (uint64_t)a, PAGE, PROT_READ), 0);
    assert_null(gm_span(&f->vm, (uint64_t)a, 1, GM_WRITE));
    assert_non_null(gm_span(&f->vm, (uint64_t)a, 1, GM_READ));
    assert_true(user_rw(&f->vm, (uint64_t)a + PAGE, PAGE));
    assert_int_equal(SYS(mprotect, p, (uint64_t)a, PAGE, PROT_NONE), 0);
    assert_null(gm_span(&f->vm, (uint64_t)a, 1, GM_READ));
    assert_int_equal(SYS(mprotect, p, (uint64_t)a, PAGE, RW), 0);
    assert_int_equal(f->vm.mem[a], 0x42);                        /* content survives */
    assert_int_equal(SYS(mprotect, p, (uint64_t)a + 1, PAGE, RW), -EINVAL);
    assert_int_equal(SYS(mprotect, p, (uint64_t)a, PAGE, 0x80), -EINVAL);
    assert_int_equal(SYS(mprotect, p, f->vm.user_end, PAGE, RW), -ENOMEM);
}

/* ---- defects found by these tests (see the report) ---- */

/* A MAP_FIXED mapping that straddles mmap_limit lifts mmap_top above the limit; mm_alloc's
 * room check `mmap_limit - mmap_top` then wraps, and later allocations land above the area
 * (towards the stack). */
static void test_alloc_stays_inside_area_after_fixed_map_across_limit(void **state)
{
    struct fixture *f = *state;
    struct lx_proc *p = &f->proc;
    struct lx_mm *mm = &p->mm;
    uint64_t at = mm->mmap_limit - PAGE;
    assert_int_equal(SYS(mmap, p, at, 2 * PAGE, RW, ANON | MAP_FIXED, (uint64_t)-1, 0), at);
    /* The only free space left in the area is [mmap_base, at). */
    uint64_t len = (at - mm->mmap_base) + PAGE;
    uint64_t got = mm_alloc(mm, len);
    if (got)
        assert_true(got >= mm->mmap_base && got + len <= mm->mmap_limit);
    long r = SYS(mmap, p, 0, len, RW, ANON, (uint64_t)-1, 0);
    if (r > 0)
        assert_true((uint64_t)r + len <= mm->mmap_limit);
}

/* MAP_FIXED_NOREPLACE must not replace: Linux answers -EEXIST when the range is in use. */
static void test_map_fixed_noreplace_keeps_existing_mapping(void **state)
{
    struct fixture *f = *state;
    struct lx_proc *p = &f->proc;
    long a = SYS(mmap, p, 0, 2 * PAGE, RW, ANON, (uint64_t)-1, 0);
    assert_true(a > 0);
    memset(f->vm.mem + a, 0x7e, 2 * PAGE);
    long r = SYS(mmap, p, (uint64_t)a, PAGE, RW, ANON | MAP_FIXED_NOREPLACE, (uint64_t)-1, 0);
    assert_int_equal(r, -EEXIST);
    assert_int_equal(f->vm.mem[a], 0x7e);
}

/* Linux checks the fd before touching the address space: a bad fd changes nothing. Here a
 * MAP_FIXED file mapping zeroes the old memory and frees its range before the fd is checked,
 * and a failed non-fixed one leaves its pages mapped. */
static void test_file_mmap_with_bad_fd_changes_nothing(void **state)
{
    struct fixture *f = *state;
    struct lx_proc *p = &f->proc;
    long a = SYS(mmap, p, 0, 2 * PAGE, RW, ANON, (uint64_t)-1, 0);
    long blocker = SYS(mmap, p, 0, PAGE, RW, ANON, (uint64_t)-1, 0);
    assert_true(a > 0 && blocker > 0);
    memset(f->vm.mem + a, 0x6b, 2 * PAGE);

    assert_int_equal(SYS(mmap, p, 0, PAGE, PROT_READ, MAP_PRIVATE, 99, 0), -EBADF);
    assert_null(gm_span(&f->vm, (uint64_t)blocker + PAGE, 1, GM_READ));

    assert_int_equal(SYS(mmap, p, (uint64_t)a, 2 * PAGE, PROT_READ, MAP_PRIVATE | MAP_FIXED,
                         99, 0), -EBADF);
    assert_int_equal(f->vm.mem[a], 0x6b);
    assert_true(user_rw(&f->vm, (uint64_t)a, 2 * PAGE));
    /* The live mapping must not be handed out again. */
    long c = SYS(mmap, p, 0, 2 * PAGE, RW, ANON, (uint64_t)-1, 0);
    assert_int_not_equal(c, a);
}

/* A fork's mm is the frozen one's (areas, free and wipe lists), with nothing charged yet;
 * what the last request mapped, freed or charged is gone. */
static void test_mm_fork_starts_from_the_frozen_lists(void **state)
{
    struct fixture *f = *state;
    struct lx_proc *p = &f->proc;
    long a = SYS(mmap, p, 0, 4 * PAGE, RW, ANON, (uint64_t)-1, 0);
    assert_int_equal(SYS(munmap, p, (uint64_t)a + PAGE, PAGE), 0);
    assert_int_equal(SYS(madvise, p, (uint64_t)a, PAGE, MADV_WIPEONFORK), 0);
    static struct lx_mm frozen, child;
    frozen = p->mm;
    memset(&child, 0x5a, sizeof child);         /* the last request's leftovers */
    lx_mm_fork(&child, &frozen);
    assert_int_equal(child.charged_bytes, 0);
    child.charged_bytes = frozen.charged_bytes;
    assert_memory_equal(&child, &frozen, offsetof(struct lx_mm, free));
    assert_int_equal(child.nfree, 1);
    assert_memory_equal(child.free, frozen.free, frozen.nfree * sizeof frozen.free[0]);
    /* The request maps and frees; the next fork sees the frozen lists again. */
    mm_free(&child, child.mmap_top, PAGE);
    assert_int_not_equal(mm_alloc(&child, 8 * PAGE), 0);
    lx_mm_fork(&child, &frozen);
    assert_int_equal(child.mmap_top, frozen.mmap_top);
    assert_int_equal(child.nfree, frozen.nfree);
    assert_int_equal(child.nwipe, 1);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_layout_is_sane),
        T(test_memory_limit_is_given_back_by_munmap),
        T(test_alloc_is_deterministic),
        T(test_first_fit_reuses_lowest_hole),
        T(test_neighbours_coalesce),
        T(test_freeing_the_top_lowers_it),
        T(test_exhausting_the_area),
        T(test_mmap_anonymous),
        T(test_mmap_prot_none_reserves_without_access),
        T(test_mmap_rejects_bad_arguments),
        T(test_map_fixed_takes_range_out_of_free_list),
        T(test_map_fixed_splits_a_hole_in_the_middle),
        T(test_map_fixed_over_existing_memory_replaces_it_with_zeros),
        T(test_munmap_then_mmap_reuses_address),
        T(test_munmap_rejects_bad_arguments),
        T(test_brk_grows_and_maps_pages),
        T(test_brk_shrink_then_regrow_reads_zeros),
        T(test_brk_out_of_range_returns_current),
        T(test_mremap_grows_in_place_at_top),
        T(test_mremap_grows_in_place_into_a_hole),
        T(test_mremap_moves_when_blocked),
        T(test_mremap_keeps_protection),
        T(test_mremap_shrinks_and_rejects_bad_arguments),
        T(test_madvise_dontneed_zeroes),
        T(test_madvise_rejects_unknown_advice),
        T(test_wipe_on_fork_ranges),
        T(test_wipe_on_fork_follows_mremap),
        T(test_mm_fork_starts_from_the_frozen_lists),
        T(test_wipe_on_fork_list_full),
        T(test_mprotect),
        T(test_alloc_stays_inside_area_after_fixed_map_across_limit),
        T(test_map_fixed_noreplace_keeps_existing_mapping),
        T(test_file_mmap_with_bad_fd_changes_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
