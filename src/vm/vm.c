/* Creating a VM: guest memory, the vCPU, its long-mode state and the system area
 * (GDT, TSS, IDT, guest stubs, page tables) — see layout.h for where each lives. */
#include "vm/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/log.h"
#include "base/time.h"
#include "base/units.h"
#include "guest/stubs.h"
#include "guest/vdso.h"
#include "vm/clock.h"
#include "vm/cpu_state.h"
#include "vm/host_pages.h"
#include "vm/kvm.h"
#include "vm/layout.h"
#include "vm/memslots.h"
#include "vm/platform.h"
#include "vm/syscall_sites.h"

#define DISCARD_IN_PLACE_MAX (2 * MIB)

static int fail(const char *what)
{
    log_error("%s: %s", what, strerror(errno));
    return -1;
}

int vm_set_msrs(struct vm *vm, const uint32_t *index, const uint64_t *value, unsigned n)
{
    struct {
        struct kvm_msrs hdr;
        struct kvm_msr_entry e[8];
    } m = { .hdr.nmsrs = n };
    for (unsigned i = 0; i < n; i++)
        m.e[i] = (struct kvm_msr_entry){ .index = index[i], .data = value[i] };
    return ioctl(vm->vcpu_fd, KVM_SET_MSRS, &m) == (int)n ? 0 : -1;
}

/* Guest TSC minus host TSC: a new VM's TSC need not start at the host's. KVM says it exactly
 * where it can (KVM_VCPU_TSC_OFFSET); otherwise it is estimated from a read of the guest's TSC
 * between two of the host's, which can be off by a few us (the guest then reads its clock
 * slightly behind what the host answers). */
static int64_t measure_tsc_offset(struct vm *vm)
{
    uint64_t offset;
    struct kvm_device_attr attr = { .group = KVM_VCPU_TSC_CTRL, .attr = KVM_VCPU_TSC_OFFSET,
                                    .addr = (uint64_t)(uintptr_t)&offset };
    if (ioctl(vm->vcpu_fd, KVM_GET_DEVICE_ATTR, &attr) == 0)
        return (int64_t)offset;
    struct {
        struct kvm_msrs hdr;
        struct kvm_msr_entry e;
    } m = { .hdr.nmsrs = 1, .e.index = MSR_IA32_TSC };
    uint64_t before = __builtin_ia32_rdtsc();
    if (ioctl(vm->vcpu_fd, KVM_GET_MSRS, &m) != 1)
        return 0;
    uint64_t after = __builtin_ia32_rdtsc();
    return (int64_t)(m.e.data - (before + (after - before) / 2));
}

static uint64_t gdt_entry(uint32_t flags_access)   /* base 0, limit 0xfffff */
{
    return 0xffffull | ((uint64_t)flags_access << 40) | (0xfull << 48);
}

static void build_gdt_tss(struct vm *vm)
{
    uint64_t *gdt = (uint64_t *)(vm->mem + GDT_ADDR);
    /* access byte | flags nibble << 12: accessed bits preset so the CPU never writes. */
    gdt[SEL_KCODE / 8] = gdt_entry(0x9b | (0xa << 12));       /* L, G */
    gdt[SEL_KDATA / 8] = gdt_entry(0x93 | (0xc << 12));       /* D, G */
    gdt[SEL_UCODE32 / 8] = gdt_entry(0xfb | (0xc << 12));
    gdt[SEL_UDATA / 8] = gdt_entry(0xf3 | (0xc << 12));
    gdt[SEL_UCODE / 8] = gdt_entry(0xfb | (0xa << 12));
    uint64_t base = TSS_ADDR, limit = 0x67;
    gdt[SEL_TSS / 8] = limit | ((base & 0xffffff) << 16) | (0x8bull << 40) |
                       (((base >> 24) & 0xff) << 56);
    gdt[SEL_TSS / 8 + 1] = base >> 32;

    uint8_t *tss = vm->mem + TSS_ADDR;
    uint64_t rsp0 = KSTACK_ADDR + KSTACK_SIZE;
    memcpy(tss + 4, &rsp0, 8);
    uint16_t iomap = 0x68;            /* beyond the limit: no port is open to user mode */
    memcpy(tss + 102, &iomap, 2);
}

