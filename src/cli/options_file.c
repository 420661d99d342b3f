/* kvmserver.toml -> struct config. */
#include "cli/options_internal.h"

#include <stdlib.h>
#include <string.h>

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
