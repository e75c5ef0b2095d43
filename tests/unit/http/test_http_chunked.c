/* Chunked request bodies (src/http/http_chunked.c): the decoder's verdict, decoded data
 * and completion point must not depend on how the bytes arrive (every split point and one
 * byte at a time), and the Transfer-Encoding framing rules of RFC 9112 §6. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "herald/error.h"
#include "http/http_chunked.h"
#include "test_util.h"

typedef struct feed_ctx {
    hr_http_chunked_t d;
    size_t max_body;
    uint8_t body[16384]; /* decoded data */
    size_t body_len;
    uint8_t rest[256]; /* bytes after the body (pipelined) */
    size_t rest_len;
    ssize_t verdict; /* HR_EAGAIN until done or failed */
    /* expected */
    const char *want_body;
    size_t want_body_len;
    const char *want_rest;
    ssize_t want_verdict; /* 0: complete */
    int want_status;
} feed_ctx_t;

static void on_reset(void *p)
{
    feed_ctx_t *x = p;
    hr_http_chunked_init(&x->d, x->max_body);
    x->body_len = x->rest_len = 0;
    x->verdict = HR_EAGAIN;
}

static void on_feed(void *p, const uint8_t *chunk, size_t len)
{
    feed_ctx_t *x = p;
    if (x->verdict != HR_EAGAIN) {
        /* After the body: the caller's bytes. */
        if (x->verdict >= 0) {
            assert_true(x->rest_len + len <= sizeof(x->rest));
            memcpy(x->rest + x->rest_len, chunk, len);
            x->rest_len += len;
        }
        return;
    }
    uint8_t *copy = malloc(len);
    assert_non_null(copy);
    memcpy(copy, chunk, len);
    size_t out = 99999;
    ssize_t r = hr_http_chunked_feed(&x->d, copy, len, &out);
    if (r < 0 && r != HR_EAGAIN) {
        x->verdict = r;
        free(copy);
        return;
    }
    assert_true(out <= len);
    assert_true(x->body_len + out <= sizeof(x->body));
    memcpy(x->body + x->body_len, copy, out);
    x->body_len += out;
    if (r >= 0) {
        assert_true((size_t)r <= len);
        x->verdict = 0;
        memcpy(x->rest, chunk + r, len - (size_t)r);
        x->rest_len = len - (size_t)r;
    }
    free(copy);
}

static void on_check(void *p)
{
    feed_ctx_t *x = p;
    assert_int_equal(x->verdict, x->want_verdict);
    if (x->want_verdict == 0) {
        assert_int_equal(x->body_len, x->want_body_len);
        assert_memory_equal(x->body, x->want_body, x->want_body_len);
        assert_int_equal(x->d.body_len, x->want_body_len);
        assert_int_equal(x->rest_len, strlen(x->want_rest));
        assert_memory_equal(x->rest, x->want_rest, x->rest_len);
        assert_int_equal(hr_http_chunked_status(&x->d), 0);
    } else {
        assert_int_equal(hr_http_chunked_status(&x->d), x->want_status);
    }
}

/* Runs input through every split; want_rest is the part of input after the body. */
static void check_ok(const char *input, const char *want_body, const char *want_rest)
{
    feed_ctx_t *x = calloc(1, sizeof(*x));
    assert_non_null(x);
    x->max_body = 1u << 20;
    x->want_body = want_body;
    x->want_body_len = strlen(want_body);
    x->want_rest = want_rest;
    x->want_verdict = 0;
    feed_chunks(x, (const uint8_t *)input, strlen(input), on_reset, on_feed, on_check);
    free(x);
}

static void check_err_len(const char *input, size_t len, size_t max_body, ssize_t verdict,
                          int status)
{
    feed_ctx_t *x = calloc(1, sizeof(*x));
    assert_non_null(x);
    x->max_body = max_body;
    x->want_verdict = verdict;
    x->want_status = status;
    feed_chunks(x, (const uint8_t *)input, len, on_reset, on_feed, on_check);
    free(x);
}

static void check_err(const char *input, int status)
{
    check_err_len(input, strlen(input), 1u << 20, status == 413 ? HR_EMSGSIZE : HR_EPROTO, status);
}

/* Incomplete input: every split consumes everything and asks for more. */
static void check_eagain(const char *input)
{
    feed_ctx_t *x = calloc(1, sizeof(*x));
    assert_non_null(x);
    x->max_body = 1u << 20;
    x->want_verdict = HR_EAGAIN;
    feed_chunks(x, (const uint8_t *)input, strlen(input), on_reset, on_feed, on_check);
    free(x);
}

