/* Server mode: boot the program until it waits for its first connection, freeze it there,
 * and serve connections from request VMs forked from the frozen image. */
#ifndef KVMS_SERVE_H
#define KVMS_SERVE_H
#include <stddef.h>

#include "cli/config.h"

struct booted_program;
struct vm_snapshot;

/* Runs until SIGINT/SIGTERM (exit status 0) or until the program cannot be served (it
 * exits or crashes before listening: its status, 128+signal, or 1). SIGTERM under -e lets
 * the requests in flight finish first (up to --shutdown-timeout); SIGHUP parses argv (the
 * command line cfg came from) and the configuration file again (reload.h). env_withheld:
 * host variables the policy kept from the guest (a metric). */
int serve(const struct config *cfg, int argc, char **argv, char **guest_env,
          size_t env_withheld);

/* Makes the frozen master for serve_master: -1 when b and snap hold it, or the exit
 * status to exit with (after a message). */
typedef int (*serve_master_fn)(void *ctx, const struct config *cfg, struct booted_program *b,
                               struct vm_snapshot *snap);
/* serve() with the master made by `make` (booted, or loaded from a snapshot file), under
 * the host seccomp filter's boot phase. argv NULL: SIGHUP has nothing to re-read. */
int serve_master(const struct config *cfg, int argc, char **argv, size_t env_withheld,
                 serve_master_fn make, void *ctx);

/* `kvmserver snapshot -o FILE`: boots to readiness and writes the frozen master (snapshot.c)
 * with `policy`, the configuration as kvmserver.toml text. Exit statuses as serve's. */
int snapshot_write(const struct config *cfg, char **guest_env, const char *policy,
                   size_t policy_len);

/* `kvmserver snaprun FILE`: the checked file, and what the caller makes its configuration
 * from (it lives as long as the process). NULL after a message. */
struct snapshot_info {
    const char *policy;        /* the recorded configuration, kvmserver.toml text */
    size_t policy_len;
    char *program;             /* the program and its argv, as booted */
    char **argv;
    int argc;
};
struct snapshot_file;
struct snapshot_file *snapshot_open(const char *path);
const struct snapshot_info *snapshot_info(const struct snapshot_file *f);
/* Serves from it under cfg (the recorded policy, narrowed: config_narrow). */
int snapshot_run(const struct config *cfg, struct snapshot_file *f, size_t env_withheld);

#endif
