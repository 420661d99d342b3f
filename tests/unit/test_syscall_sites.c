/* Unit tests for the red-zone check of syscall-site rewriting (vm/syscall_sites.c): machine
 * code as compilers emit it, around a `syscall` at a known offset. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "vm/syscall_sites.h"

/* Checks `code` with a `syscall` placed after it (the site), then `after` behind that. */
static bool near_red_zone(const uint8_t *before, size_t nbefore, const uint8_t *after,
                          size_t nafter)
{
    uint8_t buf[256];
    memcpy(buf, before, nbefore);
    buf[nbefore] = 0x0f;
    buf[nbefore + 1] = 0x05;
    memcpy(buf + nbefore + 2, after, nafter);
    return sites_near_red_zone(buf, nbefore + 2 + nafter, nbefore);
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
