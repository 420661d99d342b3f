/* systemd socket activation (see activation.h and sd_listen_fds(3)). */
#include "server/activation.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define FIRST_ACTIVATED_FD 3   /* SD_LISTEN_FDS_START */

static bool parse_count(const char *text, long *out)
{
    char *end;
    errno = 0;
    long v = text ? strtol(text, &end, 10) : -1;
    if (!text || errno || end == text || *end || v < 0)
        return false;
    *out = v;
    return true;
}

int activation_take(int *fds, int max, char *err, size_t errlen)
{
    const char *pid_text = getenv("LISTEN_PID"), *count_text = getenv("LISTEN_FDS");
    long pid, count;
    bool ours = parse_count(pid_text, &pid) && pid == getpid() &&
                parse_count(count_text, &count);
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    if (!ours || count == 0)
        return 0;       /* not set, or meant for another process (as sd_listen_fds) */
    if (count > max) {
        snprintf(err, errlen, "socket activation passed %ld sockets; at most %d can be served",
                 count, max);
        return -1;
    }
    for (int i = 0; i < count; i++) {
        int fd = FIRST_ACTIVATED_FD + i, listening = 0;
        socklen_t len = sizeof listening;
        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0 || !listening) {
            snprintf(err, errlen, "socket activation: fd %d is not a listening socket (%s)", fd,
                     errno == ENOTSOCK || errno == EBADF ? strerror(errno) : "it does not listen");
            return -1;
        }
        if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
            snprintf(err, errlen, "socket activation: fd %d: %s", fd, strerror(errno));
            return -1;
        }
        fds[i] = fd;
    }
    return (int)count;
}
