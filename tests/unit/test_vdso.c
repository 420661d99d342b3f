/* The embedded guest vDSO, run in this host process: its image is loaded at an arbitrary
 * address (it must be position independent), a clock page published by clock.c is mapped at
 * CLOCK_PAGE_ADDR, and its functions, found through its own dynamic symbol table the way a
 * libc does, must agree with the host's clocks. */
#include <elf.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "guest/vdso.h"
#include "vm/clock.h"
#include "vm/layout.h"

#define NSEC_PER_SEC 1000000000ull
#define TOLERANCE_NS 20000ull   /* scheduling noise between our reads and the vDSO's */

typedef int (*clock_gettime_fn)(clockid_t, struct timespec *);
typedef int (*gettimeofday_fn)(struct timeval *, void *);
typedef time_t (*time_fn)(time_t *);
typedef int (*clock_getres_fn)(clockid_t, struct timespec *);
typedef long (*getcpu_fn)(unsigned *, unsigned *, void *);

static unsigned char *image;          /* executable copy of kvms_vdso_image */
static struct clock_page *page;       /* at CLOCK_PAGE_ADDR */
static clock_gettime_fn vdso_clock_gettime;
static gettimeofday_fn vdso_gettimeofday;
static time_fn vdso_time;
static clock_getres_fn vdso_clock_getres;
static getcpu_fn vdso_getcpu;

/* ---- a minimal dynamic-symbol lookup, as a libc does it ---- */

struct dso {
    const unsigned char *base;
    const Elf64_Sym *symtab;
    const char *strtab;
    const Elf32_Word *hash;         /* DT_HASH (musl needs it) */
    const Elf32_Word *gnu_hash;     /* DT_GNU_HASH (glibc prefers it) */
    const Elf64_Half *versym;
    const Elf64_Verdef *verdef;
};

static const Elf64_Phdr *find_phdr(const unsigned char *base, Elf64_Word type)
{
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)base;
    for (int i = 0; i < eh->e_phnum; i++) {
        const Elf64_Phdr *ph = (const Elf64_Phdr *)(base + eh->e_phoff) + i;
        if (ph->p_type == type)
            return ph;
    }
    return NULL;
}

static void dso_open(struct dso *d, const unsigned char *base)
{
    memset(d, 0, sizeof(*d));
    d->base = base;
    const Elf64_Phdr *dyn_ph = find_phdr(base, PT_DYNAMIC);
    assert_non_null(dyn_ph);
    for (const Elf64_Dyn *dyn = (const Elf64_Dyn *)(base + dyn_ph->p_vaddr); dyn->d_tag; dyn++) {
        const void *p = base + dyn->d_un.d_ptr;
        switch (dyn->d_tag) {
        case DT_SYMTAB: d->symtab = p; break;
        case DT_STRTAB: d->strtab = p; break;
        case DT_HASH: d->hash = p; break;
        case DT_GNU_HASH: d->gnu_hash = p; break;
        case DT_VERSYM: d->versym = p; break;
        case DT_VERDEF: d->verdef = p; break;
        }
    }
    assert_non_null(d->symtab);
    assert_non_null(d->strtab);
    assert_non_null(d->hash);
    assert_non_null(d->gnu_hash);
    assert_non_null(d->versym);
    assert_non_null(d->verdef);
}

static const char *version_name(const struct dso *d, Elf64_Half index)
{
    const Elf64_Verdef *vd = d->verdef;
    for (;;) {
        if ((vd->vd_ndx & 0x7fff) == (index & 0x7fff)) {
            const Elf64_Verdaux *aux = (const void *)((const char *)vd + vd->vd_aux);
            return d->strtab + aux->vda_name;
        }
        if (!vd->vd_next)
            return NULL;
        vd = (const void *)((const char *)vd + vd->vd_next);
    }
}

static bool symbol_matches(const struct dso *d, Elf64_Word i, const char *name, const char *ver)
{
    const Elf64_Sym *sym = &d->symtab[i];
    if (sym->st_shndx == SHN_UNDEF || ELF64_ST_TYPE(sym->st_info) != STT_FUNC ||
        strcmp(d->strtab + sym->st_name, name) != 0)
        return false;
    const char *v = version_name(d, d->versym[i]);
    return v && strcmp(v, ver) == 0;
}