static void build_idt(struct vm *vm)
{
    uint8_t *idt = vm->mem + IDT_ADDR;
    for (unsigned vec = 0; vec < 256; vec++) {
        /* Vectors past the exceptions exist only so that `int N` from user mode meets a
         * DPL-0 gate and raises #GP, as on Linux; they share the #GP stub's report. */
        unsigned stub = vec < 32 ? vec : 13;
        uint64_t handler = STUB_GVA(KCODE_ADDR, kvms_kcode_start, kvms_kcode_vectors) + 16 * stub;
        /* int3 must be usable from ring 3 (gate DPL 3) to raise #BP as on Linux. */
        uint8_t type = vec == 3 ? 0xee : 0x8e;
        uint8_t *g = idt + 16 * vec;
        memset(g, 0, 16);
        g[0] = handler & 0xff;
        g[1] = (handler >> 8) & 0xff;
        g[2] = SEL_KCODE;
        g[5] = type;
        g[6] = (handler >> 16) & 0xff;
        g[7] = (handler >> 24) & 0xff;
        uint32_t high = (uint32_t)(handler >> 32);
        memcpy(g + 8, &high, 4);
    }
}

static int map_system_area(struct vm *vm)
{
    struct { uint64_t addr, len, flags; } area[] = {
        { GDT_ADDR, PAGE, PTE_W | PTE_NX },
        { IDT_ADDR, PAGE, PTE_NX },
        { KCODE_ADDR, PAGE, 0 },
        { UENTRY_ADDR, PAGE, PTE_U },
        { CLOCK_PAGE_ADDR, PAGE, PTE_U | PTE_NX },
        { VDSO_ADDR, VDSO_MAX_SIZE, PTE_U },
        { KSTACK_ADDR, KSTACK_SIZE, PTE_W | PTE_NX },
        { SHARED_PAGE_ADDR, PAGE, PTE_U | PTE_W | PTE_NX },
        { LEFT_SITES_ADDR, PAGE, PTE_U | PTE_NX },
    };
    for (size_t i = 0; i < sizeof area / sizeof area[0]; i++)
        if (pt_map(&vm->pt, area[i].addr, area[i].addr, area[i].len, area[i].flags))
            return -1;
    return pt_map_mmio(&vm->pt, SYSCALL_MMIO_ADDR, vm->mem_size, PTE_U | PTE_W | PTE_NX);
}

static void copy_blob(struct vm *vm, uint64_t gva, const unsigned char *start,
                      const unsigned char *end, uint64_t cap)
{
    size_t len = (size_t)(end - start);
    if (len > cap)
        abort();      /* a build error, not a runtime condition */
    memcpy(vm->mem + gva, start, len);
}

static struct kvm_segment segment(uint16_t sel, uint8_t type, bool code64)
{
    return (struct kvm_segment){
        .base = 0, .limit = 0xffffffff, .selector = sel, .type = type, .present = 1,
        .dpl = sel & 3, .db = code64 ? 0 : 1, .s = 1, .l = code64, .g = 1,
    };
}

int vm_create_vcpu(struct vm *vm)
{
    vm->vcpu_fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, 0);
    if (vm->vcpu_fd < 0)
        return fail("KVM_CREATE_VCPU");
    vm->run_size = (size_t)kvm_vcpu_mmap_size();
    vm->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vm->vcpu_fd, 0);
    if (vm->run == MAP_FAILED) {
        vm->run = NULL;
        return fail("cannot map the vCPU state");
    }
    if (ioctl(vm->vcpu_fd, KVM_SET_CPUID2, kvm_supported_cpuid()) < 0)
        return fail("KVM_SET_CPUID2");
    vm->run->kvm_valid_regs = KVM_SYNC_X86_REGS;
    vm->tsc_offset = measure_tsc_offset(vm);
    return 0;
}

