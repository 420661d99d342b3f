/* Unit tests for the thread table's bookkeeping (linux/thread.c) that needs no vCPU: futex
 * wake order and bitsets, requeue, tids, and the part of the table a fork copies. */
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
#include "linux/thread.h"

struct fixture {
    struct lx_env env;
    struct lx_proc proc;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    f->proc.env = &f->env;
    f->proc.pid = LX_MASTER_PID;
    lx_threads_init(&f->proc.threads);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    free(*state);
    return 0;
}

/* Puts a thread with this tid in slot i, waiting on addr (bitset) since `seq`. */
static void add_waiter(struct lx_proc *p, int i, int tid, uint64_t addr, uint32_t bitset,
                       uint64_t seq)
{
    struct lx_thread *th = &p->threads.slot[i];
    th->tid = tid;
    th->state = LX_THREAD_FUTEX;
    th->futex_addr = addr;
    th->futex_bitset = bitset;
    th->wait_seq = seq;
    th->wake_at_ns = -1;
    th->restart_nr = -1;
    th->resume_ret = 12345;
    p->threads.count++;
    if (p->threads.used <= i)
        p->threads.used = i + 1;
}

/* A request VM generation is a new process: its first thread is shown as the new pid, and
 * the tid its libc cached in the frozen image (LX_FIRST_TID) still names it. */
static void test_forked_process_has_its_own_pid(void **state)
{
    struct fixture *f = *state;
    struct lx_proc *p = &f->proc;
    p->pid = 5000;
    p->ppid = LX_MASTER_PID;
    add_waiter(p, 1, 7, 0x1000, ~0u, 1);
    const uint64_t none[6] = { 0 };
    assert_int_equal(lx_dispatch(p, __NR_getpid, none), 5000);
    assert_int_equal(lx_dispatch(p, __NR_getppid, none), LX_MASTER_PID);
    assert_int_equal(lx_dispatch(p, __NR_gettid, none), 5000);
    assert_true(lx_thread_exists(p, 5000));
    assert_true(lx_thread_exists(p, LX_FIRST_TID));
    assert_true(lx_thread_exists(p, 7));
    assert_false(lx_thread_exists(p, 8));
    assert_int_equal(lx_dispatch(p, __NR_tgkill, (const uint64_t[6]){ 5000, 5000, 0 }), 0);
    assert_int_equal(lx_dispatch(p, __NR_tgkill, (const uint64_t[6]){ 5000, LX_FIRST_TID, 0 }), 0);
    assert_int_equal(lx_dispatch(p, __NR_tgkill, (const uint64_t[6]){ 5000, 7, 0 }), 0);
    /* The frozen program is another process now: the parent. */
    assert_int_equal(lx_dispatch(p, __NR_tgkill, (const uint64_t[6]){ LX_MASTER_PID, 7, 0 }),
                     -ESRCH);
    assert_int_equal(lx_dispatch(p, __NR_kill, (const uint64_t[6]){ 5000, 0 }), 0);
    assert_int_equal(lx_dispatch(p, __NR_kill, (const uint64_t[6]){ LX_MASTER_PID, 0 }), 0);
    assert_int_equal(lx_dispatch(p, __NR_kill, (const uint64_t[6]){ LX_MASTER_PID, 15 }), -EPERM);
    assert_int_equal(lx_dispatch(p, __NR_kill, (const uint64_t[6]){ 4999, 0 }), -ESRCH);
}

static void test_first_thread(void **state)
{
    struct fixture *f = *state;
    struct lx_proc *p = &f->proc;
    assert_int_equal(lx_current_tid(p), LX_MASTER_PID);
    assert_false(lx_multithreaded(p));
    assert_true(lx_thread_exists(p, LX_MASTER_PID));
    assert_false(lx_thread_exists(p, 2));
    const uint64_t none[6] = { 0 };
    assert_int_equal(lx_dispatch(p, __NR_gettid, none), LX_MASTER_PID);
    assert_int_equal(lx_threads_copy_size(&p->threads),
                     offsetof(struct lx_threads, slot) + sizeof p->threads.slot[0]);
}

/* A fork's thread table is the frozen one's live slots (registers, waits, tids), whatever the
 * last request left in it, except the host fds a wait recorded (the frozen process's: each
 * waiting thread looks again); slots past the frozen ones are never looked at. */
static void test_threads_fork_copies_the_frozen_threads(void **state)
{
    struct fixture *f = *state;
    struct lx_proc *p = &f->proc;
    add_waiter(p, 1, 7, 0x3000, ~0u, 1);
    add_waiter(p, 2, 8, 0x1000, ~0u, 2);
    p->threads.next_tid = 9;
    static struct lx_threads child;
    memset(&child, 0x5a, sizeof child);
    p->threads.slot[1].nwait = 1;
    lx_threads_fork(&child, &p->threads);
    for (int i = 0; i < p->threads.used; i++) {
        assert_int_equal(child.slot[i].nwait, -1);
        child.slot[i].nwait = p->threads.slot[i].nwait;
    }
    assert_memory_equal(&child, &p->threads, lx_threads_copy_size(&p->threads));
    assert_int_equal(child.used, 3);
    assert_int_equal(child.count, p->threads.count);
    /* A thread the request started, and the state it changed, are gone at the next fork. */
    child.slot[3].tid = 9;
    child.used = 4;
    child.slot[1].state = LX_THREAD_RUNNABLE;
    lx_threads_fork(&child, &p->threads);
    assert_int_equal(child.used, 3);
    assert_int_equal(child.slot[1].state, LX_THREAD_FUTEX);
    assert_int_equal(child.next_tid, 9);
}

