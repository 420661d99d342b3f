/* Unit tests for the ELF parser: malformed images built in memory, and real binaries built
 * at test time with the compilers of this machine. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <elf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vm/elf.h"

#define MAX_VADDR (1ull << 47)
#define INTERP "/lib64/ld-linux-x86-64.so.2"

/* A small valid ET_EXEC image:
 *   0   PT_PHDR      table at 0x400040
 *   1   PT_INTERP    at file 0x200
 *   2   PT_LOAD R    file [0, 0x1000)        -> 0x400000
 *   3   PT_LOAD R X  file [0x1000, 0x1800)   -> 0x401000 (entry)
 *   4   PT_LOAD RW   file [0x1800, 0x1900)   -> 0x402800, memsz 0x3000 (bss)
 *   5   PT_GNU_STACK RW
 *   6   PT_TLS       in segment 4
 * The file ends exactly where segment 4's file data ends, so every shorter prefix is bad. */
enum { PH_PHDR, PH_INTERP, PH_LOAD_R, PH_LOAD_RX, PH_LOAD_RW, PH_STACK, PH_TLS, NPH };
#define IMAGE_SIZE 0x1900

struct image {
    _Alignas(8) uint8_t bytes[0x2000];
    size_t size;
};

static Elf64_Ehdr *eh(struct image *im)
{
    return (Elf64_Ehdr *)im->bytes;
}

static Elf64_Phdr *ph(struct image *im, unsigned i)
{
    return (Elf64_Phdr *)(im->bytes + sizeof(Elf64_Ehdr) + i * sizeof(Elf64_Phdr));
}

static void set_ph(struct image *im, unsigned i, uint32_t type, uint32_t flags, uint64_t off,
                   uint64_t vaddr, uint64_t filesz, uint64_t memsz, uint64_t align)
{
    *ph(im, i) = (Elf64_Phdr){ .p_type = type, .p_flags = flags, .p_offset = off,
                               .p_vaddr = vaddr, .p_paddr = vaddr, .p_filesz = filesz,
                               .p_memsz = memsz, .p_align = align };
}

static void init_header(struct image *im, uint16_t type, uint64_t entry, uint16_t phnum)
{
    Elf64_Ehdr *e = eh(im);
    memcpy(e->e_ident, ELFMAG, SELFMAG);
    e->e_ident[EI_CLASS] = ELFCLASS64;
    e->e_ident[EI_DATA] = ELFDATA2LSB;
    e->e_ident[EI_VERSION] = EV_CURRENT;
    e->e_ident[EI_OSABI] = ELFOSABI_SYSV;
    e->e_type = type;
    e->e_machine = EM_X86_64;
    e->e_version = EV_CURRENT;
    e->e_entry = entry;
    e->e_phoff = sizeof(Elf64_Ehdr);
    e->e_ehsize = sizeof(Elf64_Ehdr);
    e->e_phentsize = sizeof(Elf64_Phdr);
    e->e_phnum = phnum;
}

static void make_valid(struct image *im)
{
    memset(im, 0, sizeof(*im));
    im->size = IMAGE_SIZE;
    init_header(im, ET_EXEC, 0x401000, NPH);
    set_ph(im, PH_PHDR, PT_PHDR, PF_R, 0x40, 0x400040, NPH * sizeof(Elf64_Phdr),
           NPH * sizeof(Elf64_Phdr), 8);
    set_ph(im, PH_INTERP, PT_INTERP, PF_R, 0x200, 0x400200, sizeof(INTERP), sizeof(INTERP), 1);
    memcpy(im->bytes + 0x200, INTERP, sizeof(INTERP));
    set_ph(im, PH_LOAD_R, PT_LOAD, PF_R, 0, 0x400000, 0x1000, 0x1000, 0x1000);
    set_ph(im, PH_LOAD_RX, PT_LOAD, PF_R | PF_X, 0x1000, 0x401000, 0x800, 0x800, 0x1000);
    set_ph(im, PH_LOAD_RW, PT_LOAD, PF_R | PF_W, 0x1800, 0x402800, 0x100, 0x3000, 0x1000);
    set_ph(im, PH_STACK, PT_GNU_STACK, PF_R | PF_W, 0, 0, 0, 0, 16);
    set_ph(im, PH_TLS, PT_TLS, PF_R, 0x1800, 0x402800, 0x10, 0x40, 8);
}

