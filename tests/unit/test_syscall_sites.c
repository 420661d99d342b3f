/* Unit tests for the checks of syscall-site rewriting (vm/syscall_sites.c), the red zone and
 * the fixed call number: machine code as compilers emit it, around a `syscall` at a known
 * offset. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "vm/syscall_sites.h"

/* Puts `before`, a `syscall` (the site, at offset nbefore) and `after` into buf; returns
 * the length. */
static size_t around_site(uint8_t buf[256], const uint8_t *before, size_t nbefore,
                          const uint8_t *after, size_t nafter)
{
    memcpy(buf, before, nbefore);
    buf[nbefore] = 0x0f;
    buf[nbefore + 1] = 0x05;
    memcpy(buf + nbefore + 2, after, nafter);
    return nbefore + 2 + nafter;
}

static bool near_red_zone(const uint8_t *before, size_t nbefore, const uint8_t *after,
                          size_t nafter)
{
    uint8_t buf[256];
    return sites_near_red_zone(buf, around_site(buf, before, nbefore, after, nafter), nbefore);
}

static void test_plain_wrapper_is_safe(void **state)
{
    (void)state;
    /* glibc's close(): mov $3,%eax; syscall; cmp $-4096,%rax; ja ...; ret */
    static const uint8_t before[] = { 0xb8, 0x03, 0x00, 0x00, 0x00 };
    static const uint8_t after[] = { 0x48, 0x3d, 0x00, 0xf0, 0xff, 0xff, 0x77, 0x01, 0xc3 };
    assert_false(near_red_zone(before, sizeof before, after, sizeof after));
}

static void test_positive_rsp_offsets_are_safe(void **state)
{
    (void)state;
    /* mov %rdx,0x18(%rsp); mov 0x8(%rsp),%edi: the frame above RSP is not touched. */
    static const uint8_t before[] = { 0x48, 0x89, 0x54, 0x24, 0x18, 0x8b, 0x7c, 0x24, 0x08 };
    assert_false(near_red_zone(before, sizeof before, NULL, 0));
}

static void test_negative_disp8_store_before(void **state)
{
    (void)state;
    /* mov %rax,-0x8(%rsp): the slot the call would push to. */
    static const uint8_t before[] = { 0x48, 0x89, 0x44, 0x24, 0xf8, 0xb8, 0x01, 0, 0, 0 };
    assert_true(near_red_zone(before, sizeof before, NULL, 0));
}

static void test_negative_disp8_load_after(void **state)
{
    (void)state;
    /* mov -0x18(%rsp),%rcx after the call: a value kept across it. */
    static const uint8_t after[] = { 0x48, 0x8b, 0x4c, 0x24, 0xe8 };
    assert_true(near_red_zone(NULL, 0, after, sizeof after));
}

static void test_red_zone_buffer_and_wide_stores(void **state)
{
    (void)state;
    /* lea -0x18(%rsp),%rsi: a buffer in the red zone passed to the call. */
    static const uint8_t lea[] = { 0x48, 0x8d, 0x74, 0x24, 0xe8 };
    assert_true(near_red_zone(lea, sizeof lea, NULL, 0));
    /* movaps %xmm0,-0x28(%rsp) and vmovdqu with a disp32 of -0x100. */
    static const uint8_t sse[] = { 0x0f, 0x29, 0x44, 0x24, 0xd8 };
    assert_true(near_red_zone(sse, sizeof sse, NULL, 0));
    static const uint8_t disp32[] = { 0xc5, 0xfe, 0x7f, 0x84, 0x24, 0x00, 0xff, 0xff, 0xff };
    assert_true(near_red_zone(disp32, sizeof disp32, NULL, 0));
}

static void test_frame_pointer_leaf(void **state)
{
    (void)state;
    /* push %rbp; mov %rsp,%rbp; mov %edi,-0x14(%rbp): locals below RSP (-O0 leaf). */
    static const uint8_t leaf[] = { 0x55, 0x48, 0x89, 0xe5, 0x89, 0x7d, 0xec };
    assert_true(near_red_zone(leaf, sizeof leaf, NULL, 0));
    /* The same with sub $0x20,%rsp: the locals are above RSP, nothing to fear. */
    static const uint8_t framed[] = { 0x55, 0x48, 0x89, 0xe5, 0x48, 0x83, 0xec, 0x20,
                                      0x89, 0x7d, 0xec };
    assert_false(near_red_zone(framed, sizeof framed, NULL, 0));
    /* A frame pointer set up after the site belongs to another function. */
    static const uint8_t next[] = { 0xc3, 0x55, 0x48, 0x89, 0xe5 };
    assert_false(near_red_zone(NULL, 0, next, sizeof next));
}

