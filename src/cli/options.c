/* Command line and kvmserver.toml -> struct config. One table describes every option; the
 * command line, the configuration file, --help-all and --print-config are all driven by it,
 * so an option cannot be known to one of them and missing from another. */
#include "cli/options.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

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

static const char *check_transport(const char *item)
{
    if (!strcmp(item, "exit") || !strcmp(item, "shared") || !strcmp(item, "auto"))
        return NULL;
    return "must be exit, shared or auto";
}

static const char *check_host_port(const char *item)
{
    const char *colon = strrchr(item, ':');
    if (!colon)
        return "expected HOST:PORT";
    const char *port = colon + 1;
    const size_t digits = strspn(port, "0123456789");
    if (digits == 0 || port[digits] != '\0' || digits > 5 || atoi(port) > 65535)
        return "the port must be a number from 0 to 65535";
    return NULL;
}

static const char *check_nonempty(const char *item)
{
    return *item ? NULL : "must not be empty";
}

static const char *check_env_assignment(const char *item)
{
    const char *eq = strchr(item, '=');
    return eq && eq != item ? NULL : "expected NAME=VALUE";
}

static const char *check_env_pattern(const char *item)
{
    if (!*item)
        return "must not be empty";
    if (strchr(item, '='))
        return "a variable name cannot contain '='";
    const char *star = strchr(item, '*');
    return star && star[1] ? "'*' may only end a name (prefix pattern)" : NULL;
}

static const char *check_volume(const char *item)
{
    const char *first = strchr(item, ':');
    if (!first || first == item || first[1] == ':' || first[1] == '\0')
        return "expected HOST:GUEST[:r|rw]";
    const char *second = strchr(first + 1, ':');
    if (second && strcmp(second + 1, "r") != 0 && strcmp(second + 1, "rw") != 0)
        return "the access mode must be r or rw";
    return NULL;
}

#define AT(member) offsetof(struct config, member)
#define MEMORY(opt, member, text, is_common) \
    { .name = opt, .kind = OPT_MIB, .field = AT(member), .arg = "MiB", .help = text, \
      .common = is_common }
#define FLAG(opt, member, text) { .name = opt, .kind = OPT_FLAG, .field = AT(member), .help = text }
#define ACCESS(opt, member, set, bare, checker, argname, text, is_common) \
    { .name = opt, .kind = OPT_ACCESS, .field = AT(member), .set_field = AT(set), \
      .bare_item = bare, .check = checker, .arg = argname, .help = text, .common = is_common }

