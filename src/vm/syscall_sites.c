/* Syscall-site rewriting (see syscall_sites.h). */
#include "vm/syscall_sites.h"

#include <cpuid.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "base/units.h"
#include "guest/stubs.h"
#include "vm/cpu_state.h"
#include "vm/guest_mem.h"
#include "vm/layout.h"
#include "vm/paging.h"
#include "vm/vm.h"

#define SITE_KEY 1                       /* the protection key of page 0 */
/* PKRU: deny data reads and writes through key 1; instruction fetches ignore keys. */
#define PKRU_DENY_KEY1 (0x3u << (2 * SITE_KEY))
#define XFEATURE_PKRU 9
/* How far from a site to look at code for red-zone use and branches to it: leaf
 * functions are small. */
#define NEAR_WINDOW 1024

static const uint8_t insn_syscall[2] = { 0x0f, 0x05 };
static const uint8_t insn_call_rax[2] = { 0xff, 0xd0 };

static unsigned slot_of(uint64_t site)
{
    return (unsigned)((site * 0x9e3779b97f4a7c15ull) >> 52) % SITES_CAPACITY;
}

static bool set_has(const struct syscall_sites *s, uint64_t site)
{
    for (unsigned i = slot_of(site), n = 0; n < SITES_CAPACITY; i = (i + 1) % SITES_CAPACITY, n++) {
        uint64_t v = atomic_load_explicit(&s->slot[i], memory_order_relaxed);
        if (v == site)
            return true;
        if (!v)
            return false;
    }
    return false;
}

static void set_add(struct syscall_sites *s, uint64_t site)
{
    unsigned i = slot_of(site);
    uint64_t v;
    while ((v = atomic_load_explicit(&s->slot[i], memory_order_relaxed)) && v != site)
        i = (i + 1) % SITES_CAPACITY;
    if (!v) {
        atomic_store_explicit(&s->slot[i], site, memory_order_relaxed);
        s->count++;
    }
}

/* Page 0: a nop sled, then `jmp rel32` to the stub's entry for rewritten sites, then int3.
 * A number past the sled lands on the jump's bytes or an int3; the jump is placed so that
 * its displacement begins with 0xcc (int3) and goes on with bytes that fault before they
 * change anything but flags and AH, so every such call ends in sites_fixup as -ENOSYS. */
static void build_page0(struct vm *vm)
{
    uint8_t *p = vm->mem;
    uint64_t target = STUB_GVA(UENTRY_ADDR, kvms_uentry_start, kvms_uentry_from_site);
    uint64_t jmp_at = SITES_SLED_MIN;
    while (((target - (jmp_at + 5)) & 0xff) != 0xcc)
        jmp_at++;
    memset(p, 0xcc, PAGE);
    memset(p, 0x90, jmp_at);
    int32_t rel = (int32_t)(target - (jmp_at + 5));
    p[jmp_at] = 0xe9;
    memcpy(p + jmp_at + 1, &rel, sizeof rel);
}

/* PKRU lives in the XSAVE area at the offset CPUID gives for its component. */
static bool set_pkru(struct vm *vm, uint32_t value)
{
    unsigned size, offset, ecx, edx;
    if (!__get_cpuid_count(0xd, XFEATURE_PKRU, &size, &offset, &ecx, &edx) || size < 4 ||
        offset + 4 > sizeof(((struct kvm_xsave *)0)->region))
        return false;
    struct kvm_xsave *xs = calloc(1, sizeof *xs);
    if (!xs)
        return false;
    bool ok = false;
    if (ioctl(vm->vcpu_fd, KVM_GET_XSAVE, xs) == 0) {
        memcpy((uint8_t *)xs->region + offset, &value, 4);
        uint64_t bv;
        memcpy(&bv, (uint8_t *)xs->region + 512, 8);     /* XSAVE header: XSTATE_BV */
        bv |= 1ull << XFEATURE_PKRU;
        memcpy((uint8_t *)xs->region + 512, &bv, 8);
        uint32_t back = 0;
        ok = ioctl(vm->vcpu_fd, KVM_SET_XSAVE, xs) == 0 &&
             ioctl(vm->vcpu_fd, KVM_GET_XSAVE, xs) == 0 &&
             (memcpy(&back, (uint8_t *)xs->region + offset, 4), back == value);
    }
    free(xs);
    return ok;
}

