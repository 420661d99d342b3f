/* Booting the master VM (see boot.h). */
#include "server/boot.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "server/warmup.h"
#include "vm/syscall_sites.h"
#include "vm/loader.h"
#include "vm/platform.h"

#define MIB (1ull << 20)

static uint64_t deadline_after(double seconds)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec +
           (uint64_t)(seconds * 1e9);
}

unsigned boot_vm_count(const struct config *cfg)
{
    if (cfg->threads)
        return cfg->threads;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    return cpus > 0 ? (unsigned)cpus : 1;
}

/* Exit transport, or shared memory served by a poller thread when that can help: the
 * platform's stub supports it and a CPU is left over for the poller. */
int boot_choose_transport(struct booted_program *b, const struct config *cfg)
{
    const char *want = cfg->syscall_transport ? cfg->syscall_transport : "auto";
    bool supported = b->vm.plat->shared_transport;
    cpu_set_t allowed;                 /* the CPUs we may run on, not the machine's */
    if (sched_getaffinity(0, sizeof allowed, &allowed) < 0)
        CPU_ZERO(&allowed);
    long cpus = CPU_COUNT(&allowed);
    bool wanted = !strcmp(want, "shared") ||
                  (!strcmp(want, "auto") && supported && cpus > (long)boot_vm_count(cfg));
    if (!wanted)
        return 0;
    if (!supported) {
        fprintf(stderr, "kvmserver: --syscall-transport=shared is not available on %s KVM; "
                "using VM exits\n", b->vm.plat->name);
        return 0;
    }
    b->poller = poller_start();
    if (!b->poller) {
        fprintf(stderr, "kvmserver: cannot start the syscall poller thread: %s\n",
                strerror(errno));
        return -1;
    }
    /* The poller spins: give it the last CPU we may use and keep the request VMs off it,
     * so a VM never waits for the poller to be scheduled, and the VMs stay on the CPUs
     * where their connections' wake-ups happen (cross-CPU wake-ups cost ~100 us here). */
    if (cpus >= 2) {
        int last = -1;
        for (int c = 0; c < CPU_SETSIZE; c++)
            if (CPU_ISSET(c, &allowed))
                last = c;
        cpu_set_t poller_cpu;
        CPU_ZERO(&poller_cpu);
        CPU_SET(last, &poller_cpu);
        poller_set_affinity(b->poller, &poller_cpu);
        b->vm_cpus = allowed;
        CPU_CLR(last, &b->vm_cpus);
        b->pin_vms = true;
    }
    return 0;
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
                "system calls; %.2f ms in system-call handlers, %.2f ms of it in file-system "
                "calls\n", (unsigned long long)vm->exits, (unsigned long long)vm->syscall_exits,
                (unsigned long long)b->proc->stats.unknown_syscalls, b->proc->stats.handler_ns / 1e6,
                b->proc->stats.fs_handler_ns / 1e6);
    if (cfg->verbose && vm->sites)
        fprintf(stderr, "kvmserver: %llu syscall sites rewritten, %llu left trapping (code "
                "near them uses the red zone)\n", (unsigned long long)vm->sites->rewritten,
                (unsigned long long)vm->sites->refused);
    if (b->poller) {           /* it must not look at this VM once it is gone */
        poller_stop(b->poller);
        b->poller = NULL;
    }
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
                                .rewrite_syscalls = !cfg->no_syscall_rewrite,
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
    b->proc->server.listen_privately = true;
    if (cfg->warmup)
        warmup_arm(b->proc, cfg->warmup);
    b->proc->server.memory_limit = cfg->max_main_memory * MIB;
    b->vm.ops = &lx_vm_ops;
    b->vm.ops_ctx = b->proc;
    if (boot_choose_transport(b, cfg) < 0)
        return ended(b, cfg, VM_HOST_ERROR);
    if (b->poller && poller_add(b->poller, &b->vm) == 0)
        transport_attach(&b->vm, b->poller, cfg->syscall_spin_us);
    if (b->pin_vms)
        pthread_setaffinity_np(pthread_self(), sizeof b->vm_cpus, &b->vm_cpus);
    vm_set_entry(&b->vm, li.entry, li.sp);
    if (cfg->max_boot_time > 0)
        b->vm.deadline_ns = deadline_after(cfg->max_boot_time);
    enum vm_run_result res = vm_run(&b->vm);
    transport_detach(&b->vm);       /* frozen memory is never written again */
    if (res == VM_STOPPED && b->proc->server.deadline_hit)
        res = VM_TIMED_OUT;         /* a blocking call reached --max-boot-time */
    if (res == VM_STOPPED && b->proc->server.boot_failed)
        res = VM_HOST_ERROR;        /* crash_report says why */
    if (res == VM_STOPPED && b->proc->server.frozen && lx_listeners_publish(b->proc) < 0)
        res = VM_HOST_ERROR;
    if (res == VM_STOPPED && b->proc->server.frozen) {
        b->vm.deadline_ns = 0;
        vm_disarm(&b->vm);
        return -1;
    }
    return ended(b, cfg, res);
}
