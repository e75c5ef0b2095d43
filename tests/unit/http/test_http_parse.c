/* hr_http_parse_request and its header helpers: a browser handshake at every split
 * point, each class of malformed head, and the size and count limits. */
#include <stdio.h>
#include <string.h>

#include "test_util.h"

#include "herald/error.h"
#include "http/http_parse.h"

#define MAX_HEADERS 16

static const char browser_req[] = "GET /chat?room=1 HTTP/1.1\r\n"
                                  "Host: example.com:8080\r\n"
                                  "Connection: keep-alive, Upgrade\r\n"
                                  "Pragma: no-cache\r\n"
                                  "User-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\n"
                                  "Upgrade: websocket\r\n"
                                  "Origin: http://example.com:8080\r\n"
                                  "Sec-WebSocket-Version: 13\r\n"
                                  "Accept-Encoding: gzip, deflate, br\r\n"
                                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                  "Sec-WebSocket-Extensions: permessage-deflate; "
                                  "client_max_window_bits\r\n"
                                  "\r\n";

typedef struct parsed {
    hr_http_request_t req;
    hr_http_header_t headers[MAX_HEADERS];
    int status;
    ssize_t rc;
} parsed_t;

static ssize_t parse_n(parsed_t *p, const char *s, size_t len, size_t max_bytes, size_t cap)
{
    memset(p, 0, sizeof(*p));
    p->req.headers = p->headers;
    p->req.num_headers = cap;
    p->rc = hr_http_parse_request(s, len, max_bytes, &p->req, &p->status);
    return p->rc;
}

static ssize_t parse(parsed_t *p, const char *s)
{
    return parse_n(p, s, strlen(s), 8192, MAX_HEADERS);
}

static void assert_status(const char *s, int status)
{
    parsed_t p;
    ssize_t rc = parse(&p, s);
    if (rc >= 0 || p.status != status)
        fail_msg("expected %d for \"%s\", got rc %zd status %d", status, s, rc, p.status);
}

static void assert_header(const parsed_t *p, size_t i, const char *name, const char *value)
{
    assert_true(i < p->req.num_headers);
    const hr_http_header_t *h = &p->req.headers[i];
    assert_int_equal(h->name_len, strlen(name));
    assert_memory_equal(h->name, name, h->name_len);
    assert_int_equal(h->value_len, strlen(value));
    if (h->value_len)
        assert_memory_equal(h->value, value, h->value_len);
}

static void test_http_parse_browser_upgrade_request(void **state)
{
    parsed_t p;
    assert_int_equal(parse(&p, browser_req), (ssize_t)strlen(browser_req));
    assert_int_equal(p.req.method_len, 3);
    assert_memory_equal(p.req.method, "GET", 3);
    assert_int_equal(p.req.target_len, strlen("/chat?room=1"));
    assert_memory_equal(p.req.target, "/chat?room=1", p.req.target_len);
    assert_int_equal(p.req.version_major, 1);
    assert_int_equal(p.req.version_minor, 1);
    assert_int_equal(p.req.num_headers, 10);
    assert_header(&p, 0, "Host", "example.com:8080");
    assert_header(&p, 3, "User-Agent", "Mozilla/5.0 (X11; Linux x86_64)");
    assert_header(&p, 9, "Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits");
}

static void test_http_parse_every_prefix_is_eagain_and_pipelined_bytes_are_left(void **state)
{
    size_t len = strlen(browser_req);
    char buf[1024];
    memcpy(buf, browser_req, len);
    memcpy(buf + len, "\x81\x85garbage", 9);
    parsed_t p;
    for (size_t i = 0; i < len; i++) {
        if (parse_n(&p, buf, i, 8192, MAX_HEADERS) != HR_EAGAIN)
            fail_msg("prefix of %zu bytes: rc %zd status %d", i, p.rc, p.status);
    }
    assert_int_equal(parse_n(&p, buf, len, 8192, MAX_HEADERS), (ssize_t)len);
    for (size_t extra = 1; extra <= 9; extra++)
        assert_int_equal(parse_n(&p, buf, len + extra, 8192, MAX_HEADERS), (ssize_t)len);
    assert_int_equal(p.req.num_headers, 10);
}

