/* --help and --help-all, from the option table. */
#include "cli/options_internal.h"

#include <inttypes.h>
#include <string.h>

/* ---- help ---- */

static void option_usage(const struct opt_desc *o, char *buf, size_t len)
{
    int n = o->short_name ? snprintf(buf, len, "-%c, --%s", o->short_name, o->name)
                          : snprintf(buf, len, "    --%s", o->name);
    if (n < 0 || (size_t)n >= len || !o->arg)
        return;
    snprintf(buf + n, len - (size_t)n, o->kind == OPT_ACCESS ? "[=%s]" : " %s", o->arg);
}

void format_seconds(double seconds, char *buf, size_t len)
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

void print_help(FILE *out, bool all)
{
    fputs("Usage: kvmserver [GLOBAL OPTIONS] SUBCOMMAND [SUBCOMMAND OPTIONS] PROGRAM [ARGS...]\n"
          "Runs an unmodified Linux x86-64 program in KVM virtual machines and serves requests\n"
          "from frozen copies of it.\n\n"
          "Subcommands:\n"
          "  run PROGRAM [ARGS...]             boot, freeze at readiness, serve requests\n"
          "  storage PROGRAM [ARGS...] ++ run PROGRAM [ARGS...]\n"
          "                                    a persistent storage VM the request VMs connect to\n"
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