/* Parses a copy of exactly `size` bytes, so that sanitizers and valgrind catch any read
 * past the end. */
static int parse_n(const void *bytes, size_t size, uint64_t max, struct elf_info *info,
                   char *err, size_t errlen)
{
    void *copy = malloc(size ? size : 1);
    assert_non_null(copy);
    memcpy(copy, bytes, size);
    int rc = elf_parse(copy, size, max, info, err, errlen);
    free(copy);
    return rc;
}

static int parse(struct image *im, struct elf_info *info, char *err)
{
    return parse_n(im->bytes, im->size, MAX_VADDR, info, err, 256);
}

#define expect_error(im, what) expect_error_at(im, MAX_VADDR, what, __FILE__, __LINE__)
#define expect_error_max(im, max, what) expect_error_at(im, max, what, __FILE__, __LINE__)
static void expect_error_at(struct image *im, uint64_t max, const char *what, const char *file,
                            int line)
{
    struct elf_info info;
    char err[256] = "(unset)";
    int rc = parse_n(im->bytes, im->size, max, &info, err, sizeof(err));
    if (rc != -1 || !strstr(err, what))
        fail_msg("%s:%d: want error containing \"%s\", got rc %d \"%s\"", file, line, what, rc,
                 err);
}

static void expect_ok(struct image *im, struct elf_info *info)
{
    char err[256] = "";
    int rc = parse(im, info, err);
    if (rc != 0)
        fail_msg("unexpected error: %s", err);
}

/* ---- positive, synthetic ---- */

static void test_valid_image(void **state)
{
    (void)state;
    struct image im;
    struct elf_info info;
    make_valid(&im);
    expect_ok(&im, &info);
    assert_false(info.pie);
    assert_int_equal(info.entry, 0x401000);
    assert_int_equal(info.phdr_vaddr, 0x400040);
    assert_int_equal(info.phnum, NPH);
    assert_int_equal(info.phentsize, sizeof(Elf64_Phdr));
    assert_int_equal(info.span_start, 0x400000);
    assert_int_equal(info.span_end, 0x406000);
    assert_true(info.has_interp);
    assert_string_equal(info.interp, INTERP);
    assert_false(info.exec_stack);
    assert_int_equal(info.tls_memsz, 0x40);
    assert_int_equal(info.tls_align, 8);
    assert_int_equal(info.nloads, 3);
    assert_int_equal(info.loads[0].prot, PROT_READ);
    assert_int_equal(info.loads[1].prot, PROT_READ | PROT_EXEC);
    assert_int_equal(info.loads[2].prot, PROT_READ | PROT_WRITE);
    assert_int_equal(info.loads[2].vaddr, 0x402800);
    assert_int_equal(info.loads[2].memsz, 0x3000);
    assert_int_equal(info.loads[2].offset, 0x1800);
    assert_int_equal(info.loads[2].filesz, 0x100);
}

static void test_exec_stack_and_no_interp(void **state)
{
    (void)state;
    struct image im;
    struct elf_info info;
    make_valid(&im);
    ph(&im, PH_STACK)->p_flags |= PF_X;
    ph(&im, PH_INTERP)->p_type = PT_NOTE;
    expect_ok(&im, &info);
    assert_true(info.exec_stack);
    assert_false(info.has_interp);
    assert_string_equal(info.interp, "");
}

static void test_phdr_without_pt_phdr(void **state)
{
    (void)state;
    struct image im;
    struct elf_info info;
    make_valid(&im);
    ph(&im, PH_PHDR)->p_type = PT_NULL;
    expect_ok(&im, &info);
    assert_int_equal(info.phdr_vaddr, 0x400040);   /* found in the first PT_LOAD */

    /* Table not inside any loaded file range: not available to the guest. */
    ph(&im, PH_LOAD_R)->p_offset = 0x1000;
    ph(&im, PH_LOAD_R)->p_filesz = 0x100;
    ph(&im, PH_LOAD_R)->p_memsz = 0x100;
    expect_ok(&im, &info);
    assert_int_equal(info.phdr_vaddr, 0);
}

