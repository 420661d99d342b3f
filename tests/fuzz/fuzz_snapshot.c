/* libFuzzer target for the snapshot loader's checks (tests/fuzz/run.sh): the container
 * (snapfile.c), the engine's sections (image.c) and the process and fd sections
 * (linux/snapshot_load.c). Each input is tried as it is, and again with its header's file size
 * and every checksum made right, so that mutations reach the decoders behind the checksums.
 * The loader's checks must reject anything malformed without a crash, a leak or undefined
 * behaviour; what they accept is only made into VMs and host objects by code this target
 * does not run (the stubs below abort if it ever does). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "linux/snapshot.h"
#include "vm/image.h"
#include "vm/snapfile.h"

static void check(const uint8_t *data, size_t size)
{
    struct snap_reader r;
    char err[512];
    if (snap_parse(&r, data, size, NULL, err, sizeof err) < 0)
        return;
    vm_image_check(&r, err, sizeof err);
    lx_snapshot_check(&r, err, sizeof err);
}

/* The same bytes with a consistent header: file size and checksums recomputed. */
static void fix_up(uint8_t *data, size_t size)
{
    struct snap_header h;
    memcpy(&h, data, sizeof h);
    if (h.nsections > SNAP_MAX_SECTIONS)
        return;
    h.file_size = size;
    struct snap_section *sec = (struct snap_section *)(data + sizeof h);
    for (uint32_t i = 0; i < h.nsections; i++) {
        struct snap_section s;
        memcpy(&s, &sec[i], sizeof s);
        if (s.offset <= size && s.length <= size - s.offset) {
            s.crc = snap_crc32c(0, data + s.offset, s.length);
            memcpy(&sec[i], &s, sizeof s);
        }
    }
    h.header_crc = 0;
    memcpy(data, &h, sizeof h);
    h.header_crc = snap_crc32c(0, data, SNAP_HEADER_SIZE);
    memcpy(data, &h, sizeof h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Page aligned, as the file's mapping is. */
    uint8_t *copy = aligned_alloc(4096, (size + 4095) & ~(size_t)4095);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    check(copy, size);
    if (size >= SNAP_HEADER_SIZE) {
        fix_up(copy, size);
        check(copy, size);
    }
    free(copy);
    return 0;
}

/* ---- what the checked paths never call ---- */
#define NEVER(ret, name, ...) ret name(__VA_ARGS__) { abort(); }
struct vm;
struct vm_params;
struct fs_policy;
struct fsp_result;
struct np_addr;
struct lx_proc;
struct lx_epoll;
struct clock_calibration;
NEVER(int, kvm_device, void)
NEVER(const struct kvm_cpuid2 *, kvm_supported_cpuid, void)
NEVER(const struct clock_calibration *, clock_get_calibration, void)
NEVER(void, clock_adopt, uint64_t hz)
NEVER(int, vm_create, struct vm *vm, const struct vm_params *params)
NEVER(void, vm_destroy, struct vm *vm)
NEVER(int, vm_alloc_slots, struct vm *vm)
NEVER(void, transport_init, struct vm *vm)
NEVER(int, fsp_open, const struct fs_policy *pol, const char *base, const char *path, int flags,
      unsigned mode, int need, struct fsp_result *out)
NEVER(int, np_addr_parse, struct np_addr *out, const void *sa, size_t len)
NEVER(void, np_addr_format, const struct np_addr *a, char *buf, size_t cap)
struct np_rules;
NEVER(_Bool, np_allowed, const struct np_rules *rules, int dir, const struct np_addr *a)
NEVER(int, lx_proc_freeze, struct lx_proc *p)
NEVER(void, lx_proc_shift_deadlines, struct lx_proc *p, int64_t by_ns)
NEVER(struct lx_epoll *, lx_epoll_get, struct lx_epoll *ep)
NEVER(void, lx_epoll_put, struct lx_epoll *ep)
struct paging;
NEVER(_Bool, pt_valid, const struct paging *pt, uint64_t pool_start)
/* The guest code vm_image_code_crc digests (guest/stubs.S, the vDSO): never read here. */
const unsigned char kvms_kcode_start[1], kvms_kcode_end[1], kvms_uentry_start[1],
    kvms_uentry_end[1], kvms_vdso_image[1], kvms_vdso_image_end[1];
