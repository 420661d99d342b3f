/* Applying one value to a config, shared by the command line and the file. */
#include "cli/options_internal.h"

#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

bool option_error(struct parser *p, const struct opt_desc *o, const char *fmt, ...)
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
bool apply_text(struct parser *p, const struct opt_desc *o, const char *value)
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
bool apply_toml_value(struct parser *p, const struct opt_desc *o,
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
