/* Unit tests for the working set (vm/working_set.c) and the memory half of a fork's reset
 * (vm_reset_memory in vm/fork.c) when the working set cannot record a page: every door
 * through which a page is recorded (a host write, a page-table edit, a grant of rights, the
 * D-bit scan at reset) must leave the reset complete. Allocation failures are injected by
 * linking with --wrap=calloc,--wrap=realloc (see meson.build). The VMs are built by hand
 * without KVM: a master whose memory is a memfd, and a fork mapping it MAP_PRIVATE as
 * vm_fork does. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/units.h"
#include "vm/clock_page.h"
#include "vm/fork.h"
#include "vm/guest_mem.h"
#include "vm/host_pages.h"
#include "vm/layout.h"
#include "vm/vm.h"
#include "vm/working_set.h"

#define MEM_SIZE (256 * MIB)          /* two working-set chunks of 128 MiB */
#define DATA      0x100000ull         /* user RW, 'F' at the freeze */
#define UNMAPPED  0x101000ull         /* next to DATA, same page table, unmapped */
#define FAR_DATA  (160 * MIB)         /* user RW, 'F', in the second chunk */

/* Allocations left before one fails (-1: none fails); with failures_persist, every one
 * after that fails too. */
static int allocs_until_failure = -1;
static bool failures_persist;

void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t size);

static bool inject_failure(void)
{
    if (allocs_until_failure < 0)
        return false;
    if (allocs_until_failure > 0) {
        allocs_until_failure--;
        return false;
    }
    if (!failures_persist)
        allocs_until_failure = -1;
    return true;
}

void *__wrap_calloc(size_t n, size_t size)
{
    return inject_failure() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t size)
{
    return inject_failure() ? NULL : __real_realloc(p, size);
}

struct fixture {
    struct vm master, child;
    struct vm_snapshot snap;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    struct vm *m = &f->master;
    m->mem_fd = memfd_create("kvms-test-frozen", 0);
    if (m->mem_fd < 0 || ftruncate(m->mem_fd, MEM_SIZE) < 0)
        return -1;
    m->mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, m->mem_fd, 0);
    if (m->mem == MAP_FAILED)
        return -1;
    m->mem_size = MEM_SIZE;
    uint64_t pool = ((MEM_SIZE / 512) + 2 * MIB) & ~(PAGE - 1);    /* as vm_create */
    m->user_end = MEM_SIZE - pool;
    if (pt_init(&m->pt, m->mem, MEM_SIZE, m->user_end, MEM_SIZE) ||
        pt_map(&m->pt, DATA, DATA, PAGE, PTE_U | PTE_W | PTE_NX) ||
        pt_map(&m->pt, FAR_DATA, FAR_DATA, PAGE, PTE_U | PTE_W | PTE_NX))
        return -1;
    memset(m->mem + DATA, 'F', PAGE);
    memset(m->mem + FAR_DATA, 'F', PAGE);
    f->snap = (struct vm_snapshot){ .master = m, .pt = m->pt };
    if (vm_snapshot_memory(&f->snap, m))
        return -1;

    /* The memory part of vm_fork. */
    struct vm *c = &f->child;
    c->vm_fd = c->vcpu_fd = c->mem_fd = -1;
    c->origin = &f->snap;
    c->mem_size = MEM_SIZE;
    c->user_end = m->user_end;
    c->mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE,
                  m->mem_fd, 0);
    if (c->mem == MAP_FAILED)
        return -1;
    transport_init(c);
    if (ws_init(&c->ws, MEM_SIZE) || ws_init(&c->granted, MEM_SIZE))
        return -1;
    c->pt = m->pt;
    c->pt.mem = c->mem;
    c->pt.track = &c->ws;
    c->pt.granted = &c->granted;
    ws_pin_range(&c->ws, CLOCK_PAGE_ADDR, PAGE);
    ws_pin_range(&c->ws, SHARED_PAGE_ADDR, PAGE);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    allocs_until_failure = -1;
    failures_persist = false;
    ws_free(&f->child.ws);
    ws_free(&f->child.granted);
    transport_destroy(&f->child);
    munmap(f->child.mem, MEM_SIZE);
    munmap(f->master.mem, MEM_SIZE);
    close(f->master.mem_fd);
    vm_snapshot_free(&f->snap);
    free(f);
    return 0;
}

