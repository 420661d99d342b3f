/* Synthesized /proc and /sys files (see procfs.h). */
#include "linux/procfs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "base/units.h"
#include "linux/fs_task.h"
#include "linux/process.h"
#include "vm/engine.h"
#include "vm/layout.h"

#define CLOCK_TICKS 100             /* USER_HZ */

/* ------------------------------------------------------------------ the guest's mappings */

struct map_run {
    uint64_t start, end;
    bool write, exec;
    const char *label;
};

struct maps_walk {
    const struct lx_proc *p;
    FILE *out;                      /* NULL: only count */
    struct map_run run;
    bool have_run;
    uint64_t pages;                 /* present user pages */
    uint64_t image_pages;
};

static const char *label_of(const struct lx_proc *p, uint64_t va)
{
    /* The system area's user pages: code the host provides, and data it publishes. */
    if (va == UENTRY_ADDR || (va >= VDSO_ADDR && va < VDSO_ADDR + VDSO_MAX_SIZE))
        return "[vdso]";
    if (va < SYSTEM_AREA_END)
        return "[vvar]";
    if (va >= SYSTEM_AREA_END && va < p->mm.brk_start)
        return p->task.exe_path;
    if (va >= p->mm.brk_start && va < p->mm.brk_mapped)
        return "[heap]";
    if (va >= p->mm.mmap_limit)
        return "[stack]";
    return "";
}

/* One line as Linux prints it: the name starts at column 74. */
static void print_run(FILE *out, const struct map_run *r)
{
    int n = fprintf(out, "%08llx-%08llx r%c%cp 00000000 00:00 0",
                    (unsigned long long)r->start, (unsigned long long)r->end,
                    r->write ? 'w' : '-', r->exec ? 'x' : '-');
    if (r->label[0])
        fprintf(out, "%*s%s", n < 73 ? 73 - n : 1, "", r->label);
    fputc('\n', out);
}

static void add_leaf(void *ctx, uint64_t va, uint64_t size, bool write, bool exec)
{
    struct maps_walk *w = ctx;
    const char *label = label_of(w->p, va);
    w->pages += size / PAGE;
    if (label == w->p->task.exe_path)
        w->image_pages += size / PAGE;
    if (!w->out)
        return;
    struct map_run *r = &w->run;
    if (w->have_run && r->end == va && r->write == write && r->exec == exec && r->label == label) {
        r->end = va + size;
        return;
    }
    if (w->have_run)
        print_run(w->out, r);
    *r = (struct map_run){ va, va + size, write, exec, label };
    w->have_run = true;
}

static void walk_mappings(struct maps_walk *w)
{
    if (!w->p->vm)
        return;
    vm_for_each_mapping(w->p->vm, add_leaf, w);
    if (w->out && w->have_run)
        print_run(w->out, &w->run);
}

static void usage_pages(const struct lx_proc *p, uint64_t *pages, uint64_t *image_pages)
{
    struct maps_walk w = { .p = p };
    walk_mappings(&w);
    *pages = w.pages;
    *image_pages = w.image_pages;
}

/* ------------------------------------------------------------------ file contents */

static const char *program_name(const struct lx_proc *p, char out[16])
{
    /* Linux keeps the first 15 bytes of the name (TASK_COMM_LEN). */
    const char *slash = strrchr(p->task.exe_path, '/');
    const char *name = slash ? slash + 1 : p->task.exe_path;
    size_t n = strnlen(name, 15);
    memcpy(out, name, n);
    out[n] = 0;
    return out;
}

static void gen_maps(struct lx_proc *p, FILE *out)
{
    struct maps_walk w = { .p = p, .out = out };
    walk_mappings(&w);
}

static uint64_t cpu_ticks(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) < 0)
        return 0;
    return (uint64_t)ts.tv_sec * CLOCK_TICKS + (uint64_t)ts.tv_nsec / (1000000000 / CLOCK_TICKS);
}

