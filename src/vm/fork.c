/* Freeze, fork and reset (see fork.h). */
#include "vm/fork.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "base/time.h"
#include "base/units.h"
#include "vm/clock.h"
#include "vm/cpu_state.h"
#include "vm/host_pages.h"
#include "vm/image_map.h"
#include "vm/kvm.h"
#include "vm/layout.h"
#include "vm/memslots.h"
#include "vm/platform.h"
#include "vm/syscall_sites.h"
#include "vm/vm.h"

static int fail(const char *what)
{
    fprintf(stderr, "kvmserver: %s: %s\n", what, strerror(errno));
    return -1;
}

static const uint32_t saved_msrs[] = { MSR_FS_BASE, MSR_GS_BASE, MSR_KERNEL_GS_BASE };

/* Which pages of the frozen memory exist in its memfd. Nothing may fault a hole of it in,
 * through the master's mapping or a fork's: shmem allocates a page of zeros in the memfd
 * even for a read, and it stays for good, so kvmserver's memory would grow with every page
 * any request ever touched. So a reset zeroes such a page instead of copying it, and a
 * fork maps anonymous memory over the holes (fork.h). */
int vm_snapshot_memory(struct vm_snapshot *snap, const struct vm *master)
{
    size_t pages = master->mem_size / PAGE;
    snap->has_data = calloc((pages + 7) / 8, 1);
    if (!snap->has_data)
        return -1;
    off_t end = (off_t)master->mem_size, at = 0;
    while (at < end) {
        off_t data = lseek(master->mem_fd, at, SEEK_DATA);
        if (data < 0)
            return errno == ENXIO ? 0 : -1;     /* only holes from here */
        off_t hole = lseek(master->mem_fd, data, SEEK_HOLE);
        if (hole < 0)
            return -1;
        for (uint64_t page = (uint64_t)data / PAGE; page * PAGE < (uint64_t)hole; page++)
            snap->has_data[page / 8] |= (uint8_t)(1u << page % 8);
        struct vm_extent *grown = realloc(snap->data, (snap->ndata + 1) * sizeof *grown);
        if (!grown)
            return -1;
        snap->data = grown;
        snap->data[snap->ndata++] = (struct vm_extent){ (uint64_t)data, (uint64_t)hole };
        at = hole;
    }
    return 0;
}

