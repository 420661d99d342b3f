/* The host seccomp filter: what the kvmserver process itself may ask of the host kernel.
 *
 * A guest that found a bug in a system-call handler could make the host process do anything
 * the process may do; the filter bounds that to the calls kvmserver needs. Two phases:
 *   1. host_seccomp_boot(), before anything else runs: loading the program, creating VMs,
 *      the metrics and poller threads, and every handler the booting program reaches. A plain
 *      `kvmserver run PROGRAM` that never listens runs its whole life under this phase.
 *   2. host_seccomp_serve(), after the freeze and before the first request VM runs, applied to
 *      every thread (TSYNC): only the calls of the handlers, the poller, the metrics thread,
 *      the request VMs' creation and reset, and the vCPU loop.
 * A call off the list kills the whole process with SIGSYS. The lists and why each call is
 * there are in seccomp.c. --no-seccomp turns both phases off (for debugging). */
#ifndef KVMS_SECCOMP_H
#define KVMS_SECCOMP_H

#include "cli/config.h"

/* Both return 0, or -1 after printing why the filter could not be installed. */
int host_seccomp_boot(const struct config *cfg);
int host_seccomp_serve(const struct config *cfg);

#endif
