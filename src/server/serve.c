/* Server mode (see serve.h): boot, freeze at readiness, fork, serve, reset. */
#include "server/serve.h"

#include <errno.h>
#include <sched.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/time.h"
#include "linux/fdprep.h"
#include "linux/listener.h"
#include "linux/process.h"
#include "linux/syscalls.h"
#include "server/boot.h"
#include "server/conn.h"
#include "server/metrics_http.h"
#include "server/profile.h"
#include "server/reload.h"
#include "server/seccomp.h"
#include "server/stop.h"
#include "vm/engine.h"

struct request_vm {
    unsigned index;
    struct server *srv;
    struct vm *vm;
    struct lx_proc proc;
    struct srv_conn conn;           /* -e: its one connection */
    pthread_t thread;
    struct lx_storage_routes pair;  /* storage --1-to-1: this storage VM's and its request
                                     * VM's own listeners */
    struct request_profile profile; /* --profile */
    struct lx_fd_prep *fd_prep;     /* its next fds made ahead; NULL: made at each reset */
};

struct server {
    const struct config *cfg;
    struct poller *poller;          /* shared transport; NULL = VM exits only */
    struct booted_program boot;
    struct vm_snapshot *snap;
    unsigned nvms;
    struct request_vm *vms;
    struct metrics metrics;
    atomic_bool stopping;           /* SIGTERM: serve the requests in flight, take no more */
    struct live_config live;        /* what SIGHUP may change */
    const char *kind;               /* "request VM", or "storage VM" (storage subcommand) */
    const struct server *storage;   /* the request VMs': the storage VMs, or NULL */
    bool one_to_one;                /* storage --1-to-1: storage VM i serves request VM i */
    uint64_t boot_ns;
};

/* A request VM's clock shows at most this much of the time between the freeze and its
 * request. Timers the program set to fire within about a second (Node's Date-header cache)
 * still fire in every request, as they do just after the freeze; later ones (V8's memory
 * reducer, some 20 s on, whose full collection throws compiled code away) fire only in a
 * request that lasts that long, not in every request of a server that has been up a while. */
#define CLOCK_SHOWS_AT_MOST_NS 1000000000ull

/* -e: the fork stays still until a client is there, then skips the time since the freeze
 * beyond CLOCK_SHOWS_AT_MOST_NS (lx_proc_skip_frozen_time). */
static void skip_frozen_time(struct request_vm *rv)
{
    lx_listeners_wait(rv->srv->boot.proc);
    uint64_t since = now_ns() - rv->srv->boot.frozen_ns;
    lx_proc_skip_frozen_time(&rv->proc, since > CLOCK_SHOWS_AT_MOST_NS
                                            ? since - CLOCK_SHOWS_AT_MOST_NS : 0);
}

/* Continues the wait the master was frozen in (blocks until a connection is there). */
static void resume_frozen_wait(struct request_vm *rv)
{
    const struct lx_server_state *frozen = &rv->srv->boot.proc->server;
    long ret = lx_proc_syscall(&rv->proc, frozen->pending_nr, frozen->pending_args);
    vm_set_syscall_result(rv->vm, (uint64_t)ret);
}

/* An event of one VM: its number and role, then `own` fields ("" for none), and the
 * message the plain log shows after "request VM N: ". */
