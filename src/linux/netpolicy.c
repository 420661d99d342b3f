/* The network access policy (see netpolicy.h). */
#include "linux/netpolicy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "base/log.h"
#include "linux/counters.h"

static const uint8_t v4_mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

int np_addr_parse(struct np_addr *out, const void *sa, size_t len)
{
    memset(out, 0, sizeof *out);
    sa_family_t family;
    if (len < sizeof family)
        return -EINVAL;
    memcpy(&family, sa, sizeof family);
    switch (family) {
    case AF_UNSPEC:
    case AF_INET: {
        struct sockaddr_in in;
        if (len < sizeof in)
            return -EINVAL;
        memcpy(&in, sa, sizeof in);
        out->family = AF_INET;
        memcpy(out->ip, &in.sin_addr, 4);
        out->port = ntohs(in.sin_port);
        return 0;
    }
    case AF_INET6: {
        struct sockaddr_in6 in6;
        if (len < offsetof(struct sockaddr_in6, sin6_scope_id))   /* RFC 2133 size: 24 */
            return -EINVAL;
        memset(&in6, 0, sizeof in6);
        memcpy(&in6, sa, len < sizeof in6 ? len : sizeof in6);
        out->port = ntohs(in6.sin6_port);
        if (memcmp(in6.sin6_addr.s6_addr, v4_mapped_prefix, 12) == 0) {
            out->family = AF_INET;
            memcpy(out->ip, in6.sin6_addr.s6_addr + 12, 4);
        } else {
            out->family = AF_INET6;
            memcpy(out->ip, in6.sin6_addr.s6_addr, 16);
        }
        return 0;
    }
    case AF_UNIX: {
        const char *name = (const char *)sa + offsetof(struct sockaddr_un, sun_path);
        size_t n = len - offsetof(struct sockaddr_un, sun_path);
        if (n > NP_PATH_MAX)
            n = NP_PATH_MAX;
        out->family = AF_UNIX;
        if (n > 0 && name[0] == 0) {
            out->abstract = true;       /* every byte counts, NULs included */
            out->path_len = n - 1;
            memcpy(out->path, name + 1, n - 1);
        } else {
            out->path_len = strnlen(name, n);   /* a path ends at its first NUL */
            memcpy(out->path, name, out->path_len);
        }
        return 0;
    }
    default:
        return -EAFNOSUPPORT;
    }
}

static void append(char *buf, size_t cap, size_t *at, const char *s)
{
    size_t n = strlen(s);
    if (*at + 1 >= cap)
        return;
    if (n > cap - 1 - *at)
        n = cap - 1 - *at;
    memcpy(buf + *at, s, n);
    *at += n;
    buf[*at] = 0;
}

void np_addr_format(const struct np_addr *a, char *buf, size_t cap)
{
    size_t at = 0;
    buf[0] = 0;
    char tmp[INET6_ADDRSTRLEN + 16];
    if (a->family == AF_INET || a->family == AF_INET6) {
        char ip[INET6_ADDRSTRLEN];
        inet_ntop(a->family, a->ip, ip, sizeof ip);
        snprintf(tmp, sizeof tmp, a->family == AF_INET6 ? "[%s]:%u" : "%s:%u", ip, a->port);
        append(buf, cap, &at, tmp);
        return;
    }
    if (a->path_len == 0 && !a->abstract) {
        append(buf, cap, &at, "(unnamed unix socket)");
        return;
    }
    if (a->abstract)
        append(buf, cap, &at, "@");
    log_escape(buf + at, cap - at, a->path, a->path_len);
}

/* ---- rules ---- */

static bool parse_port(const char *s, size_t n, int *port)
{
    if (n == 1 && s[0] == '*') {
        *port = -1;
        return true;
    }
    if (n == 0 || n > 5)
        return false;
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    if (v > 65535)
        return false;
    *port = v;
    return true;
}

static bool host_matches(const char *host, size_t n, const struct np_addr *a)
{
    if (n == 0 || (n == 1 && host[0] == '*'))
        return true;
    char buf[INET6_ADDRSTRLEN + 1];
    if (n >= sizeof buf)
        return false;
    memcpy(buf, host, n);
    buf[n] = 0;
    static const uint8_t loop6[16] = { [15] = 1 };
    static const uint8_t loop4[4] = { 127, 0, 0, 1 };
    if (strcmp(buf, "localhost") == 0)
        return a->family == AF_INET ? memcmp(a->ip, loop4, 4) == 0
                                    : memcmp(a->ip, loop6, 16) == 0;
    uint8_t ip[16];
    if (inet_pton(AF_INET, buf, ip) == 1)
        return a->family == AF_INET && memcmp(a->ip, ip, 4) == 0;
    if (inet_pton(AF_INET6, buf, ip) == 1) {
        if (memcmp(ip, v4_mapped_prefix, 12) == 0)
            return a->family == AF_INET && memcmp(a->ip, ip + 12, 4) == 0;
        return a->family == AF_INET6 && memcmp(a->ip, ip, 16) == 0;
    }
    return false;           /* a host name: never resolved, never matches */
}

