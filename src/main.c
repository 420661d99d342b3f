/* kvmserver: parse the configuration, then dispatch the subcommand. */
#include <stdio.h>
#include <stdlib.h>

#include "cli/env.h"
#include "cli/options.h"
#include "server/serve.h"

extern char **environ;

int main(int argc, char **argv)
{
    struct config cfg;
    int status = cli_parse(argc, argv, &cfg);
    if (status >= 0)
        goto out;
    if (cfg.print_config) {
        config_print(&cfg, stdout);
        status = 0;
        goto out;
    }
    const char *missing = config_unimplemented(&cfg);
    if (missing) {
        fprintf(stderr, "kvmserver: %s\n", missing);
        status = CLI_USAGE_ERROR;
        goto out;
    }
    config_warn_partial(&cfg, stderr);
    size_t env_withheld;
    char **env = guest_environ(&cfg, environ, &env_withheld);
    if (!env) {
        fprintf(stderr, "kvmserver: out of memory building the guest environment\n");
        status = 1;
        goto out;
    }
    if (cfg.subcommand == SUBCMD_SNAPSHOT)
        status = snapshot_write(&cfg, env);
    else if (cfg.subcommand == SUBCMD_SNAPRUN)
        status = snapshot_run(&cfg, env_withheld);
    else
        status = serve(&cfg, env, env_withheld);
    guest_environ_free(env);
out:
    config_free(&cfg);
    return status;
}
