/* The snapshot file's container (docs/snapshot-format.md): a header, a table of sections,
 * each section checksummed with CRC32C, the guest memory's pages last and page aligned so
 * that they can be mapped copy-on-write straight from the file. This layer knows sections
 * and checksums only; each layer above writes and reads its own sections. Every length and
 * offset read from a file is checked before use: a damaged file gets a message, never a
 * crash (tests/fuzz/fuzz_snapshot.c). */
#ifndef KVMS_SNAPFILE_H
#define KVMS_SNAPFILE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SNAP_MAGIC "KVMSSNAP"
#define SNAP_FORMAT 1
#define SNAP_HEADER_SIZE 4096u      /* header and section table; sections follow */
#define SNAP_MAX_SECTIONS 32
#define SNAP_VERSION_LEN 64

enum snap_tag {
    SNAP_META = 1,      /* server: program, argv, platform, when it was taken */
    SNAP_POLICY,        /* server: the configuration it was made with, as kvmserver.toml */
    SNAP_CPU,           /* engine: CPUID table and XSAVE size it depends on */
    SNAP_VCPU,          /* engine: registers, segments, XCRs, XSAVE, MSRs */
    SNAP_ENGINE,        /* engine: memory size, page-table pool, memory slots, syscall sites */
    SNAP_MEMRUNS,       /* engine: the non-zero pages, as runs */
    SNAP_MEMDATA,       /* engine: their contents, page aligned */
    SNAP_PROC,          /* linux: the process state (plain data) */
    SNAP_FDS,           /* linux: the fd table: each fd's kind and how to recreate it */
};

struct snap_header {
    char magic[8];
    uint32_t format;
    uint32_t nsections;
    char version[SNAP_VERSION_LEN];     /* kvmserver version and struct layout, NUL-padded */
    uint64_t file_size;
    uint32_t header_crc;                /* CRC32C of the first SNAP_HEADER_SIZE bytes (header,
                                         * table, zero padding), this field taken as 0 */
    uint32_t reserved;
};

struct snap_section {
    uint32_t tag;
    uint32_t crc;                       /* CRC32C of the section's bytes */
    uint64_t offset, length;
};

uint32_t snap_crc32c(uint32_t crc, const void *data, size_t len);

/* ---- writing ---- */
struct snap_writer {
    int fd;
    uint64_t pos;
    unsigned n;
    struct snap_section sec[SNAP_MAX_SECTIONS];
    bool failed;
};
/* Starts a file (its header is written by snap_finish). 0 or -1 with a message. */
int snap_begin(struct snap_writer *w, int fd);
/* Appends a whole section. */
void snap_add(struct snap_writer *w, uint32_t tag, const void *data, size_t len);
/* A section written in pieces: open, append, close (page_align: starts on a page). */
void snap_open_section(struct snap_writer *w, uint32_t tag, bool page_align);
void snap_append(struct snap_writer *w, const void *data, size_t len);
void snap_close_section(struct snap_writer *w);
/* Writes the header; 0, or -1 when anything failed (with a message). */
int snap_finish(struct snap_writer *w, const char *version);

/* ---- reading ---- */
struct snap_reader {
    const uint8_t *base;        /* the whole file, mapped read-only */
    uint64_t size;
    const struct snap_header *hdr;
    const struct snap_section *sec;
};
/* Checks a file image (8-byte aligned; sections must be too): magic, format, header checksum, version (against `version`; NULL:
 * any), section bounds and tags, and every section's checksum. 0, or -1 with the reason
 * in err (which names the difference for another version). */
int snap_parse(struct snap_reader *r, const uint8_t *data, uint64_t size, const char *version,
               char *err, size_t errlen);
/* A section's bytes: NULL (and *len 0) when the file has none with that tag. */
const void *snap_section(const struct snap_reader *r, uint32_t tag, uint64_t *len);
/* Offset of a section in the file (0 if absent). */
uint64_t snap_section_offset(const struct snap_reader *r, uint32_t tag);

/* Formats a loader's refusal into err[errlen]; returns -1. */
int snap_error(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A cursor over a section's bytes for the layers' decoders: each take fails (and stays
 * failed) past the end, so a decoder checks `bad` once at the end or before using a
 * length. */
struct snap_cursor {
    const uint8_t *p;
    uint64_t left;
    bool bad;
};
void snap_cursor_init(struct snap_cursor *c, const void *data, uint64_t len);
const void *snap_take(struct snap_cursor *c, uint64_t len);
bool snap_take_copy(struct snap_cursor *c, void *out, uint64_t len);
uint64_t snap_take_u64(struct snap_cursor *c);
uint32_t snap_take_u32(struct snap_cursor *c);
/* A string stored as u32 length + bytes (no NUL), copied NUL-terminated into out[cap]. */
bool snap_take_str(struct snap_cursor *c, char *out, size_t cap);

/* A growable byte buffer for building a section. */
struct snap_buf {
    uint8_t *data;
    size_t len, cap;
    bool failed;
};
void snap_put(struct snap_buf *b, const void *data, size_t len);
void snap_put_u64(struct snap_buf *b, uint64_t v);
void snap_put_u32(struct snap_buf *b, uint32_t v);
void snap_put_str(struct snap_buf *b, const char *s);
void snap_buf_free(struct snap_buf *b);

/* ---- the guest memory runs (engine sections, decoded here so the fuzzer covers them) ---- */
struct snap_run {
    uint64_t gpa, pages;
};
/* Checks SNAP_MEMRUNS and SNAP_MEMDATA against a guest memory of mem_size bytes: runs
 * page aligned, sorted, disjoint, inside memory, data exactly as long as the runs and page
 * aligned in the file. Returns the run table (inside the file image), or NULL with err. */
const struct snap_run *snap_memory_runs(const struct snap_reader *r, uint64_t mem_size,
                                        size_t *nruns, char *err, size_t errlen);

#endif