static const struct opt_desc options[] = {
    { .name = "help", .short_name = 'h', .kind = OPT_HELP, .help = "print the common options",
      .common = true, .cli_only = true },
    { .name = "help-all", .kind = OPT_HELP_ALL, .help = "print every option and its default",
      .common = true, .cli_only = true },
    { .name = "config", .short_name = 'c', .kind = OPT_STRING, .field = AT(config_file),
      .check = check_nonempty, .arg = "FILE", .help = "configuration file",
      .default_text = DEFAULT_CONFIG_FILE " if present", .common = true, .cli_only = true },
    { .name = "print-config", .kind = OPT_FLAG, .field = AT(print_config),
      .help = "print the effective configuration and exit", .common = true, .cli_only = true },
    { .name = "cwd", .kind = OPT_STRING, .field = AT(cwd), .check = check_nonempty,
      .arg = "DIR", .help = "the guest's working directory",
      .default_text = "current directory", .common = true },
    { .name = "env", .kind = OPT_LIST, .field = AT(env), .check = check_env_assignment,
      .arg = "K=V ...", .help = "add environment variables for the guest", .common = true },
    { .name = "threads", .short_name = 't', .kind = OPT_UINT, .field = AT(threads),
      .arg = "N", .help = "number of request VMs (0 = CPU count)", .common = true },
    { .name = "ephemeral", .short_name = 'e', .kind = OPT_FLAG, .field = AT(ephemeral),
      .help = "reset each request VM after every connection", .common = true },
    { .name = "warmup", .short_name = 'w', .kind = OPT_UINT, .field = AT(warmup), .arg = "N",
      .help = "warm-up requests before forking", .common = true },
    { .name = "verbose", .short_name = 'v', .kind = OPT_FLAG, .field = AT(verbose),
      .help = "diagnostics (adds counters to reset logs)", .common = true },
    FLAG("verbose-syscalls", verbose_syscalls, "log system calls"),
    FLAG("verbose-mmap-syscalls", verbose_mmap_syscalls, "log memory-mapping system calls"),
    FLAG("verbose-thread-syscalls", verbose_thread_syscalls, "log thread system calls"),
    FLAG("verbose-pagetables", verbose_pagetables, "log page table changes"),
    { .name = "allow-all", .kind = OPT_FLAG, .field = AT(allow_all),
      .help = "allow everything below", .common = true },
    ACCESS("allow-read", allow_read, allow_read_set, "/", check_nonempty, "PATHS",
           "file system read access (bare: /)", true),
    ACCESS("allow-write", allow_write, allow_write_set, "/", check_nonempty, "PATHS",
           "file system write access (bare: /)", true),
    ACCESS("allow-env", allow_env, allow_env_set, "*", check_env_pattern, "NAMES",
           "pass host environment variables, NAME* = prefix (bare: all)", true),
    ACCESS("allow-net", allow_net, allow_net_set, NULL, check_nonempty, "HOST:PORT,...",
           "network access (bare: any address)", true),
    ACCESS("allow-connect", allow_connect, allow_connect_set, NULL, check_nonempty,
           "HOST:PORT,...", "outgoing connections (bare: any address)", false),
    ACCESS("allow-listen", allow_listen, allow_listen_set, NULL, check_nonempty,
           "HOST:PORT,...", "incoming connections (bare: any address)", false),
    { .name = "volume", .kind = OPT_LIST, .field = AT(volumes), .check = check_volume,
      .arg = "HOST:GUEST[:r|rw]", .help = "map a host path to a guest path" },
    { .name = "syscall-transport", .kind = OPT_STRING, .field = AT(syscall_transport),
      .check = check_transport, .arg = "exit|shared|auto",
      .help = "how request VMs reach the host: VM exits, or shared memory served by a "
              "host poller thread (auto: shared when there is a CPU to spare)",
      .default_text = "auto" },
    { .name = "syscall-spin-us", .kind = OPT_UINT, .field = AT(syscall_spin_us),
      .arg = "MICROSECONDS", .help = "how long a shared-memory call waits for the poller "
              "before it falls back to a VM exit" },
    FLAG("no-syscall-rewrite", no_syscall_rewrite, "kvm_pvm: leave the program's `syscall` "
         "instructions as they are (each then traps, ~6 us) instead of rewriting them into "
         "calls on first use"),
    FLAG("no-seccomp", no_seccomp, "debugging: run kvmserver itself without its host "
         "seccomp filter (a call off its allow list otherwise kills it with SIGSYS)"),
    { .name = "max-boot-time", .kind = OPT_SECONDS, .field = AT(max_boot_time),
      .arg = "SECONDS", .help = "time for the program to reach readiness", .common = true },
    { .name = "max-request-time", .kind = OPT_SECONDS, .field = AT(max_request_time),
      .arg = "SECONDS", .help = "time one request may take" },
    { .name = "shutdown-timeout", .kind = OPT_SECONDS, .field = AT(shutdown_timeout),
      .arg = "SECONDS", .help = "on SIGTERM, how long requests in flight may take to finish" },
    { .name = "metrics", .kind = OPT_STRING, .field = AT(metrics), .check = check_host_port,
      .arg = "HOST:PORT", .help = "serve Prometheus metrics at http://HOST:PORT/metrics",
      .default_text = "off" },
    MEMORY("max-main-memory", max_main_memory, "memory of the booted program", true),
    MEMORY("max-address-space", max_address_space, "guest address space", false),
    MEMORY("max-request-memory", max_request_memory, "private memory a request VM may use",
           true),
    MEMORY("limit-request-memory", limit_request_memory,
           "above this after a request, reset the VM fully", false),
    MEMORY("shared-memory", shared_memory, "memory shared between VMs", false),
    MEMORY("heap-address-hint", heap_address_hint, "lowest heap address", false),
    MEMORY("hugepage-arena-size", hugepage_arena_size, "huge page arena of the main VM",
           false),
    MEMORY("hugepage-requests-arena", hugepage_requests_arena,
           "huge page arena of the request VMs", false),
    FLAG("no-executable-heap", no_executable_heap, "memory tuning: heap is not executable"),
    FLAG("no-mmap-backed-files", no_mmap_backed_files,
         "memory tuning: no mmap-backed file mappings"),
    FLAG("hugepages", hugepages, "memory tuning: use huge pages"),
    FLAG("no-split-hugepages", no_split_hugepages, "memory tuning: do not split huge pages"),
    FLAG("transparent-hugepages", transparent_hugepages,
         "memory tuning: transparent huge pages"),
    FLAG("no-ephemeral-keep-working-memory", no_ephemeral_keep_working_memory,
         "memory tuning: ephemeral resets do not keep working memory"),

    { .name = "dylink-address-hint", .kind = OPT_MIB, .scope = SUBCMD_RUN,
      .field = AT(dylink_address_hint), .arg = "MiB",
      .help = "load address of the dynamic linker" },
    { .name = "remapping", .kind = OPT_LIST, .scope = SUBCMD_RUN, .field = AT(remappings),
      .check = check_nonempty, .arg = "VIRT:SIZE[:PHYS][:rwx]",
      .help = "map extra guest memory" },
    { .name = "1-to-1", .kind = OPT_FLAG, .scope = SUBCMD_STORAGE, .field = AT(one_to_one),
      .help = "one storage VM per request VM" },
    { .name = "output", .short_name = 'o', .kind = OPT_STRING, .scope = SUBCMD_SNAPSHOT,
      .field = AT(snapshot_output), .check = check_nonempty, .arg = "FILE",
      .help = "the snapshot file to write", .default_text = "required" },
};

#define N_OPTIONS (sizeof options / sizeof options[0])
#define N_SUBCOMMANDS (SUBCMD_SNAPRUN + 1)

static const char *const subcommand_names[N_SUBCOMMANDS] = {
    [SUBCMD_NONE] = "", [SUBCMD_RUN] = "run", [SUBCMD_STORAGE] = "storage",
    [SUBCMD_SNAPSHOT] = "snapshot", [SUBCMD_SNAPRUN] = "snaprun",
};

static enum subcommand subcommand_by_name(const char *name)
{
    for (int s = SUBCMD_RUN; s < (int)N_SUBCOMMANDS; s++)
        if (!strcmp(name, subcommand_names[s]))
            return (enum subcommand)s;
    return SUBCMD_NONE;
}

static const struct opt_desc *option_by_name(const char *name, size_t len)
{
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (strlen(options[i].name) == len && !memcmp(options[i].name, name, len))
            return &options[i];
    return NULL;
}

