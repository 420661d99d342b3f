/* Process and system identity: only facts that hold both natively and in the guest. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "verdict.h"

int main(int argc, char **argv)
{
    struct utsname u;
    verdict("uname", uname(&u) == 0);
    printf("sysname=%s machine=%s\n", u.sysname, u.machine);
    int major = 0, minor = 0;
    verdict("release is at least 4.x", sscanf(u.release, "%d.%d", &major, &minor) == 2 && major >= 4);
    verdict("nodename non-empty", u.nodename[0] != '\0');

    pid_t pid = getpid();
    verdict("getpid > 0", pid > 0);
    verdict("gettid == getpid (one thread)", syscall(SYS_gettid) == pid);
    verdict("getppid >= 0", getppid() >= 0);
    verdict("uid/gid calls answer", getuid() != (uid_t)-1 && geteuid() != (uid_t)-1
                                        && getgid() != (gid_t)-1 && getegid() != (gid_t)-1);
    verdict("sysconf(_SC_PAGESIZE) == 4096", sysconf(_SC_PAGESIZE) == 4096);
    verdict("sysconf(_SC_NPROCESSORS_ONLN) >= 1", sysconf(_SC_NPROCESSORS_ONLN) >= 1);
    struct rlimit stack;
    verdict("getrlimit(RLIMIT_STACK)", getrlimit(RLIMIT_STACK, &stack) == 0 && stack.rlim_cur >= 65536);

    /* The harness passes the expected working directory as argv[1]. */
    char cwd[PATH_MAX];
    if (argc > 1)
        verdict("getcwd matches the harness", getcwd(cwd, sizeof cwd) && strcmp(cwd, argv[1]) == 0);
    errno = 0;
    verdict("getcwd small buffer -> ERANGE", getcwd(cwd, 1) == NULL && errno == ERANGE);
    return failures ? 1 : 0;
}
