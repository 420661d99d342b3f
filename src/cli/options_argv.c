/* The command line -> struct config; the configuration file it names or finds. */
#include "cli/options_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

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

/* storage STORAGE-PROGRAM [ARGS] ++ run PROGRAM [ARGS]: the part before "++" moves to
 * storage_argv, the part after "run" stays the program. */
static int split_storage(struct config *cfg)
{
    int k = 0;
    while (k < cfg->program_argc && strcmp(cfg->program_argv[k], "++"))
        k++;
    if (k == 0 || k == cfg->program_argc)
        return usage_error("storage needs STORAGE-PROGRAM [ARGS] ++ run PROGRAM [ARGS]");
    if (k + 1 == cfg->program_argc || strcmp(cfg->program_argv[k + 1], "run"))
        return usage_error("'++' must be followed by 'run PROGRAM [ARGS]'");
    if (k + 2 == cfg->program_argc)
        return usage_error("missing PROGRAM after '++ run'");
    char **all = cfg->program_argv;
    const int count = cfg->program_argc - (k + 2);
    cfg->program_argv = malloc(((size_t)count + 1) * sizeof *cfg->program_argv);
    if (!cfg->program_argv)
        out_of_memory();
    memcpy(cfg->program_argv, all + k + 2, ((size_t)count + 1) * sizeof *cfg->program_argv);
    cfg->program_argc = count;
    cfg->program = cfg->program_argv[0];
    all[k] = NULL;
    cfg->storage_argv = all;
    cfg->storage_argc = k;
    return -1;
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
    if (status == -1 && cfg->subcommand == SUBCMD_STORAGE && cfg->program)
        status = split_storage(cfg);
    return status != -1 ? status : check_complete(cfg);
}
