/* What fdt_freeze records of each fd of the frozen master (fdclone.c makes forks from it;
 * snapshot.c writes it to a snapshot file and makes a master's objects again from it). */
#ifndef KVMS_FDFROZEN_H
#define KVMS_FDFROZEN_H
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum fork_how {
    FORK_SHARE,         /* the master's host object (dup) */
    FORK_PIPE,          /* a new pipe holding the frozen bytes */
    FORK_SOCKETPAIR,    /* a new socketpair holding the frozen queues */
    FORK_EVENTFD,       /* a new eventfd with the frozen counter */
    FORK_MEMFD,         /* a new memfd with a copy of the frozen contents */
    FORK_REOPEN,        /* a file on disk: its own open file description */
    FORK_EPOLL,         /* a new epoll instance with the recorded registrations */
    FORK_EPOLL_DUP,     /* a duplicate of an epoll fd: shares the fork's new instance */
};

struct lx_frozen_fd {
    enum fork_how how;
    int ofd_first;      /* lowest guest fd of this open file description: later ones dup it */
    int object_first;   /* lowest guest fd of this object (pipe or socketpair, either end) */
    int peer;           /* pipe, socketpair: lowest guest fd of the other end; -1: closed */
    int flags;          /* F_GETFL */
    dev_t dev;          /* identity: pipes and memfds by inode, socket ends by their own */
    ino_t ino;
    ino_t peer_ino;     /* socketpair: the other end's inode, 0 if unknown */
    int pipe_size;      /* pipe: capacity */
    int pipe_bytes;     /* pipe (the read end's record): bytes queued at the freeze */
    int sock_type;      /* socketpair: SOCK_STREAM, SOCK_DGRAM or SOCK_SEQPACKET */
    unsigned char *queue;   /* socketpair end: what it would read next, as messages */
    size_t *msg_len;
    size_t nmsgs;
    uint64_t count;     /* eventfd */
    bool semaphore;
    uint64_t eventfd_id;
    off_t offset;       /* files and memfds */
    off_t size;         /* memfd */
    const unsigned char *contents;  /* memfd: the master's, mapped read-only (size bytes) */
    mode_t mode;
    int seals;
    char name[NAME_MAX + 1];
};

#endif
