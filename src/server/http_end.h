/* Where an HTTP/1.x response ends, found incrementally as its bytes arrive: what a client that
 * closes its connection once it has the whole response (wrk, curl, browsers) needs to know.
 * The warm-up uses it to close first the way those clients do. */
#ifndef KVMS_HTTP_END_H
#define KVMS_HTTP_END_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_END_HEAD_MAX 8192      /* a longer head: the response ends at the close */

struct http_end {
    char head[HTTP_END_HEAD_MAX];
    size_t head_len;
    enum {
        HTTP_END_HEAD,          /* reading the status line and headers */
        HTTP_END_AT_CLOSE,      /* no length given: the server's close ends it */
        HTTP_END_LENGTH,        /* `remaining` body bytes to come */
        HTTP_END_CHUNK_SIZE,    /* chunked: a chunk's size line (extensions skipped) */
        HTTP_END_CHUNK_DATA,    /* `remaining` bytes of chunk data, then its CRLF */
        HTTP_END_CHUNK_CRLF,
        HTTP_END_TRAILER,       /* after the last chunk: header lines until an empty one */
        HTTP_END_DONE,
    } state;
    uint64_t remaining;
    bool size_seen;             /* chunk size line: a digit was read */
    bool size_ended;            /* chunk size line: digits over, an extension may follow */
    size_t line_len;            /* trailer: bytes of the current line before its LF */
};

void http_end_init(struct http_end *e);
/* Takes the next n bytes of the response; true once they hold all of it. Bytes past the
 * end are ignored. A response that cannot be parsed ends at the close. */
bool http_end_feed(struct http_end *e, const char *p, size_t n);

#endif
