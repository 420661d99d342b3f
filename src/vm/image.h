/* The engine's part of a snapshot file: a frozen master's vCPU state, page-table pool,
 * memory slots, syscall sites, the CPU it depends on, and its memory (only the pages that
 * are not zero). Loading gives a master that never runs: its memory is mapped
 * copy-on-write from the file, and vm_fork maps each request VM the same way. */
#ifndef KVMS_IMAGE_H
#define KVMS_IMAGE_H
#include <stddef.h>
#include <stdint.h>

#include "vm/image_map.h"
#include "vm/snapfile.h"

struct vm;
struct vm_snapshot;


/* Writes the SNAP_CPU, SNAP_VCPU, SNAP_ENGINE, SNAP_MEMRUNS and SNAP_MEMDATA sections of
 * the frozen master. 0 or -1 (with a message). */
int vm_image_save(struct snap_writer *w, const struct vm_snapshot *snap);

/* Makes `master` and `snap` from a checked file (snap_parse) that stays mapped and whose
 * fd stays open while they live. Refuses, with the difference in err, a snapshot from
 * another CPU feature set (CPUID, XSAVE size) or another KVM flavour. 0 or -1. */
int vm_image_load(const struct snap_reader *r, int fd, struct vm *master,
                  struct vm_image *image, struct vm_snapshot *snap, char *err, size_t errlen);

/* Decodes and checks the engine sections without KVM (the fuzzer's entry): 0 or -1. */
int vm_image_check(const struct snap_reader *r, char *err, size_t errlen);
/* crc (CRC32C) continued over the guest code every image holds: the entry stubs and the
 * vDSO. A snapshot's version carries it, so an image made by another build is refused. */
uint32_t vm_image_code_crc(uint32_t crc);

#endif
