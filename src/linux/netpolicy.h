/* Which addresses the guest may listen on and connect to (--allow-all, --allow-net,
 * --allow-listen, --allow-connect). Rules are "HOST:PORT", "HOST", ":PORT" or "PORT"; HOST is
 * a numeric IPv4/IPv6 address (IPv6 in brackets when a port follows), "localhost" or "*".
 * Unix sockets are named by their path ("/run/app.sock"; a rule ending in '/' covers the
 * directory below it) or "@name" for the abstract namespace. A flag given with no list allows
 * any address. Host names other than localhost are never resolved (no DNS look-up here).
 * File-system permission for unix socket paths is a separate, later check. */
#ifndef KVMS_NETPOLICY_H
#define KVMS_NETPOLICY_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/str_list.h"

enum np_direction { NP_LISTEN, NP_CONNECT };

#define NP_PATH_MAX 108     /* sizeof sun_path */

struct np_addr {
    int family;                 /* AF_INET, AF_INET6 (v4-mapped ones become AF_INET), AF_UNIX */
    uint8_t ip[16];             /* AF_INET: first 4 bytes */
    uint16_t port;              /* host byte order */
    bool abstract;              /* AF_UNIX: abstract namespace name */
    size_t path_len;            /* AF_UNIX: bytes in path; 0 = unnamed (autobind) */
    char path[NP_PATH_MAX];     /* AF_UNIX: path or abstract name (not NUL-terminated) */
};

/* Reads a socket address of `len` bytes. AF_UNSPEC counts as AF_INET (as bind and UDP sendto
 * take it). Returns 0, -EINVAL for a short address, -EAFNOSUPPORT for other families. */
int np_addr_parse(struct np_addr *out, const void *sa, size_t len);

/* "127.0.0.1:8000", "[::1]:8000", "/path", "@name" (bytes outside printable ASCII as \xNN),
 * "(unnamed unix socket)". Always NUL-terminates (cap > 0). */
void np_addr_format(const struct np_addr *a, char *buf, size_t cap);

bool np_rule_matches(const char *rule, const struct np_addr *a);
/* The command line's allow lists. A list given as a bare flag (set, no items) allows any
 * address. */
struct np_rules {
    bool allow_all;
    bool net_set, listen_set, connect_set;
    struct str_list net, listen, connect;
};

bool np_allowed(const struct np_rules *rules, enum np_direction dir, const struct np_addr *a);

/* 0 when allowed; otherwise -EACCES, logged once per direction and address with the option
 * that would allow it. */
int np_check(const struct np_rules *rules, enum np_direction dir, const struct np_addr *a);

#endif
