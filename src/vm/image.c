/* The engine's sections of a snapshot file (see image.h, docs/snapshot-format.md). */
#include "vm/image.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/units.h"
#include "guest/stubs.h"
#include "guest/vdso.h"
#include "vm/clock.h"
#include "vm/fork.h"
#include "vm/kvm.h"
#include "vm/layout.h"
#include "vm/memslots.h"
#include "vm/platform.h"
#include "vm/syscall_sites.h"
#include "vm/vm.h"

#define PAGE 4096ull
#define MIB (1ull << 20)
#define MAX_MEM (1ull << 46)          /* 64 TiB: more than any address space we make */
#define MAX_XSAVE (1u << 20)
#define MAX_CPUID 256
/* engine_rec.has_sites: rewritten sites, and whether a protection key guards page 0 (a
 * snapshot with one needs a CPU with protection keys). */
#define SNAP_SITES_PLAIN 1
#define SNAP_SITES_KEYED 2

struct engine_rec {                   /* SNAP_ENGINE, followed by the slot table and sites */
    uint64_t mem_size, user_end;
    uint64_t pt_root, pt_pool_next, pt_pool_end, pt_revoked;
    uint32_t nslots, has_sites;
    uint32_t sites_count, reserved;
    uint64_t sites_rewritten, sites_refused;
    char platform[16];
    uint64_t tsc_hz;                  /* the clock's calibration... */
    char boot_id[40];                 /* ...valid while the host runs this boot */
};

struct vcpu_rec {                     /* SNAP_VCPU, followed by xsave_size bytes of XSAVE */
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    struct kvm_xcrs xcrs;
    uint64_t fs_base, gs_base, kernel_gs_base;
    uint32_t xsave_ioctl, xsave_size;
};

static int xsave_size(void)
{
    int size = ioctl(kvm_device(), KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
    return size < (int)sizeof(struct kvm_xsave) ? (int)sizeof(struct kvm_xsave) : size;
}

/* The host's boot id: a TSC frequency measured in one boot holds for the whole boot. */
static void host_boot_id(char out[40])
{
    memset(out, 0, 40);
    int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, out, 39);
    close(fd);
    out[n > 0 ? n : 0] = '\0';
}

/* ---- saving ---- */

/* The pages that are not zero, streamed into SNAP_MEMDATA; their runs into `runs`. Only
 * the memfd's allocated extents are looked at (SEEK_DATA), so a 120 GiB address space
 * costs what the program touched. */
static void save_memory(struct snap_writer *w, const struct vm *m, struct snap_buf *runs)
{
    snap_open_section(w, SNAP_MEMDATA, true);
    struct snap_run cur = { 0 };
    off_t pos = 0;
    while ((uint64_t)pos < m->mem_size && !w->failed) {
        off_t data = lseek(m->mem_fd, pos, SEEK_DATA);
        if (data < 0)
            break;
        off_t hole = lseek(m->mem_fd, data, SEEK_HOLE);
        if (hole < 0 || (uint64_t)hole > m->mem_size)
            hole = (off_t)m->mem_size;
        for (uint64_t pg = (uint64_t)data & ~(PAGE - 1); pg < (uint64_t)hole; pg += PAGE) {
            if (page_is_zero(m->mem + pg))
                continue;
            if (cur.pages && cur.gpa + cur.pages * PAGE == pg) {
                cur.pages++;
            } else {
                if (cur.pages)
                    snap_put(runs, &cur, sizeof cur);
                cur = (struct snap_run){ .gpa = pg, .pages = 1 };
            }
            snap_append(w, m->mem + pg, PAGE);
        }
        pos = hole;
    }
    if (cur.pages)
        snap_put(runs, &cur, sizeof cur);
    snap_close_section(w);
}

