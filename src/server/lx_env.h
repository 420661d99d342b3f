/* The personality's environment (linux/env.h), compiled from the command line before the
 * program boots: the only place where the configuration's fields reach linux/. */
#ifndef KVMS_SERVER_LX_ENV_H
#define KVMS_SERVER_LX_ENV_H
#include "cli/config.h"
#include "linux/env.h"

/* Fills env from cfg and opens the file-system policy's roots, so a bad --volume is reported
 * before the program starts. env refers to cfg's strings: cfg must outlive it. Returns 0, or
 * -1 after a message on stderr. */
int lx_env_build(struct lx_env *env, const struct config *cfg);
void lx_env_destroy(struct lx_env *env);

#endif