static const struct opt_desc *option_by_short(char c)
{
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (options[i].short_name && options[i].short_name == c)
            return &options[i];
    return NULL;
}

/* ---- memory: the command line layer gives up on exhaustion rather than half-parsing ---- */

static void out_of_memory(void)
{
    fputs("kvmserver: out of memory\n", stderr);
    exit(EXIT_FAILURE);
}

static char *xstrdup(const char *s)
{
    char *copy = strdup(s);
    if (!copy)
        out_of_memory();
    return copy;
}

static void list_push(struct str_list *list, const char *item)
{
    char **items = realloc(list->items, (list->count + 1) * sizeof *items);
    if (!items)
        out_of_memory();
    items[list->count++] = xstrdup(item);
    list->items = items;
}

static bool list_contains(const struct str_list *list, const char *item)
{
    for (size_t i = 0; i < list->count; i++)
        if (!strcmp(list->items[i], item))
            return true;
    return false;
}

static void list_clear(struct str_list *list)
{
    for (size_t i = 0; i < list->count; i++)
        free(list->items[i]);
    free(list->items);
    list->items = NULL;
    list->count = 0;
}

void config_defaults(struct config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->threads = 1;
    cfg->max_boot_time = 20;
    cfg->max_request_time = 8;
    cfg->shutdown_timeout = 10;
    cfg->syscall_spin_us = 100;
    cfg->max_main_memory = 8192;
    cfg->max_address_space = 122880;
    cfg->max_request_memory = 128;
    cfg->limit_request_memory = 128;
    cfg->heap_address_hint = 256;
    cfg->dylink_address_hint = 2;
}

static void *field_of(struct config *cfg, size_t offset) { return (char *)cfg + offset; }

static const void *const_field_of(const struct config *cfg, size_t offset)
{
    return (const char *)cfg + offset;
}

void config_free(struct config *cfg)
{
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const struct opt_desc *o = &options[i];
        if (o->kind == OPT_STRING) {
            const char **s = field_of(cfg, o->field);
            free((void *)*s);
        } else if (o->kind == OPT_LIST || o->kind == OPT_ACCESS) {
            list_clear(field_of(cfg, o->field));
        }
    }
    free(cfg->program_argv);
    config_defaults(cfg);
}

/* ---- applying one value, shared by the command line and the file ---- */

struct parser {
    struct config *cfg;
    bool from_cli;
    /* A list given on the command line replaces the file's: the first command line
     * occurrence clears it, later ones accumulate. */
    bool cli_replaced[N_OPTIONS];
    char *err;
    size_t errlen;
};