/* ---------------------------------------------------------------- decoding */

static void test_http_chunked_decodes_chunks_at_every_split(void **state)
{
    (void)state;
    check_ok("5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n", "hello world", "");
}

static void test_http_chunked_empty_body(void **state)
{
    (void)state;
    check_ok("0\r\n\r\n", "", "");
}

static void test_http_chunked_pipelined_bytes_are_left_to_the_caller(void **state)
{
    (void)state;
    check_ok("3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n", "abc", "GET / HTTP/1.1\r\n\r\n");
}

static void test_http_chunked_hex_sizes_any_case_leading_zeros(void **state)
{
    (void)state;
    check_ok("0000A\r\n0123456789\r\nb\r\nabcdefghijk\r\n000\r\n\r\n", "0123456789abcdefghijk", "");
}

static void test_http_chunked_extensions_are_ignored(void **state)
{
    (void)state;
    check_ok("2;name=value\r\nab\r\n2 ; a=\"q;\\\"x\" ;b\r\ncd\r\n0;last\r\n\r\n", "abcd", "");
}

static void test_http_chunked_trailers_are_ignored(void **state)
{
    (void)state;
    check_ok("2\r\nab\r\n0\r\nX-Sum: 12\r\nEmpty:\r\n\r\nZ", "ab", "Z");
}

static void test_http_chunked_data_may_hold_crlf_and_nul(void **state)
{
    (void)state;
    feed_ctx_t *x = calloc(1, sizeof(*x));
    assert_non_null(x);
    static const char in[] = "4\r\n\r\n\0z\r\n0\r\n\r\n";
    x->max_body = 100;
    x->want_body = "\r\n\0z";
    x->want_body_len = 4;
    x->want_rest = "";
    feed_chunks(x, (const uint8_t *)in, sizeof(in) - 1, on_reset, on_feed, on_check);
    free(x);
}

static void test_http_chunked_incomplete_asks_for_more(void **state)
{
    (void)state;
    check_eagain("5\r\nhel");
    check_eagain("5\r\nhello\r\n0\r\n");
    check_eagain("5\r\nhello\r\n0\r\nX-T: 1\r\n");
    check_eagain("5;ext");
}

static void test_http_chunked_done_decoder_consumes_nothing(void **state)
{
    (void)state;
    hr_http_chunked_t d;
    hr_http_chunked_init(&d, 10);
    uint8_t buf[] = "0\r\n\r\nabc";
    size_t out;
    assert_int_equal(hr_http_chunked_feed(&d, buf, 8, &out), 5);
    assert_int_equal(out, 0);
    assert_int_equal(hr_http_chunked_feed(&d, buf + 5, 3, &out), 0);
    assert_int_equal(out, 0);
}

/* ---------------------------------------------------------------- errors */

static void test_http_chunked_malformed_size_is_400(void **state)
{
    (void)state;
    check_err("g\r\n", 400);
    check_err("\r\n", 400);   /* empty size */
    check_err(" 5\r\n", 400); /* whitespace before the size */
    check_err("-1\r\n", 400);
    check_err("+5\r\nhello\r\n", 400);
    check_err("0x5\r\nhello\r\n", 400);
    check_err("5x\r\nhello\r\n", 400);
}

static void test_http_chunked_line_ends_must_be_crlf(void **state)
{
    (void)state;
    check_err("5\nhello\r\n0\r\n\r\n", 400); /* bare LF after the size */
    check_err("5\r\rhello\r\n", 400);        /* CR CR */
    check_err("5\r\nhello\n0\r\n\r\n", 400); /* bare LF after the data */
    check_err("5\r\nhelloX\r\n", 400);       /* data longer than its size */
    check_err("5\r\nhello\r\n0\r\n\n", 400); /* bare LF ending the body */
    check_err("0\r\nX: 1\n\r\n", 400);       /* bare LF ending a trailer */
    check_err("5;a\nb\r\nhello\r\n", 400);   /* LF inside an extension */
}

static void test_http_chunked_control_characters_are_400(void **state)
{
    (void)state;
    check_err("5;a\001\r\nhello\r\n", 400);
    check_err("0\r\nX: a\001\r\n\r\n", 400);
    check_err("0\r\nX: a\177\r\n\r\n", 400);
    check_err("0\r\nno colon\r\n\r\n", 400);
    check_err("0\r\n: empty name\r\n\r\n", 400);
    check_err("0\r\n X: folded\r\n\r\n", 400);
}

