/* What the personality is told about the world it runs in: compiled once, before the program
 * boots, by the layer above (server/lx_env.c, from the command line), and shared read-only by
 * the master and every request VM. linux/ never sees the command line itself. */
#ifndef KVMS_LX_ENV_H
#define KVMS_LX_ENV_H
#include <stdbool.h>
#include <stdint.h>

#include "linux/netpolicy.h"
#include "linux/policy.h"

struct lx_env {
    /* Verbosity */
    bool time_handlers;         /* -v: host time in handlers, for the exit report */
    bool trace_syscalls;        /* --verbose-syscalls: one line per call */
    /* The program */
    int argc;                   /* /proc/self/cmdline */
    char *const *argv;
    const char *cwd;            /* the first working directory; NULL = kvmserver's */
    /* Limits, and what /proc reports */
    uint64_t memory_max_mib;    /* the cgroup's memory.max; 0 = "max" */
    bool transparent_hugepages;
    /* Policies */
    struct np_rules net;
    struct fs_policy fs;        /* opened roots, built at boot */
};

#endif
