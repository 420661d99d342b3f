/* Server mode (see serve.h): boot, freeze at readiness, fork, serve, reset. */
#include "server/serve.h"

#include <errno.h>
#include <sched.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "linux/process.h"
#include "linux/syscalls.h"
#include "server/boot.h"
#include "server/metrics_http.h"
#include "server/seccomp.h"
#include "server/stop.h"
#include "vm/fork.h"
#include "vm/platform.h"
#include "vm/vm.h"

struct request_vm {
    unsigned index;
    struct server *srv;
    struct vm vm;
    struct lx_proc proc;
    pthread_t thread;
};

struct server {
    const struct config *cfg;
    struct poller *poller;          /* shared transport; NULL = VM exits only */
    struct booted_program boot;
    struct vm_snapshot snap;
    unsigned nvms;
    struct request_vm *vms;
    struct metrics metrics;
    atomic_bool stopping;           /* SIGTERM: serve the requests in flight, take no more */
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Continues the wait the master was frozen in (blocks until a connection is there). */
static void resume_frozen_wait(struct request_vm *rv)
{
    const struct lx_server_state *frozen = &rv->srv->boot.proc->server;
    long ret = lx_proc_syscall(&rv->proc, frozen->pending_nr, frozen->pending_args);
    rv->vm.run->s.regs.regs.rax = (uint64_t)ret;
    rv->vm.run->kvm_dirty_regs |= KVM_SYNC_X86_REGS;
}

/* After a request: what happened, logged in one line when it was not a normal end. */
static bool request_ended_badly(struct request_vm *rv, enum vm_run_result res)
{
    const struct config *cfg = rv->srv->cfg;
    switch (res) {
    case VM_STOPPED:
        if (rv->proc.exited) {
            fprintf(stderr, "kvmserver: request VM %u: the program exited (status %d) while "
                    "serving; resetting\n", rv->index, rv->proc.exit_status);
            return false;
        }
        if (rv->proc.server.memory_exceeded) {
            fprintf(stderr, "kvmserver: request VM %u: request exceeded --max-request-memory "
                    "(%llu MiB); connection closed, VM reset\n", rv->index,
                    (unsigned long long)cfg->max_request_memory);
            return false;
        }
        return false;
    case VM_CRASHED:
        fprintf(stderr, "kvmserver: request VM %u: crashed: %s (signal %d); connection closed, "
                "VM reset\n", rv->index, rv->vm.crash_report, rv->vm.crash_signal);
        return true;
    case VM_TIMED_OUT:
        fprintf(stderr, "kvmserver: request VM %u: request took longer than "
                "--max-request-time (%g s); connection closed, VM reset\n", rv->index,
                cfg->max_request_time);
        return true;
    case VM_HOST_ERROR:
        fprintf(stderr, "kvmserver: request VM %u: %s; VM reset\n", rv->index,
                rv->vm.crash_report);
        return true;
    }
    return true;
}

static int start_request_state(struct request_vm *rv)
{
    struct server *srv = rv->srv;
    if (lx_proc_fork(&rv->proc, srv->boot.proc, &rv->vm) < 0)
        return -1;
    if (srv->cfg->ephemeral) {
        rv->proc.server.accepts_left = 1;
        rv->proc.server.conn_fd = -1;
    }
    rv->proc.server.memory_limit = srv->cfg->max_request_memory << 20;
    rv->proc.server.limit_aborts = true;
    /* Ephemeral: the request is the connection, timed from its accept; until then (and
     * always otherwise) the VM may work this long between two waits for events. */
    uint64_t limit = srv->cfg->max_request_time > 0
                         ? (uint64_t)(srv->cfg->max_request_time * 1e9) : 0;
    rv->proc.server.busy_limit_ns = limit;
    if (srv->cfg->ephemeral)
        rv->proc.server.request_limit_ns = limit;
    return 0;
}

/* A request VM that cannot be brought back stops; the others go on serving. */
static int stop_vm(struct request_vm *rv, const char *what)
{
    fprintf(stderr, "kvmserver: request VM %u could not be %s; stopping it\n", rv->index, what);
    atomic_fetch_sub(&rv->srv->metrics.vms_live, 1);
    return -1;
}

/* One request's whole lifecycle, every reset in one place and in this order:
 *  1. the fork continues the wait the master was frozen in, and runs until the request ends
 *     (ephemeral: its connection closed) or fails;
 *  2. lx_proc_destroy closes the fork's fds: the client sees the end of its connection;
 *  3. vm_reset puts memory back from the frozen image (working set, page tables, dropped
 *     translations), then the vCPU and the clock page; past --limit-request-memory (or
 *     with --no-ephemeral-keep-working-memory) vm_reset_full starts the memory over;
 *  4. start_request_state: lx_proc_fork makes each part of the Linux personality again
 *     from the frozen process (pid, mm, wipe-on-fork pages, signals, server state, threads,
 *     fds: after step 3, so its writes are not undone), then the server's request policy;
 *  5. the transport is attached again.
 * Returns 0, or -1 when the VM is stopped (or kvmserver stops). */
static int serve_one_request(struct request_vm *rv)
{
    struct server *srv = rv->srv;
    const struct config *cfg = srv->cfg;
    uint64_t exits_before = rv->vm.exits;
    resume_frozen_wait(rv);
    /* Woken by the stop, not by a client: nothing to finish. */
    if (atomic_load(&srv->stopping) && cfg->ephemeral && rv->proc.server.accepts_left)
        return -1;
    /* The process layer times the work between two event waits and, with -e, the
     * connection from its accept (lx_request_started). */
    if (cfg->max_request_time > 0)
        rv->vm.deadline_ns = now_ns() + (uint64_t)(cfg->max_request_time * 1e9);
    enum vm_run_result res = rv->proc.server.deadline_hit ? VM_TIMED_OUT : vm_run(&rv->vm);
    if (res == VM_STOPPED && rv->proc.server.deadline_hit)
        res = VM_TIMED_OUT;
    bool anywhere = request_ended_badly(rv, res);
    uint64_t accepted_ns = cfg->ephemeral && rv->proc.server.accepts_left == 0
                               ? rv->proc.server.conn_accepted_ns : 0;

    lx_proc_destroy(&rv->proc);
    metrics_request_end(&srv->metrics, accepted_ns, res, rv->vm.exits - exits_before);
    struct vm_reset_stats st;
    if (vm_reset(&rv->vm, anywhere, &st) < 0)
        return stop_vm(rv, "reset");
    /* Keeping the working set makes resets cheap and spares the next request its page
     * faults; past the limit the fork starts over from the image instead. */
    if ((cfg->no_ephemeral_keep_working_memory ||
         (uint64_t)st.pages_restored * 4096 > (cfg->limit_request_memory << 20)) &&
        vm_reset_full(&rv->vm) < 0)
        return stop_vm(rv, "reset fully");
    if (start_request_state(rv) < 0)
        return stop_vm(rv, "reset");
    transport_attach(&rv->vm, srv->poller, cfg->syscall_spin_us);
    metrics_count_reset(&srv->metrics, &st);
    if (cfg->verbose)
        fprintf(stderr, "kvmserver: request VM %u reset: %zu pages (%zu new), %zu dropped "
                "with their rights, in %.1f us\n", rv->index, st.pages_restored,
                st.pages_new, st.pages_dropped, st.ns / 1e3);
    return 0;
}

static void *request_loop(void *arg)
{
    struct request_vm *rv = arg;
    struct server *srv = rv->srv;
    const struct config *cfg = srv->cfg;
    if (srv->boot.pin_vms)
        pthread_setaffinity_np(pthread_self(), sizeof srv->boot.vm_cpus, &srv->boot.vm_cpus);
    if (vm_fork(&rv->vm, &srv->snap) < 0 || start_request_state(rv) < 0) {
        stop_vm(rv, "created");
        return NULL;
    }
    rv->vm.ops = &lx_vm_ops;
    rv->vm.ops_ctx = &rv->proc;
    if (srv->poller && poller_add(srv->poller, &rv->vm) < 0) {
        fprintf(stderr, "kvmserver: request VM %u: too many VMs for one poller; it uses "
                "VM exits\n", rv->index);
        srv->poller = NULL;
    }
    transport_attach(&rv->vm, srv->poller, cfg->syscall_spin_us);
    while (!atomic_load(&srv->stopping) && serve_one_request(rv) == 0)
        ;
    return NULL;
}


static double rss_mib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

int serve(const struct config *cfg, char **guest_env, size_t env_withheld)
{
    /* The main thread only waits for the stop signals: block them everywhere else. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (host_seccomp_boot(cfg) < 0)
        return 1;

    static struct server srv;       /* the metrics thread reads it until the process ends */
    srv.cfg = cfg;
    atomic_store(&srv.metrics.env_withheld, env_withheld);
    lx_counters_attach(&srv.metrics.lx);
    if (cfg->metrics) {
        int fd = metrics_listen(cfg->metrics);
        if (fd < 0 || metrics_serve(fd, &srv.metrics) < 0)
            return 1;
    }
    uint64_t t0 = now_ns();
    int status = boot_until_ready(&srv.boot, cfg, guest_env);
    if (status >= 0)
        return status;
    double boot_ms = (now_ns() - t0) / 1e6;
    if (vm_snapshot_take(&srv.snap, &srv.boot.vm) < 0 || lx_proc_freeze(srv.boot.proc) < 0)
        return 1;

    srv.nvms = boot_vm_count(cfg);
    srv.vms = calloc(srv.nvms, sizeof *srv.vms);
    if (!srv.vms)
        return 1;
    srv.poller = srv.boot.poller;
    atomic_store(&srv.metrics.vms_live, srv.nvms);
    atomic_store(&srv.metrics.ephemeral, cfg->ephemeral);
    atomic_store(&srv.metrics.accepted_at_ready, atomic_load(&srv.metrics.lx.accepted));
    atomic_store(&srv.metrics.boot_ns, (uint64_t)(boot_ms * 1e6));
    printf("Program '%s' loaded. boot=%.1fms rss=%.1fMB vms=%u ephemeral=%s transport=%s\n",
           cfg->program, boot_ms, rss_mib(), srv.nvms, cfg->ephemeral ? "yes" : "no",
           srv.poller ? "shared" : "exit");
    fflush(stdout);
    if (host_seccomp_serve(cfg) < 0)
        return 1;
    for (unsigned i = 0; i < srv.nvms; i++) {
        srv.vms[i] = (struct request_vm){ .index = i, .srv = &srv };
        if (pthread_create(&srv.vms[i].thread, NULL, request_loop, &srv.vms[i]) != 0) {
            fprintf(stderr, "kvmserver: cannot start request VM thread %u: %s\n", i,
                    strerror(errno));
            return 1;
        }
    }
    int sig = 0;
    sigwait(&stop, &sig);
    fprintf(stderr, "kvmserver: %s received, stopping\n", strsignal(sig));
    atomic_store(&srv.stopping, true);
    stop_accepting(srv.boot.proc);
    /* Only an ephemeral VM's request has an end to wait for. */
    if (sig == SIGTERM && cfg->ephemeral) {
        uint64_t cut = wait_for_requests(&srv.metrics, cfg->shutdown_timeout, &stop);
        fprintf(stderr, "kvmserver: stopped accepting; %llu requests in flight cut short\n",
                (unsigned long long)cut);
    }
    uint64_t exits = 0, shared = 0;
    for (unsigned i = 0; i < srv.nvms; i++) {      /* racy reads are fine for a report */
        exits += srv.vms[i].vm.exits;
        shared += atomic_load(&srv.vms[i].vm.transport.shared_calls);
    }
    fprintf(stderr, "kvmserver: %llu VM exits in request VMs, %llu calls served through "
            "shared memory\n", (unsigned long long)exits, (unsigned long long)shared);
    metrics_print(&srv.metrics, stderr);
    fflush(NULL);
    /* Request VMs may be blocked in the guest's accept(): end the process rather than
     * unwinding every thread; the kernel releases VMs, memory and sockets. */
    _exit(0);
}