static void gen_stat(struct lx_proc *p, FILE *out)
{
    char name[16];
    uint64_t pages, image;
    usage_pages(p, &pages, &image);
    fprintf(out, "%d (%s) R %d %d %d 0 -1 4194304 0 0 0 0 %llu 0 0 0 20 0 1 0 0 %llu %llu "
            "18446744073709551615 0 0 0 0 0 0 %llu 0 0 0 0 0 0 0 0 0 0 0 %llu %llu %llu 0 0 "
            "0 0 0\n",
            p->pid, program_name(p, name), p->ppid, p->pid, p->pid,
            (unsigned long long)cpu_ticks(), (unsigned long long)(pages * PAGE),
            (unsigned long long)pages, (unsigned long long)p->sig.blocked,
            (unsigned long long)p->mm.brk_start, (unsigned long long)p->mm.brk_start,
            (unsigned long long)p->mm.brk_cur);
}

static void gen_statm(struct lx_proc *p, FILE *out)
{
    uint64_t pages, image;
    usage_pages(p, &pages, &image);
    fprintf(out, "%llu %llu 0 %llu 0 %llu 0\n", (unsigned long long)pages,
            (unsigned long long)pages, (unsigned long long)image,
            (unsigned long long)(pages - image));
}

static void gen_status(struct lx_proc *p, FILE *out)
{
    char name[16];
    uint64_t pages, image;
    usage_pages(p, &pages, &image);
    unsigned long long kb = (unsigned long long)(pages * PAGE / 1024);
    fprintf(out, "Name:\t%s\nUmask:\t%04o\nState:\tR (running)\nTgid:\t%d\nNgid:\t0\n"
            "Pid:\t%d\nPPid:\t%d\nTracerPid:\t0\nUid:\t%u\t%u\t%u\t%u\nGid:\t%u\t%u\t%u\t%u\n"
            "FDSize:\t%d\nGroups:\t\nVmPeak:\t%8llu kB\nVmSize:\t%8llu kB\nVmRSS:\t%8llu kB\n"
            "Threads:\t1\nSigBlk:\t%016llx\nCpus_allowed:\t1\nCpus_allowed_list:\t0\n",
            program_name(p, name), p->task.umask & 0777, p->pid, p->pid, p->ppid,
            getuid(), geteuid(), geteuid(), geteuid(), getgid(), getegid(), getegid(),
            getegid(), LX_MAX_FDS, kb, kb, kb, (unsigned long long)p->sig.blocked);
}

static void gen_cmdline(struct lx_proc *p, FILE *out)
{
    const struct lx_env *env = p->env;
    for (int i = 0; env && env->argv && i < env->argc; i++)
        fwrite(env->argv[i], 1, strlen(env->argv[i]) + 1, out);
}

static void gen_comm(struct lx_proc *p, FILE *out)
{
    char name[16];
    fprintf(out, "%s\n", program_name(p, name));
}

static void gen_cgroup(struct lx_proc *p, FILE *out)
{
    (void)p;
    fputs("0::/\n", out);           /* cgroup v2, at the root of what it can see */
}

static void gen_mountinfo(struct lx_proc *p, FILE *out)
{
    (void)p;
    fputs("1 0 0:1 / / rw - rootfs rootfs rw\n"
          "2 1 0:2 / /proc rw,nosuid,nodev,noexec - proc proc rw\n"
          "3 1 0:3 / /sys/fs/cgroup rw,nosuid,nodev,noexec - cgroup2 cgroup2 rw\n", out);
}

static uint64_t memory_total(const struct lx_proc *p)
{
    struct sysinfo si;
    uint64_t host = UINT64_MAX;
    if (sysinfo(&si) == 0 && si.mem_unit && si.totalram <= UINT64_MAX / si.mem_unit)
        host = si.totalram * si.mem_unit;
    uint64_t total = p->vm && vm_mem_size(p->vm) ? vm_mem_size(p->vm) : host;
    return total < host ? total : host;     /* what sysinfo() reports too */
}

static void gen_meminfo(struct lx_proc *p, FILE *out)
{
    uint64_t pages, image;
    usage_pages(p, &pages, &image);
    uint64_t total = memory_total(p) / 1024, used = pages * PAGE / 1024;
    uint64_t free_kb = used < total ? total - used : 0;
    fprintf(out, "MemTotal:       %8llu kB\nMemFree:        %8llu kB\n"
            "MemAvailable:   %8llu kB\nBuffers:               0 kB\nCached:                0 kB\n"
            "SwapCached:            0 kB\nSwapTotal:             0 kB\nSwapFree:              0 kB\n"
            "Shmem:                 0 kB\nHugePages_Total:       0\nHugePages_Free:        0\n"
            "Hugepagesize:       2048 kB\n",
            (unsigned long long)total, (unsigned long long)free_kb, (unsigned long long)free_kb);
}

