/* Server mode: boot the program until it waits for its first connection, freeze it there,
 * and serve connections from request VMs forked from the frozen image. */
#ifndef KVMS_SERVE_H
#define KVMS_SERVE_H
#include <stddef.h>

#include "cli/config.h"

/* Runs until SIGINT/SIGTERM (exit status 0) or until the program cannot be served (it
 * exits or crashes before listening: its status, 128+signal, or 1). SIGTERM under -e lets
 * the requests in flight finish first (up to --shutdown-timeout); SIGHUP parses argv (the
 * command line cfg came from) and the configuration file again (reload.h). env_withheld:
 * host variables the policy kept from the guest (a metric). */
int serve(const struct config *cfg, int argc, char **argv, char **guest_env,
          size_t env_withheld);

#endif