static int setup_cpu(struct vm *vm)
{
    const struct kvm_cpuid2 *cpuid = kvm_supported_cpuid();

    bool has_xsave = false;
    uint64_t xcr0_supported = 0;
    for (unsigned i = 0; i < cpuid->nent; i++) {
        const struct kvm_cpuid_entry2 *e = &cpuid->entries[i];
        if (e->function == 1)
            has_xsave = e->ecx & (1u << 26);
        if (e->function == 0xd && e->index == 0)
            xcr0_supported = e->eax | ((uint64_t)e->edx << 32);
    }

    struct kvm_sregs s;
    if (ioctl(vm->vcpu_fd, KVM_GET_SREGS, &s) < 0)
        return fail("KVM_GET_SREGS");
    s.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_AM | CR0_PG;
    s.cr3 = vm->pt.root;
    s.cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT | CR4_FSGSBASE | (has_xsave ? CR4_OSXSAVE : 0);
    s.efer = EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE;
    s.cs = segment(SEL_KCODE, 11, true);
    s.ss = segment(SEL_KDATA, 3, false);
    s.ds = s.es = s.fs = s.gs = segment(SEL_UDATA, 3, false);
    s.tr = (struct kvm_segment){ .base = TSS_ADDR, .limit = 0x67, .selector = SEL_TSS,
                                 .type = 11, .present = 1 };
    s.ldt = (struct kvm_segment){ .type = 2, .unusable = 1 };
    s.gdt = (struct kvm_dtable){ .base = GDT_ADDR, .limit = 0x4f };
    s.idt = (struct kvm_dtable){ .base = IDT_ADDR, .limit = 256 * 16 - 1 };
    if (ioctl(vm->vcpu_fd, KVM_SET_SREGS, &s) < 0)
        return fail("KVM_SET_SREGS");

    if (has_xsave) {
        /* x87, SSE, AVX and the AVX-512 states when offered: what glibc's ifuncs probe. */
        struct kvm_xcrs x = { .nr_xcrs = 1 };
        x.xcrs[0].xcr = 0;
        x.xcrs[0].value = xcr0_supported & 0xe7;
        if (ioctl(vm->vcpu_fd, KVM_SET_XCRS, &x) < 0)
            return fail("KVM_SET_XCRS");
    }
    struct kvm_fpu fpu = { .fcw = 0x37f, .mxcsr = 0x1f80 };
    if (ioctl(vm->vcpu_fd, KVM_SET_FPU, &fpu) < 0)
        return fail("KVM_SET_FPU");

    uint32_t idx[] = { MSR_STAR, MSR_LSTAR, MSR_CSTAR, MSR_SYSCALL_MASK, MSR_FS_BASE,
                       MSR_GS_BASE, MSR_KERNEL_GS_BASE };
    uint64_t val[] = { ((uint64_t)(SEL_UCODE32 - 3) << 48) | ((uint64_t)SEL_KCODE << 32),
                       UENTRY_ADDR, 0, SYSCALL_FLAG_MASK, 0, 0, 0 };
    if (vm_set_msrs(vm, idx, val, sizeof idx / sizeof idx[0]))
        return fail("KVM_SET_MSRS (syscall MSRs)");

    return 0;
}

int vm_alloc_slots(struct vm *vm)
{
    vm->nslots = (uint32_t)((vm->mem_size + MEMSLOT_SIZE - 1) >> MEMSLOT_SHIFT);
    vm->slot_registered = calloc(vm->nslots, sizeof *vm->slot_registered);
    return vm->slot_registered ? 0 : fail("cannot allocate the memory slot table");
}