static void test_pie(void **state)
{
    (void)state;
    struct image im;
    struct elf_info info;
    make_valid(&im);
    eh(&im)->e_type = ET_DYN;
    expect_ok(&im, &info);
    assert_true(info.pie);
    /* PIE: only the span size counts against the limit, not the link address. */
    expect_error_max(&im, 0x5000, "address limit");
    struct elf_info small;
    char err[256];
    assert_int_equal(parse_n(im.bytes, im.size, 0x6000, &small, err, sizeof(err)), 0);
    /* ET_EXEC: the end address counts. */
    eh(&im)->e_type = ET_EXEC;
    expect_error_max(&im, 0x6000, "address limit");
}

static void test_empty_load_skipped(void **state)
{
    (void)state;
    struct image im;
    struct elf_info info;
    make_valid(&im);
    /* A zero-sized PT_LOAD anywhere maps nothing and does not count for ordering. */
    set_ph(&im, PH_TLS, PT_LOAD, PF_R, 0, 0x10000, 0, 0, 0x1000);
    expect_ok(&im, &info);
    assert_int_equal(info.nloads, 3);
}

static void test_error_buffer_optional(void **state)
{
    (void)state;
    struct image im;
    struct elf_info info;
    char err[8];
    make_valid(&im);
    eh(&im)->e_machine = EM_386;
    assert_int_equal(elf_parse(im.bytes, im.size, MAX_VADDR, &info, NULL, 0), -1);
    assert_int_equal(elf_parse(im.bytes, im.size, MAX_VADDR, &info, err, sizeof(err)), -1);
    assert_int_equal(strlen(err), sizeof(err) - 1);   /* truncated, terminated */
    assert_int_equal(elf_parse(NULL, 0, MAX_VADDR, &info, err, sizeof(err)), -1);
}

/* ---- truncation ---- */

static void test_every_prefix_rejected(void **state)
{
    (void)state;
    struct image im;
    struct elf_info info;
    char err[256];
    make_valid(&im);
    for (size_t len = 0; len < im.size; len++)
        if (parse_n(im.bytes, len, MAX_VADDR, &info, err, sizeof(err)) != -1)
            fail_msg("prefix of %zu bytes accepted", len);
    assert_int_equal(parse_n(im.bytes, im.size, MAX_VADDR, &info, err, sizeof(err)), 0);
}

/* ---- ELF header ---- */

static void test_bad_ident(void **state)
{
    (void)state;
    struct image im;
    make_valid(&im);
    im.bytes[1] = 'X';
    expect_error(&im, "not an ELF file");
    make_valid(&im);
    im.bytes[EI_CLASS] = ELFCLASS32;
    expect_error(&im, "64-bit");
    make_valid(&im);
    im.bytes[EI_DATA] = ELFDATA2MSB;
    expect_error(&im, "little-endian");
    make_valid(&im);
    im.bytes[EI_VERSION] = 2;
    expect_error(&im, "version");
    make_valid(&im);
    eh(&im)->e_version = 0;
    expect_error(&im, "version");
    make_valid(&im);
    im.bytes[EI_OSABI] = ELFOSABI_FREEBSD;
    expect_error(&im, "OS ABI");
    make_valid(&im);
    im.bytes[EI_OSABI] = ELFOSABI_GNU;
    struct elf_info info;
    expect_ok(&im, &info);
}

static void test_bad_machine_and_type(void **state)
{
    (void)state;
    struct image im;
    make_valid(&im);
    eh(&im)->e_machine = EM_AARCH64;
    expect_error(&im, "x86-64");
    make_valid(&im);
    eh(&im)->e_type = ET_REL;
    expect_error(&im, "not an executable");
    make_valid(&im);
    eh(&im)->e_type = ET_CORE;
    expect_error(&im, "not an executable");
    make_valid(&im);
    eh(&im)->e_ehsize = 52;
    expect_error(&im, "ELF header size");
}