static bool option_error(struct parser *p, const struct opt_desc *o, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool option_error(struct parser *p, const struct opt_desc *o, const char *fmt, ...)
{
    int n = snprintf(p->err, p->errlen, p->from_cli ? "option '--%s': " : "'%s': ", o->name);
    if (n < 0 || (size_t)n >= p->errlen)
        return false;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return false;
}

static void begin_list_write(struct parser *p, const struct opt_desc *o)
{
    const size_t index = (size_t)(o - options);
    if (!p->from_cli || p->cli_replaced[index])
        return;
    p->cli_replaced[index] = true;
    list_clear(field_of(p->cfg, o->field));
    if (o->kind == OPT_ACCESS)
        *(bool *)field_of(p->cfg, o->set_field) = false;
}

static bool add_item(struct parser *p, const struct opt_desc *o, const char *item)
{
    const char *why = o->check ? o->check(item) : NULL;
    if (why)
        return option_error(p, o, "'%s': %s", item, why);
    struct str_list *list = field_of(p->cfg, o->field);
    if (o->kind == OPT_ACCESS) {
        bool *given = field_of(p->cfg, o->set_field);
        if (!o->bare_item && *given && list->count == 0)
            return true;   /* already any address; an address adds nothing */
        *given = true;
        if (list_contains(list, item))
            return true;
    }
    list_push(list, item);
    return true;
}

static void access_bare(struct parser *p, const struct opt_desc *o)
{
    struct str_list *list = field_of(p->cfg, o->field);
    bool *given = field_of(p->cfg, o->set_field);
    if (o->bare_item) {
        *given = true;
        if (!list_contains(list, o->bare_item))
            list_push(list, o->bare_item);
    } else {   /* any address: an empty list */
        list_clear(list);
        *given = true;
    }
}

static void access_clear(struct parser *p, const struct opt_desc *o)
{
    list_clear(field_of(p->cfg, o->field));
    *(bool *)field_of(p->cfg, o->set_field) = false;
}

static bool add_comma_list(struct parser *p, const struct opt_desc *o, const char *text)
{
    const char *start = text;
    for (;;) {
        const char *comma = strchr(start, ',');
        const size_t len = comma ? (size_t)(comma - start) : strlen(start);
        if (len == 0)
            return option_error(p, o, "empty item in '%s'", text);
        char *item = strndup(start, len);
        if (!item)
            out_of_memory();
        const bool ok = add_item(p, o, item);
        free(item);
        if (!ok || !comma)
            return ok;
        start = comma + 1;
    }
}

static uint64_t uint_max(const struct opt_desc *o)
{
    return o->kind == OPT_UINT ? UINT_MAX : MIB_MAX;
}

static bool store_uint(struct parser *p, const struct opt_desc *o, uint64_t value)
{
    if (value > uint_max(o))
        return option_error(p, o, "%" PRIu64 " is too large (at most %" PRIu64 ")", value,
                            uint_max(o));
    if (o->kind == OPT_UINT)
        *(unsigned *)field_of(p->cfg, o->field) = (unsigned)value;
    else
        *(uint64_t *)field_of(p->cfg, o->field) = value;
    return true;
}

static bool store_seconds(struct parser *p, const struct opt_desc *o, double value)
{
    if (!(value >= 0))
        return option_error(p, o, "must not be negative");
    if (value > SECONDS_MAX)
        return option_error(p, o, "%g is too large (at most %g seconds)", value, SECONDS_MAX);
    *(double *)field_of(p->cfg, o->field) = value;
    return true;
}

static bool store_string(struct parser *p, const struct opt_desc *o, const char *value)
{
    const char *why = o->check ? o->check(value) : NULL;
    if (why)
        return option_error(p, o, "%s", why);
    const char **field = field_of(p->cfg, o->field);
    free((void *)*field);
    *field = xstrdup(value);
    return true;
}

static bool all_digits(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

static bool uint_from_text(struct parser *p, const struct opt_desc *o, const char *text)
{
    if (!all_digits(text))
        return option_error(p, o, "'%s' is not a non-negative integer", text);
    const uint64_t max = uint_max(o);
    uint64_t value = 0;
    for (const char *s = text; *s; s++) {
        const unsigned digit = (unsigned)(*s - '0');
        if (value > (max - digit) / 10)
            return option_error(p, o, "'%s' is too large (at most %" PRIu64 ")", text, max);
        value = value * 10 + digit;
    }
    return store_uint(p, o, value);
}

/* Seconds: digits with at most one '.', e.g. 5, 2.5, .5 or 5. Nothing else strtod would
 * take (signs, exponents, hex, inf, blanks). */
static bool is_seconds_text(const char *s)
{
    size_t digits = 0;
    bool dot = false;
    for (; *s; s++) {
        if (*s >= '0' && *s <= '9')
            digits++;
        else if (*s == '.' && !dot)
            dot = true;
        else
            return false;
    }
    return digits > 0;
}

static bool seconds_from_text(struct parser *p, const struct opt_desc *o, const char *text)
{
    if (!is_seconds_text(text))
        return option_error(p, o, "'%s' is not a number of seconds", text);
    return store_seconds(p, o, strtod(text, NULL));
}

/* A command line value; value is NULL for a flag or a bare --allow-X. */
static bool apply_text(struct parser *p, const struct opt_desc *o, const char *value)
{
    switch (o->kind) {
    case OPT_HELP:
    case OPT_HELP_ALL:
        return true;
    case OPT_FLAG:
        *(bool *)field_of(p->cfg, o->field) = true;
        return true;
    case OPT_UINT:
    case OPT_MIB:
        return uint_from_text(p, o, value);
    case OPT_SECONDS:
        return seconds_from_text(p, o, value);
    case OPT_STRING:
        return store_string(p, o, value);
    case OPT_LIST:
        begin_list_write(p, o);
        return add_item(p, o, value);
    case OPT_ACCESS:
        begin_list_write(p, o);
        if (!value) {
            access_bare(p, o);
            return true;
        }
        return add_comma_list(p, o, value);
    }
    return false;
}

static bool wrong_type(struct parser *p, const struct opt_desc *o, const struct toml_value *v,
                       const char *wanted)
{
    return option_error(p, o, "expected %s, not %s", wanted, toml_type_name(v->type));
}

/* A configuration file value. Types are strict: a number in quotes is a string. */
static bool apply_toml_value(struct parser *p, const struct opt_desc *o,
                             const struct toml_value *v)
{
    switch (o->kind) {
    case OPT_HELP:
    case OPT_HELP_ALL:
        return false;
    case OPT_FLAG:
        if (v->type != TOML_BOOL)
            return wrong_type(p, o, v, "true or false");
        *(bool *)field_of(p->cfg, o->field) = v->boolean;
        return true;
    case OPT_UINT:
    case OPT_MIB:
        if (v->type != TOML_INTEGER)
            return wrong_type(p, o, v, "a non-negative integer");
        if (v->integer < 0)
            return option_error(p, o, "must not be negative");
        return store_uint(p, o, (uint64_t)v->integer);
    case OPT_SECONDS:
        if (v->type == TOML_INTEGER)
            return store_seconds(p, o, (double)v->integer);
        if (v->type == TOML_DECIMAL)
            return store_seconds(p, o, v->decimal);
        return wrong_type(p, o, v, "a number of seconds");
    case OPT_STRING:
        if (v->type != TOML_STRING)
            return wrong_type(p, o, v, "a string");
        return store_string(p, o, v->string);
    case OPT_LIST:
        if (v->type == TOML_STRING)
            return add_item(p, o, v->string);
        if (v->type != TOML_ARRAY)
            return wrong_type(p, o, v, "a string or an array of strings");
        for (size_t i = 0; i < v->array.count; i++)
            if (!add_item(p, o, v->array.items[i]))
                return false;
        return true;
    case OPT_ACCESS:
        /* true = the bare flag, false or [] = not given, "a,b" as on the command line,
         * ["a", "b"] item by item (so an item may contain a comma). */
        if (v->type == TOML_BOOL) {
            if (v->boolean)
                access_bare(p, o);
            else
                access_clear(p, o);
            return true;
        }
        if (v->type == TOML_STRING)
            return add_comma_list(p, o, v->string);
        if (v->type != TOML_ARRAY)
            return wrong_type(p, o, v, "true, false, a string or an array of strings");
        if (v->array.count == 0)
            access_clear(p, o);
        for (size_t i = 0; i < v->array.count; i++)
            if (!add_item(p, o, v->array.items[i]))
                return false;
        return true;
    }
    return false;
}

/* ---- the configuration file ----
 * Top-level keys are global options. A [run], [storage], [snapshot] or [snaprun] section
 * applies only when that subcommand runs; it holds that subcommand's options and may also
 * hold global options, which then override the top level for that subcommand (lists add to
 * the top level's). Sections for other subcommands are still checked, so a mistake in one
 * is reported whichever subcommand runs. Keys may be written with '-' or '_'. */

struct file_loader {
    struct parser applied;     /* writes into the caller's config */
    struct parser checked;     /* for sections of other subcommands: writes into scratch */
    struct config scratch;
    enum subcommand section;   /* the current section; SUBCMD_NONE = top level */
    bool seen[N_SUBCOMMANDS][N_OPTIONS];   /* TOML forbids setting a key twice */
};

static bool file_section(void *user, const char *name, char *err, size_t errlen)
{
    struct file_loader *l = user;
    l->section = subcommand_by_name(name);
    if (l->section != SUBCMD_NONE)
        return true;
    snprintf(err, errlen, "unknown section [%s] (expected [run], [storage], [snapshot] or "
             "[snaprun])", name);
    return false;
}

static bool file_entry(void *user, const char *section, const char *key,
                       const struct toml_value *value, char *err, size_t errlen)
{
    (void)section;   /* tracked by file_section as an enum */
    struct file_loader *l = user;
    char name[64];
    const size_t len = strlen(key);
    const struct opt_desc *o = NULL;
    if (len < sizeof name) {
        for (size_t i = 0; i <= len; i++)
            name[i] = key[i] == '_' ? '-' : key[i];
        o = option_by_name(name, len);
    }
    if (!o) {
        snprintf(err, errlen, "unknown key '%s'", key);
        return false;
    }
    if (o->cli_only) {
        snprintf(err, errlen, "'%s' cannot be set in a configuration file", key);
        return false;
    }
    if (o->scope != SUBCMD_NONE && o->scope != l->section) {
        if (l->section == SUBCMD_NONE)
            snprintf(err, errlen, "'%s' belongs in a [%s] section", key,
                     subcommand_names[o->scope]);
        else
            snprintf(err, errlen, "'%s' is not an option of [%s]", key,
                     subcommand_names[l->section]);
        return false;
    }
    bool *seen = &l->seen[l->section][o - options];
    if (*seen) {
        snprintf(err, errlen, "'%s' is set twice", key);
        return false;
    }
    *seen = true;
    const bool applies = l->section == SUBCMD_NONE || l->section == l->applied.cfg->subcommand;
    struct parser *p = applies ? &l->applied : &l->checked;
    p->err = err;
    p->errlen = errlen;
    return apply_toml_value(p, o, value);
}

bool config_apply_toml(struct config *cfg, const char *filename, const char *text,
                       size_t len, char *err, size_t errlen)
{
    struct file_loader *l = calloc(1, sizeof *l);
    if (!l)
        out_of_memory();
    config_defaults(&l->scratch);
    l->scratch.subcommand = SUBCMD_NONE;
    l->applied.cfg = cfg;
    l->checked.cfg = &l->scratch;
    const struct toml_handler handler = { file_section, file_entry, l };
    struct toml_error error;
    const bool ok = toml_parse(text, len, &handler, &error);
    if (!ok)
        snprintf(err, errlen, "%s:%u: %s", filename, error.line, error.message);
    config_free(&l->scratch);
    free(l);
    return ok;
}

/* ---- help ---- */

static void option_usage(const struct opt_desc *o, char *buf, size_t len)
{
    int n = o->short_name ? snprintf(buf, len, "-%c, --%s", o->short_name, o->name)
                          : snprintf(buf, len, "    --%s", o->name);
    if (n < 0 || (size_t)n >= len || !o->arg)
        return;
    snprintf(buf + n, len - (size_t)n, o->kind == OPT_ACCESS ? "[=%s]" : " %s", o->arg);
}

static void format_seconds(double seconds, char *buf, size_t len)
{
    snprintf(buf, len, "%.9f", seconds);   /* nanoseconds are precise enough */
    char *dot = strchr(buf, '.');
    if (!dot)
        return;
    char *end = buf + strlen(buf);
    while (end > dot + 2 && end[-1] == '0')
        *--end = '\0';
}

static void option_default(const struct opt_desc *o, const struct config *d, char *buf,
                           size_t len)
{
    buf[0] = '\0';
    if (o->default_text) {
        snprintf(buf, len, "%s", o->default_text);
        return;
    }
    switch (o->kind) {
    case OPT_HELP:
    case OPT_HELP_ALL:
        break;
    case OPT_FLAG:
        snprintf(buf, len, "off");
        break;
    case OPT_UINT:
        snprintf(buf, len, "%u", *(const unsigned *)const_field_of(d, o->field));
        break;
    case OPT_MIB:
        snprintf(buf, len, "%" PRIu64, *(const uint64_t *)const_field_of(d, o->field));
        break;
    case OPT_SECONDS:
        format_seconds(*(const double *)const_field_of(d, o->field), buf, len);
        break;
    case OPT_STRING:
    case OPT_LIST:
    case OPT_ACCESS:
        snprintf(buf, len, "none");
        break;
    }
}

static void print_option_help(FILE *out, const struct opt_desc *o, bool with_default)
{
    struct config defaults;
    config_defaults(&defaults);
    char usage[96], def[64];
    option_usage(o, usage, sizeof usage);
    option_default(o, &defaults, def, sizeof def);
    const int width = 36;
    if ((int)strlen(usage) > width - 4)   /* keep at least two blanks before the text */
        fprintf(out, "  %s\n  %-*s", usage, width - 2, "");
    else
        fprintf(out, "  %-*s", width - 2, usage);
    if (with_default && def[0])
        fprintf(out, "%s [default: %s]\n", o->help, def);
    else
        fprintf(out, "%s\n", o->help);
}

static void print_help(FILE *out, bool all)
{
    fputs("Usage: kvmserver [GLOBAL OPTIONS] SUBCOMMAND [SUBCOMMAND OPTIONS] PROGRAM [ARGS...]\n"
          "Runs an unmodified Linux x86-64 program in KVM virtual machines and serves requests\n"
          "from frozen copies of it.\n\n"
          "Subcommands:\n"
          "  run PROGRAM [ARGS...]             boot, freeze at readiness, serve requests\n"
          "  storage PROGRAM [ARGS...] ++ run PROGRAM [ARGS...]\n"
          "                                    a storage VM for the request VMs (not implemented yet)\n"
          "  snapshot -o FILE PROGRAM [ARGS...]\n"
          "                                    write the program frozen at readiness to FILE\n"
          "  snaprun FILE                      serve from a snapshot FILE, without booting\n\n",
          out);
    fputs(all ? "Global options (may also follow the subcommand):\n" : "Common options:\n", out);
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (options[i].scope == SUBCMD_NONE && (all || options[i].common))
            print_option_help(out, &options[i], all);
    if (all) {
        for (int s = SUBCMD_RUN; s < (int)N_SUBCOMMANDS; s++) {
            bool header = false;
            for (size_t i = 0; i < N_OPTIONS; i++) {
                if (options[i].scope != (enum subcommand)s)
                    continue;
                if (!header)
                    fprintf(out, "\n'%s' options:\n", subcommand_names[s]);
                header = true;
                print_option_help(out, &options[i], true);
            }
        }
        fputs("\nOptions with values accept --opt=value and --opt value (-t2, -t 2); --allow-*\n"
              "take a value only with '=' (comma-separated; repeats add up). Configuration\n"
              "file keys are the long option names; the command line overrides the file.\n",
              out);
    } else {
        fputs("\nRun 'kvmserver --help-all' for every option and its default.\n", out);
    }
}

/* ---- the command line ---- */

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("kvmserver: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\nTry 'kvmserver --help'.\n", stderr);
    va_end(ap);
    return CLI_USAGE_ERROR;
}

static int check_scope(const struct config *cfg, const struct opt_desc *o, const char *spelled)
{
    if (o->scope == SUBCMD_NONE || o->scope == cfg->subcommand)
        return -1;
    if (cfg->subcommand == SUBCMD_NONE)
        return usage_error("option '%s' must follow the '%s' subcommand", spelled,
                           subcommand_names[o->scope]);
    return usage_error("option '%s' is not valid for '%s'", spelled,
                       subcommand_names[cfg->subcommand]);
}

/* `--env A=1 B=2`: following NAME=VALUE words are more --env values (the anchor's
 * `--env K=V ...`). A program path never looks like this, so PROGRAM still ends the list. */
static bool looks_like_assignment(const char *word)
{
    const char *s = word;
    if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_'))
        return false;
    while ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
           *s == '_')
        s++;
    return *s == '=';
}

