/* SIGHUP: re-reading kvmserver.toml (and the command line over it) while serving. A few
 * options take effect at the next request; for any other one that changed, kvmserver says
 * that it needs a restart and keeps the running value. */
#ifndef KVMS_RELOAD_H
#define KVMS_RELOAD_H
#include <stdint.h>

#include "cli/config.h"

/* The options SIGHUP may change, as the request threads read them (atomics). */
struct live_config {
    _Atomic double max_request_time;        /* seconds; 0 = none */
    _Atomic double shutdown_timeout;        /* seconds */
    _Atomic uint64_t max_request_memory;    /* MiB */
    _Atomic uint64_t limit_request_memory;  /* MiB */
    char *applied;                          /* config_print of what runs now (reload.c) */
};

/* Takes the running configuration's values. Returns 0, or -1 when out of memory. */
int live_config_init(struct live_config *live, const struct config *cfg);

/* Parses argv and the configuration file again; applies the options above that changed and
 * names every other change that needs a restart, one line each on stderr. A file that does
 * not parse changes nothing (its error is printed). */
void reload_config(struct live_config *live, int argc, char **argv);

#endif
