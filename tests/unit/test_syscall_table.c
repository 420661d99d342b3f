/* Unit tests for the syscall table and dispatcher (linux/syscall_table.c): names, -ENOSYS
 * and its counting for unknown numbers, and dispatch to handlers that need no VM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>

#include "linux/process.h"
#include "linux/syscalls.h"
#include "vm/vm.h"

struct fixture {
    struct lx_env env;
    struct lx_proc proc;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    f->proc.env = &f->env;          /* all zero: no tracing */
    f->proc.pid = LX_MASTER_PID;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    free(*state);
    return 0;
}

static const uint64_t no_args[6];

static void test_every_handler_has_a_name(void **state)
{
    (void)state;
    size_t handlers = 0;
    for (size_t nr = 0; nr < LX_NR_SYSCALLS; nr++) {
        const struct lx_syscall_desc *d = &lx_syscall_table[nr];
        if (d->fn) {
            handlers++;
            if (!d->name || !d->name[0])
                fail_msg("syscall %zu has a handler but no name", nr);
        } else if (d->name) {
            fail_msg("syscall %zu (%s) has a name but no handler", nr, d->name);
        }
    }
    assert_true(handlers >= 50);
}

static void test_names_are_unique(void **state)
{
    (void)state;
    for (size_t i = 0; i < LX_NR_SYSCALLS; i++) {
        if (!lx_syscall_table[i].name)
            continue;
        for (size_t j = i + 1; j < LX_NR_SYSCALLS; j++)
            if (lx_syscall_table[j].name &&
                strcmp(lx_syscall_table[i].name, lx_syscall_table[j].name) == 0)
                fail_msg("%s is at both %zu and %zu", lx_syscall_table[i].name, i, j);
    }
}

static void test_entries_sit_at_their_linux_numbers(void **state)
{
    (void)state;
    static const struct { long nr; const char *name; lx_handler fn; } known[] = {
        { __NR_read, "read", sys_read },           { __NR_write, "write", sys_write },
        { __NR_close, "close", sys_close },        { __NR_mmap, "mmap", sys_mmap },
        { __NR_munmap, "munmap", sys_munmap },     { __NR_brk, "brk", sys_brk },
        { __NR_mremap, "mremap", sys_mremap },     { __NR_getpid, "getpid", sys_getpid },
        { __NR_exit, "exit", sys_exit },           { __NR_exit_group, "exit_group", sys_exit_group },
        { __NR_arch_prctl, "arch_prctl", sys_arch_prctl },
        { __NR_set_tid_address, "set_tid_address", sys_set_tid_address },
        { __NR_set_robust_list, "set_robust_list", sys_set_robust_list },
        { __NR_rseq, "rseq", sys_rseq },
        { __NR_clock_gettime, "clock_gettime", sys_clock_gettime },
        { __NR_rt_sigaction, "rt_sigaction", sys_rt_sigaction },
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        const struct lx_syscall_desc *d = &lx_syscall_table[known[i].nr];
        assert_non_null(d->name);
        assert_string_equal(d->name, known[i].name);
        assert_ptr_equal(d->fn, known[i].fn);
    }
}

/* The properties the rows carry: a few known ones, and the rules between them. */
static void test_row_properties(void **state)
{
    (void)state;
    assert_true(lx_syscall_is(__NR_epoll_wait, LX_SC_EVENT_WAIT | LX_SC_POLLER_IN));
    assert_true(lx_syscall_is(__NR_openat, LX_SC_FS | LX_SC_POLLER));
    assert_true(lx_syscall_is(__NR_write, LX_SC_POLLER_OUT));
    assert_false(lx_syscall_is(__NR_mmap, LX_SC_POLLER));        /* may flush memory slots */
    assert_false(lx_syscall_is(__NR_futex, LX_SC_POLLER));
    assert_false(lx_syscall_is(4242, LX_SC_FS));                  /* no row: nothing */
    assert_null(lx_syscall_of(4242));
    for (unsigned nr = 0; nr < LX_NR_SYSCALLS; nr++) {
        const struct lx_syscall_desc *d = &lx_syscall_table[nr];
        unsigned poller = d->flags & (LX_SC_POLLER | LX_SC_POLLER_IN | LX_SC_POLLER_OUT);
        /* At most one way for the poller; a timeout only on an event wait; flags only on
         * rows with a handler. */
        assert_true((poller & (poller - 1)) == 0);
        assert_true(d->fn || !d->flags);
    }
}

