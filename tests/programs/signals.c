/* Signals as Linux delivers them: fault handlers with siginfo and ucontext, recovery by
 * siglongjmp and by fixing the fault, the alternate stack, masks, SA_RESETHAND/NODEFER,
 * signals sent to oneself and between threads, timers interrupting waits, SA_RESTART,
 * SIGPIPE; a thread suspended by another's signal while it waits with a temporary mask, as
 * JavaScriptCore's garbage collector does to the main thread. Prints only what is the same natively and in kvmserver. */
#include <errno.h>
#include <fenv.h>
#include <pthread.h>
#include <poll.h>
#include <semaphore.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

static sigjmp_buf jump;
static volatile sig_atomic_t got_sig, got_code, count, depth, max_depth, reraise;
static void *volatile got_addr;
static volatile uintptr_t got_rip, got_rsp, got_cr2, got_fp, got_mask_has_usr2;
static char *page;
static char altstack[64 * 1024];

static void on_fault_jump(int sig, siginfo_t *si, void *uc_)
{
    ucontext_t *uc = uc_;
    got_sig = sig;
    got_code = si->si_code;
    got_addr = si->si_addr;
    got_rip = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
    got_rsp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
    got_cr2 = (uintptr_t)uc->uc_mcontext.gregs[REG_CR2];
    got_fp = (uintptr_t)uc->uc_mcontext.fpregs;
    siglongjmp(jump, 1);
}

static void install(int sig, void (*fn)(int, siginfo_t *, void *), int flags)
{
    struct sigaction sa = { .sa_sigaction = fn, .sa_flags = SA_SIGINFO | flags };
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
}

/* The same for a handler that takes only the signal number. */
static void install_plain(int sig, void (*fn)(int), int flags)
{
    struct sigaction sa = { .sa_handler = fn, .sa_flags = flags };
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
}

/* Starts fn in a thread, and waits until it has stored its tid in *tid. */
static pthread_t start_thread(void *(*fn)(void *), void *arg, volatile pid_t *tid)
{
    *tid = 0;
    pthread_t t;
    pthread_create(&t, NULL, fn, arg);
    while (!*tid)
        sched_yield();
    return t;
}

static void segv_jump(void)
{
    install(SIGSEGV, on_fault_jump, 0);
    volatile char *bad = (char *)0x1234;
    if (sigsetjmp(jump, 1) == 0) {
        *bad = 1;
        puts("segv: not reached");
    }
    printf("segv: sig %d code %d (MAPERR %d) addr %p cr2 ok %d fpregs %d\n", got_sig,
           got_code, SEGV_MAPERR, got_addr, got_cr2 == 0x1234, got_fp != 0);
    /* A protection fault: ACCERR, and the handler may run again (the mask came back). */
    page = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (sigsetjmp(jump, 1) == 0)
        page[8] = 1;
    printf("segv: write to read-only: code %d (ACCERR %d) addr ok %d\n", got_code,
           SEGV_ACCERR, got_addr == page + 8);
}

static void on_fault_fix(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    got_sig = sig;
    got_code = fegetround() == FE_TONEAREST;  /* a handler starts with a clean FPU */
    count++;
    /* Make the page writable and return: the write is made again and succeeds. */
    mprotect((void *)((uintptr_t)si->si_addr & ~4095ul), 4096, PROT_READ | PROT_WRITE);
}

static void segv_fix(void)
{
    install(SIGSEGV, on_fault_fix, 0);
    count = 0;
    volatile double x = 1.5;
    fesetround(FE_UPWARD);
    page[100] = 42;
    int upward = fegetround() == FE_UPWARD;
    fesetround(FE_TONEAREST);
    x *= 2;     /* FPU state survives the handler */
    printf("fix: handler ran %d time(s), page[100] = %d, x = %.1f\n", count, page[100], x);
    printf("fix: handler's rounding default %d, the program's back after it %d\n", got_code,
           upward);
}

