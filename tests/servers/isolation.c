/* Isolation test server (tests/e2e/test_isolation.py, bench/isolation_soak.py): each endpoint
 * reports one kind of process state as it finds it, then changes that state. Under
 * `kvmserver -e` every connection starts from the frozen image, so two requests in a row to one
 * endpoint must give the same (pristine) answer; natively, or under kvmserver without -e, the
 * second answer shows what the first one changed. Every object an endpoint uses is made before
 * the first accept, so it is part of the frozen image.
 *
 * /fixed-touch and /widen-touch touch memory directly, with no system call to ask first: on a
 * pristine VM they crash it (the connection closes without an answer). /crash, /slow and /eat
 * change everything the endpoints change, then crash, sleep past --max-request-time, or take
 * the memory asked for (past --max-request-memory). /scribble reports how many pages of an 8 MiB
 * block from the image it finds changed, then writes every one (and changes everything). `/` (what
 * kvmserver's warm-up requests) changes nothing. Usage: isolation PORT|unix:/path */
#include "http.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096
/* Unmapped natively (a static non-PIE program lives near 0x400000, its mmaps near 0x7f...) and
 * below kvmserver's default --max-address-space (120 GiB). */
#define FIXED_ADDR ((char *)0x1000000000ul)
#define FIXED_BYTE 0x5a
#define FROZEN_BYTES "F"              /* what the pipe and the socketpair hold at the freeze */
#define EVENTFD_FROZEN 3              /* the eventfd's counter at the freeze */
#define MEMFD_FROZEN "frozen-memfd"
#define SLOW_SECONDS 3                /* /slow: longer than the --max-request-time it is run with */
#define THREAD_TICK_NS 2000000        /* a started thread counts every 2 ms... */
#define THREAD_LOOK_NS 20000000       /* ...so a 20 ms look sees it if it survived */
#define HEAP_TABLE_SIZE (1 << 20)
#define SCRIBBLE_SIZE (8u << 20)      /* /scribble: more than the --limit-request-memory it is run with */
#define SCRIBBLE_BYTE 0x3c
#define MAX_CARRIED 4096              /* bytes a pipe or socketpair endpoint reads and writes back */

/* Objects made before the first accept. */
static int pipe_fds[2], pair_fds[2], event_fd, memfd, file_fd, epoll_fd, epoll_ready_fd;
static int timer_fd, timer_errno, signal_fd, signal_errno;
static const int pending_signal = 36;  /* SIGRTMIN+2 (glibc keeps 32 and 33): blocked */

/* Memory: a read-only page to widen, a data page to unmap, and tables for random writes in
 * the data segment, the bss and the heap. */
static const char ro_page[PAGE] __attribute__((aligned(PAGE))) = "frozen read-only page";
static char unmap_page[PAGE] __attribute__((aligned(PAGE))) = "frozen data page";
static unsigned char data_table[16384] = { 1 };
static unsigned char bss_table[65536];
static unsigned char *heap_table;
static unsigned char *scribble_block;  /* written whole before the freeze: in the image */

static unsigned long thread_ticks;     /* bumped by the threads /threads starts */

static const char *errno_name(int err)
{
    const char *name = strerrorname_np(err);
    return name ? name : "E?";
}

/* Asks the kernel whether the program can read or write `addr`, without touching it: write(2)
 * from it into a pipe of our own (/dev/null would not read it), then read(2) the byte back
 * into it, so a writable page keeps its contents. */
static void probe(char *addr, const char **readable, const char **writable)
{
    int fds[2];
    *readable = *writable = "E?";
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
        return;
    if (write(fds[1], addr, 1) != 1) {
        *readable = *writable = errno_name(errno);
    } else {
        *readable = "ok";
        *writable = read(fds[0], addr, 1) == 1 ? "ok" : errno_name(errno);
    }
    close(fds[0]);
    close(fds[1]);
}

/* Reads what a pipe or socketpair holds (without waiting), reports it, and writes it back with
 * one more byte, so the next reader finds more. */
