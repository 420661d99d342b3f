/* `kvmserver snapshot` and `kvmserver snaprun` (see serve.h, docs/snapshot-format.md).
 * A snapshot is the frozen master written to one file; snaprun makes a master from it that
 * never runs, and serves request VMs forked from it exactly as after a boot. */
#include "server/serve.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/options.h"
#include "guest/stubs.h"
#include "guest/vdso.h"
#include "linux/process.h"
#include "linux/snapshot.h"
#include "server/boot.h"
#include "server/seccomp.h"
#include "vm/fork.h"
#include "vm/image.h"
#include "vm/platform.h"
#include "vm/snapfile.h"
#include "vm/vm.h"

#define MAX_ARGS 4096

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* The kvmserver version and a digest of the layout of the structs stored as they are in
 * memory and of the guest stubs and vDSO the image holds (their addresses are the
 * engine's): a file from any other build is refused before anything in it is used. */
static const char *snapshot_version(void)
{
    static char v[SNAP_VERSION_LEN];
    if (!v[0]) {
        const uint64_t layout[] = {
            sizeof(struct lx_proc), sizeof(struct lx_task), sizeof(struct lx_signals),
            sizeof(struct lx_mm), sizeof(struct lx_server_state), sizeof(struct lx_listener),
            sizeof(struct lx_thread), sizeof(struct vm_thread_cpu), sizeof(struct kvm_regs),
            sizeof(struct kvm_sregs), sizeof(struct kvm_xcrs), LX_MAX_FDS, LX_MAX_THREADS,
        };
        uint32_t crc = snap_crc32c(0, layout, sizeof layout);
        crc = snap_crc32c(crc, kvms_kcode_start, (size_t)(kvms_kcode_end - kvms_kcode_start));
        crc = snap_crc32c(crc, kvms_uentry_start,
                          (size_t)(kvms_uentry_end - kvms_uentry_start));
        crc = snap_crc32c(crc, kvms_vdso_image, (size_t)(kvms_vdso_image_end - kvms_vdso_image));
        snprintf(v, sizeof v, "%s layout %08x", KVMS_VERSION, crc);
    }
    return v;
}

/* ------------------------------------------------------------------ snapshot */

static int write_meta(struct snap_writer *w, const struct config *cfg, const struct vm *vm)
{
    struct snap_buf b = { 0 };
    snap_put_str(&b, cfg->program);
    snap_put_u32(&b, (uint32_t)cfg->program_argc);
    for (int i = 0; i < cfg->program_argc; i++)
        snap_put_str(&b, cfg->program_argv[i]);
    snap_put_str(&b, vm->plat->name);
    snap_add(w, SNAP_META, b.data, b.len);
    bool failed = b.failed;
    snap_buf_free(&b);

    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    if (!out)
        return -1;
    config_print(cfg, out);
    fclose(out);
    snap_add(w, SNAP_POLICY, text, len);
    free(text);
    return failed ? -1 : 0;
}

int snapshot_write(const struct config *cfg, char **guest_env)
{
    signal(SIGPIPE, SIG_IGN);
    if (host_seccomp_boot(cfg) < 0)
        return 1;
    static struct booted_program b;
    double t0 = now_ms();
    int status = boot_until_ready(&b, cfg, guest_env);
    if (status >= 0) {
        fprintf(stderr, "kvmserver: snapshot: %s ended before it waited for a connection; "
                "no snapshot written\n", cfg->program);
        return status ? status : 1;
    }
    double boot_ms = now_ms() - t0;
    struct vm_snapshot snap;
    if (vm_snapshot_take(&snap, &b.vm) < 0 || lx_proc_freeze(b.proc) < 0)
        return 1;

    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", cfg->snapshot_output, (int)getpid());
    int fd = openat(AT_FDCWD, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "kvmserver: snapshot: cannot create %s: %s\n", tmp, strerror(errno));
        return 1;
    }
    struct snap_writer w;
    snap_begin(&w, fd);
    int rc = write_meta(&w, cfg, &b.vm);
    if (!rc)
        rc = lx_snapshot_save(&w, b.proc);
    if (!rc)
        rc = vm_image_save(&w, &snap);
    if (!rc)
        rc = snap_finish(&w, snapshot_version());
    close(fd);
    if (!rc && renameat2(AT_FDCWD, tmp, AT_FDCWD, cfg->snapshot_output, 0) < 0) {
        fprintf(stderr, "kvmserver: snapshot: cannot rename %s to %s: %s\n", tmp,
                cfg->snapshot_output, strerror(errno));
        rc = -1;
    }
    if (rc) {
        unlinkat(AT_FDCWD, tmp, 0);
        fprintf(stderr, "kvmserver: snapshot: no snapshot written\n");
        return 1;
    }
    uint64_t pages = 0;
    for (unsigned i = 0; i < w.n; i++)
        if (w.sec[i].tag == SNAP_MEMDATA)
            pages = w.sec[i].length / 4096;
    printf("Snapshot of '%s' written to %s: %.1f MiB, %llu memory pages; boot=%.1fms "
           "written in %.1fms\n", cfg->program, cfg->snapshot_output, w.pos / 1048576.0,
           (unsigned long long)pages, boot_ms, now_ms() - t0 - boot_ms);
    fflush(stdout);
    return 0;
}