int vm_image_save(struct snap_writer *w, const struct vm_snapshot *snap)
{
    const struct vm *m = snap->master;
    const struct kvm_cpuid2 *cpuid = kvm_supported_cpuid();
    if (!cpuid)
        return -1;
    struct snap_buf b = { 0 };
    snap_put_u32(&b, (uint32_t)xsave_size());
    snap_put_u32(&b, cpuid->nent);
    snap_put(&b, cpuid->entries, cpuid->nent * sizeof cpuid->entries[0]);
    snap_add(w, SNAP_CPU, b.data, b.len);
    snap_buf_free(&b);

    struct vcpu_rec v = { .regs = snap->regs, .sregs = snap->sregs, .xcrs = snap->xcrs,
                          .fs_base = snap->fs_base, .gs_base = snap->gs_base,
                          .kernel_gs_base = snap->kernel_gs_base,
                          .xsave_ioctl = snap->xsave_ioctl == KVM_GET_XSAVE2,
                          .xsave_size = (uint32_t)xsave_size() };
    snap_put(&b, &v, sizeof v);
    snap_put(&b, snap->xsave, v.xsave_size);
    snap_add(w, SNAP_VCPU, b.data, b.len);
    snap_buf_free(&b);

    struct engine_rec e = { .mem_size = m->mem_size, .user_end = m->user_end,
                            .pt_root = snap->pt.root, .pt_pool_next = snap->pt.pool_next,
                            .pt_pool_end = snap->pt.pool_end, .pt_revoked = snap->pt.revoked,
                            .nslots = m->nslots,
                            .has_sites = m->sites ? (m->sites->keyed ? SNAP_SITES_KEYED
                                                                     : SNAP_SITES_PLAIN) : 0 };
    snprintf(e.platform, sizeof e.platform, "%s", m->plat->name);
    e.tsc_hz = clock_get_calibration()->tsc_hz;
    host_boot_id(e.boot_id);
    if (m->sites) {
        e.sites_count = m->sites->count;
        e.sites_rewritten = m->sites->rewritten;
        e.sites_refused = m->sites->refused;
    }
    snap_put(&b, &e, sizeof e);
    for (uint32_t i = 0; i < m->nslots; i++)
        snap_put(&b, &(uint8_t){ m->slot_registered[i] }, 1);
    for (unsigned i = 0; m->sites && i < SITES_CAPACITY; i++)
        snap_put_u64(&b, atomic_load(&m->sites->slot[i]));
    snap_add(w, SNAP_ENGINE, b.data, b.len);
    snap_buf_free(&b);

    save_memory(w, m, &b);
    snap_add(w, SNAP_MEMRUNS, b.data, b.len);
    bool failed = b.failed;
    snap_buf_free(&b);
    if (failed) {
        fprintf(stderr, "kvmserver: snapshot: out of memory\n");
        return -1;
    }
    return w->failed ? -1 : 0;
}

/* ---- checking and loading ---- */

struct decoded {
    const struct engine_rec *e;
    const uint8_t *slots;
    const uint64_t *sites;
    const struct vcpu_rec *v;
    const uint8_t *xsave;
    uint32_t cpu_xsave, cpu_nent;
    const struct kvm_cpuid_entry2 *cpuid;
    const struct snap_run *runs;
    size_t nruns;
};

