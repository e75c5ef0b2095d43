/* RFC 6455 handshake validation, accept key, origin policy, subprotocol choice and the
 * exact bytes of the 101 and error responses. */
#include <stdio.h>
#include <string.h>

#include "test_util.h"

#include "base/buf.h"
#include "herald/error.h"
#include "http/http_upgrade.h"

#define MAX_HEADERS 16

typedef struct parsed {
    hr_http_request_t req;
    hr_http_header_t headers[MAX_HEADERS];
} parsed_t;

static void parse(parsed_t *p, const char *s)
{
    int status = 0;
    memset(p, 0, sizeof(*p));
    p->req.headers = p->headers;
    p->req.num_headers = MAX_HEADERS;
    ssize_t rc = hr_http_parse_request(s, strlen(s), 8192, &p->req, &status);
    if (rc != (ssize_t)strlen(s))
        fail_msg("setup: parse of \"%s\" gave %zd status %d", s, rc, status);
}

#define GOOD_HOST "Host: example.com\r\n"
#define GOOD_UPGRADE "Upgrade: websocket\r\n"
#define GOOD_CONN "Connection: Upgrade\r\n"
#define GOOD_VER "Sec-WebSocket-Version: 13\r\n"
#define GOOD_KEY "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"

static void assert_refused(const char *s, int status, const char *reason)
{
    parsed_t p;
    hr_http_upgrade_t up;
    parse(&p, s);
    if (hr_http_upgrade_check(&p.req, &up) != -1 || up.status != status)
        fail_msg("expected %d for:\n%s\ngot status %d", status, s, up.status);
    assert_non_null(up.reason);
    if (reason)
        assert_string_equal(up.reason, reason);
}

static void test_http_upgrade_browser_request_is_accepted(void **state)
{
    parsed_t p;
    hr_http_upgrade_t up;
    parse(&p, "GET /chat HTTP/1.1\r\n"
              "Host: example.com\r\n"
              "Connection: keep-alive, Upgrade\r\n"
              "Upgrade: websocket\r\n"
              "Origin: http://example.com\r\n"
              "Sec-WebSocket-Version: 13\r\n"
              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
              "\r\n");
    assert_int_equal(hr_http_upgrade_check(&p.req, &up), 0);
    assert_int_equal(up.key_len, 24);
    assert_memory_equal(up.key, "dGhlIHNhbXBsZSBub25jZQ==", 24);
    assert_int_equal(up.host_len, 11);
    assert_memory_equal(up.host, "example.com", 11);
    assert_int_equal(up.origin_len, 18);
    assert_memory_equal(up.origin, "http://example.com", 18);
}

static void test_http_upgrade_tokens_are_case_insensitive_and_may_repeat(void **state)
{
    parsed_t p;
    hr_http_upgrade_t up;
    parse(&p, "GET / HTTP/1.1\r\n" GOOD_HOST "upgrade: WebSocket\r\n"
              "connection: keep-alive\r\nCONNECTION: UPGRADE\r\n" GOOD_VER GOOD_KEY "\r\n");
    assert_int_equal(hr_http_upgrade_check(&p.req, &up), 0);
    assert_null(up.origin);
    assert_int_equal(up.origin_len, 0);
}

static void test_http_upgrade_non_get_is_405(void **state)
{
    assert_refused("POST / HTTP/1.1\r\n" GOOD_HOST GOOD_UPGRADE GOOD_CONN GOOD_VER GOOD_KEY "\r\n",
                   405, NULL);
    assert_refused("get / HTTP/1.1\r\n" GOOD_HOST GOOD_UPGRADE GOOD_CONN GOOD_VER GOOD_KEY "\r\n",
                   405, NULL);
}

static void test_http_upgrade_http_1_0_is_400(void **state)
{
    assert_refused("GET / HTTP/1.0\r\n" GOOD_HOST GOOD_UPGRADE GOOD_CONN GOOD_VER GOOD_KEY "\r\n",
                   400, NULL);
}

static void test_http_upgrade_missing_or_duplicate_host_is_400(void **state)
{
    assert_refused("GET / HTTP/1.1\r\n" GOOD_UPGRADE GOOD_CONN GOOD_VER GOOD_KEY "\r\n", 400,
                   "missing or duplicate Host header");
    assert_refused("GET / HTTP/1.1\r\n" GOOD_HOST GOOD_HOST GOOD_UPGRADE GOOD_CONN GOOD_VER GOOD_KEY
                   "\r\n",
                   400, "missing or duplicate Host header");
}

