/* System calls with hostile arguments. Each check prints "ok" when the call failed the way
 * Linux fails it (mostly EFAULT, ENOSYS, EINVAL, EBADF) and the program carries on; the exit
 * status is the number of bad checks. Raw syscall() everywhere: libc wrappers and the vDSO
 * would fault in user mode before the kernel saw the pointer. stdin should hold some data. */
#include <asm/prctl.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static int failures;

static void say(const char *s) { (void)!write(1, s, strlen(s)); }

/* result must be -1 with errno == want. */
static void expect_errno(const char *what, long result, int want)
{
    int got = errno;
    int good = result == -1 && got == want;
    char line[200];
    snprintf(line, sizeof line, "%s: %s", what, good ? "ok\n" : "bad");
    say(line);
    if (!good) {
        snprintf(line, sizeof line, " (result %ld, errno %d, want %d)\n", result, got, want);
        say(line);
        failures++;
    }
}

static void verdict(const char *what, int good)
{
    say(what);
    say(good ? ": ok\n" : ": bad\n");
    if (!good)
        failures++;
}

#define CHECK(what, call, want) do { errno = 0; long r_ = (long)(call); expect_errno(what, r_, want); } while (0)

/* Addresses no user access may touch (the system area minus the user-readable clock page and
 * vDSO at 0x5000-0x7fff), unmapped ones, and non-canonical ones. */
static const uintptr_t unreadable[] = {
    0, 0x1000, 0x1080, 0x2000, 0x3000, 0x8000, 0x9ff0, 0xa000, 0xdeadbeef000,
    0x0000800000000000ull, 0xffff800000000000ull, 0xffffffffff600000ull,
};
/* Addresses no user write may touch: the above plus read-only user pages. */
static const uintptr_t unwritable_extra[] = {0x4000, 0x5000, 0x6000};