static void test_http_parse_bare_lf_line_ends(void **state)
{
    static const char s[] = "GET / HTTP/1.1\nHost: a\nUpgrade: websocket\r\n\n";
    parsed_t p;
    assert_int_equal(parse(&p, s), (ssize_t)strlen(s));
    assert_int_equal(p.req.num_headers, 2);
    assert_header(&p, 0, "Host", "a");
    assert_header(&p, 1, "Upgrade", "websocket");
    assert_int_equal(parse(&p, "GET / HTTP/1.1\n\nrest"), 16);
    assert_int_equal(p.req.num_headers, 0);
}

static void test_http_parse_no_headers(void **state)
{
    parsed_t p;
    assert_int_equal(parse(&p, "GET / HTTP/1.0\r\n\r\n"), 18);
    assert_int_equal(p.req.version_minor, 0);
    assert_int_equal(p.req.num_headers, 0);
}

static void test_http_parse_values_are_trimmed_and_may_be_empty(void **state)
{
    parsed_t p;
    assert_true(parse(&p, "GET / HTTP/1.1\r\nA: \t x y \t\r\nB:\r\nC:   \r\n\r\n") > 0);
    assert_int_equal(p.req.num_headers, 3);
    assert_header(&p, 0, "A", "x y");
    assert_header(&p, 1, "B", "");
    assert_header(&p, 2, "C", "");
}

static void test_http_parse_obs_text_in_value_is_accepted(void **state)
{
    parsed_t p;
    assert_true(parse(&p, "GET / HTTP/1.1\r\nX-Name: caf\xc3\xa9\r\n\r\n") > 0);
    assert_header(&p, 0, "X-Name", "caf\xc3\xa9");
}

static void test_http_parse_target_forms(void **state)
{
    parsed_t p;
    assert_true(parse(&p, "OPTIONS * HTTP/1.1\r\n\r\n") > 0);
    assert_true(parse(&p, "GET http://example.com/x HTTP/1.1\r\n\r\n") > 0);
    assert_true(parse(&p, "GET HTTPS://example.com HTTP/1.1\r\n\r\n") > 0);
    assert_status("GET chat HTTP/1.1\r\n\r\n", 400);
    assert_status("CONNECT example.com:443 HTTP/1.1\r\n\r\n", 400);
    assert_status("GET ** HTTP/1.1\r\n\r\n", 400);
    assert_status("GET http:// HTTP/1.1\r\n\r\n", 400);
    assert_status("GET ftp://x/ HTTP/1.1\r\n\r\n", 400);
}

static void test_http_parse_malformed_request_line_is_400(void **state)
{
    assert_status(" GET / HTTP/1.1\r\n\r\n", 400);
    assert_status("\r\nGET / HTTP/1.1\r\n\r\n", 400);
    assert_status("GET  / HTTP/1.1\r\n\r\n", 400);
    assert_status("GET /  HTTP/1.1\r\n\r\n", 400);
    assert_status("GET / HTTP/1.1 \r\n\r\n", 400);
    assert_status("GET /\tHTTP/1.1\r\n\r\n", 400);
    assert_status("G(T / HTTP/1.1\r\n\r\n", 400);
    assert_status("GET / http/1.1\r\n\r\n", 400);
    assert_status("GET / HTTP/1\r\n\r\n", 400);
    assert_status("GET / HTTP/1.10\r\n\r\n", 400);
    assert_status("GET / HTTP/a.1\r\n\r\n", 400);
    assert_status("GET /\r\n\r\n", 400);
    assert_status("GET / HTTP/1.1\rX\r\n\r\n", 400);
    assert_status("GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n", 400);
    assert_status("GET /a\x7f HTTP/1.1\r\n\r\n", 400);
}

static void test_http_parse_garbage_is_400_before_head_ends(void **state)
{
    parsed_t p;
    /* A TLS ClientHello on the plain port. */
    assert_int_equal(parse_n(&p, "\x16\x03\x01\x02\x00", 5, 8192, MAX_HEADERS), HR_EPROTO);
    assert_int_equal(p.status, 400);
    assert_int_equal(parse_n(&p, "GET /x HTTQ", 11, 8192, MAX_HEADERS), HR_EPROTO);
    assert_int_equal(p.status, 400);
    assert_int_equal(parse_n(&p, "GET /x HTTP/2.0\r\n", 17, 8192, MAX_HEADERS), HR_EPROTO);
    assert_int_equal(p.status, 505);
}