static int decode(const struct snap_reader *r, struct decoded *d, char *err, size_t errlen)
{
    memset(d, 0, sizeof *d);
    uint64_t len;
    struct snap_cursor c;
    const void *sec_SNAP_ENGINE = snap_section(r, SNAP_ENGINE, &len);
    snap_cursor_init(&c, sec_SNAP_ENGINE, len);
    d->e = snap_take(&c, sizeof *d->e);
    if (!d->e)
        return snap_error(err, errlen, "damaged snapshot: no engine section");
    const struct engine_rec *e = d->e;
    if (e->mem_size < 64 * MIB || e->mem_size > MAX_MEM || e->mem_size % (2 * MIB) ||
        e->user_end % PAGE || e->user_end < SYSTEM_AREA_END || e->user_end >= e->mem_size ||
        e->nslots != (e->mem_size + MEMSLOT_SIZE - 1) >> MEMSLOT_SHIFT ||
        e->has_sites > SNAP_SITES_KEYED || e->sites_count > SITES_CAPACITY ||
        memchr(e->platform, '\0', sizeof e->platform) == NULL)
        return snap_error(err, errlen, "damaged snapshot: the engine section is inconsistent");
    if (e->pt_root < e->user_end || e->pt_pool_end != e->mem_size || e->pt_root % PAGE ||
        e->pt_pool_next < e->user_end || e->pt_pool_next > e->pt_pool_end ||
        e->pt_root >= e->pt_pool_next)
        return snap_error(err, errlen, "damaged snapshot: the page-table pool is misplaced");
    d->slots = snap_take(&c, e->nslots);
    if (e->has_sites)
        d->sites = snap_take(&c, SITES_CAPACITY * sizeof(uint64_t));
    if (c.bad || c.left)
        return snap_error(err, errlen, "damaged snapshot: the engine section has the wrong length");

    const void *sec_SNAP_VCPU = snap_section(r, SNAP_VCPU, &len);
    snap_cursor_init(&c, sec_SNAP_VCPU, len);
    d->v = snap_take(&c, sizeof *d->v);
    if (!d->v || d->v->xsave_size < sizeof(struct kvm_xsave) || d->v->xsave_size > MAX_XSAVE ||
        d->v->xsave_ioctl > 1 || d->v->xcrs.nr_xcrs > KVM_MAX_XCRS)
        return snap_error(err, errlen, "damaged snapshot: the vCPU section is inconsistent");
    /* The host's page tables, GDT and IDT, whatever the rest of the state says: a reset's
     * scan follows pt_root, so the vCPU must walk those tables and no others. */
    if (d->v->sregs.cr3 != e->pt_root || d->v->sregs.gdt.base != GDT_ADDR ||
        d->v->sregs.idt.base != IDT_ADDR || d->v->sregs.tr.base != TSS_ADDR)
        return snap_error(err, errlen, "damaged snapshot: the vCPU does not use the host's tables");
    d->xsave = snap_take(&c, d->v->xsave_size);
    if (c.bad || c.left)
        return snap_error(err, errlen, "damaged snapshot: the vCPU section has the wrong length");

    const void *sec_SNAP_CPU = snap_section(r, SNAP_CPU, &len);
    snap_cursor_init(&c, sec_SNAP_CPU, len);
    d->cpu_xsave = snap_take_u32(&c);
    d->cpu_nent = snap_take_u32(&c);
    if (c.bad || d->cpu_nent > MAX_CPUID)
        return snap_error(err, errlen, "damaged snapshot: the CPU section is inconsistent");
    d->cpuid = snap_take(&c, d->cpu_nent * sizeof *d->cpuid);
    if (c.bad || c.left || d->cpu_xsave != d->v->xsave_size)
        return snap_error(err, errlen, "damaged snapshot: the CPU section has the wrong length");

    d->runs = snap_memory_runs(r, e->mem_size, &d->nruns, err, errlen);
    return d->runs ? 0 : -1;
}

int vm_image_check(const struct snap_reader *r, char *err, size_t errlen)
{
    struct decoded d;
    return decode(r, &d, err, errlen);
}

static const char *const reg_names[] = { "eax", "ebx", "ecx", "edx" };