static void gen_osrelease(struct lx_proc *p, FILE *out)
{
    (void)p;
    struct utsname u;
    fprintf(out, "%s\n", uname(&u) == 0 ? u.release : "6.1.0");   /* as uname() reports */
}

static void gen_cpu_list(struct lx_proc *p, FILE *out)
{
    (void)p;
    fputs("0\n", out);              /* one vCPU */
}

static void gen_cpu_max(struct lx_proc *p, FILE *out)
{
    (void)p;
    fputs("100000 100000\n", out);  /* one CPU's worth per period */
}

static void gen_memory_max(struct lx_proc *p, FILE *out)
{
    uint64_t mib = p->env ? p->env->memory_max_mib : 0;
    if (mib && mib <= UINT64_MAX / MIB)
        fprintf(out, "%llu\n", (unsigned long long)(mib * MIB));
    else
        fputs("max\n", out);
}

static void gen_memory_current(struct lx_proc *p, FILE *out)
{
    uint64_t pages, image;
    usage_pages(p, &pages, &image);
    fprintf(out, "%llu\n", (unsigned long long)(pages * PAGE));
}

static void gen_max(struct lx_proc *p, FILE *out) { (void)p; fputs("max\n", out); }
static void gen_zero(struct lx_proc *p, FILE *out) { (void)p; fputs("0\n", out); }
static void gen_somaxconn(struct lx_proc *p, FILE *out) { (void)p; fputs("4096\n", out); }

static void gen_thp(struct lx_proc *p, FILE *out)
{
    bool on = p->env && p->env->transparent_hugepages;
    fputs(on ? "always [madvise] never\n" : "always madvise [never]\n", out);
}

typedef void (*pfs_gen)(struct lx_proc *p, FILE *out);

struct pfs_file {
    const char *name;       /* under /proc/self/ when it has no leading '/' */
    pfs_gen gen;
    bool writable;
};

static const struct pfs_file files[] = {
    { "maps", gen_maps, false },
    { "stat", gen_stat, false },
    { "statm", gen_statm, false },
    { "status", gen_status, false },
    { "cmdline", gen_cmdline, false },
    { "comm", gen_comm, true },
    { "cgroup", gen_cgroup, false },
    { "mountinfo", gen_mountinfo, false },
    { "/proc/meminfo", gen_meminfo, false },
    { "/proc/sys/kernel/osrelease", gen_osrelease, false },
    { "/proc/sys/vm/overcommit_memory", gen_zero, false },
    { "/proc/sys/net/core/somaxconn", gen_somaxconn, false },
    { "/sys/devices/system/cpu/online", gen_cpu_list, false },
    { "/sys/devices/system/cpu/possible", gen_cpu_list, false },
    { "/sys/devices/system/cpu/present", gen_cpu_list, false },
    { "/sys/fs/cgroup/cpu.max", gen_cpu_max, false },
    { "/sys/fs/cgroup/memory.max", gen_memory_max, false },
    { "/sys/fs/cgroup/memory.high", gen_max, false },
    { "/sys/fs/cgroup/memory.swap.max", gen_zero, false },
    { "/sys/fs/cgroup/memory.current", gen_memory_current, false },
    { "/sys/kernel/mm/transparent_hugepage/enabled", gen_thp, false },
};

/* Never shown: the host process's memory, environment and auxiliary vector live there. */
static const char *const hidden[] = { "mem", "environ", "auxv", "pagemap", "syscall",
                                      "stack", "personality", "io" };

/* ------------------------------------------------------------------ lookup */

/* The part after `prefix` and a slash ("" for the prefix itself), or NULL. */
static const char *after_prefix(const char *path, const char *prefix)
{
    size_t n = strlen(prefix);
    if (strncmp(path, prefix, n) != 0 || (path[n] != 0 && path[n] != '/'))
        return NULL;
    return path[n] ? path + n + 1 : "";
}

/* "/proc/self/x", "/proc/PID/x", "/proc/thread-self/x", "/proc/self/task/TID/x": the part
 * after the process prefix ("" for the directory itself), or NULL for other paths. */
