/* /dev/kvm itself: opened once per process, with checks that turn every failure into a
 * message a user can act on. */
#ifndef KVMS_KVM_H
#define KVMS_KVM_H
#include <linux/kvm.h>

/* The /dev/kvm fd, or -1 after printing why it cannot be used. */
int kvm_device(void);
/* What this KVM can give a guest (KVM_GET_SUPPORTED_CPUID), cached; NULL on failure. */
const struct kvm_cpuid2 *kvm_supported_cpuid(void);
int kvm_vcpu_mmap_size(void);
#endif
