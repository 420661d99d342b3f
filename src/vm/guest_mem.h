/* The one door to guest memory. Every guest pointer the host uses passes through here:
 * bounds are checked without overflow, and the guest's own page tables must grant user
 * access (and write access for writes), so the host never touches memory that guest user
 * code could not touch itself. Functions return 0 or a negative errno (-EFAULT). */
#ifndef KVMS_GUEST_MEM_H
#define KVMS_GUEST_MEM_H
#include <stddef.h>
#include <stdint.h>

struct vm;

enum gm_access { GM_READ = 1, GM_WRITE = 2 };

/* A host pointer to [gva, gva+len) if every page of it is user-accessible with `access`;
 * NULL otherwise. len 0 is valid (returns a non-NULL pointer if gva is in range). The range is
 * contiguous on the host because guest memory is one host mapping. GM_WRITE spans are
 * recorded as host-written pages (so a reset restores them). */
void *gm_span(struct vm *vm, uint64_t gva, size_t len, int access);

int gm_read(struct vm *vm, void *dst, uint64_t gva, size_t len);
int gm_write(struct vm *vm, uint64_t gva, const void *src, size_t len);

/* Copies a NUL-terminated string of at most cap-1 bytes; returns its length,
 * -EFAULT, or -ENAMETOOLONG when no NUL is found within cap bytes. */
long gm_read_str(struct vm *vm, char *dst, uint64_t gva, size_t cap);

/* Convenience: typed 64-bit load/store. */
int gm_read_u64(struct vm *vm, uint64_t gva, uint64_t *out);
int gm_write_u64(struct vm *vm, uint64_t gva, uint64_t v);

#endif