static int apply_or_fail(struct parser *p, const struct opt_desc *o, const char *value)
{
    return apply_text(p, o, value) ? -1 : usage_error("%s", p->err);
}

static int long_option(struct parser *p, int argc, char **argv, int *i)
{
    const char *arg = argv[*i] + 2;
    const char *eq = strchr(arg, '=');
    const size_t name_len = eq ? (size_t)(eq - arg) : strlen(arg);
    const struct opt_desc *o = option_by_name(arg, name_len);
    if (!o)
        return usage_error("unknown option '--%.*s'", (int)name_len, arg);
    char spelled[64];
    snprintf(spelled, sizeof spelled, "--%s", o->name);
    int status = check_scope(p->cfg, o, spelled);
    if (status != -1)
        return status;
    const char *value = eq ? eq + 1 : NULL;
    (*i)++;
    switch (o->kind) {
    case OPT_HELP:
    case OPT_HELP_ALL:
    case OPT_FLAG:
        if (value)
            return usage_error("option '%s' takes no value", spelled);
        if (o->kind != OPT_FLAG) {
            print_help(stdout, o->kind == OPT_HELP_ALL);
            return 0;
        }
        break;
    case OPT_ACCESS:   /* a value only with '=': the next word is not ours */
        break;
    default:
        if (!value) {
            if (*i >= argc)
                return usage_error("option '%s' needs a value", spelled);
            value = argv[(*i)++];
        }
    }
    status = apply_or_fail(p, o, value);
    if (o->kind == OPT_LIST && !strcmp(o->name, "env"))
        while (status == -1 && *i < argc && looks_like_assignment(argv[*i]))
            status = apply_or_fail(p, o, argv[(*i)++]);
    return status;
}

