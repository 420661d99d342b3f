/* Unit tests for the host-built page tables (vm/paging.c): no KVM, just a host buffer that
 * plays guest-physical memory with the table pool at its top, as vm_create lays it out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "base/units.h"
#include "vm/paging.h"
#include "vm/working_set.h"

#define GIB (1ull << 30)
#define MEM_SIZE (16 * MIB)
#define POOL_SIZE MIB
#define POOL_START (MEM_SIZE - POOL_SIZE)
#define USER_TOP (1ull << 47)     /* first non-canonical user address */
#define GUARD_SIZE (64 * MIB)     /* inaccessible host memory right after guest memory */

struct fixture {
    uint8_t *mem;
    struct paging pt;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    /* A guard after memory turns any read past its end into a crash the test reports. */
    void *m = mmap(NULL, MEM_SIZE + GUARD_SIZE, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) {
        free(f);
        return -1;
    }
    f->mem = m;
    if (mprotect(m, MEM_SIZE, PROT_READ | PROT_WRITE) ||
        pt_init(&f->pt, f->mem, MEM_SIZE, POOL_START, MEM_SIZE)) {
        munmap(m, MEM_SIZE + GUARD_SIZE);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    munmap(f->mem, MEM_SIZE + GUARD_SIZE);
    free(f);
    return 0;
}

/* Walks the tables by hand (independently of pt_lookup) to the leaf entry for va. */
static uint64_t *leaf_entry(struct paging *pt, uint64_t va)
{
    uint64_t table = pt->root;
    for (int level = 3; level > 0; level--) {
        uint64_t e = ((uint64_t *)(pt->mem + table))[(va >> (12 + 9 * level)) & 511];
        assert_true(e & PTE_P);
        table = e & PTE_ADDR_MASK;
        assert_true(table < pt->mem_size);
    }
    return &((uint64_t *)(pt->mem + table))[(va >> 12) & 511];
}

static uint64_t *pml4_entry(struct paging *pt, uint64_t va)
{
    return &((uint64_t *)(pt->mem + pt->root))[(va >> 39) & 511];
}

static void test_count_follows_flags_and_skips_absent_tables(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(pt_map(&f->pt, 0x10000, 0x10000, 4 * PAGE, PTE_U | PTE_W), 0);
    assert_int_equal(pt_map(&f->pt, 0x14000, 0x14000, 2 * PAGE, PTE_U), 0);
    assert_int_equal(pt_map(&f->pt, GIB, 0x20000, PAGE, 0), 0);         /* supervisor, another table tree */
    assert_int_equal(pt_count(&f->pt, 0, USER_TOP, PTE_U), 6);
    assert_int_equal(pt_count(&f->pt, 0, USER_TOP, PTE_U | PTE_W), 4);
    assert_int_equal(pt_count(&f->pt, 0, USER_TOP, 0), 7);
    assert_int_equal(pt_count(&f->pt, 0x11000, 2 * PAGE, PTE_U), 2);    /* a window */
    assert_int_equal(pt_count(&f->pt, 0x15000, 10 * GIB, PTE_U), 1);
    assert_int_equal(pt_count(&f->pt, 0x10000, 0, PTE_U), 0);
    assert_int_equal(pt_count(&f->pt, UINT64_MAX - PAGE, 2 * PAGE, PTE_U), 0);  /* wraps */
}

static void test_init_rejects_bad_pools(void **state)
{
    struct fixture *f = *state;
    struct paging pt;
    assert_int_equal(pt_init(&pt, f->mem, MEM_SIZE, POOL_START + 1, MEM_SIZE), -EINVAL);
    assert_int_equal(pt_init(&pt, f->mem, MEM_SIZE, POOL_START, MEM_SIZE - 1), -EINVAL);
    assert_int_equal(pt_init(&pt, f->mem, MEM_SIZE, POOL_START, POOL_START), -EINVAL);
    assert_int_equal(pt_init(&pt, f->mem, MEM_SIZE, POOL_START, MEM_SIZE + PAGE), -EINVAL);
    assert_int_equal(f->pt.root, POOL_START);    /* the fixture's root is the pool's first page */
}

static void test_map_sets_present_accessed_and_requested_flags(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(pt_map(&f->pt, 0x10000, 0x10000, PAGE, PTE_W | PTE_U), 0);
    assert_int_equal(pt_map(&f->pt, 0x11000, 0x11000, PAGE, PTE_NX), 0);
    assert_int_equal(pt_map(&f->pt, 0x12000, 0x12000, PAGE, PTE_U | PTE_NX), 0);
    assert_int_equal(pt_map(&f->pt, 0x13000, 0x13000, PAGE, 0), 0);

    assert_int_equal(pt_lookup(&f->pt, 0x10000), 0x10000 | PTE_P | PTE_A | PTE_W | PTE_U);
    assert_int_equal(pt_lookup(&f->pt, 0x11000), 0x11000 | PTE_P | PTE_A | PTE_NX);
    assert_int_equal(pt_lookup(&f->pt, 0x12000), 0x12000 | PTE_P | PTE_A | PTE_U | PTE_NX);
    assert_int_equal(pt_lookup(&f->pt, 0x13000), 0x13000 | PTE_P | PTE_A);
    /* Lookup works at 4 KiB granularity: any byte of the page finds its entry. */
    assert_int_equal(pt_lookup(&f->pt, 0x10fff), 0x10000 | PTE_P | PTE_A | PTE_W | PTE_U);
    /* The leaf really is where the CPU will look. */
    assert_int_equal(*leaf_entry(&f->pt, 0x10000), 0x10000 | PTE_P | PTE_A | PTE_W | PTE_U);
}

static void test_map_ignores_flags_it_does_not_own(void **state)
{
    struct fixture *f = *state;
    /* A caller cannot smuggle in large pages, D bits or address bits through flags. */
    assert_int_equal(pt_map(&f->pt, 0x20000, 0x20000, PAGE,
                            PTE_U | PTE_PS | PTE_D | (1ull << 40) | (1ull << 9)), 0);
    assert_int_equal(pt_lookup(&f->pt, 0x20000), 0x20000 | PTE_P | PTE_A | PTE_U);
}

static void test_map_range_and_virtual_differs_from_physical(void **state)
{
    struct fixture *f = *state;
    /* Crosses a page-table boundary (2 MiB) and maps far from the physical address. */
    uint64_t va = 5 * GIB - 2 * PAGE, pa = 0x300000;
    assert_int_equal(pt_map(&f->pt, va, pa, 4 * PAGE, PTE_W | PTE_U), 0);
    for (uint64_t i = 0; i < 4; i++)
        assert_int_equal(pt_lookup(&f->pt, va + i * PAGE) & PTE_ADDR_MASK, pa + i * PAGE);
    assert_int_equal(pt_lookup(&f->pt, va - PAGE), 0);
    assert_int_equal(pt_lookup(&f->pt, va + 4 * PAGE), 0);
    /* Intermediate entries grant everything; the leaf decides. */
    uint64_t top = *pml4_entry(&f->pt, va);
    assert_int_equal(top & (PTE_P | PTE_W | PTE_U | PTE_A), PTE_P | PTE_W | PTE_U | PTE_A);
    assert_false(top & (PTE_NX | PTE_PS));
}

static void test_lookup_of_unmapped_addresses_is_zero(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(pt_lookup(&f->pt, 0), 0);
    assert_int_equal(pt_lookup(&f->pt, 0x10000), 0);
    assert_int_equal(pt_map(&f->pt, 0x10000, 0x10000, PAGE, PTE_U), 0);
    /* Same page table, neighbouring slots still empty. */
    assert_int_equal(pt_lookup(&f->pt, 0xf000), 0);
    assert_int_equal(pt_lookup(&f->pt, 0x11000), 0);
    /* Other subtrees entirely absent. */
    assert_int_equal(pt_lookup(&f->pt, GIB), 0);
    assert_int_equal(pt_lookup(&f->pt, USER_TOP - PAGE), 0);
    /* Non-canonical or kernel-half addresses are never user mappings. */
    assert_int_equal(pt_lookup(&f->pt, USER_TOP), 0);
    assert_int_equal(pt_lookup(&f->pt, 0xffff800000010000ull), 0);
    assert_int_equal(pt_lookup(&f->pt, UINT64_MAX), 0);
}

static void test_map_rejects_bad_ranges(void **state)
{
    struct fixture *f = *state;
    struct paging before = f->pt;
    /* Unaligned va, pa or length. */
    assert_int_equal(pt_map(&f->pt, 0x10001, 0x10000, PAGE, 0), -EINVAL);
    assert_int_equal(pt_map(&f->pt, 0x10000, 0x10010, PAGE, 0), -EINVAL);
    assert_int_equal(pt_map(&f->pt, 0x10000, 0x10000, PAGE + 1, 0), -EINVAL);
    /* va + len wraps around. */
    assert_int_equal(pt_map(&f->pt, 0xfffffffffffff000ull, 0x10000, 2 * PAGE, 0), -EINVAL);
    assert_int_equal(pt_map(&f->pt, 0xfffffffffffff000ull, 0x10000, PAGE, 0), -EINVAL);
    /* Non-canonical: starting at, or running past, 1 << 47. */
    assert_int_equal(pt_map(&f->pt, USER_TOP, 0x10000, PAGE, 0), -EINVAL);
    assert_int_equal(pt_map(&f->pt, USER_TOP - PAGE, 0x10000, 2 * PAGE, 0), -EINVAL);
    assert_int_equal(pt_map(&f->pt, 0xffff800000000000ull, 0x10000, PAGE, 0), -EINVAL);
    /* Physical range outside memory or wrapping. */
    assert_int_equal(pt_map(&f->pt, 0x10000, MEM_SIZE, PAGE, 0), -EINVAL);
    assert_int_equal(pt_map(&f->pt, 0x10000, MEM_SIZE - PAGE, 2 * PAGE, 0), -EINVAL);
    assert_int_equal(pt_map(&f->pt, 0x10000, 0xfffffffffffff000ull, 2 * PAGE, 0), -EINVAL);
    /* Nothing was mapped and no table was allocated by the refusals. */
    assert_int_equal(pt_lookup(&f->pt, 0x10000), 0);
    assert_int_equal(pt_lookup(&f->pt, USER_TOP - PAGE), 0);
    assert_int_equal(f->pt.pool_next, before.pool_next);
    /* The last canonical page itself is fine. */
    assert_int_equal(pt_map(&f->pt, USER_TOP - PAGE, 0x10000, PAGE, PTE_U), 0);
    assert_int_equal(pt_lookup(&f->pt, USER_TOP - PAGE), 0x10000 | PTE_P | PTE_A | PTE_U);
}

static void test_pool_exhaustion_is_enomem_and_keeps_earlier_mappings(void **state)
{
    struct fixture *f = *state;
    /* Four pages: the PML4 plus one PDPT, PD and PT. */
    struct paging pt;
    assert_int_equal(pt_init(&pt, f->mem, MEM_SIZE, POOL_START, POOL_START + 4 * PAGE), 0);
    assert_int_equal(pt_map(&pt, 0x10000, 0x10000, PAGE, PTE_U | PTE_W), 0);
    assert_int_equal(pt.pool_next, pt.pool_end);

    /* A page under another PD entry needs a fifth table. */
    assert_int_equal(pt_map(&pt, 0x200000, 0x200000, PAGE, PTE_U), -ENOMEM);
    assert_int_equal(pt_map(&pt, GIB, 0x200000, PAGE, PTE_U), -ENOMEM);
    assert_int_equal(pt_map_mmio(&pt, 0x400000, MEM_SIZE, PTE_U), -ENOMEM);
    /* A range whose first page fits and whose second does not. */
    assert_int_equal(pt_map(&pt, 0x1ff000, 0x1ff000, 2 * PAGE, PTE_U), -ENOMEM);

    assert_int_equal(pt_lookup(&pt, 0x10000), 0x10000 | PTE_P | PTE_A | PTE_U | PTE_W);
    assert_int_equal(pt_lookup(&pt, 0x200000), 0);
    assert_int_equal(pt_lookup(&pt, GIB), 0);
    /* Pages under the existing table can still be mapped: the failure broke nothing. */
    assert_int_equal(pt_map(&pt, 0x11000, 0x11000, PAGE, PTE_U), 0);
    assert_int_equal(pt_lookup(&pt, 0x11000), 0x11000 | PTE_P | PTE_A | PTE_U);
    /* The pool never handed out memory past its end. */
    assert_int_equal(pt.pool_next, POOL_START + 4 * PAGE);
}

static void test_pool_of_one_page_holds_only_the_root(void **state)
{
    struct fixture *f = *state;
    struct paging pt;
    assert_int_equal(pt_init(&pt, f->mem, MEM_SIZE, POOL_START, POOL_START + PAGE), 0);
    assert_int_equal(pt_map(&pt, 0x10000, 0x10000, PAGE, PTE_U), -ENOMEM);
    assert_int_equal(pt_lookup(&pt, 0x10000), 0);
}

static void test_protect_changes_only_present_pages(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(pt_map(&f->pt, 0x10000, 0x10000, PAGE, PTE_U | PTE_W), 0);
    assert_int_equal(pt_map(&f->pt, 0x12000, 0x12000, PAGE, PTE_U), 0);
    /* 0x11000 is absent inside the range, 0x400000 has no page table at all. */
    assert_int_equal(pt_protect(&f->pt, 0x10000, 3 * PAGE, PTE_U | PTE_NX), 0);
    assert_int_equal(pt_lookup(&f->pt, 0x10000), 0x10000 | PTE_P | PTE_A | PTE_U | PTE_NX);
    assert_int_equal(pt_lookup(&f->pt, 0x11000), 0);
    assert_int_equal(pt_lookup(&f->pt, 0x12000), 0x12000 | PTE_P | PTE_A | PTE_U | PTE_NX);
    assert_int_equal(*leaf_entry(&f->pt, 0x11000), 0);

    uint64_t pool_before = f->pt.pool_next;
    assert_int_equal(pt_protect(&f->pt, 0x400000, 4 * PAGE, PTE_U | PTE_W), 0);
    assert_int_equal(pt_lookup(&f->pt, 0x400000), 0);
    assert_int_equal(f->pt.pool_next, pool_before);      /* protect never builds tables */

    /* Rights can be dropped entirely: the page stays present for the host, but is no
     * longer a user page. */
    assert_int_equal(pt_protect(&f->pt, 0x10000, PAGE, 0), 0);
    assert_int_equal(pt_lookup(&f->pt, 0x10000), 0x10000 | PTE_P | PTE_A);
    /* Flags outside W|U|NX are not accepted through protect either. */
    assert_int_equal(pt_protect(&f->pt, 0x12000, PAGE, PTE_W | PTE_PS | (1ull << 30)), 0);
    assert_int_equal(pt_lookup(&f->pt, 0x12000), 0x12000 | PTE_P | PTE_A | PTE_W);
}

static void test_protect_rejects_bad_ranges(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(pt_map(&f->pt, 0x10000, 0x10000, PAGE, PTE_U), 0);
    assert_int_equal(pt_protect(&f->pt, 0x10800, PAGE, PTE_U | PTE_W), -EINVAL);
    assert_int_equal(pt_protect(&f->pt, 0x10000, 100, PTE_U | PTE_W), -EINVAL);
    assert_int_equal(pt_protect(&f->pt, 0xfffffffffffff000ull, 2 * PAGE, PTE_U), -EINVAL);
    assert_int_equal(pt_protect(&f->pt, USER_TOP - PAGE, 2 * PAGE, PTE_U), -EINVAL);
    assert_int_equal(pt_lookup(&f->pt, 0x10000), 0x10000 | PTE_P | PTE_A | PTE_U);
}

static void test_protect_keeps_address_and_dirty_bit(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(pt_map(&f->pt, 0x10000, 0x30000, PAGE, PTE_U | PTE_W), 0);
    *leaf_entry(&f->pt, 0x10000) |= PTE_D;          /* as the CPU does on a write */
    assert_int_equal(pt_protect(&f->pt, 0x10000, PAGE, PTE_U), 0);
    assert_int_equal(pt_lookup(&f->pt, 0x10000), 0x30000 | PTE_P | PTE_A | PTE_D | PTE_U);
}

static void test_map_mmio(void **state)
{
    struct fixture *f = *state;
    uint64_t pool_before = f->pt.pool_next;
    /* Physical addresses inside memory would alias RAM: refused. */
    assert_int_equal(pt_map_mmio(&f->pt, 0xa000, 0, PTE_U | PTE_W), -EINVAL);
    assert_int_equal(pt_map_mmio(&f->pt, 0xa000, 0x10000, PTE_U | PTE_W), -EINVAL);
    assert_int_equal(pt_map_mmio(&f->pt, 0xa000, MEM_SIZE - PAGE, PTE_U | PTE_W), -EINVAL);
    /* Unaligned physical or virtual address, non-canonical virtual address. */
    assert_int_equal(pt_map_mmio(&f->pt, 0xa000, MEM_SIZE + 8, PTE_U | PTE_W), -EINVAL);
    assert_int_equal(pt_map_mmio(&f->pt, 0xa008, MEM_SIZE, PTE_U | PTE_W), -EINVAL);
    assert_int_equal(pt_map_mmio(&f->pt, USER_TOP, MEM_SIZE, PTE_U | PTE_W), -EINVAL);
    assert_int_equal(f->pt.pool_next, pool_before);    /* refused before building tables */

    /* Just past memory: the entry exists for the CPU... */
    assert_int_equal(pt_map_mmio(&f->pt, 0xa000, MEM_SIZE, PTE_U | PTE_W | PTE_NX | PTE_PS), 0);
    assert_int_equal(*leaf_entry(&f->pt, 0xa000),
                     MEM_SIZE | PTE_P | PTE_A | PTE_U | PTE_W | PTE_NX);
    /* ...but is never a page of memory the host would hand out. */
    assert_int_equal(pt_lookup(&f->pt, 0xa000), 0);
}

static void test_corrupt_top_level_entry_is_not_followed(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(pt_map(&f->pt, 0x10000, 0x10000, PAGE, PTE_U), 0);
    uint64_t va = 3 * (1ull << 39);            /* PML4 slot 3: unused so far */
    uint64_t bogus[] = {
        (MEM_SIZE) | PTE_P | PTE_W | PTE_U,                    /* just past: the guard */
        (MEM_SIZE + 8 * MIB) | PTE_P | PTE_W | PTE_U,          /* inside the guard */
        (MEM_SIZE + 64 * GIB) | PTE_P | PTE_W | PTE_U,         /* far past memory */
        PTE_ADDR_MASK | PTE_P | PTE_W | PTE_U,                 /* highest address */
        (MEM_SIZE - PAGE) | PTE_P | PTE_W | PTE_U | PTE_PS,    /* a large page */
    };
    for (size_t i = 0; i < sizeof bogus / sizeof bogus[0]; i++) {
        *pml4_entry(&f->pt, va) = bogus[i];
        assert_int_equal(pt_lookup(&f->pt, va), 0);
        assert_int_equal(pt_lookup(&f->pt, va + 0x12345000), 0);
        /* Building under a broken entry fails instead of writing out of bounds. */
        assert_int_not_equal(pt_map(&f->pt, va, 0x20000, PAGE, PTE_U), 0);
        assert_int_equal(pt_protect(&f->pt, va, 16 * PAGE, PTE_U | PTE_W), 0);
        assert_int_equal(*pml4_entry(&f->pt, va), bogus[i]);
    }
    /* Other subtrees are unaffected. */
    assert_int_equal(pt_lookup(&f->pt, 0x10000), 0x10000 | PTE_P | PTE_A | PTE_U);
}

static void test_corrupt_leaf_pointing_outside_memory_is_not_a_mapping(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(pt_map(&f->pt, 0x10000, 0x10000, PAGE, PTE_U | PTE_W), 0);
    *leaf_entry(&f->pt, 0x10000) = (MEM_SIZE + PAGE) | PTE_P | PTE_A | PTE_U | PTE_W;
    assert_int_equal(pt_lookup(&f->pt, 0x10000), 0);
    /* A corrupt middle-level entry (page directory) as well. */
    uint64_t *pdpt = (uint64_t *)(f->mem + (*pml4_entry(&f->pt, 0x10000) & PTE_ADDR_MASK));
    uint64_t *pd = (uint64_t *)(f->mem + (pdpt[0] & PTE_ADDR_MASK));
    pd[0] = (8 * GIB) | PTE_P | PTE_W | PTE_U;
    assert_int_equal(pt_lookup(&f->pt, 0x10000), 0);
}

static void test_remap_keeps_dirty_bit(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(pt_map(&f->pt, 0x10000, 0x10000, 2 * PAGE, PTE_U), 0);
    assert_false(pt_lookup(&f->pt, 0x10000) & PTE_D);          /* a fresh map is clean */
    *leaf_entry(&f->pt, 0x10000) |= PTE_D;
    assert_int_equal(pt_map(&f->pt, 0x10000, 0x10000, 2 * PAGE, PTE_U | PTE_W | PTE_NX), 0);
    assert_int_equal(pt_lookup(&f->pt, 0x10000),
                     0x10000 | PTE_P | PTE_A | PTE_D | PTE_U | PTE_W | PTE_NX);
    /* The clean neighbour did not gain a D bit. */
    assert_int_equal(pt_lookup(&f->pt, 0x11000), 0x11000 | PTE_P | PTE_A | PTE_U | PTE_W | PTE_NX);
    /* Rights can also be reduced by remapping; D still survives. */
    assert_int_equal(pt_map(&f->pt, 0x10000, 0x10000, PAGE, PTE_U), 0);
    assert_int_equal(pt_lookup(&f->pt, 0x10000), 0x10000 | PTE_P | PTE_A | PTE_D | PTE_U);
}

static void test_tables_come_from_the_pool_only(void **state)
{
    struct fixture *f = *state;
    uint64_t before = f->pt.pool_next;
    assert_int_equal(pt_map(&f->pt, 0x10000, 0x10000, PAGE, PTE_U), 0);
    assert_int_equal(f->pt.pool_next, before + 3 * PAGE);      /* PDPT, PD, PT */
    assert_int_equal(pt_map(&f->pt, 0x11000, 0x11000, PAGE, PTE_U), 0);
    assert_int_equal(f->pt.pool_next, before + 3 * PAGE);      /* same PT reused */
    uint64_t table = *pml4_entry(&f->pt, 0x10000) & PTE_ADDR_MASK;
    assert_true(table >= POOL_START && table < MEM_SIZE);
}

struct frames {
    uint64_t frame[16];
    size_t count;
};

static void collect_frame(void *ctx, uint64_t frame)
{
    struct frames *fr = ctx;
    if (fr->count < sizeof fr->frame / sizeof fr->frame[0])
        fr->frame[fr->count] = frame;
    fr->count++;
}

static void test_scan_dirty_reports_and_clears(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(pt_map(&f->pt, 0x10000, 0x10000, 3 * PAGE, PTE_U | PTE_W), 0);
    assert_int_equal(pt_map(&f->pt, 3 * GIB, 0x40000, PAGE, PTE_U | PTE_W), 0);
    assert_int_equal(pt_map_mmio(&f->pt, 0xa000, MEM_SIZE, PTE_U | PTE_W), 0);
    *leaf_entry(&f->pt, 0x11000) |= PTE_D;
    *leaf_entry(&f->pt, 3 * GIB) |= PTE_D;
    *leaf_entry(&f->pt, 0xa000) |= PTE_D;            /* not memory: never reported */

    struct frames fr = { 0 };
    assert_int_equal(pt_scan_dirty(&f->pt, false, collect_frame, &fr), 5);
    assert_int_equal(fr.count, 2);
    /* Frames are physical addresses, in table order. */
    assert_int_equal(fr.frame[0], 0x11000);
    assert_int_equal(fr.frame[1], 0x40000);
    /* Reporting leaves the bits alone. */
    assert_true(pt_lookup(&f->pt, 0x11000) & PTE_D);

    assert_int_equal(pt_scan_dirty(&f->pt, true, collect_frame, &fr), 5);
    assert_int_equal(fr.count, 2);                    /* clearing reports nothing */
    assert_int_equal(pt_lookup(&f->pt, 0x11000), 0x11000 | PTE_P | PTE_A | PTE_U | PTE_W);
    assert_int_equal(pt_lookup(&f->pt, 3 * GIB), 0x40000 | PTE_P | PTE_A | PTE_U | PTE_W);
    assert_false(*leaf_entry(&f->pt, 0xa000) & PTE_D);
    /* The upper levels lost their A bits: no CPU has walked them since, so nothing is
     * followed. */
    assert_false(*pml4_entry(&f->pt, 0x11000) & PTE_A);
    assert_false(*pml4_entry(&f->pt, 3 * GIB) & PTE_A);
    fr.count = 0;
    assert_int_equal(pt_scan_dirty(&f->pt, false, collect_frame, &fr), 0);
    assert_int_equal(fr.count, 0);
}

/* What the CPU does on an access to va: it sets A in every entry it walks, and D in the
 * leaf when it writes. */
static void cpu_access(struct paging *pt, uint64_t va, bool write)
{
    uint64_t table = pt->root;
    for (int level = 3; level >= 0; level--) {
        uint64_t *e = (uint64_t *)(pt->mem + table) + ((va >> (12 + 9 * level)) & 511);
        assert_true(*e & PTE_P);
        *e |= PTE_A | (level == 0 && write ? PTE_D : 0);
        table = *e & PTE_ADDR_MASK;
    }
}

/* After the fork's clear, a scan follows only the tables walked since, and finds a write
 * wherever it lands: in a table walked by an earlier request, or in one whose upper
 * entries no access has walked since the clear. */
static void test_scan_dirty_follows_walked_tables(void **state)
{
    struct fixture *f = *state;
    const uint64_t far = 600 * GIB;                   /* another PML4 entry */
    assert_int_equal(pt_map(&f->pt, 0x10000, 0x10000, 3 * PAGE, PTE_U | PTE_W), 0);
    assert_int_equal(pt_map(&f->pt, 0x200000, 0x20000, 2 * PAGE, PTE_U | PTE_W), 0);
    assert_int_equal(pt_map(&f->pt, 3 * GIB, 0x40000, PAGE, PTE_U | PTE_W), 0);
    assert_int_equal(pt_map(&f->pt, far, 0x50000, PAGE, PTE_U | PTE_W), 0);
    struct frames fr = { 0 };
    assert_int_equal(pt_scan_dirty(&f->pt, true, NULL, NULL), 7);     /* the fork's clear */

    /* First request: writes one page; only its table (3 leaves) is scanned. */
    cpu_access(&f->pt, 0x11000, true);
    assert_int_equal(pt_scan_dirty(&f->pt, false, collect_frame, &fr), 3);
    assert_int_equal(fr.count, 1);
    assert_int_equal(fr.frame[0], 0x11000);

    /* Next request: a write under a PDPT entry and a PD entry walked by nobody since. */
    fr.count = 0;
    cpu_access(&f->pt, 3 * GIB, true);
    assert_int_equal(pt_scan_dirty(&f->pt, false, collect_frame, &fr), 4);
    assert_int_equal(fr.count, 2);
    assert_int_equal(fr.frame[0], 0x11000);           /* D bits stay: the working set */
    assert_int_equal(fr.frame[1], 0x40000);

    /* Under a PML4 entry walked by nobody since. */
    fr.count = 0;
    cpu_access(&f->pt, far, true);
    assert_int_equal(pt_scan_dirty(&f->pt, false, collect_frame, &fr), 5);
    assert_int_equal(fr.count, 3);
    assert_int_equal(fr.frame[2], 0x50000);

    /* A read walks its table (scanned from now on) but dirties nothing. */
    fr.count = 0;
    cpu_access(&f->pt, 0x201000, false);
    assert_int_equal(pt_scan_dirty(&f->pt, false, collect_frame, &fr), 7);
    assert_int_equal(fr.count, 3);
}

/* The page-directory entry above va's leaf table. */
static uint64_t *pd_entry(struct paging *pt, uint64_t va)
{
    uint64_t pdpt = *pml4_entry(pt, va) & PTE_ADDR_MASK;
    uint64_t pd = ((uint64_t *)(pt->mem + pdpt))[(va >> 30) & 511] & PTE_ADDR_MASK;
    return &((uint64_t *)(pt->mem + pd))[(va >> 21) & 511];
}

/* pt_clean clears the D bit of an identity-mapped leaf only; pruning then clears the A bit
 * above a table with no D bit left, so the scan skips it, and keeps the way to a dirty
 * leaf. A later write walks (and sets A) again and is found. */
static void test_prune_clean_skips_tables_left_clean(void **state)
{
    struct fixture *f = *state;
    const uint64_t other = 0x400000;                  /* another leaf table */
    assert_int_equal(pt_map(&f->pt, 0x10000, 0x10000, 2 * PAGE, PTE_U | PTE_W), 0);
    assert_int_equal(pt_map(&f->pt, other, other, PAGE, PTE_U | PTE_W), 0);
    assert_int_equal(pt_map(&f->pt, 0x200000, 0x20000, PAGE, PTE_U | PTE_W), 0);
    assert_int_equal(pt_scan_dirty(&f->pt, true, NULL, NULL), 4);
    cpu_access(&f->pt, 0x10000, true);
    cpu_access(&f->pt, other, true);
    cpu_access(&f->pt, 0x200000, true);
    pt_clean(&f->pt, other);
    pt_clean(&f->pt, 0x20000);                 /* not where 0x20000 is mapped: no change */
    assert_false(*leaf_entry(&f->pt, other) & PTE_D);
    assert_true(*leaf_entry(&f->pt, 0x200000) & PTE_D);
    pt_clean(&f->pt, 0x10000);
    *leaf_entry(&f->pt, 0x200000) &= ~PTE_D;
    cpu_access(&f->pt, 0x11000, true);
    assert_int_equal(pt_prune_clean(&f->pt), 4);
    assert_false(*pd_entry(&f->pt, other) & PTE_A);
    assert_false(*pd_entry(&f->pt, 0x200000) & PTE_A);
    assert_true(*pd_entry(&f->pt, 0x10000) & PTE_A);
    assert_true(*pml4_entry(&f->pt, 0x10000) & PTE_A);
    struct frames fr = { 0 };
    assert_int_equal(pt_scan_dirty(&f->pt, false, collect_frame, &fr), 2);
    assert_int_equal(fr.count, 1);
    assert_int_equal(fr.frame[0], 0x11000);
    cpu_access(&f->pt, other, true);
    fr.count = 0;
    assert_int_equal(pt_scan_dirty(&f->pt, false, collect_frame, &fr), 3);
    assert_int_equal(fr.count, 2);
    assert_int_equal(fr.frame[1], other);
}

static void test_scan_dirty_skips_corrupt_entries(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(pt_map(&f->pt, 0x10000, 0x10000, PAGE, PTE_U | PTE_W), 0);
    *leaf_entry(&f->pt, 0x10000) |= PTE_D;
    *pml4_entry(&f->pt, 2 * (1ull << 39)) = (MEM_SIZE + 8 * MIB) | PTE_P | PTE_W | PTE_U;
    *pml4_entry(&f->pt, 4 * (1ull << 39)) = PTE_ADDR_MASK | PTE_P | PTE_W | PTE_U;
    *pml4_entry(&f->pt, 5 * (1ull << 39)) = 0x10000 | PTE_P | PTE_PS;
    struct frames fr = { 0 };
    assert_int_equal(pt_scan_dirty(&f->pt, false, collect_frame, &fr), 1);
    assert_int_equal(fr.count, 1);
    assert_int_equal(fr.frame[0], 0x10000);
    /* A dirty leaf pointing outside memory is not reported either. */
    *leaf_entry(&f->pt, 0x10000) = (MEM_SIZE + PAGE) | PTE_P | PTE_D | PTE_U;
    fr.count = 0;
    assert_int_equal(pt_scan_dirty(&f->pt, false, collect_frame, &fr), 1);
    assert_int_equal(fr.count, 0);
}

static bool ws_has(const struct working_set *ws, uint64_t page)
{
    for (size_t i = 0; i < ws->count; i++)
        if (ws->pages[i] == page)
            return true;
    return false;
}

static void test_edits_are_tracked(void **state)
{
    struct fixture *f = *state;
    struct working_set ws;
    assert_int_equal(ws_init(&ws, MEM_SIZE), 0);
    f->pt.track = &ws;
    uint64_t next = f->pt.pool_next;
    assert_int_equal(pt_map(&f->pt, 0x10000, 0x10000, PAGE, PTE_U), 0);
    /* The root (new entry) and the three new tables: the pages a reset must restore. */
    assert_int_equal(ws.count, 4);
    assert_true(ws_has(&ws, f->pt.root));
    for (uint64_t t = next; t < next + 3 * PAGE; t += PAGE)
        assert_true(ws_has(&ws, t));
    /* Reading and no-op protects edit nothing. */
    assert_int_not_equal(pt_lookup(&f->pt, 0x10000), 0);
    assert_int_equal(pt_protect(&f->pt, 0x400000, 8 * PAGE, PTE_U | PTE_W), 0);
    assert_int_equal(ws.count, 4);
    /* A second page table under the same directory: one more page. */
    assert_int_equal(pt_map(&f->pt, 0x200000, 0x200000, PAGE, PTE_U), 0);
    assert_int_equal(ws.count, 5);
    assert_true(ws_has(&ws, next + 3 * PAGE));
    /* Nothing outside the pool was ever recorded: tables are all the host edits here. */
    for (size_t i = 0; i < ws.count; i++)
        assert_true(ws.pages[i] >= POOL_START && ws.pages[i] < MEM_SIZE);
    f->pt.track = NULL;
    ws_free(&ws);
}

/* The entry that maps va at `level` (3 = PML4 ... 0 = PT) of a mapped address. */
static uint64_t *entry_of(struct fixture *f, uint64_t va, int level)
{
    uint64_t table = f->pt.root;
    for (int l = 3;; l--) {
        uint64_t *e = (uint64_t *)(f->mem + table) + ((va >> (12 + 9 * l)) & 511);
        if (l == level)
            return e;
        table = *e & PTE_ADDR_MASK;
    }
}

/* A snapshot's tables (pt_valid): all in the pool, a tree, leaves outside the pool. */
static void test_valid_tables_from_a_file(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(pt_map(&f->pt, 0x400000, 0x400000, 4 * PAGE, PTE_U | PTE_W), 0);
    assert_int_equal(pt_map(&f->pt, 0x40000000, 0x200000, PAGE, PTE_U), 0);
    assert_int_equal(pt_map_mmio(&f->pt, 0xa000, MEM_SIZE, PTE_U | PTE_W), 0);
    assert_true(pt_valid(&f->pt, POOL_START));

    uint64_t *leaf = entry_of(f, 0x400000, 0), saved = *leaf;
    *leaf = (saved & ~PTE_ADDR_MASK) | POOL_START;     /* a leaf mapping the pool itself */
    assert_false(pt_valid(&f->pt, POOL_START));
    *leaf = saved;

    uint64_t *pd = entry_of(f, 0x40000000, 1), pd_saved = *pd;
    *pd |= PTE_PS;                                    /* a huge page */
    assert_false(pt_valid(&f->pt, POOL_START));
    *pd = (pd_saved & ~PTE_ADDR_MASK) | (*entry_of(f, 0x400000, 1) & PTE_ADDR_MASK);
    assert_false(pt_valid(&f->pt, POOL_START));      /* two entries sharing one table */
    *pd = (pd_saved & ~PTE_ADDR_MASK) | 0x200000;    /* a table outside the pool */
    assert_false(pt_valid(&f->pt, POOL_START));
    *pd = pd_saved;
    assert_true(pt_valid(&f->pt, POOL_START));

    struct paging bad = f->pt;
    bad.root = f->pt.pool_next;                       /* past the tables made */
    assert_false(pt_valid(&bad, POOL_START));
    bad = f->pt;
    bad.pool_next = bad.pool_end + PAGE;
    assert_false(pt_valid(&bad, POOL_START));
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_init_rejects_bad_pools),
        T(test_valid_tables_from_a_file),
        T(test_count_follows_flags_and_skips_absent_tables),
        T(test_map_sets_present_accessed_and_requested_flags),
        T(test_map_ignores_flags_it_does_not_own),
        T(test_map_range_and_virtual_differs_from_physical),
        T(test_lookup_of_unmapped_addresses_is_zero),
        T(test_map_rejects_bad_ranges),
        T(test_pool_exhaustion_is_enomem_and_keeps_earlier_mappings),
        T(test_pool_of_one_page_holds_only_the_root),
        T(test_protect_changes_only_present_pages),
        T(test_protect_rejects_bad_ranges),
        T(test_protect_keeps_address_and_dirty_bit),
        T(test_map_mmio),
        T(test_corrupt_top_level_entry_is_not_followed),
        T(test_corrupt_leaf_pointing_outside_memory_is_not_a_mapping),
        T(test_remap_keeps_dirty_bit),
        T(test_tables_come_from_the_pool_only),
        T(test_scan_dirty_reports_and_clears),
        T(test_scan_dirty_follows_walked_tables),
        T(test_prune_clean_skips_tables_left_clean),
        T(test_scan_dirty_skips_corrupt_entries),
        T(test_edits_are_tracked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
