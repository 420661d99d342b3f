/* Unit tests for the checked guest-memory accessors (vm/guest_mem.c) on a VM built by hand
 * without KVM: a host buffer as guest memory, the page-table pool at its top as in
 * vm_create, and pages mapped with pt_map to set up each case. */
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
#include "vm/guest_mem.h"
#include "vm/vm.h"

#define MEM_SIZE (64 * MIB)

/* Fixed spots, each with its own purpose (all below user_end). */
#define RW_PAGE     0x100000ull   /* user RW, the next page unmapped */
#define TWO_PAGES   0x200000ull   /* two user RW pages */
#define SUPERVISOR  0x300000ull   /* present, no PTE_U */
#define READ_ONLY   0x400000ull   /* user read-only, preceded by a user RW page */
#define ALIASED     0x500000ull   /* user RW but mapped to another physical page */
#define ALIAS_FRAME 0x600000ull

static struct vm *new_vm(void)
{
    struct vm *vm = calloc(1, sizeof *vm);
    if (!vm)
        return NULL;
    void *m = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) {
        free(vm);
        return NULL;
    }
    vm->mem = m;
    vm->mem_size = MEM_SIZE;
    vm->mem_fd = vm->vm_fd = vm->vcpu_fd = -1;
    uint64_t pool = ((MEM_SIZE / 512) + 2 * MIB) & ~(PAGE - 1);   /* as vm_create */
    vm->user_end = MEM_SIZE - pool;
    if (pt_init(&vm->pt, vm->mem, MEM_SIZE, vm->user_end, MEM_SIZE)) {
        munmap(m, MEM_SIZE);
        free(vm);
        return NULL;
    }
    return vm;
}

static int setup(void **state)
{
    struct vm *vm = new_vm();
    if (!vm)
        return -1;
    int err = pt_map(&vm->pt, RW_PAGE, RW_PAGE, PAGE, PTE_U | PTE_W | PTE_NX) ||
              pt_map(&vm->pt, TWO_PAGES, TWO_PAGES, 2 * PAGE, PTE_U | PTE_W | PTE_NX) ||
              pt_map(&vm->pt, SUPERVISOR, SUPERVISOR, PAGE, PTE_W | PTE_NX) ||
              pt_map(&vm->pt, READ_ONLY - PAGE, READ_ONLY - PAGE, PAGE, PTE_U | PTE_W) ||
              pt_map(&vm->pt, READ_ONLY, READ_ONLY, PAGE, PTE_U | PTE_NX) ||
              pt_map(&vm->pt, ALIASED, ALIAS_FRAME, PAGE, PTE_U | PTE_W | PTE_NX) ||
              pt_map(&vm->pt, vm->user_end - PAGE, vm->user_end - PAGE, PAGE, PTE_U | PTE_W) ||
              pt_map_mmio(&vm->pt, 0xa000, MEM_SIZE, PTE_U | PTE_W | PTE_NX);
    *state = vm;
    return err ? -1 : 0;
}

static int teardown(void **state)
{
    struct vm *vm = *state;
    munmap(vm->mem, vm->mem_size);
    free(vm);
    return 0;
}

static void test_page_boundaries(void **state)
{
    struct vm *vm = *state;
    uint8_t b[2] = { 0 };
    vm->mem[RW_PAGE + PAGE - 1] = 0x5a;
    assert_int_equal(gm_read(vm, b, RW_PAGE + PAGE - 1, 1), 0);
    assert_int_equal(b[0], 0x5a);
    assert_ptr_equal(gm_span(vm, RW_PAGE, PAGE, GM_READ | GM_WRITE), vm->mem + RW_PAGE);
    /* One byte further runs into the unmapped page. */
    assert_int_equal(gm_read(vm, b, RW_PAGE + PAGE - 1, 2), -EFAULT);
    assert_null(gm_span(vm, RW_PAGE, PAGE + 1, GM_READ));
    assert_int_equal(gm_read(vm, b, RW_PAGE + PAGE, 1), -EFAULT);
    assert_int_equal(gm_write(vm, RW_PAGE + PAGE - 1, b, 2), -EFAULT);
    /* And the byte before the page is unmapped too. */
    assert_int_equal(gm_read(vm, b, RW_PAGE - 1, 1), -EFAULT);
    assert_int_equal(gm_read(vm, b, RW_PAGE - 1, 2), -EFAULT);
}