static void test_bad_program_header_table(void **state)
{
    (void)state;
    struct image im;
    make_valid(&im);
    eh(&im)->e_phentsize = sizeof(Elf64_Phdr) + 8;
    expect_error(&im, "program header size");
    make_valid(&im);
    eh(&im)->e_phentsize = 32;
    expect_error(&im, "program header size");
    make_valid(&im);
    eh(&im)->e_phnum = 0;
    expect_error(&im, "no program header table");
    make_valid(&im);
    eh(&im)->e_phoff = 0;
    expect_error(&im, "no program header table");
    make_valid(&im);
    eh(&im)->e_phoff = UINT64_MAX - 16;   /* phoff + table size wraps */
    expect_error(&im, "truncated program header table");
    make_valid(&im);
    eh(&im)->e_phoff = im.size - sizeof(Elf64_Phdr) * NPH + 1;
    expect_error(&im, "truncated program header table");
    make_valid(&im);
    eh(&im)->e_phnum = 0xffff;   /* PN_XNUM */
    expect_error(&im, "too many program headers");
    make_valid(&im);
    eh(&im)->e_phnum = 200;      /* runs past the file */
    expect_error(&im, "truncated program header table");
}

/* ---- PT_LOAD ---- */

static void test_load_sizes(void **state)
{
    (void)state;
    struct image im;
    make_valid(&im);
    ph(&im, PH_LOAD_RX)->p_filesz = 0x900;   /* > memsz 0x800 */
    expect_error(&im, "segment 3: file size exceeds memory size");

    make_valid(&im);
    ph(&im, PH_LOAD_RW)->p_filesz = 0x101;   /* one byte past the end of the file */
    expect_error(&im, "segment 4: file range past end of file");

    make_valid(&im);
    ph(&im, PH_LOAD_RW)->p_offset = UINT64_MAX - 0xff;   /* offset + filesz wraps */
    ph(&im, PH_LOAD_RW)->p_vaddr = 0x402000 + 0x100;     /* keep congruence out of the way */
    expect_error(&im, "past end of file");

    make_valid(&im);
    ph(&im, PH_LOAD_RW)->p_memsz = 1ull << 50;   /* huge bss */
    expect_error(&im, "segment 4: does not fit below the address limit");

    make_valid(&im);
    ph(&im, PH_LOAD_RW)->p_vaddr = UINT64_MAX - 0x7ff;   /* vaddr + memsz wraps */
    ph(&im, PH_LOAD_RW)->p_offset = 0x1800;
    expect_error(&im, "segment 4: address range overflows");

    make_valid(&im);
    ph(&im, PH_LOAD_RW)->p_vaddr = UINT64_MAX - 0x37ff;  /* end would wrap when page-rounded */
    expect_error(&im, "segment 4: address range overflows");

    make_valid(&im);
    eh(&im)->e_type = ET_DYN;
    ph(&im, PH_LOAD_RW)->p_memsz = UINT64_MAX;
    expect_error(&im, "overflows");
}

static void test_load_congruence(void **state)
{
    (void)state;
    struct image im;
    make_valid(&im);
    ph(&im, PH_LOAD_RW)->p_vaddr = 0x402900;
    expect_error(&im, "segment 4: address and file offset differ modulo the page size");
}

static void test_load_below_minimum(void **state)
{
    (void)state;
    struct image im;
    make_valid(&im);
    eh(&im)->e_entry = 0x1000;
    ph(&im, PH_PHDR)->p_vaddr = 0x40;
    ph(&im, PH_LOAD_R)->p_vaddr = 0;
    ph(&im, PH_LOAD_RX)->p_vaddr = 0x1000;
    ph(&im, PH_LOAD_RW)->p_vaddr = 0x2800;
    expect_error(&im, "segment 2: below the minimum address");
    eh(&im)->e_type = ET_DYN;   /* fine once relocated */
    struct elf_info info;
    expect_ok(&im, &info);
    assert_int_equal(info.span_start, 0);
    assert_int_equal(info.phdr_vaddr, 0x40);
}

