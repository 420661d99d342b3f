/* The program's listening sockets in server mode.
 *
 * Boot: the guest's bind() binds the public address on the host (nobody else can take it),
 * but its listen() does not make that socket listen. The guest accepts instead from a
 * private listener of the same family (loopback port 0, or an autobound abstract unix name)
 * that only the warm-up thread reaches; a connection from anyone else is closed unseen. At
 * the freeze the public socket starts listening and the private one is closed with whatever
 * was queued on it, so no client ever reaches the master and no warm-up connection ever
 * reaches a request VM.
 *
 * Request VMs: the public socket is shared by all of them. What a VM may change on it (its
 * status flags, shutdown, a new backlog, options) is kept in its own copy of the listener
 * record, reset with the VM, and never reaches the host socket. */
#ifndef KVMS_LISTENER_H
#define KVMS_LISTENER_H
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#define LX_MAX_LISTENERS 16
#define LX_LISTENER_OPTS 8      /* options one request VM may set on one listener */

struct lx_listener {
    uint64_t ino;           /* the host socket's inode: every guest fd of it shares it */
    int family, type, protocol;
    int private_fd;         /* boot: the private listener the guest accepts from; -1 after */
    int backlog;
    int status_flags;       /* the guest's F_GETFL (once published, the host's is O_NONBLOCK) */
    bool read_shut;         /* shutdown(SHUT_RD) or a disconnect: it does not listen */
    int shadow_fd;          /* request VM: a socket of its own holding the options it set */
    int nopts;
    int opts[LX_LISTENER_OPTS][2];  /* (level, name) set on shadow_fd */
};

struct lx_proc;
struct lx_fd;

/* The storage subcommand: the storage VM's listening unix sockets never listen on the host.
 * It accepts from their private listeners (abstract names), and only connections made by
 * this process get through, so the one way in is a request VM connecting to the path the
 * storage program bound, which goes to that private listener instead. */
struct lx_storage_route {
    struct sockaddr_storage path, name;     /* what the programs use; the private listener */
    socklen_t path_len, name_len;
    uint64_t ino;                           /* the storage program's listener (its record) */
    int fd;                                 /* --1-to-1: a pair's own private listener; -1 */
};
struct lx_storage_routes {
    int n;
    struct lx_storage_route route[LX_MAX_LISTENERS];
};
/* After the storage VM's freeze: its routes, for the request program's processes. Returns 0,
 * or -1 with a message in the VM's crash report (a listener that is not a unix socket). */
int lx_storage_routes_of(struct lx_proc *storage, struct lx_storage_routes *out);
/* connect(2) to a unix address: true when it is a storage route's path, with *ss and *len
 * changed to its private listener. */
bool lx_storage_route(const struct lx_proc *p, struct sockaddr_storage *ss, socklen_t *len);
/* --1-to-1: routes of the same paths to new private listeners, for one storage VM and the
 * one request VM it serves; lx_storage_take gives them to that storage VM's fork. */
int lx_storage_pair(const struct lx_proc *storage, const struct lx_storage_routes *shared,
                    struct lx_storage_routes *pair);
int lx_storage_take(struct lx_proc *fork, const struct lx_storage_routes *pair);

/* The record of a listening guest fd, or NULL when f is not one of the program's. */
struct lx_listener *lx_listener_of(struct lx_proc *p, const struct lx_fd *f);
/* bind(2) once the policy allowed the address: at boot, a socket inherited by socket
 * activation for that address (and kind) takes the place of the guest socket's host socket.
 * Returns 1 when it did (the guest's socket is bound, and listens on the host already), 0
 * when there is none (bind it), or -errno. */
long lx_listener_bind(struct lx_proc *p, const struct lx_fd *f, const struct sockaddr_storage *ss,
                      socklen_t len);
/* The freeze: inherited sockets no bind took are closed, each with a note on stderr. */
void lx_listeners_drop_activated(struct lx_proc *p);
/* listen(2) once the policy allowed the address: privately at boot; on a socket that listens
 * already, only this VM's record changes (backlog, listening again after a shutdown). */
long lx_listener_listen(struct lx_proc *p, struct lx_fd *f, int backlog);
/* shutdown(2) and connect(2) on a listener: what Linux does, to this VM's record alone. */
long lx_listener_shutdown(struct lx_proc *p, struct lx_listener *l, int how);
long lx_listener_connect(struct lx_proc *p, struct lx_listener *l,
                         const struct sockaddr_storage *ss, socklen_t len);
/* setsockopt(2) on a listener. At boot it configures the socket the program will serve
 * from; in a request VM the value goes to a socket of the VM's own, read back from there. */
long lx_listener_setsockopt(struct lx_proc *p, struct lx_listener *l, int host_fd, int level,
                            int name, const void *val, socklen_t len);
/* Where getsockopt(2) reads an option of this listener from. */
int lx_listener_option_fd(const struct lx_listener *l, int host_fd, int level, int name);

/* The guest's file status flags for f (F_GETFL), a listener's from its record. */
int lx_fd_status_flags(struct lx_proc *p, const struct lx_fd *f);
/* The host fd a wait or an accept on guest fd f uses: a listener's private one at boot, -1
 * for a listener this VM may not accept from now (its one connection is taken, or it shut
 * the listener down), else f's own host fd. */
int lx_wait_host_fd(struct lx_proc *p, const struct lx_fd *f);
/* A listener that must never look ready to this VM (lx_wait_host_fd is -1). */
bool lx_listener_spent(struct lx_proc *p, const struct lx_fd *f);
/* At boot: did this accepted connection come from the warm-up thread (and not from anyone
 * else who found the private address)? */
bool lx_accepted_from_warmup(struct lx_proc *p, int conn);

/* The freeze: the public sockets start listening (non-blocking on the host; the guest's
 * flags stay in the records) and the private listeners are closed. 0, or -1 with the
 * reason in the VM's crash_report. */
int lx_listeners_publish(struct lx_proc *p);
/* The graceful stop: shuts down the frozen program's listening sockets. Request VMs share
 * them, so from now on new connections are refused (TCP: reset; unix: ECONNREFUSED), queued
 * TCP ones too, and a VM waiting in accept wakes with an error. Failures are logged. */
void lx_listeners_stop(const struct lx_proc *frozen);
/* Blocks, without running a guest, until one of the frozen process's listeners (which its
 * forks share) has a connection waiting or was shut down (lx_listeners_stop): how -e holds
 * a fork still until its request is there. Returns at once if there is no listener. */
void lx_listeners_wait(const struct lx_proc *frozen);

#endif