static void test_http_upgrade_without_websocket_token_is_426(void **state)
{
    assert_refused("GET / HTTP/1.1\r\n" GOOD_HOST GOOD_CONN GOOD_VER GOOD_KEY "\r\n", 426, NULL);
    assert_refused("GET / HTTP/1.1\r\n" GOOD_HOST "Upgrade: h2c\r\n" GOOD_CONN GOOD_VER GOOD_KEY
                   "\r\n",
                   426, NULL);
}

static void test_http_upgrade_without_connection_upgrade_is_400(void **state)
{
    assert_refused("GET / HTTP/1.1\r\n" GOOD_HOST GOOD_UPGRADE GOOD_VER GOOD_KEY "\r\n", 400,
                   "missing Connection: Upgrade");
    assert_refused("GET / HTTP/1.1\r\n" GOOD_HOST GOOD_UPGRADE
                   "Connection: keep-alive\r\n" GOOD_VER GOOD_KEY "\r\n",
                   400, "missing Connection: Upgrade");
}

static void test_http_upgrade_version_other_than_13_is_426(void **state)
{
    const char *reason = "unsupported Sec-WebSocket-Version (only 13)";
    assert_refused("GET / HTTP/1.1\r\n" GOOD_HOST GOOD_UPGRADE GOOD_CONN GOOD_KEY "\r\n", 426,
                   reason);
    assert_refused("GET / HTTP/1.1\r\n" GOOD_HOST GOOD_UPGRADE GOOD_CONN
                   "Sec-WebSocket-Version: 8\r\n" GOOD_KEY "\r\n",
                   426, reason);
    assert_refused("GET / HTTP/1.1\r\n" GOOD_HOST GOOD_UPGRADE GOOD_CONN
                   "Sec-WebSocket-Version: 13, 8\r\n" GOOD_KEY "\r\n",
                   426, reason);
    assert_refused("GET / HTTP/1.1\r\n" GOOD_HOST GOOD_UPGRADE GOOD_CONN GOOD_VER GOOD_VER GOOD_KEY
                   "\r\n",
                   426, reason);
}

static void test_http_upgrade_bad_key_is_400(void **state)
{
    static const char *const keys[] = {
        "",
        "dGhlIHNhbXBsZSBub25jZQ=",   /* 23 chars */
        "dGhlIHNhbXBsZSBub25jZQ===", /* 25 chars */
        "dGhlIHNhbXBsZSBub25jZQAA",  /* 18 bytes, no padding */
        "dGhlIHNhbXBsZSBub25j*Q==",  /* outside the alphabet */
        "dGhlIHNhbXBsZSBub25jZ-==",  /* base64url is not base64 */
        "dGhlIHNhbXBsZSBub25=ZQ==",  /* padding in the middle */
        "dGhlIHNhbXBsZSBub25jZQ",    /* padding left off */
    };
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        char s[512];
        snprintf(s, sizeof(s),
                 "GET / HTTP/1.1\r\n" GOOD_HOST GOOD_UPGRADE GOOD_CONN GOOD_VER
                 "Sec-WebSocket-Key: %s\r\n\r\n",
                 keys[i]);
        assert_refused(s, 400, "missing or invalid Sec-WebSocket-Key");
    }
    assert_refused("GET / HTTP/1.1\r\n" GOOD_HOST GOOD_UPGRADE GOOD_CONN GOOD_VER "\r\n", 400,
                   "missing or invalid Sec-WebSocket-Key");
    assert_refused("GET / HTTP/1.1\r\n" GOOD_HOST GOOD_UPGRADE GOOD_CONN GOOD_VER GOOD_KEY GOOD_KEY
                   "\r\n",
                   400, "missing or invalid Sec-WebSocket-Key");
}

