/* struct config -> struct lx_env (see lx_env.h). */
#include "server/lx_env.h"

#include <stdio.h>

int lx_env_build(struct lx_env *env, const struct config *cfg)
{
    *env = (struct lx_env){
        .time_handlers = cfg->verbose,
        .trace_syscalls = cfg->verbose_syscalls,
        .argc = cfg->program_argc,
        .argv = cfg->program_argv,
        .cwd = cfg->cwd,
        .memory_max_mib = cfg->max_main_memory,
        .transparent_hugepages = cfg->transparent_hugepages,
        .net = { .allow_all = cfg->allow_all,
                 .net_set = cfg->allow_net_set, .net = cfg->allow_net,
                 .listen_set = cfg->allow_listen_set, .listen = cfg->allow_listen,
                 .connect_set = cfg->allow_connect_set, .connect = cfg->allow_connect },
    };
    const struct fsp_rules rules = { .allow_all = cfg->allow_all, .read = cfg->allow_read,
                                     .write = cfg->allow_write, .volumes = cfg->volumes,
                                     .program = cfg->program };
    return fsp_init(&env->fs, &rules, stderr);
}

void lx_env_destroy(struct lx_env *env)
{
    fsp_destroy(&env->fs);
}