static void test_wake_oldest_first_with_bitsets(void **state)
{
    struct fixture *f = *state;
    struct lx_proc *p = &f->proc;
    add_waiter(p, 1, 2, 0x1000, UINT32_MAX, 30);
    add_waiter(p, 2, 3, 0x1000, 0x1, 10);
    add_waiter(p, 3, 4, 0x1000, 0x2, 20);
    add_waiter(p, 4, 5, 0x2000, UINT32_MAX, 5);
    assert_true(lx_multithreaded(p));
    assert_true(lx_thread_exists(p, 4));

    /* Bitset 0x2 matches tid 4 (seq 20) and tid 2 (any bits, seq 30): oldest first. */
    assert_int_equal(lx_futex_wake(p, 0x1000, 0x2, 1), 1);
    assert_int_equal(p->threads.slot[3].state, LX_THREAD_RUNNABLE);
    assert_int_equal(p->threads.slot[3].resume_ret, 0);
    assert_int_equal(p->threads.slot[1].state, LX_THREAD_FUTEX);

    /* FUTEX_WAKE of 1 (Linux wakes one even when asked for 0) takes tid 3 (seq 10). */
    const uint64_t wake0[6] = { 0x1000, 1 /* FUTEX_WAKE */, 0 };
    assert_int_equal(lx_dispatch(p, __NR_futex, wake0), 1);
    assert_int_equal(p->threads.slot[2].state, LX_THREAD_RUNNABLE);

    const uint64_t wake_all[6] = { 0x1000, 1, 100 };
    assert_int_equal(lx_dispatch(p, __NR_futex, wake_all), 1);
    assert_int_equal(lx_dispatch(p, __NR_futex, wake_all), 0);
    assert_int_equal(p->threads.slot[4].state, LX_THREAD_FUTEX);   /* other word */
}

static void test_requeue_and_bad_arguments(void **state)
{
    struct fixture *f = *state;
    struct lx_proc *p = &f->proc;
    add_waiter(p, 1, 2, 0x1000, UINT32_MAX, 1);
    add_waiter(p, 2, 3, 0x1000, UINT32_MAX, 2);
    add_waiter(p, 3, 4, 0x1000, UINT32_MAX, 3);
    /* FUTEX_REQUEUE: wake 1, move up to 1 to 0x3000. */
    const uint64_t requeue[6] = { 0x1000, 3 /* FUTEX_REQUEUE */, 1, 1, 0x3000 };
    assert_int_equal(lx_dispatch(p, __NR_futex, requeue), 2);
    assert_int_equal(p->threads.slot[1].state, LX_THREAD_RUNNABLE);
    assert_int_equal(p->threads.slot[2].futex_addr, 0x3000);
    assert_int_equal(p->threads.slot[3].futex_addr, 0x1000);

    const uint64_t misaligned[6] = { 0x1002, 1, 1 };
    assert_int_equal(lx_dispatch(p, __NR_futex, misaligned), -EINVAL);
    const uint64_t zero_bitset[6] = { 0x1000, 10 /* FUTEX_WAKE_BITSET */, 1, 0, 0, 0 };
    assert_int_equal(lx_dispatch(p, __NR_futex, zero_bitset), -EINVAL);
    const uint64_t lock_pi[6] = { 0x1000, 6 /* FUTEX_LOCK_PI */ };
    assert_int_equal(lx_dispatch(p, __NR_futex, lock_pi), -ENOSYS);
    assert_int_equal(lx_threads_copy_size(&p->threads),
                     offsetof(struct lx_threads, slot) + 4 * sizeof p->threads.slot[0]);
}

static void test_fork_like_clones_are_refused(void **state)
{
    struct fixture *f = *state;
    struct lx_proc *p = &f->proc;
    const uint64_t fork_flags[6] = { 17 /* SIGCHLD */ };
    assert_int_equal(lx_dispatch(p, __NR_clone, fork_flags), -ENOSYS);
    const uint64_t thread_newns[6] = { 0x10900 | 0x20000 };   /* VM|SIGHAND|THREAD|NEWNS */
    assert_int_equal(lx_dispatch(p, __NR_clone, thread_newns), -EINVAL);
    const uint64_t clone3_small[6] = { 0x1000, 16 };
    assert_int_equal(lx_dispatch(p, __NR_clone3, clone3_small), -EINVAL);
    assert_false(lx_multithreaded(p));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_first_thread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forked_process_has_its_own_pid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads_fork_copies_the_frozen_threads, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_wake_oldest_first_with_bitsets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_requeue_and_bad_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fork_like_clones_are_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