static void test_truncated_patterns_at_the_edges(void **state)
{
    (void)state;
    /* A ModRM/SIB pair cut off by the end of the window reads nothing past it. */
    static const uint8_t cut[] = { 0x48, 0x89, 0x44, 0x24 };
    assert_false(sites_near_red_zone(cut, sizeof cut, 0));
    static const uint8_t cut32[] = { 0x48, 0x89, 0x84, 0x24, 0x00, 0xff };
    assert_false(sites_near_red_zone(cut32, sizeof cut32, 0));
    assert_false(sites_near_red_zone(cut, 0, 0));
}

/* A site's code, the bytes before its `syscall` and after it, and the fixed number
 * sites_fixed_number must find (-1: none, the site stays trapping). */
struct site_case {
    const char *what;
    uint8_t before[24], after[8];
    size_t nbefore, nafter;
    long nr;
};

#define SITE(what_, nr_, ...) { .what = what_, .before = { __VA_ARGS__ }, \
    .nbefore = sizeof((uint8_t[]){ __VA_ARGS__ }), .nr = nr_ }
#define SITE_AFTER(what_, nr_, after_, ...) { .what = what_, .before = { __VA_ARGS__ }, \
    .nbefore = sizeof((uint8_t[]){ __VA_ARGS__ }), .after = after_, \
    .nafter = sizeof((uint8_t[])after_), .nr = nr_ }
#define BYTES(...) { __VA_ARGS__ }
#define LO(n) ((n) & 0xff)
#define HI(n) ((n) >> 8)

static void check_sites(const struct site_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t buf[256];
        size_t len = around_site(buf, cases[i].before, cases[i].nbefore, cases[i].after,
                                 cases[i].nafter);
        uint64_t nr = 0xdead;
        long got = sites_fixed_number(buf, len, cases[i].nbefore, &nr) ? (long)nr : -1;
        if (got != cases[i].nr)
            print_error("%s: got %ld, want %ld\n", cases[i].what, got, cases[i].nr);
        assert_int_equal(got, cases[i].nr);
    }
}

static void test_constant_numbers(void **state)
{
    (void)state;
    static const struct site_case cases[] = {
        /* glibc's close(): mov $1,%edx before it, then mov $3,%eax; syscall */
        SITE("mov $3,%eax", 3, 0xba, 0x01, 0, 0, 0, 0xb8, 0x03, 0, 0, 0),
        /* as hand-written assembler has it: the imm32 sign-extends */
        SITE("mov $60,%rax", 60, 0x90, 0x48, 0xc7, 0xc0, 0x3c, 0, 0, 0),
        SITE("xor %eax,%eax (31)", 0, 0x31, 0xff, 0x31, 0xc0),
        SITE("xor %eax,%eax (33)", 0, 0x90, 0x33, 0xc0),
        SITE("the sled's last number", SITES_SLED_MIN - 1,
             0x90, 0xb8, LO(SITES_SLED_MIN - 1), HI(SITES_SLED_MIN - 1), 0, 0),
    };
    check_sites(cases, sizeof cases / sizeof cases[0]);
}

static void test_register_numbers(void **state)
{
    (void)state;
    static const struct site_case cases[] = {
        SITE("glibc's syscall(): mov %rdi,%rax; ...; mov 0x8(%rsp),%r9", -1,
             0x48, 0x89, 0xf8, 0x48, 0x89, 0xf7, 0x48, 0x89, 0xd6, 0x48, 0x89, 0xca,
             0x4d, 0x89, 0xc2, 0x4d, 0x89, 0xc8, 0x4c, 0x8b, 0x4c, 0x24, 0x08),
        SITE("musl's syscall_cp: mov %r9,%rax", -1, 0x90, 0x4c, 0x89, 0xc8),
        SITE("mov $0xca,%eax; mov %ebx,%esi: set further back", -1,
             0x90, 0xb8, 0xca, 0, 0, 0, 0x89, 0xde),
    };
    check_sites(cases, sizeof cases / sizeof cases[0]);
}

