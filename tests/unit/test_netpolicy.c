/* Unit tests for the network policy (linux/netpolicy.c): address parsing and formatting, the
 * rule matcher, and how --allow-all/--allow-net/--allow-listen/--allow-connect combine. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "linux/netpolicy.h"

static struct np_addr inet4(const char *ip, uint16_t port)
{
    struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(port) };
    assert_int_equal(inet_pton(AF_INET, ip, &in.sin_addr), 1);
    struct np_addr a;
    assert_int_equal(np_addr_parse(&a, &in, sizeof in), 0);
    return a;
}

static struct np_addr inet6(const char *ip, uint16_t port)
{
    struct sockaddr_in6 in6 = { .sin6_family = AF_INET6, .sin6_port = htons(port) };
    assert_int_equal(inet_pton(AF_INET6, ip, &in6.sin6_addr), 1);
    struct np_addr a;
    assert_int_equal(np_addr_parse(&a, &in6, sizeof in6), 0);
    return a;
}

static struct np_addr unix_addr(const char *name, size_t len)
{
    struct sockaddr_un un = { .sun_family = AF_UNIX };
    memcpy(un.sun_path, name, len);
    struct np_addr a;
    assert_int_equal(np_addr_parse(&a, &un, offsetof(struct sockaddr_un, sun_path) + len), 0);
    return a;
}

static void test_parse_rejects(void **state)
{
    (void)state;
    struct np_addr a;
    struct sockaddr_in in = { .sin_family = AF_INET };
    assert_int_equal(np_addr_parse(&a, &in, 1), -EINVAL);
    assert_int_equal(np_addr_parse(&a, &in, sizeof in - 1), -EINVAL);
    struct sockaddr_in6 in6 = { .sin6_family = AF_INET6 };
    assert_int_equal(np_addr_parse(&a, &in6, 23), -EINVAL);
    assert_int_equal(np_addr_parse(&a, &in6, 24), 0);     /* RFC 2133 size is enough */
    struct sockaddr_storage ss = { .ss_family = AF_NETLINK };
    assert_int_equal(np_addr_parse(&a, &ss, sizeof ss), -EAFNOSUPPORT);
    ss.ss_family = AF_UNSPEC;       /* bind and UDP sendto treat it as IPv4 */
    assert_int_equal(np_addr_parse(&a, &ss, sizeof(struct sockaddr_in)), 0);
    assert_int_equal(a.family, AF_INET);
}

static void test_format(void **state)
{
    (void)state;
    char buf[128];
    struct np_addr a = inet4("127.0.0.1", 8000);
    np_addr_format(&a, buf, sizeof buf);
    assert_string_equal(buf, "127.0.0.1:8000");
    a = inet6("::1", 443);
    np_addr_format(&a, buf, sizeof buf);
    assert_string_equal(buf, "[::1]:443");
    a = inet6("::ffff:10.0.0.1", 80);           /* v4-mapped: shown (and matched) as IPv4 */
    np_addr_format(&a, buf, sizeof buf);
    assert_string_equal(buf, "10.0.0.1:80");
    a = unix_addr("/run/app.sock", 14);
    np_addr_format(&a, buf, sizeof buf);
    assert_string_equal(buf, "/run/app.sock");
    a = unix_addr("\0ab\n", 4);
    np_addr_format(&a, buf, sizeof buf);
    assert_string_equal(buf, "@ab\\x0a");
    a = unix_addr("/tmp/\"q\\", 8);               /* no quote or backslash shown raw */
    np_addr_format(&a, buf, sizeof buf);
    assert_string_equal(buf, "/tmp/\\x22q\\x5c");
    a = unix_addr("", 0);
    np_addr_format(&a, buf, sizeof buf);
    assert_string_equal(buf, "(unnamed unix socket)");
    a = inet4("127.0.0.1", 8000);
    np_addr_format(&a, buf, 5);                 /* truncated, still terminated */
    assert_string_equal(buf, "127.");
}

static void test_inet_rules(void **state)
{
    (void)state;
    struct np_addr a = inet4("127.0.0.1", 8000);
    assert_true(np_rule_matches("127.0.0.1:8000", &a));
    assert_true(np_rule_matches("127.0.0.1", &a));
    assert_true(np_rule_matches(":8000", &a));
    assert_true(np_rule_matches("8000", &a));
    assert_true(np_rule_matches("localhost:8000", &a));
    assert_true(np_rule_matches("*:8000", &a));
    assert_true(np_rule_matches("127.0.0.1:*", &a));
    assert_true(np_rule_matches("*", &a));
    assert_true(np_rule_matches("[::ffff:127.0.0.1]:8000", &a));
    assert_false(np_rule_matches("127.0.0.1:8001", &a));
    assert_false(np_rule_matches("8001", &a));
    assert_false(np_rule_matches("127.0.0.2", &a));
    assert_false(np_rule_matches("0.0.0.0:8000", &a));  /* "all addresses" is another address */
    assert_false(np_rule_matches("example.com:8000", &a));   /* names are not resolved */
    assert_false(np_rule_matches("[::1]:8000", &a));
    assert_false(np_rule_matches("/tmp/sock", &a));

    struct np_addr any = inet4("0.0.0.0", 8000);
    assert_true(np_rule_matches("0.0.0.0:8000", &any));
    assert_false(np_rule_matches("127.0.0.1:8000", &any));
}

