/* Syscall fuzzer: random system calls with adversarial arguments, seeded and reproducible.
 *
 *   fuzz_syscalls run SEED COUNT [THREADS [trace] [skip=N,N...]]
 *                                            COUNT calls, summary on stdout (trace: each
 *                                            call and its result too; skip: never these)
 *   fuzz_syscalls serve PORT [DIR]           each connection sends "SEED COUNT THREADS\n" and
 *                                            gets the summary line back (use with -e); DIR
 *                                            (default: the cwd) is where its paths point
 *
 * Only ever run it inside kvmserver: natively it would make the same calls on the host (it
 * refuses to start there). Each of THREADS guest threads draws COUNT/THREADS calls from its
 * own generator (seed, thread index), so each thread's sequence of calls is reproducible;
 * how the threads interleave is not (they are switched at blocking calls). Thread 0 first
 * sweeps every number 0-462 once; then numbers are 0-462 mostly, plus numbers past the
 * table, x32 numbers and random 64-bit ones. Arguments are typed per call where the host
 * has a handler (fd, buffer, length, flags, path, struct...), each drawn from adversarial
 * classes: page 0, the system area, the shared page, the clock page and vDSO, a read-only
 * page, unmapped and non-canonical ranges, just across the ends of mappings; huge and
 * negative lengths, bogus fds, flags with every bit set.
 *
 * What would end the guest legitimately is excluded, so a run that does not finish is a
 * finding: exit, exit_group and rt_sigreturn are never made; signals sent are ones this
 * program handles (every catchable non-fault signal gets a handler that returns); a
 * sigaction installs only that handler, SIG_IGN or (fault signals) SIG_DFL; memory calls
 * aim only at our own 256 MiB region, the system area and impossible addresses, never at
 * the program itself; brk never shrinks below the heap; arch_prctl(SET_FS) is undone at
 * once; after a call that pointed into the shared page, its spin count is put back (a
 * handler writing there can set one that stalls every later call until the time limit); a clone's child exits at once; the connection (or the report's fd) is never an fd argument, and a request
 * VM makes no accept calls (either would end the request). Blocking
 * calls end because an interval timer raises SIGALRM every 20 ms (re-armed after a fuzzed
 * alarm or setitimer) and the main thread, which makes no fuzzed calls, sends it to every
 * worker as often.
 *
 * Rules checked on every answer: a result is a success or -1..-133 (no kernel-internal
 * codes such as -ERESTARTSYS); numbers past the table and x32 numbers (the low 32 bits, as
 * Linux reads RAX) answer ENOSYS; the stub page, the vDSO and a read-only page of ours never change.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#ifndef SA_RESTORER
#define SA_RESTORER 0x04000000
#endif

#define NR_LINUX     463            /* numbers Linux defines stop below this */
#define NR_TRACKED   512
#define MAX_THREADS  8
#define REPORT_FD    1000           /* run mode: where the report goes */
#define REGION_SIZE  (256ul << 20)  /* our memory calls' playground */
#define ARENA_OFF    (64ul << 20)   /* the arena: mapped read-write inside the region */
#define ARENA_SIZE   (4ul << 20)
#define PREP_SIZE    (64ul << 10)   /* per thread: structs built before each call, a guard after */
#define LOW_CAP      0x3f0000ul     /* below the program (linked at 0x400000) */
#define KICK_NS      20000000l
#define MAX_BAD      4

static uint8_t *region, *arena, *canary;
static uint64_t brk_floor, restorer;
static long self_pid;
static uint64_t shared_spin, shared_enabled;     /* the shared page as the host set it */
static int conn_fd = REPORT_FD;     /* where the report goes: never closed, never an fd argument */
static int trace;                   /* run ... trace: each call before it is made */
static uint8_t skip[NR_LINUX];      /* run ... skip=N,N...: numbers never made */
static char dir[256] = "/tmp";
static long top_page_mapped;

static long raw(long n, long a, long b, long c, long d, long e, long f)
{
    register long r10 __asm__("r10") = d, r8 __asm__("r8") = e, r9 __asm__("r9") = f;
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10),
                     "r"(r8), "r"(r9) : "rcx", "r11", "memory");
    return ret;
}

/* clone and clone3: a child that starts here exits at once, touching no stack. */
static long raw_clone(long n, long a, long b, long c, long d, long e)
{
    register long r10 __asm__("r10") = d, r8 __asm__("r8") = e;
    long ret;
    __asm__ volatile("syscall\n\t"
                     "test %%rax, %%rax\n\t"
                     "jnz 1f\n\t"
                     "mov $60, %%eax\n\t"
                     "xor %%edi, %%edi\n\t"
                     "syscall\n\t"
                     "ud2\n"
                     "1:"
                     : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8)
                     : "rcx", "r11", "memory");
    return ret;
}

static void say(int fd, const char *s) { (void)!raw(SYS_write, fd, (long)s, (long)strlen(s), 0, 0, 0); }

/* ---- generator ---------------------------------------------------------------------- */

struct worker {
    uint64_t rng;
    int index, tid;
    long count, calls;
    uint8_t *prep;
    int fds[16];
    unsigned nfds;
    uint8_t called[NR_TRACKED / 8], answered[NR_TRACKED / 8], succeeded[NR_TRACKED / 8];
    unsigned nbad;
    char bad[MAX_BAD][160];
    atomic_int done;
    pthread_t thread;
};

static struct worker workers[MAX_THREADS];
static int nworkers;
static _Atomic int tids[MAX_THREADS];