static void carry_bytes(int read_fd, int write_fd, char *body, size_t size)
{
    static char bytes[MAX_CARRIED + 1];
    ssize_t n = read(read_fd, bytes, MAX_CARRIED);
    if (n < 0 && errno != EAGAIN) {
        snprintf(body, size, "read=%s\n", errno_name(errno));
        return;
    }
    size_t held = n > 0 ? (size_t)n : 0;
    snprintf(body, size, "bytes=%.*s\n", (int)(held < 64 ? held : 64), bytes);
    bytes[held++] = 'A';
    if (write(write_fd, bytes, held) < 0)
        snprintf(body, size, "write=%s\n", errno_name(errno));
}

static void ep_pipe(char *body, size_t size)
{
    carry_bytes(pipe_fds[0], pipe_fds[1], body, size);
}

static void ep_socketpair(char *body, size_t size)
{
    carry_bytes(pair_fds[1], pair_fds[0], body, size);
}

static void ep_eventfd(char *body, size_t size)
{
    uint64_t count = 0;
    if (read(event_fd, &count, sizeof count) < 0 && errno != EAGAIN) {
        snprintf(body, size, "read=%s\n", errno_name(errno));
        return;
    }
    snprintf(body, size, "count=%llu\n", (unsigned long long)count);
    count += 5;
    if (write(event_fd, &count, sizeof count) < 0)
        snprintf(body, size, "write=%s\n", errno_name(errno));
}

static void ep_memfd(char *body, size_t size)
{
    char seen[32] = "";
    ssize_t n = pread(memfd, seen, sizeof seen - 1, 0);
    snprintf(body, size, "contents=%.*s\n", n > 0 ? (int)n : 0, seen);
    if (pwrite(memfd, "changed", 7, 0) != 7)
        snprintf(body, size, "pwrite=%s\n", errno_name(errno));
}

static void ep_file_offset(char *body, size_t size)
{
    off_t at = lseek(file_fd, 0, SEEK_CUR);
    snprintf(body, size, "offset=%lld\n", (long long)at);
    char scratch[16];
    if (read(file_fd, scratch, sizeof scratch) < 0)
        snprintf(body, size, "read=%s\n", errno_name(errno));
}

static void ep_file_flags(char *body, size_t size)
{
    int flags = fcntl(file_fd, F_GETFL);
    snprintf(body, size, "nonblock=%d append=%d\n", !!(flags & O_NONBLOCK), !!(flags & O_APPEND));
    if (fcntl(file_fd, F_SETFL, flags | O_NONBLOCK | O_APPEND) < 0)
        snprintf(body, size, "setfl=%s\n", errno_name(errno));
}

static void ep_timerfd(char *body, size_t size)
{
    if (timer_fd < 0) {
        snprintf(body, size, "timerfd_create=%s\n", errno_name(timer_errno));
        return;
    }
    struct itimerspec now;
    if (timerfd_gettime(timer_fd, &now) < 0) {
        snprintf(body, size, "gettime=%s\n", errno_name(errno));
        return;
    }
    snprintf(body, size, "armed=%d\n", now.it_value.tv_sec != 0 || now.it_value.tv_nsec != 0);
    struct itimerspec later = { .it_value = { .tv_sec = 3600 } };
    if (timerfd_settime(timer_fd, 0, &later, NULL) < 0)
        snprintf(body, size, "settime=%s\n", errno_name(errno));
}

static void ep_signalfd(char *body, size_t size)
{
    if (signal_fd < 0) {
        snprintf(body, size, "signalfd=%s\n", errno_name(signal_errno));
        return;
    }
    struct pollfd ready = { .fd = signal_fd, .events = POLLIN };
    int n = poll(&ready, 1, 0);
    snprintf(body, size, "readable=%d\n", n);
    if (raise(SIGUSR2) != 0)
        snprintf(body, size, "raise=%s\n", errno_name(errno));
}

static void ep_pending(char *body, size_t size)
{
    sigset_t pending;
    sigemptyset(&pending);
    if (sigpending(&pending) < 0) {
        snprintf(body, size, "sigpending=%s\n", errno_name(errno));
        return;
    }
    snprintf(body, size, "pending=%d\n", sigismember(&pending, pending_signal));
    if (raise(pending_signal) != 0)
        snprintf(body, size, "raise=%s\n", errno_name(errno));
}

