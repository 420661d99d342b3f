/* kvmserver: parse the configuration, then dispatch the subcommand. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
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
    enum log_level level = cfg.verbose ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO;
    if (cfg.log_level)
        log_level_parse(cfg.log_level, &level);     /* checked by the option table */
    log_set_level(level);
    log_set_kv(cfg.log_format && !strcmp(cfg.log_format, "kv"));
    size_t env_withheld;
    char **env = guest_environ(&cfg, environ, &env_withheld);
    if (!env) {
        fprintf(stderr, "kvmserver: out of memory building the guest environment\n");
        status = 1;
        goto out;
    }
    status = serve(&cfg, argc, argv, env, env_withheld);
    guest_environ_free(env);
out:
    config_free(&cfg);
    return status;
}
