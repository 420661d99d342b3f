/* The syscall table and every handler. A handler gets the six raw argument registers and
 * returns the value for RAX: a result >= 0 or a negative errno. Guest pointers in the
 * arguments are only ever used through vm/guest_mem.h. */
#ifndef KVMS_SYSCALLS_H
#define KVMS_SYSCALLS_H
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lx_proc;
typedef long (*lx_handler)(struct lx_proc *p, const uint64_t a[6]);

/* What a call is, for the code around the handlers (one row carries them all). */
enum lx_syscall_flag {
    LX_SC_FS = 1 << 0,          /* reaches the file system (the -v report of where time goes) */
    LX_SC_EVENT_WAIT = 1 << 1,  /* an event loop waits in it: --max-request-time does not run
                                   meanwhile, and other guest threads do (thread.h) */
    /* A shared-transport poller thread may run it (offload.c): it cannot block and touches
     * no vCPU state and no memory slots (mmap & co. may flush slots under the running vCPU,
     * arch_prctl sets vCPU state, sleeps and futexes wait, clone/futex/sched_yield/gettid/exit
     * switch or name guest threads, sigaltstack reads RSP: all stay on the vCPU thread)... */
    LX_SC_POLLER = 1 << 2,
    LX_SC_POLLER_IN = 1 << 3,   /* ...only when fd a[0] can be read (or accepted on) now */
    LX_SC_POLLER_OUT = 1 << 4,  /* ...only when fd a[0] can be written now */
};

struct lx_syscall_desc {
    const char *name;
    lx_handler fn;
    unsigned flags;             /* enum lx_syscall_flag */
};

#define LX_NR_SYSCALLS 512
/* Linux's cap on the bytes of one read or write (a larger count is cut to it). */
#define MAX_RW_COUNT ((size_t)INT_MAX & ~(size_t)4095)
extern const struct lx_syscall_desc lx_syscall_table[LX_NR_SYSCALLS];
/* The row of a call with a handler; NULL for the rest (answered -ENOSYS). */
const struct lx_syscall_desc *lx_syscall_of(uint64_t nr);
/* Has the call every one of `flags`? False for calls without a handler. */
bool lx_syscall_is(uint64_t nr, unsigned flags);

/* Looks up and runs one call; unknown numbers give -ENOSYS (counted, and logged with
 * --verbose-syscalls). */
long lx_dispatch(struct lx_proc *p, uint64_t nr, const uint64_t a[6]);

