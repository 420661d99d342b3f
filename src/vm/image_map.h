/* A snapshot file's memory, mapped copy-on-write: for the loaded master and for each of its
 * forks (fork.c), apart from the rest of the image code (image.h), which needs fork.h. */
#ifndef KVMS_IMAGE_MAP_H
#define KVMS_IMAGE_MAP_H
#include <stddef.h>
#include <stdint.h>

#include "vm/snapfile.h"

/* A loaded master's memory: runs of pages in the file (the rest reads zero). */
struct vm_image {
    int fd;
    const struct snap_run *runs;
    size_t nruns;
    uint64_t data_offset;
};

/* Maps an image's memory copy-on-write (mem_size bytes), or returns NULL. */
void *vm_image_map(const struct vm_image *image, uint64_t mem_size);

#endif
