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
#include <stdint.h>

#include "vm/engine.h"

struct vm;
struct vm_syscall;
struct poller;

struct vm_transport {
    pthread_mutex_t exec;      /* held while any call of this VM runs */
    struct poller *poller;     /* NULL: exit transport only */
    uint64_t claimed;          /* highest request number taken by either side */
    uint64_t served;           /* the poller ran this request: `result`, `stop_after` */
    long result;
    bool stop_after;           /* ... and it asked the VM to stop */
    _Atomic uint64_t shared_calls, declined;   /* counters */
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

/* The poller API (poller_start, transport_attach, ...) is in vm/engine.h. */

#endif