static void on_onstack(int sig, siginfo_t *si, void *uc)
{
    (void)si; (void)uc;
    char here;
    got_sig = sig;
    got_rsp = (uintptr_t)&here;
    stack_t ss;
    sigaltstack(NULL, &ss);
    got_code = ss.ss_flags;
    siglongjmp(jump, 1);
}

static void altstack_test(void)
{
    stack_t ss = { .ss_sp = altstack, .ss_size = sizeof altstack };
    sigaltstack(&ss, NULL);
    install(SIGSEGV, on_onstack, SA_ONSTACK);
    mprotect(page, 4096, PROT_READ);   /* segv_fix's handler made it writable */
    got_rsp = 0;
    got_code = 0;
    if (sigsetjmp(jump, 1) == 0)
        *(volatile int *)page = 1;     /* read-only */
    int on = got_rsp > (uintptr_t)altstack && got_rsp < (uintptr_t)altstack + sizeof altstack;
    printf("altstack: handler on the alternate stack %d, SS_ONSTACK %d\n", on,
           (got_code & SS_ONSTACK) != 0);
    stack_t now;
    sigaltstack(NULL, &now);
    printf("altstack: after: flags %d\n", now.ss_flags);
}

/* The alternate stack is per thread: a new thread has none, and one it sets up leaves the
 * first thread's as it was (there was one for the whole program until 2026-12-04). */
static char thread_altstack[64 * 1024];
static volatile uintptr_t handler_sp;
static void on_usr1_where(int sig) { (void)sig; char here; handler_sp = (uintptr_t)&here; }

static int sp_in(uintptr_t sp, const char *stack, size_t size)
{
    return sp > (uintptr_t)stack && sp <= (uintptr_t)stack + size;
}

static void *altstack_thread(void *arg)
{
    (void)arg;
    stack_t inherited;
    sigaltstack(NULL, &inherited);
    stack_t ss = { .ss_sp = thread_altstack, .ss_size = sizeof thread_altstack };
    sigaltstack(&ss, NULL);
    raise(SIGUSR1);
    printf("altstack per thread: a new thread's disabled %d, its handler on its own %d\n",
           (inherited.ss_flags & SS_DISABLE) != 0,
           sp_in(handler_sp, thread_altstack, sizeof thread_altstack));
    return NULL;
}

static void altstack_per_thread(void)
{
    install_plain(SIGUSR1, on_usr1_where, SA_ONSTACK);
    pthread_t t;
    pthread_create(&t, NULL, altstack_thread, NULL);
    pthread_join(t, NULL);
    raise(SIGUSR1);         /* altstack_test set the first thread's */
    stack_t now;
    sigaltstack(NULL, &now);
    printf("altstack per thread: the first thread's unchanged %d, its handler on it %d\n",
           now.ss_sp == altstack, sp_in(handler_sp, altstack, sizeof altstack));
}

static void arith_traps(void)
{
    install(SIGFPE, on_fault_jump, 0);
    volatile int zero = 0, one = 1;
    if (sigsetjmp(jump, 1) == 0)
        one = one / zero;
    printf("fpe: sig %d code %d (INTDIV %d) addr is rip %d\n", got_sig, got_code, FPE_INTDIV,
           (uintptr_t)got_addr == got_rip);
    install(SIGILL, on_fault_jump, 0);
    if (sigsetjmp(jump, 1) == 0)
        __asm__ volatile("ud2");
    printf("ill: sig %d code %d (ILLOPN %d) addr is rip %d\n", got_sig, got_code, ILL_ILLOPN,
           (uintptr_t)got_addr == got_rip);
    install(SIGTRAP, on_fault_jump, 0);
    if (sigsetjmp(jump, 1) == 0)
        __asm__ volatile("int3");
    printf("trap: sig %d code %d (SI_KERNEL %d)\n", got_sig, got_code, SI_KERNEL);
}