static int create_memory(struct vm *vm, uint64_t size)
{
    vm->mem_fd = memfd_create("kvmserver-guest", MFD_CLOEXEC);
    if (vm->mem_fd < 0)
        return fail("memfd_create (guest memory)");
    if (ftruncate(vm->mem_fd, (off_t)size) < 0)
        return fail("cannot size guest memory");
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
                   vm->mem_fd, 0);
    if (p == MAP_FAILED)
        return fail("cannot map guest memory");
    vm->mem = p;
    vm->mem_size = size;
    return vm_alloc_slots(vm);
}

int vm_create(struct vm *vm, const struct vm_params *params)
{
    *vm = (struct vm){ .vm_fd = -1, .vcpu_fd = -1, .mem_fd = -1, .verbose = params->verbose };
    transport_init(vm);
    int kvm = kvm_device();
    if (kvm < 0)
        return -1;
    clock_calibrate();     /* without a usable TSC the vDSO falls back to system calls */
    uint64_t size = params->mem_size & ~(2 * MIB - 1);
    if (size < 64 * MIB) {
        log_error("guest address space of %llu MiB is too small (64 MiB "
                "minimum)", (unsigned long long)(params->mem_size / MIB));
        return -1;
    }
    vm->vm_fd = ioctl(kvm, KVM_CREATE_VM, 0);
    if (vm->vm_fd < 0)
        return fail("KVM_CREATE_VM");
    if (create_memory(vm, size))
        goto err;

    /* Page tables take the top of memory: enough to map everything below in 4 KiB pages. */
    uint64_t pool = ((size / 512) + 2 * MIB) & ~(PAGE - 1);
    vm->user_end = size - pool;
    if (memslots_ensure(vm, 0, SYSTEM_AREA_END) || memslots_ensure(vm, vm->user_end, pool)) {
        log_error("cannot register guest memory with KVM: %s",
                strerror(errno));
        goto err;
    }
    if (pt_init(&vm->pt, vm->mem, size, vm->user_end, size) || map_system_area(vm)) {
        log_error("cannot build the guest page tables");
        goto err;
    }
    build_gdt_tss(vm);
    build_idt(vm);
    copy_blob(vm, KCODE_ADDR, kvms_kcode_start, kvms_kcode_end, PAGE);
    copy_blob(vm, UENTRY_ADDR, kvms_uentry_start, kvms_uentry_end, PAGE);
    if (STUB_GVA(KCODE_ADDR, kvms_kcode_start, kvms_kcode_hw_syscall) !=
        platform_hw.syscall_entry)
        abort();
    copy_blob(vm, VDSO_ADDR, kvms_vdso_image, kvms_vdso_image_end, VDSO_MAX_SIZE);

    if (vm_create_vcpu(vm) || setup_cpu(vm))
        goto err;
    vm_clock_refresh(vm);
    /* No call answered in the guest yet: number 0xffffffff is no call, and it gets the
     * answer a kernel gives a number it does not know. */
    struct vm_stub_answer none[STUB_ANSWERS];
    for (int i = 0; i < STUB_ANSWERS; i++)
        none[i] = (struct vm_stub_answer){ UINT32_MAX, (uint64_t)-ENOSYS };
    vm_set_stub_answers(vm, none);
    vm->plat = platform_detect(vm);
    if (!vm->plat)
        goto err;
    if (vm->plat->syscall_entry != UENTRY_ADDR) {
        uint32_t idx = MSR_LSTAR;
        uint64_t val = vm->plat->syscall_entry;
        if (vm_set_msrs(vm, &idx, &val, 1)) {
            fail("KVM_SET_MSRS (LSTAR)");
            goto err;
        }
    }
    static bool said_sites;     /* once per process: the storage subcommand boots two */
    if (params->rewrite_syscalls && vm->plat->trap_is_dear) {
        if (!sites_enable(vm)) {
            if (!__atomic_exchange_n(&said_sites, true, __ATOMIC_RELAXED))
                log_info("this KVM cannot rewrite system call sites; every system call traps");
        } else if (!vm->sites->keyed && vm->verbose &&
                   !__atomic_exchange_n(&said_sites, true, __ATOMIC_RELAXED))
            log_debug("this CPU has no protection keys: reads of addresses below 4096 return "
                      "the rewritten system call sites' code instead of faulting "
                      "(--no-syscall-rewrite keeps them faulting)");
    }
    if (vm->verbose)
        log_debug("platform: %s, guest memory %llu MiB%s", vm->plat->name,
                (unsigned long long)(size / MIB),
                vm->sites ? ", syscall sites rewritten" : "");
    return 0;
err:
    vm_destroy(vm);
    return -1;
}