static void test_http_parse_other_major_version_is_505(void **state)
{
    assert_status("GET / HTTP/2.0\r\n\r\n", 505);
    assert_status("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505);
    assert_status("GET / HTTP/0.9\r\n\r\n", 505);
    assert_status("GET / HTTP/3.0\r\nHost: a\r\n\r\n", 505);
}

static void test_http_parse_higher_minor_version_is_accepted(void **state)
{
    parsed_t p;
    assert_true(parse(&p, "GET / HTTP/1.2\r\n\r\n") > 0);
    assert_int_equal(p.req.version_minor, 2);
}

static void test_http_parse_space_before_colon_is_400(void **state)
{
    assert_status("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400);
    assert_status("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", 400);
}

static void test_http_parse_obs_fold_and_leading_whitespace_are_400(void **state)
{
    assert_status("GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400);
    assert_status("GET / HTTP/1.1\r\n\tHost: a\r\n\r\n", 400);
    assert_status("GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", 400);
    assert_status("GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n", 400);
}

static void test_http_parse_bad_field_names_are_400(void **state)
{
    assert_status("GET / HTTP/1.1\r\n: a\r\n\r\n", 400);
    assert_status("GET / HTTP/1.1\r\nHost a\r\n\r\n", 400);
    assert_status("GET / HTTP/1.1\r\nHo(st: a\r\n\r\n", 400);
    assert_status("GET / HTTP/1.1\r\nHo\x01st: a\r\n\r\n", 400);
    assert_status("GET / HTTP/1.1\r\nH\xc3\xa9: a\r\n\r\n", 400);
    assert_status("GET / HTTP/1.1\r\n\rHost: a\r\n\r\n", 400);
}

static void test_http_parse_control_characters_in_values_are_400(void **state)
{
    static const char ctl[] = {0x00, 0x01, 0x0b, 0x0c, '\r', 0x1b, 0x1f, 0x7f};
    for (size_t i = 0; i < sizeof(ctl); i++) {
        char s[64];
        int n = snprintf(s, sizeof(s), "GET / HTTP/1.1\r\nX: a?b\r\n\r\n");
        char *q = memchr(s, '?', (size_t)n);
        *q = ctl[i];
        parsed_t p;
        if (parse_n(&p, s, (size_t)n, 8192, MAX_HEADERS) != HR_EPROTO || p.status != 400)
            fail_msg("ctl 0x%02x: rc %zd status %d", ctl[i], p.rc, p.status);
    }
    parsed_t p;
    assert_true(parse(&p, "GET / HTTP/1.1\r\nX: a\tb\r\n\r\n") > 0);
    assert_header(&p, 0, "X", "a\tb");
}

static void test_http_parse_nul_in_request_line_is_400(void **state)
{
    parsed_t p;
    assert_int_equal(parse_n(&p, "GET /\0 HTTP/1.1\r\n\r\n", 20, 8192, MAX_HEADERS), HR_EPROTO);
    assert_int_equal(p.status, 400);
}

static void test_http_parse_head_larger_than_max_is_431(void **state)
{
    parsed_t p;
    size_t len = strlen(browser_req);
    assert_int_equal(parse_n(&p, browser_req, len, len, MAX_HEADERS), (ssize_t)len);
    assert_int_equal(parse_n(&p, browser_req, len, len - 1, MAX_HEADERS), HR_EPROTO);
    assert_int_equal(p.status, 431);
}

static void test_http_parse_incomplete_head_past_max_is_431(void **state)
{
    char buf[300];
    memset(buf, 'a', sizeof(buf));
    memcpy(buf, "GET /", 5);
    parsed_t p;
    assert_int_equal(parse_n(&p, buf, 256, 256, MAX_HEADERS), HR_EAGAIN);
    assert_int_equal(parse_n(&p, buf, 257, 256, MAX_HEADERS), HR_EPROTO);
    assert_int_equal(p.status, 431);

    /* Request line done, fields still arriving. */
    int n = snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nX: ");
    memset(buf + n, 'b', sizeof(buf) - (size_t)n);
    assert_int_equal(parse_n(&p, buf, 100, 100, MAX_HEADERS), HR_EAGAIN);
    assert_int_equal(parse_n(&p, buf, 101, 100, MAX_HEADERS), HR_EPROTO);
    assert_int_equal(p.status, 431);
}

static void test_http_parse_too_many_headers_is_431(void **state)
{
    static const char s[] = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    parsed_t p;
    assert_int_equal(parse_n(&p, s, strlen(s), 8192, 3), (ssize_t)strlen(s));
    assert_int_equal(parse_n(&p, s, strlen(s), 8192, 2), HR_EPROTO);
    assert_int_equal(p.status, 431);
    assert_int_equal(parse_n(&p, s, strlen(s), 8192, 0), HR_EPROTO);
    assert_int_equal(p.status, 431);
}

static void test_http_parse_find_and_count_header_ignore_case(void **state)
{
    parsed_t p;
    assert_true(parse(&p, "GET / HTTP/1.1\r\nhost: a\r\nX: 1\r\nHOST: b\r\n\r\n") > 0);
    const hr_http_header_t *h = hr_http_find_header(&p.req, "Host");
    assert_non_null(h);
    assert_memory_equal(h->value, "a", 1);
    assert_int_equal(hr_http_count_header(&p.req, "Host"), 2);
    assert_int_equal(hr_http_count_header(&p.req, "Hos"), 0);
    assert_null(hr_http_find_header(&p.req, "Origin"));
}

static void test_http_parse_list_has_token(void **state)
{
    static const char v[] = "keep-alive,  Upgrade ,\tfoo";
    assert_true(hr_http_list_has_token(v, strlen(v), "upgrade"));
    assert_true(hr_http_list_has_token(v, strlen(v), "KEEP-ALIVE"));
    assert_true(hr_http_list_has_token(v, strlen(v), "foo"));
    assert_false(hr_http_list_has_token(v, strlen(v), "upgrad"));
    assert_false(hr_http_list_has_token(v, strlen(v), "keep"));
    assert_false(hr_http_list_has_token(",,", 2, ""));
    assert_false(hr_http_list_has_token("upgrade-x", 9, "upgrade"));
    assert_true(hr_http_list_has_token(",upgrade,", 9, "upgrade"));
    assert_false(hr_http_list_has_token("", 0, "upgrade"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_parse_browser_upgrade_request),
        cmocka_unit_test(test_http_parse_every_prefix_is_eagain_and_pipelined_bytes_are_left),
        cmocka_unit_test(test_http_parse_bare_lf_line_ends),
        cmocka_unit_test(test_http_parse_no_headers),
        cmocka_unit_test(test_http_parse_values_are_trimmed_and_may_be_empty),
        cmocka_unit_test(test_http_parse_obs_text_in_value_is_accepted),
        cmocka_unit_test(test_http_parse_target_forms),
        cmocka_unit_test(test_http_parse_malformed_request_line_is_400),
        cmocka_unit_test(test_http_parse_garbage_is_400_before_head_ends),
        cmocka_unit_test(test_http_parse_other_major_version_is_505),
        cmocka_unit_test(test_http_parse_higher_minor_version_is_accepted),
        cmocka_unit_test(test_http_parse_space_before_colon_is_400),
        cmocka_unit_test(test_http_parse_obs_fold_and_leading_whitespace_are_400),
        cmocka_unit_test(test_http_parse_bad_field_names_are_400),
        cmocka_unit_test(test_http_parse_control_characters_in_values_are_400),
        cmocka_unit_test(test_http_parse_nul_in_request_line_is_400),
        cmocka_unit_test(test_http_parse_head_larger_than_max_is_431),
        cmocka_unit_test(test_http_parse_incomplete_head_past_max_is_431),
        cmocka_unit_test(test_http_parse_too_many_headers_is_431),
        cmocka_unit_test(test_http_parse_find_and_count_header_ignore_case),
        cmocka_unit_test(test_http_parse_list_has_token),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