bool sites_enable(struct vm *vm)
{
    struct kvm_sregs s;
    if (ioctl(vm->vcpu_fd, KVM_GET_SREGS, &s) < 0)
        return false;
    uint64_t cr4 = s.cr4;
    s.cr4 |= CR4_PKE;
    bool keyed = ioctl(vm->vcpu_fd, KVM_SET_SREGS, &s) == 0 && set_pkru(vm, PKRU_DENY_KEY1);
    struct syscall_sites *sites = calloc(1, sizeof *sites);
    if (sites && pt_map(&vm->pt, 0, 0, PAGE, PTE_U | (keyed ? PTE_PKEY(SITE_KEY) : 0))) {
        free(sites);
        sites = NULL;
    }
    if (!sites || !keyed) {
        s.cr4 = cr4;
        ioctl(vm->vcpu_fd, KVM_SET_SREGS, &s);
    }
    if (!sites)
        return false;
    sites->keyed = keyed;
    build_page0(vm);
    vm->sites = sites;
    *(volatile uint64_t *)(vm->mem + SH_REWRITE) = 1;
    return true;
}

int sites_copy(struct vm *child, const struct vm *master)
{
    if (!master->sites)
        return 0;
    child->sites = calloc(1, sizeof *child->sites);
    if (!child->sites)
        return -1;
    for (unsigned i = 0; i < SITES_CAPACITY; i++)
        atomic_store_explicit(&child->sites->slot[i],
                              atomic_load_explicit(&master->sites->slot[i], memory_order_relaxed),
                              memory_order_relaxed);
    child->sites->count = master->sites->count;
    child->sites->keyed = master->sites->keyed;
    return 0;
}

void sites_free(struct vm *vm)
{
    free(vm->sites);
    vm->sites = NULL;
}

bool sites_known(const struct vm *vm, uint64_t ret)
{
    return vm->sites && ret >= 2 && set_has(vm->sites, ret - 2);
}

/* Reads the two bytes before `ret` as the guest could. */
static bool read_insn(struct vm *vm, uint64_t ret, uint8_t insn[2])
{
    return ret >= 2 && gm_read(vm, insn, ret - 2, 2) == 0;
}

/* Does code near `site` keep data below RSP (the red zone)? The call a rewrite puts there
 * writes [RSP-8], which a `syscall` leaves alone. Looks for what compilers emit for it:
 * negative displacements from RSP (ModRM with SIB base RSP), and a frame pointer set up
 * with `mov %rsp,%rbp` but no `sub $N,%rsp` after it (a leaf function whose locals lie
 * below RSP). Byte patterns, not decoding: a false alarm only leaves a site trapping. */
bool sites_near_red_zone(const uint8_t *code, size_t len, size_t site)
{
    bool frame_pointer = false;
    for (size_t i = 0; i + 2 < len; i++) {
        const uint8_t *b = code + i;
        if ((b[0] & 0xc7) == 0x44 && b[1] == 0x24 && b[2] >= 0x80)
            return true;                            /* disp8(%rsp), negative */
        if ((b[0] & 0xc7) == 0x84 && b[1] == 0x24 && i + 5 < len && b[5] >= 0x80)
            return true;                            /* disp32(%rsp), negative */
        if (i < site && b[0] == 0x48 && b[1] == 0x89 && b[2] == 0xe5)
            frame_pointer = true;                   /* mov %rsp,%rbp */
        if (i < site && b[0] == 0x48 && (b[1] == 0x83 || b[1] == 0x81) && b[2] == 0xec)
            frame_pointer = false;                  /* sub $N,%rsp */
    }
    return frame_pointer;
}

static bool readable(struct vm *vm, uint64_t page)
{
    return gm_span(vm, page, 1, GM_READ) != NULL;
}

/* A byte that, right before an instruction, may be a prefix changing what it writes:
 * operand size (66: `mov $imm16,%ax` keeps RAX's upper bits) or REX (41 b8: `mov
 * $imm32,%r8d`; 48 b8: a 64-bit immediate). */
static bool operand_prefix(uint8_t b)
{
    return b == 0x66 || (b & 0xf0) == 0x40;
}

