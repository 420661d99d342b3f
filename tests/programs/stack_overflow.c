/* A runaway recursion past the stack limit: without a handler the program dies of SIGSEGV
 * at once; with `altstack`, a SIGSEGV handler on the alternate stack catches it and the
 * program goes on. Prints the stack limit it runs under. */
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

static sigjmp_buf back;
static char altstack[64 * 1024];
static volatile unsigned long depth;

static void on_segv(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    printf("caught signal %d (code %d) after more than 1000 frames: %d\n", sig,
           si->si_code, depth > 1000);
    siglongjmp(back, 1);
}

static volatile int forever = 1;    /* the compiler cannot see that it never ends */

static unsigned long recurse(unsigned long n)
{
    volatile char frame[512];
    frame[0] = (char)n;
    depth = n;
    return forever ? recurse(n + 1) + frame[0] : 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    struct rlimit rl;
    getrlimit(RLIMIT_STACK, &rl);
    printf("stack limit %llu MiB\n", (unsigned long long)rl.rlim_cur >> 20);
    if (argc > 1 && strcmp(argv[1], "altstack") == 0) {
        stack_t ss = { .ss_sp = altstack, .ss_size = sizeof altstack };
        sigaltstack(&ss, NULL);
        struct sigaction sa = { .sa_sigaction = on_segv, .sa_flags = SA_SIGINFO | SA_ONSTACK };
        sigemptyset(&sa.sa_mask);
        sigaction(SIGSEGV, &sa, NULL);
        if (sigsetjmp(back, 1) == 0)
            recurse(0);
        puts("recovered");
        return 0;
    }
    return (int)recurse(0);
}
