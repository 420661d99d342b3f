/* Where an HTTP/1.x response ends (see http_end.h). */
#include "server/http_end.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

void http_end_init(struct http_end *e)
{
    e->head_len = 0;
    e->state = HTTP_END_HEAD;
    e->remaining = 0;
    e->size_seen = e->size_ended = false;
    e->line_len = 0;
}

/* The value of header `name` in the head's header lines, its length in *len; NULL if absent. */
static const char *header_value(const char *head, size_t head_len, const char *name,
                                size_t *len)
{
    size_t name_len = strlen(name);
    const char *end = head + head_len;
    const char *line = memchr(head, '\n', head_len);   /* past the status line */
    while (line && ++line < end) {
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol)
            break;
        if ((size_t)(eol - line) > name_len && line[name_len] == ':' &&
            strncasecmp(line, name, name_len) == 0) {
            const char *v = line + name_len + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            const char *v_end = eol;
            while (v_end > v && isspace((unsigned char)v_end[-1]))
                v_end--;
            *len = (size_t)(v_end - v);
            return v;
        }
        line = eol;
    }
    return NULL;
}

/* The head is complete: how the body ends. An interim (1xx) response's head is dropped, so
 * that the final response's head follows. */
static void head_parsed(struct http_end *e)
{
    const char *h = e->head;
    if (e->head_len < 12 || strncmp(h, "HTTP/1.", 7) != 0 || h[8] != ' ' ||
        !isdigit((unsigned char)h[9]) || !isdigit((unsigned char)h[10]) ||
        !isdigit((unsigned char)h[11])) {
        e->state = HTTP_END_AT_CLOSE;
        return;
    }
    int status = (h[9] - '0') * 100 + (h[10] - '0') * 10 + (h[11] - '0');
    if (status >= 100 && status < 200) {
        e->head_len = 0;
        return;
    }
    size_t len;
    const char *v = header_value(h, e->head_len, "transfer-encoding", &len);
    if (status == 204 || status == 304) {
        e->state = HTTP_END_DONE;
    } else if (v && len >= 7 && strncasecmp(v + len - 7, "chunked", 7) == 0) {
        e->state = HTTP_END_CHUNK_SIZE;
        e->remaining = 0;
        e->size_seen = e->size_ended = false;
    } else if ((v = header_value(h, e->head_len, "content-length", &len)) && len > 0 &&
               len <= 18) {
        uint64_t n = 0;
        for (size_t i = 0; i < len && e->state == HTTP_END_HEAD; i++)
            if (isdigit((unsigned char)v[i]))
                n = n * 10 + (uint64_t)(v[i] - '0');
            else
                e->state = HTTP_END_AT_CLOSE;
        if (e->state == HTTP_END_HEAD) {
            e->remaining = n;
            e->state = n ? HTTP_END_LENGTH : HTTP_END_DONE;
        }
    } else {
        e->state = HTTP_END_AT_CLOSE;
    }
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* One byte of a chunk's size line, or of the CRLF after its data, or of the trailer. */
static void chunked_byte(struct http_end *e, char c)
{
    switch (e->state) {
    case HTTP_END_CHUNK_SIZE: {
        int d = hex_digit(c);
        if (c == '\n') {
            if (!e->size_seen)
                e->state = HTTP_END_AT_CLOSE;
            else if (e->remaining == 0)
                e->state = HTTP_END_TRAILER, e->line_len = 0;
            else
                e->state = HTTP_END_CHUNK_DATA;
            e->size_seen = e->size_ended = false;
        } else if (d >= 0 && !e->size_ended) {
            if (e->remaining >> 56)            /* a size no response has */
                e->state = HTTP_END_AT_CLOSE;
            e->remaining = e->remaining << 4 | (uint64_t)d;
            e->size_seen = true;
        } else {
            e->size_ended = true;              /* ";extension", spaces, the CR */
        }
        break;
    }
    case HTTP_END_CHUNK_CRLF:
        if (c == '\n')
            e->state = HTTP_END_CHUNK_SIZE;
        else if (c != '\r')
            e->state = HTTP_END_AT_CLOSE;
        break;
    case HTTP_END_TRAILER:
        if (c == '\n') {
            if (e->line_len == 0)
                e->state = HTTP_END_DONE;
            e->line_len = 0;
        } else if (c != '\r') {
            e->line_len++;
        }
        break;
    default:
        break;
    }
}

bool http_end_feed(struct http_end *e, const char *p, size_t n)
{
    size_t i = 0;
    while (i < n && e->state != HTTP_END_DONE && e->state != HTTP_END_AT_CLOSE) {
        switch (e->state) {
        case HTTP_END_HEAD:
            if (e->head_len == sizeof e->head) {
                e->state = HTTP_END_AT_CLOSE;
                break;
            }
            e->head[e->head_len++] = p[i++];
            if (e->head_len >= 4 && memcmp(e->head + e->head_len - 4, "\r\n\r\n", 4) == 0)
                head_parsed(e);
            break;
        case HTTP_END_LENGTH:
        case HTTP_END_CHUNK_DATA: {
            size_t take = n - i < e->remaining ? n - i : (size_t)e->remaining;
            i += take;
            e->remaining -= take;
            if (e->remaining == 0)
                e->state = e->state == HTTP_END_LENGTH ? HTTP_END_DONE : HTTP_END_CHUNK_CRLF;
            break;
        }
        default:
            chunked_byte(e, p[i++]);
            break;
        }
    }
    return e->state == HTTP_END_DONE;
}
