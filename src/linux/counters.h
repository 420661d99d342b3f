/* Events the Linux personality counts for the server's metrics: policy denials, unsupported
 * system calls and accepted connections. The server layer owns the counters and hands them
 * down once, before the program boots (one program per kvmserver process); until then, and in
 * unit tests, nothing is counted. Each event costs one relaxed atomic add. */
#ifndef KVMS_LINUX_COUNTERS_H
#define KVMS_LINUX_COUNTERS_H
#include <stdatomic.h>

enum lx_denial { LX_DENIED_READ, LX_DENIED_WRITE, LX_DENIED_CONNECT, LX_DENIED_LISTEN,
                 LX_DENIAL_KINDS };

struct lx_counters {
    atomic_uint_fast64_t denied[LX_DENIAL_KINDS];
    atomic_uint_fast64_t unsupported_syscalls;   /* calls answered -ENOSYS */
    atomic_uint_fast64_t accepted;               /* connections accepted from a listener */
};

/* Counts into c from now on (NULL: stop counting). */
void lx_counters_attach(struct lx_counters *c);
void lx_count_denied(enum lx_denial kind);
void lx_count_unsupported_syscall(void);
void lx_count_accepted(void);

#endif
