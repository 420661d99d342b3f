/* KVM's binary statistics of a vCPU (see kvm_stats.h). */
#include "vm/kvm_stats.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/kvm.h>

#include "vm/vm.h"

static const char *const names[KVM_COUNTERS] = {
    [KVM_COUNTER_EXITS] = "exits",
    [KVM_COUNTER_PF_TAKEN] = "pf_taken",
    [KVM_COUNTER_PF_FIXED] = "pf_fixed",
    [KVM_COUNTER_INSN_EMULATION] = "insn_emulation",
    [KVM_COUNTER_TLB_FLUSH] = "tlb_flush",
};

/* The descriptors are read once: where each named single-value counter lives. */
static int find_counters(struct vm_kvm_stats *s)
{
    struct kvm_stats_header h;
    if (pread(s->fd, &h, sizeof h, 0) != (ssize_t)sizeof h)
        return -1;
    size_t size = sizeof(struct kvm_stats_desc) + h.name_size;
    if (h.name_size == 0 || h.name_size > 4096 || h.num_desc > 4096)
        return -1;
    char *descs = malloc(size * h.num_desc);
    if (!descs)
        return -1;
    ssize_t want = (ssize_t)(size * h.num_desc);
    int rc = pread(s->fd, descs, (size_t)want, h.desc_offset) == want ? 0 : -1;
    for (uint32_t i = 0; rc == 0 && i < h.num_desc; i++) {
        const struct kvm_stats_desc *d = (const void *)(descs + i * size);
        size_t end = d->offset / 8 + d->size;
        if (end > s->words)
            s->words = end;
        if (d->size != 1 || d->offset % 8 ||
            (d->flags & KVM_STATS_TYPE_MASK) != KVM_STATS_TYPE_CUMULATIVE)
            continue;
        for (int c = 0; c < KVM_COUNTERS; c++)
            if (strncmp(d->name, names[c], h.name_size) == 0)
                s->index[c] = d->offset / 8;
    }
    free(descs);
    s->data_offset = h.data_offset;
    s->data = rc == 0 && s->words <= 65536 ? calloc(s->words, 8) : NULL;
    return s->data ? 0 : -1;
}

int vm_kvm_stats_open(struct vm_kvm_stats *s, const struct vm *vm)
{
    memset(s, 0, sizeof *s);
    for (int c = 0; c < KVM_COUNTERS; c++)
        s->index[c] = SIZE_MAX;
    s->fd = ioctl(vm->vcpu_fd, KVM_GET_STATS_FD, NULL);
    if (s->fd < 0)
        return -1;
    if (find_counters(s) < 0) {
        int err = errno;
        vm_kvm_stats_close(s);
        errno = err;
        return -1;
    }
    return 0;
}

void vm_kvm_stats_close(struct vm_kvm_stats *s)
{
    if (s->fd >= 0)
        close(s->fd);
    free(s->data);
    s->data = NULL;
    s->fd = -1;
}

void vm_kvm_stats_read(const struct vm_kvm_stats *s, uint64_t out[KVM_COUNTERS])
{
    ssize_t size = (ssize_t)(s->words * 8);
    bool ok = s->data && pread(s->fd, s->data, (size_t)size, (off_t)s->data_offset) == size;
    for (int c = 0; c < KVM_COUNTERS; c++)
        out[c] = ok && s->index[c] < s->words ? s->data[s->index[c]] : 0;
}
