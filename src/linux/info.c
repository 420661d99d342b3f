/* Identity, limits and machine information. The guest sees itself as pid 1 on a one-CPU
 * machine named "kvmserver" whose memory is its own address space; user ids are the host's,
 * matching what the loader puts in the auxiliary vector. */
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "base/units.h"
#include "linux/process.h"
#include "linux/syscalls.h"
#include "vm/engine.h"
#include "vm/guest_mem.h"

#define GETRANDOM_MAX (32 * MIB)   /* per call; callers loop on short counts */
#define GUEST_RLIM_INFINITY UINT64_MAX

_Static_assert(sizeof(struct utsname) == 6 * 65, "struct new_utsname layout");
_Static_assert(sizeof(struct sysinfo) == 112, "x86-64 struct sysinfo layout");

static void set_field(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = 0;
}

long sys_uname(struct lx_proc *p, const uint64_t a[6])
{
    struct utsname host, u;
    if (uname(&host) < 0)
        return -errno;
    memset(&u, 0, sizeof u);
    set_field(u.sysname, sizeof u.sysname, "Linux");
    set_field(u.nodename, sizeof u.nodename, "kvmserver");
    set_field(u.release, sizeof u.release, host.release);
    set_field(u.version, sizeof u.version, host.version);
    set_field(u.machine, sizeof u.machine, "x86_64");
    set_field(u.domainname, sizeof u.domainname, "(none)");
    return gm_write(p->vm, a[0], &u, sizeof u);
}

long sys_getpid(struct lx_proc *p, const uint64_t a[6]) { (void)a; return p->pid; }
long sys_gettid(struct lx_proc *p, const uint64_t a[6]) { (void)a; return lx_current_tid(p); }
long sys_getppid(struct lx_proc *p, const uint64_t a[6]) { (void)a; return p->ppid; }
long sys_getuid(struct lx_proc *p, const uint64_t a[6]) { (void)p; (void)a; return getuid(); }
long sys_geteuid(struct lx_proc *p, const uint64_t a[6]) { (void)p; (void)a; return geteuid(); }
long sys_getgid(struct lx_proc *p, const uint64_t a[6]) { (void)p; (void)a; return getgid(); }
long sys_getegid(struct lx_proc *p, const uint64_t a[6]) { (void)p; (void)a; return getegid(); }

/* ---- identity: the sandbox's ids are fixed (the host process's own) ------------------
 * A program started as root that drops its rights (setgroups, setgid, setuid...) is told
 * it did: it has none to lose here. Afterwards it still sees the same ids, and it holds
 * no capabilities. A program that is not root gets EPERM for any other id, as on Linux. */

static bool sandbox_root(void) { return geteuid() == 0; }

/* Each id is -1 (unchanged), or the sandbox's own, or anything when root. */
static long set_ids(const uint64_t *id, int n, unsigned own)
{
    for (int i = 0; i < n; i++) {
        unsigned v = (unsigned)id[i];
        if (v != (unsigned)-1 && v != own && !sandbox_root())
            return -EPERM;
    }
    return 0;
}

long sys_setuid(struct lx_proc *p, const uint64_t a[6]) { (void)p; return set_ids(a, 1, getuid()); }
long sys_setgid(struct lx_proc *p, const uint64_t a[6]) { (void)p; return set_ids(a, 1, getgid()); }
long sys_setreuid(struct lx_proc *p, const uint64_t a[6]) { (void)p; return set_ids(a, 2, getuid()); }
long sys_setregid(struct lx_proc *p, const uint64_t a[6]) { (void)p; return set_ids(a, 2, getgid()); }
long sys_setresuid(struct lx_proc *p, const uint64_t a[6]) { (void)p; return set_ids(a, 3, getuid()); }
long sys_setresgid(struct lx_proc *p, const uint64_t a[6]) { (void)p; return set_ids(a, 3, getgid()); }
long sys_setfsuid(struct lx_proc *p, const uint64_t a[6]) { (void)p; (void)a; return getuid(); }
long sys_setfsgid(struct lx_proc *p, const uint64_t a[6]) { (void)p; (void)a; return getgid(); }

static long write_ids(struct lx_proc *p, const uint64_t *gva, unsigned v)
{
    uint32_t ids[3] = { v, v, v };
    for (int i = 0; i < 3; i++)
        if (gm_write(p->vm, gva[i], &ids[i], sizeof ids[i]))
            return -EFAULT;
    return 0;
}