/* The first CPUID difference, named, or 0 when the tables match. */
static int compare_cpu(const struct decoded *d, char *err, size_t errlen)
{
    const struct kvm_cpuid2 *now = kvm_supported_cpuid();
    if (!now)
        return snap_error(err, errlen, "cannot read this machine's CPUID from KVM");
    if ((uint32_t)xsave_size() != d->cpu_xsave)
        return snap_error(err, errlen, "the snapshot was made on a CPU with another XSAVE layout "
                    "(%u bytes of vCPU state, this machine has %d)", d->cpu_xsave,
                    xsave_size());
    for (uint32_t i = 0; i < d->cpu_nent || i < now->nent; i++) {
        if (i >= d->cpu_nent || i >= now->nent)
            return snap_error(err, errlen, "the snapshot was made on a CPU with another feature set "
                        "(%u CPUID leaves, this machine has %u)", d->cpu_nent, now->nent);
        struct kvm_cpuid_entry2 a, b = now->entries[i];
        memcpy(&a, &d->cpuid[i], sizeof a);
        uint32_t ra[4] = { a.eax, a.ebx, a.ecx, a.edx }, rb[4] = { b.eax, b.ebx, b.ecx, b.edx };
        if (a.function != b.function || a.index != b.index)
            return snap_error(err, errlen, "the snapshot was made on a CPU with another feature set "
                        "(CPUID leaf 0x%x.%u where this machine has 0x%x.%u)", a.function,
                        a.index, b.function, b.index);
        for (int k = 0; k < 4; k++) {
            /* Leaf 1 EBX[31:24] is the initial APIC id, and leaf 0xb/0x1f EDX the x2APIC
             * id: they name a CPU, not a feature. */
            uint32_t mask = a.function == 1 && k == 1 ? 0x00ffffffu
                            : (a.function == 0xb || a.function == 0x1f) && k == 3 ? 0 : ~0u;
            if ((ra[k] ^ rb[k]) & mask)
                return snap_error(err, errlen, "the snapshot was made on a CPU with another feature "
                            "set (CPUID leaf 0x%x.%u %s: 0x%08x, this machine: 0x%08x)",
                            a.function, a.index, reg_names[k], ra[k], rb[k]);
        }
    }
    return 0;
}

/* The flavour of this machine's KVM: a small VM runs the self-test. *rewrite: 0 where it
 * cannot rewrite sites, else SNAP_SITES_PLAIN or SNAP_SITES_KEYED. */
static const struct platform *detect_here(bool want_rewrite, uint32_t *rewrite)
{
    struct vm probe;
    struct vm_params params = { .mem_size = 64 * MIB, .rewrite_syscalls = want_rewrite };
    if (vm_create(&probe, &params) < 0)
        return NULL;
    const struct platform *plat = probe.plat;
    *rewrite = probe.sites ? (probe.sites->keyed ? SNAP_SITES_KEYED : SNAP_SITES_PLAIN) : 0;
    vm_destroy(&probe);
    return plat;
}