static void test_http_upgrade_checks_run_in_documented_order(void **state)
{
    /* Everything wrong: the method decides. Then each fix exposes the next check. */
    assert_refused("PUT / HTTP/1.0\r\n\r\n", 405, NULL);
    assert_refused("GET / HTTP/1.0\r\n\r\n", 400, "WebSocket upgrade requires HTTP/1.1");
    assert_refused("GET / HTTP/1.1\r\n\r\n", 400, "missing or duplicate Host header");
    assert_refused("GET / HTTP/1.1\r\n" GOOD_HOST "\r\n", 426, "missing Upgrade: websocket");
    assert_refused("GET / HTTP/1.1\r\n" GOOD_HOST GOOD_UPGRADE "\r\n", 400,
                   "missing Connection: Upgrade");
    assert_refused("GET / HTTP/1.1\r\n" GOOD_HOST GOOD_UPGRADE GOOD_CONN "\r\n", 426,
                   "unsupported Sec-WebSocket-Version (only 13)");
    assert_refused("GET / HTTP/1.1\r\n" GOOD_HOST GOOD_UPGRADE GOOD_CONN GOOD_VER "\r\n", 400,
                   "missing or invalid Sec-WebSocket-Key");
}

static void test_http_upgrade_accept_key_matches_rfc6455_example(void **state)
{
    char out[29];
    memset(out, 'x', sizeof(out));
    hr_http_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, out);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void test_http_upgrade_accept_key_of_long_input_is_still_a_digest(void **state)
{
    char key[300], out[29];
    memset(key, 'A', sizeof(key));
    hr_http_accept_key(key, sizeof(key), out);
    assert_int_equal(strlen(out), 28);
}

/* ---- origin policy ---- */

typedef struct origin_case {
    const char *origin; /* NULL: no Origin header */
    const char *host;
    bool allowed;
} origin_case_t;

static void run_origin_cases(const origin_case_t *cases, size_t ncases, const char *const *patterns,
                             size_t n)
{
    for (size_t i = 0; i < ncases; i++) {
        const origin_case_t *c = &cases[i];
        bool got = hr_http_origin_allowed(c->origin, c->origin ? strlen(c->origin) : 0, c->host,
                                          strlen(c->host), patterns, n);
        if (got != c->allowed)
            fail_msg("origin \"%s\" host \"%s\" (%zu patterns): expected %s", c->origin, c->host, n,
                     c->allowed ? "allowed" : "refused");
    }
}

static void test_http_upgrade_origin_default_policy_is_same_host(void **state)
{
    static const origin_case_t cases[] = {
        {NULL, "example.com", true},
        {"http://example.com", "example.com", true},
        {"http://example.com", "example.com:80", true},
        {"http://example.com", "example.com:443", false},
        {"https://example.com", "example.com", true},
        {"https://example.com", "example.com:443", true},
        {"https://example.com", "example.com:80", false},
        {"https://example.com:443", "example.com", true},
        {"HTTP://Example.COM", "example.com", true},
        {"http://example.com", "EXAMPLE.com", true},
        {"http://localhost:3000", "localhost:3000", true},
        {"http://localhost:3000", "localhost:3001", false},
        {"http://localhost:3000", "localhost", false},
        {"http://localhost", "localhost:3000", false},
        {"http://[::1]:8080", "[::1]:8080", true},
        {"http://[::1]", "[::1]:80", true},
        {"http://evil.com", "example.com", false},
        {"http://example.com.evil.com", "example.com", false},
        {"http://evil.com@example.com", "example.com", false},
        {"http://example.com/path", "example.com", false},
        {"null", "example.com", false},
        {"", "example.com", false},
        {"example.com", "example.com", false},
    };
    run_origin_cases(cases, sizeof(cases) / sizeof(cases[0]), NULL, 0);
}

static void test_http_upgrade_origin_star_allows_everything(void **state)
{
    static const char *const pats[] = {"*"};
    static const origin_case_t cases[] = {
        {NULL, "a", true},
        {"http://evil.com", "example.com", true},
        {"null", "example.com", true},
        {"garbage", "example.com", true},
    };
    run_origin_cases(cases, sizeof(cases) / sizeof(cases[0]), pats, 1);
}

static void test_http_upgrade_origin_host_patterns_match_host_and_port(void **state)
{
    static const char *const pats[] = {"*.example.com", "localhost:3000", "app.test:*"};
    static const origin_case_t cases[] = {
        {"https://chat.example.com", "x", true},
        {"http://a.b.example.com", "x", true},
        {"https://CHAT.Example.Com", "x", true},
        {"https://example.com", "x", false},
        {"https://example.com.evil.com", "x", false},
        {"https://chat.example.com:8443", "x", false},
        {"http://localhost:3000", "x", true},
        {"http://localhost:3001", "x", false},
        {"http://localhost", "x", false},
        {"https://app.test:9", "x", true},
        {"https://app.test", "x", false},
        {"null", "x", false},
        {"http://evil.com@chat.example.com", "x", false},
        {NULL, "x", true},
    };
    run_origin_cases(cases, sizeof(cases) / sizeof(cases[0]), pats, 3);
}

