/* The command line and kvmserver.toml, reduced to a struct config.
 *
 * Form: kvmserver [GLOBAL OPTIONS] SUBCOMMAND [SUBCOMMAND OPTIONS] PROGRAM [ARGS...]
 * The configuration file (-c FILE, else ./kvmserver.toml if present) is applied first and the
 * command line after it, so the command line wins: a scalar given on the command line
 * replaces the file's value, and a list option given on the command line replaces the
 * file's list (repeats on the command line then accumulate). */
#ifndef KVMS_CLI_OPTIONS_H
#define KVMS_CLI_OPTIONS_H
#include <stdbool.h>
#include <stdio.h>

#include "cli/config.h"

/* Exit status for usage and configuration errors. */
#define CLI_USAGE_ERROR 2

/* Fills cfg with the documented defaults (and no allocations). */
void config_defaults(struct config *cfg);

/* Frees everything config_defaults/cli_parse/config_apply_toml allocated in cfg.
 * cfg->program and the strings of cfg->program_argv borrow from argv and are not freed. */
void config_free(struct config *cfg);

/* Parses the configuration file and argv into cfg (which need not be initialised).
 * Returns -1 to go on, or an exit status to exit with now: 0 after --help/--help-all
 * (printed to stdout), 2 after a usage or configuration error (printed to stderr).
 * Call config_free(cfg) afterwards whatever it returned.
 * On success cfg->config_file names the file that was read (NULL if none), and
 * cfg->subcommand/program are set unless --print-config was given (which lets them be
 * omitted). --print-config itself is left to the caller: config_print(cfg, stdout). */
int cli_parse(int argc, char **argv, struct config *cfg);

/* Applies configuration file text (len bytes of FILE) over cfg. Sections other than
 * cfg->subcommand's are checked but not applied. Returns true, or false with
 * "FILE:LINE: message" in err. */
bool config_apply_toml(struct config *cfg, const char *filename, const char *text,
                       size_t len, char *err, size_t errlen);

/* Prints cfg as a kvmserver.toml that config_apply_toml reads back to the same values. */
void config_print(const struct config *cfg, FILE *out);

/* NULL, or a message naming the first requested feature that is not implemented yet,
 * e.g. "--hugepages is not implemented yet". */
const char *config_unimplemented(const struct config *cfg);

/* snaprun: run (the options given to it) becomes the policy recorded in a snapshot (rec, read
 * from its kvmserver.toml text) narrowed by them. An option that would widen the recorded
 * policy, or change it in a way that is not plainly narrower, is refused: false with the
 * option named in err. What run takes from rec trades places with what run had, so that
 * config_free of both frees everything once. */
bool config_narrow(struct config *run, struct config *rec, char *err, size_t errlen);

/* Prints a note for each option that is accepted but only partly in effect so far. */
void config_warn_partial(const struct config *cfg, FILE *out);

#endif