static const char *self_part(const struct lx_proc *p, const char *path)
{
    char prefixes[5][64];
    int tid = lx_current_tid(p);
    snprintf(prefixes[0], sizeof prefixes[0], "/proc/self/task/%d", tid);
    snprintf(prefixes[1], sizeof prefixes[1], "/proc/%d/task/%d", p->pid, tid);
    snprintf(prefixes[2], sizeof prefixes[2], "/proc/thread-self");
    snprintf(prefixes[3], sizeof prefixes[3], "/proc/self");
    snprintf(prefixes[4], sizeof prefixes[4], "/proc/%d", p->pid);
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
        const char *rest = after_prefix(path, prefixes[i]);
        if (rest)
            return rest;
    }
    return NULL;
}

static int link_to(struct pfs_node *out, const char *text, const char *target, const char *rest)
{
    out->kind = PFS_LINK;
    snprintf(out->link_text, sizeof out->link_text, "%s", text);
    if ((size_t)snprintf(out->target, sizeof out->target, "%s%s%s", target, rest[0] ? "/" : "",
                         rest) >= sizeof out->target)
        return -ENAMETOOLONG;
    return 0;
}

/* /proc/self/fd/N[/rest] */
static int lookup_fd(struct lx_proc *p, const char *spec, struct pfs_node *out)
{
    char *end;
    errno = 0;
    long n = strtol(spec, &end, 10);
    if (errno || end == spec || (*end && *end != '/') || n < 0 || n >= LX_MAX_FDS ||
        (spec[0] == '0' && end - spec > 1))
        return -ENOENT;
    const char *rest = *end ? end + 1 : "";
    const struct lx_fd *f = fdt_get(&p->fds, (int)n);
    if (!f)
        return -ENOENT;
    int host = f->host_fd;
    char guest[PATH_MAX];
    int err = fsp_guest_path_of_fd(fs_policy(p), host, guest);
    if (err == 0) {
        char view[PATH_MAX];
        fs_view(p, guest, view);
        return link_to(out, view, guest, rest);
    }
    if (rest[0])
        return -ENOTDIR;
    /* A nameless object (pipe:[123], socket:[45], anon_inode:...): reopened as itself. */
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", host);
    ssize_t len = readlink(link, out->link_text, sizeof out->link_text - 1);
    if (len < 0)
        return -ENOENT;
    out->link_text[len] = 0;
    out->kind = PFS_GUEST_FD;
    out->guest_fd = (int)n;
    return 0;
}

static int content(struct pfs_node *out, const char *path, bool writable)
{
    out->kind = PFS_CONTENT;
    out->writable = writable;
    snprintf(out->target, sizeof out->target, "%s", path);
    return 0;
}

/* `path` is normalised up to its first link component; what follows that stays raw. */
static int lookup_normal(struct lx_proc *p, const char *path, struct pfs_node *out)
{
    const char *self = self_part(p, path);
    if (self) {
        const char *slash = strchrnul(self, '/');
        size_t n = (size_t)(slash - self);
        const char *rest = *slash ? slash + 1 : "";
        if (n == 3 && strncmp(self, "exe", 3) == 0)
            return link_to(out, p->task.exe_path, p->task.exe_path, rest);
        char view[PATH_MAX];
        if (n == 3 && strncmp(self, "cwd", 3) == 0) {
            fs_view(p, p->task.cwd, view);
            return link_to(out, view, p->task.cwd, rest);
        }
        if (n == 4 && strncmp(self, "root", 4) == 0)
            return link_to(out, "/", p->task.root[0] ? p->task.root : "/", rest);
        if (n == 2 && strncmp(self, "fd", 2) == 0 && rest[0])
            return lookup_fd(p, rest, out);
        for (size_t i = 0; i < sizeof hidden / sizeof hidden[0]; i++)
            if (strcmp(self, hidden[i]) == 0)
                return -EACCES;
        for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
            if (files[i].name[0] != '/' && strcmp(self, files[i].name) == 0)
                return content(out, path, files[i].writable);
        }
        return -ENOENT;
    }
    if (strcmp(path, "/proc/self") == 0 || strcmp(path, "/proc/thread-self") == 0)
        return -ENOENT;             /* directories are not listed (handled by self_part) */
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        if (files[i].name[0] == '/' && strcmp(path, files[i].name) == 0)
            return content(out, path, files[i].writable);
    }
    return -ENOENT;
}

