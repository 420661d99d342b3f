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
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

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
/* Starts serving `vm` from `pl` (after a fork, or again after a reset: re-reads the page). */
void transport_attach(struct vm *vm, struct poller *pl, unsigned spin_us);

/* Stops serving `vm` (which then uses exits only); the poller never touches its memory
 * again. A master is detached before it is frozen. */
void transport_detach(struct vm *vm);

/* vm_run brackets its loop with these: the poller spins only while a VM is in the guest,
 * and is woken if it slept. Leave gets what enter returned (the VM's poller then). */
struct poller *transport_guest_enter(struct vm *vm);
void transport_guest_leave(struct poller *pl);

/* On the vCPU thread, for a syscall exit. `fallback`: the stub published the call first.
 * Runs the call unless the poller already did; returns RAX, sets *stop. */
long transport_exit_call(struct vm *vm, const struct vm_syscall *call, bool fallback,
                         bool *stop);


/* One poller thread serves many VMs; it spins while they are busy and sleeps when idle. */
struct poller *poller_start(void);
int poller_add(struct poller *pl, struct vm *vm);
/* Ends the poller thread (before the VMs it served go away) and frees it. */
void poller_stop(struct poller *pl);
void poller_set_affinity(struct poller *pl, const cpu_set_t *cpus);

#endif
