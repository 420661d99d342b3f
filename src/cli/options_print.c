/* --print-config: the configuration as a kvmserver.toml. */
#include "cli/options_internal.h"

#include <inttypes.h>

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
    if (cfg->storage_argv) {
        fputs("# storage-program: ", out);
        print_toml_list(out, cfg->storage_argv, (size_t)cfg->storage_argc);
        fputc('\n', out);
    }
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