/* Lookup through DT_HASH: its nchain is the symbol count. */
static const void *lookup_sysv(const struct dso *d, const char *name, const char *ver)
{
    Elf32_Word nchain = d->hash[1];
    for (Elf32_Word i = 1; i < nchain; i++)
        if (symbol_matches(d, i, name, ver))
            return d->base + d->symtab[i].st_value;
    return NULL;
}

static uint32_t gnu_hash_of(const char *name)
{
    uint32_t h = 5381;
    for (const unsigned char *c = (const unsigned char *)name; *c; c++)
        h = h * 33 + *c;
    return h;
}

/* Lookup through DT_GNU_HASH, bloom filter included, to prove the table is right. */
static const void *lookup_gnu(const struct dso *d, const char *name, const char *ver)
{
    uint32_t nbuckets = d->gnu_hash[0], symoffset = d->gnu_hash[1];
    uint32_t bloom_size = d->gnu_hash[2], bloom_shift = d->gnu_hash[3];
    const uint64_t *bloom = (const uint64_t *)&d->gnu_hash[4];
    const uint32_t *buckets = (const uint32_t *)&bloom[bloom_size];
    const uint32_t *chain = &buckets[nbuckets];
    uint32_t h = gnu_hash_of(name);
    uint64_t word = bloom[(h / 64) % bloom_size];
    if (!((word >> (h % 64)) & (word >> ((h >> bloom_shift) % 64)) & 1))
        return NULL;
    for (uint32_t i = buckets[h % nbuckets]; i >= symoffset; i++) {
        uint32_t ch = chain[i - symoffset];
        if ((ch | 1) == (h | 1) && symbol_matches(d, i, name, ver))
            return d->base + d->symtab[i].st_value;
        if (ch & 1)
            break;
    }
    return NULL;
}

static const void *lookup(const struct dso *d, const char *name)
{
    const void *sysv = lookup_sysv(d, name, "LINUX_2.6");
    const void *gnu = lookup_gnu(d, name, "LINUX_2.6");
    assert_ptr_equal(sysv, gnu);
    return sysv;
}

/* ---- fixture ---- */

static uint64_t host_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

static uint64_t ts_ns(const struct timespec *ts)
{
    return (uint64_t)ts->tv_sec * NSEC_PER_SEC + (uint64_t)ts->tv_nsec;
}

static uint64_t tsc_now(void)
{
    uint32_t lo, hi;
    __asm__ volatile("lfence; rdtsc" : "=a"(lo), "=d"(hi) :: "memory");
    return ((uint64_t)hi << 32) | lo;
}

