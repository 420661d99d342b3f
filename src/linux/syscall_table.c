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

#define E(name) [__NR_##name] = { #name, sys_##name }

const struct lx_syscall_desc lx_syscall_table[LX_NR_SYSCALLS] = {
    E(read), E(write), E(readv), E(writev), E(pread64), E(pwrite64), E(close), E(lseek),
    E(ioctl), E(fstat), E(newfstatat), E(readlink), E(readlinkat), E(fcntl), E(dup), E(dup2),
    E(dup3),
    E(clock_gettime), E(clock_getres), E(gettimeofday), E(time), E(nanosleep),
    E(clock_nanosleep),
    E(uname), E(getpid), E(gettid), E(getppid), E(getuid), E(geteuid), E(getgid), E(getegid),
    E(getrandom), E(prlimit64), E(getrlimit), E(sched_getaffinity), E(sched_yield), E(sysinfo),
    E(getcwd), E(setuid), E(setgid), E(setreuid), E(setregid), E(setresuid), E(setresgid),
    E(setfsuid), E(setfsgid), E(getresuid), E(getresgid), E(getgroups), E(setgroups),
    E(capget), E(capset),
    E(rt_sigaction), E(rt_sigprocmask), E(sigaltstack), E(kill), E(tgkill), E(tkill),
    E(rt_sigreturn), E(rt_sigpending), E(rt_sigsuspend), E(pause),
    E(alarm), E(getitimer), E(setitimer), E(timer_create), E(timer_settime),
    E(timer_gettime), E(timer_getoverrun), E(timer_delete),
    E(brk), E(mmap), E(munmap), E(mremap), E(mprotect), E(madvise), E(msync),
    E(exit), E(exit_group), E(arch_prctl), E(set_tid_address), E(set_robust_list), E(rseq),
    E(open), E(openat), E(futex), E(clone), E(clone3),
    /* fs.c, fs_dir.c, fs_fd.c */
    E(creat), E(close_range), E(stat), E(lstat), E(statx), E(access), E(faccessat),
    E(faccessat2), E(chdir), E(fchdir), E(umask),
    E(mkdir), E(mkdirat), E(unlink), E(rmdir), E(unlinkat), E(rename), E(renameat),
    E(renameat2), E(link), E(linkat), E(symlink), E(symlinkat), E(truncate), E(chmod),
    E(fchmod), E(fchmodat), E(chown), E(lchown), E(fchown), E(fchownat), E(utimensat),
    E(getdents64),
    E(ftruncate), E(fsync), E(fdatasync), E(flock), E(sendfile), E(memfd_create), E(fstatfs),
    E(statfs), E(fadvise64), E(getxattr), E(lgetxattr), E(fgetxattr), E(listxattr),
    E(llistxattr), E(flistxattr),
    /* net.c */
    E(socket), E(bind), E(listen), E(accept), E(accept4), E(connect), E(recvfrom), E(sendto),
    E(recvmsg), E(sendmsg), E(recvmmsg), E(sendmmsg), E(shutdown), E(setsockopt),
    E(getsockopt), E(getsockname), E(getpeername), E(socketpair),
    /* pipe.c */
    E(pipe), E(pipe2), E(eventfd), E(eventfd2),
    /* epoll.c */
    E(epoll_create), E(epoll_create1), E(epoll_ctl), E(epoll_wait), E(epoll_pwait),
    E(epoll_pwait2),
    /* poll.c */
    E(poll), E(ppoll), E(select), E(pselect6),
};

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

/* Calls that reach the file system (for the -v report of where the time goes). */
static bool is_file_system_call(uint64_t nr)
{
    switch (nr) {
    case __NR_open: case __NR_openat: case __NR_stat: case __NR_lstat: case __NR_newfstatat:
    case __NR_statx: case __NR_access: case __NR_faccessat: case __NR_faccessat2:
    case __NR_readlink: case __NR_readlinkat: case __NR_getdents64: case __NR_pread64:
    case __NR_fstat: case __NR_lseek: case __NR_getcwd: case __NR_chdir:
        return true;
    default:
        return false;
    }
}

long lx_dispatch(struct lx_proc *p, uint64_t nr, const uint64_t a[6])
{
    const struct lx_syscall_desc *d = nr < LX_NR_SYSCALLS ? &lx_syscall_table[nr] : NULL;
    long ret;
    uint64_t start = p->env->time_handlers ? now_ns() : 0;
    if (!d || !d->fn) {
        report_unknown(p, nr);
        ret = -ENOSYS;
    } else {
        ret = d->fn(p, a);
    }
    if (start) {
        uint64_t spent = now_ns() - start;
        p->stats.handler_ns += spent;
        if (is_file_system_call(nr))
            p->stats.fs_handler_ns += spent;
    }
    if (p->env->trace_syscalls)
        fprintf(stderr, "[syscall] %s(%#llx, %#llx, %#llx, %#llx) = %ld\n",
                d && d->name ? d->name : "?", (unsigned long long)a[0],
                (unsigned long long)a[1], (unsigned long long)a[2], (unsigned long long)a[3],
                ret);
    return ret;
}