static void vm_event(const struct request_vm *rv, enum log_level level, const char *event,
                     const char *own, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void vm_event(const struct request_vm *rv, enum log_level level, const char *event,
                     const char *own, const char *fmt, ...)
{
    char msg[2048], fields[192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(fields, sizeof fields, "vm=%u role=%s%s%s", rv->index,
             rv->srv->kind[0] == 's' ? "storage" : "request", *own ? " " : "", own);
    log_event(level, event, fields, "%s %u: %s", rv->srv->kind, rv->index, msg);
}

/* After a request: what happened, logged in one line when it was not a normal end. */
static bool request_ended_badly(struct request_vm *rv, enum vm_run_result res)
{
    const struct live_config *live = &rv->srv->live;
    switch (res) {
    case VM_STOPPED:
        if (rv->proc.exited) {
            char own[32];
            snprintf(own, sizeof own, "status=%d", rv->proc.exit_status);
            vm_event(rv, LOG_LEVEL_WARN, "exited", own, "the program exited (status %d) while "
                     "serving; resetting", rv->proc.exit_status);
            return false;
        }
        if (rv->proc.server.memory_exceeded) {
            unsigned long long mib = atomic_load(&live->max_request_memory);
            char own[40];
            snprintf(own, sizeof own, "limit_mib=%llu", mib);
            vm_event(rv, LOG_LEVEL_WARN, "memory_exceeded", own, "request exceeded "
                     "--max-request-memory (%llu MiB); connection closed, VM reset", mib);
            return false;
        }
        return false;
    case VM_CRASHED: {
        char own[24];
        snprintf(own, sizeof own, "signal=%d", vm_crash_signal(rv->vm));
        vm_event(rv, LOG_LEVEL_WARN, "crash", own, "crashed: %s (signal %d); connection closed, "
                 "VM reset", vm_crash_report(rv->vm), vm_crash_signal(rv->vm));
        return true;
    }
    case VM_TIMED_OUT: {
        double limit = atomic_load(&live->max_request_time);
        char own[40];
        snprintf(own, sizeof own, "limit_s=%g", limit);
        vm_event(rv, LOG_LEVEL_WARN, "timeout", own, "request took longer than "
                 "--max-request-time (%g s); connection closed, VM reset", limit);
        return true;
    }
    case VM_HOST_ERROR:
        vm_event(rv, LOG_LEVEL_ERROR, "host_error", "", "%s; VM reset", vm_crash_report(rv->vm));
        return true;
    }
    return true;
}

static int start_request_state(struct request_vm *rv)
{
    struct server *srv = rv->srv;
    /* Before the rest of the process: nothing there looks at the fds until they are made. */
    bool fds_made = rv->fd_prep && lx_fd_prep_take(rv->fd_prep, &rv->proc.fds);
    if (lx_proc_fork(&rv->proc, srv->boot.proc, rv->vm, fds_made) < 0)
        return -1;
    if (srv->one_to_one && lx_storage_take(&rv->proc, &rv->pair) < 0) {
        log_error("storage VM %u: cannot take its own listeners: %s", rv->index, strerror(errno));
        return -1;
    }
    if (srv->storage && srv->storage->one_to_one)
        rv->proc.server.storage_routes = &srv->storage->vms[rv->index].pair;
    if (srv->cfg->profile)
        rv->proc.stats.profile = &rv->profile.calls;
    rv->proc.server.memory_limit = atomic_load(&srv->live.max_request_memory) << 20;
    rv->proc.server.limit_aborts = true;
    /* Ephemeral: the request is the connection, timed from its accept; until then (and
     * always otherwise) the VM may work this long between two waits for events. */
    double request_time = atomic_load(&srv->live.max_request_time);
    uint64_t limit = request_time > 0 ? (uint64_t)(request_time * 1e9) : 0;
    rv->proc.server.busy_limit_ns = limit;
    if (srv->cfg->ephemeral)
        srv_conn_start(&rv->conn, &rv->proc, limit);
    return 0;
}

/* A request VM that cannot be brought back stops; the others go on serving. */
static int stop_vm(struct request_vm *rv, const char *what)
{
    log_error("%s %u could not be %s; stopping it", rv->srv->kind, rv->index, what);
    atomic_fetch_sub(&rv->srv->metrics.vms_live, 1);
    return -1;
}

/* One request's whole lifecycle, every reset in one place and in this order:
 *  1. the fork continues the wait the master was frozen in, and runs until the request ends
 *     (ephemeral: its connection closed) or fails;
 *  2. lx_proc_destroy ends the fork's process; its fds go first to the VM's helper thread, which
 *     closes them (the client sees the end of its connection) and makes the next fork's
 *     while this one resets and serves (linux/fdprep.h);
 *  3. vm_reset puts memory back from the frozen image (working set, page tables, dropped
 *     translations), then the vCPU and the clock page; past --limit-request-memory (or
 *     with --no-ephemeral-keep-working-memory) vm_reset_full starts the memory over;
 *  4. start_request_state: lx_proc_fork makes each part of the Linux personality again
 *     from the frozen process (pid, mm, wipe-on-fork pages, signals, server state, threads,
 *     fds, taken from the helper when it has them ready: after step 3, so its writes are
 *     not undone), then the server's request policy;
 *  5. the transport is attached again.
 * Returns 0, or -1 when the VM is stopped (or kvmserver stops). */
static int serve_one_request(struct request_vm *rv)
{
    struct server *srv = rv->srv;
    const struct config *cfg = srv->cfg;
    struct vm_stats before, after;
    vm_get_stats(rv->vm, &before);
    uint64_t resumed_ns = now_ns();
    if (cfg->profile)
        profile_resumed(&rv->profile);
    struct lx_profile *calls = rv->proc.stats.profile;
    rv->proc.stats.profile = NULL;      /* the wait for a client is not the request's */
    if (cfg->ephemeral && !cfg->no_ephemeral_clock_skip)
        skip_frozen_time(rv);
    resume_frozen_wait(rv);
    rv->proc.stats.profile = calls;
    /* Woken by the stop, not by a client: nothing to finish. */
    if (atomic_load(&srv->stopping) && cfg->ephemeral && rv->conn.accepts_left)
        return -1;
    /* The process layer times the work between two event waits and, with -e, the
     * connection from its accept (server/conn.c). */
    double request_time = atomic_load(&srv->live.max_request_time);
    if (request_time > 0)
        vm_set_deadline(rv->vm, now_ns() + (uint64_t)(request_time * 1e9));
    enum vm_run_result res = rv->proc.server.deadline_hit ? VM_TIMED_OUT : vm_run(rv->vm);
    if (res == VM_STOPPED && rv->proc.server.deadline_hit)
        res = VM_TIMED_OUT;
    bool anywhere = request_ended_badly(rv, res);
    uint64_t accepted_ns = cfg->ephemeral ? rv->conn.accepted_ns : 0;
    uint64_t ended_ns = now_ns();

    if (rv->fd_prep)
        lx_fd_prep_retire(rv->fd_prep, &rv->proc.fds);
    lx_proc_destroy(&rv->proc);
    uint64_t destroyed_ns = now_ns();
    vm_get_stats(rv->vm, &after);
    metrics_request_end(&srv->metrics, accepted_ns, res, after.exits - before.exits);
    struct vm_reset_stats st;
    if (vm_reset(rv->vm, anywhere, &st) < 0)
        return stop_vm(rv, "reset");
    /* Keeping the working set makes resets cheap and spares the next request its page
     * faults; past the limit the fork starts over from the image instead. */
    if ((cfg->no_ephemeral_keep_working_memory ||
         (uint64_t)st.pages_restored * 4096 >
             (atomic_load(&srv->live.limit_request_memory) << 20)) &&
        vm_reset_full(rv->vm) < 0)
        return stop_vm(rv, "reset fully");
    uint64_t remake_ns = now_ns();
    if (start_request_state(rv) < 0)
        return stop_vm(rv, "reset");
    if (cfg->profile)
        profile_request(&rv->profile, resumed_ns, accepted_ns, ended_ns,
                        after.exits - before.exits, after.syscall_exits - before.syscall_exits,
                        &st, (destroyed_ns - ended_ns) + (now_ns() - remake_ns));
    transport_attach(rv->vm, srv->poller, cfg->syscall_spin_us);
    metrics_count_reset(&srv->metrics, &st);
    if (log_get_level() >= LOG_LEVEL_DEBUG) {
        char fields[192];
        snprintf(fields, sizeof fields, "vm=%u pages=%zu new=%zu dropped=%zu released=%zu us=%.1f",
                 rv->index, st.pages_restored, st.pages_new, st.pages_dropped, st.pages_released,
                 st.ns / 1e3);
        log_event(LOG_LEVEL_DEBUG, "reset", fields, "%s %u reset: %zu pages (%zu new), %zu "
                  "dropped with their rights, %zu released, in %.1f us", rv->srv->kind,
                  rv->index, st.pages_restored, st.pages_new, st.pages_dropped,
                  st.pages_released, st.ns / 1e3);
    }
    return 0;
}

static void *request_loop(void *arg)
{
    struct request_vm *rv = arg;
    struct server *srv = rv->srv;
    const struct config *cfg = srv->cfg;
    if (srv->boot.pin_vms)
        pthread_setaffinity_np(pthread_self(), sizeof srv->boot.vm_cpus, &srv->boot.vm_cpus);
    /* Only -e resets after every request; the helper goes off the VMs' CPUs, next to the
     * poller, which yields while it waits. */
    if (cfg->ephemeral)
        rv->fd_prep = lx_fd_prep_start(&srv->boot.proc->fds,
                                       srv->boot.pin_vms ? &srv->boot.poller_cpu : NULL);
    if (vm_fork(rv->vm, srv->snap) < 0 || start_request_state(rv) < 0) {
        stop_vm(rv, "created");
        lx_fd_prep_stop(rv->fd_prep);
        rv->fd_prep = NULL;
        return NULL;
    }
    vm_set_ops(rv->vm, &lx_vm_ops, &rv->proc);
    vm_set_profiling(rv->vm, cfg->profile);
    if (cfg->profile)
        profile_start(&rv->profile, rv->vm);
    if (srv->poller && poller_add(srv->poller, rv->vm) < 0) {
        log_warn("%s %u: too many VMs for one poller; it uses VM exits", rv->srv->kind,
                 rv->index);
        srv->poller = NULL;
    }
    transport_attach(rv->vm, srv->poller, cfg->syscall_spin_us);
    while (!atomic_load(&srv->stopping) && serve_one_request(rv) == 0)
        ;
    lx_fd_prep_stop(rv->fd_prep);
    rv->fd_prep = NULL;
    return NULL;
}


static double rss_mib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

/* The storage subcommand's storage VMs, and where the request program reaches them; the
 * request VMs (srv): file scope, as the metrics thread reads srv until the process ends. */
static struct server srv, storage;
static struct lx_storage_routes storage_routes;

/* Boots cfg's program, as `role` says, and freezes it in b and snap. Returns -1 when it is
 * frozen, or the exit status. */
static int boot_frozen(const struct config *cfg, char **guest_env, const struct boot_role *role,
                       struct booted_program *b, struct vm_snapshot *snap)
{
    int status = boot_until_ready(b, cfg, guest_env, role);
    if (status >= 0)
        return status;
    if (vm_snapshot_take(snap, b->vm) < 0 || lx_proc_freeze(b->proc) < 0)
        return 1;
    b->frozen_ns = now_ns();
    return -1;
}

/* The VMs of a frozen master, not started yet. */
static int server_prepare(struct server *srv, const struct config *cfg, const char *kind)
{
    srv->cfg = cfg;
    srv->kind = kind;
    if (live_config_init(&srv->live, cfg) < 0)
        return 1;
    srv->nvms = boot_vm_count(cfg);
    srv->vms = calloc(srv->nvms, sizeof *srv->vms);
    if (!srv->vms)
        return 1;
    for (unsigned i = 0; i < srv->nvms; i++)
        if (!(srv->vms[i].vm = vm_new()))
            return 1;
    srv->poller = srv->boot.poller;
    atomic_store(&srv->metrics.vms_live, srv->nvms);
    return -1;
}

static int server_start(struct server *srv)
{
    for (unsigned i = 0; i < srv->nvms; i++) {
        srv->vms[i].index = i;
        srv->vms[i].srv = srv;
        if (pthread_create(&srv->vms[i].thread, NULL, request_loop, &srv->vms[i]) != 0) {
            log_error("cannot start %s thread %u: %s", srv->kind, i, strerror(errno));
            return 1;
        }
    }
    return -1;
}

/* The storage subcommand: the storage program boots first, into one VM that serves for
 * good (never reset), or one per request VM with --1-to-1, on the exit transport (a second
 * poller would take the CPU the request VMs' poller needs). */
static int storage_boot(const struct config *cfg, char **guest_env)
{
    static struct config storage_cfg;
    storage_cfg = *cfg;
    storage_cfg.program = cfg->storage_argv[0];
    storage_cfg.program_argv = cfg->storage_argv;
    storage_cfg.program_argc = cfg->storage_argc;
    storage_cfg.threads = cfg->one_to_one ? boot_vm_count(cfg) : 1;
    storage_cfg.ephemeral = false;
    storage_cfg.warmup = 0;
    storage_cfg.syscall_transport = "exit";
    uint64_t t0 = now_ns();
    storage.snap = vm_snapshot_new();
    if (!storage.snap)
        return 1;
    int status = boot_frozen(&storage_cfg, guest_env, &(struct boot_role){ .storage = true },
                             &storage.boot, storage.snap);
    if (status >= 0 || (status = server_prepare(&storage, &storage_cfg, "storage VM")) >= 0)
        return status;
    storage.boot_ns = now_ns() - t0;
    if (lx_storage_routes_of(storage.boot.proc, &storage_routes) < 0) {
        log_error("storage program %s: %s", storage_cfg.program,
                  vm_crash_report(storage.boot.vm));
        return 1;
    }
    storage.one_to_one = cfg->one_to_one;
    for (unsigned i = 0; storage.one_to_one && i < storage.nvms; i++) {
        int err = lx_storage_pair(storage.boot.proc, &storage_routes, &storage.vms[i].pair);
        if (err < 0) {
            log_error("cannot open storage VM %u's listeners: %s", i, strerror(-err));
            return 1;
        }
    }
    printf("Storage program '%s' ready. boot=%.1fms, reached at", storage_cfg.program,
           storage.boot_ns / 1e6);
    for (int i = 0; i < storage_routes.n; i++) {
        const struct sockaddr_un *path = (const void *)&storage_routes.route[i].path;
        printf(" %s", path->sun_path);
    }
    printf("\n");
    return -1;
}

/* The master booted here (after the storage program, for the storage subcommand): frozen
 * at readiness. */
static int boot_master(void *ctx, const struct config *cfg, struct booted_program *b,
                       struct vm_snapshot *snap)
{
    char **guest_env = ctx;
    struct boot_role role = { 0 };
    if (cfg->subcommand == SUBCMD_STORAGE) {
        int status = storage_boot(cfg, guest_env);
        if (status >= 0)
            return status;
        /* With --1-to-1 the request program reaches a storage VM only from its request VMs. */
        if (!cfg->one_to_one)
            role.storage_routes = &storage_routes;
    }
    return boot_frozen(cfg, guest_env, &role, b, snap);
}

int serve(const struct config *cfg, int argc, char **argv, char **guest_env,
          size_t env_withheld)
{
    return serve_master(cfg, argc, argv, env_withheld, boot_master, guest_env);
}

int serve_master(const struct config *cfg, int argc, char **argv, size_t env_withheld,
                 serve_master_fn make, void *ctx)
{
    /* The main thread only waits for the stop and reload signals: block them everywhere
     * else. */
    sigset_t stop, waited;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    waited = stop;
    sigaddset(&waited, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &waited, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (host_seccomp_boot(cfg) < 0)
        return 1;
    if (cfg->profile && !cfg->ephemeral)
        log_warn("--profile counts requests only with -e (a request is a connection there)");

    atomic_store(&srv.metrics.env_withheld, env_withheld);
    lx_counters_attach(&srv.metrics.lx);
    if (cfg->metrics) {
        int fd = metrics_listen(cfg->metrics);
        if (fd < 0 || metrics_serve(fd, &srv.metrics) < 0)
            return 1;
    }
    uint64_t t0 = now_ns();
    srv.snap = vm_snapshot_new();
    if (!srv.snap)
        return 1;
    int status = make(ctx, cfg, &srv.boot, srv.snap);
    if (status >= 0 || (status = server_prepare(&srv, cfg, "request VM")) >= 0)
        return status;
    srv.boot_ns = now_ns() - t0 - storage.boot_ns;
    srv.storage = storage.cfg ? &storage : NULL;
    atomic_store(&srv.metrics.ephemeral, cfg->ephemeral);
    atomic_store(&srv.metrics.accepted_at_ready, atomic_load(&srv.metrics.lx.accepted));
    atomic_store(&srv.metrics.boot_ns, srv.boot_ns);
    const char *transport = srv.poller ? "shared" : "exit";
    printf("Program '%s' loaded. boot=%.1fms rss=%.1fMB vms=%u ephemeral=%s transport=%s\n",
           cfg->program, srv.boot_ns / 1e6, rss_mib(), srv.nvms, cfg->ephemeral ? "yes" : "no",
           transport);
    fflush(stdout);
    char fields[128];
    snprintf(fields, sizeof fields, "boot_ms=%.1f vms=%u ephemeral=%s transport=%s",
             srv.boot_ns / 1e6, srv.nvms, cfg->ephemeral ? "yes" : "no", transport);
    log_event(LOG_LEVEL_INFO, "ready", fields, NULL);   /* the plain form is the line above */
    if (host_seccomp_serve(cfg) < 0)
        return 1;
    if ((storage.cfg && (status = server_start(&storage)) >= 0) ||
        (status = server_start(&srv)) >= 0)
        return status;
    int sig = 0;
    while (sigwait(&waited, &sig) == 0 && sig == SIGHUP) {
        if (argv)
            reload_config(&srv.live, argc, argv);
        else
            log_warn("SIGHUP: snaprun serves the policy recorded in its snapshot; nothing "
                     "to reload");
    }
    log_event(LOG_LEVEL_INFO, "stop", sig == SIGTERM ? "signal=SIGTERM" : "signal=SIGINT",
              "%s received, stopping", strsignal(sig));
    atomic_store(&srv.stopping, true);
    lx_listeners_stop(srv.boot.proc);
    /* Only an ephemeral VM's request has an end to wait for. */
    if (sig == SIGTERM && cfg->ephemeral) {
        uint64_t cut = wait_for_requests(&srv.metrics, atomic_load(&srv.live.shutdown_timeout),
                                       &stop);
        log_info("stopped accepting; %llu requests in flight cut short", (unsigned long long)cut);
    }
    uint64_t exits = 0, shared = 0;
    for (unsigned i = 0; i < srv.nvms; i++) {      /* racy reads are fine for a report */
        struct vm_stats st;
        vm_get_stats(srv.vms[i].vm, &st);
        exits += st.exits;
        shared += st.shared_calls;
    }
    log_info("%llu VM exits in request VMs, %llu calls served through shared memory",
             (unsigned long long)exits, (unsigned long long)shared);
    metrics_print(&srv.metrics, stderr);
    if (cfg->profile) {
        static struct request_profile total;
        for (unsigned i = 0; i < srv.nvms; i++)
            profile_add(&total, &srv.vms[i].profile, srv.vms[i].vm);
        profile_print(&total, stderr);
    }
    fflush(NULL);
    /* Request VMs may be blocked in the guest's accept(): end the process rather than
     * unwinding every thread; the kernel releases VMs, memory and sockets. */
    _exit(0);
}