static int setup(void **state)
{
    (void)state;
    size_t size = kvms_vdso_size();
    if (size > VDSO_MAX_SIZE)
        return -1;
    /* Not at VDSO_ADDR on purpose: the code must not depend on where it is loaded. */
    image = mmap(NULL, VDSO_MAX_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (image == MAP_FAILED)
        return -1;
    memcpy(image, kvms_vdso_image, size);
    if (mprotect(image, VDSO_MAX_SIZE, PROT_READ | PROT_EXEC) != 0)
        return -1;

    void *p = mmap((void *)CLOCK_PAGE_ADDR, GUEST_PAGE_SIZE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (p != (void *)CLOCK_PAGE_ADDR) {
        print_message("cannot map the clock page at %#x (%s; see /proc/sys/vm/mmap_min_addr): "
                      "vDSO call tests will be skipped\n", CLOCK_PAGE_ADDR, strerror(errno));
        if (p != MAP_FAILED)
            munmap(p, GUEST_PAGE_SIZE);
        page = NULL;
    } else {
        page = p;
    }

    struct dso d;
    dso_open(&d, image);
    vdso_clock_gettime = (clock_gettime_fn)lookup(&d, "__vdso_clock_gettime");
    vdso_gettimeofday = (gettimeofday_fn)lookup(&d, "__vdso_gettimeofday");
    vdso_time = (time_fn)lookup(&d, "__vdso_time");
    vdso_clock_getres = (clock_getres_fn)lookup(&d, "__vdso_clock_getres");
    vdso_getcpu = (getcpu_fn)lookup(&d, "__vdso_getcpu");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    munmap(image, VDSO_MAX_SIZE);
    if (page)
        munmap(page, GUEST_PAGE_SIZE);
    return 0;
}

/* Each call test starts from a freshly published page. */
static int fresh_page(void **state)
{
    (void)state;
    if (!page)
        skip();
    if (clock_calibrate() != 0)
        print_message("TSC unusable: the vDSO falls back to system calls\n");
    memset(page, 0, sizeof(*page));
    clock_page_refresh(page, 0, 0);
    return 0;
}

/* ---- the image ---- */

static void test_image_fits_and_needs_no_relocation(void **state)
{
    (void)state;
    const unsigned char *img = kvms_vdso_image;
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)img;
    assert_true(kvms_vdso_size() <= VDSO_MAX_SIZE);
    assert_memory_equal(eh->e_ident, ELFMAG, SELFMAG);
    assert_int_equal(eh->e_type, ET_DYN);
    assert_int_equal(eh->e_machine, EM_X86_64);

    int loads = 0;
    for (int i = 0; i < eh->e_phnum; i++) {
        const Elf64_Phdr *ph = (const Elf64_Phdr *)(img + eh->e_phoff) + i;
        assert_int_not_equal(ph->p_type, PT_TLS);
        assert_int_not_equal(ph->p_type, PT_INTERP);
        if (ph->p_type == PT_LOAD) {
            loads++;
            assert_int_equal(ph->p_vaddr, 0);
            assert_true(ph->p_memsz <= kvms_vdso_size());
            assert_false(ph->p_flags & PF_W);
        }
        if (ph->p_type == PT_DYNAMIC)
            assert_false(ph->p_flags & PF_W);   /* glibc would write into it otherwise */
    }
    assert_int_equal(loads, 1);

    const Elf64_Phdr *dyn_ph = find_phdr(img, PT_DYNAMIC);
    assert_non_null(dyn_ph);
    bool has_soname = false;
    for (const Elf64_Dyn *dyn = (const Elf64_Dyn *)(img + dyn_ph->p_offset); dyn->d_tag; dyn++) {
        assert_int_not_equal(dyn->d_tag, DT_REL);
        assert_int_not_equal(dyn->d_tag, DT_RELA);
        assert_int_not_equal(dyn->d_tag, DT_JMPREL);
        assert_int_not_equal(dyn->d_tag, DT_TEXTREL);
        assert_int_not_equal(dyn->d_tag, DT_NEEDED);
        has_soname |= dyn->d_tag == DT_SONAME;
    }
    assert_true(has_soname);
}

/* Every name the kernel's vDSO exports, under LINUX_2.6, and nothing undefined. */
static void test_exports(void **state)
{
    (void)state;
    static const char *const names[] = {
        "__vdso_clock_gettime", "__vdso_gettimeofday", "__vdso_time", "__vdso_clock_getres",
        "__vdso_getcpu", "clock_gettime", "gettimeofday", "time", "clock_getres", "getcpu",
    };
    struct dso d;
    dso_open(&d, image);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        assert_non_null(lookup(&d, names[i]));
    assert_ptr_equal(lookup(&d, "clock_gettime"), lookup(&d, "__vdso_clock_gettime"));
    assert_null(lookup_sysv(&d, "__vdso_clock_gettime", "LINUX_2.5"));
    assert_null(lookup(&d, "__vdso_nonexistent"));
    for (Elf32_Word i = 1; i < d.hash[1]; i++)
        assert_true(d.symtab[i].st_shndx != SHN_UNDEF);
}

/* ---- the calls ---- */

static void check_clock(clockid_t vdso_id, clockid_t host_id)
{
    struct timespec ts;
    uint64_t before = host_ns(host_id);
    assert_int_equal(vdso_clock_gettime(vdso_id, &ts), 0);
    uint64_t after = host_ns(host_id);
    assert_true(ts.tv_nsec >= 0 && ts.tv_nsec < (long)NSEC_PER_SEC);
    uint64_t got = ts_ns(&ts);
    if (got + TOLERANCE_NS < before || got > after + TOLERANCE_NS)
        fail_msg("clock %d: vDSO %llu, host %llu..%llu", (int)vdso_id, (unsigned long long)got,
                 (unsigned long long)before, (unsigned long long)after);
}

static void test_clock_gettime_matches_host(void **state)
{
    (void)state;
    for (int round = 0; round < 1000; round++) {
        check_clock(CLOCK_REALTIME, CLOCK_REALTIME);
        check_clock(CLOCK_MONOTONIC, CLOCK_MONOTONIC);
        check_clock(CLOCK_BOOTTIME, CLOCK_BOOTTIME);
        check_clock(CLOCK_MONOTONIC_RAW, CLOCK_MONOTONIC);   /* served as MONOTONIC */
        check_clock(CLOCK_REALTIME_COARSE, CLOCK_REALTIME);  /* served at full precision */
        check_clock(CLOCK_MONOTONIC_COARSE, CLOCK_MONOTONIC);
        clock_page_update(page, 0, 0);
    }
}

static void test_monotonic_never_decreases(void **state)
{
    (void)state;
    struct timespec ts;
    uint64_t last = 0;
    for (int i = 0; i < 100000; i++) {
        if (i % 7 == 0)
            clock_page_refresh(page, 0, 0);
        assert_int_equal(vdso_clock_gettime(CLOCK_MONOTONIC, &ts), 0);
        assert_true(ts_ns(&ts) >= last);
        last = ts_ns(&ts);
    }
}

static void test_gettimeofday_and_time(void **state)
{
    (void)state;
    struct timeval tv, host_tv;
    struct timezone tz = { 123, 456 };
    gettimeofday(&host_tv, NULL);
    assert_int_equal(vdso_gettimeofday(&tv, &tz), 0);
    int64_t diff_us = (tv.tv_sec - host_tv.tv_sec) * 1000000 + (tv.tv_usec - host_tv.tv_usec);
    assert_true(diff_us >= -20 && diff_us < 1000);
    assert_true(tv.tv_usec >= 0 && tv.tv_usec < 1000000);
    assert_int_equal(tz.tz_minuteswest, 0);
    assert_int_equal(tz.tz_dsttime, 0);
    assert_int_equal(vdso_gettimeofday(&tv, NULL), 0);   /* Linux accepts either NULL */
    assert_int_equal(vdso_gettimeofday(NULL, &tz), 0);
    assert_int_equal(vdso_gettimeofday(NULL, NULL), 0);

    time_t host = time(NULL), t = 0;
    time_t got = vdso_time(NULL);
    assert_true(got >= host && got <= host + 1);
    time_t returned = vdso_time(&t);
    assert_int_equal(returned, t);
    assert_true(t >= host && t <= host + 1);
}

static void test_getres_and_getcpu(void **state)
{
    (void)state;
    struct timespec res = { 99, 99 };
    assert_int_equal(vdso_clock_getres(CLOCK_MONOTONIC, &res), 0);
    assert_int_equal(res.tv_sec, 0);
    assert_int_equal(res.tv_nsec, 1);
    assert_int_equal(vdso_clock_getres(CLOCK_REALTIME, NULL), 0);
    assert_int_equal(vdso_clock_getres(CLOCK_PROCESS_CPUTIME_ID, &res), 0);   /* syscall */
    assert_int_equal(vdso_clock_getres(12345, &res), -EINVAL);

    unsigned cpu = 77, node = 77;
    assert_int_equal(vdso_getcpu(&cpu, &node, NULL), 0);
    assert_int_equal(cpu, 0);
    assert_int_equal(node, 0);
    assert_int_equal(vdso_getcpu(NULL, NULL, NULL), 0);
}

/* Clocks the page does not carry, bad ids and a NULL result go to the kernel, which answers
 * like Linux (negative errno, the vDSO convention). */
static void test_fallbacks_to_syscall(void **state)
{
    (void)state;
    struct timespec ts, host;
    assert_int_equal(vdso_clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts), 0);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &host);
    assert_true(ts_ns(&ts) <= ts_ns(&host) && ts_ns(&ts) > 0);
    assert_int_equal(vdso_clock_gettime(12345, &ts), -EINVAL);
    assert_int_equal(vdso_clock_gettime(-1, &ts), -EINVAL);
    assert_int_equal(vdso_clock_gettime(CLOCK_MONOTONIC, NULL), -EFAULT);

    /* A page without TSC calibration: everything through the kernel. */
    page->mult = 0;
    check_clock(CLOCK_REALTIME, CLOCK_REALTIME);
    check_clock(CLOCK_MONOTONIC, CLOCK_MONOTONIC);
    struct timeval tv;
    assert_int_equal(vdso_gettimeofday(&tv, NULL), 0);
    time_t host_t = time(NULL);
    assert_true(vdso_time(NULL) >= host_t);
    struct timespec res;
    assert_int_equal(vdso_clock_getres(CLOCK_MONOTONIC, &res), 0);
}

