#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum log_level threshold = LOG_LEVEL_INFO;

void log_set_level(enum log_level level)
{
    __atomic_store_n(&threshold, level, __ATOMIC_RELAXED);
}

enum log_level log_get_level(void)
{
    return __atomic_load_n(&threshold, __ATOMIC_RELAXED);
}

static bool kv_format;
static const char *const level_names[] = { "error", "warn", "info", "debug" };

int log_level_parse(const char *name, enum log_level *level)
{
    for (int i = LOG_LEVEL_ERROR; i <= LOG_LEVEL_DEBUG; i++)
        if (!strcmp(name, level_names[i])) {
            *level = (enum log_level)i;
            return 0;
        }
    return -1;
}

void log_set_kv(bool kv)
{
    kv_format = kv;
}

bool log_is_kv(void)
{
    return kv_format;
}

/* The message as a quoted value: " and \ escaped, control characters as spaces. */
static void quote(char *out, size_t size, const char *text)
{
    size_t n = 0;
    out[n++] = '"';
    for (; *text && n + 3 < size; text++) {
        char c = *text;
        if (c == '"' || c == '\\')
            out[n++] = '\\';
        out[n++] = (unsigned char)c < 0x20 ? ' ' : c;
    }
    out[n++] = '"';
    out[n] = '\0';
}

char *log_escape(char *out, size_t cap, const char *bytes, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t at = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)bytes[i];
        bool plain = c >= 0x20 && c < 0x7f && c != '\\' && c != '"';
        if (at + (plain ? 1 : 4) >= cap)
            break;
        if (plain) {
            out[at++] = (char)c;
        } else {
            out[at++] = '\\';
            out[at++] = 'x';
            out[at++] = hex[c >> 4];
            out[at++] = hex[c & 15];
        }
    }
    if (cap)
        out[at] = '\0';
    return out;
}

static void emit(enum log_level level, const char *event, const char *fields, const char *text)
{
    /* One fprintf per line, so lines from several threads do not interleave. */
    if (!kv_format) {
        if (text)
            fprintf(stderr, "kvmserver: %s\n", text);
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[32], msg[2 * 3 * 4096 + 3];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    quote(msg, sizeof msg, text ? text : "");
    fprintf(stderr, "ts=%s.%03ldZ level=%s%s%s%s%s msg=%s\n", when, ts.tv_nsec / 1000000,
            level_names[level], event ? " event=" : "", event ? event : "",
            fields && *fields ? " " : "", fields ? fields : "", msg);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if (level > log_get_level())
        return;
    char line[3 * 4096];        /* room for two paths */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    emit(level, NULL, NULL, line);
}

void log_event(enum log_level level, const char *event, const char *fields, const char *fmt,
               ...)
{
    if (level > log_get_level() || (!fmt && !kv_format))
        return;
    char line[3 * 4096];
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(line, sizeof line, fmt, ap);
        va_end(ap);
    }
    emit(level, event, fields, fmt ? line : NULL);
}

enum log_once_result log_once(struct log_once *set, const void *key, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ ((const unsigned char *)key)[i]) * 1099511628211ull;
    size_t max = set->max < LOG_ONCE_CAP ? set->max : LOG_ONCE_CAP;
    enum log_once_result r = LOG_ONCE_SEEN;
    pthread_mutex_lock(&set->lock);
    size_t known = set->count < max ? set->count : max;
    size_t i = 0;
    while (i < known && set->seen[i] != h)
        i++;
    if (i == known) {
        if (set->count < max) {
            set->seen[set->count++] = h;
            r = LOG_ONCE_FIRST;
        } else if (set->count == max) {
            set->count++;
            r = LOG_ONCE_FULL;
        }
    }
    pthread_mutex_unlock(&set->lock);
    return r;
}
