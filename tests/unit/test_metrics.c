/* The Prometheus text exposition of the server's counters: every family has HELP and TYPE,
 * histogram buckets are cumulative and end in +Inf, _count equals the +Inf bucket, and the
 * labelled families carry every label value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/time.h"
#include "linux/wait.h"
#include "server/metrics.h"
#include "vm/fork.h"

static char *format(const struct metrics *m)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    assert_non_null(out);
    metrics_format(m, out);
    fclose(out);
    return text;
}

static void assert_line(const char *text, const char *line)
{
    char needle[256];
    snprintf(needle, sizeof needle, "\n%s\n", line);
    if (!strstr(text, needle))
        fail_msg("no line '%s' in:\n%s", line, text);
}

static void test_before_readiness(void **state)
{
    (void)state;
    static struct metrics m;
    atomic_store(&m.lx.accepted, 3);      /* the warm-up's: not requests */
    char *text = format(&m);
    assert_true(strncmp(text, "# HELP kvmserver_build_info ", 28) == 0);
    assert_line(text, "# TYPE kvmserver_boot_seconds gauge");
    assert_null(strstr(text, "\nkvmserver_boot_seconds "));
    assert_line(text, "kvmserver_requests_total 0");
    assert_line(text, "kvmserver_reset_pages_bucket{le=\"+Inf\"} 0");
    assert_line(text, "kvmserver_reset_pages_count 0");
    free(text);
}

static void test_counts(void **state)
{
    (void)state;
    static struct metrics m;
    atomic_store(&m.lx.accepted, 5);
    atomic_store(&m.accepted_at_ready, 2);          /* 3 requests since the freeze */
    atomic_store(&m.boot_ns, 1500000000);
    atomic_store(&m.vms_live, 3);
    atomic_store(&m.ephemeral, true);
    metrics_request_end(&m, now_ns(), VM_CRASHED, 4);
    metrics_request_end(&m, now_ns(), VM_TIMED_OUT, 2);
    metrics_request_end(&m, 0, VM_STOPPED, 0);       /* woke, accepted nothing */
    assert_int_equal(metrics_in_flight(&m), 1);
    metrics_count_reset(&m, &(struct vm_reset_stats){ .pages_restored = 1, .ns = 7000 });
    metrics_count_reset(&m, &(struct vm_reset_stats){ .pages_restored = 9, .ns = 20000000 });
    metrics_count_reset(&m, &(struct vm_reset_stats){ .pages_restored = 100000, .ns = 1 });
    atomic_store(&m.lx.denied[LX_DENIED_CONNECT], 5);
    atomic_store(&m.env_withheld, 2);
    atomic_store(&m.lx.unsupported_syscalls, 1);
    char *text = format(&m);
    assert_line(text, "kvmserver_build_info{version=\"" KVMS_VERSION "\"} 1");
    assert_line(text, "kvmserver_boot_seconds 1.5");
    assert_line(text, "kvmserver_requests_total 3");
    assert_line(text, "# TYPE kvmserver_request_duration_seconds histogram");
    assert_line(text, "kvmserver_request_duration_seconds_count 2");
    /* buckets are cumulative: 1 page <= 1, 9 pages <= 16, 100000 pages only in +Inf */
    assert_line(text, "kvmserver_reset_pages_bucket{le=\"1\"} 1");
    assert_line(text, "kvmserver_reset_pages_bucket{le=\"8\"} 1");
    assert_line(text, "kvmserver_reset_pages_bucket{le=\"16\"} 2");
    assert_line(text, "kvmserver_reset_pages_bucket{le=\"32768\"} 2");
    assert_line(text, "kvmserver_reset_pages_bucket{le=\"+Inf\"} 3");
    assert_line(text, "kvmserver_reset_pages_sum 100010");
    assert_line(text, "kvmserver_reset_pages_count 3");
    assert_line(text, "kvmserver_reset_duration_seconds_bucket{le=\"5e-06\"} 1");
    assert_line(text, "kvmserver_reset_duration_seconds_bucket{le=\"1e-05\"} 2");
    assert_line(text, "kvmserver_reset_duration_seconds_bucket{le=\"0.025\"} 3");
    assert_line(text, "kvmserver_reset_duration_seconds_sum 0.020007001");
    assert_line(text, "kvmserver_vm_exits_total 6");
    assert_line(text, "kvmserver_request_vms{state=\"busy\"} 1");
    assert_line(text, "kvmserver_request_vms{state=\"idle\"} 2");
    assert_line(text, "kvmserver_request_timeouts_total 1");
    assert_line(text, "kvmserver_guest_crashes_total 1");
    assert_line(text, "kvmserver_denied_total{kind=\"read\"} 0");
    assert_line(text, "kvmserver_denied_total{kind=\"write\"} 0");
    assert_line(text, "kvmserver_denied_total{kind=\"connect\"} 5");
    assert_line(text, "kvmserver_denied_total{kind=\"listen\"} 0");
    assert_line(text, "kvmserver_denied_total{kind=\"env\"} 2");
    assert_line(text, "kvmserver_unsupported_syscalls_total 1");
    free(text);
}

/* Without -e a request VM serves connections continuously: no request is "in flight". */
static void test_persistent_vms_are_busy(void **state)
{
    (void)state;
    static struct metrics m;
    atomic_store(&m.lx.accepted, 4);
    atomic_store(&m.boot_ns, 1);
    atomic_store(&m.vms_live, 2);
    assert_int_equal(metrics_in_flight(&m), 0);
    char *text = format(&m);
    assert_line(text, "kvmserver_requests_total 4");
    assert_line(text, "kvmserver_request_vms{state=\"busy\"} 2");
    assert_line(text, "kvmserver_request_vms{state=\"idle\"} 0");
    free(text);
}

/* The Linux layer counts into the attached counters, and into nothing once detached. */
static void test_linux_counters(void **state)
{
    (void)state;
    static struct metrics m;
    lx_count_denied(LX_DENIED_READ);            /* nothing attached yet */
    lx_counters_attach(&m.lx);
    lx_count_denied(LX_DENIED_READ);
    lx_count_denied(LX_DENIED_LISTEN);
    lx_count_denied(LX_DENIAL_KINDS);           /* out of range: ignored */
    lx_count_unsupported_syscall();
    lx_count_accepted();
    lx_counters_attach(NULL);
    lx_count_accepted();
    assert_int_equal(atomic_load(&m.lx.denied[LX_DENIED_READ]), 1);
    assert_int_equal(atomic_load(&m.lx.denied[LX_DENIED_LISTEN]), 1);
    assert_int_equal(atomic_load(&m.lx.denied[LX_DENIED_WRITE]), 0);
    assert_int_equal(atomic_load(&m.lx.unsupported_syscalls), 1);
    assert_int_equal(atomic_load(&m.lx.accepted), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_before_readiness),
        cmocka_unit_test(test_counts),
        cmocka_unit_test(test_persistent_vms_are_busy),
        cmocka_unit_test(test_linux_counters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