/* A guest that runs for a long time without an exit sees a stale page: the extrapolation
 * over hours of ticks must be exact (no 64-bit overflow). */
static void test_long_delta_is_exact(void **state)
{
    (void)state;
    if (page->mult == 0)
        skip();
    static const uint64_t ages_sec[] = { 1, 600, 3600, 86400 * 30 };
    for (size_t i = 0; i < sizeof(ages_sec) / sizeof(ages_sec[0]); i++) {
        const uint64_t base = 1000 * NSEC_PER_SEC;
        page->tsc_base = tsc_now() - ages_sec[i] * clock_get_calibration()->tsc_hz;
        page->base_ns[CLOCK_PAGE_MONOTONIC] = base;
        uint64_t t0 = tsc_now();
        struct timespec ts;
        assert_int_equal(vdso_clock_gettime(CLOCK_MONOTONIC, &ts), 0);
        uint64_t t1 = tsc_now();
        uint64_t lo = base + (uint64_t)(((unsigned __int128)(t0 - page->tsc_base) * page->mult) >>
                                        page->shift);
        uint64_t hi = base + (uint64_t)(((unsigned __int128)(t1 - page->tsc_base) * page->mult) >>
                                        page->shift);
        assert_true(ts_ns(&ts) >= lo && ts_ns(&ts) <= hi);
        assert_true(ts_ns(&ts) - base >= ages_sec[i] * NSEC_PER_SEC * 999 / 1000);
    }
    /* A TSC behind the base (skew between CPUs) reads as the base, not as centuries ahead. */
    page->tsc_base = tsc_now() + 1000000000;
    struct timespec ts;
    assert_int_equal(vdso_clock_gettime(CLOCK_MONOTONIC, &ts), 0);
    assert_int_equal(ts_ns(&ts), page->base_ns[CLOCK_PAGE_MONOTONIC]);
}