static void on_count(int sig, siginfo_t *si, void *uc_)
{
    ucontext_t *uc = uc_;
    got_sig = sig;
    got_code = si->si_code;
    count++;
    depth++;
    if (depth > max_depth)
        max_depth = depth;
    got_mask_has_usr2 = sigismember(&uc->uc_sigmask, SIGUSR2);
    sigset_t now;
    sigprocmask(SIG_BLOCK, NULL, &now);
    got_fp = sigismember(&now, sig);    /* is the signal itself blocked in its handler? */
    if (reraise && count < 3)
        raise(sig);             /* nested with SA_NODEFER; else after the handler returns */
    depth--;
}

static void flags_and_masks(void)
{
    install(SIGUSR1, on_count, 0);
    count = 0; max_depth = 0; reraise = 1;
    raise(SIGUSR1);
    printf("raise: sig %d code %d (SI_TKILL %d) count %d depth %d self blocked %d\n", got_sig,
           got_code, SI_TKILL, count, max_depth, (int)got_fp);
    install(SIGUSR1, on_count, SA_NODEFER);
    count = 0; max_depth = 0;
    kill(getpid(), SIGUSR1);
    printf("nodefer: count %d depth %d self blocked %d\n", count, max_depth, (int)got_fp);
    reraise = 0;
    kill(getpid(), SIGUSR1);
    printf("kill: code %d (SI_USER %d)\n", got_code, SI_USER);
    install(SIGUSR1, on_count, SA_RESETHAND);
    count = 0;
    raise(SIGUSR1);
    struct sigaction old;
    sigaction(SIGUSR1, NULL, &old);
    printf("resethand: count %d, now default %d\n", count, old.sa_handler == SIG_DFL);
    /* Blocked: pending until unblocked, then delivered once. */
    install(SIGUSR2, on_count, 0);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    sigprocmask(SIG_BLOCK, &set, NULL);
    count = 0;
    raise(SIGUSR2);
    raise(SIGUSR2);
    sigset_t pend;
    sigpending(&pend);
    printf("mask: while blocked count %d pending %d\n", count, sigismember(&pend, SIGUSR2));
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    printf("mask: after unblock count %d\n", count);
    /* sa_mask is blocked during the handler, and the old mask is in uc_sigmask. */
    struct sigaction sa = { .sa_sigaction = on_count, .sa_flags = SA_SIGINFO | SA_RESETHAND };
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGUSR2);
    sigaction(SIGUSR1, &sa, NULL);
    sigprocmask(SIG_BLOCK, &set, NULL);
    raise(SIGUSR1);
    printf("mask: uc_sigmask has the blocked SIGUSR2 %d\n", (int)got_mask_has_usr2);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    /* tgkill to ourselves. */
    install(SIGUSR1, on_count, 0);
    count = 0;
    syscall(SYS_tgkill, getpid(), (pid_t)syscall(SYS_gettid), SIGUSR1);
    printf("tgkill: count %d code %d\n", count, got_code);
}

static volatile pid_t thread_tid;
static volatile int thread_got;
static void on_thread_sig(int sig) { (void)sig; thread_got = (int)syscall(SYS_gettid) == thread_tid; }

static void *thread_main(void *arg)
{
    (void)arg;
    thread_tid = (pid_t)syscall(SYS_gettid);
    while (!thread_got)
        sched_yield();
    return NULL;
}

static void between_threads(void)
{
    signal(SIGUSR2, on_thread_sig);
    pthread_t t;
    pthread_create(&t, NULL, thread_main, NULL);
    while (!thread_tid)
        sched_yield();
    pthread_kill(t, SIGUSR2);
    pthread_join(t, NULL);
    printf("threads: the target thread ran the handler %d\n", thread_got);
}

/* A thread in a futex wait that another thread's signal interrupts: Linux makes an untimed
 * wait again after an SA_RESTART handler (the waiter sees only the FUTEX_WAKE that ends
 * it); a timed one, or one without SA_RESTART, fails with EINTR. */
#define FUTEX_WAIT_PRIVATE 128       /* <linux/futex.h>, which musl's headers lack */
#define FUTEX_WAKE_PRIVATE 129
static uint32_t futex_word;
static volatile pid_t futex_tid;
static volatile long futex_ret;
static volatile int futex_errno, futex_handled;
static void on_futex_sig(int sig) { (void)sig; futex_handled++; }

