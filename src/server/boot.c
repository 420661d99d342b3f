/* Booting the master VM (see boot.h). */
#include "server/boot.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/time.h"
#include "base/units.h"
#include "server/activation.h"
#include "server/warmup.h"
#include "vm/engine.h"

static uint64_t deadline_after(double seconds)
{
    return now_ns() + (uint64_t)(seconds * 1e9);
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
    bool supported = vm_has_shared_transport(b->vm);
    cpu_set_t allowed;                 /* the CPUs we may run on, not the machine's */
    if (sched_getaffinity(0, sizeof allowed, &allowed) < 0)
        CPU_ZERO(&allowed);
    long cpus = CPU_COUNT(&allowed);
    bool wanted = !strcmp(want, "shared") ||
                  (!strcmp(want, "auto") && supported && cpus > (long)boot_vm_count(cfg));
    if (!wanted)
        return 0;
    if (!supported) {
        log_warn("--syscall-transport=shared is not available on %s KVM; using VM exits",
                 vm_platform_name(b->vm));
        return 0;
    }
    b->poller = poller_start();
    if (!b->poller) {
        log_error("cannot start the syscall poller thread: %s", strerror(errno));
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
        CPU_ZERO(&b->poller_cpu);
        CPU_SET(last, &b->poller_cpu);
        poller_set_affinity(b->poller, &b->poller_cpu);
        b->vm_cpus = allowed;
        CPU_CLR(last, &b->vm_cpus);
        b->pin_vms = true;
    }
    return 0;
}

/* A boot that takes a while, shown on a terminal: one line redrawn in place. */
#define PROGRESS_AFTER_NS (1000ull * 1000 * 1000)
#define PROGRESS_EVERY_NS (500ull * 1000 * 1000)

struct progress {
    const struct vm *vm;
    const char *program;
    pthread_t thread;
    bool running, drawn;
    pthread_mutex_t lock;
    pthread_cond_t done;
};

static void *progress_loop(void *arg)
{
    struct progress *pg = arg;
    uint64_t start = now_ns(), next = start + PROGRESS_AFTER_NS;
    pthread_mutex_lock(&pg->lock);
    while (pg->running) {
        struct timespec until = { (time_t)(next / 1000000000ull), (long)(next % 1000000000ull) };
        if (pthread_cond_timedwait(&pg->done, &pg->lock, &until) == 0 || !pg->running)
            continue;
        struct vm_stats st;
        vm_get_stats(pg->vm, &st);
        fprintf(stderr, "\r\033[Kkvmserver: starting %s: %.1f s, %llu VM exits", pg->program,
                (now_ns() - start) / 1e9, (unsigned long long)st.exits);
        pg->drawn = true;
        next = now_ns() + PROGRESS_EVERY_NS;
    }
    if (pg->drawn)
        fputs("\r\033[K", stderr);
    pthread_mutex_unlock(&pg->lock);
    return NULL;
}

/* Only where a person watches plain logs: stderr a terminal, info messages shown. */
static void progress_start(struct progress *pg)
{
    if (!isatty(STDERR_FILENO) || log_get_level() < LOG_LEVEL_INFO || log_is_kv())
        return;
    pthread_mutex_init(&pg->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&pg->done, &attr);
    pthread_condattr_destroy(&attr);
    pg->running = true;
    if (pthread_create(&pg->thread, NULL, progress_loop, pg) != 0)
        pg->running = false;        /* no progress line: nothing else depends on it */
}

static void progress_stop(struct progress *pg)
{
    if (!pg->running)
        return;
    pthread_mutex_lock(&pg->lock);
    pg->running = false;
    pthread_cond_signal(&pg->done);
    pthread_mutex_unlock(&pg->lock);
    pthread_join(pg->thread, NULL);
}

static int ended(struct booted_program *b, const struct config *cfg, enum vm_run_result res)
{
    struct vm *vm = b->vm;
    int status = 1;
    char fields[64];    /* the master VM: the booting program, or a plain run's whole life */
    switch (res) {
    case VM_STOPPED:
        status = b->proc->exit_status;
        break;
    case VM_CRASHED: {
        int sig = vm_crash_signal(vm);
        snprintf(fields, sizeof fields, "vm=master signal=%d", sig);
        log_event(LOG_LEVEL_ERROR, "crash", fields, "%s crashed: %s (signal %d, %s)",
                  cfg->program, vm_crash_report(vm), sig, strsignal(sig));
        status = 128 + sig;
        break;
    }
    case VM_TIMED_OUT:
        snprintf(fields, sizeof fields, "vm=master limit_s=%g", cfg->max_boot_time);
        log_event(LOG_LEVEL_ERROR, "timeout", fields, "%s did not finish or start "
                  "listening within --max-boot-time (%g s); stopped", cfg->program,
                  cfg->max_boot_time);
        status = 124;
        break;
    case VM_HOST_ERROR:
        log_error("%s", vm_crash_report(vm));
        break;
    }
    struct vm_stats st;
    vm_get_stats(vm, &st);
    log_debug("%llu VM exits, %llu system-call exits, %llu unsupported system calls; %.2f ms "
              "in system-call handlers, %.2f ms of it in file-system calls",
              (unsigned long long)st.exits, (unsigned long long)st.syscall_exits,
              (unsigned long long)b->proc->stats.unknown_syscalls,
              b->proc->stats.handler_ns / 1e6, b->proc->stats.fs_handler_ns / 1e6);
    if (st.sites_rewritten || st.sites_refused)
        log_debug("%llu syscall sites rewritten, %llu left trapping (code near them uses the "
                  "red zone)", (unsigned long long)st.sites_rewritten,
                  (unsigned long long)st.sites_refused);
    if (b->poller) {           /* it must not look at this VM once it is gone */
        poller_stop(b->poller);
        b->poller = NULL;
    }
    lx_proc_destroy(b->proc);
    free(b->proc);
    b->proc = NULL;
    vm_delete(vm);
    b->vm = NULL;
    lx_env_destroy(&b->env);
    return status;
}

