/* What snapshot_save.c writes and snapshot_load.c reads back: the fd records of SNAP_FDS
 * (see snapshot.h, docs/snapshot-format.md). */
#ifndef KVMS_LX_SNAPSHOT_INTERNAL_H
#define KVMS_LX_SNAPSHOT_INTERNAL_H
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <sys/socket.h>

#include "linux/process.h"

/* SNAP_PROC starts with the sizes of the parts of struct lx_proc stored as in memory. */
struct proc_sizes {
    uint32_t task, stats, sig, mm, server, thread;
};
#define PROC_SIZES                                                                          \
    ((struct proc_sizes){ sizeof(struct lx_task), sizeof(struct lx_stats),                  \
                          sizeof(struct lx_signals), sizeof(struct lx_mm),                  \
                          sizeof(struct lx_server_state), sizeof(struct lx_thread) })

#define MAX_BLOB (64u << 20)    /* a pipe, socket queue or memfd held in a snapshot */

/* How the loader makes an fd again (one record per guest fd in SNAP_FDS). */
enum snap_fd_kind {
    SK_STDIO = 1,   /* u32: which of kvmserver's own 0, 1, 2 it is */
    SK_PATH,        /* str guest path, u64 offset: reopened through the policy */
    SK_LISTENER,    /* u32 listener index, u32 address length, address, u32 nopts, opts */
    SK_PIPE,        /* u32 capacity, blob: the bytes queued */
    SK_SOCKETPAIR,  /* u32 socket type, two queues (this end's, the peer's): u32 n, blobs */
    SK_EVENTFD,     /* u64 counter, u32 semaphore */
    SK_MEMFD,       /* str name, u64 size, u32 mode, u32 seals, u64 offset, blob contents */
    SK_EPOLL,       /* u32 n, n x (i32 guest fd, u32 events, u64 data) */
    SK_PEER_END,    /* the other end of the pipe or socketpair at object_first */
    SK_DUP,         /* shares the open file description of ofd_first */
    SK_REOPEN,      /* u64 offset: another open of the memfd at object_first */
};

struct fd_head {
    uint32_t guest_fd, kind, cloexec, type, waits, ofd, peer_ofd;
    int32_t ofd_first, object_first, peer, flags;
};

/* Socket options carried to a re-created listener (set before bind, as a program does). */
static const int listener_opts[][2] __attribute__((unused)) = {
    { SOL_SOCKET, SO_REUSEADDR }, { SOL_SOCKET, SO_REUSEPORT }, { SOL_SOCKET, SO_KEEPALIVE },
    { IPPROTO_TCP, TCP_NODELAY }, { IPPROTO_IPV6, IPV6_V6ONLY },
};
#define N_LISTENER_OPTS (sizeof listener_opts / sizeof listener_opts[0])

#endif