/* -t2, -t 2, and grouped flags such as -ev. */
static int short_options(struct parser *p, int argc, char **argv, int *i)
{
    const char *arg = argv[(*i)++];
    for (size_t j = 1; arg[j]; j++) {
        const struct opt_desc *o = option_by_short(arg[j]);
        if (!o)
            return usage_error("unknown option '-%c'", arg[j]);
        const char spelled[3] = { '-', arg[j], '\0' };
        int status = check_scope(p->cfg, o, spelled);
        if (status != -1)
            return status;
        if (o->kind == OPT_HELP || o->kind == OPT_HELP_ALL) {
            print_help(stdout, o->kind == OPT_HELP_ALL);
            return 0;
        }
        if (o->kind == OPT_FLAG) {
            status = apply_or_fail(p, o, NULL);
            if (status != -1)
                return status;
            continue;
        }
        const char *value = arg + j + 1;
        if (!*value) {
            if (*i >= argc)
                return usage_error("option '%s' needs a value", spelled);
            value = argv[(*i)++];
        }
        return apply_or_fail(p, o, value);
    }
    return -1;
}

static void set_program(struct config *cfg, int argc, char **argv, int first)
{
    const int count = argc - first;
    cfg->program = argv[first];
    cfg->program_argc = count;
    free(cfg->program_argv);
    cfg->program_argv = malloc(((size_t)count + 1) * sizeof *cfg->program_argv);
    if (!cfg->program_argv)
        out_of_memory();
    memcpy(cfg->program_argv, argv + first, (size_t)count * sizeof *cfg->program_argv);
    cfg->program_argv[count] = NULL;
}

