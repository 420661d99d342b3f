/* Guest-physical (= guest-virtual) layout of the system area every VM has.
 * Shared by C and by the guest stubs (assembler), so only #defines here. */
#ifndef KVMS_LAYOUT_H
#define KVMS_LAYOUT_H

#define GUEST_PAGE_SIZE     0x1000

/* 0x0000: unmapped, so NULL dereferences fault; with syscall-site rewriting (kvm_pvm) it
 * holds a nop sled the program may execute but not write, nor read where the CPU has
 * protection keys (syscall_sites.h). */
#define GDT_ADDR            0x1000  /* GDT, then the TSS at +0x80: supervisor RW */
#define TSS_ADDR            0x1080
#define IDT_ADDR            0x2000  /* 256 gates: supervisor read-only */
#define KCODE_ADDR          0x3000  /* ring-0 code: boot iretq, exception stubs, hw syscall entry */
#define UENTRY_ADDR         0x4000  /* user-executable read-only syscall entry (kvm_pvm) */
#define CLOCK_PAGE_ADDR     0x5000  /* host-published clock data: user read-only */
/* In the clock page's second half: the calls the entry stubs answer without leaving the
 * guest (guest/stubs.S), published by the host (vm_set_stub_answers) as STUB_ANSWERS pairs
 * of 64-bit words: the call number (its low 32 bits are compared with EAX), the answer.
 * Part of every fork's working set with the rest of the page. */
#define STUB_ANSWER_ADDR    (CLOCK_PAGE_ADDR + 0x800)
#define STUB_ANSWERS        2
#define VDSO_ADDR           0x6000  /* vDSO image, up to VDSO_MAX_SIZE: user read-only, executable */
#define VDSO_MAX_SIZE       0x2000
#define KSTACK_ADDR         0x8000  /* ring-0 stack (TSS.RSP0): supervisor RW */
#define KSTACK_SIZE         0x2000
#define SYSCALL_MMIO_ADDR   0xa000  /* virtual page mapped to a guest-physical address with no
                                     * memslot: a store there is a KVM_EXIT_MMIO (kvm_pvm syscalls) */
#define MMIO_SYSCALL        0x0     /* offsets in that page: a plain system call */
#define MMIO_SHARED_FALLBACK 0x8    /* a shared-transport request that falls back to an exit */
#define SHARED_PAGE_ADDR    0xb000  /* the shared-memory syscall transport's page: user RW */
/* The syscall sites the host left as they are (kvm_pvm rewriting, syscall_sites.h), so
 * that the entry stub sends their calls through the usual transports instead of exiting
 * for the host to look at them again: LEFT_SITES_SLOTS return addresses (site + 2), two
 * per bucket, a site's bucket being bits 1-8 of its return address. User read-only. */
#define LEFT_SITES_ADDR     0xc000
#define LEFT_SITES_SLOTS    512
#define SYSTEM_AREA_END     0x10000

/* Fields of the shared page (see vm/transport.h). The guest writes the request line; the
 * host writes the control words and the response line (its own cache line). The host
 * trusts none of it: it copies the request once, and keeps its own state privately. */
#define SH_ENABLED      (SHARED_PAGE_ADDR + 0x00)  /* host: 1 = a poller serves this VM */
#define SH_AWAKE        (SHARED_PAGE_ADDR + 0x08)  /* host: 1 = the poller is spinning now */
#define SH_SPIN         (SHARED_PAGE_ADDR + 0x10)  /* host: wait iterations before falling back */
#define SH_REWRITE      (SHARED_PAGE_ADDR + 0x18)  /* host: 1 = the host rewrites syscall sites */
#define SH_REQ_SEQ      (SHARED_PAGE_ADDR + 0x40)  /* guest: bumped to publish a request */
#define SH_NR           (SHARED_PAGE_ADDR + 0x48)
#define SH_ARGS         (SHARED_PAGE_ADDR + 0x50)  /* six words */
#define SH_SAVED_R11    (SHARED_PAGE_ADDR + 0x80)  /* guest: the stub's scratch */
#define SH_RET          (SHARED_PAGE_ADDR + 0x88)  /* guest: the call's return address */
#define SH_RESP_SEQ     (SHARED_PAGE_ADDR + 0xc0)  /* host: = REQ_SEQ when answered */
#define SH_RESULT       (SHARED_PAGE_ADDR + 0xc8)
#define SH_EXIT_INSTEAD (SHARED_PAGE_ADDR + 0xd0)  /* host: 1 = make the call by a VM exit */

/* Set in R11 by the entry for rewritten sites (syscall_sites.h): the host then checks that
 * RCX returns to a site it rewrote. R11 holds RFLAGS, whose bit 63 is always 0. */
#define SITE_CALL_MARK_BIT  63

/* I/O ports used by ring-0 stubs. User mode runs with IOPL 0, so it cannot forge these. */
#define PORT_SYSCALL        0x10    /* hardware flavour: syscall entry */
#define PORT_PROBE          0x11    /* platform self-test */
#define PORT_EXCEPTION_BASE 0x80    /* + vector (0..31) */

/* Segment selectors: Linux's layout, so STAR matches the host's. */
#define SEL_KCODE   0x10
#define SEL_KDATA   0x18
#define SEL_UCODE32 0x23
#define SEL_UDATA   0x2b
#define SEL_UCODE   0x33
#define SEL_TSS     0x40

#endif