static void test_load_overlap(void **state)
{
    (void)state;
    struct image im;
    make_valid(&im);
    ph(&im, PH_LOAD_RW)->p_vaddr = 0x400800;   /* inside segment 3's range */
    expect_error(&im, "segment 4");
    make_valid(&im);
    ph(&im, PH_LOAD_RW)->p_vaddr = 0x401800;   /* starts in the page where segment 3 ends */
    expect_error(&im, "segment 4 overlaps segment 3");
    make_valid(&im);
    ph(&im, PH_LOAD_RX)->p_memsz = 0x1801;     /* segment 3 grows into segment 4's page */
    expect_error(&im, "segment 4 overlaps segment 3");
    make_valid(&im);
    ph(&im, PH_LOAD_RX)->p_memsz = 0x1000;     /* ends at segment 4's page: fine */
    struct elf_info info;
    expect_ok(&im, &info);
}

static void test_load_unsorted(void **state)
{
    (void)state;
    struct image im;
    make_valid(&im);
    Elf64_Phdr r = *ph(&im, PH_LOAD_R);
    *ph(&im, PH_LOAD_R) = *ph(&im, PH_LOAD_RX);
    *ph(&im, PH_LOAD_RX) = r;
    expect_error(&im, "segment 3 is below segment 2");
}

static void test_load_count(void **state)
{
    (void)state;
    struct image im;
    struct elf_info info;
    for (unsigned n = 0; n <= ELF_MAX_LOADS + 1; n++) {
        memset(&im, 0, sizeof(im));
        im.size = 0x1000;
        init_header(&im, ET_EXEC, 0x400000, n ? n : 1);
        if (n == 0)
            set_ph(&im, 0, PT_NOTE, PF_R, 0, 0, 0, 0, 4);
        for (unsigned i = 0; i < n; i++)
            set_ph(&im, i, PT_LOAD, PF_R | PF_X, 0, 0x400000 + i * 0x1000ull, 0, 0x1000, 0x1000);
        char err[256];
        int rc = parse(&im, &info, err);
        if (n == 0) {
            assert_int_equal(rc, -1);
            assert_non_null(strstr(err, "no loadable segment"));
        } else if (n <= ELF_MAX_LOADS) {
            assert_int_equal(rc, 0);
            assert_int_equal(info.nloads, n);
            assert_int_equal(info.span_end - info.span_start, n * 0x1000ull);
        } else {
            assert_int_equal(rc, -1);
            assert_non_null(strstr(err, "more than 16 PT_LOAD"));
        }
    }
}

/* ---- entry, PT_PHDR, PT_INTERP, PT_TLS ---- */

static void test_entry(void **state)
{
    (void)state;
    struct image im;
    make_valid(&im);
    eh(&im)->e_entry = 0x500000;
    expect_error(&im, "outside any segment");
    eh(&im)->e_entry = 0x401800;   /* one past the end of the text */
    expect_error(&im, "outside any segment");
    eh(&im)->e_entry = 0x400100;   /* read-only data */
    expect_error(&im, "non-executable segment");
    eh(&im)->e_entry = 0x402800;   /* data */
    expect_error(&im, "non-executable segment");
    eh(&im)->e_entry = 0x4017ff;
    struct elf_info info;
    expect_ok(&im, &info);
}

static void test_pt_phdr(void **state)
{
    (void)state;
    struct image im;
    make_valid(&im);
    ph(&im, PH_PHDR)->p_vaddr = 0x300000;
    expect_error(&im, "PT_PHDR outside any PT_LOAD");
    make_valid(&im);
    ph(&im, PH_PHDR)->p_vaddr = 0x405700;   /* starts in bss, runs past its end */
    expect_error(&im, "PT_PHDR outside any PT_LOAD");
    make_valid(&im);
    set_ph(&im, PH_STACK, PT_PHDR, PF_R, 0x40, 0x400040, 0x38, 0x38, 8);
    expect_error(&im, "more than one PT_PHDR");
}