/* Does a relative jump, conditional jump or call in `code` land on offset `site`? */
static bool branch_to(const uint8_t *code, size_t len, size_t site)
{
    for (size_t i = 0; i + 2 <= len; i++) {
        const uint8_t *b = code + i;
        int32_t rel;
        if (b[0] == 0xeb || (b[0] & 0xf0) == 0x70 || b[0] == 0xe3) {   /* jmp, jcc, jrcxz rel8 */
            if ((int64_t)i + 2 + (int8_t)b[1] == (int64_t)site)
                return true;
        } else if ((b[0] == 0xe9 || b[0] == 0xe8) && i + 5 <= len) {     /* jmp, call rel32 */
            memcpy(&rel, b + 1, 4);
            if ((int64_t)i + 5 + rel == (int64_t)site)
                return true;
        } else if (b[0] == 0x0f && (b[1] & 0xf0) == 0x80 && i + 6 <= len) { /* jcc rel32 */
            memcpy(&rel, b + 2, 4);
            if ((int64_t)i + 6 + rel == (int64_t)site)
                return true;
        }
    }
    return false;
}

bool sites_fixed_number(const uint8_t *code, size_t len, size_t site, uint64_t *nr)
{
    if (site > len)
        return false;
    const uint8_t *end = code + site;
    uint32_t imm;
    if (site >= 6 && end[-5] == 0xb8 && !operand_prefix(end[-6])) {           /* mov $imm32,%eax */
        memcpy(&imm, end - 4, 4);
    } else if (site >= 8 && end[-7] == 0x48 && end[-6] == 0xc7 && end[-5] == 0xc0 &&
               !operand_prefix(end[-8])) {                                   /* mov $imm32,%rax */
        memcpy(&imm, end - 4, 4);
    } else if (site >= 3 && (end[-2] == 0x31 || end[-2] == 0x33) && end[-1] == 0xc0 &&
               !operand_prefix(end[-3])) {                                   /* xor %eax,%eax */
        imm = 0;
    } else {
        return false;
    }
    if (imm >= SITES_SLED_MIN || branch_to(code, len, site))
        return false;
    *nr = imm;
    return true;
}

/* Reads the code within NEAR_WINDOW of a site, as far as it is readable, into `code`;
 * returns how many bytes, with the site at *at. */
static size_t read_near(struct vm *vm, uint64_t site, uint8_t code[2 * NEAR_WINDOW],
                        size_t *at)
{
    uint64_t page = site & ~(PAGE - 1);
    uint64_t lo = site >= NEAR_WINDOW ? site - NEAR_WINDOW : 0;
    uint64_t hi = site + NEAR_WINDOW;
    if (lo < page && !readable(vm, page - PAGE))
        lo = page;
    if (hi > page + PAGE && !readable(vm, page + PAGE))
        hi = page + PAGE;
    if (gm_read(vm, code, lo, hi - lo))
        return 0;
    *at = site - lo;
    return hi - lo;
}

/* The guest address of the LEFT_SITES_ADDR bucket (layout.h) of the site returning to
 * `ret`: its two slots, as the entry stub finds them. */
static uint64_t left_bucket(uint64_t ret)
{
    return LEFT_SITES_ADDR + (ret & (LEFT_SITES_SLOTS - 2)) * sizeof(uint64_t);
}

/* Records a site left as a `syscall` in its bucket, so its next calls take the usual
 * transports instead of an exit: the bucket's empty slot, or the first one (the site it
 * held exits once more, and takes it back). */
static void leave_site(struct vm *vm, uint64_t ret)
{
    /* As a host write it joins a fork's working set. */
    uint64_t *slot = (uint64_t *)vm_host_span(vm, left_bucket(ret), 2 * sizeof(uint64_t));
    if (slot)
        slot[slot[0] && !slot[1]] = ret;
}

/* Was the site returning to `ret` left as it is? (Its calls still exit to the host when
 * they must wait, or when the poller sleeps; there is nothing to look at again then.) */
static bool site_left(const struct vm *vm, uint64_t ret)
{
    const uint64_t *slot = (const uint64_t *)(vm->mem + left_bucket(ret));
    return slot[0] == ret || slot[1] == ret;
}

enum rewrite_outcome { REWRITTEN, LEFT, NOT_NOW };

/* Rewrites the site if it may be. LEFT: it never will be, and goes to the usual
 * transports; NOT_NOW: it was reached with another number than its constant (past it),
 * and may be rewritten when it makes its own call. */
