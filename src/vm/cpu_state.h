/* Architectural constants for the guest CPU state the host sets up. */
#ifndef KVMS_CPU_STATE_H
#define KVMS_CPU_STATE_H

#define MSR_IA32_TSC       0x10
#define MSR_EFER           0xc0000080
#define MSR_STAR           0xc0000081
#define MSR_LSTAR          0xc0000082
#define MSR_CSTAR          0xc0000083
#define MSR_SYSCALL_MASK   0xc0000084
#define MSR_FS_BASE        0xc0000100
#define MSR_GS_BASE        0xc0000101
#define MSR_KERNEL_GS_BASE 0xc0000102

#define CR0_PE (1u << 0)
#define CR0_MP (1u << 1)
#define CR0_ET (1u << 4)
#define CR0_NE (1u << 5)
#define CR0_WP (1u << 16)
#define CR0_AM (1u << 18)
#define CR0_PG (1u << 31)
#define CR4_PAE        (1u << 5)
#define CR4_OSFXSR     (1u << 9)
#define CR4_OSXMMEXCPT (1u << 10)
#define CR4_FSGSBASE   (1u << 16)
#define CR4_OSXSAVE    (1u << 18)
#define CR4_PKE        (1u << 22)
#define EFER_SCE (1u << 0)
#define EFER_LME (1u << 8)
#define EFER_LMA (1u << 10)
#define EFER_NXE (1u << 11)

#define RFLAGS_FIXED 0x2ull
#define RFLAGS_IF    0x200ull
/* Flags user code may set itself with popf: what a syscall return may restore. */
#define RFLAGS_USER_MASK 0x00240dd5ull   /* CF PF AF ZF SF TF DF OF AC ID */
/* Cleared on syscall entry, as Linux does (TF, DF, NT, AC). */
#define SYSCALL_FLAG_MASK 0x44500ull

#endif
