/* Syscall-site rewriting (kvm_pvm). There, every `syscall` instruction traps to the
 * hypervisor before our user-mode entry stub even runs: ~6 us on this machine, before any
 * transport. After a site has been seen once, the host rewrites its two bytes `0f 05`
 * (syscall) into `ff d0` (call *%rax). RAX holds the system call number, so the call lands
 * at that address in page 0, a nop sled the program can execute but not write, which ends
 * in a handler that sets RCX and R11 as `syscall` would and jumps to the entry stub: the
 * same call, without the trap. Where the CPU has protection keys, one denies the program
 * data access to page 0; without them page 0 reads as the sled (the host's accessors still
 * refuse it, so a system call given a pointer into it gets EFAULT). A site the host leaves
 * as it is goes into a table the entry stub looks at (LEFT_SITES_ADDR in layout.h), so
 * only its first call exits for the host to look at it.
 *
 * Any other number would be taken as an address: one naming executable memory (the entry
 * stub at 0x4000, the vDSO, the program's own code) would run whatever is there instead
 * of answering ENOSYS. So only a site whose number is a constant below the sled's end,
 * set by the instruction right before it (`mov $N,%eax`, `mov $N,%rax`, `xor %eax,%eax`),
 * is rewritten, and only when the call that reached it had that number; a site whose
 * number comes from a register (glibc's and musl's syscall(), Go's syscall.Syscall) keeps
 * trapping. What remains: a jump straight to the `syscall`, past the constant, with
 * another number in RAX (a compiler merging the tails of two wrappers could make one).
 * The host refuses sites that a relative jump or call within 1 KiB lands on; a jump from
 * farther away or through a register would still make the call to RAX. A number naming
 * no executable memory then ends in sites_fixup as -ENOSYS; one naming code runs it. And
 * the check reads bytes, not decoded instructions: bytes that end a longer instruction
 * the way `mov $N,%eax` looks would be misread.
 *
 * Differences from a real `syscall`, all inside the guest's own user mode: the call pushes
 * its return address at [RSP-8], in the red zone, so sites whose code looks like it keeps
 * data there are left alone; the code bytes read back changed; and reads of addresses
 * below 4096 return the sled instead of faulting (writes still fault): without protection
 * keys from the start, with them once page 0 has been executed, as kvm_pvm's shadow paging
 * then no longer applies the key. The host
 * remembers which sites it rewrote, so a program's own `call *%rax` to a small address
 * still crashes as on Linux (unless the address is 39 or 110, which the stub answers as
 * getpid and getppid), and fixes up the calls that fault on the way (a bad stack, a jump
 * past the constant). Sites in writable pages (code a program generates) are left as they
 * are. */
#ifndef KVMS_SYSCALL_SITES_H
#define KVMS_SYSCALL_SITES_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/kvm.h>

struct vm;

#define SITES_CAPACITY 4096      /* sites a VM rewrites at most; past that they keep trapping */
/* Numbers below this run down page 0's nop sled into the stub. Linux 6.18's largest
 * x86-64 number is 469 (464-469 answer ENOSYS here), and 512-547 are x32's. */
#define SITES_SLED_MIN 0x1d0

struct syscall_sites {
    /* Open addressing; 0 = empty. Atomic: a poller may look while the vCPU thread adds. */
    _Atomic uint64_t slot[SITES_CAPACITY];
    unsigned count;
    uint64_t rewritten, refused;     /* counters; refused: code near uses the red zone */
    bool keyed;                      /* a protection key denies data access to page 0 */
};

/* Sets the VM up for rewriting (page 0; where the CPU has protection keys, CR4.PKE, PKRU
 * and page 0's key). Returns false, and leaves the VM as it was, when it cannot. */
bool sites_enable(struct vm *vm);
/* A fork starts with the master's sites (its memory has them rewritten). */
int sites_copy(struct vm *child, const struct vm *master);
void sites_free(struct vm *vm);

/* Is the `call *%rax` ending at `ret` one the host made? */
bool sites_known(const struct vm *vm, uint64_t ret);

/* Is a call that reached the stub with RCX = ret and R11 = r11 a system call? Not when it
 * came down page 0's sled (R11 carries SITE_CALL_MARK_BIT) from anything but a rewritten
 * site: that is the program's own call to a small address. Safe off the vCPU thread while
 * the guest runs: the set only grows on the vCPU thread, inside an exit. */
bool sites_is_syscall(const struct vm *vm, uint64_t ret, uint64_t r11);

/* At a syscall exit (the vCPU thread), with RCX = ret and RAX = nr: false if it is no
 * system call (see sites_is_syscall). Otherwise clears the mark from *r11 and, for a
 * `syscall` instruction seen for the first time, rewrites it if it may be. */
bool sites_on_syscall(struct vm *vm, uint64_t ret, uint64_t nr, uint64_t *r11);

/* Whether the `syscall` at offset `site` of `code` (len bytes around it, as far as they
 * are readable) always makes the same call below SITES_SLED_MIN: the instruction right
 * before it sets the number, no prefix byte before that could change what it writes, and
 * no relative branch in `code` lands on the site. If so, *nr is the number. Byte patterns,
 * not decoding: a wrong "no" only leaves a site trapping (a wrong "yes": see above).
 * Exposed for unit tests. */
bool sites_fixed_number(const uint8_t *code, size_t len, size_t site, uint64_t *nr);

/* Whether `code` (len bytes, the site at offset `site`) looks like it keeps data below RSP,
 * which the call a rewrite makes would overwrite. Exposed for unit tests. */
bool sites_near_red_zone(const uint8_t *code, size_t len, size_t site);

/* A user-mode exception: when it was raised on the way from a rewritten site to the stub,
 * changes `regs` and the ring-0 frame at `frame_gva` (RIP, CS, RFLAGS, RSP, SS) so the
 * guest resumes in the stub as if `syscall` had run at the site. Returns whether it did. */
bool sites_fixup(struct vm *vm, unsigned vector, uint64_t error, uint64_t cr2,
                 uint64_t frame_gva, struct kvm_regs *regs);

#endif
