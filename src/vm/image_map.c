/* Mapping a loaded image's memory (see image_map.h). */
#include "vm/image_map.h"

#include <sys/mman.h>

#include "base/units.h"

void *vm_image_map(const struct vm_image *image, uint64_t mem_size)
{
    uint8_t *mem = mmap(NULL, mem_size, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mem == MAP_FAILED)
        return NULL;
    uint64_t off = image->data_offset;
    for (size_t i = 0; i < image->nruns; i++) {
        uint64_t len = image->runs[i].pages * PAGE;
        if (mmap(mem + image->runs[i].gpa, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED,
                 image->fd, (off_t)off) == MAP_FAILED) {
            munmap(mem, mem_size);
            return NULL;
        }
        off += len;
    }
    return mem;
}
