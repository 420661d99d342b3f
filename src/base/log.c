#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>

static enum log_level threshold = LOG_LEVEL_INFO;

void log_set_level(enum log_level level)
{
    __atomic_store_n(&threshold, level, __ATOMIC_RELAXED);
}

enum log_level log_get_level(void)
{
    return __atomic_load_n(&threshold, __ATOMIC_RELAXED);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if (level > log_get_level())
        return;
    /* One fprintf per line, so lines from several threads do not interleave. */
    char line[3 * 4096];        /* room for two paths */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "kvmserver: %s\n", line);
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
