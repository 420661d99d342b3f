/* What the socket calls share (net.c, net_msg.c, net_sockopt.c): the guest's fd and
 * address arguments, the network policy check, and returned addresses. */
#ifndef KVMS_NET_INTERNAL_H
#define KVMS_NET_INTERNAL_H
#include <stdint.h>
#include <sys/socket.h>

#include "linux/netpolicy.h"
#include "linux/process.h"

static inline int int_arg(uint64_t reg) { return (int)(uint32_t)reg; }

/* The guest socket fd in reg, or NULL. */
struct lx_fd *sock_fd(struct lx_proc *p, uint64_t reg);
/* Copies a guest socket address in (Linux: 0 <= len <= sizeof(struct sockaddr_storage)). */
long read_sockaddr(struct lx_proc *p, uint64_t gva, uint64_t len_reg,
                   struct sockaddr_storage *ss, socklen_t *len);
/* 0, or -EACCES (logged once) when the policy refuses the address in that direction. */
long check_policy(struct lx_proc *p, enum np_direction dir, const struct sockaddr_storage *ss,
                  socklen_t len);
/* A destination for sendto/sendmsg: sending to an address is an outgoing connection. */
long check_destination(struct lx_proc *p, const struct sockaddr_storage *ss, socklen_t len);

/* Where a call returns an address: validated before the call, so that a bad pointer does
 * not lose a connection or a datagram. */
struct addr_out {
    uint64_t addr, lenp;
    size_t cap;
};
long prepare_addr_out(struct lx_proc *p, uint64_t addr, uint64_t lenp, struct addr_out *o);
/* Linux writes the address truncated to the caller's size, and its full size to *lenp. */
long finish_addr_out(struct lx_proc *p, const struct addr_out *o,
                     const struct sockaddr_storage *ss, socklen_t len);

/* The guest's SO_RCVTIMEO/SO_SNDTIMEO in ns, or -1 for none. */
int64_t sock_timeout_ns(int host_fd, int opt);

#endif
