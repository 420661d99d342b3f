/* KVM's own counters of a vCPU (its binary statistics, KVM_GET_STATS_FD). They count what
 * user space never sees: exits handled inside the kernel (shadow page faults, emulated
 * instructions, TLB flushes) besides the ones KVM_RUN returns for. Reading them costs a
 * pread of the values, and changes nothing in how the guest runs (tracepoints do: on kvm_pvm, enabling
 * KVM's tracepoints slows the guest several times over). */
#ifndef KVMS_KVM_STATS_H
#define KVMS_KVM_STATS_H
#include <stddef.h>
#include <stdint.h>

struct vm;

enum vm_kvm_counter {
    KVM_COUNTER_EXITS,          /* every exit from the guest, in-kernel ones included */
    KVM_COUNTER_PF_TAKEN,       /* page faults KVM handled (shadow paging: most of them) */
    KVM_COUNTER_PF_FIXED,       /* of which a translation was made */
    KVM_COUNTER_INSN_EMULATION, /* instructions KVM emulated (MMIO stores, cpuid, ring 0) */
    KVM_COUNTER_TLB_FLUSH,      /* guest TLB flushes KVM made */
    KVM_COUNTERS
};

struct vm_kvm_stats {
    int fd;                     /* -1: not open */
    uint64_t data_offset;       /* the values, read in one pread: */
    uint64_t *data;
    size_t words;
    size_t index[KVM_COUNTERS]; /* each counter's word in data; SIZE_MAX: this KVM lacks it */
};

/* Opens the vCPU's statistics: 0, or -1 with errno (then every read gives zeros). */
int vm_kvm_stats_open(struct vm_kvm_stats *s, const struct vm *vm);
void vm_kvm_stats_close(struct vm_kvm_stats *s);
/* The counters now (cumulative since the vCPU was created). */
void vm_kvm_stats_read(const struct vm_kvm_stats *s, uint64_t out[KVM_COUNTERS]);

#endif