static void *futex_waiter(void *arg)
{
    struct timespec limit = { 10, 0 };
    futex_tid = (pid_t)syscall(SYS_gettid);
    futex_ret = syscall(SYS_futex, &futex_word, FUTEX_WAIT_PRIVATE, 0, arg ? &limit : NULL,
                        NULL, 0);
    futex_errno = errno;
    return NULL;
}

static void futex_restart(int restart, int timed)
{
    install_plain(SIGUSR2, on_futex_sig, restart ? SA_RESTART : 0);
    futex_word = 0;
    futex_handled = 0;
    pthread_t t = start_thread(futex_waiter, timed ? &futex_word : NULL, &futex_tid);
    /* Signals until one has been handled, then 20 ms for the waiter to be back in its wait
     * (or to have failed). Then the word changes and a wake ends any wait. */
    struct timespec ts = { 0, 10000000 };
    for (int i = 0; i < 200 && !futex_handled; i++) {
        nanosleep(&ts, NULL);
        syscall(SYS_tgkill, getpid(), futex_tid, SIGUSR2);
    }
    ts.tv_nsec = 20000000;
    nanosleep(&ts, NULL);
    __atomic_store_n(&futex_word, 1, __ATOMIC_SEQ_CST);
    syscall(SYS_futex, &futex_word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    pthread_join(t, NULL);
    printf("futex wait, SA_RESTART %d, timed %d: returned %ld%s, handler ran %d\n", restart,
           timed, futex_ret, futex_ret < 0 && futex_errno == EINTR ? " EINTR" : "",
           futex_handled > 0);
}

/* A thread's sleep and waits that another thread's signal ends: EINTR, and the time they
 * had left. */
static volatile int sleep_done;
static void *sleeper(void *arg)
{
    (void)arg;
    futex_tid = (pid_t)syscall(SYS_gettid);
    struct timespec ts = { 5, 0 }, rem = { 9, 0 };
    int r = clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &rem);
    printf("thread's clock_nanosleep: %d (EINTR %d), rem 4.x s %d\n", r, r == EINTR,
           rem.tv_sec == 4);
    /* select and ppoll report the time left too, on EINTR as well (Linux's own update). */
    struct timeval tv = { 5, 0 };
    r = (int)syscall(SYS_select, 0, NULL, NULL, NULL, &tv);     /* glibc may not update tv */
    printf("thread's select: %d EINTR %d, left 4.x s %d\n", r, errno == EINTR, tv.tv_sec == 4);
    struct timespec ppoll_ts = { 5, 0 };
    r = (int)syscall(SYS_ppoll, NULL, 0, &ppoll_ts, NULL, 8);
    printf("thread's ppoll: %d EINTR %d, left 4.x s %d\n", r, errno == EINTR,
           ppoll_ts.tv_sec == 4);
    sleep_done = 1;
    return NULL;
}

static void sleep_interrupted(void)
{
    install_plain(SIGUSR2, on_futex_sig, SA_RESTART);
    pthread_t t = start_thread(sleeper, NULL, &futex_tid);
    for (int i = 0; i < 200 && !sleep_done; i++) {
        struct timespec ts = { 0, 10000000 };
        nanosleep(&ts, NULL);
        if (!sleep_done)
            syscall(SYS_tgkill, getpid(), futex_tid, SIGUSR2);
    }
    pthread_join(t, NULL);
}

/* A timer's signal is for the process: Linux gives it to the first thread, which runs and
 * does not block it, and a thread that sleeps meanwhile sleeps on (it used to be woken with
 * EINTR while the first thread ran the handler). */
static volatile pid_t handler_tid;
static volatile pid_t napper_tid;
static void on_process_alarm(int sig) { (void)sig; handler_tid = (pid_t)syscall(SYS_gettid); }

