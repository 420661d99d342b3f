/* --profile: where a request's time goes, summed over requests and printed at exit (one
 * readable block, and one key=value line for the benchmarks). With -e only: a request is
 * one connection, from its accept to its reset. */
#ifndef KVMS_PROFILE_H
#define KVMS_PROFILE_H
#include <stdint.h>
#include <stdio.h>

#include "linux/process.h"
#include "vm/engine.h"

struct request_profile {
    struct lx_profile calls;        /* the VM's process counts its calls here */
    uint64_t requests;
    uint64_t wait_ns;               /* the resumed frozen wait, until a client came */
    uint64_t request_ns;            /* from the accept to the end of the connection */
    uint64_t exits, syscall_exits;
    uint64_t reset_ns, scan_ns, copy_ns, cpu_ns, pages;
    uint64_t personality_ns;        /* closing the fds, and making the process again */
    uint64_t guest_ns, flushes, flush_ns;   /* the VM's, at the end (profile_add) */
};

/* One request of a VM: the times at resuming, accepting and ending; its reset. */
void profile_request(struct request_profile *p, uint64_t resumed_ns, uint64_t accepted_ns,
                     uint64_t ended_ns, uint64_t exits, uint64_t syscall_exits,
                     const struct vm_reset_stats *reset, uint64_t personality_ns);
/* Adds one VM's sums (and its engine counters) into total. */
void profile_add(struct request_profile *total, const struct request_profile *vm_profile,
                 const struct vm *vm);
void profile_print(const struct request_profile *total, FILE *out);

#endif
