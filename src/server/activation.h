/* systemd socket activation: listening sockets kvmserver inherits (LISTEN_FDS, LISTEN_PID),
 * which the program gets when it binds their addresses (linux/listener.h). */
#ifndef KVMS_ACTIVATION_H
#define KVMS_ACTIVATION_H
#include <stddef.h>

/* Takes the inherited sockets meant for this process: fills fds (at most max) and returns
 * how many, 0 without socket activation, or -1 with a message in err (a count past max, or
 * an fd that is not a listening socket). Removes the variables from the environment, so
 * the program never sees them. */
int activation_take(int *fds, int max, char *err, size_t errlen);

#endif