int vm_snapshot_take(struct vm_snapshot *snap, struct vm *master)
{
    memset(snap, 0, sizeof *snap);
    snap->master = master;
    if (vm_complete_exit(master) < 0)
        return fail("freeze: completing the last exit");
    if (vm_snapshot_memory(snap, master))
        return fail("freeze: finding the frozen memory's pages");
    snap->regs = master->run->s.regs.regs;
    snap->pt = master->pt;
    if (ioctl(master->vcpu_fd, KVM_GET_SREGS, &snap->sregs) < 0)
        return fail("freeze: KVM_GET_SREGS");
    if (ioctl(master->vcpu_fd, KVM_GET_XCRS, &snap->xcrs) < 0)
        return fail("freeze: KVM_GET_XCRS");
    /* The XSAVE area can outgrow struct kvm_xsave (AMX); KVM_CAP_XSAVE2 gives its size. */
    int size = ioctl(kvm_device(), KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
    snap->xsave_ioctl = size > (int)sizeof(struct kvm_xsave) ? KVM_GET_XSAVE2 : KVM_GET_XSAVE;
    if (size < (int)sizeof(struct kvm_xsave))
        size = sizeof(struct kvm_xsave);
    snap->xsave = calloc(1, (size_t)size);
    if (!snap->xsave || ioctl(master->vcpu_fd, snap->xsave_ioctl, snap->xsave) < 0)
        return fail("freeze: KVM_GET_XSAVE");
    struct {
        struct kvm_msrs hdr;
        struct kvm_msr_entry e[3];
    } m = { .hdr.nmsrs = 3 };
    for (unsigned i = 0; i < 3; i++)
        m.e[i].index = saved_msrs[i];
    if (ioctl(master->vcpu_fd, KVM_GET_MSRS, &m) != 3)
        return fail("freeze: KVM_GET_MSRS");
    snap->fs_base = m.e[0].data;
    snap->gs_base = m.e[1].data;
    snap->kernel_gs_base = m.e[2].data;
    /* A reset copies a fork's edited tables back from these: with the master's D bits,
     * every page the boot wrote read as written by the request again, was copied for a
     * while, released, and faulted back in by the next copy (python asyncio: ~145 pages a
     * cycle). The A bits stay: they make the scans descend into the restored tables. */
    pt_clear_dirty(&master->pt);
    return 0;
}

void vm_snapshot_free(struct vm_snapshot *snap)
{
    free(snap->xsave);
    snap->xsave = NULL;
    free(snap->has_data);
    snap->has_data = NULL;
    free(snap->data);
    snap->data = NULL;
}

/* Registers, FPU and thread pointers as they were at the freeze. */
static int restore_cpu(struct vm *child, const struct vm_snapshot *snap, bool sregs)
{
    /* An exit left pending would be completed on top of the restored registers. */
    if (vm_complete_exit(child) < 0)
        return fail("reset: completing the last exit");
    if (sregs && ioctl(child->vcpu_fd, KVM_SET_SREGS, &snap->sregs) < 0)
        return fail("KVM_SET_SREGS");
    if (ioctl(child->vcpu_fd, KVM_SET_XSAVE, snap->xsave) < 0)
        return fail("KVM_SET_XSAVE");
    uint64_t values[] = { snap->fs_base, snap->gs_base, snap->kernel_gs_base };
    if (vm_set_msrs(child, saved_msrs, values, 3))
        return fail("KVM_SET_MSRS");
    child->run->s.regs.regs = snap->regs;
    child->run->kvm_dirty_regs |= KVM_SYNC_X86_REGS;
    return 0;
}

/* The fork's page tables as frozen, with the host's edits and grants tracked from now on. */
static void adopt_frozen_tables(struct vm *child)
{
    child->pt = child->origin->pt;
    child->pt.mem = child->mem;
    child->pt.track = &child->ws;
    child->pt.granted = &child->granted;
}

/* The host rewrites the clock page at every exit, the transport's page whenever it serves
 * and iret frames on the ring-0 stack, with no D bit to show it: these pages are always
 * part of the working set. */
static void pin_host_pages(struct vm *child)
{
    ws_pin_range(&child->ws, CLOCK_PAGE_ADDR, PAGE);
    ws_pin_range(&child->ws, SHARED_PAGE_ADDR, PAGE);
    ws_pin_range(&child->ws, KSTACK_ADDR, KSTACK_SIZE);
}

int vm_fork(struct vm *child, const struct vm_snapshot *snap)
{
    const struct vm *m = snap->master;
    *child = (struct vm){ .vm_fd = -1, .vcpu_fd = -1, .mem_fd = -1, .verbose = m->verbose,
                          .plat = m->plat, .mem_size = m->mem_size, .user_end = m->user_end,
                          .origin = snap };
    transport_init(child);
    if (ws_init(&child->ws, m->mem_size) || ws_init(&child->granted, m->mem_size)) {
        ws_free(&child->ws);
        return fail("fork: working set");
    }
    child->vm_fd = ioctl(kvm_device(), KVM_CREATE_VM, 0);
    if (child->vm_fd < 0) {
        fail("fork: KVM_CREATE_VM");
        goto err;
    }
    /* A master loaded from a snapshot has no memfd: its pages come from the file. */
    void *mem = m->image ? vm_image_map(m->image, m->mem_size)
                         : mmap(NULL, m->mem_size, PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_NORESERVE, m->mem_fd, 0);
    if (!mem || mem == MAP_FAILED) {
        fail("fork: cannot map the frozen memory");
        goto err;
    }
    child->mem = mem;
    /* Holes of the frozen memory: anonymous, so that touching them allocates nothing in
     * the memfd (vm_snapshot_memory). They read as zeros either way. */
    for (size_t i = 0; i <= snap->ndata; i++) {
        uint64_t from = i ? snap->data[i - 1].end : 0;
        uint64_t to = i < snap->ndata ? snap->data[i].start : m->mem_size;
        if (to > from && mmap(child->mem + from, to - from, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1,
                              0) == MAP_FAILED) {
            fail("fork: mapping the frozen memory's holes");
            goto err;
        }
    }
    if (vm_alloc_slots(child) || memslots_copy(child, m)) {
        fail("fork: KVM_SET_USER_MEMORY_REGION");
        goto err;
    }
    if (sites_copy(child, m)) {
        fail("fork: syscall sites");
        goto err;
    }
    adopt_frozen_tables(child);
    /* No vCPU has walked these tables yet, so clearing D and A bits is seen: from now on a
     * D bit means "written by this fork", and an upper-level A bit "walked by this fork",
     * which lets a reset's scan skip the tables the fork never used. */
    pt_scan_dirty(&child->pt, true, NULL, NULL);
    if (vm_create_vcpu(child))
        goto err;
    uint32_t idx[] = { MSR_STAR, MSR_LSTAR, MSR_CSTAR, MSR_SYSCALL_MASK };
    uint64_t val[] = { ((uint64_t)(SEL_UCODE32 - 3) << 48) | ((uint64_t)SEL_KCODE << 32),
                       child->plat->syscall_entry, 0, SYSCALL_FLAG_MASK };
    if (vm_set_msrs(child, idx, val, 4)) {
        fail("fork: KVM_SET_MSRS");
        goto err;
    }
    if (ioctl(child->vcpu_fd, KVM_SET_XCRS, &snap->xcrs) < 0) {
        fail("fork: KVM_SET_XCRS");
        goto err;
    }
    if (restore_cpu(child, snap, true))
        goto err;
    pin_host_pages(child);
    vm_clock_refresh(child);
    return 0;
err:
    vm_destroy(child);
    return -1;
}

static void add_dirty(void *ctx, uint64_t frame)
{
    struct vm *child = ctx;
    child->ws_new += ws_add_range(&child->ws, frame, PAGE);
}

/* Dropping a private page makes the mapping read the frozen image there again, and the
 * host's MMU notifier drops every translation KVM cached for it, on every flavour (shadow
 * pages on kvm_pvm, EPT/NPT entries and the TLB on hardware KVM). */
static int discard_private(struct vm *child, uint64_t gpa, uint64_t len)
{
    if (madvise(child->mem + gpa, len, MADV_DONTNEED) == 0)
        return 0;
    int err = -errno;
    fprintf(stderr, "kvmserver: reset: dropping the pages at 0x%llx (+%llu): %s\n",
            (unsigned long long)gpa, (unsigned long long)len, strerror(errno));
    return err;
}

/* Drops the listed frames back to the image (runs of adjacent frames in one call each) and
 * clears their D bits: with their translations gone, a later write sets D again. */
static int discard_pages(struct vm *child, const uint64_t *pages, size_t count)
{
    int err = 0;
    for (size_t i = 0; i < count && !err;) {
        size_t run = 1;
        while (i + run < count && pages[i + run] == pages[i] + run * PAGE)
            run++;
        err = discard_private(child, pages[i], run * PAGE);
        i += run;
    }
    /* After the discards: a table page dropped with them would lose the cleared bits. */
    for (size_t i = 0; i < count && !err; i++)
        pt_clean(&child->pt, pages[i]);
    return err;
}

/* Every page back to the image: the fork is as good as new. Caller holds transport.exec. */
static int restore_all(struct vm *child)
{
    int err = discard_private(child, 0, child->mem_size);
    if (err)
        return err;
    adopt_frozen_tables(child);
    /* No translation survived the discard, so cleared D and A bits are seen (see vm_fork). */
    pt_scan_dirty(&child->pt, true, NULL, NULL);
    ws_free(&child->ws);
    ws_free(&child->granted);
    if (ws_init(&child->ws, child->mem_size) || ws_init(&child->granted, child->mem_size))
        return -ENOMEM;
    pin_host_pages(child);
    return 0;
}

/* Does the frozen image hold data at guest-physical page `page` (not a hole of the memfd)? */
static bool frozen_has_data(const struct vm_snapshot *snap, uint64_t page)
{
    uint64_t n = page / PAGE;
    return snap->has_data[n / 8] & (1u << n % 8);
}

/* See vm.h. An untouched page needs zeroing only where the master's copy holds data. */
void vm_fork_zero(struct vm *vm, uint64_t gva, uint64_t len)
{
    const struct vm_snapshot *snap = vm->origin;
    bool populated[HOST_PAGES_BATCH];
    uint64_t pages = (len + PAGE - 1) / PAGE;
    for (uint64_t done = 0; done < pages;) {
        size_t n = pages - done < HOST_PAGES_BATCH ? (size_t)(pages - done) : HOST_PAGES_BATCH;
        uint64_t first = gva + done * PAGE;
        bool known = host_pages_populated(vm->mem + first, n, populated) == 0;
        for (size_t i = 0; i < n; i++) {
            uint64_t page = first + i * PAGE;
            bool untouched = known && !populated[i];
            if (untouched && !frozen_has_data(snap, page))
                continue;                       /* a hole of the image: zeros */
            if (untouched && page_is_zero(snap->master->mem + page))
                continue;                       /* frozen as zeros */
            vm_zero_page(vm, page);
        }
        done += n;
    }
}

/* Entries [from, to) of the working set back to the frozen image. The poller copies some of
 * them (transport_share): the copy is most of a reset, and two CPUs copy in about half the
 * time. */
static void restore_pages(struct vm *child, const void *unused, size_t from, size_t to)
{
    (void)unused;
    const uint8_t *frozen = child->origin->master->mem;
    for (size_t i = from; i < to; i++) {
        uint64_t page = child->ws.pages[i];
        if (frozen_has_data(child->origin, page))
            memcpy(child->mem + page, frozen + page, PAGE);
        else
            memset(child->mem + page, 0, PAGE);     /* a hole reads as zeros */
    }
}

/* Did the request just served leave this page other than frozen (ws_age's question)? */
static bool changed_since_freeze(void *ctx, uint64_t page)
{
    const struct vm *child = ctx;
    if (!frozen_has_data(child->origin, page))
        return !page_is_zero(child->mem + page);
    return memcmp(child->mem + page, child->origin->master->mem + page, PAGE) != 0;
}

/* The working set back to the image. Caller holds transport.exec. Table pages the host
 * edited are among them; the image's copies have every A bit set, so their subtrees are
 * scanned from then on: more work, never a missed page.
 * The rights this request gained (a mapping made, a write allowed) are taken back by
 * restoring the page tables, but the vCPU may have cached them: kvm_pvm's shadow pages do
 * not see host edits of present entries. So the frames that gained rights are dropped
 * instead of copied: their translations go, and their contents are the frozen ones. The
 * pages whose keep time is over and that the request left as frozen (see working_set.h) are
 * dropped the same way. */
static int restore_working_set(struct vm *child, size_t *released)
{
    ws_forget(&child->ws, &child->granted);
    *released = ws_age(&child->ws, changed_since_freeze, child);
    transport_share(child, child->ws.count, restore_pages, NULL);
    adopt_frozen_tables(child);
    int err = discard_pages(child, child->granted.pages, child->granted.count);
    if (!err)
        err = discard_pages(child, child->ws.released, *released);
    /* Released pages can leave whole tables without a D bit: the next scans skip them until
     * a write walks them again (see pt_prune_clean). Kept pages whose D bit a restored
     * table cleared are still copied, and a released page's next write always walks. */
    if (!err && *released && child->plat && child->plat->software_walks)
        pt_prune_clean(&child->pt);
    ws_clear(&child->granted);
    return err;
}

int vm_reset_memory(struct vm *child, struct vm_reset_stats *stats)
{
    child->ws_new = 0;
    size_t dropped = child->granted.count, released = 0;
    /* A poller must not serve this VM while its memory is being put back. */
    pthread_mutex_lock(&child->transport.exec);
    uint64_t t0 = now_ns();
    pt_scan_dirty(&child->pt, false, add_dirty, child);
    uint64_t t1 = now_ns();
    /* A page the working set could not record may hold this request's data: only putting
     * every page back is safe then. */
    bool full = child->ws.lost || child->granted.lost;
    int err = full ? restore_all(child) : restore_working_set(child, &released);
    if (!err)
        vm_clock_refresh(child);
    pthread_mutex_unlock(&child->transport.exec);
    if (full)
        fprintf(stderr, "kvmserver: the working set could not record a page (out of memory): "
                "%s\n", err ? "the VM cannot be reset" : "all memory was restored instead");
    if (stats) {
        *stats = (struct vm_reset_stats){ .pages_restored = child->ws.count,
                                          .pages_new = child->ws_new,
                                          .pages_dropped = full ? 0 : dropped,
                                          .pages_released = released, .full = full,
                                          .scan_ns = t1 - t0, .copy_ns = now_ns() - t1 };
    }
    return err;
}

int vm_reset(struct vm *child, bool cpu_anywhere, struct vm_reset_stats *stats)
{
    uint64_t start = now_ns();
    int err = vm_reset_memory(child, stats);
    if (err) {
        errno = -err;
        return fail("reset: restoring memory");
    }
    uint64_t cpu_start = now_ns();
    if (restore_cpu(child, child->origin, cpu_anywhere))
        return -1;
    child->deadline_ns = 0;
    if (stats) {
        stats->cpu_ns = now_ns() - cpu_start;
        stats->ns = now_ns() - start;
    }
    return 0;
}

int vm_reset_full(struct vm *child)
{
    pthread_mutex_lock(&child->transport.exec);
    int err = restore_all(child);
    if (!err)
        vm_clock_refresh(child);
    pthread_mutex_unlock(&child->transport.exec);
    return err;
}
