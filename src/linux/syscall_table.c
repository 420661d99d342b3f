/* The syscall table is data: number -> name and handler. Tracing, counting and -ENOSYS for
 * everything else come from here, not from code repeated in every handler. */
#include "base/log.h"
#include "base/time.h"
#include "linux/syscalls.h"

#include <errno.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <time.h>

#include "linux/counters.h"
#include "linux/process.h"

/* E(call[, properties]): one row. The properties are syscalls.h's
 * LX_SC_* flags, without the prefix. */
#define E(n, ...) [__NR_##n] = { #n, sys_##n, __VA_ARGS__ }
#define FS LX_SC_FS
#define EVENT_WAIT LX_SC_EVENT_WAIT
#define POLLER LX_SC_POLLER
#define POLLER_IN LX_SC_POLLER_IN
#define POLLER_OUT LX_SC_POLLER_OUT

const struct lx_syscall_desc lx_syscall_table[LX_NR_SYSCALLS] = {
    E(read, POLLER_IN), E(write, POLLER_OUT), E(readv, POLLER_IN), E(writev, POLLER_OUT),
    E(pread64, FS | POLLER), E(pwrite64, POLLER), E(close, POLLER), E(lseek, FS | POLLER),
    E(ioctl, POLLER), E(fstat, FS | POLLER), E(newfstatat, FS | POLLER), E(readlink, FS),
    E(readlinkat, FS), E(fcntl, POLLER), E(dup, POLLER), E(dup2, POLLER), E(dup3, POLLER),
    E(clock_gettime, POLLER), E(clock_getres, POLLER), E(gettimeofday, POLLER), E(time, POLLER),
    E(nanosleep), E(clock_nanosleep), E(uname, POLLER), E(getpid), E(gettid), E(getppid),
    E(getuid, POLLER), E(geteuid, POLLER), E(getgid, POLLER), E(getegid, POLLER),
    E(getrandom, POLLER), E(prlimit64, POLLER), E(getrlimit), E(sched_getaffinity, POLLER),
    E(sched_yield), E(sysinfo, POLLER), E(getcwd, FS | POLLER), E(setuid), E(setgid), E(setreuid),
    E(setregid), E(setresuid), E(setresgid), E(setfsuid), E(setfsgid), E(getresuid), E(getresgid),
    E(getgroups), E(setgroups), E(capget), E(capset), E(rt_sigaction, POLLER),
    E(rt_sigprocmask, POLLER), E(sigaltstack), E(kill), E(tgkill), E(tkill), E(rt_sigreturn),
    E(rt_sigpending), E(rt_sigsuspend), E(pause), E(alarm), E(getitimer), E(setitimer),
    E(timer_create), E(timer_settime), E(timer_gettime), E(timer_getoverrun), E(timer_delete),
    E(brk), E(mmap), E(munmap), E(mremap), E(mprotect), E(madvise, POLLER), E(msync), E(exit),
    E(exit_group), E(arch_prctl), E(set_tid_address), E(set_robust_list), E(rseq), E(open, FS),
    E(openat, FS | POLLER), E(futex), E(clone), E(clone3),
    /* fs.c, fs_dir.c, fs_fd.c */
    E(creat), E(close_range), E(stat, FS), E(lstat, FS), E(statx, FS), E(access, FS),
    E(faccessat, FS), E(faccessat2, FS), E(chdir, FS), E(fchdir), E(chroot, FS), E(umask),
    E(mkdir), E(mkdirat),
    E(unlink), E(rmdir), E(unlinkat), E(rename), E(renameat), E(renameat2), E(link), E(linkat),
    E(symlink), E(symlinkat), E(truncate), E(chmod), E(fchmod), E(fchmodat), E(chown), E(lchown),
    E(fchown), E(fchownat), E(utimensat), E(getdents64, FS), E(ftruncate), E(fsync), E(fdatasync),
    E(flock), E(sendfile), E(memfd_create), E(fstatfs), E(statfs), E(fadvise64), E(getxattr),
    E(lgetxattr), E(fgetxattr), E(listxattr), E(llistxattr), E(flistxattr),
    /* net.c */
    E(socket, POLLER), E(bind), E(listen), E(accept, EVENT_WAIT | POLLER_IN),
    E(accept4, EVENT_WAIT | POLLER_IN), E(connect), E(recvfrom, POLLER_IN), E(sendto, POLLER_OUT),
    E(recvmsg, POLLER_IN), E(sendmsg, POLLER_OUT), E(recvmmsg), E(sendmmsg), E(shutdown, POLLER),
    E(setsockopt, POLLER), E(getsockopt, POLLER), E(getsockname, POLLER), E(getpeername, POLLER),
    E(socketpair),
    /* pipe.c */
    E(pipe), E(pipe2), E(eventfd), E(eventfd2),
    /* epoll.c */
    E(epoll_create), E(epoll_create1), E(epoll_ctl, POLLER),
    E(epoll_wait, EVENT_WAIT | POLLER_IN), E(epoll_pwait, EVENT_WAIT | POLLER_IN),
    E(epoll_pwait2, EVENT_WAIT | POLLER_IN),
    /* poll.c */
    E(poll, EVENT_WAIT), E(ppoll, EVENT_WAIT), E(select, EVENT_WAIT), E(pselect6, EVENT_WAIT),
};
#undef FS
#undef EVENT_WAIT
#undef POLLER
#undef POLLER_IN
#undef POLLER_OUT

