/* The engine API's object lifetimes and accessors (engine.h): what the layers above may know
 * of a VM, kept behind calls so that struct vm stays the engine's own. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vm/engine.h"
#include "vm/fork.h"
#include "vm/platform.h"
#include "vm/syscall_sites.h"
#include "vm/vm.h"

struct vm *vm_new(void)
{
    struct vm *vm = calloc(1, sizeof *vm);
    if (vm)
        vm->vm_fd = vm->vcpu_fd = vm->mem_fd = -1;
    return vm;
}

void vm_delete(struct vm *vm)
{
    if (!vm)
        return;
    vm_destroy(vm);
    free(vm);
}

void vm_set_ops(struct vm *vm, const struct vm_ops *ops, void *ctx)
{
    vm->ops = ops;
    vm->ops_ctx = ctx;
}

void vm_set_profiling(struct vm *vm, bool on)
{
    vm->profiling = on;
}

uint64_t vm_user_end(const struct vm *vm)
{
    return vm->user_end;
}

uint64_t vm_mem_size(const struct vm *vm)
{
    return vm->mem_size;
}

int vm_host_copy(struct vm *vm, uint64_t to, uint64_t from, uint64_t len)
{
    if (from > vm->user_end || len > vm->user_end - from)
        return -1;
    uint8_t *dst = vm_host_span(vm, to, len);
    if (!dst)
        return -1;
    memcpy(dst, vm->mem + from, len);
    return 0;
}

bool vm_user_regs_were_set(const struct vm *vm)
{
    return vm->user_regs_set;
}

void vm_set_deadline(struct vm *vm, uint64_t ns)
{
    vm->deadline_ns = ns;
}

uint64_t vm_deadline(const struct vm *vm)
{
    return vm->deadline_ns;
}

int vm_crash_signal(const struct vm *vm)
{
    return vm->crash_signal;
}

const char *vm_crash_report(const struct vm *vm)
{
    return vm->crash_report;
}

void vm_set_crash_report(struct vm *vm, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(vm->crash_report, sizeof vm->crash_report, fmt, ap);
    va_end(ap);
}

struct vm_snapshot *vm_snapshot_new(void)
{
    return calloc(1, sizeof(struct vm_snapshot));
}

void vm_snapshot_delete(struct vm_snapshot *snap)
{
    if (!snap)
        return;
    vm_snapshot_free(snap);
    free(snap);
}

void vm_get_stats(const struct vm *vm, struct vm_stats *out)
{
    /* The vCPU thread adds to these while another thread may read them. */
    *out = (struct vm_stats){
        .exits = __atomic_load_n(&vm->exits, __ATOMIC_RELAXED),
        .syscall_exits = __atomic_load_n(&vm->syscall_exits, __ATOMIC_RELAXED),
        .shared_calls = atomic_load_explicit(&vm->transport.shared_calls, memory_order_relaxed),
        .flushes = __atomic_load_n(&vm->flushes, __ATOMIC_RELAXED),
        .guest_ns = __atomic_load_n(&vm->guest_ns, __ATOMIC_RELAXED),
        .flush_ns = __atomic_load_n(&vm->flush_ns, __ATOMIC_RELAXED),
        .sites_rewritten = vm->sites ? vm->sites->rewritten : 0,
        .sites_refused = vm->sites ? vm->sites->refused : 0,
    };
}

const char *vm_platform_name(const struct vm *vm)
{
    return vm->plat ? vm->plat->name : "none";
}

bool vm_has_shared_transport(const struct vm *vm)
{
    return vm->plat && vm->plat->shared_transport;
}