/* What the guest does when it writes a page: the bytes, the A bit in every entry the CPU
 * walks and the D bit in its leaf. */
static void guest_write(struct vm *vm, uint64_t va, char c)
{
    uint64_t table = vm->pt.root;
    for (int level = 3; level >= 0; level--) {
        uint64_t *e = (uint64_t *)(vm->mem + table) + ((va >> (12 + 9 * level)) & 511);
        assert_true(*e & PTE_P);
        *e |= PTE_A | (level == 0 ? PTE_D : 0);
        table = *e & PTE_ADDR_MASK;
    }
    memset(vm->mem + va, c, PAGE);
}

/* The table pages as frozen, but for A and D bits: those record what this fork walked and
 * wrote (its working set). */
static void assert_tables_frozen(struct fixture *f)
{
    const uint64_t *child = (const uint64_t *)(f->child.mem + f->child.user_end);
    const uint64_t *frozen = (const uint64_t *)(f->master.mem + f->child.user_end);
    for (uint64_t i = 0; i < (MEM_SIZE - f->child.user_end) / sizeof *child; i++)
        assert_int_equal(child[i] & ~(PTE_A | PTE_D), frozen[i] & ~(PTE_A | PTE_D));
}

static void assert_frozen(struct fixture *f)
{
    struct vm *c = &f->child;
    for (uint64_t page = 0; page < c->user_end; page += 64 * PAGE)
        assert_memory_equal(c->mem + page, f->master.mem + page, PAGE);
    assert_tables_frozen(f);
    assert_memory_equal(c->mem + DATA, f->master.mem + DATA, PAGE);
    assert_memory_equal(c->mem + FAR_DATA, f->master.mem + FAR_DATA, PAGE);
    /* The mappings too (D bits stay set in a fork: they mark its working set). */
    assert_int_equal(pt_lookup(&c->pt, DATA) & ~PTE_D, pt_lookup(&f->master.pt, DATA));
    assert_int_equal(pt_lookup(&c->pt, FAR_DATA) & ~PTE_D, pt_lookup(&f->master.pt, FAR_DATA));
    assert_int_equal(pt_lookup(&c->pt, UNMAPPED), 0);
    assert_false(c->ws.lost);
    assert_false(c->granted.lost);
}

static void reset_ok(struct fixture *f, bool expect_full)
{
    struct vm_reset_stats st;
    assert_int_equal(vm_reset_memory(&f->child, &st), 0);
    assert_int_equal(st.full, expect_full);
    assert_frozen(f);
}

static void test_recorded_writes_are_restored(void **state)
{
    struct fixture *f = *state;
    guest_write(&f->child, DATA, 'G');
    guest_write(&f->child, FAR_DATA, 'G');
    assert_int_equal(gm_write(&f->child, DATA + 10, "host", 4), 0);
    assert_int_equal(vm_map(&f->child, UNMAPPED, PAGE, PROT_READ | PROT_WRITE), 0);
    guest_write(&f->child, UNMAPPED, 'G');
    reset_ok(f, false);
    /* The pages stay in the working set; the frame that gained rights does not. */
    assert_true(ws_contains(&f->child.ws, DATA));
    assert_true(ws_contains(&f->child.ws, FAR_DATA));
    assert_false(ws_contains(&f->child.ws, UNMAPPED));
    assert_int_equal(f->child.granted.count, 0);
}

/* Resets until DATA, kept since the last reset, is released: returns how many it took. */
static unsigned resets_until_released(struct fixture *f)
{
    for (unsigned n = 1; n <= 2 * WS_KEEP_MAX; n++) {
        struct vm_reset_stats st;
        assert_int_equal(vm_reset_memory(&f->child, &st), 0);
        assert_frozen(f);
        if (!ws_contains(&f->child.ws, DATA)) {
            assert_int_equal(st.pages_released, 1);
            assert_int_equal(st.pages_restored, f->child.ws.count);
            return n;
        }
        assert_int_equal(st.pages_released, 0);
    }
    fail_msg("DATA was never released");
    return 0;
}