/* Returns -1 to go on, else an exit status. Sets cfg->subcommand and the program. */
static int parse_argv(struct parser *p, int argc, char **argv)
{
    int i = 1;
    while (i < argc) {
        const char *arg = argv[i];
        int status = -1;
        if (!strcmp(arg, "--")) {
            if (p->cfg->subcommand == SUBCMD_NONE)
                return usage_error("'--' must follow the subcommand");
            i++;
            break;
        } else if (arg[0] == '-' && arg[1] == '-') {
            status = long_option(p, argc, argv, &i);
        } else if (arg[0] == '-' && arg[1] != '\0') {
            status = short_options(p, argc, argv, &i);
        } else if (p->cfg->subcommand == SUBCMD_NONE) {
            p->cfg->subcommand = subcommand_by_name(arg);
            if (p->cfg->subcommand == SUBCMD_NONE)
                return usage_error("unknown subcommand '%s' (expected run, storage, snapshot "
                                   "or snaprun)", arg);
            i++;
        } else {
            break;   /* PROGRAM: it and everything after it belong to the program */
        }
        if (status != -1)
            return status;
    }
    if (i < argc)
        set_program(p->cfg, argc, argv, i);
    return -1;
}

static int load_config_file(struct config *cfg, const char *explicit_path)
{
    const char *path = explicit_path ? explicit_path : DEFAULT_CONFIG_FILE;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (!explicit_path && errno == ENOENT)
            return -1;
        fprintf(stderr, "kvmserver: cannot open configuration file '%s': %s\n", path,
                strerror(errno));
        return CLI_USAGE_ERROR;
    }
    char *text = malloc(CONFIG_FILE_MAX + 1);
    if (!text)
        out_of_memory();
    const size_t len = fread(text, 1, CONFIG_FILE_MAX + 1, f);
    const int read_errno = errno;
    const bool failed = ferror(f);
    fclose(f);
    int status = -1;
    char err[512];
    if (failed) {
        fprintf(stderr, "kvmserver: cannot read configuration file '%s': %s\n", path,
                strerror(read_errno));
        status = CLI_USAGE_ERROR;
    } else if (len > CONFIG_FILE_MAX) {
        fprintf(stderr, "%s: larger than %zu bytes\n", path, CONFIG_FILE_MAX);
        status = CLI_USAGE_ERROR;
    } else if (!config_apply_toml(cfg, path, text, len, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        status = CLI_USAGE_ERROR;
    } else if (!explicit_path) {
        cfg->config_file = xstrdup(path);
    }
    free(text);
    return status;
}

static int check_complete(const struct config *cfg)
{
    if (cfg->print_config)
        return -1;   /* printing the configuration needs no program */
    if (cfg->subcommand == SUBCMD_NONE)
        return usage_error("missing subcommand (run, storage, snapshot or snaprun)");
    if (cfg->subcommand == SUBCMD_SNAPRUN) {
        if (!cfg->program)
            return usage_error("snaprun needs a snapshot FILE");
        if (cfg->program_argc > 1)
            return usage_error("snaprun takes only the snapshot FILE, not '%s'",
                               cfg->program_argv[1]);
        return -1;
    }
    if (!cfg->program)
        return usage_error("missing PROGRAM after '%s'", subcommand_names[cfg->subcommand]);
    if (cfg->subcommand == SUBCMD_SNAPSHOT && !cfg->snapshot_output)
        return usage_error("snapshot needs -o FILE");
    return -1;
}

int cli_parse(int argc, char **argv, struct config *cfg)
{
    config_defaults(cfg);
    char err[512];

    /* Pass 1, into a scratch config: check the command line and learn the configuration
     * file and the subcommand, which decide what of the file applies. */
    struct config scratch;
    config_defaults(&scratch);
    struct parser first = { .cfg = &scratch, .from_cli = true, .err = err, .errlen = sizeof err };
    int status = parse_argv(&first, argc, argv);
    char *config_path = scratch.config_file ? xstrdup(scratch.config_file) : NULL;
    const enum subcommand subcommand = scratch.subcommand;
    config_free(&scratch);
    if (status != -1) {
        free(config_path);
        return status;
    }

    cfg->subcommand = subcommand;
    status = load_config_file(cfg, config_path);
    free(config_path);
    if (status != -1)
        return status;

    /* Pass 2: the command line over the file. Pass 1 accepted it, so this cannot fail. */
    struct parser second = { .cfg = cfg, .from_cli = true, .err = err, .errlen = sizeof err };
    cfg->subcommand = SUBCMD_NONE;   /* parse_argv finds it again */
    status = parse_argv(&second, argc, argv);
    return status != -1 ? status : check_complete(cfg);
}

