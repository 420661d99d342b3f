/* Where an HTTP/1.x response ends (server/http_end.c), as the warm-up's client that closes
 * first finds it: by Content-Length, by the last chunk (and trailer) of a chunked body, at
 * the head for 204 and 304, after interim 1xx responses, and at the close when nothing says
 * (or the head cannot be parsed). Each response is also fed one byte at a time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "server/http_end.h"

/* The bytes of `text` it takes to complete the response fed in pieces of `step` bytes;
 * 0 when it never completes. */
static size_t bytes_to_end(const char *text, size_t step)
{
    struct http_end *e = malloc(sizeof *e);
    assert_non_null(e);
    http_end_init(e);
    size_t len = strlen(text), at = 0, end = 0;
    while (at < len && !end) {
        size_t n = len - at < step ? len - at : step;
        if (http_end_feed(e, text + at, n))
            end = at + n;
        at += n;
    }
    free(e);
    return end;
}

/* It ends exactly where `text` does, in one piece and byte by byte. */
static void assert_ends_at_its_end(const char *text)
{
    assert_int_equal(bytes_to_end(text, strlen(text)), strlen(text));
    assert_int_equal(bytes_to_end(text, 1), strlen(text));
}

static void test_content_length(void **state)
{
    (void)state;
    assert_ends_at_its_end("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                           "Content-Length: 5\r\n\r\nhello");
    assert_ends_at_its_end("HTTP/1.0 200 OK\r\ncontent-length:  3 \r\n\r\nabc");
    assert_ends_at_its_end("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    /* Fed with bytes past its end: they are not its own. */
    assert_int_equal(bytes_to_end("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1", 1),
                     strlen("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
    assert_int_equal(bytes_to_end("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort", 64), 0);
}

static void test_chunked(void **state)
{
    (void)state;
    assert_ends_at_its_end("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                           "5\r\nhello\r\n1a;name=value\r\nabcdefghijklmnopqrstuvwxyz\r\n"
                           "0\r\n\r\n");
    /* A trailer after the last chunk; and chunked wins over a Content-Length. */
    assert_ends_at_its_end("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n"
                           "Transfer-Encoding: gzip, chunked\r\n\r\n"
                           "A\r\n0123456789\r\n0\r\nX-Checksum: 1\r\n\r\n");
    /* Data that looks like the last chunk is data. */
    assert_ends_at_its_end("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                           "7\r\n0\r\n\r\n\r\n\r\n0\r\n\r\n");
    assert_int_equal(bytes_to_end("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                  "5\r\nhello\r\n", 1), 0);
}

static void test_no_body_and_interim(void **state)
{
    (void)state;
    assert_ends_at_its_end("HTTP/1.1 204 No Content\r\nServer: x\r\n\r\n");
    assert_ends_at_its_end("HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n");
    assert_ends_at_its_end("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"
                           "Content-Length: 2\r\n\r\nok");
}

static void test_at_the_close(void **state)
{
    (void)state;
    /* No length: the server's close ends it. Nor can a head it cannot parse. */
    assert_int_equal(bytes_to_end("HTTP/1.1 200 OK\r\nServer: x\r\n\r\nbody...", 1), 0);
    assert_int_equal(bytes_to_end("HTTP/1.1 200 OK\r\nContent-Length: 12x\r\n\r\nbody", 1), 0);
    assert_int_equal(bytes_to_end("SSH-2.0-OpenSSH\r\n\r\n", 1), 0);
    assert_int_equal(bytes_to_end("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                  "zz\r\n", 1), 0);
    /* A head longer than it keeps. */
    size_t big = HTTP_END_HEAD_MAX + 64;
    char *head = malloc(big + 64);
    assert_non_null(head);
    strcpy(head, "HTTP/1.1 200 OK\r\nX-Long: ");
    memset(head + strlen(head), 'a', big);
    strcpy(head + big, "\r\nContent-Length: 0\r\n\r\n");
    assert_int_equal(bytes_to_end(head, 100), 0);
    free(head);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_content_length),
        cmocka_unit_test(test_chunked),
        cmocka_unit_test(test_no_body_and_interim),
        cmocka_unit_test(test_at_the_close),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