static void test_range_across_two_mapped_pages(void **state)
{
    struct vm *vm = *state;
    const char msg[] = "crossing the page boundary";
    uint64_t at = TWO_PAGES + PAGE - 10;
    assert_int_equal(gm_write(vm, at, msg, sizeof msg), 0);
    assert_memory_equal(vm->mem + at, msg, sizeof msg);
    char back[sizeof msg];
    assert_int_equal(gm_read(vm, back, at, sizeof back), 0);
    assert_memory_equal(back, msg, sizeof msg);
    assert_non_null(gm_span(vm, TWO_PAGES, 2 * PAGE, GM_WRITE));
    assert_null(gm_span(vm, TWO_PAGES, 2 * PAGE + 1, GM_READ));
}

static void test_supervisor_pages_refused(void **state)
{
    struct vm *vm = *state;
    uint64_t v = 0x1122334455667788ull;
    memcpy(vm->mem + SUPERVISOR, &v, sizeof v);
    uint64_t out = 0;
    assert_int_equal(gm_read_u64(vm, SUPERVISOR, &out), -EFAULT);
    assert_int_equal(out, 0);
    assert_int_equal(gm_write_u64(vm, SUPERVISOR, 1), -EFAULT);
    assert_memory_equal(vm->mem + SUPERVISOR, &v, sizeof v);
    assert_null(gm_span(vm, SUPERVISOR, 1, GM_READ));
    assert_null(gm_span(vm, SUPERVISOR, 0, GM_READ));
    /* The system area's supervisor pages are just as closed: build one like vm_create. */
    assert_int_equal(pt_map(&vm->pt, 0x1000, 0x1000, PAGE, PTE_W | PTE_NX), 0);   /* GDT */
    assert_null(gm_span(vm, 0x1000, 8, GM_READ));
}

static void test_protection_key_pages_refused(void **state)
{
    /* Page 0 holds the syscall-site sled (vm/syscall_sites.h): user-executable, but its
     * protection key says its data is not the program's, so a system call cannot read it. */
    struct vm *vm = *state;
    assert_int_equal(pt_map(&vm->pt, 0, 0, PAGE, PTE_U | PTE_PKEY(1)), 0);
    uint64_t out = 0;
    assert_int_equal(gm_read_u64(vm, 0, &out), -EFAULT);
    assert_int_equal(gm_read_u64(vm, 8, &out), -EFAULT);
    assert_null(gm_span(vm, 0x100, 1, GM_READ));
}

static void test_read_only_pages(void **state)
{
    struct vm *vm = *state;
    memset(vm->mem + READ_ONLY, 0xab, 16);
    uint8_t buf[16], junk[16];
    memset(junk, 0x11, sizeof junk);
    assert_int_equal(gm_read(vm, buf, READ_ONLY, sizeof buf), 0);
    assert_int_equal(buf[0], 0xab);
    assert_int_equal(buf[15], 0xab);
    assert_int_equal(gm_write(vm, READ_ONLY, junk, sizeof junk), -EFAULT);
    assert_null(gm_span(vm, READ_ONLY, 1, GM_WRITE));
    assert_null(gm_span(vm, READ_ONLY, 1, GM_READ | GM_WRITE));
    assert_int_equal(vm->mem[READ_ONLY], 0xab);
    /* A write starting on the writable page before it fails as a whole: no partial copy. */
    memset(vm->mem + READ_ONLY - 8, 0, 8);
    assert_int_equal(gm_write(vm, READ_ONLY - 8, junk, sizeof junk), -EFAULT);
    uint8_t zero[8] = { 0 };
    assert_memory_equal(vm->mem + READ_ONLY - 8, zero, sizeof zero);
    assert_int_equal(gm_read(vm, buf, READ_ONLY - 8, sizeof buf), 0);   /* reading is fine */
}

static void test_overflowing_ranges_refused(void **state)
{
    struct vm *vm = *state;
    uint8_t buf[100];
    assert_null(gm_span(vm, UINT64_MAX - 10, 100, GM_READ));
    assert_int_equal(gm_read(vm, buf, UINT64_MAX - 10, sizeof buf), -EFAULT);
    assert_null(gm_span(vm, RW_PAGE, SIZE_MAX, GM_READ));
    assert_null(gm_span(vm, RW_PAGE + 16, SIZE_MAX - 15, GM_READ));   /* wraps to RW_PAGE */
    assert_null(gm_span(vm, UINT64_MAX, 1, GM_READ));
    assert_null(gm_span(vm, UINT64_MAX, 0, GM_READ));
}