#define LX_DECLARE(name) long sys_##name(struct lx_proc *p, const uint64_t a[6])
/* io.c */
LX_DECLARE(read); LX_DECLARE(write); LX_DECLARE(readv); LX_DECLARE(writev);
LX_DECLARE(pread64); LX_DECLARE(pwrite64); LX_DECLARE(close); LX_DECLARE(lseek);
LX_DECLARE(ioctl); LX_DECLARE(fstat); LX_DECLARE(fcntl); LX_DECLARE(dup); LX_DECLARE(dup2);
LX_DECLARE(dup3);
/* time.c */
LX_DECLARE(clock_gettime); LX_DECLARE(clock_getres); LX_DECLARE(gettimeofday); LX_DECLARE(time);
LX_DECLARE(nanosleep); LX_DECLARE(clock_nanosleep);
/* info.c */
LX_DECLARE(uname); LX_DECLARE(getpid); LX_DECLARE(gettid); LX_DECLARE(getppid);
LX_DECLARE(getuid); LX_DECLARE(geteuid); LX_DECLARE(getgid); LX_DECLARE(getegid);
LX_DECLARE(getrandom); LX_DECLARE(prlimit64); LX_DECLARE(getrlimit); LX_DECLARE(sched_getaffinity);
LX_DECLARE(sched_yield); LX_DECLARE(sysinfo); LX_DECLARE(setuid); LX_DECLARE(setgid);
LX_DECLARE(setreuid); LX_DECLARE(setregid); LX_DECLARE(setresuid); LX_DECLARE(setresgid);
LX_DECLARE(setfsuid); LX_DECLARE(setfsgid); LX_DECLARE(getresuid); LX_DECLARE(getresgid);
LX_DECLARE(getgroups); LX_DECLARE(setgroups); LX_DECLARE(capget); LX_DECLARE(capset);
/* signal.c */
LX_DECLARE(rt_sigaction); LX_DECLARE(rt_sigprocmask); LX_DECLARE(sigaltstack);
LX_DECLARE(kill); LX_DECLARE(tgkill); LX_DECLARE(tkill); LX_DECLARE(rt_sigreturn);
LX_DECLARE(rt_sigpending); LX_DECLARE(rt_sigsuspend); LX_DECLARE(pause);
/* itimer.c */
LX_DECLARE(alarm); LX_DECLARE(getitimer); LX_DECLARE(setitimer); LX_DECLARE(timer_create);
LX_DECLARE(timer_settime); LX_DECLARE(timer_gettime); LX_DECLARE(timer_getoverrun);
LX_DECLARE(timer_delete);
/* mm.c */
LX_DECLARE(brk); LX_DECLARE(mmap); LX_DECLARE(munmap); LX_DECLARE(mremap);
LX_DECLARE(mprotect); LX_DECLARE(madvise); LX_DECLARE(msync);
/* proc.c */
LX_DECLARE(exit); LX_DECLARE(exit_group); LX_DECLARE(arch_prctl); LX_DECLARE(set_tid_address);
LX_DECLARE(set_robust_list); LX_DECLARE(rseq);
/* net.c */
LX_DECLARE(socket); LX_DECLARE(bind); LX_DECLARE(listen); LX_DECLARE(accept); LX_DECLARE(accept4);
LX_DECLARE(connect); LX_DECLARE(recvfrom); LX_DECLARE(sendto); LX_DECLARE(recvmsg);
LX_DECLARE(sendmsg); LX_DECLARE(recvmmsg); LX_DECLARE(sendmmsg); LX_DECLARE(shutdown);
LX_DECLARE(setsockopt); LX_DECLARE(getsockopt); LX_DECLARE(getsockname);
LX_DECLARE(getpeername); LX_DECLARE(socketpair);
/* pipe.c */
LX_DECLARE(pipe); LX_DECLARE(pipe2); LX_DECLARE(eventfd); LX_DECLARE(eventfd2);
/* epoll.c */
LX_DECLARE(epoll_create); LX_DECLARE(epoll_create1); LX_DECLARE(epoll_ctl);
LX_DECLARE(epoll_wait); LX_DECLARE(epoll_pwait); LX_DECLARE(epoll_pwait2);
/* poll.c */
LX_DECLARE(poll); LX_DECLARE(ppoll); LX_DECLARE(select); LX_DECLARE(pselect6);
/* fs.c */
LX_DECLARE(open); LX_DECLARE(openat); LX_DECLARE(creat); LX_DECLARE(close_range);
LX_DECLARE(stat); LX_DECLARE(lstat); LX_DECLARE(statx); LX_DECLARE(access);
LX_DECLARE(faccessat); LX_DECLARE(faccessat2); LX_DECLARE(chdir); LX_DECLARE(fchdir);
LX_DECLARE(chroot); LX_DECLARE(umask); LX_DECLARE(getcwd); LX_DECLARE(newfstatat);
LX_DECLARE(readlink); LX_DECLARE(readlinkat);
/* fs_dir.c */
LX_DECLARE(mkdir); LX_DECLARE(mkdirat); LX_DECLARE(unlink); LX_DECLARE(rmdir);
LX_DECLARE(unlinkat); LX_DECLARE(rename); LX_DECLARE(renameat); LX_DECLARE(renameat2);
LX_DECLARE(link); LX_DECLARE(linkat); LX_DECLARE(symlink); LX_DECLARE(symlinkat);
LX_DECLARE(truncate); LX_DECLARE(chmod); LX_DECLARE(fchmod); LX_DECLARE(fchmodat);
LX_DECLARE(chown); LX_DECLARE(lchown); LX_DECLARE(fchown); LX_DECLARE(fchownat);
LX_DECLARE(utimensat); LX_DECLARE(getdents64);
/* fs_fd.c */
LX_DECLARE(ftruncate); LX_DECLARE(fsync); LX_DECLARE(fdatasync); LX_DECLARE(flock);
LX_DECLARE(sendfile); LX_DECLARE(memfd_create); LX_DECLARE(fstatfs); LX_DECLARE(statfs);
LX_DECLARE(fadvise64); LX_DECLARE(getxattr); LX_DECLARE(lgetxattr); LX_DECLARE(fgetxattr);
LX_DECLARE(listxattr); LX_DECLARE(llistxattr); LX_DECLARE(flistxattr);
/* futex.c */
LX_DECLARE(futex);
/* thread.c */
LX_DECLARE(clone); LX_DECLARE(clone3);
#undef LX_DECLARE

/* pipe.c: installing new host fds for the calls that create them (pipe, net, epoll). */
#include <stdbool.h>
#include "linux/fdtable.h"
/* host_fd at the lowest free guest number, with its type; closes host_fd on failure. */
int lx_install_fd(struct lx_proc *p, int host_fd, bool cloexec, enum lx_fd_type type);
/* Whether `needed` guest numbers are free (check before creating objects in pairs or before
 * an accept, so a full table does not lose the connection). */
bool lx_fds_available(struct lx_proc *p, int needed);
/* Installs both host fds and writes the two guest numbers to out_gva (int[2]); on any error
 * both host fds are closed. 0 or -errno. */
long lx_install_pair(struct lx_proc *p, const int host[2], bool cloexec, enum lx_fd_type type,
                     uint64_t out_gva);

#endif
