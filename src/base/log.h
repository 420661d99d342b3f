/* Messages on stderr, each one line prefixed "kvmserver: ", filtered by level; and log-once
 * sets, so a guest repeating a denied or unsupported call cannot flood the log. */
#pragma once
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum log_level { LOG_LEVEL_ERROR, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

/* Messages above this level are dropped. INFO unless set (--log-level; -v sets DEBUG). */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* "error", "warn", "info" or "debug": 0 with *level set, or -1. */
int log_level_parse(const char *name, enum log_level *level);

/* --log-format=kv: every line becomes `ts=... level=... [event=... FIELDS] msg="TEXT"`, one
 * per event, for grep and log shippers; the default is the plain "kvmserver: TEXT". */
void log_set_kv(bool kv);
bool log_is_kv(void);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* An event with fields ("vm=0 signal=11": key=value pairs, values without spaces or quoted
 * by the caller) and a message. The plain form shows only the message, or nothing when fmt
 * is NULL (an event that the plain log already shows elsewhere, such as readiness). */
void log_event(enum log_level level, const char *event, const char *fields, const char *fmt,
               ...) __attribute__((format(printf, 4, 5)));

/* Guest bytes made safe for a log line: printable ASCII is kept, and everything else, `\` and
 * `"` become \xNN, so a guest's path cannot break a line, forge one, or end a kv field's
 * quotes. Writes at most cap - 1 characters and a NUL (a cut never splits an escape); returns
 * out. */
char *log_escape(char *out, size_t cap, const char *bytes, size_t len);

#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)

/* The keys already logged, up to `max` (at most LOG_ONCE_CAP) of them; safe across threads
 * (request VMs run on several). Define one per kind of message with LOG_ONCE_INIT(max). */
#define LOG_ONCE_CAP 512
struct log_once {
    pthread_mutex_t lock;
    size_t max, count;          /* count == max + 1: the "not logging more" note was given */
    uint64_t seen[LOG_ONCE_CAP];  /* FNV-1a hashes of the keys */
};
#define LOG_ONCE_INIT(n) { .lock = PTHREAD_MUTEX_INITIALIZER, .max = (n) }

enum log_once_result {
    LOG_ONCE_SEEN,              /* logged before, or the set is full: say nothing */
    LOG_ONCE_FIRST,             /* new: log it */
    LOG_ONCE_FULL,              /* new, and the first key the set has no room for: say that
                                   further ones are not logged (returned once) */
};
enum log_once_result log_once(struct log_once *set, const void *key, size_t len);