/* ------------------------------------------------------------------ snaprun */

static int say(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static bool lists_equal(const struct str_list *a, const struct str_list *b)
{
    if (a->count != b->count)
        return false;
    for (size_t i = 0; i < a->count; i++)
        if (strcmp(a->items[i], b->items[i]) != 0)
            return false;
    return true;
}

static bool strings_equal(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* The recorded policy, narrowed by what snaprun was given: an option that would widen it
 * (or change it in a way that is not plainly narrower) is refused. What run takes from rec
 * moves (rec no longer owns it): run lives as long as the process. */
static int merge_policy(struct config *run, struct config *rec, char *err, size_t errlen)
{
    struct config d;
    config_defaults(&d);
#define SAME_ACCESS(set, list, name)                                                          \
    if ((run->set != d.set || run->list.count) &&                                             \
        (run->set != rec->set || !lists_equal(&run->list, &rec->list)))                       \
        return say(err, errlen, "%s differs from the snapshot's policy: snaprun serves with the " \
                   "recorded policy and may only repeat it (see --print-config of snapshot)", name);
    SAME_ACCESS(allow_read_set, allow_read, "--allow-read")
    SAME_ACCESS(allow_write_set, allow_write, "--allow-write")
    SAME_ACCESS(allow_env_set, allow_env, "--allow-env")
    SAME_ACCESS(allow_net_set, allow_net, "--allow-net")
    SAME_ACCESS(allow_connect_set, allow_connect, "--allow-connect")
    SAME_ACCESS(allow_listen_set, allow_listen, "--allow-listen")
#undef SAME_ACCESS
    if (run->allow_all && !rec->allow_all)
        return say(err, errlen, "--allow-all would widen the snapshot's policy");
    if ((run->volumes.count && !lists_equal(&run->volumes, &rec->volumes)) ||
        (run->env.count && !lists_equal(&run->env, &rec->env)) ||
        (run->cwd && !strings_equal(run->cwd, rec->cwd)))
        return say(err, errlen, "--volume, --env and --cwd are in the snapshot already: "
                   "snaprun may only repeat them");
    if (run->warmup)
        return say(err, errlen, "-w has no effect on snaprun: warm up when taking the snapshot");
#define NARROWER(field, name)                                                                 \
    if (run->field != d.field) {                                                              \
        if (run->field == 0 || (rec->field != 0 && run->field > rec->field))                  \
            return say(err, errlen, "%s would widen the snapshot's limit", name);             \
    } else {                                                                                  \
        run->field = rec->field;                                                              \
    }
    NARROWER(max_request_memory, "--max-request-memory")
    NARROWER(limit_request_memory, "--limit-request-memory")
    NARROWER(max_request_time, "--max-request-time")
#undef NARROWER
    run->ephemeral |= rec->ephemeral;           /* -e only narrows */
    run->no_ephemeral_keep_working_memory |= rec->no_ephemeral_keep_working_memory;
    /* The policy itself, and what the booted program's state depends on. */
    run->allow_all = rec->allow_all;
#define TAKE_LIST(f) do { run->f = rec->f; rec->f = (struct str_list){ 0 }; } while (0)
    TAKE_LIST(allow_read);
    TAKE_LIST(allow_write);
    TAKE_LIST(allow_env);
    TAKE_LIST(allow_net);
    TAKE_LIST(allow_connect);
    TAKE_LIST(allow_listen);
    TAKE_LIST(volumes);
    TAKE_LIST(env);
#undef TAKE_LIST
    if (!run->cwd) {
        run->cwd = rec->cwd;
        rec->cwd = NULL;
    }
    run->allow_read_set = rec->allow_read_set;
    run->allow_write_set = rec->allow_write_set;
    run->allow_env_set = rec->allow_env_set;
    run->allow_net_set = rec->allow_net_set;
    run->allow_connect_set = rec->allow_connect_set;
    run->allow_listen_set = rec->allow_listen_set;
    run->max_main_memory = rec->max_main_memory;
    run->max_address_space = rec->max_address_space;
    run->no_syscall_rewrite = rec->no_syscall_rewrite;
    config_free(&d);
    return 0;
}

struct loaded {
    const char *path;
    int fd;
    struct snap_reader r;
    struct vm_image image;
    char *program;
    char **argv;
    int argc;
};

static int read_meta(struct loaded *l, char *err, size_t errlen)
{
    uint64_t len;
    const void *meta = snap_section(&l->r, SNAP_META, &len);
    struct snap_cursor c;
    snap_cursor_init(&c, meta, len);
    static char buf[4096];
    if (!snap_take_str(&c, buf, sizeof buf))
        return say(err, errlen, "damaged snapshot: no program name");
    l->program = strdup(buf);
    uint32_t argc = snap_take_u32(&c);
    if (c.bad || argc < 1 || argc > MAX_ARGS)
        return say(err, errlen, "damaged snapshot: no valid argument list");
    l->argv = calloc(argc + 1, sizeof *l->argv);
    if (!l->program || !l->argv)
        return say(err, errlen, "out of memory");
    for (uint32_t i = 0; i < argc; i++) {
        if (!snap_take_str(&c, buf, sizeof buf) || !(l->argv[i] = strdup(buf)))
            return say(err, errlen, "damaged snapshot: argument %u is unreadable", i);
    }
    l->argc = (int)argc;
    return 0;
}

static int load_master(void *ctx, const struct config *cfg, struct booted_program *b,
                       struct vm_snapshot *snap)
{
    struct loaded *l = ctx;
    char err[512];
    memset(b, 0, sizeof *b);
    if (vm_image_load(&l->r, l->fd, &b->vm, &l->image, snap, err, sizeof err) < 0)
        goto fail;
    b->proc = calloc(1, sizeof *b->proc);
    if (!b->proc) {
        snprintf(err, sizeof err, "out of memory");
        goto fail;
    }
    if (lx_snapshot_load(&l->r, b->proc, &b->vm, cfg, err, sizeof err) < 0)
        goto fail;
    if (boot_choose_transport(b, cfg) < 0)
        return 1;
    return -1;
fail:
    fprintf(stderr, "kvmserver: snaprun %s: %s\n", l->path, err);
    return 1;
}

int snapshot_run(const struct config *given, size_t env_withheld)
{
    static struct loaded l;
    static struct config cfg;      /* request VMs keep pointing at it */
    char err[512];
    l.path = given->program;
    l.fd = open(l.path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (l.fd < 0 || fstat(l.fd, &st) < 0) {
        fprintf(stderr, "kvmserver: snaprun: cannot open %s: %s\n", l.path, strerror(errno));
        return 1;
    }
    void *map = st.st_size > 0 ? mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, l.fd, 0)
                               : MAP_FAILED;
    if (st.st_size == 0 || map == MAP_FAILED) {
        fprintf(stderr, "kvmserver: snaprun %s: %s\n", l.path,
                st.st_size == 0 ? "empty file: not a kvmserver snapshot" : strerror(errno));
        return 1;
    }
    if (snap_parse(&l.r, map, (uint64_t)st.st_size, snapshot_version(), err, sizeof err) < 0 ||
        read_meta(&l, err, sizeof err) < 0) {
        fprintf(stderr, "kvmserver: snaprun %s: %s\n", l.path, err);
        return 1;
    }
    uint64_t len;
    const char *text = snap_section(&l.r, SNAP_POLICY, &len);
    struct config rec;
    config_defaults(&rec);
    rec.subcommand = SUBCMD_SNAPSHOT;
    if (!text || !config_apply_toml(&rec, "the snapshot's policy", text, len, err, sizeof err)) {
        fprintf(stderr, "kvmserver: snaprun %s: damaged snapshot: %s\n", l.path,
                text ? err : "no policy");
        config_free(&rec);
        return 1;
    }
    cfg = *given;
    if (merge_policy(&cfg, &rec, err, sizeof err) < 0) {
        fprintf(stderr, "kvmserver: snaprun %s: %s\n", l.path, err);
        config_free(&rec);
        return 2;
    }
    config_free(&rec);
    cfg.program = l.program;
    cfg.program_argv = l.argv;
    cfg.program_argc = l.argc;
    return serve_master(&cfg, env_withheld, load_master, &l);
}
