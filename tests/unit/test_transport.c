/* Unit tests for the work a vCPU thread shares with its poller (transport_share, used by
 * resets to copy pages on two CPUs): every item runs exactly once, the poller takes part
 * when it is awake, and a poller that read a finished job never runs a later job's items
 * as the old one's. A VM here is only its memory's shared page and its transport. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/time.h"
#include "vm/layout.h"
#include "vm/vm.h"

struct fixture {
    struct vm vm;
    struct poller *pl;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    f->vm.mem_size = SHARED_PAGE_ADDR + 4096;
    f->vm.mem = calloc(1, f->vm.mem_size);
    transport_init(&f->vm);
    f->pl = poller_start();
    assert_non_null(f->pl);
    assert_int_equal(poller_add(f->pl, &f->vm), 0);
    transport_attach(&f->vm, f->pl, 10);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    poller_stop(f->pl);
    transport_destroy(&f->vm);
    free(f->vm.mem);
    free(f);
    return 0;
}

/* Wakes the poller the way a VM entering the guest does: awake for a while after. */
static void wake(struct fixture *f)
{
    transport_guest_leave(transport_guest_enter(&f->vm));
}

struct job {
    _Atomic uint8_t *runs;          /* per item: how often it ran */
    size_t count;
    _Atomic size_t by_poller;       /* items the poller ran */
    _Atomic size_t calls;           /* calls of run */
    bool wait_for_poller;           /* the vCPU side holds back until the poller ran some */
    _Atomic bool over;              /* transport_share returned */
};

static _Atomic unsigned late_runs;  /* runs that ended after their job had returned */

static void run_items(struct vm *vm, const void *arg, size_t from, size_t to)
{
    (void)vm;
    struct job *j = (struct job *)arg;
    assert_true(from < to && to <= j->count);
    atomic_fetch_add(&j->calls, 1);
    for (size_t i = from; i < to; i++)
        atomic_fetch_add(&j->runs[i], 1);
    if (vm_on_poller_thread()) {
        atomic_fetch_add(&j->by_poller, to - from);
        if (atomic_load(&j->over))
            atomic_fetch_add(&late_runs, 1);
        return;
    }
    uint64_t give_up = now_ns() + 2000000000ull;
    while (j->wait_for_poller && !atomic_load(&j->by_poller) && now_ns() < give_up)
        sched_yield();
}

static void assert_each_ran_once(const struct job *j)
{
    for (size_t i = 0; i < j->count; i++)
        if (j->runs[i] != 1)
            fail_msg("item %zu of %zu ran %u times", i, j->count, (unsigned)j->runs[i]);
}

static void test_an_awake_poller_takes_part(void **state)
{
    struct fixture *f = *state;
    struct job j = { .count = 5000, .wait_for_poller = true };
    j.runs = calloc(j.count, 1);
    wake(f);
    transport_share(&f->vm, j.count, run_items, &j);
    assert_each_ran_once(&j);
    assert_true(j.by_poller > 0);
    assert_true(j.by_poller < j.count);     /* the vCPU thread took its chunks too */
    free(j.runs);
}

static void test_without_a_poller_the_caller_runs_all_at_once(void **state)
{
    struct fixture *f = *state;
    transport_detach(&f->vm);
    struct job j = { .count = 5000 };
    j.runs = calloc(j.count, 1);
    transport_share(&f->vm, j.count, run_items, &j);
    assert_each_ran_once(&j);
    assert_int_equal(j.by_poller, 0);
    assert_int_equal(j.calls, 1);
    free(j.runs);
}

/* Jobs back to back, of sizes that end mid-chunk: a poller still inside the last job's
 * claim must fail it, not run the new job's items under the old job's arguments. Every
 * job's items are checked once all have run, so that a late run shows too. */
static void test_jobs_back_to_back_run_each_item_once(void **state)
{
    struct fixture *f = *state;
    enum { JOBS = 3000 };
    struct job *jobs = calloc(JOBS, sizeof *jobs);
    size_t by_poller = 0;
    for (unsigned n = 0; n < JOBS; n++) {
        jobs[n].count = 17 + n % 50;
        jobs[n].runs = calloc(jobs[n].count, 1);
        jobs[n].wait_for_poller = true;     /* both sides in every job */
        wake(f);
        transport_share(&f->vm, jobs[n].count, run_items, &jobs[n]);
        atomic_store(&jobs[n].over, true);
    }
    for (unsigned n = 0; n < JOBS; n++) {
        assert_each_ran_once(&jobs[n]);
        by_poller += jobs[n].by_poller;
        free(jobs[n].runs);
    }
    free(jobs);
    assert_true(by_poller >= JOBS);
    assert_int_equal(late_runs, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_an_awake_poller_takes_part, setup, teardown),
        cmocka_unit_test_setup_teardown(test_without_a_poller_the_caller_runs_all_at_once,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_jobs_back_to_back_run_each_item_once, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
