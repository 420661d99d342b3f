/* The host seccomp filter (see seccomp.h).
 *
 * The lists come from the host calls in the code: the libc functions kvmserver imports
 * (`nm -D --undefined-only build/kvmserver`), its raw syscall() numbers, and what glibc makes
 * inside them (threads, malloc, stdio). The whole e2e suite, run with each transport under a
 * filter whose default action was SCMP_ACT_LOG (misses show up in `dmesg` as audit
 * type=1326), found no call beyond them.
 *
 * Serving (both phases):
 *   memory     mmap munmap mprotect madvise mremap brk: guest memory, memfds, malloc, stacks
 *   files      read write pread64 pwrite64 readv writev openat openat2 close lseek fstat
 *              newfstatat statx fstatfs getdents64 readlink readlinkat fcntl flock ftruncate
 *              fallocate fsync fdatasync faccessat2 mkdirat unlinkat renameat2 linkat
 *              symlinkat chmod fchmod fchown fchownat utimensat getcwd sendfile tee: the
 *              file-system handlers, relative to the sandbox's directory fds, /proc/self for
 *              fd paths; fallocate also punches holes in guest memory at reset
 *   objects    memfd_create pipe2 eventfd2 socketpair: fds handlers create for the guest and
 *              the frozen copies of pipes, memfds and socket pairs (fdclone.c)
 *   network    socket bind listen connect accept4 getsockname getpeername getsockopt
 *              setsockopt shutdown sendto recvfrom sendmsg recvmsg: the socket handlers (only
 *              what --allow-* grants reaches them) and the metrics listener
 *   waiting    poll ppoll epoll_create1 epoll_ctl epoll_wait epoll_pwait2 nanosleep
 *              clock_nanosleep futex sched_yield rt_sigtimedwait: blocking handlers, guest
 *              threads, the poller, the metrics thread, the main thread's wait for SIGTERM
 *   time       clock_gettime clock_getres (when the vDSO falls back); timer_create
 *              timer_settime timer_gettime timer_delete restart_syscall: the vCPU loop's kick
 *              timer (its period shortened while guest threads take time slices)
 *   threads    clone clone3 set_robust_list rseq exit exit_group gettid getpid tgkill
 *              rt_sigaction rt_sigprocmask rt_sigreturn sched_setaffinity: host threads of
 *              request VMs and guest threads, pinning, abort()
 *   identity   getuid geteuid getgid getegid getrandom getrusage uname sysinfo
 *   ioctl      restricted by request: KVM's own (type byte 0xAE: VM and vCPU creation,
 *              KVM_RUN, registers, memory slots; request VMs are created and reset after the
 *              freeze) and FIONREAD FIONBIO TCGETS TIOCGWINSZ, the only ones the ioctl
 *              handler (io.c) and the fd cloning pass to the host. Any other request kills.
 * Boot only (phase one adds): access (--volume checks), sched_getaffinity (the CPU count),
 *   seccomp (to load phase two).
 * Everything else kills, among them execve, fork, ptrace, process_vm_*, mount, bpf, keyctl,
 * perf_event_open, userfaultfd. */
#include "server/seccomp.h"

#include <errno.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>

#include "base/log.h"