/* A reader that finds seq odd waits for the writer and returns the new publication. */
static void *slow_writer(void *arg)
{
    struct clock_page *cp = arg;
    struct timespec pause = { 0, 2000000 };
    nanosleep(&pause, NULL);
    cp->base_ns[CLOCK_PAGE_MONOTONIC] += 3600 * NSEC_PER_SEC;
    __atomic_store_n(&cp->seq, cp->seq + 1, __ATOMIC_RELEASE);
    return NULL;
}

static void test_reader_waits_for_writer(void **state)
{
    (void)state;
    if (page->mult == 0)
        skip();
    uint64_t host = host_ns(CLOCK_MONOTONIC);
    __atomic_store_n(&page->seq, page->seq + 1, __ATOMIC_RELEASE);   /* odd: writing */
    pthread_t writer;
    assert_int_equal(pthread_create(&writer, NULL, slow_writer, page), 0);
    struct timespec ts;
    assert_int_equal(vdso_clock_gettime(CLOCK_MONOTONIC, &ts), 0);
    pthread_join(writer, NULL);
    assert_true(ts_ns(&ts) >= host + 3600 * NSEC_PER_SEC);
}

/* Report the cost of a vDSO clock read next to the host's. */
static void test_cost(void **state)
{
    (void)state;
    enum { ROUNDS = 1000000 };
    struct timespec ts;
    uint64_t start = host_ns(CLOCK_MONOTONIC);
    for (int i = 0; i < ROUNDS; i++)
        vdso_clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t ours = (host_ns(CLOCK_MONOTONIC) - start) / ROUNDS;
    start = host_ns(CLOCK_MONOTONIC);
    for (int i = 0; i < ROUNDS; i++)
        clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t host = (host_ns(CLOCK_MONOTONIC) - start) / ROUNDS;
    print_message("clock_gettime: guest vDSO %llu ns, host %llu ns\n", (unsigned long long)ours,
                  (unsigned long long)host);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_image_fits_and_needs_no_relocation),
        cmocka_unit_test(test_exports),
        cmocka_unit_test_setup(test_clock_gettime_matches_host, fresh_page),
        cmocka_unit_test_setup(test_monotonic_never_decreases, fresh_page),
        cmocka_unit_test_setup(test_gettimeofday_and_time, fresh_page),
        cmocka_unit_test_setup(test_getres_and_getcpu, fresh_page),
        cmocka_unit_test_setup(test_fallbacks_to_syscall, fresh_page),
        cmocka_unit_test_setup(test_long_delta_is_exact, fresh_page),
        cmocka_unit_test_setup(test_reader_waits_for_writer, fresh_page),
        cmocka_unit_test_setup(test_cost, fresh_page),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
