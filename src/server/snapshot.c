/* `kvmserver snapshot` and `kvmserver snaprun` (see serve.h, docs/snapshot-format.md).
 * A snapshot is the frozen master written to one file; snaprun makes a master from it that
 * never runs, and serves request VMs forked from it exactly as after a boot. */
#include "server/serve.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/time.h"
#include "linux/process.h"
#include "linux/snapshot.h"
#include "server/boot.h"
#include "server/seccomp.h"
#include "vm/engine.h"
#include "vm/image.h"
#include "vm/snapfile.h"

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
        uint32_t crc = vm_image_code_crc(snap_crc32c(0, layout, sizeof layout));
        snprintf(v, sizeof v, "%s layout %08x", KVMS_VERSION, crc);
    }
    return v;
}

/* ------------------------------------------------------------------ snapshot */

static int write_meta(struct snap_writer *w, const struct config *cfg, const struct vm *vm,
                      const char *policy, size_t policy_len)
{
    struct snap_buf b = { 0 };
    /* Absolute: snaprun's policy names the program as readable from any directory. */
    char program[PATH_MAX];
    if (!realpath(cfg->program, program))
        snprintf(program, sizeof program, "%s", cfg->program);
    snap_put_str(&b, program);
    snap_put_u32(&b, (uint32_t)cfg->program_argc);
    for (int i = 0; i < cfg->program_argc; i++)
        snap_put_str(&b, cfg->program_argv[i]);
    snap_put_str(&b, vm_platform_name(vm));
    snap_add(w, SNAP_META, b.data, b.len);
    bool failed = b.failed;
    snap_buf_free(&b);
    snap_add(w, SNAP_POLICY, policy, policy_len);
    return failed ? -1 : 0;
}

int snapshot_write(const struct config *cfg, char **guest_env, const char *policy,
                   size_t policy_len)
{
    signal(SIGPIPE, SIG_IGN);
    if (host_seccomp_boot(cfg) < 0)
        return 1;
    static struct booted_program b;
    double t0 = now_ms();
    int status = boot_until_ready(&b, cfg, guest_env, &(struct boot_role){ 0 });
    if (status >= 0) {
        fprintf(stderr, "kvmserver: snapshot: %s ended before it waited for a connection; "
                "no snapshot written\n", cfg->program);
        return status ? status : 1;
    }
    double boot_ms = now_ms() - t0;
    struct vm_snapshot *snap = vm_snapshot_new();
    if (!snap || vm_snapshot_take(snap, b.vm) < 0 || lx_proc_freeze(b.proc) < 0)
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
    int rc = write_meta(&w, cfg, b.vm, policy, policy_len);
    if (!rc)
        rc = lx_snapshot_save(&w, b.proc);
    if (!rc)
        rc = vm_image_save(&w, snap);
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

struct snapshot_file {
    struct snapshot_info info;
    const char *path;
    int fd;
    struct snap_reader r;
    struct vm_image image;
};

static int read_meta(struct snapshot_file *l, char *err, size_t errlen)
{
    uint64_t len;
    const void *meta = snap_section(&l->r, SNAP_META, &len);
    struct snap_cursor c;
    snap_cursor_init(&c, meta, len);
    static char buf[4096];
    if (!snap_take_str(&c, buf, sizeof buf))
        return snap_error(err, errlen, "damaged snapshot: no program name");
    struct snapshot_info *in = &l->info;
    in->program = strdup(buf);
    uint32_t argc = snap_take_u32(&c);
    if (c.bad || argc < 1 || argc > MAX_ARGS)
        return snap_error(err, errlen, "damaged snapshot: no valid argument list");
    in->argv = calloc(argc + 1, sizeof *in->argv);
    if (!in->program || !in->argv)
        return snap_error(err, errlen, "out of memory");
    for (uint32_t i = 0; i < argc; i++) {
        if (!snap_take_str(&c, buf, sizeof buf) || !(in->argv[i] = strdup(buf)))
            return snap_error(err, errlen, "damaged snapshot: argument %u is unreadable", i);
    }
    in->argc = (int)argc;
    in->policy = snap_section(&l->r, SNAP_POLICY, &len);
    in->policy_len = (size_t)len;
    if (!in->policy || memchr(in->policy, '\0', in->policy_len))
        return snap_error(err, errlen, "damaged snapshot: no policy");
    return 0;
}

static int load_master(void *ctx, const struct config *cfg, struct booted_program *b,
                       struct vm_snapshot *snap)
{
    struct snapshot_file *l = ctx;
    char err[512];
    memset(b, 0, sizeof *b);
    b->vm = vm_new();
    if (!b->vm) {
        snprintf(err, sizeof err, "out of memory");
        goto fail;
    }
    if (vm_image_load(&l->r, l->fd, b->vm, &l->image, snap, err, sizeof err) < 0)
        goto fail;
    b->proc = calloc(1, sizeof *b->proc);
    if (!b->proc) {
        snprintf(err, sizeof err, "out of memory");
        goto fail;
    }
    if (lx_env_build(&b->env, cfg) < 0)
        return 1;
    if (lx_snapshot_load(&l->r, b->proc, b->vm, &b->env, err, sizeof err) < 0)
        goto fail;
    if (boot_choose_transport(b, cfg) < 0)
        return 1;
    b->frozen_ns = now_ns();            /* the program resumes from here */
    return -1;
fail:
    fprintf(stderr, "kvmserver: snaprun %s: %s\n", l->path, err);
    return 1;
}

struct snapshot_file *snapshot_open(const char *path)
{
    static struct snapshot_file l;
    char err[512];
    l.path = path;
    l.fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (l.fd < 0 || fstat(l.fd, &st) < 0) {
        fprintf(stderr, "kvmserver: snaprun: cannot open %s: %s\n", path, strerror(errno));
        return NULL;
    }
    void *map = st.st_size > 0 ? mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, l.fd, 0)
                               : MAP_FAILED;
    if (st.st_size == 0 || map == MAP_FAILED) {
        fprintf(stderr, "kvmserver: snaprun %s: %s\n", path,
                st.st_size == 0 ? "empty file: not a kvmserver snapshot" : strerror(errno));
        return NULL;
    }
    if (snap_parse(&l.r, map, (uint64_t)st.st_size, snapshot_version(), err, sizeof err) < 0 ||
        read_meta(&l, err, sizeof err) < 0) {
        fprintf(stderr, "kvmserver: snaprun %s: %s\n", path, err);
        return NULL;
    }
    return &l;
}

int snapshot_run(const struct config *cfg, struct snapshot_file *f, size_t env_withheld)
{
    return serve_master(cfg, 0, NULL, env_withheld, load_master, f);
}

const struct snapshot_info *snapshot_info(const struct snapshot_file *f)
{
    return &f->info;
}