void vm_destroy(struct vm *vm)
{
    vm_disarm(vm);
    transport_destroy(vm);
    sites_free(vm);
    if (vm->run)
        munmap(vm->run, vm->run_size);
    if (vm->mem)
        munmap(vm->mem, vm->mem_size);
    if (vm->vcpu_fd >= 0)
        close(vm->vcpu_fd);
    if (vm->vm_fd >= 0)
        close(vm->vm_fd);
    if (vm->mem_fd >= 0)
        close(vm->mem_fd);
    if (vm->origin) {
        ws_free(&vm->ws);
        ws_free(&vm->granted);
    }
    free(vm->slot_registered);
    vm->slot_registered = NULL;
    vm->run = NULL;
    vm->mem = NULL;
    vm->vcpu_fd = vm->vm_fd = vm->mem_fd = -1;
}

void vm_clock_refresh(struct vm *vm)
{
    clock_page_refresh((struct clock_page *)(vm->mem + CLOCK_PAGE_ADDR), vm->tsc_offset,
                       vm->mono_lag_ns);
}

void vm_set_mono_lag(struct vm *vm, uint64_t lag_ns)
{
    if (vm->mono_lag_ns == lag_ns)
        return;
    vm->mono_lag_ns = lag_ns;
    vm_clock_refresh(vm);
}

uint64_t vm_mono_lag(const struct vm *vm)
{
    return vm->mono_lag_ns;
}

int vm_guest_clock_ns(struct vm *vm, int linux_clock_id, uint64_t *ns)
{
    int slot = clock_page_slot(linux_clock_id);
    if (slot < 0)
        return -1;
    if (clock_page_read((const struct clock_page *)(vm->mem + CLOCK_PAGE_ADDR), slot,
                        vm->tsc_offset, ns) == 0)
        return 0;
    /* No TSC clock: the vDSO makes system calls, which the host's clocks answer. */
    struct timespec ts;
    if (clock_gettime(linux_clock_id, &ts) < 0)
        return -1;
    *ns = (uint64_t)timespec_ns(&ts);
    if (slot == CLOCK_PAGE_MONOTONIC)
        *ns -= vm->mono_lag_ns;
    return 0;
}

void vm_set_entry(struct vm *vm, uint64_t rip, uint64_t rsp)
{
    /* Start in ring 0 at the iret stub with an iret frame into user mode: the one way
     * into ring 3 that works on every flavour. */
    uint64_t frame_at = KSTACK_ADDR + KSTACK_SIZE - 5 * 8;
    uint64_t frame[5] = { rip, SEL_UCODE, RFLAGS_FIXED | RFLAGS_IF, rsp, SEL_UDATA };
    memcpy(vm->mem + frame_at, frame, sizeof frame);
    struct kvm_regs *r = &vm->run->s.regs.regs;
    memset(r, 0, sizeof *r);
    r->rip = STUB_GVA(KCODE_ADDR, kvms_kcode_start, kvms_kcode_iret);
    r->rsp = frame_at;
    r->rflags = RFLAGS_FIXED;
    vm->run->kvm_dirty_regs |= KVM_SYNC_X86_REGS;
}