static const int serving_calls[] = {
    SCMP_SYS(mmap), SCMP_SYS(munmap), SCMP_SYS(mprotect), SCMP_SYS(madvise),
    SCMP_SYS(mremap), SCMP_SYS(brk),

    SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(pread64), SCMP_SYS(pwrite64), SCMP_SYS(readv),
    SCMP_SYS(writev), SCMP_SYS(openat), SCMP_SYS(openat2), SCMP_SYS(close), SCMP_SYS(lseek),
    SCMP_SYS(fstat), SCMP_SYS(newfstatat), SCMP_SYS(statx), SCMP_SYS(fstatfs),
    SCMP_SYS(getdents64), SCMP_SYS(readlink), SCMP_SYS(readlinkat), SCMP_SYS(fcntl),
    SCMP_SYS(flock), SCMP_SYS(ftruncate), SCMP_SYS(fallocate), SCMP_SYS(fsync),
    SCMP_SYS(fdatasync), SCMP_SYS(faccessat2), SCMP_SYS(mkdirat), SCMP_SYS(unlinkat),
    SCMP_SYS(renameat2), SCMP_SYS(linkat), SCMP_SYS(symlinkat), SCMP_SYS(chmod),
    SCMP_SYS(fchmod), SCMP_SYS(fchown), SCMP_SYS(fchownat), SCMP_SYS(utimensat),
    SCMP_SYS(getcwd), SCMP_SYS(sendfile), SCMP_SYS(tee),

    SCMP_SYS(memfd_create), SCMP_SYS(pipe2), SCMP_SYS(eventfd2), SCMP_SYS(socketpair),

    SCMP_SYS(socket), SCMP_SYS(bind), SCMP_SYS(listen), SCMP_SYS(connect), SCMP_SYS(accept4),
    SCMP_SYS(getsockname), SCMP_SYS(getpeername), SCMP_SYS(getsockopt), SCMP_SYS(setsockopt),
    SCMP_SYS(shutdown), SCMP_SYS(sendto), SCMP_SYS(recvfrom), SCMP_SYS(sendmsg),
    SCMP_SYS(recvmsg),

    SCMP_SYS(poll), SCMP_SYS(ppoll), SCMP_SYS(epoll_create1), SCMP_SYS(epoll_ctl),
    SCMP_SYS(epoll_wait), SCMP_SYS(epoll_pwait2), SCMP_SYS(nanosleep),
    SCMP_SYS(clock_nanosleep), SCMP_SYS(futex), SCMP_SYS(sched_yield),
    SCMP_SYS(rt_sigtimedwait), SCMP_SYS(clock_gettime), SCMP_SYS(clock_getres),

    SCMP_SYS(timer_create), SCMP_SYS(timer_settime), SCMP_SYS(timer_gettime),
    SCMP_SYS(timer_delete),
    SCMP_SYS(restart_syscall),

    SCMP_SYS(clone), SCMP_SYS(clone3), SCMP_SYS(set_robust_list), SCMP_SYS(rseq),
    SCMP_SYS(exit), SCMP_SYS(exit_group), SCMP_SYS(gettid), SCMP_SYS(getpid),
    SCMP_SYS(tgkill), SCMP_SYS(rt_sigaction), SCMP_SYS(rt_sigprocmask),
    SCMP_SYS(rt_sigreturn), SCMP_SYS(sched_setaffinity),

    SCMP_SYS(getuid), SCMP_SYS(geteuid), SCMP_SYS(getgid), SCMP_SYS(getegid),
    SCMP_SYS(getrandom), SCMP_SYS(getrusage), SCMP_SYS(uname), SCMP_SYS(sysinfo),
};

/* Phase one only: the sandbox's set-up (--volume checks), the CPU count, loading phase two
 * itself, dup3 for an inherited socket taking the place of the booting program's own
 * (socket activation, linux/listener.c), and `kvmserver snapshot` putting its finished
 * file in place (renameat). */
static const int boot_only_calls[] = {
    SCMP_SYS(access), SCMP_SYS(sched_getaffinity), SCMP_SYS(seccomp), SCMP_SYS(dup3),
    SCMP_SYS(renameat),
};

/* The host ioctls the tty/socket handlers and the fd cloning pass on. */
static const unsigned long passed_ioctls[] = { FIONREAD, FIONBIO, TCGETS, TIOCGWINSZ };

#define KVMIO_TYPE 0xAEul      /* the type byte of every KVM ioctl (linux/kvm.h: KVMIO) */

static int allow_list(scmp_filter_ctx ctx, const int *calls, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, calls[i], 0);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int allow_ioctls(scmp_filter_ctx ctx)
{
    /* Compared on the low 32 bits: the kernel takes the request as an unsigned int. */
    int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
                              SCMP_A1(SCMP_CMP_MASKED_EQ, 0xff00, KVMIO_TYPE << 8));
    for (size_t i = 0; rc == 0 && i < sizeof passed_ioctls / sizeof passed_ioctls[0]; i++)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
                              SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffff, passed_ioctls[i]));
    return rc;
}

static int install(const char *phase, bool all_threads, bool boot)
{
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
    if (!ctx) {
        log_error("host seccomp filter (%s): seccomp_init failed", phase);
        return -1;
    }
    int rc = allow_list(ctx, serving_calls, sizeof serving_calls / sizeof serving_calls[0]);
    if (rc == 0 && boot)
        rc = allow_list(ctx, boot_only_calls, sizeof boot_only_calls / sizeof boot_only_calls[0]);
    if (rc == 0)
        rc = allow_ioctls(ctx);
    /* Phase one set no_new_privs already (it is inherited and stays). */
    if (rc == 0 && all_threads)
        rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
    if (rc == 0 && all_threads)
        rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
    if (rc == 0)
        rc = seccomp_load(ctx);
    seccomp_release(ctx);
    if (rc < 0) {
        log_error("cannot install the host seccomp filter (%s): %s "
                "(--no-seccomp runs without it)", phase, strerror(-rc));
        return -1;
    }
    return 0;
}

int host_seccomp_boot(const struct config *cfg)
{
    return cfg->no_seccomp ? 0 : install("boot", false, true);
}

int host_seccomp_serve(const struct config *cfg)
{
    return cfg->no_seccomp ? 0 : install("serving", true, false);
}
