/* --profile: where a request's time goes, summed over requests and printed at exit (one
 * readable block, and one key=value line for the benchmarks). With -e only: a request is
 * one connection, from its accept to its reset. */
#ifndef KVMS_PROFILE_H
#define KVMS_PROFILE_H
#include <stdint.h>
#include <stdio.h>

#include "linux/process.h"
#include "vm/engine.h"
#include "vm/kvm_stats.h"

struct request_profile {
    struct lx_profile calls;        /* the VM's process counts its calls here */
    uint64_t requests;
    uint64_t wait_ns;               /* the resumed frozen wait, until a client came */
    uint64_t request_ns;            /* from the accept to the end of the connection */
    uint64_t exits, syscall_exits;
    uint64_t reset_ns, scan_ns, copy_ns, cpu_ns, pages;
    uint64_t personality_ns;        /* closing the fds, and making the process again */
    uint64_t guest_ns, flushes, flush_ns;   /* the VM's, at the end (profile_add) */
    uint64_t kvm[KVM_COUNTERS];     /* KVM's own counters over the requests */
    uint64_t kvm_vms;               /* VMs whose KVM counters could be read */
    struct vm_kvm_stats kvm_stats;  /* this VM's; kvm_mark: the counters at its resume */
    uint64_t kvm_mark[KVM_COUNTERS];
};

/* Opens the VM's KVM counters (they are left out of the profile where KVM has none). */
void profile_start(struct request_profile *p, const struct vm *vm);
/* A request starts: the KVM counters now. */
void profile_resumed(struct request_profile *p);

/* One request of a VM: the times at resuming, accepting and ending; its reset; the KVM
 * counters since profile_resumed. */
void profile_request(struct request_profile *p, uint64_t resumed_ns, uint64_t accepted_ns,
                     uint64_t ended_ns, uint64_t exits, uint64_t syscall_exits,
                     const struct vm_reset_stats *reset, uint64_t personality_ns);
/* Adds one VM's sums (and its engine counters) into total. */
void profile_add(struct request_profile *total, const struct request_profile *vm_profile,
                 const struct vm *vm);
void profile_print(const struct request_profile *total, FILE *out);

#endif