int main(void)
{
    char line[100];
    for (size_t i = 0; i < sizeof unreadable / sizeof unreadable[0]; i++) {
        snprintf(line, sizeof line, "write from %#lx -> EFAULT", (unsigned long)unreadable[i]);
        CHECK(line, syscall(SYS_write, 1, unreadable[i], 16), EFAULT);
        snprintf(line, sizeof line, "getrandom into %#lx -> EFAULT", (unsigned long)unreadable[i]);
        CHECK(line, syscall(SYS_getrandom, unreadable[i], 16, 0), EFAULT);
    }
    for (size_t i = 0; i < sizeof unwritable_extra / sizeof unwritable_extra[0]; i++) {
        snprintf(line, sizeof line, "getrandom into %#lx -> EFAULT", (unsigned long)unwritable_extra[i]);
        CHECK(line, syscall(SYS_getrandom, unwritable_extra[i], 16, 0), EFAULT);
        snprintf(line, sizeof line, "read stdin into %#lx -> EFAULT", (unsigned long)unwritable_extra[i]);
        CHECK(line, syscall(SYS_read, 0, unwritable_extra[i], 16), EFAULT);
    }
    CHECK("read stdin into 0x2000 -> EFAULT", syscall(SYS_read, 0, 0x2000, 16), EFAULT);
    CHECK("read stdin into 0x1000 -> EFAULT", syscall(SYS_read, 0, 0x1000, 16), EFAULT);
    static const char rodata[64] = "constant";
    CHECK("getrandom into .rodata -> EFAULT", syscall(SYS_getrandom, rodata, 16, 0), EFAULT);

    /* Pointer + length wrapping around or running past the canonical boundary. */
    CHECK("write wrapping past 2^64 -> EFAULT", syscall(SYS_write, 1, 0xfffffffffffff000ull, 0x2000), EFAULT);
    CHECK("getrandom wrapping past 2^64 -> EFAULT", syscall(SYS_getrandom, 0xfffffffffffffff0ull, 32, 0), EFAULT);
    char small[64];
    CHECK("write length SIZE_MAX -> EFAULT", syscall(SYS_write, 1, small, SIZE_MAX), EFAULT);
    CHECK("read length SIZE_MAX -> EFAULT", syscall(SYS_read, 0, small, SIZE_MAX), EFAULT);

    /* A buffer that starts mapped and runs into an unmapped page: partial or EFAULT, and the
     * mapped part is all that may change. */
    unsigned char *two = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (two == MAP_FAILED || munmap(two + 4096, 4096) != 0)
        return 100;
    errno = 0;
    long partial = syscall(SYS_getrandom, two + 4000, 200, 0);
    verdict("getrandom across the end of a mapping: partial or EFAULT",
            (partial == -1 && errno == EFAULT) || (partial >= 0 && partial <= 96));

    /* Unknown system call numbers. */
    CHECK("syscall 1000 -> ENOSYS", syscall(1000), ENOSYS);
    CHECK("syscall -1 -> ENOSYS", syscall(-1), ENOSYS);
    CHECK("syscall 511 (unassigned) -> ENOSYS", syscall(511), ENOSYS);
    CHECK("syscall 512 (x32 range, no x32 bit) -> ENOSYS", syscall(512), ENOSYS);
    CHECK("syscall x32 getpid -> ENOSYS", syscall(0x40000000 | 39), ENOSYS);
    CHECK("syscall 0x7fffffff -> ENOSYS", syscall(0x7fffffff), ENOSYS);

    /* iovec abuse. */
    struct iovec wild_base = {.iov_base = (void *)0xdeadbeef000, .iov_len = 8};
    CHECK("writev wild iovec array -> EFAULT", syscall(SYS_writev, 1, 0xdeadbeef000, 1), EFAULT);
    CHECK("writev iovec array in system area -> EFAULT", syscall(SYS_writev, 1, 0x2000, 1), EFAULT);
    CHECK("writev wild iov_base -> EFAULT", syscall(SYS_writev, 1, &wild_base, 1), EFAULT);
    struct iovec one = {.iov_base = small, .iov_len = 1};
    CHECK("writev iovcnt 1025 -> EINVAL", syscall(SYS_writev, 1, &one, 1025), EINVAL);
    CHECK("writev iovcnt -1 -> EINVAL", syscall(SYS_writev, 1, &one, -1), EINVAL);
    struct iovec huge[2] = {{small, SSIZE_MAX}, {small, SSIZE_MAX}};
    /* Linux rejects the range before it could add the lengths up. */
    CHECK("writev lengths summing past SSIZE_MAX -> EFAULT", syscall(SYS_writev, 1, huge, 2), EFAULT);
    struct iovec negative = {small, SIZE_MAX};
    CHECK("writev negative iov_len -> EINVAL", syscall(SYS_writev, 1, &negative, 1), EINVAL);
    CHECK("readv wild iov_base -> EFAULT", syscall(SYS_readv, 0, &wild_base, 1), EFAULT);

    /* Other pointer-taking calls. */
    CHECK("clock_gettime wild -> EFAULT", syscall(SYS_clock_gettime, CLOCK_MONOTONIC, 0xdeadbeef000), EFAULT);
    CHECK("clock_gettime into IDT -> EFAULT", syscall(SYS_clock_gettime, CLOCK_REALTIME, 0x2000), EFAULT);
    struct timespec ts;
    CHECK("clock_gettime bad clock -> EINVAL", syscall(SYS_clock_gettime, 12345, &ts), EINVAL);
    CHECK("gettimeofday wild -> EFAULT", syscall(SYS_gettimeofday, 0xdeadbeef000, 0), EFAULT);
    CHECK("nanosleep wild -> EFAULT", syscall(SYS_nanosleep, 0xdeadbeef000, 0), EFAULT);
    struct timespec bad_ns = {0, 1000000000};
    CHECK("nanosleep tv_nsec 1e9 -> EINVAL", syscall(SYS_nanosleep, &bad_ns, 0), EINVAL);
    CHECK("uname wild -> EFAULT", syscall(SYS_uname, 0xdeadbeef000), EFAULT);
    CHECK("uname into GDT -> EFAULT", syscall(SYS_uname, 0x1000), EFAULT);
    CHECK("openat wild path -> EFAULT", syscall(SYS_openat, AT_FDCWD, 0xdeadbeef000, O_RDONLY), EFAULT);
    CHECK("openat path in IDT -> EFAULT", syscall(SYS_openat, AT_FDCWD, 0x2000, O_RDONLY), EFAULT);
    /* An unterminated path that runs into an unmapped page (shorter than PATH_MAX). */
    memset(two + 100, 'a', 4096 - 100);
    CHECK("openat unterminated path -> EFAULT", syscall(SYS_openat, AT_FDCWD, two + 100, O_RDONLY), EFAULT);
    CHECK("rt_sigaction wild -> EFAULT", syscall(SYS_rt_sigaction, SIGUSR1, 0xdeadbeef000, 0, 8), EFAULT);
    CHECK("arch_prctl SET_FS non-canonical -> EPERM",
          syscall(SYS_arch_prctl, ARCH_SET_FS, 0x8000000000000000ull), EPERM);
    CHECK("arch_prctl SET_FS kernel half -> EPERM",
          syscall(SYS_arch_prctl, ARCH_SET_FS, 0xffffffff81000000ull), EPERM);
    CHECK("arch_prctl GET_FS into IDT -> EFAULT", syscall(SYS_arch_prctl, ARCH_GET_FS, 0x2000), EFAULT);
    CHECK("arch_prctl unknown code -> EINVAL", syscall(SYS_arch_prctl, 0x9999, 0), EINVAL);

    /* Memory-management abuse. */
    CHECK("mmap 2^62 bytes -> ENOMEM",
          syscall(SYS_mmap, 0, 1ull << 62, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), ENOMEM);
    CHECK("mmap length -4096 -> ENOMEM",
          syscall(SYS_mmap, 0, -4096l, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), ENOMEM);
    CHECK("mmap MAP_FIXED unaligned -> EINVAL",
          syscall(SYS_mmap, 0x10000001, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0), EINVAL);
    CHECK("munmap unaligned -> EINVAL", syscall(SYS_munmap, 0x10001, 4096), EINVAL);
    CHECK("mprotect wrapping range -> ENOMEM",
          syscall(SYS_mprotect, 0xfffffffffffff000ull, 0x2000, PROT_READ), ENOMEM);
    long current_break = syscall(SYS_brk, 0);
    verdict("brk into the system area refused", syscall(SYS_brk, 0x1000) == current_break);

    /* File descriptors out of range. */
    CHECK("write fd -1 -> EBADF", syscall(SYS_write, -1, small, 1), EBADF);
    CHECK("write fd 2^30 -> EBADF", syscall(SYS_write, 1 << 30, small, 1), EBADF);
    CHECK("close fd -1 -> EBADF", syscall(SYS_close, -1), EBADF);
    CHECK("dup2 to fd 2^30 -> EBADF", syscall(SYS_dup2, 1, 1 << 30), EBADF);

    /* Still alive and working: a normal call after all of the above. */
    verdict("getpid still works", syscall(SYS_getpid) > 0);
    snprintf(line, sizeof line, "failures=%d\n", failures);
    say(line);
    return failures;
}