static uint64_t next(struct worker *w)     /* splitmix64 */
{
    uint64_t z = (w->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static uint64_t below(struct worker *w, uint64_t n) { return next(w) % n; }
#define PICK(w, arr) ((arr)[below(w, sizeof(arr) / sizeof((arr)[0]))])

static const char *const paths[] = {
    "", "/", ".", "..", "/dev/null", "/dev/zero", "/dev/urandom", "/dev/tty", "/proc/self/maps",
    "/proc/self/status", "/proc/self/fd/0", "/proc/self/fd", "/proc/self/exe",
    "/proc/self/root", "/proc/self/cwd", "/proc/1/mem", "/proc/self/mem", "/proc/cpuinfo",
    "/sys/devices/system/cpu/online", "/etc/passwd", "/tmp", "a", "a/b", "../../../../etc/shadow",
    "//////", "/dev/../dev/null", "fuzz_syscalls",
};
static char dir_paths[6][300];

/* Buffer pointers: the host may read or write there. Never our own memory. */
static uint64_t gen_ptr(struct worker *w)
{
    uint64_t r = next(w) >> 8;
    switch (below(w, 22)) {
    case 0: case 1: case 2: case 3: case 4:
        return (uint64_t)arena + r % ARENA_SIZE;
    case 5: return (uint64_t)arena + (r % ARENA_SIZE & ~0xffful);
    case 6: return (uint64_t)arena + ARENA_SIZE - 1 - r % 64;          /* across the end */
    case 7: return (uint64_t)arena - 1 - r % 64;                       /* before the start */
    case 8: return 0;
    case 9: return r % 4096;                                           /* page 0 */
    case 10: return 0x1000 + r % 0xf000;                               /* system area */
    case 11: return 0xb000 + r % 4096;                                 /* shared page */
    case 12: return 0x4000 + r % 0x4000;                               /* stub, clock, vDSO */
    case 13: return (uint64_t)canary + r % 4096;                       /* read-only */
    case 14: return (uint64_t)region + r % REGION_SIZE;                /* PROT_NONE mostly */
    case 15: return (uint64_t)PICK(w, paths);                          /* our .rodata */
    case 16: return 0x0000800000000000ull - (top_page_mapped ? 0 : r % 64) + r % 64;
    case 17: return 0xffff800000000000ull + r % 0x100000;
    case 18: return 0xffffffffff600000ull + r % 4096;                  /* vsyscall page */
    case 19: return ~0ull - r % 64;
    case 20: return 0x8000000000000000ull | r;
    default: return next(w);
    }
}

static uint64_t gen_len(struct worker *w)
{
    static const uint64_t fixed[] = {0, 1, 4096, ARENA_SIZE, 0x7fffffff, 0x80000000, 0xffffffff,
                                     1ull << 32, 1ull << 47, 1ull << 63, ~0ull, -4096ull};
    switch (below(w, 8)) {
    case 0: case 1: return below(w, 17);
    case 2: case 3: return below(w, 4097);
    case 4: return below(w, 1 << 20);
    case 5: return ~0ull - below(w, 16);
    case 6: return next(w);
    default: return PICK(w, fixed);
    }
}

static uint64_t gen_flags(struct worker *w)
{
    switch (below(w, 7)) {
    case 0: return 0;
    case 1: return ~0ull;
    case 2: return 0xffffffff;
    case 3: return 1ull << below(w, 64);
    case 4: return next(w) & 0xfff;
    case 5: return next(w) & 0x7ffff;
    default: return next(w);
    }
}

static uint64_t gen_int(struct worker *w)
{
    static const uint64_t fixed[] = {0, 1, 2, 3, -1ull, 0x80000000, 0x7fffffff, 0xffffffff,
                                     0x8000000000000000ull, 1ull << 32};
    switch (below(w, 6)) {
    case 0: case 1: return below(w, 16);
    case 2: return below(w, 1100);
    case 3: return (uint32_t)next(w);
    case 4: return next(w);
    default: return PICK(w, fixed);
    }
}

static uint64_t gen_fd_any(struct worker *w)
{
    switch (below(w, 12)) {
    case 0: return -1ull;
    case 1: return (uint64_t)(int64_t)AT_FDCWD;
    case 2: case 3: case 4: return below(w, 3);
    case 5: case 6: return 3 + below(w, 30);
    case 7: case 8: case 9: return w->nfds ? (uint64_t)w->fds[below(w, w->nfds)] : below(w, 8);
    case 10: return below(w, 1100);
    default: return PICK(w, ((const uint64_t[]){0x7fffffff, 0x80000000, 0xffffffff,
                                                 1ull << 32, next(w)}));
    }
}

static uint64_t gen_fd(struct worker *w)
{
    uint64_t fd = gen_fd_any(w);
    return (uint32_t)fd == (uint32_t)conn_fd ? fd + 1 : fd;
}

/* Signals a fuzzed call may send or name in a sigevent: all handled, none fatal. */
static uint64_t gen_sig(struct worker *w)
{
    static const uint64_t sigs[] = {0, SIGHUP, SIGINT, SIGQUIT, SIGABRT, SIGUSR1, SIGUSR2, SIGPIPE,
                                    SIGALRM, SIGTERM, SIGSTKFLT, SIGCHLD, SIGCONT, SIGTSTP, SIGTTIN,
                                    SIGTTOU, SIGURG, SIGXCPU, SIGXFSZ, SIGVTALRM, SIGPROF, SIGWINCH,
                                    SIGIO, SIGPWR, SIGSYS, 34, 40, 64, 65, 1000, -1ull, 0x80000000};
    return PICK(w, sigs);
}

static uint64_t gen_pid(struct worker *w)
{
    switch (below(w, 8)) {
    case 0: return 0;
    case 1: return -1ull;
    case 2: case 3: return (uint64_t)self_pid;
    case 4: return 1;
    case 5: return 300 + below(w, 100);
    case 6: return (uint32_t)next(w);
    default: return (uint64_t)-(int64_t)self_pid;
    }
}

static uint64_t gen_tid(struct worker *w)
{
    switch (below(w, 5)) {
    case 0: return 0;
    case 1: return -1ull;
    case 2: return below(w, 100000);
    default: return (uint64_t)tids[below(w, nworkers)];
    }
}

static uint64_t gen_path(struct worker *w)
{
    switch (below(w, 10)) {
    case 0: case 1: case 2: return (uint64_t)PICK(w, paths);
    case 3: case 4: case 5: return (uint64_t)dir_paths[below(w, 6)];
    case 6: {                               /* no NUL before the guard page */
        size_t n = 1 + below(w, 64);
        memset(w->prep + PREP_SIZE - n, 'a', n);
        return (uint64_t)w->prep + PREP_SIZE - n;
    }
    case 7: {                               /* longer than PATH_MAX */
        char *p = (char *)w->prep + 0x8000;
        size_t n = 4000 + below(w, 300);
        for (size_t i = 0; i < n; i++)
            p[i] = i % 2 ? '/' : 'a';
        p[n] = 0;
        return (uint64_t)p;
    }
    default: return gen_ptr(w);
    }
}

/* Pointers no read can succeed through: a struct read from random memory could name a
 * handler or a buffer of ours. */
static uint64_t gen_unreadable(struct worker *w)
{
    uint64_t r = next(w) >> 8;
    switch (below(w, 6)) {
    case 0: return 0;
    case 1: return r % 4096;
    case 2: return 0x1000 + r % 0x3000;                                /* GDT, IDT, ring 0 */
    case 3: return 0x8000 + r % 0x3000;                                /* kernel stack, MMIO */
    case 4: return 0x0000800000000000ull + r % 0x100000;
    default: return ~0ull - r % 4096;
    }
}

/* Memory-call addresses: our region, the system area, impossible ones. */
static uint64_t gen_mm_addr(struct worker *w)
{
    uint64_t r = next(w) >> 8;
    switch (below(w, 12)) {
    case 0: return 0;
    case 1: case 2: case 3: return (uint64_t)region + (r % REGION_SIZE & ~0xffful);
    case 4: return (uint64_t)arena + (r % ARENA_SIZE & ~0xffful);
    case 5: return (uint64_t)arena + (below(w, 2) ? ARENA_SIZE : 0) - 4096 * below(w, 2);
    case 6: return (uint64_t)region + r % REGION_SIZE;                 /* unaligned */
    case 7: return r % 0x10000 & ~0xffful;                             /* system area */
    case 8: return 0x0000800000000000ull - 4096 * below(w, 2);
    case 9: return 0xffff800000000000ull;
    case 10: return ~0xffful;
    default: return next(w);
    }
}

/* A length for a memory call at addr: inside our region (or below the program) unless so
 * large that Linux refuses it whatever the address. */
static uint64_t gen_mm_len(struct worker *w, uint64_t addr)
{
    static const uint64_t huge[] = {1ull << 47, 1ull << 63, ~0ull, -4096ull, ~0ull - 4095};
    if (below(w, 8) == 0)
        return PICK(w, huge);
    uint64_t len = below(w, 3) ? 4096 * below(w, 64) : below(w, 32ul << 20);
    if (below(w, 8) == 0)
        len += below(w, 4096);
    uint64_t lo = (uint64_t)region, hi = lo + REGION_SIZE;
    if (addr >= lo && addr < hi && len > hi - addr)
        len = hi - addr;
    else if (addr < LOW_CAP && len > LOW_CAP - addr)
        len = LOW_CAP - addr;
    if (addr >= LOW_CAP && addr < 0x0000800000000000ull && !(addr >= lo && addr < hi))
        return PICK(w, huge);                       /* might be ours: only what fails */
    return len;
}

static void noop_handler(int sig) { (void)sig; }

struct ksigaction { uint64_t handler, flags, restorer, mask; };

static int is_fault_signal(uint64_t sig)
{
    return sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE || sig == SIGTRAP;
}

static uint64_t safe_mask(struct worker *w)
{
    uint64_t m = below(w, 3) ? next(w) : (below(w, 2) ? 0 : ~0ull);
    return m & ~(1ull << (SIGALRM - 1));
}

/* A struct argument, built afresh in this thread's prep area before each call. */
static uint64_t gen_struct(struct worker *w, char kind, const uint64_t *args, int i)
{
    if (below(w, 8) == 0)
        return gen_unreadable(w);
    uint8_t *p = w->prep + 0x400 * (unsigned)i;
    switch (kind) {
    case 'A': {                                 /* struct sigaction of the kernel */
        struct ksigaction *a = (void *)p;
        uint64_t sig = args[0];
        a->handler = is_fault_signal(sig) ? (uint64_t)SIG_DFL
                     : below(w, 2) ? (uint64_t)noop_handler : (uint64_t)SIG_IGN;
        a->flags = (next(w) & ~(uint64_t)(SA_ONSTACK | SA_RESETHAND)) | SA_RESTORER;
        a->restorer = restorer;
        a->mask = safe_mask(w);
        return (uint64_t)a;
    }
    case 'M': *(uint64_t *)p = safe_mask(w); return (uint64_t)p;
    case 'W': {                                 /* pselect6: { sigset pointer, size } */
        uint64_t *q = (void *)p;
        q[2] = safe_mask(w);
        q[0] = below(w, 4) ? (uint64_t)&q[2] : 0;
        q[1] = below(w, 4) ? 8 : gen_int(w);
        return (uint64_t)q;
    }
    case 'V': case 'H': case 'K': {             /* iovec array; msghdr; mmsghdr array */
        struct iovec *iov = (void *)(w->prep + 0x3000);
        unsigned n = 1 + (unsigned)below(w, 8);
        for (unsigned k = 0; k < n; k++)
            iov[k] = (struct iovec){ (void *)gen_ptr(w), gen_len(w) % 5 == 0 ? gen_len(w)
                                                                           : below(w, 8192) };
        if (kind == 'V')
            return (uint64_t)iov;
        struct mmsghdr *m = (void *)p;
        unsigned count = kind == 'K' ? 1 + (unsigned)below(w, 3) : 1;
        for (unsigned k = 0; k < count; k++)
            m[k] = (struct mmsghdr){ .msg_hdr = {
                .msg_name = (void *)(below(w, 2) ? 0 : gen_ptr(w)),
                .msg_namelen = (socklen_t)(below(w, 2) ? below(w, 130) : gen_int(w)),
                .msg_iov = below(w, 8) ? iov : (void *)gen_ptr(w),
                .msg_iovlen = below(w, 4) ? n : gen_len(w),
                .msg_control = (void *)(below(w, 2) ? 0 : gen_ptr(w)),
                .msg_controllen = below(w, 2) ? below(w, 256) : gen_len(w),
                .msg_flags = (int)gen_flags(w) }, .msg_len = 0 };
        return (uint64_t)m;
    }
    case 'E': {                                 /* struct sigevent */
        uint32_t *e = (void *)p;
        memset(e, 0, 64);
        *(uint64_t *)e = next(w);
        e[2] = (uint32_t)gen_sig(w);
        e[3] = PICK(w, ((const uint32_t[]){SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD, 4, 77}));
        e[4] = (uint32_t)gen_tid(w);
        return (uint64_t)e;
    }
    case 'C': {                                 /* struct clone_args */
        uint64_t *c = (void *)p;
        memset(c, 0, 88);
        c[0] = below(w, 2) ? (uint32_t)gen_flags(w)
                           : CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD |
                             CLONE_SYSVSEM | (gen_flags(w) & 0x03f00000);
        c[1] = gen_ptr(w);
        c[2] = gen_ptr(w);
        c[3] = gen_ptr(w);
        c[4] = below(w, 4) ? 0 : gen_sig(w);
        c[5] = below(w, 2) ? 0 : gen_ptr(w);
        c[6] = c[5] ? gen_len(w) : 0;
        c[7] = gen_int(w);
        if (below(w, 8) == 0)
            c[8 + below(w, 3)] = next(w);
        return (uint64_t)c;
    }
    }
    return 0;
}

/* ---- what each call takes ----------------------------------------------------------
 * f fd, p buffer, l length, x flags, n number, s path, S signal, P pid, T tid,
 * m/L memory address/length, B brk, z sigset size (8), c fcntl command, I ioctl request,
 * R arch_prctl code, F futex op, A sigaction, M sigset, W pselect6 mask, V iovec,
 * H msghdr, K mmsghdr, E sigevent, C clone_args; a leading '>' means "returns an fd". */
static const char *const specs[NR_LINUX] = {
    [SYS_read] = "fpl", [SYS_write] = "fpl", [SYS_open] = ">sxn", [SYS_close] = "f",
    [SYS_stat] = "sp", [SYS_fstat] = "fp", [SYS_lstat] = "sp", [SYS_poll] = "pnn",
    [SYS_lseek] = "fnn", [SYS_mmap] = "mLxxfn", [SYS_mprotect] = "mLx", [SYS_munmap] = "mL",
    [SYS_brk] = "B", [SYS_rt_sigaction] = "nApz", [SYS_rt_sigprocmask] = "nMpz",
    [SYS_ioctl] = "fIp", [SYS_pread64] = "fpln", [SYS_pwrite64] = "fpln", [SYS_readv] = "fVn",
    [SYS_writev] = "fVn", [SYS_access] = "sn", [SYS_pipe] = "p", [SYS_select] = "npppp",
    [SYS_mremap] = "mLLxm", [SYS_msync] = "mLx", [SYS_madvise] = "mLn", [SYS_dup] = ">f",
    [SYS_dup2] = ">ff", [SYS_nanosleep] = "pp", [SYS_alarm] = "n", [SYS_getitimer] = "np",
    [SYS_setitimer] = "npp", [SYS_sendfile] = "ffpl", [SYS_socket] = ">nxn",
    [SYS_connect] = "fpl", [SYS_accept] = ">fpp", [SYS_sendto] = "fplxpl",
    [SYS_recvfrom] = "fplxpp", [SYS_sendmsg] = "fHx", [SYS_recvmsg] = "fHx",
    [SYS_shutdown] = "fn", [SYS_bind] = "fpl", [SYS_listen] = "fn", [SYS_getsockname] = "fpp",
    [SYS_getpeername] = "fpp", [SYS_socketpair] = "nxnp", [SYS_setsockopt] = "fnnpl",
    [SYS_getsockopt] = "fnnpp", [SYS_clone] = "xppp", [SYS_kill] = "PS", [SYS_uname] = "p",
    [SYS_fcntl] = "fcn", [SYS_flock] = "fn", [SYS_fsync] = "f", [SYS_fdatasync] = "f",
    [SYS_truncate] = "sn", [SYS_ftruncate] = "fn", [SYS_getcwd] = "pl", [SYS_chdir] = "s",
    [SYS_fchdir] = "f", [SYS_rename] = "ss", [SYS_mkdir] = "sn", [SYS_rmdir] = "s",
    [SYS_creat] = ">sn", [SYS_link] = "ss", [SYS_unlink] = "s", [SYS_symlink] = "ss",
    [SYS_readlink] = "spl", [SYS_chmod] = "sn", [SYS_fchmod] = "fn", [SYS_chown] = "snn",
    [SYS_fchown] = "fnn", [SYS_lchown] = "snn", [SYS_umask] = "n", [SYS_gettimeofday] = "pp",
    [SYS_getrlimit] = "np", [SYS_sysinfo] = "p", [SYS_setuid] = "n", [SYS_setgid] = "n",
    [SYS_setreuid] = "nn", [SYS_setregid] = "nn", [SYS_getgroups] = "np",
    [SYS_setgroups] = "np", [SYS_setresuid] = "nnn", [SYS_getresuid] = "ppp",
    [SYS_setresgid] = "nnn", [SYS_getresgid] = "ppp", [SYS_setfsuid] = "n",
    [SYS_setfsgid] = "n", [SYS_capget] = "pp", [SYS_capset] = "pp", [SYS_rt_sigpending] = "pz",
    [SYS_rt_sigsuspend] = "Mz", [SYS_sigaltstack] = "pp", [SYS_statfs] = "sp",
    [SYS_fstatfs] = "fp", [SYS_arch_prctl] = "Rp", [SYS_prlimit64] = "Pnpp", [SYS_time] = "p",
    [SYS_futex] = "pFnppn", [SYS_sched_getaffinity] = "Plp", [SYS_set_tid_address] = "p",
    [SYS_epoll_create] = ">n", [SYS_getdents64] = "fpl", [SYS_fadvise64] = "fnnn",
    [SYS_timer_create] = "nEp", [SYS_timer_settime] = "nxpp", [SYS_timer_gettime] = "np",
    [SYS_timer_getoverrun] = "n", [SYS_timer_delete] = "n", [SYS_clock_gettime] = "np",
    [SYS_clock_getres] = "np", [SYS_clock_nanosleep] = "nxpp", [SYS_epoll_wait] = "fpnn",
    [SYS_epoll_ctl] = "fnfp", [SYS_tgkill] = "PTS", [SYS_tkill] = "TS",
    [SYS_utimensat] = "fspx", [SYS_epoll_pwait] = "fpnnMz", [SYS_eventfd] = ">n",
    [SYS_eventfd2] = ">nx", [SYS_epoll_create1] = ">x", [SYS_dup3] = ">ffx", [SYS_pipe2] = "px",
    [SYS_accept4] = ">fppx", [SYS_mkdirat] = "fsn", [SYS_fchownat] = "fsnnx",
    [SYS_newfstatat] = "fspx", [SYS_unlinkat] = "fsx", [SYS_renameat] = "fsfs",
    [SYS_linkat] = "fsfsx", [SYS_symlinkat] = "sfs", [SYS_readlinkat] = "fspl",
    [SYS_fchmodat] = "fsn", [SYS_faccessat] = "fsn", [SYS_pselect6] = "nppppW",
    [SYS_ppoll] = "pnpMz", [SYS_set_robust_list] = "pl", [SYS_rseq] = "plnn",
    [SYS_recvmmsg] = "fKnxp", [SYS_sendmmsg] = "fKnx", [SYS_getrandom] = "plx",
    [SYS_memfd_create] = ">sx", [SYS_statx] = "fsxxp", [SYS_renameat2] = "fsfsx",
    [SYS_clone3] = "Cn", [SYS_close_range] = "nnx", [SYS_faccessat2] = "fsnx",
    [SYS_epoll_pwait2] = "fpnpMz", [SYS_getxattr] = "sspl", [SYS_lgetxattr] = "sspl",
    [SYS_fgetxattr] = "fspl", [SYS_listxattr] = "spl", [SYS_llistxattr] = "spl",
    [SYS_flistxattr] = "fpl", [SYS_openat] = ">fsxn", [SYS_sched_yield] = "",
    [SYS_getpid] = "", [SYS_gettid] = "", [SYS_getppid] = "", [SYS_pause] = "",
};

static uint64_t gen_any(struct worker *w)
{
    switch (below(w, 5)) {
    case 0: return gen_ptr(w);
    case 1: return gen_len(w);
    case 2: return gen_flags(w);
    case 3: return gen_fd(w);
    default: return gen_int(w);
    }
}

static uint64_t gen_arg(struct worker *w, char kind, const uint64_t *args, int i)
{
    static const uint64_t fcntl_cmds[] = {F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL, F_GETLK,
                                          F_SETLK, F_SETLKW, F_SETOWN, F_GETOWN, F_SETSIG,
                                          F_GETSIG, 1024, 1025, 1026, F_DUPFD_CLOEXEC, 1031,
                                          1032, 1033, 1034, 36, 37, 38, 0xffffffff};
    static const uint64_t ioctls[] = {0x5401, 0x5402, 0x5403, 0x5404, 0x540f, 0x5410, 0x5413,
                                      0x5414, 0x541b, 0x5421, 0x5450, 0x5451, 0x5452, 0x8912,
                                      0x8933, 0x4004667f, 0x80045430, 0xc0189436};
    static const uint64_t prctl_codes[] = {0x1001, 0x1002, 0x1003, 0x1004, 0x1011, 0x1012,
                                           0x1021, 0x2001, 0x2002, 0x2003, 0x3001, 0x4001,
                                           0x4002, 0x4003};
    switch (kind) {
    case 'f': return gen_fd(w);
    case 'p': return gen_ptr(w);
    case 'l': return gen_len(w);
    case 'x': return gen_flags(w);
    case 'n': return gen_int(w);
    case 's': return gen_path(w);
    case 'S': return gen_sig(w);
    case 'P': return gen_pid(w);
    case 'T': return gen_tid(w);
    case 'm': return gen_mm_addr(w);
    case 'L': return gen_mm_len(w, args[0]);
    case 'B': return below(w, 4) ? brk_floor + below(w, 64ul << 20) : gen_mm_addr(w);
    case 'z': return below(w, 6) ? 8 : gen_int(w);
    case 'c': return below(w, 8) ? PICK(w, fcntl_cmds) : gen_int(w);
    case 'I': return below(w, 6) ? PICK(w, ioctls) : gen_flags(w);
    case 'R': return below(w, 6) ? PICK(w, prctl_codes) : gen_int(w);
    case 'F': return below(w, 6) ? (below(w, 14) | (below(w, 2) << 7) | (below(w, 2) << 8))
                                 : gen_flags(w);
    default: return gen_struct(w, kind, args, i);
    }
}

/* ---- one call ----------------------------------------------------------------------- */

static uint8_t stub_copy[4096], vdso_copy[2][4096];
static int vdso_pages;

static void bad(struct worker *w, const char *what, long nr, const uint64_t *a, long ret)
{
    if (w->nbad < MAX_BAD)
        snprintf(w->bad[w->nbad], sizeof w->bad[0],
                 "%s: nr=%#lx(%#lx,%#lx,%#lx,%#lx,%#lx,%#lx)=%ld", what, (unsigned long)nr,
                 (unsigned long)a[0], (unsigned long)a[1], (unsigned long)a[2],
                 (unsigned long)a[3], (unsigned long)a[4], (unsigned long)a[5], ret);
    w->nbad++;
}

static void check_memory(struct worker *w)
{
    static const uint64_t zero[6];
    if (memcmp((void *)0x4000, stub_copy, 4096))
        bad(w, "the stub page changed", -1, zero, 0);
    for (int i = 0; i < vdso_pages; i++)
        if (memcmp((void *)(0x6000ul + 4096ul * (unsigned)i), vdso_copy[i], 4096))
            bad(w, "the vDSO changed", -1, zero, 0);
    for (int i = 0; i < 4096; i++)
        if (canary[i] != (uint8_t)(i * 7 + 1)) {
            bad(w, "a read-only page changed", -1, zero, 0);
            break;
        }
}

static long pick_nr(struct worker *w)
{
    if (w->index == 0 && w->calls < NR_LINUX && w->count >= NR_LINUX)
        return w->calls;                /* the sweep */
    switch (below(w, 40)) {
    case 0: return NR_LINUX + (long)below(w, 600);
    case 1: return 0x40000000 + (long)below(w, 548);         /* x32 */
    case 2: return (long)next(w);
    default: return (long)below(w, NR_LINUX);
    }
}

static void note_fd(struct worker *w, long fd)
{
    if (fd >= 0 && fd < 1024 && fd != conn_fd)
        w->fds[w->nfds < 16 ? w->nfds++ : below(w, 16)] = (int)fd;
}

static int in_arena(uint64_t p, size_t n)
{
    return p >= (uint64_t)arena && p + n <= (uint64_t)arena + ARENA_SIZE;
}

/* A thread blocked in the host holds the vCPU (guest threads are cooperative), so only a
 * timer can end its wait: SIGALRM every KICK_NS for the process, besides the kicks. */
static void arm_timer(void)
{
    struct itimerval it = { {0, KICK_NS / 1000}, {0, KICK_NS / 1000} };
    raw(SYS_setitimer, ITIMER_REAL, (long)&it, 0, 0, 0, 0);
}

static void one_call(struct worker *w)
{
    long nr = pick_nr(w);
    while ((unsigned long)nr < NR_LINUX && skip[nr])
        nr = pick_nr(w) + (w->calls < NR_LINUX);
    if (nr == SYS_exit || nr == SYS_exit_group || nr == SYS_rt_sigreturn)
        nr = SYS_getppid;
    const char *spec = (unsigned long)nr < NR_LINUX ? specs[nr] : NULL;
    int returns_fd = spec && *spec == '>';
    if (returns_fd)
        spec++;
    uint64_t a[6] = {0};
    size_t typed = spec ? strlen(spec) : 0;
    for (size_t i = 0; i < 6; i++)      /* past the typed ones: mostly 0, as a libc passes */
        a[i] = i < typed ? gen_arg(w, spec[i], a, (int)i)
                         : spec && below(w, 4) ? 0 : gen_any(w);
    if (spec && nr == SYS_mremap)
        a[2] = gen_mm_len(w, a[4] > a[0] ? a[4] : a[0]);
    uint32_t lo = (uint32_t)a[0], hi = (uint32_t)a[1], keep = (uint32_t)conn_fd;
    if (nr == SYS_close_range && lo <= keep && hi >= keep) {
        if (lo == keep)
            a[0] = keep + 1;
        else
            a[1] = keep - 1;
    }
    if (trace) {
        char line[200];
        snprintf(line, sizeof line, "%d: %ld(%#lx, %#lx, %#lx, %#lx, %#lx, %#lx)\n", w->index, nr,
                 (unsigned long)a[0], (unsigned long)a[1], (unsigned long)a[2],
                 (unsigned long)a[3], (unsigned long)a[4], (unsigned long)a[5]);
        say(conn_fd, line);
    }
    /* ARCH_SET_FS or ARCH_SET_GS: the base before it (ARCH_GET_FS, ARCH_GET_GS), put back. */
    uint64_t base = 0;
    int set_base = nr == SYS_arch_prctl && (a[0] == 0x1002 || a[0] == 0x1001);
    if (set_base)
        raw(SYS_arch_prctl, a[0] == 0x1002 ? 0x1003 : 0x1004, (long)&base, 0, 0, 0, 0);

    long ret;
    if (nr == SYS_clone || nr == SYS_clone3) {
        /* The child inherits the mask: no signal frame may go onto its bogus stack. */
        uint64_t all = ~0ull, old = 0;
        raw(SYS_rt_sigprocmask, SIG_SETMASK, (long)&all, (long)&old, 8, 0, 0);
        ret = raw_clone(nr, (long)a[0], (long)a[1], (long)a[2], (long)a[3], (long)a[4]);
        raw(SYS_rt_sigprocmask, SIG_SETMASK, (long)&old, 0, 8, 0, 0);
    } else {
        ret = raw(nr, (long)a[0], (long)a[1], (long)a[2], (long)a[3], (long)a[4], (long)a[5]);
    }

    if (set_base)
        raw(SYS_arch_prctl, (long)a[0], (long)base, 0, 0, 0, 0);
    /* A call that wrote over the shared page may have left a spin count that makes every
     * later call spin for ages before it falls back (the guest's own doing, cut at the
     * time limit): put back the words that set how the entry stub waits. */
    for (int i = 0; i < 6; i++)
        if (a[i] >= 0xb000 && a[i] < 0xc000) {
            *(volatile uint64_t *)0xb010 = shared_spin;     /* SH_SPIN */
            *(volatile uint64_t *)0xb000 = shared_enabled;  /* SH_ENABLED */
            break;
        }
    /* Undo what would stop the kicks from ending blocking calls. */
    if (nr == SYS_rt_sigaction) {
        struct ksigaction act = { (uint64_t)noop_handler, SA_RESTORER, restorer, 0 };
        raw(SYS_rt_sigaction, SIGALRM, (long)&act, 0, 8, 0, 0);
    } else if (nr == SYS_rt_sigprocmask) {
        uint64_t set = 1ull << (SIGALRM - 1);
        raw(SYS_rt_sigprocmask, SIG_UNBLOCK, (long)&set, 0, 8, 0, 0);
    } else if (nr == SYS_alarm || nr == SYS_setitimer) {
        arm_timer();
    }

    if (trace) {
        char line[64];
        snprintf(line, sizeof line, "%d: = %ld\n", w->index, ret);
        say(conn_fd, line);
    }
    w->calls++;
    unsigned slot = (unsigned long)nr < NR_TRACKED ? (unsigned)nr : NR_TRACKED - 1;
    w->called[slot / 8] |= (uint8_t)(1u << slot % 8);
    if (ret != -ENOSYS)
        w->answered[slot / 8] |= (uint8_t)(1u << slot % 8);
    if (ret >= 0)
        w->succeeded[slot / 8] |= (uint8_t)(1u << slot % 8);
    if (ret < 0 && ret >= -4095 && -ret > 133)
        bad(w, "kernel-internal error code", nr, a, ret);
    else if (ret < -4095 && nr != SYS_mmap && nr != SYS_mremap && nr != SYS_lseek)
        bad(w, "result out of range", nr, a, ret);
    /* Linux takes the number as an int: the upper half of RAX means nothing. */
    if ((uint32_t)nr >= NR_LINUX && ret != -ENOSYS)
        bad(w, "undefined number did not answer ENOSYS", nr, a, ret);
    if (ret >= 0 && returns_fd)
        note_fd(w, ret);
    if (ret == 0 && (nr == SYS_pipe || nr == SYS_pipe2 || nr == SYS_socketpair)) {
        uint64_t p = nr == SYS_socketpair ? a[3] : a[0];
        if (in_arena(p, 8)) {
            note_fd(w, ((int *)p)[0]);
            note_fd(w, ((int *)p)[1]);
        }
    }
    if (w->calls % 256 == 0) {
        check_memory(w);
        /* Give the fuzzed memory calls an arena again. */
        raw(SYS_mmap, (long)arena, ARENA_SIZE, PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    }
}

/* ---- threads and the summary -------------------------------------------------------- */

static void *work(void *arg)
{
    struct worker *w = arg;
    w->tid = (int)raw(SYS_gettid, 0, 0, 0, 0, 0, 0);
    tids[w->index] = w->tid;
    while (w->calls < w->count)
        one_call(w);
    check_memory(w);
    atomic_store(&w->done, 1);
    return NULL;
}

static void *map(size_t size, int prot)
{
    void *p = mmap(NULL, size, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        say(2, "fuzz_syscalls: mmap failed\n");
        exit(2);
    }
    return p;
}

/* Before the freeze: everything the calls aim at, and the handlers. */
static void setup(void)
{
    /* Whether a page is readable: write one byte of it into a pipe (and take it back). */
    int pfd[2];
    char byte;
    if (pipe(pfd)) {
        say(2, "fuzz_syscalls: pipe\n");
        exit(2);
    }
#define READABLE(addr) (raw(SYS_write, pfd[1], (long)(addr), 1, 0, 0, 0) == 1 && \
                        read(pfd[0], &byte, 1) == 1)
    if (!READABLE(0x5000)) {
        say(2, "fuzz_syscalls: not inside kvmserver (no clock page at 0x5000); refusing to "
               "make random system calls on this host\n");
        exit(2);
    }
    vdso_pages = READABLE(0x7000) ? 2 : 1;
    top_page_mapped = READABLE(0x7ffffffff000);
    close(pfd[0]);
    close(pfd[1]);
    canary = map(4096, PROT_READ | PROT_WRITE);
    for (int i = 0; i < 4096; i++)
        canary[i] = (uint8_t)(i * 7 + 1);
    mprotect(canary, 4096, PROT_READ);
    for (int i = 0; i < MAX_THREADS; i++) {
        workers[i].prep = map(PREP_SIZE + 4096, PROT_READ | PROT_WRITE);
        munmap(workers[i].prep + PREP_SIZE, 4096);
    }
    /* The region stays reserved (PROT_NONE) so that no mapping of ours (a thread's stack)
     * is ever placed in it; a page each side of the arena is unmapped (after our other
     * mappings are made, or one of them would fill the gap). */
    region = map(REGION_SIZE, PROT_NONE);
    arena = region + ARENA_OFF;
    munmap(arena - 4096, ARENA_SIZE + 8192);
    if (mmap(arena, ARENA_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
             -1, 0) != arena) {
        say(2, "fuzz_syscalls: arena\n");
        exit(2);
    }
    static const char *const names[] = {"", "/f", "/d", "/d/g", "/../escape", "/f/x"};
    for (int i = 0; i < 6; i++)
        snprintf(dir_paths[i], sizeof dir_paths[i], "%s%s", dir, names[i]);

    struct sigaction sa = { .sa_handler = noop_handler };
    for (int s = 1; s < 65; s++)
        if (s != SIGKILL && s != SIGSTOP && !is_fault_signal((uint64_t)s))
            sigaction(s, &sa, NULL);
    free(malloc(1));                /* the heap exists: a brk never goes below it */
    brk_floor = (uint64_t)sbrk(0);
    struct ksigaction k;
    raw(SYS_rt_sigaction, SIGALRM, 0, (long)&k, 8, 0, 0);
    restorer = k.restorer;
}

static void run(uint64_t seed, long count, int threads, int out)
{
    memcpy(stub_copy, (void *)0x4000, 4096);
    for (int i = 0; i < vdso_pages; i++)
        memcpy(vdso_copy[i], (void *)(0x6000ul + 4096ul * (unsigned)i), 4096);
    nworkers = threads;
    self_pid = raw(SYS_getpid, 0, 0, 0, 0, 0, 0);
    shared_spin = *(volatile uint64_t *)0xb010;
    shared_enabled = *(volatile uint64_t *)0xb000;
    for (int i = 0; i < threads; i++) {
        struct worker *w = &workers[i];
        uint8_t *prep = w->prep;
        memset(w, 0, sizeof *w);
        w->prep = prep;
        w->rng = seed * 0x100 + (uint64_t)i;
        w->index = i;
        w->count = count / threads + (i < count % threads);
        tids[i] = 0;
    }
    arm_timer();
    for (int i = 0; i < threads; i++)
        if (pthread_create(&workers[i].thread, NULL, work, &workers[i])) {
            say(out, "error pthread_create\n");
            return;
        }
    /* Kick every worker still running, so that no blocking call waits for ever. */
    for (;;) {
        int running = 0;
        for (int i = 0; i < threads; i++)
            if (!atomic_load(&workers[i].done)) {
                running++;
                if (tids[i])
                    raw(SYS_tgkill, self_pid, tids[i], SIGALRM, 0, 0, 0);
            }
        if (!running)
            break;
        struct timespec ts = {0, KICK_NS};
        raw(SYS_nanosleep, (long)&ts, 0, 0, 0, 0, 0);
    }
    long calls = 0;
    unsigned nbad = 0, called = 0, answered = 0, succeeded = 0;
    for (unsigned nr = 0; nr < NR_TRACKED; nr++) {
        int c = 0, a = 0, s = 0;
        for (int i = 0; i < threads; i++) {
            c |= workers[i].called[nr / 8] >> nr % 8 & 1;
            a |= workers[i].answered[nr / 8] >> nr % 8 & 1;
            s |= workers[i].succeeded[nr / 8] >> nr % 8 & 1;
        }
        called += (unsigned)c;
        answered += (unsigned)a;
        succeeded += (unsigned)s;
    }
    for (int i = 0; i < threads; i++) {
        calls += workers[i].calls;
        nbad += workers[i].nbad;
    }
    char line[256];
    snprintf(line, sizeof line, "calls=%ld distinct=%u answered=%u succeeded=%u violations=%u\n",
             calls, called, answered, succeeded, nbad);
    say(out, line);
    for (int i = 0; i < threads; i++)
        for (unsigned k = 0; k < workers[i].nbad && k < MAX_BAD; k++) {
            say(out, workers[i].bad[k]);
            say(out, "\n");
        }
}

/* The numbers of the calls made, in order, would need memory; instead the summary says
 * which rules broke, with the first few calls that broke them, and SEED reproduces it. */
static int parse(const char *s, uint64_t *seed, long *count, int *threads)
{
    char *end;
    *seed = strtoull(s, &end, 10);
    *count = strtol(end, &end, 10);
    *threads = (int)strtol(end, &end, 10);
    return *count > 0 && *threads >= 1 && *threads <= MAX_THREADS;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        say(2, "usage: fuzz_syscalls run SEED COUNT [THREADS] | serve PORT [DIR]\n");
        return 2;
    }
    int serve = strcmp(argv[1], "serve") == 0;
    if (serve && argc > 3)
        snprintf(dir, sizeof dir, "%s", argv[3]);
    else if (serve && !getcwd(dir, sizeof dir))
        snprintf(dir, sizeof dir, "/tmp");
    setup();
    /* Fuzzed calls on 0-2 must not reach kvmserver's own stdin, stdout and stderr. */
    int null = open("/dev/null", O_RDWR);
    if (!serve)
        dup2(1, REPORT_FD);
    for (int fd = 0; fd < 3; fd++)
        dup2(null, fd);
    close(null);
    if (!serve) {
        uint64_t seed;
        long count;
        int threads;
        char spec[128];
        snprintf(spec, sizeof spec, "%s %s %s", argv[2], argc > 3 ? argv[3] : "0",
                 argc > 4 ? argv[4] : "1");
        if (!parse(spec, &seed, &count, &threads)) {
            say(REPORT_FD, "bad SEED COUNT THREADS\n");
            return 2;
        }
        for (int i = 5; i < argc; i++) {
            if (strcmp(argv[i], "trace") == 0)
                trace = 1;
            else if (strncmp(argv[i], "skip=", 5) == 0)
                for (char *q = argv[i] + 5; *q; q += *q == ',')
                    skip[strtoul(q, &q, 10) % NR_LINUX] = 1;
        }
        run(seed, count, threads, REPORT_FD);
        return 0;
    }
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2])),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (bind(ls, (struct sockaddr *)&sin, sizeof sin) || listen(ls, 64)) {
        say(2, "fuzz_syscalls: cannot listen\n");
        return 2;
    }
    /* With -e a blocking accept on any dup of the listener ends the request (kvmserver's
     * rule): request VMs make no accept calls. */
    skip[SYS_accept] = skip[SYS_accept4] = 1;
    for (;;) {
        /* With -e the request ends when this fd is closed: it is the one kept from calls. */
        conn_fd = accept(ls, NULL, NULL);
        if (conn_fd < 0)
            continue;
        char req[128];
        ssize_t n = read(conn_fd, req, sizeof req - 1);
        uint64_t seed;
        long count;
        int threads;
        req[n > 0 ? n : 0] = 0;
        if (n > 0 && parse(req, &seed, &count, &threads))
            run(seed, count, threads, conn_fd);
        else
            say(conn_fd, "bad request\n");
        close(conn_fd);
    }
}