static void *napper(void *arg)
{
    (void)arg;
    napper_tid = (pid_t)syscall(SYS_gettid);
    struct timespec ts = { 0, 300000000 };
    int r = nanosleep(&ts, NULL);
    printf("process signal: the sleeping thread's nanosleep returned %d\n", r);
    return NULL;
}

static void process_signal_choice(void)
{
    install_plain(SIGALRM, on_process_alarm, 0);
    handler_tid = 0;
    pthread_t t = start_thread(napper, NULL, &napper_tid);
    struct timespec settle = { 0, 20000000 };
    nanosleep(&settle, NULL);
    struct itimerval it = { .it_value = { 0, 20000 } };
    setitimer(ITIMER_REAL, &it, NULL);
    while (!handler_tid)
        __asm__ volatile("" ::: "memory");
    printf("process signal: handled by the first thread %d\n",
           handler_tid == (pid_t)syscall(SYS_gettid));
    pthread_join(t, NULL);
}

/* A timer for one thread (SIGEV_THREAD_ID) signals that thread, waiting in pause, while the
 * first thread waits in pthread_join (it used to go to the process: to the first thread). */
#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid      /* glibc before 2.41 does not name it */
#endif
static volatile pid_t timed_tid;
static void *timed_thread(void *arg)
{
    (void)arg;
    timed_tid = (pid_t)syscall(SYS_gettid);
    int r = pause();
    printf("thread timer: its thread's pause %d EINTR %d, handled there %d\n", r,
           errno == EINTR, handler_tid == timed_tid);
    return NULL;
}

static void thread_timer(void)
{
    install_plain(SIGUSR1, on_process_alarm, SA_RESTART);
    handler_tid = 0;
    pthread_t t = start_thread(timed_thread, NULL, &timed_tid);
    struct sigevent ev = { .sigev_notify = SIGEV_THREAD_ID, .sigev_signo = SIGUSR1 };
    ev.sigev_notify_thread_id = timed_tid;
    timer_t timer;
    int r = timer_create(CLOCK_MONOTONIC, &ev, &timer);
    struct itimerspec its = { .it_value = { 0, 30000000 } };
    timer_settime(timer, 0, &its, NULL);
    pthread_join(t, NULL);
    timer_delete(timer);
    ev.sigev_notify_thread_id = 999999;
    int stranger = timer_create(CLOCK_MONOTONIC, &ev, &timer);
    printf("thread timer: created %d; for a thread not ours: %d EINVAL %d\n", r, stranger,
           errno == EINVAL);
}

/* A signal sent to one thread that blocks it goes with that thread when it exits: the next
 * one of its number for the process is taken (it was dropped, as still pending). */
static volatile pid_t blocker_tid;
static volatile int blocker_may_exit;
static void *blocker(void *arg)
{
    (void)arg;
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &usr1, NULL);
    blocker_tid = (pid_t)syscall(SYS_gettid);
    while (!blocker_may_exit)
        sched_yield();
    return NULL;
}

static void pending_dies_with_thread(void)
{
    install(SIGUSR1, on_count, 0);
    count = 0;
    pthread_t t = start_thread(blocker, NULL, &blocker_tid);
    syscall(SYS_tgkill, getpid(), blocker_tid, SIGUSR1);
    blocker_may_exit = 1;
    pthread_join(t, NULL);
    int before = count;
    kill(getpid(), SIGUSR1);
    printf("pending for an exited thread: handled %d, then one for the process %d\n", before,
           count);
}

/* sigpending shows the calling thread's: those for the process and those sent to it, not
 * another thread's (it showed every thread's). */
static volatile int peer_step, peer_saw;
static volatile pid_t peer_tid;
static int usr2_pending(void)
{
    sigset_t set;
    sigpending(&set);
    return sigismember(&set, SIGUSR2);
}

static void *peer(void *arg)
{
    (void)arg;
    peer_tid = (pid_t)syscall(SYS_gettid);      /* it inherited the blocked SIGUSR2 */
    while (peer_step != 1)
        sched_yield();
    peer_saw = usr2_pending();
    peer_step = 2;
    return NULL;
}

