/* The option table, lookups in it, defaults, and what is not implemented yet. */
#include "cli/options_internal.h"

#include "base/log.h"

#include <stdlib.h>
#include <string.h>

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

static const char *check_log_level(const char *item)
{
    enum log_level level;
    return log_level_parse(item, &level) == 0 ? NULL : "must be error, warn, info or debug";
}

static const char *check_log_format(const char *item)
{
    return !strcmp(item, "text") || !strcmp(item, "kv") ? NULL : "must be text or kv";
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

const struct opt_desc options[] = {
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
    { .name = "log-level", .kind = OPT_STRING, .field = AT(log_level), .check = check_log_level,
      .arg = "error|warn|info|debug", .help = "the least important messages logged",
      .default_text = "info (-v: debug)" },
    { .name = "log-format", .kind = OPT_STRING, .field = AT(log_format),
      .check = check_log_format, .arg = "text|kv",
      .help = "kv: one 'ts=... level=... event=... msg=\"...\"' line per message",
      .default_text = "text" },
    FLAG("profile", profile, "with -e: print where a request's time goes at exit"),
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
    FLAG("no-ephemeral-clock-skip", no_ephemeral_clock_skip, "with -e: a request VM's "
         "CLOCK_MONOTONIC counts all the time since the freeze (by default it shows at most "
         "1 s of it, as if suspended, so timers set before the freeze fire as they would "
         "just after it)"),
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

_Static_assert(sizeof options / sizeof options[0] == N_OPTIONS, "N_OPTIONS");

const char *const subcommand_names[N_SUBCOMMANDS] = {
    [SUBCMD_NONE] = "", [SUBCMD_RUN] = "run", [SUBCMD_STORAGE] = "storage",
    [SUBCMD_SNAPSHOT] = "snapshot", [SUBCMD_SNAPRUN] = "snaprun",
};

enum subcommand subcommand_by_name(const char *name)
{
    for (int s = SUBCMD_RUN; s < (int)N_SUBCOMMANDS; s++)
        if (!strcmp(name, subcommand_names[s]))
            return (enum subcommand)s;
    return SUBCMD_NONE;
}

const struct opt_desc *option_by_name(const char *name, size_t len)
{
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (strlen(options[i].name) == len && !memcmp(options[i].name, name, len))
            return &options[i];
    return NULL;
}

const struct opt_desc *option_by_short(char c)
{
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (options[i].short_name && options[i].short_name == c)
            return &options[i];
    return NULL;
}


void out_of_memory(void)
{
    fputs("kvmserver: out of memory\n", stderr);
    exit(EXIT_FAILURE);
}

char *xstrdup(const char *s)
{
    char *copy = strdup(s);
    if (!copy)
        out_of_memory();
    return copy;
}

void list_push(struct str_list *list, const char *item)
{
    char **items = realloc(list->items, (list->count + 1) * sizeof *items);
    if (!items)
        out_of_memory();
    items[list->count++] = xstrdup(item);
    list->items = items;
}

bool list_contains(const struct str_list *list, const char *item)
{
    for (size_t i = 0; i < list->count; i++)
        if (!strcmp(list->items[i], item))
            return true;
    return false;
}

void list_clear(struct str_list *list)
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

void *field_of(struct config *cfg, size_t offset) { return (char *)cfg + offset; }

const void *const_field_of(const struct config *cfg, size_t offset)
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
    free(cfg->storage_argv);
    config_defaults(cfg);
}


/* ---- what is not implemented yet ---- */

const char *config_unimplemented(const struct config *cfg)
{
    switch (cfg->subcommand) {
    case SUBCMD_NONE: case SUBCMD_RUN: case SUBCMD_STORAGE: case SUBCMD_SNAPSHOT:
    case SUBCMD_SNAPRUN:
        break;
    }
    if (cfg->shared_memory > 0) return "--shared-memory is not implemented yet";
    if (cfg->hugepages) return "--hugepages is not implemented yet";
    if (cfg->hugepage_arena_size > 0) return "--hugepage-arena-size is not implemented yet";
    if (cfg->hugepage_requests_arena > 0)
        return "--hugepage-requests-arena is not implemented yet";
    if (cfg->transparent_hugepages) return "--transparent-hugepages is not implemented yet";
    if (cfg->remappings.count > 0) return "--remapping is not implemented yet";
    return NULL;
}

void config_warn_partial(const struct config *cfg, FILE *out)
{
    if (cfg->no_executable_heap || cfg->no_mmap_backed_files || cfg->no_split_hugepages)
        fprintf(out, "kvmserver: note: the memory tuning flags have no effect yet\n");
}
