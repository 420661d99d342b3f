/* Which pages of a host mapping of guest memory the host kernel has populated, read from
 * /proc/self/pagemap. A page neither present nor swapped out has never been touched through
 * this mapping (or was dropped): it reads as its backing page (the frozen image's, or zeros
 * where the mapping is anonymous), and KVM holds no translation of it, since KVM maps only
 * pages present in the host's page tables and drops a translation when its page goes (the
 * MMU notifier). Asking costs a read of 8 bytes a page; touching an unpopulated page to
 * look at it costs a host page fault (~1.4 us here). */
#ifndef KVMS_HOST_PAGES_H
#define KVMS_HOST_PAGES_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The most pages one host_pages_populated call answers for. */
#define HOST_PAGES_BATCH 512

/* Sets populated[i] for the n (<= HOST_PAGES_BATCH) pages from the page-aligned `at`: true
 * where the page is present or swapped out. Returns 0, or -1 when the host does not say
 * (no /proc): the caller must then treat every page as populated. */
int host_pages_populated(const void *at, size_t n, bool populated[]);
/* Is any of the `pages` pages from `at` populated? True too when the host does not say. */
bool host_pages_any_populated(const void *at, uint64_t pages);

#endif
