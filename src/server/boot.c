/* Booting the master VM (see boot.h). */
#include "server/boot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vm/loader.h"

#define MIB (1ull << 20)

static uint64_t deadline_after(double seconds)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec +
           (uint64_t)(seconds * 1e9);
}

static int ended(struct booted_program *b, const struct config *cfg, enum vm_run_result res)
{
    struct vm *vm = &b->vm;
    int status = 1;
    switch (res) {
    case VM_STOPPED:
        status = b->proc->exit_status;
        break;
    case VM_CRASHED:
        fprintf(stderr, "kvmserver: %s crashed: %s (signal %d, %s)\n", cfg->program,
                vm->crash_report, vm->crash_signal, strsignal(vm->crash_signal));
        status = 128 + vm->crash_signal;
        break;
    case VM_TIMED_OUT:
        fprintf(stderr, "kvmserver: %s did not finish or start listening within "
                "--max-boot-time (%g s); stopped\n", cfg->program, cfg->max_boot_time);
        status = 124;
        break;
    case VM_HOST_ERROR:
        fprintf(stderr, "kvmserver: %s\n", vm->crash_report);
        break;
    }
    if (cfg->verbose)
        fprintf(stderr, "kvmserver: %llu VM exits, %llu system-call exits, %llu unsupported "
                "system calls\n", (unsigned long long)vm->exits,
                (unsigned long long)vm->syscall_exits,
                (unsigned long long)b->proc->unknown_syscalls);
    lx_proc_destroy(b->proc);
    free(b->proc);
    b->proc = NULL;
    vm_destroy(vm);
    return status;
}

int boot_until_ready(struct booted_program *b, const struct config *cfg, char **guest_env)
{
    memset(b, 0, sizeof *b);
    struct vm_params params = { .mem_size = cfg->max_address_space * MIB,
                                .verbose = cfg->verbose };
    if (vm_create(&b->vm, &params) < 0)
        return 1;
    struct load_info li;
    b->proc = calloc(1, sizeof *b->proc);
    if (!b->proc || load_program(&b->vm, cfg->program, cfg->program_argv, guest_env,
                                 cfg->dylink_address_hint * MIB, &li) < 0 ||
        lx_proc_init(b->proc, &b->vm, cfg, &li, cfg->program) < 0) {
        if (b->proc)
            lx_proc_destroy(b->proc);
        free(b->proc);
        vm_destroy(&b->vm);
        return 1;
    }
    b->proc->server.freeze_on_wait = true;
    b->proc->server.memory_limit = cfg->max_main_memory * MIB;
    b->vm.ops = &lx_vm_ops;
    b->vm.ops_ctx = b->proc;
    vm_set_entry(&b->vm, li.entry, li.sp);
    if (cfg->max_boot_time > 0)
        b->vm.deadline_ns = deadline_after(cfg->max_boot_time);
    enum vm_run_result res = vm_run(&b->vm);
    if (res == VM_STOPPED && b->proc->server.frozen) {
        b->vm.deadline_ns = 0;
        vm_disarm(&b->vm);
        return -1;
    }
    return ended(b, cfg, res);
}