/* Whether the normalised path names one of the links (exe, cwd, root, fd/N). */
static bool is_link_node(const struct lx_proc *p, const char *path)
{
    const char *self = self_part(p, path);
    if (!self)
        return false;
    if (!strcmp(self, "exe") || !strcmp(self, "cwd") || !strcmp(self, "root"))
        return true;
    return strncmp(self, "fd/", 3) == 0 && self[3] && !strchr(self + 3, '/');
}

/* Components are taken one by one, ".." lexically (nothing here is a directory of its own)
 * until a link: what follows a link is resolved from its target, through the policy, as
 * the kernel would ("/proc/self/cwd/.." is the parent of the working directory). */
int pfs_lookup(struct lx_proc *p, const char *path, struct pfs_node *out)
{
    memset(out, 0, sizeof *out);
    out->guest_fd = -1;
    fs_ready(p);
    char prefix[PATH_MAX] = "", joined[PATH_MAX];
    size_t len = 0;
    const char *s = path;
    for (;;) {
        while (*s == '/')
            s++;
        if (!*s)
            break;
        const char *end = strchrnul(s, '/');
        int err = fsp_push_component(prefix, sizeof prefix, &len, s, (size_t)(end - s));
        if (err)
            return err;
        prefix[len] = 0;
        s = end;
        if (len == 0 || !fsp_is_pseudo(prefix))     /* "/proc/..": back to the policy */
            return link_to(out, "", len ? prefix : "/", s[0] == '/' ? s + 1 : s);
        if (is_link_node(p, prefix)) {
            if ((size_t)snprintf(joined, sizeof joined, "%s%s", prefix, s) >= sizeof joined)
                return -ENAMETOOLONG;
            return lookup_normal(p, joined, out);
        }
    }
    if (len == 0)
        return link_to(out, "", "/", "");
    return lookup_normal(p, prefix, out);
}

static const struct pfs_file *file_for(const struct lx_proc *p, const char *path)
{
    const char *self = self_part(p, path);
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        const char *name = files[i].name;
        if (name[0] == '/' ? strcmp(path, name) == 0 : self && strcmp(self, name) == 0)
            return &files[i];
    }
    return NULL;
}

int pfs_open_content(struct lx_proc *p, const struct pfs_node *node, int flags)
{
    const struct pfs_file *file = file_for(p, node->target);
    if (!file)
        return -ENOENT;
    int accmode = flags & O_ACCMODE;
    if ((accmode != O_RDONLY || (flags & O_TRUNC)) && !node->writable)
        return -EACCES;
    if (flags & O_DIRECTORY)
        return -ENOTDIR;
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    if (!out)
        return -ENOMEM;
    file->gen(p, out);
    if (fclose(out) != 0) {
        free(text);
        return -ENOMEM;
    }
    int fd = memfd_create("kvmserver-proc", MFD_CLOEXEC);
    if (fd < 0) {
        int err = -errno;
        free(text);
        return err;
    }
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, text + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int err = n < 0 ? -errno : -EIO;
            free(text);
            close(fd);
            return err;
        }
        done += (size_t)n;
    }
    free(text);
    if (accmode == O_RDONLY) {
        /* Reopened read-only so the guest's writes fail as on Linux. */
        char link[64];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        int ro = open(link, O_RDONLY | O_CLOEXEC | (flags & O_NONBLOCK));
        int err = -errno;
        close(fd);
        if (ro < 0)
            return err;
        fd = ro;
    }
    return fd;
}

long pfs_readlink(struct lx_proc *p, const char *path, char *buf, size_t cap)
{
    const char *text;
    char ids[48];
    struct pfs_node node;
    if (strcmp(path, "/proc/self") == 0) {
        snprintf(ids, sizeof ids, "%d", p->pid);
        text = ids;
    } else if (strcmp(path, "/proc/thread-self") == 0) {
        snprintf(ids, sizeof ids, "%d/task/%d", p->pid, lx_current_tid(p));
        text = ids;
    } else {
        int err = pfs_lookup(p, path, &node);
        if (err)
            return err;
        if (node.kind == PFS_CONTENT)
            return -EINVAL;         /* not a link */
        if (node.kind == PFS_LINK && strcmp(node.target, node.link_text) != 0)
            return -ENOTDIR;        /* "/proc/self/cwd/x" is no link itself: resolve it */
        text = node.link_text;
    }
    size_t len = strlen(text);
    if (len > cap)
        len = cap;
    memcpy(buf, text, len);
    return (long)len;
}