static void test_zero_length(void **state)
{
    struct vm *vm = *state;
    uint8_t b = 0x77;
    assert_ptr_equal(gm_span(vm, RW_PAGE + 5, 0, GM_READ), vm->mem + RW_PAGE + 5);
    assert_ptr_equal(gm_span(vm, RW_PAGE + PAGE - 1, 0, GM_WRITE), vm->mem + RW_PAGE + PAGE - 1);
    assert_int_equal(gm_read(vm, &b, RW_PAGE, 0), 0);
    assert_int_equal(b, 0x77);
    assert_int_equal(gm_write(vm, RW_PAGE, &b, 0), 0);
    assert_null(gm_span(vm, vm->user_end + 1, 0, GM_READ));
    assert_null(gm_span(vm, vm->user_end + PAGE, 0, GM_READ));
}

static void test_user_end_is_a_hard_limit(void **state)
{
    struct vm *vm = *state;
    uint64_t end = vm->user_end;
    uint8_t b[8] = { 0 };
    /* The last user page is fine up to its last byte. */
    assert_int_equal(gm_read(vm, b, end - 8, 8), 0);
    assert_int_equal(gm_write(vm, end - 1, b, 1), 0);
    assert_int_equal(gm_read(vm, b, end - 4, 8), -EFAULT);
    /* Above it is the page-table pool: even a user mapping there must not open it. */
    assert_int_equal(pt_map(&vm->pt, end, end, PAGE, PTE_U | PTE_W), 0);
    assert_int_not_equal(pt_lookup(&vm->pt, end), 0);
    assert_null(gm_span(vm, end, 1, GM_READ));
    assert_null(gm_span(vm, end - 1, 2, GM_READ));
    assert_int_equal(gm_write(vm, end, b, 1), -EFAULT);
    assert_int_equal(gm_read(vm, b, end + PAGE, 1), -EFAULT);
    assert_int_equal(gm_read(vm, b, MEM_SIZE - 8, 8), -EFAULT);
    assert_int_equal(gm_read(vm, b, MEM_SIZE, 8), -EFAULT);
}

static void test_non_identity_and_mmio_pages_refused(void **state)
{
    struct vm *vm = *state;
    uint8_t b[4] = { 1, 2, 3, 4 };
    assert_int_equal(gm_read(vm, b, ALIASED, sizeof b), -EFAULT);
    assert_int_equal(gm_write(vm, ALIASED, b, sizeof b), -EFAULT);
    assert_null(gm_span(vm, ALIASED, 0, GM_READ));
    char s[8];
    assert_int_equal(gm_read_str(vm, s, ALIASED, sizeof s), -EFAULT);
    /* Once it maps to itself it is accepted: the refusal was about the frame alone. */
    assert_int_equal(pt_map(&vm->pt, ALIASED, ALIASED, PAGE, PTE_U | PTE_W | PTE_NX), 0);
    assert_int_equal(gm_write(vm, ALIASED, b, sizeof b), 0);
    /* The MMIO page points outside memory. */
    assert_int_equal(gm_write(vm, 0xa000, b, sizeof b), -EFAULT);
    assert_int_equal(gm_read(vm, b, 0xa000, sizeof b), -EFAULT);
}

static void test_u64_accessors(void **state)
{
    struct vm *vm = *state;
    uint64_t at = TWO_PAGES + PAGE - 3;       /* straddles the two pages */
    assert_int_equal(gm_write_u64(vm, at, 0x0102030405060708ull), 0);
    uint64_t raw;
    memcpy(&raw, vm->mem + at, sizeof raw);
    assert_int_equal(raw, 0x0102030405060708ull);
    uint64_t out = 0;
    assert_int_equal(gm_read_u64(vm, at, &out), 0);
    assert_int_equal(out, 0x0102030405060708ull);
    assert_int_equal(gm_read_u64(vm, RW_PAGE + PAGE - 4, &out), -EFAULT);
    assert_int_equal(gm_write_u64(vm, READ_ONLY, 1), -EFAULT);
}

static void test_read_str_basic(void **state)
{
    struct vm *vm = *state;
    char s[32];
    memcpy(vm->mem + RW_PAGE, "hello", 6);
    memset(s, 'x', sizeof s);
    assert_int_equal(gm_read_str(vm, s, RW_PAGE, sizeof s), 5);
    assert_string_equal(s, "hello");
    /* NUL at position 0. */
    vm->mem[RW_PAGE + 100] = 0;
    memset(s, 'x', sizeof s);
    assert_int_equal(gm_read_str(vm, s, RW_PAGE + 100, sizeof s), 0);
    assert_int_equal(s[0], 0);
    /* Unmapped, supervisor, beyond user_end. */
    assert_int_equal(gm_read_str(vm, s, RW_PAGE + PAGE, sizeof s), -EFAULT);
    memcpy(vm->mem + SUPERVISOR, "secret", 7);
    assert_int_equal(gm_read_str(vm, s, SUPERVISOR, sizeof s), -EFAULT);
    assert_int_equal(gm_read_str(vm, s, vm->user_end, sizeof s), -EFAULT);
    assert_int_equal(gm_read_str(vm, s, UINT64_MAX - 3, sizeof s), -EFAULT);
}