static void test_http_chunked_body_over_max_is_413(void **state)
{
    (void)state;
    /* Exactly at the limit passes, one byte more fails as soon as the size says so. */
    feed_ctx_t *x = calloc(1, sizeof(*x));
    assert_non_null(x);
    x->max_body = 5;
    x->want_body = "hello";
    x->want_body_len = 5;
    x->want_rest = "";
    const char *ok = "3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n";
    feed_chunks(x, (const uint8_t *)ok, strlen(ok), on_reset, on_feed, on_check);
    free(x);
    const char *over = "3\r\nhel\r\n3\r\n";
    check_err_len(over, strlen(over), 5, HR_EMSGSIZE, 413);
    const char *huge = "6\r\n";
    check_err_len(huge, strlen(huge), 5, HR_EMSGSIZE, 413);
}

static void test_http_chunked_size_overflow_is_413(void **state)
{
    (void)state;
    check_err("ffffffffffffffffffff\r\n", 413);
    const char *s = "10000000000000000\r\n"; /* 2^64 */
    check_err_len(s, strlen(s), SIZE_MAX, HR_EMSGSIZE, 413);
}

static void test_http_chunked_size_line_over_bound_is_400(void **state)
{
    (void)state;
    hr_http_chunked_t d;
    static uint8_t buf[HR_HTTP_CHUNKED_MAX_LINE + 16];
    size_t out;
    /* Leading zeros up to the bound are a valid size line. */
    memset(buf, '0', HR_HTTP_CHUNKED_MAX_LINE - 1);
    memcpy(buf + HR_HTTP_CHUNKED_MAX_LINE - 1, "\r\n\r\n", 4);
    hr_http_chunked_init(&d, 10);
    assert_int_equal(hr_http_chunked_feed(&d, buf, HR_HTTP_CHUNKED_MAX_LINE + 3, &out),
                     HR_HTTP_CHUNKED_MAX_LINE + 3);
    /* One more is not, for digits and for extensions. */
    memset(buf, '0', HR_HTTP_CHUNKED_MAX_LINE + 1);
    hr_http_chunked_init(&d, 10);
    assert_int_equal(hr_http_chunked_feed(&d, buf, HR_HTTP_CHUNKED_MAX_LINE + 1, &out), HR_EPROTO);
    assert_int_equal(hr_http_chunked_status(&d), 400);
    buf[0] = '1';
    buf[1] = ';';
    memset(buf + 2, 'e', HR_HTTP_CHUNKED_MAX_LINE);
    hr_http_chunked_init(&d, 10);
    assert_int_equal(hr_http_chunked_feed(&d, buf, HR_HTTP_CHUNKED_MAX_LINE + 2, &out), HR_EPROTO);
    assert_int_equal(hr_http_chunked_status(&d), 400);
}

static void test_http_chunked_trailers_over_bound_are_431(void **state)
{
    (void)state;
    hr_http_chunked_t d;
    static uint8_t buf[HR_HTTP_CHUNKED_MAX_TRAILER + 64];
    size_t out, n = 0;
    memcpy(buf, "0\r\nX:", 5);
    n = 5;
    /* The section counts from the last chunk's CRLF: X: + value + CRLF + CRLF. */
    memset(buf + n, 'v', HR_HTTP_CHUNKED_MAX_TRAILER - 6);
    n += HR_HTTP_CHUNKED_MAX_TRAILER - 6;
    memcpy(buf + n, "\r\n\r\n", 4);
    n += 4;
    hr_http_chunked_init(&d, 10);
    assert_int_equal(hr_http_chunked_feed(&d, buf, n, &out), (ssize_t)n);
    /* One byte more in the value: refused. */
    memset(buf + 5, 'v', HR_HTTP_CHUNKED_MAX_TRAILER - 5);
    n = 5 + HR_HTTP_CHUNKED_MAX_TRAILER - 5;
    memcpy(buf + n, "\r\n\r\n", 4);
    n += 4;
    hr_http_chunked_init(&d, 10);
    assert_int_equal(hr_http_chunked_feed(&d, buf, n, &out), HR_EPROTO);
    assert_int_equal(hr_http_chunked_status(&d), 431);
}