static void test_numbers_past_the_sled(void **state)
{
    (void)state;
    static const struct site_case cases[] = {
        SITE("the sled's end", -1, 0x90, 0xb8, LO(SITES_SLED_MIN), HI(SITES_SLED_MIN), 0, 0),
        SITE("the entry stub's address", -1, 0x90, 0xb8, 0x00, 0x40, 0, 0),
        SITE("a vDSO address, mov $0x7c5e,%rax", -1, 0x90, 0x48, 0xc7, 0xc0, 0x5e, 0x7c, 0, 0),
        SITE("mov $-1,%rax", -1, 0x90, 0x48, 0xc7, 0xc0, 0xff, 0xff, 0xff, 0xff),
        SITE("a small low byte only: mov $0x1000003,%eax", -1, 0x90, 0xb8, 0x03, 0, 0, 0x01),
    };
    check_sites(cases, sizeof cases / sizeof cases[0]);
}

static void test_prefixes_change_the_register(void **state)
{
    (void)state;
    static const struct site_case cases[] = {
        /* 66 b8 03 00 | 00 00: RAX's upper bits kept, then add %al,(%rax) */
        SITE("mov $3,%ax", -1, 0x66, 0xb8, 0x03, 0, 0, 0),
        SITE("mov $3,%r8d", -1, 0x41, 0xb8, 0x03, 0, 0, 0),
        SITE("xor %eax,%r8d", -1, 0x41, 0x31, 0xc0),
        SITE("mov $3,%r8", -1, 0x90, 0x49, 0xc7, 0xc0, 0x03, 0, 0, 0),
    };
    check_sites(cases, sizeof cases / sizeof cases[0]);
}

static void test_branches_to_the_site(void **state)
{
    (void)state;
    /* The site is at offset 6 after MOV3 alone, 11 or 12 after a rel32 branch, 8 after a rel8. */
#define MOV3 0x90, 0xb8, 0x03, 0, 0, 0
    static const struct site_case cases[] = {
        /* A retry loop after it: cmp $-4,%rax; jne back */
        SITE_AFTER("jne rel8 back to the syscall", -1, BYTES(0x48, 0x83, 0xf8, 0xfc, 0x75, 0xf8),
                   MOV3),
        SITE_AFTER("jne rel8 back to the mov", 3, BYTES(0x48, 0x83, 0xf8, 0xfc, 0x75, 0xf3),
                   MOV3),
        /* A merged tail: another path's jump into the site, from before it */
        SITE("jmp rel32 to it", -1, 0xe9, 0x06, 0, 0, 0, MOV3),
        SITE("je rel32 to it", -1, 0x0f, 0x84, 0x06, 0, 0, 0, MOV3),
        SITE("call rel32 to it", -1, 0xe8, 0x06, 0, 0, 0, MOV3),
        SITE("jmp rel8 to it", -1, 0xeb, 0x06, MOV3),
        SITE("jmp rel8 to its second byte", 3, 0xeb, 0x07, MOV3),
    };
#undef MOV3
    check_sites(cases, sizeof cases / sizeof cases[0]);
}

static void test_short_code_and_page_starts(void **state)
{
    (void)state;
    /* The readable code starts with the instruction: what comes before it is unseen. */
    static const struct site_case cases[] = {
        SITE("mov $3,%eax first", -1, 0xb8, 0x03, 0, 0, 0),
        SITE("xor %eax,%eax first", -1, 0x31, 0xc0),
        SITE("mov $60,%rax first", -1, 0x48, 0xc7, 0xc0, 0x3c, 0, 0, 0),
        { .what = "nothing before", .nr = -1 },
    };
    check_sites(cases, sizeof cases / sizeof cases[0]);
    static const uint8_t code[] = { 0x90, 0xb8, 0x03, 0, 0, 0, 0x0f, 0x05 };
    uint64_t nr = 0;
    assert_false(sites_fixed_number(code, sizeof code, sizeof code + 1, &nr));
    assert_true(sites_fixed_number(code, sizeof code, 6, &nr));
    assert_int_equal(nr, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_wrapper_is_safe),
        cmocka_unit_test(test_positive_rsp_offsets_are_safe),
        cmocka_unit_test(test_negative_disp8_store_before),
        cmocka_unit_test(test_negative_disp8_load_after),
        cmocka_unit_test(test_red_zone_buffer_and_wide_stores),
        cmocka_unit_test(test_frame_pointer_leaf),
        cmocka_unit_test(test_truncated_patterns_at_the_edges),
        cmocka_unit_test(test_constant_numbers),
        cmocka_unit_test(test_register_numbers),
        cmocka_unit_test(test_numbers_past_the_sled),
        cmocka_unit_test(test_prefixes_change_the_register),
        cmocka_unit_test(test_branches_to_the_site),
        cmocka_unit_test(test_short_code_and_page_starts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