static void report_unknown(struct lx_proc *p, uint64_t nr)
{
    p->stats.unknown_syscalls++;
    lx_count_unsupported_syscall();
    /* Once per number, so a guest probing in a loop cannot flood the log. */
    static struct log_once logged = LOG_ONCE_INIT(LX_NR_SYSCALLS);
    if (nr < LX_NR_SYSCALLS) {
        if (log_once(&logged, &nr, sizeof nr) != LOG_ONCE_FIRST)
            return;
    } else if (p->stats.unknown_syscalls > 1 && !p->env->trace_syscalls) {
        return;
    }
    log_warn("unsupported system call %llu: answered ENOSYS", (unsigned long long)nr);
}

const struct lx_syscall_desc *lx_syscall_of(uint64_t nr)
{
    const struct lx_syscall_desc *d = nr < LX_NR_SYSCALLS ? &lx_syscall_table[nr] : NULL;
    return d && d->fn ? d : NULL;
}

bool lx_syscall_is(uint64_t nr, unsigned flags)
{
    const struct lx_syscall_desc *d = lx_syscall_of(nr);
    return d && (d->flags & flags) == flags;
}

_Static_assert(LX_PROFILE_CALLS == LX_NR_SYSCALLS, "--profile counts every table row");

long lx_dispatch(struct lx_proc *p, uint64_t nr, const uint64_t a[6])
{
    const struct lx_syscall_desc *d = lx_syscall_of(nr);
    long ret;
    struct lx_profile *prof = p->stats.profile;
    uint64_t start = p->env->time_handlers || prof ? now_ns() : 0;
    if (!d) {
        report_unknown(p, nr);
        ret = -ENOSYS;
    } else {
        ret = d->fn(p, a);
    }
    if (start) {
        uint64_t spent = now_ns() - start;
        p->stats.handler_ns += spent;
        if (d && (d->flags & LX_SC_FS))
            p->stats.fs_handler_ns += spent;
        if (prof && nr < LX_PROFILE_CALLS) {
            prof->calls[nr]++;
            prof->ns[nr] += spent;
        }
    }
    if (p->env->trace_syscalls)
        fprintf(stderr, "[syscall] %s(%#llx, %#llx, %#llx, %#llx) = %ld\n",
                d ? d->name : "?", (unsigned long long)a[0],
                (unsigned long long)a[1], (unsigned long long)a[2], (unsigned long long)a[3],
                ret);
    return ret;
}