/* ---- printing the configuration ---- */

static void print_toml_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        const unsigned char c = (unsigned char)*s;
        switch (c) {
        case '"': fputs("\\\"", out); break;
        case '\\': fputs("\\\\", out); break;
        case '\n': fputs("\\n", out); break;
        case '\t': fputs("\\t", out); break;
        case '\r': fputs("\\r", out); break;
        default:
            if (c < 0x20 || c == 0x7f)
                fprintf(out, "\\u%04x", c);
            else
                fputc(c, out);
        }
    }
    fputc('"', out);
}

static void print_toml_list(FILE *out, char *const *items, size_t count)
{
    fputc('[', out);
    for (size_t i = 0; i < count; i++) {
        if (i)
            fputs(", ", out);
        print_toml_string(out, items[i]);
    }
    fputc(']', out);
}

static void print_config_option(FILE *out, const struct config *cfg, const struct opt_desc *o)
{
    const void *field = const_field_of(cfg, o->field);
    char number[512];
    switch (o->kind) {
    case OPT_HELP:
    case OPT_HELP_ALL:
        return;
    case OPT_FLAG:
        fprintf(out, "%s = %s\n", o->name, *(const bool *)field ? "true" : "false");
        return;
    case OPT_UINT:
        fprintf(out, "%s = %u\n", o->name, *(const unsigned *)field);
        return;
    case OPT_MIB:
        fprintf(out, "%s = %" PRIu64 "\n", o->name, *(const uint64_t *)field);
        return;
    case OPT_SECONDS:
        format_seconds(*(const double *)field, number, sizeof number);
        fprintf(out, "%s = %s\n", o->name, number);
        return;
    case OPT_STRING: {
        const char *s = *(const char *const *)field;
        if (!s) {
            fprintf(out, "# %s: not set (%s)\n", o->name, o->default_text ? o->default_text : "none");
            return;
        }
        fprintf(out, "%s = ", o->name);
        print_toml_string(out, s);
        fputc('\n', out);
        return;
    }
    case OPT_LIST:
    case OPT_ACCESS: {
        const struct str_list *list = field;
        fprintf(out, "%s = ", o->name);
        if (o->kind == OPT_ACCESS && !*(const bool *)const_field_of(cfg, o->set_field))
            fputs("false", out);
        else if (o->kind == OPT_ACCESS && list->count == 0)
            fputs("true", out);
        else
            print_toml_list(out, list->items, list->count);
        fputc('\n', out);
        return;
    }
    }
}

void config_print(const struct config *cfg, FILE *out)
{
    fputs("# The effective kvmserver configuration; 'kvmserver -c FILE' reads it back.\n", out);
    if (cfg->config_file) {
        fputs("# read from ", out);
        print_toml_string(out, cfg->config_file);
        fputc('\n', out);
    }
    if (cfg->subcommand != SUBCMD_NONE)
        fprintf(out, "# subcommand: %s\n", subcommand_names[cfg->subcommand]);
    if (cfg->program_argv) {
        fputs("# program: ", out);
        print_toml_list(out, cfg->program_argv, (size_t)cfg->program_argc);
        fputc('\n', out);
    }
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (options[i].scope == SUBCMD_NONE && !options[i].cli_only)
            print_config_option(out, cfg, &options[i]);
    for (int s = SUBCMD_RUN; s < (int)N_SUBCOMMANDS; s++) {
        bool header = false;
        for (size_t i = 0; i < N_OPTIONS; i++) {
            if (options[i].scope != (enum subcommand)s || options[i].cli_only)
                continue;
            if (!header)
                fprintf(out, "\n[%s]\n", subcommand_names[s]);
            header = true;
            print_config_option(out, cfg, &options[i]);
        }
    }
}

/* ---- what is not implemented yet ---- */

const char *config_unimplemented(const struct config *cfg)
{
    switch (cfg->subcommand) {
    case SUBCMD_STORAGE: return "the 'storage' subcommand is not implemented yet";
    case SUBCMD_NONE: case SUBCMD_RUN: case SUBCMD_SNAPSHOT: case SUBCMD_SNAPRUN:
        break;
    }
    if (cfg->shared_memory > 0) return "--shared-memory is not implemented yet";
    if (cfg->hugepages) return "--hugepages is not implemented yet";
    if (cfg->hugepage_arena_size > 0) return "--hugepage-arena-size is not implemented yet";
    if (cfg->hugepage_requests_arena > 0)
        return "--hugepage-requests-arena is not implemented yet";
    if (cfg->transparent_hugepages) return "--transparent-hugepages is not implemented yet";
    if (cfg->remappings.count > 0) return "--remapping is not implemented yet";
    if (cfg->one_to_one) return "--1-to-1 is not implemented yet";
    return NULL;
}

void config_warn_partial(const struct config *cfg, FILE *out)
{
    if (cfg->no_executable_heap || cfg->no_mmap_backed_files || cfg->no_split_hugepages)
        fprintf(out, "kvmserver: note: the memory tuning flags have no effect yet\n");
}
