/* The snapshot container (see snapfile.h). */
#include "vm/snapfile.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PAGE 4096ull

/* ---- CRC32C (Castagnoli): the SSE4.2 instruction where the CPU has it ---- */

static uint32_t crc_table[256];

static void crc_table_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0x82f63b78u & (0u - (c & 1)));
        crc_table[i] = c;
    }
}

__attribute__((target("sse4.2")))
static uint32_t crc_hw(uint32_t crc, const uint8_t *p, size_t len)
{
    uint64_t c = crc;
    for (; len >= 8; p += 8, len -= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
    }
    uint32_t c32 = (uint32_t)c;
    for (; len; p++, len--)
        c32 = __builtin_ia32_crc32qi(c32, *p);
    return c32;
}

uint32_t snap_crc32c(uint32_t crc, const void *data, size_t len)
{
    static int hw = -1;
    if (hw < 0) {
        __builtin_cpu_init();
        hw = __builtin_cpu_supports("sse4.2");
        if (!hw)
            crc_table_init();
    }
    crc = ~crc;
    const uint8_t *p = data;
    if (hw)
        crc = crc_hw(crc, p, len);
    else
        for (size_t i = 0; i < len; i++)
            crc = crc_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* ---- writing ---- */

static void wfail(struct snap_writer *w, const char *what)
{
    if (!w->failed)
        fprintf(stderr, "kvmserver: snapshot: %s: %s\n", what, strerror(errno));
    w->failed = true;
}

static void wbytes(struct snap_writer *w, const void *data, size_t len)
{
    const uint8_t *p = data;
    while (!w->failed && len) {
        ssize_t n = pwrite(w->fd, p, len, (off_t)w->pos);
        if (n <= 0) {
            if (n < 0 && errno == EINTR)
                continue;
            if (n == 0)
                errno = EIO;
            wfail(w, "writing the file");
            return;
        }
        p += n;
        len -= (size_t)n;
        w->pos += (uint64_t)n;
    }
}

int snap_begin(struct snap_writer *w, int fd)
{
    *w = (struct snap_writer){ .fd = fd, .pos = SNAP_HEADER_SIZE };
    return 0;
}

void snap_open_section(struct snap_writer *w, uint32_t tag, bool page_align)
{
    if (w->n >= SNAP_MAX_SECTIONS) {
        errno = E2BIG;
        wfail(w, "too many sections");
        return;
    }
    /* Every section starts 8-byte aligned, so its records can be read in place. */
    uint64_t align = page_align ? PAGE : 8;
    if (w->pos % align) {
        static const uint8_t zeros[PAGE];
        wbytes(w, zeros, align - w->pos % align);
    }
    w->sec[w->n] = (struct snap_section){ .tag = tag, .offset = w->pos };
}

void snap_append(struct snap_writer *w, const void *data, size_t len)
{
    if (w->failed || w->n >= SNAP_MAX_SECTIONS)
        return;
    w->sec[w->n].crc = snap_crc32c(w->sec[w->n].crc, data, len);
    w->sec[w->n].length += len;
    wbytes(w, data, len);
}

void snap_close_section(struct snap_writer *w)
{
    if (!w->failed && w->n < SNAP_MAX_SECTIONS)
        w->n++;
}

void snap_add(struct snap_writer *w, uint32_t tag, const void *data, size_t len)
{
    snap_open_section(w, tag, false);
    snap_append(w, data, len);
    snap_close_section(w);
}

int snap_finish(struct snap_writer *w, const char *version)
{
    uint8_t head[SNAP_HEADER_SIZE] = { 0 };
    struct snap_header h = { .format = SNAP_FORMAT, .nsections = w->n, .file_size = w->pos };
    memcpy(h.magic, SNAP_MAGIC, 8);
    snprintf(h.version, sizeof h.version, "%s", version);
    memcpy(head, &h, sizeof h);
    memcpy(head + sizeof h, w->sec, w->n * sizeof w->sec[0]);
    h.header_crc = snap_crc32c(0, head, sizeof head);
    memcpy(head, &h, sizeof h);
    uint64_t end = w->pos;
    w->pos = 0;
    wbytes(w, head, sizeof head);
    w->pos = end;
    if (!w->failed && ftruncate(w->fd, (off_t)end) < 0)
        wfail(w, "sizing the file");
    return w->failed ? -1 : 0;
}

/* ---- reading ---- */

int snap_error(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

int snap_parse(struct snap_reader *r, const uint8_t *data, uint64_t size, const char *version,
               char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    if ((uintptr_t)data % 8)
        return snap_error(err, errlen, "the snapshot is not mapped aligned");
    struct snap_header h;
    if (size < SNAP_HEADER_SIZE)
        return snap_error(err, errlen, "not a kvmserver snapshot (%llu bytes: shorter than its "
                    "header)", (unsigned long long)size);
    memcpy(&h, data, sizeof h);
    if (memcmp(h.magic, SNAP_MAGIC, 8) != 0)
        return snap_error(err, errlen, "not a kvmserver snapshot (no %s magic)", SNAP_MAGIC);
    if (h.format != SNAP_FORMAT)
        return snap_error(err, errlen, "snapshot format %u, this kvmserver reads format %u",
                    h.format, SNAP_FORMAT);
    if (h.nsections > SNAP_MAX_SECTIONS)
        return snap_error(err, errlen, "damaged snapshot: %u sections (at most %u)", h.nsections,
                    SNAP_MAX_SECTIONS);
    uint32_t want = h.header_crc;
    uint8_t head[SNAP_HEADER_SIZE];
    memcpy(head, data, sizeof head);
    memset(head + offsetof(struct snap_header, header_crc), 0, sizeof h.header_crc);
    if (snap_crc32c(0, head, sizeof head) != want)
        return snap_error(err, errlen, "damaged snapshot: the header's checksum does not match");
    if (h.file_size != size)
        return snap_error(err, errlen, "damaged snapshot: %llu bytes, its header says %llu "
                    "(truncated?)", (unsigned long long)size,
                    (unsigned long long)h.file_size);
    char v[SNAP_VERSION_LEN + 1];
    memcpy(v, h.version, SNAP_VERSION_LEN);
    v[SNAP_VERSION_LEN] = '\0';
    if (version && strcmp(v, version) != 0)
        return snap_error(err, errlen, "the snapshot was made by kvmserver %s; this is kvmserver %s",
                    v, version);
    const struct snap_section *sec = (const void *)(data + sizeof h);
    for (uint32_t i = 0; i < h.nsections; i++) {
        struct snap_section s;
        memcpy(&s, &sec[i], sizeof s);
        if (s.offset < SNAP_HEADER_SIZE || s.offset > size || s.length > size - s.offset ||
            s.offset % 8)
            return snap_error(err, errlen, "damaged snapshot: section %u lies outside the file", i);
        for (uint32_t j = 0; j < i; j++)
            if (sec[j].tag == s.tag)
                return snap_error(err, errlen, "damaged snapshot: section tag %u twice", s.tag);
        if (snap_crc32c(0, data + s.offset, s.length) != s.crc)
            return snap_error(err, errlen, "damaged snapshot: section %u (tag %u) fails its "
                        "checksum", i, s.tag);
    }
    /* Nothing outside the sections but zero padding, and no two sections overlapping: any
     * flipped bit of the file is caught. */
    uint32_t order[SNAP_MAX_SECTIONS];
    for (uint32_t i = 0; i < h.nsections; i++) {
        uint32_t j = i;
        for (; j > 0 && sec[order[j - 1]].offset > sec[i].offset; j--)
            order[j] = order[j - 1];
        order[j] = i;
    }
    uint64_t at = SNAP_HEADER_SIZE;
    for (uint32_t k = 0; k <= h.nsections; k++) {
        uint64_t next = k < h.nsections ? sec[order[k]].offset : size;
        if (next < at)
            return snap_error(err, errlen, "damaged snapshot: sections overlap");
        for (uint64_t b = at; b < next; b++)
            if (data[b])
                return snap_error(err, errlen, "damaged snapshot: a byte between sections is not "
                            "zero (at %llu)", (unsigned long long)b);
        if (k < h.nsections)
            at = next + sec[order[k]].length;
    }
    r->base = data;
    r->size = size;
    r->hdr = (const void *)data;
    r->sec = sec;
    return 0;
}

static const struct snap_section *find(const struct snap_reader *r, uint32_t tag)
{
    for (uint32_t i = 0; r->hdr && i < r->hdr->nsections; i++)
        if (r->sec[i].tag == tag)
            return &r->sec[i];
    return NULL;
}

const void *snap_section(const struct snap_reader *r, uint32_t tag, uint64_t *len)
{
    const struct snap_section *s = find(r, tag);
    *len = s ? s->length : 0;
    return s ? r->base + s->offset : NULL;
}

uint64_t snap_section_offset(const struct snap_reader *r, uint32_t tag)
{
    const struct snap_section *s = find(r, tag);
    return s ? s->offset : 0;
}

void snap_cursor_init(struct snap_cursor *c, const void *data, uint64_t len)
{
    *c = (struct snap_cursor){ .p = data, .left = data ? len : 0, .bad = !data };
}

const void *snap_take(struct snap_cursor *c, uint64_t len)
{
    if (c->bad || len > c->left) {
        c->bad = true;
        return NULL;
    }
    const void *at = c->p;
    c->p += len;
    c->left -= len;
    return at;
}

bool snap_take_copy(struct snap_cursor *c, void *out, uint64_t len)
{
    const void *at = snap_take(c, len);
    if (at)
        memcpy(out, at, len);
    else
        memset(out, 0, len);
    return at != NULL;
}

uint64_t snap_take_u64(struct snap_cursor *c)
{
    uint64_t v;
    snap_take_copy(c, &v, sizeof v);
    return v;
}

uint32_t snap_take_u32(struct snap_cursor *c)
{
    uint32_t v;
    snap_take_copy(c, &v, sizeof v);
    return v;
}

bool snap_take_str(struct snap_cursor *c, char *out, size_t cap)
{
    uint32_t len = snap_take_u32(c);
    if (c->bad || len >= cap) {
        c->bad = true;
        out[0] = '\0';
        return false;
    }
    snap_take_copy(c, out, len);
    out[c->bad ? 0 : len] = '\0';
    if (memchr(out, '\0', len))
        c->bad = true;
    return !c->bad;
}

void snap_put(struct snap_buf *b, const void *data, size_t len)
{
    if (b->failed)
        return;
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + len)
            cap *= 2;
        uint8_t *p = realloc(b->data, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
}

void snap_put_u64(struct snap_buf *b, uint64_t v) { snap_put(b, &v, sizeof v); }
void snap_put_u32(struct snap_buf *b, uint32_t v) { snap_put(b, &v, sizeof v); }

void snap_put_str(struct snap_buf *b, const char *s)
{
    size_t len = strlen(s);
    snap_put_u32(b, (uint32_t)len);
    snap_put(b, s, len);
}

void snap_buf_free(struct snap_buf *b)
{
    free(b->data);
    *b = (struct snap_buf){ 0 };
}

const struct snap_run *snap_memory_runs(const struct snap_reader *r, uint64_t mem_size,
                                        size_t *nruns, char *err, size_t errlen)
{
    uint64_t len, data_len;
    const struct snap_run *runs = snap_section(r, SNAP_MEMRUNS, &len);
    snap_section(r, SNAP_MEMDATA, &data_len);
    uint64_t data_off = snap_section_offset(r, SNAP_MEMDATA);
    if (!runs || len % sizeof *runs || (uintptr_t)runs % _Alignof(struct snap_run)) {
        snap_error(err, errlen, "damaged snapshot: no valid memory run table");
        return NULL;
    }
    if (!data_off || data_off % PAGE) {
        snap_error(err, errlen, "damaged snapshot: guest memory is not page aligned in the file");
        return NULL;
    }
    size_t n = len / sizeof *runs;
    uint64_t next = 0, pages = 0;
    for (size_t i = 0; i < n; i++) {
        if (runs[i].gpa % PAGE || runs[i].gpa < next || runs[i].pages == 0 ||
            runs[i].gpa > mem_size || runs[i].pages > (mem_size - runs[i].gpa) / PAGE) {
            snap_error(err, errlen, "damaged snapshot: memory run %zu (0x%llx, %llu pages) is "
                 "misplaced", i, (unsigned long long)runs[i].gpa,
                 (unsigned long long)runs[i].pages);
            return NULL;
        }
        next = runs[i].gpa + runs[i].pages * PAGE;
        pages += runs[i].pages;
    }
    if (pages > data_len / PAGE || pages * PAGE != data_len) {
        snap_error(err, errlen, "damaged snapshot: %llu bytes of memory data for %llu pages",
             (unsigned long long)data_len, (unsigned long long)pages);
        return NULL;
    }
    *nruns = n;
    return runs;
}
