/* The shared-memory syscall transport (kvm_pvm): instead of exiting (~35 us here), the
 * guest's entry stub publishes a call on the VM's shared page and spins; a host poller
 * thread serves it (~2 us) and publishes the result. Calls that would block or must run on
 * the vCPU thread are answered "exit instead", and past a spin limit the stub exits anyway.
 *
 * Trust: the page is guest-writable. The host copies a request once before looking at it,
 * and keeps what it relies on (which request was taken, by whom, with what result) in
 * struct vm_transport, which the guest cannot reach. Every call of a VM, from either side,
 * runs under that VM's `exec` lock, so a call is never executed twice or concurrently. */
#ifndef KVMS_TRANSPORT_H
#define KVMS_TRANSPORT_H
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vm/engine.h"

struct vm;
struct vm_syscall;
struct poller;

/* Work the vCPU thread shares with its poller, in chunks each side claims in turn (see
 * transport_share). `claim` is the job's generation (odd while it runs) above the next item
 * to take: a poller that read a finished job's fields fails its claim. */
typedef void vm_share_fn(struct vm *vm, const void *arg, size_t from, size_t to);
struct vm_shared_work {
    _Atomic uint64_t claim;
    _Atomic size_t done;       /* items finished, by either side */
    _Atomic size_t count;
    vm_share_fn *_Atomic run;
    const void *_Atomic arg;
};

struct vm_transport {
    pthread_mutex_t exec;      /* held while any call of this VM runs */
    struct poller *poller;     /* NULL: exit transport only */
    uint64_t claimed;          /* highest request number taken by either side */
    uint64_t served;           /* the poller ran this request: `result`, `stop_after` */
    long result;
    bool stop_after;           /* ... and it asked the VM to stop */
    _Atomic uint64_t shared_calls, declined;   /* counters */
    struct vm_shared_work work;
};

void transport_init(struct vm *vm);
void transport_destroy(struct vm *vm);

/* vm_run brackets its loop with these: the poller spins only while a VM is in the guest,
 * and is woken if it slept. Leave gets what enter returned (the VM's poller then). */
struct poller *transport_guest_enter(struct vm *vm);
void transport_guest_leave(struct poller *pl);

/* On the vCPU thread, for a syscall exit. `fallback`: the stub published the call first.
 * Runs the call unless the poller already did; returns RAX, sets *stop. */
long transport_exit_call(struct vm *vm, const struct vm_syscall *call, bool fallback,
                         bool *stop);

/* On the vCPU thread, with the VM out of the guest: runs items [0, count) of `run`, in
 * chunks that the VM's poller, when awake, takes too. Between requests it has nothing to
 * serve but the other VMs' calls, which it serves between two chunks. Returns when every
 * item is done; `run` must be safe on two threads for different items. */
void transport_share(struct vm *vm, size_t count, vm_share_fn *run, const void *arg);

/* The poller API (poller_start, transport_attach, ...) is in vm/engine.h. */

#endif
