/* A line-oriented parser for the TOML subset described in toml.h.
 *
 * Why not libinih (Debian's libinih-dev): its handler gets no line numbers in Debian's build,
 * it cuts a value at " ;" even inside quotes, leaves a trailing "# comment" in the value,
 * reads an indented line as the continuation of the previous value, splits keys at ':', and
 * breaks lines longer than 200 bytes in two. Each of those would misread a valid TOML file,
 * and we would still need our own value parser, so a small parser here is simpler. */
#include "cli/toml.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static bool fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return false;
}

static const char *skip_blanks(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

static bool is_key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-';
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Control characters other than tab are not allowed raw in TOML strings. */
static bool is_forbidden_control(unsigned char c) { return (c < 0x20 && c != '\t') || c == 0x7f; }

static size_t put_utf8(char *out, uint32_t cp)
{
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* *pos points at the opening quote; on success it points past the closing one.
 * The output is never longer than the input (an escape is longer than what it encodes). */
static bool parse_string(const char **pos, char **out, char *err, size_t errlen)
{
    const char *p = *pos;
    const char quote = *p++;
    if (p[0] == quote && p[1] == quote)
        return fail(err, errlen, "multi-line strings are not supported");
    char *buf = malloc(strlen(p) + 1);
    if (!buf)
        return fail(err, errlen, "out of memory");
    size_t n = 0;
    for (;;) {
        const char c = *p;
        if (c == '\0') {
            free(buf);
            return fail(err, errlen, "unterminated string");
        }
        p++;
        if (c == quote)
            break;
        if (is_forbidden_control((unsigned char)c)) {
            free(buf);
            return fail(err, errlen, "control character in a string (write it as an escape)");
        }
        if (c != '\\' || quote == '\'') {   /* 'literal strings' have no escapes */
            buf[n++] = c;
            continue;
        }
        const char e = *p++;
        switch (e) {
        case 'b': buf[n++] = '\b'; break;
        case 't': buf[n++] = '\t'; break;
        case 'n': buf[n++] = '\n'; break;
        case 'f': buf[n++] = '\f'; break;
        case 'r': buf[n++] = '\r'; break;
        case '"': buf[n++] = '"'; break;
        case '\\': buf[n++] = '\\'; break;
        case 'u':
        case 'U': {
            const int digits = e == 'u' ? 4 : 8;
            uint32_t cp = 0;
            for (int i = 0; i < digits; i++) {
                const int h = hex_value(p[i]);   /* stops at NUL: hex_value('\0') < 0 */
                if (h < 0) {
                    free(buf);
                    return fail(err, errlen, "\\%c needs %d hex digits", e, digits);
                }
                cp = cp << 4 | (uint32_t)h;
            }
            p += digits;
            if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
                free(buf);
                return fail(err, errlen, "\\%c escape is not a Unicode scalar value", e);
            }
            if (cp == 0) {
                free(buf);
                return fail(err, errlen, "NUL characters are not allowed in strings");
            }
            n += put_utf8(buf + n, cp);
            break;
        }
        case '\0':
            free(buf);
            return fail(err, errlen, "unterminated string");
        default:
            free(buf);
            if ((unsigned char)e < 0x20 || (unsigned char)e >= 0x7f)
                return fail(err, errlen, "invalid escape in string");
            return fail(err, errlen, "invalid escape '\\%c' in string", e);
        }
    }
    buf[n] = '\0';
    *out = buf;
    *pos = p;
    return true;
}

/* Reads digits with TOML's optional single underscores between them into clean[]. */
static bool read_digits(const char **pos, char *clean, size_t *n, size_t cap)
{
    const char *p = *pos;
    if (!is_digit(*p))
        return false;
    while (is_digit(*p) || (*p == '_' && is_digit(p[1]) && is_digit(p[-1]))) {
        if (*p != '_') {
            if (*n + 1 >= cap)
                return false;
            clean[(*n)++] = *p;
        }
        p++;
    }
    *pos = p;
    return true;
}

static bool parse_number(const char **pos, struct toml_value *out, char *err, size_t errlen)
{
    const char *p = *pos;
    char clean[80];
    size_t n = 0;
    bool negative = false, decimal = false;
    if (*p == '+' || *p == '-') {
        negative = *p == '-';
        clean[n++] = *p++;
    }
    const char *int_start = p;
    if (!read_digits(&p, clean, &n, sizeof clean - 8))
        return fail(err, errlen, "invalid number");
    if (*int_start == '0' && p - int_start > 1)
        return fail(err, errlen, "leading zeros are not allowed in numbers");
    if (*p == '.') {
        decimal = true;
        clean[n++] = *p++;
        if (!read_digits(&p, clean, &n, sizeof clean - 6))
            return fail(err, errlen, "invalid decimal number");
    }
    if (*p == 'e' || *p == 'E') {
        decimal = true;
        clean[n++] = *p++;
        if (*p == '+' || *p == '-')
            clean[n++] = *p++;
        if (!read_digits(&p, clean, &n, sizeof clean - 1))
            return fail(err, errlen, "invalid exponent");
    }
    if (*p != '\0' && !strchr(" \t#", *p))
        return fail(err, errlen, "invalid number");
    clean[n] = '\0';

    if (decimal) {
        char *end;
        const double d = strtod(clean, &end);
        if (*end != '\0' || !isfinite(d))
            return fail(err, errlen, "decimal number out of range");
        out->type = TOML_DECIMAL;
        out->decimal = d;
    } else {
        const uint64_t limit = negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
        uint64_t magnitude = 0;
        for (const char *d = clean + (clean[0] == '+' || clean[0] == '-'); *d; d++) {
            const unsigned digit = (unsigned)(*d - '0');
            if (magnitude > (limit - digit) / 10)
                return fail(err, errlen, "integer out of range");
            magnitude = magnitude * 10 + digit;
        }
        out->type = TOML_INTEGER;
        if (!negative)
            out->integer = (int64_t)magnitude;
        else if (magnitude == 0)
            out->integer = 0;
        else   /* reaches INT64_MIN without overflowing */
            out->integer = -(int64_t)(magnitude - 1) - 1;
    }
    *pos = p;
    return true;
}

static bool push_string(struct str_list *list, char *owned)
{
    char **items = realloc(list->items, (list->count + 1) * sizeof *items);
    if (!items)
        return false;
    items[list->count++] = owned;
    list->items = items;
    return true;
}

static bool parse_array(const char **pos, struct toml_value *out, char *err, size_t errlen)
{
    const char *p = skip_blanks(*pos + 1);
    out->type = TOML_ARRAY;
    if (*p == ']') {
        *pos = p + 1;
        return true;
    }
    for (;;) {
        p = skip_blanks(p);
        if (*p == '\0' || *p == '#')
            return fail(err, errlen, "unterminated array (arrays must be on one line)");
        if (*p != '"' && *p != '\'')
            return fail(err, errlen, "arrays may only hold strings");
        char *item;
        if (!parse_string(&p, &item, err, errlen))
            return false;
        if (!push_string(&out->array, item)) {
            free(item);
            return fail(err, errlen, "out of memory");
        }
        p = skip_blanks(p);
        if (*p == ',') {
            p = skip_blanks(p + 1);
            if (*p == ']')   /* a trailing comma is allowed */
                break;
            continue;
        }
        if (*p == ']')
            break;
        if (*p == '\0' || *p == '#')
            return fail(err, errlen, "unterminated array (arrays must be on one line)");
        return fail(err, errlen, "expected ',' or ']' in array");
    }
    *pos = p + 1;
    return true;
}

static bool parse_word(const char **pos, const char *word)
{
    const size_t len = strlen(word);
    if (strncmp(*pos, word, len) != 0 || is_key_char((*pos)[len]))
        return false;
    *pos += len;
    return true;
}

bool toml_parse_value(const char *text, struct toml_value *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    const char *p = skip_blanks(text);
    bool ok;
    if (*p == '\0' || *p == '#') {
        ok = fail(err, errlen, "missing value");
    } else if (*p == '"' || *p == '\'') {
        out->type = TOML_STRING;
        ok = parse_string(&p, &out->string, err, errlen);
    } else if (*p == '[') {
        ok = parse_array(&p, out, err, errlen);
    } else if (*p == '{') {
        ok = fail(err, errlen, "inline tables are not supported");
    } else if (parse_word(&p, "true")) {
        out->type = TOML_BOOL;
        out->boolean = true;
        ok = true;
    } else if (parse_word(&p, "false")) {
        out->type = TOML_BOOL;
        ok = true;
    } else if (is_digit(*p) || *p == '+' || *p == '-') {
        ok = parse_number(&p, out, err, errlen);
    } else {
        ok = fail(err, errlen, "invalid value (strings need quotes)");
    }
    if (ok) {
        p = skip_blanks(p);
        if (*p != '\0' && *p != '#')
            ok = fail(err, errlen, "unexpected text after the value");
    }
    if (!ok)
        toml_value_free(out);
    return ok;
}

void toml_value_free(struct toml_value *value)
{
    free(value->string);
    for (size_t i = 0; i < value->array.count; i++)
        free(value->array.items[i]);
    free(value->array.items);
    memset(value, 0, sizeof *value);
}

const char *toml_type_name(enum toml_type type)
{
    switch (type) {
    case TOML_STRING: return "a string";
    case TOML_BOOL: return "a boolean";
    case TOML_INTEGER: return "an integer";
    case TOML_DECIMAL: return "a decimal number";
    case TOML_ARRAY: return "an array";
    }
    return "a value";
}

struct doc_state {
    const struct toml_handler *handler;
    struct str_list sections;   /* headers seen so far: TOML forbids repeating one */
    const char *current;        /* the section keys belong to; NULL = top level */
};

static bool parse_header(struct doc_state *st, const char *p, char *err, size_t errlen)
{
    if (p[1] == '[')
        return fail(err, errlen, "arrays of tables ([[...]]) are not supported");
    p = skip_blanks(p + 1);
    const char *start = p;
    while (is_key_char(*p))
        p++;
    const size_t len = (size_t)(p - start);
    p = skip_blanks(p);
    if (*p == '.')
        return fail(err, errlen, "nested sections are not supported");
    if (len == 0 || *p != ']')
        return fail(err, errlen, "malformed section header");
    p = skip_blanks(p + 1);
    if (*p != '\0' && *p != '#')
        return fail(err, errlen, "unexpected text after the section header");
    for (size_t i = 0; i < st->sections.count; i++)
        if (strlen(st->sections.items[i]) == len && !memcmp(st->sections.items[i], start, len))
            return fail(err, errlen, "section [%.*s] appears twice", (int)len, start);
    char *name = strndup(start, len);
    if (!name || !push_string(&st->sections, name)) {
        free(name);
        return fail(err, errlen, "out of memory");
    }
    st->current = name;
    return !st->handler->section || st->handler->section(st->handler->user, name, err, errlen);
}

static bool parse_line(struct doc_state *st, const char *line, char *err, size_t errlen)
{
    const char *p = skip_blanks(line);
    if (*p == '\0' || *p == '#')
        return true;
    if (*p == '[')
        return parse_header(st, p, err, errlen);
    if (*p == '"' || *p == '\'')
        return fail(err, errlen, "quoted keys are not supported");
    const char *start = p;
    while (is_key_char(*p))
        p++;
    if (p == start)
        return fail(err, errlen, "expected a key");
    const size_t key_len = (size_t)(p - start);
    p = skip_blanks(p);
    if (*p == '.')
        return fail(err, errlen, "dotted keys are not supported");
    if (*p != '=')
        return fail(err, errlen, "expected '=' after the key");
    struct toml_value value;
    if (!toml_parse_value(p + 1, &value, err, errlen))
        return false;
    char *key = strndup(start, key_len);
    bool ok;
    if (!key)
        ok = fail(err, errlen, "out of memory");
    else
        ok = st->handler->entry(st->handler->user, st->current, key, &value, err, errlen);
    free(key);
    toml_value_free(&value);
    return ok;
}

bool toml_parse(const char *text, size_t len, const struct toml_handler *handler,
                struct toml_error *error)
{
    struct doc_state st = { .handler = handler };
    char *line = NULL;
    size_t line_cap = 0, pos = 0;
    bool ok = true;
    error->line = 0;
    error->message[0] = '\0';
    while (ok && pos < len) {
        error->line++;
        const char *start = text + pos;
        const char *newline = memchr(start, '\n', len - pos);
        size_t line_len = newline ? (size_t)(newline - start) : len - pos;
        pos += line_len + (newline != NULL);
        if (memchr(start, '\0', line_len)) {
            ok = fail(error->message, sizeof error->message, "NUL byte in the file");
            break;
        }
        if (line_len > 0 && start[line_len - 1] == '\r')   /* CRLF line ends */
            line_len--;
        if (line_len + 1 > line_cap) {
            char *bigger = realloc(line, line_len + 1);
            if (!bigger) {
                ok = fail(error->message, sizeof error->message, "out of memory");
                break;
            }
            line = bigger;
            line_cap = line_len + 1;
        }
        memcpy(line, start, line_len);
        line[line_len] = '\0';
        ok = parse_line(&st, line, error->message, sizeof error->message);
    }
    free(line);
    for (size_t i = 0; i < st.sections.count; i++)
        free(st.sections.items[i]);
    free(st.sections.items);
    if (ok)
        error->line = 0;
    return ok;
}