/* A page no request writes any more stops being copied: it is dropped back to the image with
 * its D bit clear, so that a new write is seen; written again right after, it is kept
 * WS_KEEP_GROWTH times as long. The host's own pages are never released. */
static void test_unwritten_pages_are_released(void **state)
{
    struct fixture *f = *state;
    struct vm *c = &f->child;
    guest_write(c, DATA, 'G');
    reset_ok(f, false);
    assert_true(ws_contains(&c->ws, DATA));
    assert_int_equal(resets_until_released(f), WS_KEEP_FIRST - 1);
    assert_false(pt_lookup(&c->pt, DATA) & PTE_D);
    assert_memory_equal(c->mem + DATA, f->master.mem + DATA, PAGE);

    guest_write(c, DATA, 'H');           /* the next request writes it again */
    reset_ok(f, false);
    assert_true(ws_contains(&c->ws, DATA));
    assert_int_equal(resets_until_released(f), WS_KEEP_GROWTH * WS_KEEP_FIRST - 1);

    reset_ok(f, false);                  /* one request leaves it alone: back to the start */
    guest_write(c, DATA, 'I');
    reset_ok(f, false);
    assert_int_equal(resets_until_released(f), WS_KEEP_FIRST - 1);
    assert_true(ws_contains(&c->ws, CLOCK_PAGE_ADDR));
    assert_true(ws_contains(&c->ws, SHARED_PAGE_ADDR));
}

/* A page every request changes stays kept: when its keep time is over it differs from the
 * image, so it is kept longer instead of being dropped and faulted back. Once requests stop
 * changing it (writing back its frozen contents counts as leaving it), it is released. */
static void test_pages_still_written_stay_kept(void **state)
{
    struct fixture *f = *state;
    struct vm *c = &f->child;
    guest_write(c, DATA, 'G');
    reset_ok(f, false);
    for (unsigned n = 0; n < 2 * WS_KEEP_MAX; n++) {
        memset(c->mem + DATA, 'G', PAGE);        /* a kept page's write sets no D bit */
        struct vm_reset_stats st;
        assert_int_equal(vm_reset_memory(c, &st), 0);
        assert_frozen(f);
        assert_int_equal(st.pages_released, 0);
        assert_true(ws_contains(&c->ws, DATA));
    }
    memset(c->mem + DATA, 'F', PAGE);
    unsigned n = resets_until_released(f);
    assert_true(n >= 1 && n <= WS_KEEP_MAX);
    assert_false(pt_lookup(&c->pt, DATA) & PTE_D);
}

/* Discarding a fork's pages (munmap, MAP_FIXED, MADV_DONTNEED) leaves zeros, whether the
 * fork touched them or not, and looks only at the pages the host populated: an untouched
 * page of a hole of the image stays unpopulated and out of the working set, and the reset
 * brings the frozen contents back. */
static void test_discarded_fork_pages_read_zero(void **state)
{
    struct fixture *f = *state;
    struct vm *c = &f->child;
    bool populated[3];
    uint64_t hole = UNMAPPED + PAGE;            /* never written by the master either */
    guest_write(c, FAR_DATA, 'G');
    assert_int_equal(vm_discard(c, DATA, PAGE), 0);          /* untouched, frozen 'F' */
    assert_int_equal(vm_discard(c, FAR_DATA, PAGE), 0);      /* written by the fork */
    assert_int_equal(vm_discard(c, UNMAPPED, 2 * PAGE), 0);  /* untouched holes */
    assert_true(page_is_zero(c->mem + DATA));
    assert_true(page_is_zero(c->mem + FAR_DATA));
    assert_int_equal(host_pages_populated(c->mem + UNMAPPED, 2, populated), 0);
    assert_false(populated[0]);
    assert_false(populated[1]);
    assert_false(ws_contains(&c->ws, UNMAPPED));
    assert_false(ws_contains(&c->ws, hole));
    assert_true(page_is_zero(c->mem + UNMAPPED));
    assert_true(page_is_zero(c->mem + hole));
    assert_int_equal(host_pages_populated(c->mem + DATA, 1, populated), 0);
    assert_true(populated[0]);
    reset_ok(f, false);
}