static void test_http_chunked_errors_are_terminal(void **state)
{
    (void)state;
    hr_http_chunked_t d;
    hr_http_chunked_init(&d, 10);
    uint8_t bad[] = "z";
    uint8_t good[] = "0\r\n\r\n";
    size_t out;
    assert_int_equal(hr_http_chunked_feed(&d, bad, 1, &out), HR_EPROTO);
    assert_int_equal(hr_http_chunked_feed(&d, good, 5, &out), HR_EPROTO);
    assert_int_equal(out, 0);
    assert_int_equal(hr_http_chunked_status(&d), 400);
}

/* ---------------------------------------------------------------- framing */

static int framing_of(const char *head)
{
    hr_http_header_t headers[16];
    hr_http_request_t req = {.headers = headers, .num_headers = 16};
    int status = 0;
    ssize_t n = hr_http_parse_request(head, strlen(head), 8192, &req, &status);
    assert_int_equal(n, (ssize_t)strlen(head));
    return hr_http_chunked_framing(&req);
}

static void test_http_chunked_framing_rules(void **state)
{
    (void)state;
    assert_int_equal(framing_of("POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\n"), 0);
    assert_int_equal(framing_of("POST / HTTP/1.1\r\n\r\n"), 0);
    assert_int_equal(framing_of("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"), 1);
    assert_int_equal(framing_of("POST / HTTP/1.1\r\nTransfer-Encoding: ChUnKeD\r\n\r\n"), 1);
    assert_int_equal(framing_of("POST / HTTP/1.1\r\nTransfer-Encoding: , chunked ,\r\n\r\n"), 1);
    /* §6.1: other codings before chunked are not implemented. */
    assert_int_equal(framing_of("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
                     501);
    assert_int_equal(framing_of("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n"
                                "Transfer-Encoding: chunked\r\n\r\n"),
                     501);
    /* §6.3: chunked not final, applied twice, empty or broken: the length is unknown. */
    assert_int_equal(framing_of("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"), 400);
    assert_int_equal(framing_of("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
                     400);
    assert_int_equal(framing_of("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
                                "Transfer-Encoding: chunked\r\n\r\n"),
                     400);
    assert_int_equal(framing_of("POST / HTTP/1.1\r\nTransfer-Encoding: \r\n\r\n"), 400);
    assert_int_equal(framing_of("POST / HTTP/1.1\r\nTransfer-Encoding: chunked;a=b\r\n\r\n"), 400);
    assert_int_equal(framing_of("POST / HTTP/1.1\r\nTransfer-Encoding: \"chunked\"\r\n\r\n"), 400);
    assert_int_equal(framing_of("POST / HTTP/1.1\r\nTransfer-Encoding: chunked x\r\n\r\n"), 400);
    /* §6.1: with Content-Length (smuggling), and in HTTP/1.0. */
    assert_int_equal(framing_of("POST / HTTP/1.1\r\nContent-Length: 5\r\n"
                                "Transfer-Encoding: chunked\r\n\r\n"),
                     400);
    assert_int_equal(framing_of("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
                                "Content-Length: 0\r\n\r\n"),
                     400);
    assert_int_equal(framing_of("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), 400);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_chunked_decodes_chunks_at_every_split),
        cmocka_unit_test(test_http_chunked_empty_body),
        cmocka_unit_test(test_http_chunked_pipelined_bytes_are_left_to_the_caller),
        cmocka_unit_test(test_http_chunked_hex_sizes_any_case_leading_zeros),
        cmocka_unit_test(test_http_chunked_extensions_are_ignored),
        cmocka_unit_test(test_http_chunked_trailers_are_ignored),
        cmocka_unit_test(test_http_chunked_data_may_hold_crlf_and_nul),
        cmocka_unit_test(test_http_chunked_incomplete_asks_for_more),
        cmocka_unit_test(test_http_chunked_done_decoder_consumes_nothing),
        cmocka_unit_test(test_http_chunked_malformed_size_is_400),
        cmocka_unit_test(test_http_chunked_line_ends_must_be_crlf),
        cmocka_unit_test(test_http_chunked_control_characters_are_400),
        cmocka_unit_test(test_http_chunked_body_over_max_is_413),
        cmocka_unit_test(test_http_chunked_size_overflow_is_413),
        cmocka_unit_test(test_http_chunked_size_line_over_bound_is_400),
        cmocka_unit_test(test_http_chunked_trailers_over_bound_are_431),
        cmocka_unit_test(test_http_chunked_errors_are_terminal),
        cmocka_unit_test(test_http_chunked_framing_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
