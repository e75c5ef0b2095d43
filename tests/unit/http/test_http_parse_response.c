/* hr_http_parse_response: a server's 101 at every split point with the frames behind it
 * left to the caller, error responses, each class of malformed status line, and the size
 * and count limits. */
#include <stdio.h>
#include <string.h>

#include "test_util.h"

#include "herald/error.h"
#include "http/http_parse.h"

#define MAX_HEADERS 16

static const char resp_101[] = "HTTP/1.1 101 Switching Protocols\r\n"
                               "Upgrade: websocket\r\n"
                               "Connection: Upgrade\r\n"
                               "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                               "Sec-WebSocket-Protocol: chat\r\n"
                               "\r\n";

typedef struct parsed {
    hr_http_response_t res;
    hr_http_header_t headers[MAX_HEADERS];
    ssize_t rc;
} parsed_t;

static ssize_t parse_n(parsed_t *p, const char *s, size_t len, size_t max_bytes, size_t cap)
{
    memset(p, 0, sizeof(*p));
    p->res.headers = p->headers;
    p->res.num_headers = cap;
    p->rc = hr_http_parse_response(s, len, max_bytes, &p->res);
    return p->rc;
}

static ssize_t parse(parsed_t *p, const char *s)
{
    return parse_n(p, s, strlen(s), 8192, MAX_HEADERS);
}

static void assert_rc(const char *s, ssize_t want)
{
    parsed_t p;
    ssize_t rc = parse(&p, s);
    if (rc != want)
        fail_msg("expected %zd for \"%s\", got %zd", want, s, rc);
}

static void test_http_parse_response_101_fields(void **state)
{
    (void)state;
    parsed_t p;
    assert_int_equal(parse(&p, resp_101), (ssize_t)strlen(resp_101));
    assert_int_equal(p.res.version_major, 1);
    assert_int_equal(p.res.version_minor, 1);
    assert_int_equal(p.res.status, 101);
    assert_int_equal(p.res.reason_len, strlen("Switching Protocols"));
    assert_memory_equal(p.res.reason, "Switching Protocols", p.res.reason_len);
    assert_int_equal(p.res.status_line_len, strlen("HTTP/1.1 101 Switching Protocols"));
    assert_int_equal(p.res.num_headers, 4);
    const hr_http_header_t *h = hr_http_find_response_header(&p.res, "sec-websocket-accept");
    assert_non_null(h);
    assert_int_equal(h->value_len, 28);
    assert_memory_equal(h->value, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", 28);
    assert_null(hr_http_find_response_header(&p.res, "Sec-WebSocket-Extensions"));
}

static void test_http_parse_response_every_prefix_is_eagain_and_frames_are_left(void **state)
{
    (void)state;
    char buf[512];
    size_t hlen = strlen(resp_101);
    memcpy(buf, resp_101, hlen);
    memcpy(buf + hlen, "\x81\x02hi", 4); /* a text frame right behind the head */
    parsed_t p;
    for (size_t n = 0; n < hlen; n++)
        if (parse_n(&p, buf, n, 8192, MAX_HEADERS) != HR_EAGAIN)
            fail_msg("prefix of %zu bytes: %zd", n, p.rc);
    assert_int_equal(parse_n(&p, buf, hlen + 4, 8192, MAX_HEADERS), (ssize_t)hlen);
}

static void test_http_parse_response_error_status_and_empty_reason(void **state)
{
    (void)state;
    parsed_t p;
    const char *r404 = "HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nno\n";
    assert_int_equal(parse(&p, r404), (ssize_t)(strlen(r404) - 3));
    assert_int_equal(p.res.status, 404);
    assert_int_equal(p.res.status_line_len, strlen("HTTP/1.1 404 Not Found"));

    assert_int_equal(parse(&p, "HTTP/1.1 200 \r\n\r\n"), 17);
    assert_int_equal(p.res.reason_len, 0);
    /* The SP before an empty reason is required by RFC 9112 §4, but servers omit it. */
    assert_int_equal(parse(&p, "HTTP/1.0 503\r\n\r\n"), 16);
    assert_int_equal(p.res.status, 503);
    assert_int_equal(p.res.version_minor, 0);
    assert_int_equal(p.res.reason_len, 0);
    /* Bare LF line ends. */
    assert_int_equal(parse(&p, "HTTP/1.1 101 OK\nUpgrade: websocket\n\n"), 36);
    assert_int_equal(p.res.num_headers, 1);
}

static void test_http_parse_response_malformed_status_line_is_eproto(void **state)
{
    (void)state;
    assert_rc("HTTP/1.1  101 x\r\n\r\n", HR_EPROTO);
    assert_rc("http/1.1 101 x\r\n\r\n", HR_EPROTO);
    assert_rc("HTTP/1.1 1O1 x\r\n\r\n", HR_EPROTO);
    assert_rc("HTTP/1.1 10 x\r\n\r\n", HR_EPROTO);
    assert_rc("HTTP/1.1 1011 x\r\n\r\n", HR_EPROTO);
    assert_rc("HTTP/1.1 099 x\r\n\r\n", HR_EPROTO);
    assert_rc("HTTP/2.0 101 x\r\n\r\n", HR_EPROTO);
    assert_rc("HTTP/1.1 101 a\x01z\r\n\r\n", HR_EPROTO);
    assert_rc("HTTP/1.1 101 x\rz\r\n\r\n", HR_EPROTO);
    /* Garbage is refused as soon as it cannot start a status line. */
    assert_rc("\x16\x03\x01", HR_EPROTO);
    assert_rc("SSH-2.0", HR_EPROTO);
    assert_rc("HTTP/1.", HR_EAGAIN);
}

static void test_http_parse_response_malformed_fields_are_eproto(void **state)
{
    (void)state;
    assert_rc("HTTP/1.1 101 x\r\nUpgrade : websocket\r\n\r\n", HR_EPROTO);
    assert_rc("HTTP/1.1 101 x\r\n folded\r\n\r\n", HR_EPROTO);
    assert_rc("HTTP/1.1 101 x\r\nNoColon\r\n\r\n", HR_EPROTO);
    assert_rc("HTTP/1.1 101 x\r\nA: b\x7f\r\n\r\n", HR_EPROTO);
}

static void test_http_parse_response_limits_are_emsgsize(void **state)
{
    (void)state;
    parsed_t p;
    size_t len = strlen(resp_101);
    assert_int_equal(parse_n(&p, resp_101, len, len, MAX_HEADERS), (ssize_t)len);
    assert_int_equal(parse_n(&p, resp_101, len, len - 1, MAX_HEADERS), HR_EMSGSIZE);
    /* Incomplete and already past the limit. */
    assert_int_equal(parse_n(&p, resp_101, 40, 20, MAX_HEADERS), HR_EMSGSIZE);
    assert_int_equal(parse_n(&p, resp_101, 8, 4, MAX_HEADERS), HR_EMSGSIZE);
    assert_int_equal(parse_n(&p, resp_101, len, 8192, 3), HR_EMSGSIZE);
    assert_int_equal(parse_n(&p, resp_101, len, 8192, 4), (ssize_t)len);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_parse_response_101_fields),
        cmocka_unit_test(test_http_parse_response_every_prefix_is_eagain_and_frames_are_left),
        cmocka_unit_test(test_http_parse_response_error_status_and_empty_reason),
        cmocka_unit_test(test_http_parse_response_malformed_status_line_is_eproto),
        cmocka_unit_test(test_http_parse_response_malformed_fields_are_eproto),
        cmocka_unit_test(test_http_parse_response_limits_are_emsgsize),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
