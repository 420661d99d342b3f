/* Guest code that is ours, copied by the host into the VM's system area.
 * Two blobs: ring-0 code (KCODE_ADDR, supervisor-only) and the user-mode syscall entry
 * (UENTRY_ADDR, user read+execute). Both are position independent: only relative jumps
 * within a blob, and absolute addresses that are layout constants. */
#include "vm/layout.h"

/* Calls whose answers change only between requests (for Linux: getpid, getppid) need no
 * trip to the host: the host publishes (call number, answer) pairs at STUB_ANSWER_ADDR.
 * Jumps to `done` with RAX set, or falls through for every other call. Clobbers only RAX
 * and the arithmetic flags, which every compiler treats as clobbered by a system call. */
.if STUB_ANSWERS != 2
.error "ANSWER_KNOWN_CALLS compares two published call numbers"
.endif
.macro ANSWER_KNOWN_CALLS done
    cmpl STUB_ANSWER_ADDR, %eax
    je 8f
    cmpl STUB_ANSWER_ADDR + 16, %eax
    jne 9f
    movq STUB_ANSWER_ADDR + 24, %rax
    jmp \done
8:  movq STUB_ANSWER_ADDR + 8, %rax
    jmp \done
9:
.endm

    .section .rodata.kvms_guest, "a"
    .code64

/* ---- ring-0 page ------------------------------------------------------------------- */
    .balign 16
    .globl kvms_kcode_start, kvms_kcode_end, kvms_kcode_iret, kvms_kcode_hw_syscall
    .globl kvms_kcode_vectors
kvms_kcode_start:
kvms_kcode_iret:
    /* The host starts the vCPU here in ring 0 with RSP at an iret frame: enter user mode. */
    iretq

    .balign 16
kvms_kcode_hw_syscall:
    /* Hardware KVM: `syscall` lands here in ring 0 on the user's stack. Calls whose answer
     * never changes are answered here; the rest are reported to the host (RAX = number,
     * arguments in registers), which puts the result in RAX and has checked that RCX is
     * canonical, so sysretq cannot fault in ring 0. */
    ANSWER_KNOWN_CALLS 1f
    outb %al, $PORT_SYSCALL
1:  sysretq

/* Exception stubs, 16 bytes apart, vector n at kvms_kcode_vectors + 16*n. Each reports the
 * vector through its own port; the host reads the frame from the ring-0 stack. If the host
 * resolves the fault it resumes here and the stub drops the error code and returns. */
    .balign 16
kvms_kcode_vectors:
    .irp vec, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .balign 16
    outb %al, $(PORT_EXCEPTION_BASE + \vec)
    .if (\vec == 8) || (\vec >= 10 && \vec <= 14) || (\vec == 17) || (\vec == 21) || (\vec == 29) || (\vec == 30)
    add $8, %rsp
    .endif
    iretq
    .endr
kvms_kcode_end:

/* ---- user-mode entry page (kvm_pvm) ------------------------------------------------- */
    .balign 16
    .globl kvms_uentry_start, kvms_uentry_end, kvms_uentry_probe, kvms_uentry_from_site
kvms_uentry_start:
    /* kvm_pvm: `syscall` jumps here and stays in ring 3; so does a rewritten site by way
     * of page 0 (vm/syscall_sites.h), with RCX and R11 set the same way. A `syscall` the
     * host has not seen yet takes the exit, whatever the call: the host rewrites it then.
     * One it left as it is (its number not a constant, the red zone in use, a writable
     * page) is in its bucket of LEFT_SITES_ADDR and goes on like any other call. */
    cmpq $0, SH_REWRITE
    je 6f
    cmpw $0x050f, -2(%rcx)
    jne 6f
    movq %r11, SH_SAVED_R11
    movl %ecx, %r11d
    andl $(LEFT_SITES_SLOTS - 2), %r11d
    cmpq %rcx, LEFT_SITES_ADDR(, %r11, 8)
    je 5f
    cmpq %rcx, LEFT_SITES_ADDR + 8(, %r11, 8)
5:  movq SH_SAVED_R11, %r11     /* mov keeps the flags */
    jne 7f
6:  ANSWER_KNOWN_CALLS 1f
    cmpq $0, SH_AWAKE
    jne 2f
    /* The exit transport: the store below targets a page with no memory behind it, so it
     * exits to the host (KVM_EXIT_MMIO) with RIP already past it. The host completes the
     * return as sysret would (RAX = result, RFLAGS from R11, RIP = RCX), so nothing here
     * touches the user's stack, whatever RSP holds. */
7:  movl %eax, SYSCALL_MMIO_ADDR + MMIO_SYSCALL
1:  btr $SITE_CALL_MARK_BIT, %r11
    jmp *%rcx

2:  /* The shared transport (a host poller thread is spinning): publish the call on the
     * shared page and wait for the answer; past the spin limit, or when the poller says
     * so, make the same call by an exit that tells the host it was published. Only RAX,
     * RCX and R11 may change, so R11 (the caller's RFLAGS) is parked on the page. */
    movq %r11, SH_SAVED_R11
    movq %rcx, SH_RET
    movq %rax, SH_NR
    movq %rdi, SH_ARGS
    movq %rsi, SH_ARGS + 8
    movq %rdx, SH_ARGS + 16
    movq %r10, SH_ARGS + 24
    movq %r8, SH_ARGS + 32
    movq %r9, SH_ARGS + 40
    movq SH_REQ_SEQ, %r11
    incq %r11
    movq %r11, SH_REQ_SEQ          /* x86 keeps stores in order: the request is complete */
    movl SH_SPIN, %eax
3:  pause
    cmpq %r11, SH_RESP_SEQ
    je 4f
    decl %eax
    jnz 3b
5:  movq SH_SAVED_R11, %r11
    movq SH_NR, %rax
    movl %eax, SYSCALL_MMIO_ADDR + MMIO_SHARED_FALLBACK
    jmp *%rcx
4:  cmpq $0, SH_EXIT_INSTEAD
    jne 5b
    movq SH_RESULT, %rax
    movq SH_SAVED_R11, %r11
    jmp 1b

    .balign 16
kvms_uentry_from_site:
    /* A rewritten syscall site's `call *%rax` ran down page 0's nop sled to here
     * (vm/syscall_sites.h). Leave RSP, RCX and R11 as `syscall` would have: the pushed
     * return address into RCX, the flags into R11 through the slot the call used, marked
     * so the host knows to check where the call came from. */
    pop %rcx
    pushfq
    pop %r11
    bts $SITE_CALL_MARK_BIT, %r11   /* "check that RCX is a site you rewrote" */
    jmp kvms_uentry_start

    .balign 16
kvms_uentry_probe:
    /* Platform self-test: entered in ring 3 with LSTAR pointing at kvms_uentry_start.
     * Whether the store above then runs in ring 0 or ring 3 tells which flavour this is. */
    syscall
    ud2
kvms_uentry_end:

    .section .note.GNU-stack, "", @progbits
