/* kvmserver: parse the configuration, then dispatch the subcommand. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "cli/env.h"
#include "cli/options.h"
#include "server/serve.h"

extern char **environ;

/* The snapshot records the configuration it was taken with, as kvmserver.toml text. */
static int snapshot(const struct config *cfg, char **env)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    if (!out) {
        fprintf(stderr, "kvmserver: out of memory\n");
        return 1;
    }
    config_print(cfg, out);
    fclose(out);
    int status = snapshot_write(cfg, env, text, len);
    free(text);
    return status;
}

/* snaprun serves under the recorded configuration, narrowed by its own options. */
static int snaprun(struct config *cfg, size_t env_withheld)
{
    const char *path = cfg->program;
    struct snapshot_file *file = snapshot_open(path);
    if (!file)
        return 1;
    const struct snapshot_info *info = snapshot_info(file);
    struct config recorded;
    config_defaults(&recorded);
    recorded.subcommand = SUBCMD_SNAPSHOT;
    char err[512];
    int status = -1;
    if (!config_apply_toml(&recorded, "the snapshot's configuration", info->policy,
                           info->policy_len, err, sizeof err)) {
        fprintf(stderr, "kvmserver: snaprun %s: damaged snapshot: %s\n", path, err);
        status = 1;
    } else if (!config_narrow(cfg, &recorded, err, sizeof err)) {
        fprintf(stderr, "kvmserver: snaprun %s: %s\n", path, err);
        status = CLI_USAGE_ERROR;
    }
    config_free(&recorded);
    if (status >= 0)
        return status;
    cfg->program = info->program;
    cfg->program_argv = info->argv;
    cfg->program_argc = info->argc;
    return snapshot_run(cfg, file, env_withheld);
}

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
    if (cfg.subcommand == SUBCMD_SNAPSHOT)
        status = snapshot(&cfg, env);
    else if (cfg.subcommand == SUBCMD_SNAPRUN)
        status = snaprun(&cfg, env_withheld);
    else
        status = serve(&cfg, argc, argv, env, env_withheld);
    guest_environ_free(env);
out:
    config_free(&cfg);
    return status;
}