long sys_getresuid(struct lx_proc *p, const uint64_t a[6]) { return write_ids(p, a, getuid()); }
long sys_getresgid(struct lx_proc *p, const uint64_t a[6]) { return write_ids(p, a, getgid()); }

long sys_getgroups(struct lx_proc *p, const uint64_t a[6])
{
    int size = (int)(uint32_t)a[0];
    if (size < 0)
        return -EINVAL;
    if (p->task.ngroups && size) {
        if (size < p->task.ngroups)
            return -EINVAL;
        uint32_t gid = getgid();
        if (gm_write(p->vm, a[1], &gid, sizeof gid))
            return -EFAULT;
    }
    return p->task.ngroups;
}

long sys_setgroups(struct lx_proc *p, const uint64_t a[6])
{
    uint64_t n = a[0];
    if (n > 65536)
        return -EINVAL;
    if (!sandbox_root())
        return -EPERM;
    /* Whatever the list, the sandbox's only group is its own gid. */
    for (uint64_t i = 0; i < n; i++) {
        uint32_t gid;
        if (gm_read(p->vm, &gid, a[1] + i * sizeof gid, sizeof gid))
            return -EFAULT;
    }
    p->task.ngroups = n ? 1 : 0;
    return 0;
}

#define CAP_V1 0x19980330u
#define CAP_V2 0x20071026u
#define CAP_V3 0x20080522u

struct guest_cap_header { uint32_t version; int32_t pid; };
struct guest_cap_data { uint32_t effective, permitted, inheritable; };

/* The number of data words for a header, or -EINVAL after writing the preferred version
 * back (as Linux does for an unknown one). */
static long cap_words(struct lx_proc *p, uint64_t hdr_gva, struct guest_cap_header *h)
{
    if (gm_read(p->vm, h, hdr_gva, sizeof *h))
        return -EFAULT;
    if (h->version == CAP_V1)
        return 1;
    if (h->version == CAP_V2 || h->version == CAP_V3)
        return 2;
    uint32_t v3 = CAP_V3;
    if (gm_write(p->vm, hdr_gva, &v3, sizeof v3))
        return -EFAULT;
    return -EINVAL;
}

long sys_capget(struct lx_proc *p, const uint64_t a[6])
{
    struct guest_cap_header h;
    long n = cap_words(p, a[0], &h);
    if (n < 0)
        return a[1] || n != -EINVAL ? n : 0;    /* a version probe with no data: 0 */
    if (h.pid < 0)
        return -EINVAL;
    if (!lx_is_self(p, h.pid) && !lx_thread_exists(p, h.pid))
        return -ESRCH;
    struct guest_cap_data none[2] = { 0 };      /* the sandbox holds no capabilities */
    return a[1] && gm_write(p->vm, a[1], none, (size_t)n * sizeof none[0]) ? -EFAULT : 0;
}

long sys_capset(struct lx_proc *p, const uint64_t a[6])
{
    struct guest_cap_header h;
    long n = cap_words(p, a[0], &h);
    if (n < 0)
        return n;
    if (!lx_is_self(p, h.pid))
        return -EPERM;
    struct guest_cap_data want[2];
    if (gm_read(p->vm, want, a[1], (size_t)n * sizeof want[0]))
        return -EFAULT;
    /* Dropping what it does not hold is fine; asking for any capability is not. */
    for (long i = 0; i < n; i++)
        if (want[i].effective || want[i].permitted || want[i].inheritable)
            return -EPERM;
    return 0;
}

long sys_getrandom(struct lx_proc *p, const uint64_t a[6])
{
    unsigned int flags = (uint32_t)a[2];
    if (flags & ~(unsigned)(GRND_NONBLOCK | GRND_RANDOM | GRND_INSECURE))
        return -EINVAL;
    if ((flags & GRND_INSECURE) && (flags & GRND_RANDOM))
        return -EINVAL;
    size_t len = a[1] > GETRANDOM_MAX ? GETRANDOM_MAX : (size_t)a[1];
    if (len == 0)
        return 0;
    unsigned char *buf = gm_span(p->vm, a[0], len, GM_WRITE);
    if (!buf)
        return -EFAULT;
    /* The host pool is long initialised, so RANDOM and INSECURE change nothing there. */
    size_t done = 0;
    while (done < len) {
        ssize_t n = getrandom(buf + done, len - done, flags & GRND_NONBLOCK);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return done ? (long)done : -errno;
        }
        if (n == 0)
            break;
        done += (size_t)n;
    }
    return (long)done;
}