static void test_working_set_records_allocation_failures(void **state)
{
    (void)state;
    struct working_set ws;
    assert_int_equal(ws_init(&ws, MEM_SIZE), 0);
    allocs_until_failure = 0;                   /* the chunk's byte map */
    assert_int_equal(ws_add_range(&ws, DATA, PAGE), 0);
    assert_true(ws.lost);
    assert_false(ws_contains(&ws, DATA));
    ws.lost = false;
    allocs_until_failure = 1;                   /* the byte map, then the page list */
    assert_int_equal(ws_add_range(&ws, DATA, PAGE), 0);
    assert_true(ws.lost);
    assert_int_equal(ws.count, 0);
    assert_int_equal(ws_add_range(&ws, DATA, 2 * PAGE), 2);
    ws_free(&ws);
}

/* A host write (a read() into guest memory) that the working set could not record. */
static void test_lost_host_write_makes_a_full_reset(void **state)
{
    struct fixture *f = *state;
    allocs_until_failure = 0;                   /* the second chunk's byte map */
    assert_int_equal(gm_write(&f->child, FAR_DATA, "secret", 6), 0);
    assert_true(f->child.ws.lost);
    reset_ok(f, true);
}

static void test_lost_host_span_makes_a_full_reset(void **state)
{
    struct fixture *f = *state;
    allocs_until_failure = 0;
    memcpy(vm_host_span(&f->child, FAR_DATA, 6), "secret", 6);
    assert_true(f->child.ws.lost);
    reset_ok(f, true);
}

/* A page-table edit whose table page could not be recorded: the mapping would survive. */
static void test_lost_table_edit_makes_a_full_reset(void **state)
{
    struct fixture *f = *state;
    allocs_until_failure = 3;   /* the grant's byte map, list and keep times, then the pool's
                                 * chunk */
    assert_int_equal(vm_map(&f->child, UNMAPPED, PAGE, PROT_READ | PROT_WRITE), 0);
    assert_true(f->child.ws.lost);
    assert_false(f->child.granted.lost);
    reset_ok(f, true);
}

/* A grant of rights that could not be recorded: its translation would survive. */
static void test_lost_grant_makes_a_full_reset(void **state)
{
    struct fixture *f = *state;
    allocs_until_failure = 1;                   /* the grant list */
    assert_int_equal(vm_map(&f->child, UNMAPPED, PAGE, PROT_READ | PROT_WRITE), 0);
    assert_true(f->child.granted.lost);
    guest_write(&f->child, UNMAPPED, 'G');
    reset_ok(f, true);
}

/* The D-bit scan at reset cannot record a page the guest wrote. */
static void test_lost_dirty_page_makes_a_full_reset(void **state)
{
    struct fixture *f = *state;
    guest_write(&f->child, FAR_DATA, 'G');
    allocs_until_failure = 0;                   /* during the scan: the second chunk */
    reset_ok(f, true);
    /* And the fork goes on: the next request's pages are recorded again. */
    guest_write(&f->child, FAR_DATA, 'H');
    reset_ok(f, false);
}

/* When even the full reset cannot allocate, the reset fails: the VM is stopped. */
static void test_reset_fails_when_nothing_can_be_allocated(void **state)
{
    struct fixture *f = *state;
    guest_write(&f->child, FAR_DATA, 'G');
    allocs_until_failure = 0;
    failures_persist = true;
    struct vm_reset_stats st;
    assert_true(vm_reset_memory(&f->child, &st) < 0);
    allocs_until_failure = -1;
    /* Failing to reset leaves no request data behind all the same. */
    assert_memory_equal(f->child.mem + FAR_DATA, f->master.mem + FAR_DATA, PAGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_recorded_writes_are_restored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unwritten_pages_are_released, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pages_still_written_stay_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_discarded_fork_pages_read_zero, setup, teardown),
        cmocka_unit_test(test_working_set_records_allocation_failures),
        cmocka_unit_test_setup_teardown(test_lost_host_write_makes_a_full_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lost_host_span_makes_a_full_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lost_table_edit_makes_a_full_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lost_grant_makes_a_full_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lost_dirty_page_makes_a_full_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_fails_when_nothing_can_be_allocated, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
