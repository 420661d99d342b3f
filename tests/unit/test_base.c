/* The base layer: log-once sets (first, repeat, full) and the timespec helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>

#include "base/log.h"
#include "base/time.h"

static void test_log_once(void **state)
{
    (void)state;
    struct log_once set = LOG_ONCE_INIT(2);
    assert_int_equal(log_once(&set, "a", 1), LOG_ONCE_FIRST);
    assert_int_equal(log_once(&set, "a", 1), LOG_ONCE_SEEN);
    assert_int_equal(log_once(&set, "b", 1), LOG_ONCE_FIRST);
    /* Full: the first key without room says so once; later ones, and known ones, are quiet. */
    assert_int_equal(log_once(&set, "c", 1), LOG_ONCE_FULL);
    assert_int_equal(log_once(&set, "d", 1), LOG_ONCE_SEEN);
    assert_int_equal(log_once(&set, "b", 1), LOG_ONCE_SEEN);
}

static void test_log_once_cap(void **state)
{
    (void)state;
    /* A max above the capacity is clamped: the array is never overrun. */
    static struct log_once set = LOG_ONCE_INIT(LOG_ONCE_CAP + 100);
    for (unsigned i = 0; i < LOG_ONCE_CAP; i++)
        assert_int_equal(log_once(&set, &i, sizeof i), LOG_ONCE_FIRST);
    unsigned more = LOG_ONCE_CAP;
    assert_int_equal(log_once(&set, &more, sizeof more), LOG_ONCE_FULL);
}

static void test_log_escape(void **state)
{
    (void)state;
    char buf[64];
    assert_string_equal(log_escape(buf, sizeof buf, "/etc/passwd", 11), "/etc/passwd");
    /* A newline would forge a line, a quote end a kv field, a backslash fake an escape. */
    assert_string_equal(log_escape(buf, sizeof buf, "a\nkvmserver: x\"\\\x7f\xff", 18),
                        "a\\x0akvmserver: x\\x22\\x5c\\x7f\\xff");
    assert_string_equal(log_escape(buf, sizeof buf, "a\0b", 3), "a\\x00b");   /* by length */
    assert_string_equal(log_escape(buf, 6, "ab\ncd", 5), "ab");   /* no half escape */
    assert_string_equal(log_escape(buf, 1, "ab", 2), "");
}

static void test_timespec(void **state)
{
    (void)state;
    assert_true(timespec_valid(&(struct timespec){ 0, 999999999 }));
    assert_false(timespec_valid(&(struct timespec){ 0, 1000000000 }));
    assert_false(timespec_valid(&(struct timespec){ -1, 0 }));
    assert_false(timespec_valid(&(struct timespec){ 0, -1 }));
    assert_int_equal(timespec_ns(&(struct timespec){ 2, 5 }), 2000000005);
    assert_true(timespec_ns(&(struct timespec){ INT64_MAX, 0 }) == INT64_MAX);
    struct timespec ts = ns_timespec(3500000000);
    assert_int_equal(ts.tv_sec, 3);
    assert_int_equal(ts.tv_nsec, 500000000);
    uint64_t a = now_ns(), b = now_ns();
    assert_true(b >= a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_once),
        cmocka_unit_test(test_log_once_cap),
        cmocka_unit_test(test_log_escape),
        cmocka_unit_test(test_timespec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