static void test_interp(void **state)
{
    (void)state;
    struct image im;
    make_valid(&im);
    im.bytes[0x200 + sizeof(INTERP) - 1] = 'X';
    expect_error(&im, "not NUL-terminated");

    make_valid(&im);
    ph(&im, PH_INTERP)->p_filesz = 300;
    memset(im.bytes + 0x200, 'a', 299);
    im.bytes[0x200 + 299] = 0;
    expect_error(&im, "interpreter path length");

    make_valid(&im);
    ph(&im, PH_INTERP)->p_filesz = 256;   /* 255 characters and the NUL: the maximum */
    memset(im.bytes + 0x200, 'a', 255);
    im.bytes[0x200 + 255] = 0;
    struct elf_info info;
    expect_ok(&im, &info);
    assert_int_equal(strlen(info.interp), 255);

    make_valid(&im);
    ph(&im, PH_INTERP)->p_filesz = 1;
    im.bytes[0x200] = 0;
    expect_error(&im, "interpreter path length");

    make_valid(&im);
    im.bytes[0x200] = 0;
    expect_error(&im, "empty interpreter path");

    make_valid(&im);
    ph(&im, PH_INTERP)->p_offset = im.size - 4;
    expect_error(&im, "interpreter path past end of file");

    make_valid(&im);
    ph(&im, PH_INTERP)->p_offset = UINT64_MAX - 2;
    expect_error(&im, "interpreter path past end of file");

    make_valid(&im);
    *ph(&im, PH_STACK) = *ph(&im, PH_INTERP);
    expect_error(&im, "more than one PT_INTERP");
}

static void test_tls_and_stack(void **state)
{
    (void)state;
    struct image im;
    make_valid(&im);
    ph(&im, PH_TLS)->p_align = 24;
    expect_error(&im, "alignment");
    make_valid(&im);
    ph(&im, PH_TLS)->p_filesz = 0x41;
    expect_error(&im, "bad PT_TLS size");
    make_valid(&im);
    *ph(&im, PH_INTERP) = *ph(&im, PH_TLS);
    expect_error(&im, "more than one PT_TLS");
    make_valid(&im);
    *ph(&im, PH_INTERP) = *ph(&im, PH_STACK);
    expect_error(&im, "more than one PT_GNU_STACK");
}

/* ---- real binaries ---- */

static char fixture_dir[64];

static void *read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0, n;
    do {
        if (len == cap) {
            cap = cap ? cap * 2 : 65536;
            uint8_t *grown = realloc(buf, cap);
            assert_non_null(grown);
            buf = grown;
        }
        n = fread(buf + len, 1, cap - len, f);
        len += n;
    } while (n > 0);
    fclose(f);
    *size = len;
    return buf;
}

/* Builds `name` in fixture_dir with `cmd_fmt` (%s = output path, source in fixture_dir);
 * returns the path or NULL if the tool is missing or the build fails. */
static const char *build_fixture(const char *name, const char *tool, const char *cmd_fmt)
{
    static char path[128];
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", tool);
    if (system(cmd) != 0)
        return NULL;
    snprintf(path, sizeof(path), "%s/%s", fixture_dir, name);
    char body[384];
    snprintf(body, sizeof(body), cmd_fmt, path);
    snprintf(cmd, sizeof(cmd), "cd %s && %s >/dev/null 2>&1", fixture_dir, body);
    return system(cmd) == 0 ? path : NULL;
}

