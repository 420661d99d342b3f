/* Unit tests for the snapshot container (vm/snapfile.c): checksums, a file written and read
 * back, and the refusals of files that are short, truncated, flipped, from another version
 * or with misplaced memory runs. The fuzzer (tests/fuzz/fuzz_snapshot.c) tries the rest. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vm/snapfile.h"

#define PAGE 4096u

static void test_crc32c_known_value(void **state)
{
    (void)state;
    assert_int_equal(snap_crc32c(0, "123456789", 9), 0xe3069283u);
    /* In pieces as in one go. */
    assert_int_equal(snap_crc32c(snap_crc32c(0, "1234", 4), "56789", 5), 0xe3069283u);
}

/* A file with a small section and one page of memory at guest address 0x10000. */
static uint8_t *write_file(size_t *size)
{
    int fd = memfd_create("snap", 0);
    assert_true(fd >= 0);
    struct snap_writer w;
    assert_int_equal(snap_begin(&w, fd), 0);
    snap_add(&w, SNAP_META, "meta", 4);
    uint8_t page[PAGE];
    memset(page, 0xab, sizeof page);
    snap_open_section(&w, SNAP_MEMDATA, true);
    snap_append(&w, page, sizeof page);
    snap_close_section(&w);
    struct snap_run run = { 0x10000, 1 };
    snap_add(&w, SNAP_MEMRUNS, &run, sizeof run);
    assert_int_equal(snap_finish(&w, "test 1"), 0);
    *size = (size_t)w.pos;
    uint8_t *data = aligned_alloc(PAGE, (*size + PAGE - 1) / PAGE * PAGE);
    assert_non_null(data);
    assert_int_equal(pread(fd, data, *size, 0), (ssize_t)*size);
    close(fd);
    return data;
}

static void test_round_trip(void **state)
{
    (void)state;
    size_t size;
    uint8_t *data = write_file(&size);
    struct snap_reader r;
    char err[256] = "";
    assert_int_equal(snap_parse(&r, data, size, "test 1", err, sizeof err), 0);
    uint64_t len;
    const char *meta = snap_section(&r, SNAP_META, &len);
    assert_int_equal(len, 4);
    assert_memory_equal(meta, "meta", 4);
    assert_null(snap_section(&r, SNAP_PROC, &len));
    assert_int_equal(snap_section_offset(&r, SNAP_MEMDATA) % PAGE, 0);
    size_t n = 0;
    const struct snap_run *runs = snap_memory_runs(&r, 64u << 20, &n, err, sizeof err);
    assert_non_null(runs);
    assert_int_equal(n, 1);
    assert_int_equal(runs[0].gpa, 0x10000);
    /* A memory too small for the run. */
    assert_null(snap_memory_runs(&r, 0x10000, &n, err, sizeof err));
    assert_non_null(strstr(err, "misplaced"));
    free(data);
}

static void expect_refusal(const uint8_t *data, size_t size, const char *version,
                           const char *words)
{
    struct snap_reader r;
    char err[256] = "";
    assert_int_equal(snap_parse(&r, data, size, version, err, sizeof err), -1);
    if (!strstr(err, words))
        fail_msg("'%s' does not say '%s'", err, words);
}

static void test_refusals(void **state)
{
    (void)state;
    size_t size;
    uint8_t *data = write_file(&size);
    expect_refusal(data, 100, NULL, "shorter than its header");
    expect_refusal(data, size - 1, NULL, "truncated");
    expect_refusal(data, size, "test 2", "made by kvmserver test 1; this is kvmserver test 2");
    for (size_t pos = 0; pos < size; pos += 997) {
        data[pos] ^= 1;
        struct snap_reader r;
        char err[256];
        assert_int_equal(snap_parse(&r, data, size, NULL, err, sizeof err), -1);
        data[pos] ^= 1;
    }
    data[0] = 'X';
    expect_refusal(data, size, NULL, "no KVMSSNAP magic");
    free(data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c_known_value),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