int vm_image_load(const struct snap_reader *r, int fd, struct vm *master,
                  struct vm_image *image, struct vm_snapshot *snap, char *err, size_t errlen)
{
    struct decoded d;
    if (decode(r, &d, err, errlen) < 0 || compare_cpu(&d, err, errlen) < 0)
        return -1;
    char boot_id[40];
    host_boot_id(boot_id);
    if (d.e->tsc_hz && boot_id[0] && memcmp(boot_id, d.e->boot_id, sizeof boot_id) == 0)
        clock_adopt(d.e->tsc_hz);
    uint32_t rewrite = 0;
    const struct platform *plat = detect_here(d.e->has_sites, &rewrite);
    if (!plat)
        return snap_error(err, errlen, "KVM cannot be used here");
    if (strcmp(plat->name, d.e->platform) != 0)
        return snap_error(err, errlen, "the snapshot was made on %s KVM; this machine has %s KVM",
                    d.e->platform, plat->name);
    if (d.e->has_sites && !rewrite)
        return snap_error(err, errlen, "the snapshot rewrote system call sites, which this KVM "
                    "cannot do");
    if (d.e->has_sites == SNAP_SITES_KEYED && rewrite != SNAP_SITES_KEYED)
        return snap_error(err, errlen, "the snapshot's rewritten system call sites need "
                    "protection keys, which this CPU does not have");
    const struct engine_rec *e = d.e;
    *image = (struct vm_image){ .fd = fd, .runs = d.runs, .nruns = d.nruns,
                                .data_offset = snap_section_offset(r, SNAP_MEMDATA) };
    *master = (struct vm){ .vm_fd = -1, .vcpu_fd = -1, .mem_fd = -1, .plat = plat,
                           .mem_size = e->mem_size, .user_end = e->user_end, .image = image };
    transport_init(master);
    master->mem = vm_image_map(image, e->mem_size);
    if (!master->mem) {
        master->mem = NULL;
        return snap_error(err, errlen, "cannot map the snapshot's memory: %s", strerror(errno));
    }
    if (vm_alloc_slots(master) < 0)
        return snap_error(err, errlen, "out of memory");
    for (uint32_t i = 0; i < e->nslots; i++)
        master->slot_registered[i] = d.slots[i] != 0;
    if (e->has_sites) {
        master->sites = calloc(1, sizeof *master->sites);
        if (!master->sites)
            return snap_error(err, errlen, "out of memory");
        unsigned used = 0;
        for (unsigned i = 0; i < SITES_CAPACITY; i++) {
            uint64_t v;
            memcpy(&v, &d.sites[i], sizeof v);
            atomic_store(&master->sites->slot[i], v);
            used += v != 0;
        }
        if (used != e->sites_count)
            return snap_error(err, errlen, "damaged snapshot: the syscall-site set is inconsistent");
        master->sites->count = e->sites_count;
        master->sites->rewritten = e->sites_rewritten;
        master->sites->refused = e->sites_refused;
        master->sites->keyed = e->has_sites == SNAP_SITES_KEYED;
    }
    *snap = (struct vm_snapshot){ .master = master, .regs = d.v->regs, .sregs = d.v->sregs,
                                  .xcrs = d.v->xcrs, .fs_base = d.v->fs_base,
                                  .gs_base = d.v->gs_base,
                                  .kernel_gs_base = d.v->kernel_gs_base,
                                  .xsave_ioctl = d.v->xsave_ioctl ? KVM_GET_XSAVE2
                                                                  : KVM_GET_XSAVE };
    snap->xsave = malloc(d.v->xsave_size);
    if (!snap->xsave)
        return snap_error(err, errlen, "out of memory");
    /* The frozen memory's data is the file's runs; the rest are holes, as a booted master's
     * memfd has (vm_snapshot_memory): forks map them anonymous, resets zero them. */
    snap->has_data = calloc((e->mem_size / PAGE + 7) / 8, 1);
    snap->data = calloc(image->nruns ? image->nruns : 1, sizeof *snap->data);
    if (!snap->has_data || !snap->data)
        return snap_error(err, errlen, "out of memory");
    for (size_t i = 0; i < image->nruns; i++) {
        uint64_t first = image->runs[i].gpa / PAGE, n = image->runs[i].pages;
        for (uint64_t page = first; page < first + n; page++)
            snap->has_data[page / 8] |= (uint8_t)(1u << page % 8);
        snap->data[snap->ndata++] = (struct vm_extent){ first * PAGE, (first + n) * PAGE };
    }
    memcpy(snap->xsave, d.xsave, d.v->xsave_size);
    snap->pt = (struct paging){ .mem = master->mem, .mem_size = e->mem_size,
                                .root = e->pt_root, .pool_next = e->pt_pool_next,
                                .pool_end = e->pt_pool_end, .revoked = e->pt_revoked };
    master->pt = snap->pt;
    if (!pt_valid(&snap->pt, e->user_end))
        return snap_error(err, errlen, "damaged snapshot: its page tables point outside their pool");
    return 0;
}

uint32_t vm_image_code_crc(uint32_t crc)
{
    crc = snap_crc32c(crc, kvms_kcode_start, (size_t)(kvms_kcode_end - kvms_kcode_start));
    crc = snap_crc32c(crc, kvms_uentry_start, (size_t)(kvms_uentry_end - kvms_uentry_start));
    return snap_crc32c(crc, kvms_vdso_image, (size_t)(kvms_vdso_image_end - kvms_vdso_image));
}