static enum rewrite_outcome try_rewrite(struct vm *vm, uint64_t site, uint64_t nr)
{
    struct syscall_sites *s = vm->sites;
    /* Keep the table at most 3/4 full; a site split across pages stays as it is. */
    if (s->count >= SITES_CAPACITY * 3 / 4 || (site & (PAGE - 1)) == PAGE - 1)
        return LEFT;
    /* Only the program's fixed code: not pages it may write (generated code). */
    uint64_t pte = pt_lookup(&vm->pt, site);
    if (!(pte & PTE_U) || (pte & (PTE_NX | PTE_W)))
        return LEFT;
    uint8_t near[2 * NEAR_WINDOW];
    size_t at = 0, len = read_near(vm, site, near, &at);
    /* Only a site whose number is fixed below the sled's end, and was that number now:
     * any other number would be taken as an address by the call (sites_fixed_number). */
    uint64_t fixed;
    if (!len || !sites_fixed_number(near, len, at, &fixed))
        return LEFT;
    if (fixed != nr)
        return NOT_NOW;
    if (sites_near_red_zone(near, len, at)) {
        s->refused++;
        return LEFT;
    }
    uint8_t *code = vm_host_span(vm, site, 2);    /* code pages are read-only to the guest */
    if (!code)
        return LEFT;
    memcpy(code, insn_call_rax, 2);
    set_add(s, site);
    s->rewritten++;
    return REWRITTEN;
}

bool sites_is_syscall(const struct vm *vm, uint64_t ret, uint64_t r11)
{
    return !vm->sites || !(r11 & (1ull << SITE_CALL_MARK_BIT)) || sites_known(vm, ret);
}

bool sites_on_syscall(struct vm *vm, uint64_t ret, uint64_t nr, uint64_t *r11)
{
    if (!sites_is_syscall(vm, ret, *r11))
        return false;
    uint64_t mark = 1ull << SITE_CALL_MARK_BIT;
    bool from_site = *r11 & mark;
    *r11 &= ~mark;
    /* A marked call came through a rewritten site: nothing to look at. */
    uint8_t insn[2];
    if (vm->sites && !from_site && !site_left(vm, ret) && read_insn(vm, ret, insn) &&
        !memcmp(insn, insn_syscall, 2) && try_rewrite(vm, ret - 2, nr) == LEFT)
        leave_site(vm, ret);
    return true;
}

/* Resumes at the stub as if `syscall` had just run with the given return address. */
static void enter_stub(struct vm *vm, uint64_t frame_gva, struct kvm_regs *regs,
                       uint64_t ret, uint64_t user_rsp)
{
    /* RIP, CS, RFLAGS, RSP, SS; as a host write it joins a fork's working set. */
    uint64_t *frame = (uint64_t *)vm_host_span(vm, frame_gva, 5 * sizeof *frame);
    regs->rcx = ret;
    regs->r11 = frame[2];
    frame[0] = UENTRY_ADDR;
    frame[3] = user_rsp;
    vm->run->kvm_dirty_regs |= KVM_SYNC_X86_REGS;
}

bool sites_fixup(struct vm *vm, unsigned vector, uint64_t error, uint64_t cr2,
                 uint64_t frame_gva, struct kvm_regs *regs)
{
    if (!vm->sites || frame_gva < KSTACK_ADDR || frame_gva > KSTACK_ADDR + KSTACK_SIZE - 40)
        return false;
    const uint64_t *frame = (const uint64_t *)(vm->mem + frame_gva);
    uint64_t rip = frame[0], rsp = frame[3];
    if ((frame[1] & 3) != 3)
        return false;
    /* The call itself faulted (no room for the return address, a non-canonical number):
     * nothing was pushed. */
    uint8_t insn[2];
    if (sites_known(vm, rip + 2) && read_insn(vm, rip + 2, insn) &&
        !memcmp(insn, insn_call_rax, 2)) {
        enter_stub(vm, frame_gva, regs, rip + 2, rsp);
        return true;
    }
    /* The call went through but found no sled: past it in page 0, or no code at the
     * number taken as an address. The return address is on the stack. */
    bool fetch_fault = vector == 14 && (error & 16) && cr2 == rip;
    uint64_t ret;
    if ((rip <= PAGE || fetch_fault) && gm_read_u64(vm, rsp, &ret) == 0 &&
        sites_known(vm, ret)) {
        enter_stub(vm, frame_gva, regs, ret, rsp + 8);
        return true;
    }
    return false;
}
