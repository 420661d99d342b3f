/* Guest memory is one host mapping, handed to KVM in 128 MiB memory slots that are
 * registered only once something in them is mapped. Under shadow paging KVM's per-slot
 * bookkeeping costs time and memory in proportion to slot size (a single 120 GiB slot
 * costs ~0.4 s to register and ~75 ms to re-register), so small slots, registered on
 * demand, keep VM creation and forks cheap, and the rare whole-slot flush too (rights
 * taken away are normally dropped per range, see flush_if_revoked in vm.c). */
#ifndef KVMS_MEMSLOTS_H
#define KVMS_MEMSLOTS_H
#include <stdint.h>

#define MEMSLOT_SHIFT 27
#define MEMSLOT_SIZE (1ull << MEMSLOT_SHIFT)

struct vm;

/* Registers every slot overlapping [gpa, gpa+len) that is not registered yet. */
int memslots_ensure(struct vm *vm, uint64_t gpa, uint64_t len);
/* Drops every cached translation of [gpa, gpa+len) by re-registering its slots. */
int memslots_flush(struct vm *vm, uint64_t gpa, uint64_t len);
/* Registers in `child` the slots `parent` has. */
int memslots_copy(struct vm *child, const struct vm *parent);

#endif