static void test_http_upgrade_origin_full_patterns_match_the_whole_origin(void **state)
{
    static const char *const pats[] = {"https://*.example.com", "http://localhost:*"};
    static const origin_case_t cases[] = {
        {"https://chat.example.com", "x", true}, {"HTTPS://chat.EXAMPLE.com", "x", true},
        {"http://chat.example.com", "x", false}, {"https://example.com", "x", false},
        {"http://localhost:8080", "x", true},    {"http://localhost", "x", false},
        {"https://localhost:8080", "x", false},  {"null", "x", false},
    };
    run_origin_cases(cases, sizeof(cases) / sizeof(cases[0]), pats, 2);
}

static void test_http_upgrade_origin_null_needs_an_explicit_pattern(void **state)
{
    static const char *const with_null[] = {"https://example.com", "null"};
    static const char *const wild[] = {"*://*", "n*", "*ull"};
    static const origin_case_t allowed[] = {{"null", "x", true}, {"NULL", "x", true}};
    static const origin_case_t refused[] = {{"null", "x", false}};
    run_origin_cases(allowed, 2, with_null, 2);
    run_origin_cases(refused, 1, wild, 3);
}

/* ---- subprotocols ---- */

static void test_http_upgrade_subprotocol_server_preference_across_headers(void **state)
{
    parsed_t p;
    parse(&p, "GET / HTTP/1.1\r\n"
              "Sec-WebSocket-Protocol: chat.v1 ,  stomp\r\n"
              "sec-websocket-protocol:\tmqtt,json\t\r\n"
              "\r\n");
    static const char *const a[] = {"json", "stomp"};
    static const char *const b[] = {"xmpp", "STOMP", "json"};
    static const char *const c[] = {"xmpp", "chat"};
    static const char *const d[] = {"chat.v1"};
    assert_int_equal(hr_http_choose_subprotocol(&p.req, a, 2), 0);
    assert_int_equal(hr_http_choose_subprotocol(&p.req, b, 3), 1);
    assert_int_equal(hr_http_choose_subprotocol(&p.req, c, 2), -1);
    assert_int_equal(hr_http_choose_subprotocol(&p.req, d, 1), 0);
    assert_int_equal(hr_http_choose_subprotocol(&p.req, a, 0), -1);
}

static void test_http_upgrade_subprotocol_none_offered_is_minus_1(void **state)
{
    parsed_t p;
    parse(&p, "GET / HTTP/1.1\r\nHost: a\r\nSec-WebSocket-Protocol:\r\n\r\n");
    static const char *const a[] = {"json"};
    assert_int_equal(hr_http_choose_subprotocol(&p.req, a, 1), -1);
}

/* ---- writers ---- */

static void assert_buf(const hr_buf_t *b, const char *expect)
{
    assert_int_equal(b->len, strlen(expect));
    assert_memory_equal(b->data, expect, b->len);
}