static int setup_fixtures(void **state)
{
    (void)state;
    snprintf(fixture_dir, sizeof(fixture_dir), "/tmp/test_elf.XXXXXX");
    if (!mkdtemp(fixture_dir))
        return -1;
    char path[128];
    snprintf(path, sizeof(path), "%s/hello.c", fixture_dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs("#include <stdio.h>\n__thread int tls_counter = 1;\n"
          "int main(void) { printf(\"hello %d\\n\", tls_counter); return 0; }\n", f);
    fclose(f);
    snprintf(path, sizeof(path), "%s/hello.rs", fixture_dir);
    f = fopen(path, "w");
    if (!f)
        return -1;
    fputs("fn main() { println!(\"hello\"); }\n", f);
    fclose(f);
    return 0;
}

static int teardown_fixtures(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", fixture_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Parses a real file and checks what every loadable program satisfies; also parses a
 * sample of its prefixes, which must fail cleanly or succeed without reading past them. */
static void parse_real(const char *path, struct elf_info *info)
{
    size_t size = 0;
    uint8_t *img = read_file(path, &size);
    if (!img)
        fail_msg("cannot read %s", path);
    char err[256] = "";
    if (elf_parse(img, size, MAX_VADDR, info, err, sizeof(err)) != 0)
        fail_msg("%s rejected: %s", path, err);
    assert_true(info->nloads >= 1);
    assert_true(info->span_start < info->span_end);
    assert_true(info->phdr_vaddr != 0);
    for (size_t len = 0; len < size; len += len < 8192 ? 1 : 4093) {
        struct elf_info scratch;
        parse_n(img, len, MAX_VADDR, &scratch, err, sizeof(err));
    }
    free(img);
}

static void test_real_dynamic_ls(void **state)
{
    (void)state;
    struct elf_info info;
    parse_real("/bin/ls", &info);
    assert_true(info.pie);
    assert_true(info.has_interp);
    assert_string_equal(info.interp, "/lib64/ld-linux-x86-64.so.2");
}

static void test_real_interpreter(void **state)
{
    (void)state;
    struct elf_info info;
    parse_real("/lib64/ld-linux-x86-64.so.2", &info);
    assert_true(info.pie);
    assert_false(info.has_interp);
}

static void check_static(const char *path, bool pie)
{
    struct elf_info info;
    parse_real(path, &info);
    assert_int_equal(info.pie, pie);
    assert_false(info.has_interp);
    assert_true(info.tls_memsz > 0);
}

static void test_real_gcc_static(void **state)
{
    (void)state;
    const char *p = build_fixture("gcc-static", "gcc", "gcc -O2 -static hello.c -o %s");
    if (!p)
        fail_msg("gcc -static failed");
    check_static(p, false);
}

static void test_real_gcc_static_pie(void **state)
{
    (void)state;
    const char *p = build_fixture("gcc-static-pie", "gcc", "gcc -O2 -static-pie hello.c -o %s");
    if (!p)
        fail_msg("gcc -static-pie failed");
    check_static(p, true);
}

static void test_real_musl_static(void **state)
{
    (void)state;
    const char *p = build_fixture("musl-static", "musl-gcc", "musl-gcc -O2 -static hello.c -o %s");
    if (!p)
        skip();
    check_static(p, false);
}

static void test_real_rust_static(void **state)
{
    (void)state;
    const char *p = build_fixture("rust-static", "rustc",
                                  "rustc -O -C target-feature=+crt-static hello.rs -o %s");
    if (!p)
        skip();
    check_static(p, true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_image),
        cmocka_unit_test(test_exec_stack_and_no_interp),
        cmocka_unit_test(test_phdr_without_pt_phdr),
        cmocka_unit_test(test_pie),
        cmocka_unit_test(test_empty_load_skipped),
        cmocka_unit_test(test_error_buffer_optional),
        cmocka_unit_test(test_every_prefix_rejected),
        cmocka_unit_test(test_bad_ident),
        cmocka_unit_test(test_bad_machine_and_type),
        cmocka_unit_test(test_bad_program_header_table),
        cmocka_unit_test(test_load_sizes),
        cmocka_unit_test(test_load_congruence),
        cmocka_unit_test(test_load_below_minimum),
        cmocka_unit_test(test_load_overlap),
        cmocka_unit_test(test_load_unsorted),
        cmocka_unit_test(test_load_count),
        cmocka_unit_test(test_entry),
        cmocka_unit_test(test_pt_phdr),
        cmocka_unit_test(test_interp),
        cmocka_unit_test(test_tls_and_stack),
        cmocka_unit_test(test_real_dynamic_ls),
        cmocka_unit_test(test_real_interpreter),
        cmocka_unit_test(test_real_gcc_static),
        cmocka_unit_test(test_real_gcc_static_pie),
        cmocka_unit_test(test_real_musl_static),
        cmocka_unit_test(test_real_rust_static),
    };
    return cmocka_run_group_tests(tests, setup_fixtures, teardown_fixtures);
}