static void test_read_str_at_page_end(void **state)
{
    struct vm *vm = *state;
    char s[64];
    /* "abc" whose NUL is the last byte of the page, next page unmapped: fine. */
    uint64_t end = RW_PAGE + PAGE;
    memcpy(vm->mem + end - 4, "abc", 4);
    assert_int_equal(gm_read_str(vm, s, end - 4, sizeof s), 3);
    assert_string_equal(s, "abc");
    /* No NUL before the page ends and the next page is unmapped. */
    memcpy(vm->mem + end - 4, "abcd", 4);
    assert_int_equal(gm_read_str(vm, s, end - 4, sizeof s), -EFAULT);
    /* ...unless the cap is reached first. */
    assert_int_equal(gm_read_str(vm, s, end - 4, 4), -ENAMETOOLONG);
}

static void test_read_str_across_pages(void **state)
{
    struct vm *vm = *state;
    char s[64];
    uint64_t at = TWO_PAGES + PAGE - 5;
    memcpy(vm->mem + at, "first|second", 13);
    memset(s, 'x', sizeof s);
    assert_int_equal(gm_read_str(vm, s, at, sizeof s), 12);
    assert_string_equal(s, "first|second");
    /* A string crossing into a read-only (but user) page is readable. */
    memcpy(vm->mem + READ_ONLY - 3, "rw|ro", 6);
    assert_int_equal(gm_read_str(vm, s, READ_ONLY - 3, sizeof s), 5);
    assert_string_equal(s, "rw|ro");
}

static void test_read_str_cap(void **state)
{
    struct vm *vm = *state;
    char s[8];
    memcpy(vm->mem + RW_PAGE, "12345678", 9);
    /* Eight characters do not fit in 8 bytes with their NUL. */
    memset(s, 'x', sizeof s);
    assert_int_equal(gm_read_str(vm, s, RW_PAGE, sizeof s), -ENAMETOOLONG);
    /* Seven do, exactly. */
    vm->mem[RW_PAGE + 7] = 0;
    assert_int_equal(gm_read_str(vm, s, RW_PAGE, sizeof s), 7);
    assert_string_equal(s, "1234567");
    /* cap 1 leaves room for the empty string only; cap 0 for nothing. */
    assert_int_equal(gm_read_str(vm, s, RW_PAGE, 1), -ENAMETOOLONG);
    vm->mem[RW_PAGE] = 0;
    assert_int_equal(gm_read_str(vm, s, RW_PAGE, 1), 0);
    s[0] = 'x';
    assert_int_equal(gm_read_str(vm, s, RW_PAGE, 0), -ENAMETOOLONG);
    assert_int_equal(s[0], 'x');
    /* The cap stops the scan before an unmapped page is touched. */
    uint64_t end = RW_PAGE + PAGE;
    memset(vm->mem + end - 8, 'y', 8);
    assert_int_equal(gm_read_str(vm, s, end - 8, 8), -ENAMETOOLONG);
}

static void test_read_str_long_across_pages_hits_cap(void **state)
{
    struct vm *vm = *state;
    /* A cap larger than a page: the scan continues into the second page and stops at the cap. */
    size_t cap = PAGE + 100;
    char *s = malloc(cap);
    assert_non_null(s);
    memset(vm->mem + TWO_PAGES, 'z', 2 * PAGE);
    assert_int_equal(gm_read_str(vm, s, TWO_PAGES + 50, cap), -ENAMETOOLONG);
    vm->mem[TWO_PAGES + 50 + PAGE + 10] = 0;
    assert_int_equal(gm_read_str(vm, s, TWO_PAGES + 50, cap), (long)PAGE + 10);
    assert_int_equal(strlen(s), PAGE + 10);
    free(s);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_page_boundaries),
        T(test_range_across_two_mapped_pages),
        T(test_supervisor_pages_refused),
        T(test_protection_key_pages_refused),
        T(test_read_only_pages),
        T(test_overflowing_ranges_refused),
        T(test_zero_length),
        T(test_user_end_is_a_hard_limit),
        T(test_non_identity_and_mmio_pages_refused),
        T(test_u64_accessors),
        T(test_read_str_basic),
        T(test_read_str_at_page_end),
        T(test_read_str_across_pages),
        T(test_read_str_cap),
        T(test_read_str_long_across_pages_hits_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
