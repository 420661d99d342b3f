/* Builds the guest environment from the configuration and the host environment. */
#include "cli/env.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static size_t name_length(const char *entry)
{
    const char *eq = strchr(entry, '=');
    return eq ? (size_t)(eq - entry) : strlen(entry);
}

static bool pattern_matches(const char *pattern, const char *name, size_t name_len)
{
    const size_t len = strlen(pattern);
    if (len > 0 && pattern[len - 1] == '*')
        return name_len >= len - 1 && !memcmp(pattern, name, len - 1);
    return len == name_len && !memcmp(pattern, name, len);
}

/* systemd's socket-activation variables are kvmserver's (server/activation.c), never the
 * program's: its fds and pid are not the ones they name. */
static bool activation_variable(const char *entry)
{
    static const char *const names[] = { "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES" };
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (pattern_matches(names[i], entry, name_length(entry)))
            return true;
    return false;
}

static bool host_variable_allowed(const struct config *cfg, const char *entry)
{
    if (activation_variable(entry))
        return false;
    if (cfg->allow_all)
        return true;
    if (!cfg->allow_env_set)
        return false;
    const size_t name_len = name_length(entry);
    for (size_t i = 0; i < cfg->allow_env.count; i++)
        if (pattern_matches(cfg->allow_env.items[i], entry, name_len))
            return true;
    return false;
}

void guest_environ_free(char **env)
{
    if (!env)
        return;
    for (char **e = env; *e; e++)
        free(*e);
    free(env);
}

char **guest_environ(const struct config *cfg, char *const *host_environ, size_t *withheld)
{
    size_t host_count = 0;
    if (host_environ)
        while (host_environ[host_count])
            host_count++;
    if (host_count > (size_t)-1 - 1 - cfg->env.count)
        return NULL;   /* calloc checks the multiplication */
    char **env = calloc(host_count + cfg->env.count + 1, sizeof *env);
    if (!env)
        return NULL;
    size_t n = 0, refused = 0;
    for (size_t i = 0; i < host_count; i++) {
        const char *entry = host_environ[i];
        if (!strchr(entry, '='))
            continue;   /* entries without '=' are not variables */
        if (!host_variable_allowed(cfg, entry)) {
            refused++;
            continue;
        }
        if (!(env[n++] = strdup(entry)))
            goto out_of_memory;
    }
    for (size_t i = 0; i < cfg->env.count; i++) {
        const char *assignment = cfg->env.items[i];
        const size_t name_len = name_length(assignment);
        char *copy = strdup(assignment);
        if (!copy)
            goto out_of_memory;
        /* The first entry of this name takes the new value; later duplicates (possible in a
         * host environment) go, so the guest sees one value whichever it reads. */
        bool placed = false;
        size_t kept = 0;
        for (size_t j = 0; j < n; j++) {
            if (name_length(env[j]) == name_len && !memcmp(env[j], assignment, name_len)) {
                free(env[j]);
                if (placed)
                    continue;
                env[j] = copy;
                placed = true;
            }
            env[kept++] = env[j];
        }
        n = kept;
        if (!placed)
            env[n++] = copy;
        env[n] = NULL;
    }
    env[n] = NULL;
    if (withheld)
        *withheld = refused;
    return env;

out_of_memory:
    guest_environ_free(env);
    return NULL;
}
