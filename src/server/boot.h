/* Booting the program in its master VM: until it first waits for a connection (then it is
 * frozen, ready to be forked) or until it ends (a plain program run to completion). */
#ifndef KVMS_BOOT_H
#define KVMS_BOOT_H
#include <sched.h>

#include "cli/config.h"
#include "linux/listener.h"
#include "linux/process.h"
#include "server/lx_env.h"
#include "server/warmup.h"
#include "vm/engine.h"

struct booted_program {
    struct vm *vm;            /* the master */
    struct lx_env env;        /* shared by the master and every request VM */
    struct lx_proc *proc;
    struct boot_freeze freeze;  /* how proc reaches its freeze (and the warm-up, with -w) */
    struct poller *poller;    /* shared syscall transport; NULL = VM exits only */
    cpu_set_t vm_cpus;        /* with a poller: the CPUs left for VM threads */
    cpu_set_t poller_cpu;     /* ... and the poller's, shared with the VMs' fd helpers */
    bool pin_vms;
    uint64_t frozen_ns;       /* host CLOCK_MONOTONIC when proc froze (or was loaded) */
};

/* What a boot sets up beyond cfg: the storage subcommand's two programs (linux/listener.h). */
struct boot_role {
    bool storage;                                   /* this is the storage program */
    const struct lx_storage_routes *storage_routes; /* where the program reaches it, or NULL */
};

/* Request VMs to run: -t, or one per CPU for 0. */
unsigned boot_vm_count(const struct config *cfg);

/* Returns -1 when the program is frozen at readiness, or the exit status kvmserver should
 * exit with: the program's own, 128+signal after a crash (reported on stderr), 124 after
 * --max-boot-time, 1 when the VM could not be set up. */
int boot_until_ready(struct booted_program *b, const struct config *cfg, char **guest_env,
                     const struct boot_role *role);

/* The syscall transport for the master's platform: sets b->poller (NULL: VM exits) and
 * the CPUs for VM threads. 0 or -1. */
int boot_choose_transport(struct booted_program *b, const struct config *cfg);

#endif
