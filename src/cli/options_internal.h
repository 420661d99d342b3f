/* Inside the command line layer: the option table and what its files share. One table
 * describes every option; the command line (options_argv.c), the configuration file
 * (options_file.c), --help-all (options_help.c) and --print-config (options_print.c) are all
 * driven by it, so an option cannot be known to one of them and missing from another. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cli/options.h"
#include "cli/toml.h"

/* Upper bounds that keep later unit conversions from overflowing: MiB -> bytes and
 * seconds -> nanoseconds must both fit in an int64_t. */
#define MIB_MAX ((uint64_t)INT64_MAX >> 20)
#define SECONDS_MAX 1e9
#define CONFIG_FILE_MAX ((size_t)1 << 20)
#define DEFAULT_CONFIG_FILE "kvmserver.toml"

enum opt_kind {
    OPT_HELP,
    OPT_HELP_ALL,
    OPT_FLAG,      /* bool */
    OPT_UINT,      /* unsigned */
    OPT_MIB,       /* uint64_t */
    OPT_SECONDS,   /* double */
    OPT_STRING,    /* const char *, owned */
    OPT_LIST,      /* struct str_list: one item per occurrence */
    OPT_ACCESS,    /* struct str_list + bool "given": --allow-X[=A,B,...] */
};

struct opt_desc {
    const char *name;          /* long option name, also the configuration file key */
    char short_name;
    enum opt_kind kind;
    enum subcommand scope;     /* SUBCMD_NONE = global; else only after that subcommand */
    size_t field;              /* offset of the value in struct config */
    size_t set_field;          /* OPT_ACCESS: offset of the bool saying it was given */
    const char *bare_item;     /* OPT_ACCESS: what the bare flag allows; NULL = any address */
    const char *(*check)(const char *item);   /* NULL, or what is wrong with a value/item */
    const char *arg;           /* value placeholder for help */
    const char *help;
    const char *default_text;  /* for --help-all when the value alone does not say it */
    bool common;               /* shown by --help */
    bool cli_only;             /* not a configuration file key */
};


/* The table (options_table.c); N_OPTIONS is checked against it there. */
#define N_OPTIONS 52
#define N_SUBCOMMANDS (SUBCMD_SNAPRUN + 1)
extern const struct opt_desc options[N_OPTIONS];
extern const char *const subcommand_names[N_SUBCOMMANDS];

enum subcommand subcommand_by_name(const char *name);
const struct opt_desc *option_by_name(const char *name, size_t len);
const struct opt_desc *option_by_short(char c);

/* Memory: the command line layer gives up on exhaustion rather than half-parsing. */
void out_of_memory(void) __attribute__((noreturn));
char *xstrdup(const char *s);
void list_push(struct str_list *list, const char *item);
bool list_contains(const struct str_list *list, const char *item);
void list_clear(struct str_list *list);

void *field_of(struct config *cfg, size_t offset);
const void *const_field_of(const struct config *cfg, size_t offset);

/* Applying one value, shared by the command line and the file (options_value.c). */
struct parser {
    struct config *cfg;
    bool from_cli;
    /* A list given on the command line replaces the file's: the first command line
     * occurrence clears it, later ones accumulate. */
    bool cli_replaced[N_OPTIONS];
    char *err;
    size_t errlen;
};

bool option_error(struct parser *p, const struct opt_desc *o, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A command line value; value is NULL for a flag or a bare --allow-X. */
bool apply_text(struct parser *p, const struct opt_desc *o, const char *value);
/* A configuration file value. Types are strict: a number in quotes is a string. */
bool apply_toml_value(struct parser *p, const struct opt_desc *o, const struct toml_value *v);

/* --help (common options) or --help-all (options_help.c). */
void print_help(FILE *out, bool all);
/* Seconds as the shortest exact decimal, for help and --print-config (options_help.c). */
void format_seconds(double seconds, char *buf, size_t len);
