/* The shared-memory syscall transport (see transport.h). */
#include "vm/transport.h"

#include <errno.h>
#include <stddef.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "base/time.h"
#include "vm/layout.h"
#include "vm/syscall_sites.h"
#include "vm/vm.h"

#define POLLER_MAX_VMS 256
/* The poller keeps spinning this long after the last call it served, then sleeps. */
#define POLLER_IDLE_NS (2 * 1000 * 1000)
/* `pause` takes ~25-30 ns in ring 3 here, plus the compare. */
#define SPIN_NS_PER_ITERATION 30
/* Items of shared work a side claims at once: a reset's pages, ~2 us of copying. */
#define SHARE_CHUNK 16

struct shared_page {
    volatile uint64_t enabled, awake, spin, rewrite, pad0[4];
    volatile uint64_t req_seq, nr, args[6];
    volatile uint64_t saved_r11, ret, pad1[6];
    volatile uint64_t resp_seq;
    volatile int64_t result;
    volatile uint64_t exit_instead;
};
_Static_assert(offsetof(struct shared_page, awake) == SH_AWAKE - SHARED_PAGE_ADDR, "layout");
_Static_assert(offsetof(struct shared_page, spin) == SH_SPIN - SHARED_PAGE_ADDR, "layout");
_Static_assert(offsetof(struct shared_page, rewrite) == SH_REWRITE - SHARED_PAGE_ADDR, "layout");
_Static_assert(offsetof(struct shared_page, ret) == SH_RET - SHARED_PAGE_ADDR, "layout");
_Static_assert(offsetof(struct shared_page, req_seq) == SH_REQ_SEQ - SHARED_PAGE_ADDR, "layout");
_Static_assert(offsetof(struct shared_page, args) == SH_ARGS - SHARED_PAGE_ADDR, "layout");
_Static_assert(offsetof(struct shared_page, saved_r11) == SH_SAVED_R11 - SHARED_PAGE_ADDR,
               "layout");
_Static_assert(offsetof(struct shared_page, resp_seq) == SH_RESP_SEQ - SHARED_PAGE_ADDR,
               "layout");
_Static_assert(offsetof(struct shared_page, exit_instead) == SH_EXIT_INSTEAD - SHARED_PAGE_ADDR,
               "layout");

struct poller {
    pthread_t thread;
    pthread_mutex_t lock;                 /* adding VMs */
    struct vm *vms[POLLER_MAX_VMS];
    _Atomic unsigned nvms;
    _Atomic unsigned in_guest;            /* VMs inside vm_run: only they can call */
    _Atomic uint32_t sleeping;            /* futex word */
    _Atomic unsigned sharing;             /* VMs with shared work running */
    _Atomic bool stopping;
};

static struct shared_page *page_of(struct vm *vm)
{
    return (struct shared_page *)(vm->mem + SHARED_PAGE_ADDR);
}

void transport_init(struct vm *vm)
{
    memset(&vm->transport, 0, sizeof vm->transport);
    pthread_mutex_init(&vm->transport.exec, NULL);
}

void transport_destroy(struct vm *vm)
{
    pthread_mutex_destroy(&vm->transport.exec);
}

void transport_detach(struct vm *vm)
{
    pthread_mutex_lock(&vm->transport.exec);
    struct shared_page *page = page_of(vm);
    page->enabled = page->awake = 0;
    vm->transport.poller = NULL;
    pthread_mutex_unlock(&vm->transport.exec);
}

void transport_attach(struct vm *vm, struct poller *pl, unsigned spin_us)
{
    struct vm_transport *t = &vm->transport;
    pthread_mutex_lock(&t->exec);
    struct shared_page *page = page_of(vm);
    /* Whatever the page says now is the starting point: nothing before it is pending. */
    t->claimed = t->served = page->req_seq;
    t->poller = pl;
    uint64_t iterations = (uint64_t)spin_us * 1000 / SPIN_NS_PER_ITERATION;
    page->spin = iterations ? iterations : 1;
    page->exit_instead = 0;
    page->resp_seq = page->req_seq;
    page->enabled = pl != NULL;
    page->awake = pl != NULL && !atomic_load(&pl->sleeping);
    pthread_mutex_unlock(&t->exec);
}