static void ep_cwd(char *body, size_t size)
{
    char cwd[256];
    if (!getcwd(cwd, sizeof cwd))
        snprintf(cwd, sizeof cwd, "getcwd=%s", errno_name(errno));
    snprintf(body, size, "cwd=%s\n", cwd);
    if (chdir(strcmp(cwd, "/") ? "/" : "/tmp") < 0)
        snprintf(body, size, "chdir=%s\n", errno_name(errno));
}

static void ep_umask(char *body, size_t size)
{
    mode_t old = umask(077);
    if (old == 077)
        umask(022);
    snprintf(body, size, "umask=%03o\n", (unsigned)old);
}

static void ep_rlimit(char *body, size_t size)
{
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) < 0) {
        snprintf(body, size, "getrlimit=%s\n", errno_name(errno));
        return;
    }
    snprintf(body, size, "nofile=%llu\n", (unsigned long long)limit.rlim_cur);
    limit.rlim_cur = limit.rlim_cur > 64 ? limit.rlim_cur - 1 : 64;
    if (setrlimit(RLIMIT_NOFILE, &limit) < 0)
        snprintf(body, size, "setrlimit=%s\n", errno_name(errno));
}

/* Leaves an fd open: the lowest free fd is the one open() returns. */
static void ep_fds(char *body, size_t size)
{
    int fd = open("/dev/null", O_RDONLY);
    snprintf(body, size, "lowest_free=%d\n", fd < 0 ? -errno : fd);
}

static void on_sigusr1(int sig)
{
    (void)sig;
}

static void ep_sigaction(char *body, size_t size)
{
    struct sigaction handler = { .sa_handler = on_sigusr1 }, old;
    if (sigaction(SIGUSR1, &handler, &old) < 0) {
        snprintf(body, size, "sigaction=%s\n", errno_name(errno));
        return;
    }
    snprintf(body, size, "previous=%s\n", old.sa_handler == SIG_DFL ? "default"
                                          : old.sa_handler == SIG_IGN ? "ignore" : "handler");
}

static void ep_itimer(char *body, size_t size)
{
    struct itimerval now;
    if (getitimer(ITIMER_REAL, &now) < 0) {
        snprintf(body, size, "getitimer=%s\n", errno_name(errno));
    } else {
        snprintf(body, size, "armed=%d\n",
                 now.it_value.tv_sec != 0 || now.it_value.tv_usec != 0);
    }
    struct itimerval later = { .it_value = { .tv_sec = 3600 } };
    if (setitimer(ITIMER_REAL, &later, NULL) < 0)
        snprintf(body + strlen(body), size - strlen(body), "setitimer=%s\n", errno_name(errno));
}

