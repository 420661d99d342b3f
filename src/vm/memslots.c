/* On-demand memory slots (see memslots.h). */
#include "vm/memslots.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/ioctl.h>

#include "vm/vm.h"

static int set_slot(struct vm *vm, uint32_t index, bool present)
{
    uint64_t gpa = (uint64_t)index << MEMSLOT_SHIFT;
    uint64_t size = vm->mem_size - gpa < MEMSLOT_SIZE ? vm->mem_size - gpa : MEMSLOT_SIZE;
    struct kvm_userspace_memory_region r = {
        .slot = index, .guest_phys_addr = gpa, .memory_size = present ? size : 0,
        .userspace_addr = (uintptr_t)(vm->mem + gpa) };
    return ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0 ? -errno : 0;
}

/* Returns 1 when there is nothing to do: memory with no KVM VM behind it (nslots == 0, as
 * in the unit tests, which exercise the page tables alone). */
static int slots_of(const struct vm *vm, uint64_t gpa, uint64_t len, uint32_t *first,
                    uint32_t *last)
{
    if (!vm->nslots)
        return 1;
    if (!len || gpa >= vm->mem_size || len > vm->mem_size - gpa)
        return -EINVAL;
    *first = (uint32_t)(gpa >> MEMSLOT_SHIFT);
    *last = (uint32_t)((gpa + len - 1) >> MEMSLOT_SHIFT);
    return 0;
}

int memslots_ensure(struct vm *vm, uint64_t gpa, uint64_t len)
{
    uint32_t first, last;
    int err = slots_of(vm, gpa, len, &first, &last);
    if (err > 0)
        return 0;
    for (uint32_t i = first; !err && i <= last; i++) {
        if (vm->slot_registered[i])
            continue;
        err = set_slot(vm, i, true);
        vm->slot_registered[i] = !err;
    }
    return err;
}

int memslots_flush(struct vm *vm, uint64_t gpa, uint64_t len)
{
    uint32_t first, last;
    int err = slots_of(vm, gpa, len, &first, &last);
    if (err > 0)
        return 0;
    for (uint32_t i = first; !err && i <= last; i++) {
        if (!vm->slot_registered[i])
            continue;
        err = set_slot(vm, i, false);
        if (!err)
            err = set_slot(vm, i, true);
        vm->slot_registered[i] = !err;
    }
    return err;
}

int memslots_copy(struct vm *child, const struct vm *parent)
{
    for (uint32_t i = 0; i < parent->nslots; i++) {
        if (!parent->slot_registered[i])
            continue;
        int err = set_slot(child, i, true);
        if (err)
            return err;
        child->slot_registered[i] = true;
    }
    return 0;
}