static void test_http_upgrade_write_101_exact_bytes(void **state)
{
    hr_buf_t b;
    hr_buf_init(&b);
    assert_int_equal(hr_http_write_101(&b, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", NULL, NULL), 0);
    assert_buf(&b, "HTTP/1.1 101 Switching Protocols\r\n"
                   "Upgrade: websocket\r\n"
                   "Connection: Upgrade\r\n"
                   "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                   "\r\n");
    b.len = 0;
    assert_int_equal(hr_http_write_101(&b, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "chat",
                                       "permessage-deflate; server_no_context_takeover"),
                     0);
    assert_buf(&b, "HTTP/1.1 101 Switching Protocols\r\n"
                   "Upgrade: websocket\r\n"
                   "Connection: Upgrade\r\n"
                   "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                   "Sec-WebSocket-Protocol: chat\r\n"
                   "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n"
                   "\r\n");
    hr_buf_deinit(&b);
}

static void test_http_upgrade_write_error_exact_bytes(void **state)
{
    hr_buf_t b;
    hr_buf_init(&b);
    assert_int_equal(hr_http_write_error(&b, 426, "unsupported Sec-WebSocket-Version (only 13)",
                                         "Sec-WebSocket-Version: 13\r\n"),
                     0);
    assert_buf(&b, "HTTP/1.1 426 Upgrade Required\r\n"
                   "Content-Type: text/plain; charset=utf-8\r\n"
                   "Content-Length: 44\r\n"
                   "Connection: close\r\n"
                   "Sec-WebSocket-Version: 13\r\n"
                   "\r\n"
                   "unsupported Sec-WebSocket-Version (only 13)\n");
    b.len = 0;
    assert_int_equal(hr_http_write_error(&b, 400, "bad", NULL), 0);
    assert_buf(&b, "HTTP/1.1 400 Bad Request\r\n"
                   "Content-Type: text/plain; charset=utf-8\r\n"
                   "Content-Length: 4\r\n"
                   "Connection: close\r\n"
                   "\r\n"
                   "bad\n");
    hr_buf_deinit(&b);
}

static void test_http_upgrade_writers_append_after_existing_bytes(void **state)
{
    hr_buf_t b;
    hr_buf_init(&b);
    assert_int_equal(hr_buf_append_str(&b, "xy"), 0);
    assert_int_equal(hr_http_write_error(&b, 503, "busy", NULL), 0);
    assert_memory_equal(b.data, "xyHTTP/1.1 503 Service Unavailable\r\n", 36);
    hr_buf_deinit(&b);
}

static void test_http_upgrade_status_text(void **state)
{
    static const struct {
        int code;
        const char *text;
    } t[] = {
        {100, "Continue"},
        {101, "Switching Protocols"},
        {200, "OK"},
        {400, "Bad Request"},
        {401, "Unauthorized"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {408, "Request Timeout"},
        {413, "Content Too Large"},
        {426, "Upgrade Required"},
        {429, "Too Many Requests"},
        {431, "Request Header Fields Too Large"},
        {500, "Internal Server Error"},
        {501, "Not Implemented"},
        {503, "Service Unavailable"},
        {505, "HTTP Version Not Supported"},
        {299, "Unknown"},
        {-1, "Unknown"},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        assert_string_equal(hr_http_status_text(t[i].code), t[i].text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_upgrade_browser_request_is_accepted),
        cmocka_unit_test(test_http_upgrade_tokens_are_case_insensitive_and_may_repeat),
        cmocka_unit_test(test_http_upgrade_non_get_is_405),
        cmocka_unit_test(test_http_upgrade_http_1_0_is_400),
        cmocka_unit_test(test_http_upgrade_missing_or_duplicate_host_is_400),
        cmocka_unit_test(test_http_upgrade_without_websocket_token_is_426),
        cmocka_unit_test(test_http_upgrade_without_connection_upgrade_is_400),
        cmocka_unit_test(test_http_upgrade_version_other_than_13_is_426),
        cmocka_unit_test(test_http_upgrade_bad_key_is_400),
        cmocka_unit_test(test_http_upgrade_checks_run_in_documented_order),
        cmocka_unit_test(test_http_upgrade_accept_key_matches_rfc6455_example),
        cmocka_unit_test(test_http_upgrade_accept_key_of_long_input_is_still_a_digest),
        cmocka_unit_test(test_http_upgrade_origin_default_policy_is_same_host),
        cmocka_unit_test(test_http_upgrade_origin_star_allows_everything),
        cmocka_unit_test(test_http_upgrade_origin_host_patterns_match_host_and_port),
        cmocka_unit_test(test_http_upgrade_origin_full_patterns_match_the_whole_origin),
        cmocka_unit_test(test_http_upgrade_origin_null_needs_an_explicit_pattern),
        cmocka_unit_test(test_http_upgrade_subprotocol_server_preference_across_headers),
        cmocka_unit_test(test_http_upgrade_subprotocol_none_offered_is_minus_1),
        cmocka_unit_test(test_http_upgrade_write_101_exact_bytes),
        cmocka_unit_test(test_http_upgrade_write_error_exact_bytes),
        cmocka_unit_test(test_http_upgrade_writers_append_after_existing_bytes),
        cmocka_unit_test(test_http_upgrade_status_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