static void test_unknown_numbers_are_enosys_and_counted(void **state)
{
    struct fixture *f = *state;
    struct lx_proc *p = &f->proc;
    const uint64_t unknown[] = {
        1000, LX_NR_SYSCALLS, LX_NR_SYSCALLS - 1, UINT64_MAX, (uint64_t)INT64_MAX + 1,
        0x40000000 | __NR_getpid,             /* x32 ABI numbering */
        (uint64_t)-ENOSYS, 0x100000000ull,
    };
    assert_null(lx_syscall_table[LX_NR_SYSCALLS - 1].fn);
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        assert_int_equal(lx_dispatch(p, unknown[i], no_args), -ENOSYS);
        assert_int_equal(p->stats.unknown_syscalls, i + 1);
    }
    /* Repeats are counted every time (only the log is once per number). */
    assert_int_equal(lx_dispatch(p, 1000, no_args), -ENOSYS);
    assert_int_equal(lx_dispatch(p, 1000, no_args), -ENOSYS);
    assert_int_equal(p->stats.unknown_syscalls, sizeof unknown / sizeof unknown[0] + 2);
    assert_false(p->exited);
}

static void test_every_empty_slot_is_enosys(void **state)
{
    struct fixture *f = *state;
    struct lx_proc *p = &f->proc;
    uint64_t empty = 0;
    for (uint64_t nr = 0; nr < LX_NR_SYSCALLS; nr++) {
        if (lx_syscall_table[nr].fn)
            continue;
        empty++;
        assert_int_equal(lx_dispatch(p, nr, no_args), -ENOSYS);
        assert_int_equal(p->stats.unknown_syscalls, empty);
    }
    assert_true(empty > 0);
}

static void test_getpid_dispatches(void **state)
{
    struct fixture *f = *state;
    struct lx_proc *p = &f->proc;
    assert_int_equal(lx_dispatch(p, __NR_getpid, no_args), LX_MASTER_PID);
    assert_int_equal(p->stats.unknown_syscalls, 0);
}

static void test_known_numbers_dispatch(void **state)
{
    struct fixture *f = *state;
    struct lx_proc *p = &f->proc;
    /* rseq answers -ENOSYS itself: that is not an unknown call. */
    assert_int_equal(lx_dispatch(p, __NR_rseq, no_args), -ENOSYS);

    const uint64_t bad_len[6] = { 0x7000, 23 };
    assert_int_equal(lx_dispatch(p, __NR_set_robust_list, bad_len), -EINVAL);
    assert_int_equal(p->task.robust_list, 0);
    const uint64_t good_len[6] = { 0x7000, 24 };
    assert_int_equal(lx_dispatch(p, __NR_set_robust_list, good_len), 0);
    assert_int_equal(p->task.robust_list, 0x7000);
    assert_int_equal(p->task.robust_list_len, 24);

    const uint64_t tid_addr[6] = { 0x8123 };
    assert_int_equal(lx_dispatch(p, __NR_set_tid_address, tid_addr), LX_MASTER_PID);
    assert_int_equal(lx_current_thread(p)->clear_child_tid, 0x8123);

    const uint64_t too_high[6] = { 0x1002 /* ARCH_SET_FS */, 1ull << 47 };
    assert_int_equal(lx_dispatch(p, __NR_arch_prctl, too_high), -EPERM);

    assert_int_equal(p->stats.unknown_syscalls, 0);
    assert_false(p->exited);
}

static void test_exit_group_through_the_engine_handler(void **state)
{
    struct fixture *f = *state;
    struct lx_proc *p = &f->proc;
    struct vm vm = { .vm_fd = -1, .vcpu_fd = -1, .mem_fd = -1 };
    bool stop = false;

    struct vm_syscall rseq = { .nr = __NR_rseq };
    assert_int_equal(lx_vm_ops.syscall(p, &vm, &rseq, &stop), -ENOSYS);
    assert_false(stop);

    struct vm_syscall exit_group = { .nr = __NR_exit_group, .arg = { 0x1ff } };
    lx_vm_ops.syscall(p, &vm, &exit_group, &stop);
    assert_true(stop);
    assert_true(p->exited);
    assert_int_equal(p->exit_status, 0xff);     /* only the low 8 bits, as on Linux */
}

static void test_tracing_does_not_change_results(void **state)
{
    struct fixture *f = *state;
    struct lx_proc *p = &f->proc;
    f->env.trace_syscalls = true;
    const uint64_t bad_len[6] = { 0, 1 };
    assert_int_equal(lx_dispatch(p, __NR_set_robust_list, bad_len), -EINVAL);
    assert_int_equal(lx_dispatch(p, 4242, no_args), -ENOSYS);
    assert_int_equal(lx_dispatch(p, UINT64_MAX, no_args), -ENOSYS);
    assert_int_equal(p->stats.unknown_syscalls, 2);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_every_handler_has_a_name),
        T(test_names_are_unique),
        T(test_entries_sit_at_their_linux_numbers),
        T(test_row_properties),
        T(test_unknown_numbers_are_enosys_and_counted),
        T(test_every_empty_slot_is_enosys),
        T(test_getpid_dispatches),
        T(test_known_numbers_dispatch),
        T(test_exit_group_through_the_engine_handler),
        T(test_tracing_does_not_change_results),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