static void test_inet6_rules(void **state)
{
    (void)state;
    struct np_addr a = inet6("::1", 443);
    assert_true(np_rule_matches("[::1]:443", &a));
    assert_true(np_rule_matches("[::1]", &a));
    assert_true(np_rule_matches("::1", &a));
    assert_true(np_rule_matches("[0:0::1]:443", &a));   /* compared as addresses, not text */
    assert_true(np_rule_matches("localhost:443", &a));
    assert_true(np_rule_matches("443", &a));
    assert_false(np_rule_matches("[::1]:444", &a));
    assert_false(np_rule_matches("127.0.0.1:443", &a));
    assert_false(np_rule_matches("[::1", &a));
    assert_false(np_rule_matches("[::1]x", &a));
}

static void test_malformed_rules(void **state)
{
    (void)state;
    struct np_addr a = inet4("127.0.0.1", 80);
    assert_false(np_rule_matches("", &a));
    assert_false(np_rule_matches(NULL, &a));
    assert_false(np_rule_matches(":", &a));
    assert_false(np_rule_matches("127.0.0.1:", &a));
    assert_false(np_rule_matches("127.0.0.1:65536", &a));
    assert_false(np_rule_matches("127.0.0.1:8o", &a));
    assert_false(np_rule_matches(":123456", &a));
    assert_false(np_rule_matches("999999", &a));
}

static void test_unix_rules(void **state)
{
    (void)state;
    struct np_addr a = unix_addr("/run/app/api.sock", 17);
    assert_true(np_rule_matches("/run/app/api.sock", &a));
    assert_true(np_rule_matches("unix:/run/app/api.sock", &a));
    assert_true(np_rule_matches("/run/app/", &a));
    assert_false(np_rule_matches("/run/app", &a));      /* a prefix must be a directory */
    assert_false(np_rule_matches("/run/ap/", &a));
    assert_false(np_rule_matches("/run/app/api.sock2", &a));
    assert_false(np_rule_matches("@/run/app/api.sock", &a));
    assert_false(np_rule_matches("8000", &a));
    assert_false(np_rule_matches("*", &a));

    struct np_addr abs = unix_addr("\0name", 5);
    assert_true(np_rule_matches("@name", &abs));
    assert_false(np_rule_matches("@nam", &abs));
    assert_false(np_rule_matches("name", &abs));
    assert_false(np_rule_matches("/name", &abs));

    /* The path ends at its first NUL, whatever length the caller gave. */
    struct np_addr nul = unix_addr("/tmp/s\0junk", 11);
    assert_true(np_rule_matches("/tmp/s", &nul));
}

static char *items_a[] = { "127.0.0.1:8000" };
static char *items_b[] = { "10.0.0.1:443", "/run/db.sock" };

static void test_flags_combine(void **state)
{
    (void)state;
    struct np_rules r;
    memset(&r, 0, sizeof r);
    struct np_addr listen_addr = inet4("127.0.0.1", 8000);
    struct np_addr remote = inet4("10.0.0.1", 443);

    assert_false(np_allowed(&r, NP_LISTEN, &listen_addr));   /* nothing given: nothing */
    assert_false(np_allowed(&r, NP_CONNECT, &remote));

    r.listen_set = true;                    /* bare --allow-listen: any address */
    assert_true(np_allowed(&r, NP_LISTEN, &listen_addr));
    assert_false(np_allowed(&r, NP_CONNECT, &remote));

    r.listen = (struct str_list){ .items = items_a, .count = 1 };
    assert_true(np_allowed(&r, NP_LISTEN, &listen_addr));
    struct np_addr other = inet4("127.0.0.1", 9000);
    assert_false(np_allowed(&r, NP_LISTEN, &other));

    r.connect_set = true;
    r.connect = (struct str_list){ .items = items_b, .count = 2 };
    assert_true(np_allowed(&r, NP_CONNECT, &remote));
    assert_false(np_allowed(&r, NP_LISTEN, &remote));   /* connect rules do not listen */
    struct np_addr db = unix_addr("/run/db.sock", 12);
    assert_true(np_allowed(&r, NP_CONNECT, &db));
    assert_false(np_allowed(&r, NP_LISTEN, &db));

    /* --allow-net covers both directions. */
    memset(&r, 0, sizeof r);
    r.net_set = true;
    r.net = (struct str_list){ .items = items_a, .count = 1 };
    assert_true(np_allowed(&r, NP_LISTEN, &listen_addr));
    assert_true(np_allowed(&r, NP_CONNECT, &listen_addr));
    assert_false(np_allowed(&r, NP_CONNECT, &remote));

    memset(&r, 0, sizeof r);
    r.allow_all = true;
    assert_true(np_allowed(&r, NP_LISTEN, &other));
    assert_true(np_allowed(&r, NP_CONNECT, &db));
}

static void test_check_returns_eacces(void **state)
{
    (void)state;
    struct np_rules r;
    memset(&r, 0, sizeof r);
    struct np_addr a = inet4("192.0.2.7", 1234);
    assert_int_equal(np_check(&r, NP_CONNECT, &a), -EACCES);
    assert_int_equal(np_check(&r, NP_CONNECT, &a), -EACCES);   /* logged once only */
    r.connect_set = true;
    assert_int_equal(np_check(&r, NP_CONNECT, &a), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_inet_rules),
        cmocka_unit_test(test_inet6_rules),
        cmocka_unit_test(test_malformed_rules),
        cmocka_unit_test(test_unix_rules),
        cmocka_unit_test(test_flags_combine),
        cmocka_unit_test(test_check_returns_eacces),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
