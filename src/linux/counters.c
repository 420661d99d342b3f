/* Event counters for the server's metrics (see counters.h). */
#include "linux/counters.h"

#include <stddef.h>

static _Atomic(struct lx_counters *) attached;

void lx_counters_attach(struct lx_counters *c)
{
    atomic_store_explicit(&attached, c, memory_order_release);
}

static void bump(size_t offset)
{
    struct lx_counters *c = atomic_load_explicit(&attached, memory_order_acquire);
    if (c)
        atomic_fetch_add_explicit((atomic_uint_fast64_t *)((char *)c + offset), 1,
                                  memory_order_relaxed);
}

void lx_count_denied(enum lx_denial kind)
{
    if ((unsigned)kind < LX_DENIAL_KINDS)
        bump(offsetof(struct lx_counters, denied) + (size_t)kind * sizeof(atomic_uint_fast64_t));
}

void lx_count_unsupported_syscall(void)
{
    bump(offsetof(struct lx_counters, unsupported_syscalls));
}

void lx_count_accepted(void)
{
    bump(offsetof(struct lx_counters, accepted));
}
