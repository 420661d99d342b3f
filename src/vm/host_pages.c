/* Populated pages of a host mapping (see host_pages.h). */
#include "vm/host_pages.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <unistd.h>

#include "base/units.h"

#define PAGEMAP_PRESENT (1ull << 63)
#define PAGEMAP_SWAPPED (1ull << 62)

static int pagemap_fd = -1;
static pthread_once_t pagemap_once = PTHREAD_ONCE_INIT;

static void open_pagemap(void)
{
    pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
}

int host_pages_populated(const void *at, size_t n, bool populated[])
{
    pthread_once(&pagemap_once, open_pagemap);
    uint64_t entry[HOST_PAGES_BATCH];
    if (pagemap_fd < 0 || n > HOST_PAGES_BATCH)
        return -1;
    size_t bytes = n * sizeof entry[0];
    off_t offset = (off_t)((uintptr_t)at / PAGE * sizeof entry[0]);
    if (pread(pagemap_fd, entry, bytes, offset) != (ssize_t)bytes)
        return -1;
    for (size_t i = 0; i < n; i++)
        populated[i] = entry[i] & (PAGEMAP_PRESENT | PAGEMAP_SWAPPED);
    return 0;
}

bool host_pages_any_populated(const void *at, uint64_t pages)
{
    bool populated[HOST_PAGES_BATCH];
    for (uint64_t done = 0; done < pages;) {
        size_t n = pages - done < HOST_PAGES_BATCH ? (size_t)(pages - done) : HOST_PAGES_BATCH;
        if (host_pages_populated((const char *)at + done * PAGE, n, populated) < 0)
            return true;
        for (size_t i = 0; i < n; i++)
            if (populated[i])
                return true;
        done += n;
    }
    return false;
}