static void pending_per_thread(void)
{
    install(SIGUSR2, on_count, 0);
    count = 0;
    sigset_t usr2;
    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &usr2, NULL);
    pthread_t t = start_thread(peer, NULL, &peer_tid);
    syscall(SYS_tgkill, getpid(), peer_tid, SIGUSR2);
    int main_saw_peers = usr2_pending();
    peer_step = 1;
    pthread_join(t, NULL);
    syscall(SYS_tgkill, getpid(), (pid_t)syscall(SYS_gettid), SIGUSR2);
    int main_saw_own = usr2_pending();
    pthread_sigmask(SIG_UNBLOCK, &usr2, NULL);
    printf("sigpending per thread: the first sees the other's %d, the other its own %d, the "
           "first its own %d, handled %d\n", main_saw_peers, peer_saw, main_saw_own, count);
}

/* JavaScriptCore's handshake: a helper thread, which blocks the signal itself, signals the
 * main thread while it waits in epoll_pwait or ppoll with a mask that lets the signal
 * through (its own mask blocks it); the handler posts a semaphore the helper waits on. */
static sem_t handshake;
static volatile pid_t waiter_tid;
static volatile int handled, helper_saw;
static void on_suspend(int sig, siginfo_t *si, void *uc)
{
    (void)sig, (void)si, (void)uc;
    handled++;
    sem_post(&handshake);
}

static void *suspender(void *arg)
{
    (void)arg;
    struct timespec pause = { 0, 50 * 1000 * 1000 };
    nanosleep(&pause, NULL);        /* the waiter is in its wait by then */
    syscall(SYS_tgkill, getpid(), waiter_tid, SIGUSR1);
    struct timespec limit;
    clock_gettime(CLOCK_REALTIME, &limit);
    limit.tv_sec += 5;
    helper_saw = sem_timedwait(&handshake, &limit) == 0;
    return NULL;
}

static void suspend_in_wait(const char *how)
{
    int pipefd[2];
    if (pipe(pipefd) < 0)
        return;
    int ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN };
    epoll_ctl(ep, EPOLL_CTL_ADD, pipefd[0], &ev);
    sigset_t usr1, during;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, NULL);     /* the helper inherits the block */
    sigprocmask(SIG_BLOCK, NULL, &during);
    sigdelset(&during, SIGUSR1);
    handled = helper_saw = 0;
    waiter_tid = (pid_t)syscall(SYS_gettid);
    pthread_t t;
    pthread_create(&t, NULL, suspender, NULL);
    int r, err;
    if (strcmp(how, "epoll_pwait") == 0) {
        struct epoll_event out;
        r = epoll_pwait(ep, &out, 1, 5000, &during);
    } else {
        struct pollfd pfd = { .fd = pipefd[0], .events = POLLIN };
        struct timespec limit = { 5, 0 };
        r = ppoll(&pfd, 1, &limit, &during);
    }
    err = errno;
    pthread_join(t, NULL);
    sigset_t after;
    sigprocmask(SIG_BLOCK, NULL, &after);
    printf("%s: returned %d (%s), handler %d, helper saw it %d, blocked again %d\n", how, r,
           r < 0 ? strerror(err) : "-", handled, helper_saw, sigismember(&after, SIGUSR1));
    sigprocmask(SIG_UNBLOCK, &usr1, NULL);
    close(ep);
    close(pipefd[0]);
    close(pipefd[1]);
}

static void suspend_across_threads(void)
{
    sem_init(&handshake, 0, 0);
    install(SIGUSR1, on_suspend, 0);
    suspend_in_wait("epoll_pwait");
    suspend_in_wait("ppoll");
    signal(SIGUSR1, SIG_DFL);
}

static void on_alarm(int sig) { got_sig = sig; count++; }
static int restart_pipe[2];
static void on_alarm_write(int sig) { (void)sig; (void)!write(restart_pipe[1], "r", 1); }