int vm_set_fsbase(struct vm *vm, uint64_t base)
{
    uint32_t idx = MSR_FS_BASE;
    return vm_set_msrs(vm, &idx, &base, 1) ? -1 : 0;
}

uint64_t vm_get_fsbase(struct vm *vm)
{
    struct {
        struct kvm_msrs hdr;
        struct kvm_msr_entry e;
    } m = { .hdr.nmsrs = 1, .e.index = MSR_FS_BASE };
    return ioctl(vm->vcpu_fd, KVM_GET_MSRS, &m) == 1 ? m.e.data : 0;
}

static uint64_t prot_to_pte(int prot)
{
    return PTE_U | ((prot & PROT_WRITE) ? PTE_W : 0) | ((prot & PROT_EXEC) ? 0 : PTE_NX);
}

static bool user_range_ok(const struct vm *vm, uint64_t gva, uint64_t len)
{
    return gva >= SYSTEM_AREA_END && gva % PAGE == 0 && len % PAGE == 0 &&
           gva <= vm->user_end && len <= vm->user_end - gva;
}

/* Could KVM hold a translation of a page in [gva, gva+len)? Only of one the host populated
 * (host_pages.h); a range too long to ask page by page is assumed to have one. Unmapping
 * the unused tail of a fresh mapping, as V8 does for every heap page it allocates, then
 * needs no flush (~21 us here). */
#define FLUSH_ASK_MAX (4 * HOST_PAGES_BATCH)
static bool any_populated(const struct vm *vm, uint64_t gva, uint64_t len)
{
    return len / PAGE > FLUSH_ASK_MAX || host_pages_any_populated(vm->mem + gva, len / PAGE);
}

/* The vCPU caches translations (under kvm_pvm, a shadow page table that ignores host
 * edits to present entries), so when rights were taken away those of the range must go.
 * Taking write access from the host mapping of the range and giving it back makes the host
 * kernel invalidate the range through KVM's MMU notifier, which drops exactly those
 * translations on every flavour (shadow pages on kvm_pvm; EPT/NPT entries and the TLB on
 * hardware), and keeps the contents. Re-registering the memory slots is the fallback: it
 * drops every translation of each 128 MiB slot and costs 0.15-0.3 ms a slot here. */
static int flush_if_revoked(struct vm *vm, uint64_t revoked_before, uint64_t gva,
                            uint64_t len, int err)
{
    if (err || vm->pt.revoked == revoked_before || !any_populated(vm, gva, len))
        return err;
    vm->flushes++;
    uint64_t start = vm->profiling ? now_ns() : 0;
    uint8_t *at = vm->mem + gva;
    if (mprotect(at, len, PROT_READ) < 0) {
        int rc = memslots_flush(vm, gva, len);
        if (start)
            vm->flush_ns += now_ns() - start;
        return rc;
    }
    /* Giving write access back merges the mapping whole again; should the host kernel find
     * no memory even for that, guest memory cannot be written and kvmserver cannot go on. */
    for (int tries = 0; mprotect(at, len, PROT_READ | PROT_WRITE) < 0; tries++) {
        if (tries == 2) {
            fprintf(stderr, "kvmserver: guest memory stays read-only: %s\n", strerror(errno));
            abort();
        }
    }
    if (start)
        vm->flush_ns += now_ns() - start;
    return 0;
}

int vm_map(struct vm *vm, uint64_t gva, uint64_t len, int prot)
{
    if (!user_range_ok(vm, gva, len))
        return -EINVAL;
    uint64_t revoked = vm->pt.revoked;
    int err = !(prot & (PROT_READ | PROT_WRITE | PROT_EXEC))
                  ? pt_protect(&vm->pt, gva, len, 0)      /* PROT_NONE: absent stays absent */
                  : memslots_ensure(vm, gva, len) ? -ENOMEM
                  : pt_map(&vm->pt, gva, gva, len, prot_to_pte(prot));
    return flush_if_revoked(vm, revoked, gva, len, err);
}

