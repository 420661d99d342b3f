/* SIGHUP (see reload.h). What changed is found by comparing config_print's output for the
 * running and the new configuration line by line, so every option is covered without a list
 * of them here: only the reloadable ones are named. */
#include "server/reload.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "cli/options.h"

static char *printed(const struct config *cfg)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    if (!out)
        return NULL;
    config_print(cfg, out);
    if (fclose(out) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

int live_config_init(struct live_config *live, const struct config *cfg)
{
    live->max_request_time = cfg->max_request_time;
    live->shutdown_timeout = cfg->shutdown_timeout;
    live->max_request_memory = cfg->max_request_memory;
    live->limit_request_memory = cfg->limit_request_memory;
    live->applied = printed(cfg);
    return live->applied ? 0 : -1;
}

/* The key of a config_print line ("max-request-time = 8.0", "# program: [...]"), as
 * "[section] key" below a section header; false for lines that hold no option (headers,
 * notes, blank lines). */
static bool line_key(const char *line, size_t len, const char *section, char *key, size_t size)
{
    bool note = len > 2 && line[0] == '#' && line[1] == ' ';
    const char *p = note ? line + 2 : line, *end = line + len;
    if (p == end || *p == '#' || *p == '[')
        return false;
    size_t n = strcspn(p, " :=\n");
    if (p + n >= end || (note ? p[n] != ':' : strncmp(p + n, " = ", 3)))
        return false;
    snprintf(key, size, "%s%s%.*s", section, *section ? " " : "", (int)n, p);
    return true;
}

#define MAX_LINES 256   /* config_print writes about 60 */

struct keyed_lines {
    int n;
    const char *line[MAX_LINES];
    size_t len[MAX_LINES];
    char key[MAX_LINES][64];
};

static size_t line_length(const char *s)
{
    const char *nl = strchr(s, '\n');
    return nl ? (size_t)(nl - s) : strlen(s);
}

/* Every line of text; key[i] is "" for lines without an option. */
static void split(const char *text, struct keyed_lines *out)
{
    char section[32] = "";
    out->n = 0;
    for (const char *s = text; *s && out->n < MAX_LINES;) {
        size_t len = line_length(s);
        int i = out->n++;
        out->line[i] = s;
        out->len[i] = len;
        if (len && s[0] == '[')
            snprintf(section, sizeof section, "%.*s", (int)len, s);
        if (!line_key(s, len, section, out->key[i], sizeof out->key[i]))
            out->key[i][0] = '\0';
        s += len + (s[len] == '\n');
    }
}

static int find_key(const struct keyed_lines *l, const char *key)
{
    for (int i = 0; i < l->n; i++)
        if (l->key[i][0] && !strcmp(l->key[i], key))
            return i;
    return -1;
}

/* Applies the reloadable option `key` from fresh; false if it is not one. */
static bool apply(struct live_config *live, const char *key, const struct config *fresh)
{
    if (!strcmp(key, "max-request-time"))
        live->max_request_time = fresh->max_request_time;
    else if (!strcmp(key, "shutdown-timeout"))
        live->shutdown_timeout = fresh->shutdown_timeout;
    else if (!strcmp(key, "max-request-memory"))
        live->max_request_memory = fresh->max_request_memory;
    else if (!strcmp(key, "limit-request-memory"))
        live->limit_request_memory = fresh->limit_request_memory;
    else
        return false;
    return true;
}

void reload_config(struct live_config *live, int argc, char **argv)
{
    struct config fresh;
    if (cli_parse(argc, argv, &fresh) >= 0) {
        log_warn("SIGHUP: the configuration does not parse (above); "
                "nothing changed");
        config_free(&fresh);
        return;
    }
    char *next = printed(&fresh);
    FILE *applied = NULL;
    char *result = NULL;
    size_t result_len = 0;
    if (!next || !(applied = open_memstream(&result, &result_len))) {
        log_warn("SIGHUP: out of memory; nothing changed");
        free(next);
        config_free(&fresh);
        return;
    }
    static struct keyed_lines old, new;     /* only the main thread reloads */
    split(live->applied, &old);
    split(next, &new);
    unsigned changes = 0;
    for (int i = 0; i < old.n; i++) {
        int j = old.key[i][0] ? find_key(&new, old.key[i]) : -1;
        const char *line = old.line[i];
        size_t len = old.len[i];
        if (j >= 0 && (new.len[j] != len || memcmp(new.line[j], line, len))) {
            changes++;
            if (apply(live, old.key[i], &fresh)) {
                log_info("SIGHUP: %.*s (was: %.*s)", (int)new.len[j],
                        new.line[j], (int)len, line);
                line = new.line[j];
                len = new.len[j];
            } else {
                log_warn("SIGHUP: '%.*s' needs a restart; still '%.*s'",
                        (int)new.len[j], new.line[j], (int)len, line);
            }
        }
        fprintf(applied, "%.*s\n", (int)len, line);
    }
    if (!changes)
        log_info("SIGHUP: the configuration is unchanged");
    if (fclose(applied) == 0) {
        free(live->applied);
        live->applied = result;
    } else {
        free(result);
    }
    free(next);
    config_free(&fresh);
}