static void timers(void)
{
    struct sigaction sa = { .sa_handler = on_alarm };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    count = 0;
    alarm(1);
    int r = pause();
    printf("alarm: pause %d errno EINTR %d count %d\n", r, errno == EINTR, count);
    struct itimerval it = { .it_value = { 0, 50000 } };
    setitimer(ITIMER_REAL, &it, NULL);
    struct timespec ts = { 5, 0 }, rem = { 9, 0 };
    r = nanosleep(&ts, &rem);
    printf("setitimer: nanosleep %d errno EINTR %d count %d rem 4.x s %d\n", r, errno == EINTR,
           count, rem.tv_sec == 4);
    setitimer(ITIMER_REAL, &it, NULL);
    struct timeval tv = { 5, 0 };
    r = (int)syscall(SYS_select, 0, NULL, NULL, NULL, &tv);     /* glibc may not update tv */
    printf("setitimer: select %d EINTR %d, left 4.x s %d\n", r, errno == EINTR, tv.tv_sec == 4);
    /* The same, with the time left going to memory that cannot be written: EFAULT. */
    setitimer(ITIMER_REAL, &it, NULL);
    r = (int)syscall(SYS_nanosleep, &ts, (void *)8);
    printf("setitimer: nanosleep, rem unwritable: %d EFAULT %d\n", r, errno == EFAULT);
    /* A loop that makes no system call is interrupted too. */
    count = 0;
    sa.sa_flags = 0;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval spin = { .it_value = { 0, 20000 } };
    setitimer(ITIMER_REAL, &spin, NULL);
    while (!count)
        __asm__ volatile("" ::: "memory");
    printf("spin: interrupted, count %d\n", count);
    /* A read the timer interrupts: its handler writes what the read then gets, if
     * SA_RESTART makes it again; without, the read fails with EINTR. */
    if (pipe(restart_pipe) < 0)
        return;
    for (int restart = 0; restart <= 1; restart++) {
        struct sigaction wr = { .sa_handler = on_alarm_write, .sa_flags = restart ? SA_RESTART : 0 };
        sigemptyset(&wr.sa_mask);
        sigaction(SIGALRM, &wr, NULL);
        timer_t timer;
        struct sigevent ev = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGALRM };
        timer_create(CLOCK_MONOTONIC, &ev, &timer);
        struct itimerspec its = { .it_value = { 0, 30000000 } };
        timer_settime(timer, 0, &its, NULL);
        char c = 0;
        errno = 0;
        ssize_t n = read(restart_pipe[0], &c, 1);
        printf("timer_create: SA_RESTART %d: read %zd EINTR %d byte %c\n", restart, n,
               errno == EINTR, n == 1 ? c : '-');
        if (n < 0)
            (void)!read(restart_pipe[0], &c, 1);    /* the handler's byte */
        timer_delete(timer);
    }
}

static void pipes(void)
{
    int fds[2];
    if (pipe(fds) < 0)
        return;
    close(fds[0]);
    signal(SIGPIPE, SIG_IGN);
    ssize_t n = write(fds[1], "x", 1);
    printf("sigpipe ignored: write %zd EPIPE %d\n", n, errno == EPIPE);
    struct sigaction sa = { .sa_handler = on_alarm };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPIPE, &sa, NULL);
    got_sig = 0;
    n = write(fds[1], "x", 1);
    printf("sigpipe handled: write %zd sig %d\n", n, got_sig);
    fflush(stdout);
    signal(SIGPIPE, SIG_DFL);
    n = write(fds[1], "x", 1);
    printf("sigpipe default: not reached\n");
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    segv_jump();
    segv_fix();
    altstack_test();
    altstack_per_thread();
    arith_traps();
    flags_and_masks();
    between_threads();
    futex_restart(1, 0);
    futex_restart(1, 1);
    futex_restart(0, 0);
    sleep_interrupted();
    process_signal_choice();
    thread_timer();
    pending_dies_with_thread();
    pending_per_thread();
    suspend_across_threads();
    timers();
    pipes();
    return 0;
}