static bool unix_rule_matches(const char *rule, const struct np_addr *a)
{
    if (a->family != AF_UNIX || (a->path_len == 0 && !a->abstract))
        return false;
    size_t n = strlen(rule);
    if (rule[0] == '@') {
        return a->abstract && n - 1 == a->path_len && memcmp(rule + 1, a->path, n - 1) == 0;
    }
    if (a->abstract)
        return false;
    if (n == a->path_len && memcmp(rule, a->path, n) == 0)
        return true;
    /* "/run/app/" covers what is below it, not a path that merely starts the same way. */
    return rule[n - 1] == '/' && a->path_len > n && memcmp(rule, a->path, n) == 0;
}

bool np_rule_matches(const char *rule, const struct np_addr *a)
{
    if (!rule || !rule[0])
        return false;
    if (strncmp(rule, "unix:", 5) == 0)
        return rule[5] && unix_rule_matches(rule + 5, a);
    if (rule[0] == '/' || rule[0] == '@')
        return unix_rule_matches(rule, a);
    if (a->family != AF_INET && a->family != AF_INET6)
        return false;

    size_t len = strlen(rule);
    const char *host = rule, *port_s = NULL;
    size_t host_len = len, port_len = 0;
    const char *last_colon = strrchr(rule, ':');
    if (rule[0] == '[') {                       /* [v6] or [v6]:PORT */
        const char *close = strchr(rule, ']');
        if (!close)
            return false;
        host = rule + 1;
        host_len = (size_t)(close - host);
        if (close[1] == ':') {
            port_s = close + 2;
            port_len = strlen(port_s);
        } else if (close[1]) {
            return false;
        }
    } else if (last_colon == rule) {            /* :PORT */
        host_len = 0;
        port_s = rule + 1;
        port_len = len - 1;
    } else if (!last_colon) {                   /* PORT or HOST */
        int unused;
        if (parse_port(rule, len, &unused) && rule[0] != '*') {
            host_len = 0;
            port_s = rule;
            port_len = len;
        }
    } else if (strchr(rule, ':') == last_colon) {   /* HOST:PORT */
        host_len = (size_t)(last_colon - rule);
        port_s = last_colon + 1;
        port_len = strlen(port_s);
    }                                           /* else: a bare IPv6 address */

    if (port_s) {
        int port;
        if (!parse_port(port_s, port_len, &port))
            return false;
        if (port >= 0 && port != a->port)
            return false;
    }
    return host_matches(host, host_len, a);
}

static bool list_allows(const struct str_list *l, const struct np_addr *a)
{
    if (l->count == 0)
        return true;            /* the flag without a list: any address */
    for (size_t i = 0; i < l->count; i++)
        if (np_rule_matches(l->items[i], a))
            return true;
    return false;
}

bool np_allowed(const struct np_rules *rules, enum np_direction dir, const struct np_addr *a)
{
    if (rules->allow_all)
        return true;
    if (rules->net_set && list_allows(&rules->net, a))
        return true;
    if (dir == NP_LISTEN)
        return rules->listen_set && list_allows(&rules->listen, a);
    return rules->connect_set && list_allows(&rules->connect, a);
}

int np_check(const struct np_rules *rules, enum np_direction dir, const struct np_addr *a)
{
    if (np_allowed(rules, dir, a))
        return 0;
    lx_count_denied(dir == NP_LISTEN ? LX_DENIED_LISTEN : LX_DENIED_CONNECT);
    char addr[4 * NP_PATH_MAX + 8];
    np_addr_format(a, addr, sizeof addr);
    char key[sizeof addr + 2];
    snprintf(key, sizeof key, "%c %s", dir == NP_LISTEN ? 'L' : 'C', addr);
    /* Each distinct denial once; 256 are remembered, later ones are not logged. */
    static struct log_once logged = LOG_ONCE_INIT(256);
    enum log_once_result once = log_once(&logged, key, strlen(key));
    if (once == LOG_ONCE_FULL)
        log_warn("more denied network addresses; not logging them");
    if (once == LOG_ONCE_FIRST) {
        const char *flag = dir == NP_LISTEN ? "listen" : "connect";
        /* The suggestion must be a valid rule: bracket-free paths need no quoting, but an
         * unnamed unix socket has no name to allow, only "any address". */
        const char *allow = a->family == AF_UNIX && a->path_len == 0 && !a->abstract ? "" : addr;
        char fields[sizeof addr + 32];
        snprintf(fields, sizeof fields, "kind=%s addr=\"%s\"", flag, addr);
        log_event(LOG_LEVEL_WARN, "denied", fields, "denied %s %s %s (allow with --allow-%s%s%s)",
                  flag, dir == NP_LISTEN ? "on" : "to", addr, flag, *allow ? "=" : "", allow);
    }
    return -EACCES;
}
