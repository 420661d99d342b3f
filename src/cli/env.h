/* The guest's environment: nothing from the host unless --allow-env/--allow-all lets it
 * through, then the --env K=V entries. */
#ifndef KVMS_CLI_ENV_H
#define KVMS_CLI_ENV_H
#include "cli/config.h"

/* Builds a NULL-terminated, malloc'ed environment: the host entries whose names match an
 * --allow-env pattern (all of them for the bare flag or --allow-all; "API_*" matches names
 * starting with "API_"; other patterns match exactly), in host order, then each --env K=V,
 * replacing an earlier entry of the same name. host_environ may be NULL. Returns NULL if
 * out of memory. Free with guest_environ_free. *withheld (if not NULL): the host variables
 * the policy kept out. */
char **guest_environ(const struct config *cfg, char *const *host_environ, size_t *withheld);
void guest_environ_free(char **env);

#endif