int boot_until_ready(struct booted_program *b, const struct config *cfg, char **guest_env,
                     const struct boot_role *role)
{
    memset(b, 0, sizeof *b);
    struct vm_params params = { .mem_size = cfg->max_address_space * MIB,
                                .rewrite_syscalls = !cfg->no_syscall_rewrite,
                                .verbose = cfg->verbose };
    if (lx_env_build(&b->env, cfg) < 0)
        return 1;
    b->vm = vm_new();
    if (!b->vm || vm_create(b->vm, &params) < 0) {
        vm_delete(b->vm);
        b->vm = NULL;
        lx_env_destroy(&b->env);
        return 1;
    }
    struct load_info li;
    uint64_t sp;
    b->proc = calloc(1, sizeof *b->proc);
    if (!b->proc || lx_load_program(b->vm, cfg->program, cfg->program_argv, guest_env,
                                    cfg->dylink_address_hint * MIB, &li, &sp) < 0 ||
        lx_proc_init(b->proc, b->vm, &b->env, &li, cfg->program) < 0) {
        if (b->proc)
            lx_proc_destroy(b->proc);
        free(b->proc);
        vm_delete(b->vm);
        b->vm = NULL;
        lx_env_destroy(&b->env);
        return 1;
    }
    boot_freeze_install(&b->freeze, b->proc);
    b->proc->server.listen_privately = true;
    b->proc->server.storage = role->storage;
    b->proc->server.storage_routes = role->storage_routes;
    /* The storage program's sockets never listen on the host: activation is the other's. */
    char why[256];
    int activated = role->storage ? 0 : activation_take(b->proc->server.activated,
                                                        LX_MAX_LISTENERS, why, sizeof why);
    if (activated < 0) {
        vm_set_crash_report(b->vm, "%s", why);
        return ended(b, cfg, VM_HOST_ERROR);
    }
    b->proc->server.nactivated = activated;
    if (cfg->warmup)
        warmup_arm(&b->freeze, cfg->warmup);
    b->proc->server.memory_limit = cfg->max_main_memory * MIB;
    vm_set_ops(b->vm, &lx_vm_ops, b->proc);
    if (boot_choose_transport(b, cfg) < 0)
        return ended(b, cfg, VM_HOST_ERROR);
    if (b->poller && poller_add(b->poller, b->vm) == 0)
        transport_attach(b->vm, b->poller, cfg->syscall_spin_us);
    if (b->pin_vms)
        pthread_setaffinity_np(pthread_self(), sizeof b->vm_cpus, &b->vm_cpus);
    vm_set_entry(b->vm, li.entry, sp);
    if (cfg->max_boot_time > 0)
        vm_set_deadline(b->vm, deadline_after(cfg->max_boot_time));
    char fields[PATH_MAX + 32];
    snprintf(fields, sizeof fields, "program=\"%s\" role=%s", cfg->program,
             role->storage ? "storage" : "request");
    log_event(LOG_LEVEL_INFO, "boot", fields, NULL);    /* plain logs show it by its end */
    struct progress progress = { .vm = b->vm, .program = cfg->program };
    progress_start(&progress);
    enum vm_run_result res = vm_run(b->vm);
    progress_stop(&progress);
    transport_detach(b->vm);       /* frozen memory is never written again */
    if (res == VM_STOPPED && b->proc->server.deadline_hit)
        res = VM_TIMED_OUT;         /* a blocking call reached --max-boot-time */
    if (res == VM_STOPPED && b->proc->server.boot_failed)
        res = VM_HOST_ERROR;        /* crash_report says why */
    if (res == VM_STOPPED && b->proc->server.frozen && lx_listeners_publish(b->proc) < 0)
        res = VM_HOST_ERROR;
    if (res == VM_STOPPED && b->proc->server.frozen) {
        vm_set_deadline(b->vm, 0);
        vm_disarm(b->vm);
        return -1;
    }
    return ended(b, cfg, res);
}