struct guest_rlimit {
    uint64_t cur, max;
};

static struct guest_rlimit limit_of(const struct lx_proc *p, unsigned int resource)
{
    switch (resource) {
    case RLIMIT_STACK:
        return (struct guest_rlimit){ 8 * MIB, GUEST_RLIM_INFINITY };
    case RLIMIT_NOFILE:
        return (struct guest_rlimit){ LX_MAX_FDS, LX_MAX_FDS };
    case RLIMIT_AS: {
        uint64_t size = p->vm ? vm_user_end(p->vm) : GUEST_RLIM_INFINITY;
        return (struct guest_rlimit){ size, size };
    }
    default:
        return (struct guest_rlimit){ GUEST_RLIM_INFINITY, GUEST_RLIM_INFINITY };
    }
}

/* Limits are fixed by the VM: a request that stays within them is accepted (and changes
 * nothing), raising a hard limit past them is -EPERM as for an unprivileged process. */
static long do_prlimit(struct lx_proc *p, unsigned int resource, uint64_t new_gva,
                       uint64_t old_gva)
{
    struct guest_rlimit want;
    if (new_gva && gm_read(p->vm, &want, new_gva, sizeof want))
        return -EFAULT;
    if (resource >= RLIM_NLIMITS)
        return -EINVAL;
    struct guest_rlimit cur = limit_of(p, resource);
    if (new_gva) {
        if (want.cur > want.max)
            return -EINVAL;
        if (want.max > cur.max)
            return -EPERM;
    }
    if (old_gva && gm_write(p->vm, old_gva, &cur, sizeof cur))
        return -EFAULT;
    return 0;
}

long sys_prlimit64(struct lx_proc *p, const uint64_t a[6])
{
    int pid = (int)(uint32_t)a[0];
    if (!lx_is_self(p, pid))
        return -ESRCH;
    return do_prlimit(p, (uint32_t)a[1], a[2], a[3]);
}

long sys_getrlimit(struct lx_proc *p, const uint64_t a[6])
{
    unsigned int resource = (uint32_t)a[0];
    if (resource >= RLIM_NLIMITS)
        return -EINVAL;
    struct guest_rlimit cur = limit_of(p, resource);
    return gm_write(p->vm, a[1], &cur, sizeof cur);
}

long sys_sched_getaffinity(struct lx_proc *p, const uint64_t a[6])
{
    unsigned int len = (uint32_t)a[1];
    /* Linux: the mask must hold every possible CPU and be a whole number of longs. */
    if (len == 0 || len % sizeof(uint64_t))
        return -EINVAL;
    int pid = (int)(uint32_t)a[0];
    if (!lx_is_self(p, pid))
        return -ESRCH;
    uint64_t mask = 1;          /* one CPU: cpu 0 */
    if (gm_write(p->vm, a[2], &mask, sizeof mask))
        return -EFAULT;
    return sizeof mask;
}

long sys_sched_yield(struct lx_proc *p, const uint64_t a[6])
{
    (void)a;
    if (lx_multithreaded(p))
        return lx_thread_yield(p);  /* the other guest threads go first */
    sched_yield();              /* a spinning guest lets other host work run */
    return 0;
}

static uint64_t mul_sat(uint64_t x, uint64_t y)
{
    uint64_t r;
    return __builtin_mul_overflow(x, y, &r) ? UINT64_MAX : r;
}

long sys_sysinfo(struct lx_proc *p, const uint64_t a[6])
{
    struct sysinfo host, s;
    if (sysinfo(&host) < 0)
        return -errno;
    uint64_t host_total = mul_sat(host.totalram, host.mem_unit);
    uint64_t host_free = mul_sat(host.freeram, host.mem_unit);
    uint64_t total = p->vm && vm_mem_size(p->vm) < host_total ? vm_mem_size(p->vm) : host_total;
    struct timespec up;
    clock_gettime(CLOCK_BOOTTIME, &up);

    memset(&s, 0, sizeof s);
    s.uptime = up.tv_sec;
    s.totalram = total;
    s.freeram = host_free < total ? host_free : total;
    s.procs = 1;
    s.mem_unit = 1;
    return gm_write(p->vm, a[0], &s, sizeof s);
}