int vm_protect(struct vm *vm, uint64_t gva, uint64_t len, int prot)
{
    if (!user_range_ok(vm, gva, len))
        return -EINVAL;
    uint64_t revoked = vm->pt.revoked;
    /* Absent pages (PROT_NONE reservations) become present with the new rights. */
    int err = !(prot & (PROT_READ | PROT_WRITE | PROT_EXEC))
                  ? pt_protect(&vm->pt, gva, len, 0)
                  : memslots_ensure(vm, gva, len) ? -ENOMEM
                  : pt_map(&vm->pt, gva, gva, len, prot_to_pte(prot));
    return flush_if_revoked(vm, revoked, gva, len, err);
}

uint64_t vm_mapped_pages(const struct vm *vm, uint64_t gva, uint64_t len)
{
    return pt_count(&vm->pt, gva, len, PTE_U);
}

void vm_for_each_mapping(const struct vm *vm, vm_mapping_fn fn, void *ctx)
{
    pt_for_each_user_leaf(&vm->pt, vm->user_end, fn, ctx);
}

int vm_prot_at(const struct vm *vm, uint64_t gva)
{
    uint64_t pte = pt_lookup(&vm->pt, gva);
    if (!(pte & PTE_U))
        return PROT_NONE;
    return PROT_READ | ((pte & PTE_W) ? PROT_WRITE : 0) | ((pte & PTE_NX) ? 0 : PROT_EXEC);
}

int vm_unmap(struct vm *vm, uint64_t gva, uint64_t len)
{
    if (!user_range_ok(vm, gva, len))
        return -EINVAL;
    vm_discard(vm, gva, len);
    uint64_t revoked = vm->pt.revoked;
    return flush_if_revoked(vm, revoked, gva, len, pt_protect(&vm->pt, gva, len, 0));
}

uint8_t *vm_host_span(struct vm *vm, uint64_t gva, uint64_t len)
{
    if (gva > vm->user_end || len > vm->user_end - gva)
        return NULL;
    if (vm->origin)
        ws_add_range(&vm->ws, gva, len);
    return vm->mem + gva;
}

_Static_assert(sizeof(struct vm_stub_answer) == 16, "the stub reads 16-byte pairs");

void vm_set_stub_answers(struct vm *vm, const struct vm_stub_answer answer[STUB_ANSWERS])
{
    memcpy(vm->mem + STUB_ANSWER_ADDR, answer, STUB_ANSWERS * sizeof answer[0]);
}

void vm_zero_page(struct vm *vm, uint64_t page)
{
    if (!page_is_zero(vm->mem + page))
        memset(vm_host_span(vm, page, PAGE), 0, PAGE);
}

int vm_discard(struct vm *vm, uint64_t gva, uint64_t len)
{
    if (!user_range_ok(vm, gva, len))
        return -EINVAL;
    /* Small ranges are zeroed in place: punching them out would cost the guest a fault per
     * page when it touches them again (~40 us each under kvm_pvm), zeroing ~0.1 us. A fork
     * shares the memfd with the frozen master, so it never punches. Pages that already read
     * as zeros are left alone: in a fork, writing one would make a private copy of it for
     * the reset to put back (an allocator that maps a buffer, uses a page of it and gives
     * the rest back does that on every request). */
    if (vm->origin) {
        vm_fork_zero(vm, gva, len);
        return 0;
    }
    if (len <= DISCARD_IN_PLACE_MAX) {
        for (uint64_t page = gva; page < gva + len; page += PAGE)
            vm_zero_page(vm, page);
        return 0;
    }
    /* Punching the memfd frees the host memory; the guest then reads zeros. */
    if (fallocate(vm->mem_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)gva,
                  (off_t)len) < 0)
        memset(vm->mem + gva, 0, len);
    return 0;
}