static void ep_fixed(char *body, size_t size)
{
    const char *seen, *writable;
    probe(FIXED_ADDR, &seen, &writable);
    void *at = mmap(FIXED_ADDR, PAGE, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    const char *mapped = at == MAP_FAILED ? errno_name(errno) : at == FIXED_ADDR ? "ok" : "moved";
    if (at == FIXED_ADDR)
        *FIXED_ADDR = FIXED_BYTE;
    snprintf(body, size, "readable=%s writable=%s map=%s\n", seen, writable, mapped);
}

/* Pristine: the load faults and the VM crashes. */
static void ep_fixed_touch(char *body, size_t size)
{
    snprintf(body, size, "byte=%#x\n", *(volatile unsigned char *)FIXED_ADDR);
}

static void ep_widen(char *body, size_t size)
{
    char *page = (char *)ro_page;
    const char *readable, *writable;
    probe(page, &readable, &writable);
    snprintf(body, size, "readable=%s writable=%s contents=%.24s\n", readable, writable, page);
    if (mprotect(page, PAGE, PROT_READ | PROT_WRITE) < 0)
        snprintf(body, size, "mprotect=%s\n", errno_name(errno));
    else
        memcpy(page, "widened", 8);
}

/* Pristine: the store faults and the VM crashes. */
static void ep_widen_touch(char *body, size_t size)
{
    volatile char *page = (volatile char *)ro_page;
    page[1] = page[1];
    snprintf(body, size, "stored\n");
}

/* Touches the data page directly (pristine: it is there), then unmaps it. */
static void ep_unmap(char *body, size_t size)
{
    snprintf(body, size, "contents=%.24s\n", (const char *)(volatile char *)unmap_page);
    if (munmap(unmap_page, PAGE) < 0)
        snprintf(body, size, "munmap=%s\n", errno_name(errno));
}

static void ep_epoll(char *body, size_t size)
{
    struct epoll_event events[4];
    int n = epoll_wait(epoll_fd, events, 4, 0);
    struct epoll_event add = { .events = EPOLLIN, .data.fd = epoll_ready_fd };
    const char *added = epoll_ctl(epoll_fd, EPOLL_CTL_ADD, epoll_ready_fd, &add) == 0
                        ? "ok" : errno_name(errno);
    snprintf(body, size, "events=%d add=%s\n", n, added);
}

static void *ticker(void *arg)
{
    (void)arg;
    struct timespec tick = { .tv_nsec = THREAD_TICK_NS };
    for (;;) {
        nanosleep(&tick, NULL);
        __atomic_fetch_add(&thread_ticks, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

/* The kernel's count of threads (kvmserver's /proc/self/status), or -1. */
static int status_threads(void)
{
    FILE *status = fopen("/proc/self/status", "re");
    if (!status)
        return -1;
    char line[256];
    int threads = -1;
    while (fgets(line, sizeof line, status))
        if (sscanf(line, "Threads: %d", &threads) == 1)
            break;
    fclose(status);
    return threads;
}

/* Looks for a thread a previous request left running (it ticks while we sleep), then leaves
 * one running. */
static void ep_threads(char *body, size_t size)
{
    unsigned long before = __atomic_load_n(&thread_ticks, __ATOMIC_RELAXED);
    struct timespec look = { .tv_nsec = THREAD_LOOK_NS };
    nanosleep(&look, NULL);
    bool ticking = __atomic_load_n(&thread_ticks, __ATOMIC_RELAXED) != before;
    snprintf(body, size, "threads=%d ticking=%d\n", status_threads(), ticking);
    pthread_t thread;
    int err = pthread_create(&thread, NULL, ticker, NULL);
    if (err)
        snprintf(body, size, "pthread_create=%s\n", errno_name(err));
    else
        pthread_detach(thread);
}

static uint64_t fnv1a(uint64_t hash, const unsigned char *bytes, size_t len)
{
    for (size_t i = 0; i < len; i++)
        hash = (hash ^ bytes[i]) * 0x100000001b3ull;
    return hash;
}

/* Reports a checksum of the tables, then changes one byte at a random place in one of them. */
static void ep_memory(char *body, size_t size)
{
    uint64_t sum = 0xcbf29ce484222325ull;
    sum = fnv1a(sum, data_table, sizeof data_table);
    sum = fnv1a(sum, bss_table, sizeof bss_table);
    sum = fnv1a(sum, heap_table, HEAP_TABLE_SIZE);
    snprintf(body, size, "checksum=%016llx\n", (unsigned long long)sum);
    uint64_t r;
    if (getrandom(&r, sizeof r, 0) != sizeof r)
        r = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ull;
    unsigned char *table = (r & 3) == 0 ? data_table : (r & 3) == 1 ? bss_table : heap_table;
    size_t len = (r & 3) == 0 ? sizeof data_table : (r & 3) == 1 ? sizeof bss_table
                                                                 : HEAP_TABLE_SIZE;
    table[(r >> 8) % len] += (unsigned char)(1 + (r >> 40) % 255);   /* never by 0 */
}

struct endpoint {
    const char *path;
    void (*run)(char *body, size_t size);
    bool crashes;                     /* pristine answer: the VM crashes */
};

static const struct endpoint endpoints[] = {
    { "/pipe", ep_pipe, false },          { "/socketpair", ep_socketpair, false },
    { "/eventfd", ep_eventfd, false },    { "/memfd", ep_memfd, false },
    { "/file-offset", ep_file_offset, false }, { "/file-flags", ep_file_flags, false },
    { "/timerfd", ep_timerfd, false },    { "/signalfd", ep_signalfd, false },
    { "/pending", ep_pending, false },    { "/cwd", ep_cwd, false },
    { "/umask", ep_umask, false },        { "/rlimit", ep_rlimit, false },
    { "/fds", ep_fds, false },            { "/sigaction", ep_sigaction, false },
    { "/itimer", ep_itimer, false },      { "/fixed", ep_fixed, false },
    { "/fixed-touch", ep_fixed_touch, true }, { "/widen", ep_widen, false },
    { "/widen-touch", ep_widen_touch, true }, { "/unmap", ep_unmap, false },
    { "/epoll", ep_epoll, false },        { "/threads", ep_threads, false },
    { "/memory", ep_memory, false },
};

/* Every change the endpoints make, for /crash and /slow. */
static void change_everything(void)
{
    char scratch[256];
    for (size_t i = 0; i < sizeof endpoints / sizeof endpoints[0]; i++)
        if (!endpoints[i].crashes)
            endpoints[i].run(scratch, sizeof scratch);
}

static int route(const char *path, const char *query, char *body, size_t size)
{
    (void)query;
    if (strcmp(path, "/crash") == 0 || strcmp(path, "/eat") == 0) {
        change_everything();
        return 0;                     /* the shared route crashes, or takes the memory asked */
    }
    if (strcmp(path, "/scribble") == 0) {
        size_t changed = 0;
        for (size_t offset = 0; offset < SCRIBBLE_SIZE; offset += PAGE) {
            changed += scribble_block[offset] != SCRIBBLE_BYTE;
            scribble_block[offset]++;
        }
        change_everything();
        snprintf(body, size, "changed=%zu\n", changed);
        return 200;
    }
    if (strcmp(path, "/slow") == 0) {
        change_everything();
        struct timespec left = { .tv_sec = SLOW_SECONDS };
        while (nanosleep(&left, &left) < 0 && errno == EINTR)
            ;
        snprintf(body, size, "slept\n");
        return 200;
    }
    for (size_t i = 0; i < sizeof endpoints / sizeof endpoints[0]; i++)
        if (strcmp(path, endpoints[i].path) == 0) {
            endpoints[i].run(body, size);
            return 200;
        }
    return 0;
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void make_objects(const char *program)
{
    if (pipe2(pipe_fds, O_NONBLOCK | O_CLOEXEC) < 0 ||
        write(pipe_fds[1], FROZEN_BYTES, strlen(FROZEN_BYTES)) < 0)
        die("pipe");
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair_fds) < 0 ||
        write(pair_fds[0], FROZEN_BYTES, strlen(FROZEN_BYTES)) < 0)
        die("socketpair");
    if ((event_fd = eventfd(EVENTFD_FROZEN, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
        die("eventfd");
    if ((memfd = memfd_create("isolation", MFD_CLOEXEC)) < 0 ||
        write(memfd, MEMFD_FROZEN, strlen(MEMFD_FROZEN)) < 0)
        die("memfd");
    if ((file_fd = open(program, O_RDONLY | O_CLOEXEC)) < 0)
        die(program);
    if ((epoll_fd = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
        (epoll_ready_fd = eventfd(1, EFD_CLOEXEC)) < 0)
        die("epoll");
    /* Not every kernel (kvmserver's included) has these: the endpoints report why. */
    timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    timer_errno = errno;
    sigset_t blocked;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGUSR2);
    sigaddset(&blocked, pending_signal);
    if (sigprocmask(SIG_BLOCK, &blocked, NULL) < 0)
        die("sigprocmask");
    sigset_t watched;
    sigemptyset(&watched);
    sigaddset(&watched, SIGUSR2);
    signal_fd = signalfd(-1, &watched, SFD_NONBLOCK | SFD_CLOEXEC);
    signal_errno = errno;

    if (!(heap_table = malloc(HEAP_TABLE_SIZE)))
        die("malloc");
    for (size_t i = 0; i < sizeof data_table; i++)
        data_table[i] = (unsigned char)(i * 7 + 1);
    for (size_t i = 0; i < sizeof bss_table; i++)
        bss_table[i] = (unsigned char)(i * 13 + 5);
    for (size_t i = 0; i < HEAP_TABLE_SIZE; i++)
        heap_table[i] = (unsigned char)(i * 31 + 11);
    if (!(scribble_block = malloc(SCRIBBLE_SIZE)))
        die("malloc");
    memset(scribble_block, SCRIBBLE_BYTE, SCRIBBLE_SIZE);
}

int main(int argc, char **argv)
{
    http_check_usage(argc, argv);
    make_objects(argv[0]);
    http_set_app_route(route);
    return http_serve_blocking(http_listen(argv[1], false));
}
