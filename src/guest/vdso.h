/* The guest vDSO image, built from src/guest/vdso and embedded into the host program. The
 * engine copies it to VDSO_ADDR and passes AT_SYSINFO_EHDR = VDSO_ADDR; it reads the clock page
 * at CLOCK_PAGE_ADDR, which src/vm/clock.c publishes. */
#ifndef KVMS_GUEST_VDSO_H
#define KVMS_GUEST_VDSO_H
#include <stddef.h>

extern const unsigned char kvms_vdso_image[];
extern const unsigned char kvms_vdso_image_end[];

/* At most VDSO_MAX_SIZE: the build fails otherwise. */
static inline size_t kvms_vdso_size(void)
{
    return (size_t)(kvms_vdso_image_end - kvms_vdso_image);
}

#endif
