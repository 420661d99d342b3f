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

#include "linux/process.h"
#include "linux/syscalls.h"
#include "vm/guest_mem.h"
#include "vm/vm.h"

#define MIB (1ull << 20)
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
        uint64_t size = p->vm ? p->vm->user_end : GUEST_RLIM_INFINITY;
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
    uint64_t total = p->vm && p->vm->mem_size < host_total ? p->vm->mem_size : host_total;
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