static void wake_poller(struct poller *pl)
{
    uint32_t one = 1;
    if (atomic_compare_exchange_strong(&pl->sleeping, &one, 0))
        syscall(SYS_futex, &pl->sleeping, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

struct poller *transport_guest_enter(struct vm *vm)
{
    struct poller *pl = vm->transport.poller;
    if (pl) {
        atomic_fetch_add(&pl->in_guest, 1);
        wake_poller(pl);    /* up by the time the guest calls, rather than after an exit */
    }
    return pl;
}

void transport_guest_leave(struct poller *pl)
{
    if (pl)
        atomic_fetch_sub(&pl->in_guest, 1);
}

long transport_exit_call(struct vm *vm, const struct vm_syscall *call, bool fallback,
                         bool *stop)
{
    struct vm_transport *t = &vm->transport;
    if (!t->poller)
        return vm->ops->syscall(vm->ops_ctx, vm, call, stop);
    long ret;
    pthread_mutex_lock(&t->exec);
    uint64_t seq = page_of(vm)->req_seq;
    if (fallback && seq == t->served && seq == t->claimed) {
        /* The poller ran it and the stub gave up waiting, or was told to exit so the VM
         * can stop: hand over the poller's result, never run it again. */
        ret = t->result;
        *stop = t->stop_after;
    } else {
        if (fallback && seq > t->claimed)
            t->claimed = seq;          /* taken here: the poller must not run it too */
        ret = vm->ops->syscall(vm->ops_ctx, vm, call, stop);
    }
    pthread_mutex_unlock(&t->exec);
    wake_poller(t->poller);            /* an exit means the poller was not there */
    return ret;
}

static __thread bool on_poller;

/* Claims and runs one chunk of the VM's shared work. Returns false once none is left. */
static bool share_chunk(struct vm *vm)
{
    struct vm_shared_work *w = &vm->transport.work;
    uint64_t claim = atomic_load(&w->claim);
    size_t from, to;
    vm_share_fn *run;
    const void *arg;
    do {
        if (!(claim >> 32 & 1))
            return false;
        /* Read after the claim: a later job's values make the exchange below fail. */
        size_t count = atomic_load(&w->count);
        run = atomic_load(&w->run);
        arg = atomic_load(&w->arg);
        from = (uint32_t)claim;
        if (from >= count)
            return false;
        to = count - from > SHARE_CHUNK ? from + SHARE_CHUNK : count;
    } while (!atomic_compare_exchange_weak(&w->claim, &claim, (claim >> 32 << 32) | to));
    run(vm, arg, from, to);
    atomic_fetch_add(&w->done, to - from);
    return true;
}

void transport_share(struct vm *vm, size_t count, vm_share_fn *run, const void *arg)
{
    struct vm_shared_work *w = &vm->transport.work;
    struct poller *pl = vm->transport.poller;
    /* A sleeping poller would take a futex wake to come: more than the work it could do. */
    if (!pl || atomic_load(&pl->sleeping) || count <= SHARE_CHUNK || count > UINT32_MAX) {
        run(vm, arg, 0, count);
        return;
    }
    uint64_t generation = (atomic_load(&w->claim) >> 32) + 1;     /* odd: running */
    atomic_store(&w->done, 0);
    atomic_store(&w->count, count);
    atomic_store(&w->run, run);
    atomic_store(&w->arg, arg);
    atomic_store(&w->claim, generation << 32);
    atomic_fetch_add(&pl->sharing, 1);
    while (share_chunk(vm))
        ;
    atomic_store(&w->claim, (generation + 1) << 32);              /* even: over */
    atomic_fetch_sub(&pl->sharing, 1);
    /* Every item is claimed; the poller's last chunk may still run. */
    for (unsigned spins = 0; atomic_load(&w->done) < count; spins++) {
        if (spins < 1000)
            __builtin_ia32_pause();
        else
            sched_yield();      /* the poller was preempted mid-chunk, maybe on our CPU */
    }
}

/* Serves the pending request of one VM, if any. Returns whether there was one. */
static bool serve_one(struct vm *vm)
{
    struct vm_transport *t = &vm->transport;
    if (pthread_mutex_trylock(&t->exec))
        return false;
    /* Only under the lock: a detached VM's memory may be gone. */
    bool served = false;
    uint64_t seq = t->poller ? page_of(vm)->req_seq : 0;
    struct shared_page *page = page_of(vm);
    if (t->poller && seq > t->claimed) {
        /* One copy of the request into host memory; only the copy is looked at. */
        struct vm_syscall call = { .nr = (uint32_t)page->nr };
        for (int i = 0; i < 6; i++)
            call.arg[i] = page->args[i];
        uint64_t ret = page->ret, r11 = page->saved_r11;
        t->claimed = seq;
        /* The program's own call into page 0 is no system call: the vCPU thread reports
         * the crash. */
        if (sites_is_syscall(vm, ret, r11) && vm->ops->can_serve_shared(vm->ops_ctx, vm, &call)) {
            bool stop = false;
            long ret = vm->ops->syscall(vm->ops_ctx, vm, &call, &stop);
            t->served = seq;
            t->result = ret;
            t->stop_after = stop;
            page->result = ret;
            /* The VM must stop, or a signal is due: come back by an exit. */
            page->exit_instead = stop || (vm->ops->exit_after_shared &&
                                          vm->ops->exit_after_shared(vm->ops_ctx, vm, &call, ret));
            atomic_fetch_add(&t->shared_calls, 1);
        } else {
            page->exit_instead = 1;
            atomic_fetch_add(&t->declined, 1);
        }
        atomic_thread_fence(memory_order_release);
        page->resp_seq = seq;
        served = true;
    }
    pthread_mutex_unlock(&t->exec);
    return served;
}

static void set_awake(struct poller *pl, unsigned n, bool awake)
{
    for (unsigned i = 0; i < n; i++) {
        struct vm *vm = pl->vms[i];
        if (pthread_mutex_trylock(&vm->transport.exec))
            continue;       /* busy: it is being served or reset, and will be told later */
        if (vm->transport.poller)      /* a detached VM's memory is not ours to write */
            page_of(vm)->awake = awake;
        pthread_mutex_unlock(&vm->transport.exec);
    }
}

bool vm_on_poller_thread(void)
{
    return on_poller;
}

static void *poller_main(void *arg)
{
    struct poller *pl = arg;
    on_poller = true;
    uint64_t last_busy = now_ns();
    while (!atomic_load(&pl->stopping)) {
        unsigned n = atomic_load(&pl->nvms);
        bool busy = false;
        for (unsigned i = 0; i < n; i++)
            busy |= serve_one(pl->vms[i]);
        /* One chunk of shared work at a time, so that the calls of the others wait little. */
        if (atomic_load(&pl->sharing))
            for (unsigned i = 0; i < n; i++)
                busy |= share_chunk(pl->vms[i]);
        if (busy) {
            last_busy = now_ns();
            continue;
        }
        /* With no VM in the guest (between requests: a reset, the wait for a client) no
         * call can come until one enters it; meanwhile whoever else wants this CPU has it
         * (a client of the server, another VM's thread), and the poller stays warm. */
        if (atomic_load(&pl->in_guest))
            __builtin_ia32_pause();
        else
            sched_yield();
        if (now_ns() - last_busy < POLLER_IDLE_NS)
            continue;
        /* Idle: tell the stubs to exit instead of waiting for us, then sleep until an exit
         * wakes us. A call published in between times out in its stub and exits. */
        atomic_store(&pl->sleeping, 1);
        set_awake(pl, n, false);
        while (atomic_load(&pl->sleeping) && !atomic_load(&pl->stopping))
            syscall(SYS_futex, &pl->sleeping, FUTEX_WAIT_PRIVATE, 1, NULL, NULL, 0);
        set_awake(pl, atomic_load(&pl->nvms), true);
        last_busy = now_ns();
    }
    return NULL;
}

struct poller *poller_start(void)
{
    struct poller *pl = calloc(1, sizeof *pl);
    if (!pl)
        return NULL;
    pthread_mutex_init(&pl->lock, NULL);
    if (pthread_create(&pl->thread, NULL, poller_main, pl) != 0) {
        free(pl);
        return NULL;
    }
    return pl;
}

void poller_stop(struct poller *pl)
{
    atomic_store(&pl->stopping, true);
    atomic_store(&pl->sleeping, 0);
    syscall(SYS_futex, &pl->sleeping, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    pthread_join(pl->thread, NULL);
    free(pl);
}

int poller_add(struct poller *pl, struct vm *vm)
{
    pthread_mutex_lock(&pl->lock);
    unsigned n = atomic_load(&pl->nvms);
    if (n == POLLER_MAX_VMS) {
        pthread_mutex_unlock(&pl->lock);
        return -ENOSPC;
    }
    pl->vms[n] = vm;
    atomic_store(&pl->nvms, n + 1);
    pthread_mutex_unlock(&pl->lock);
    return 0;
}

void poller_set_affinity(struct poller *pl, const cpu_set_t *cpus)
{
    pthread_setaffinity_np(pl->thread, sizeof *cpus, cpus);
}
