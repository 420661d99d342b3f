/* The TOML subset kvmserver.toml is written in: `key = value` lines, `[section]` headers,
 * `#` comments. Values: "basic strings" (with escapes), 'literal strings', true/false,
 * integers, decimals, and one-line arrays of strings. Keys are bare (A-Z a-z 0-9 _ -).
 * Everything else TOML has (dotted or quoted keys, inline tables, multi-line strings or
 * arrays, dates) is rejected with a message rather than misread. */
#ifndef KVMS_CLI_TOML_H
#define KVMS_CLI_TOML_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cli/config.h"   /* struct str_list */

enum toml_type { TOML_STRING, TOML_BOOL, TOML_INTEGER, TOML_DECIMAL, TOML_ARRAY };

struct toml_value {
    enum toml_type type;
    bool boolean;            /* TOML_BOOL */
    int64_t integer;         /* TOML_INTEGER */
    double decimal;          /* TOML_DECIMAL (always finite) */
    char *string;            /* TOML_STRING, owned, never contains NUL */
    struct str_list array;   /* TOML_ARRAY of strings, owned */
};

/* Parses the text after `=` up to the end of the line: the value, then optional blanks and
 * an optional comment. Returns true, or false with a message in err (out is then empty). */
bool toml_parse_value(const char *text, struct toml_value *out, char *err, size_t errlen);
void toml_value_free(struct toml_value *value);
const char *toml_type_name(enum toml_type type);   /* "a string", "an integer", ... */

/* Callbacks for toml_parse. Each returns false with a message in err to stop parsing;
 * section is NULL for keys before the first header. */
struct toml_handler {
    bool (*section)(void *user, const char *name, char *err, size_t errlen);
    bool (*entry)(void *user, const char *section, const char *key,
                  const struct toml_value *value, char *err, size_t errlen);
    void *user;
};

struct toml_error {
    unsigned line;           /* 1-based */
    char message[256];
};

/* Parses a whole document of len bytes (need not be NUL-terminated), calling the handler
 * in file order. Returns true, or false with the failing line and message in error. */
bool toml_parse(const char *text, size_t len, const struct toml_handler *handler,
                struct toml_error *error);

#endif
