/* Unit tests for the STOMP frame codec (src/proto/stomp_frame.c): every command, every
 * escape in each version (1.0 keeps backslashes, CONNECT/STOMP/CONNECTED are never
 * unescaped), invalid escapes, header line syntax, CRLF and lone CR, repeated headers,
 * bodies with and without content-length, heart-beat EOLs, several frames in one buffer,
 * each limit (also before the frame is complete), and the same frames and errors
 * whatever the split of the input. The encoder: escaping per version, content-length,
 * round trips of random headers and bodies, allocation failure. Inputs are parsed from
 * exact-size heap copies, so ASan sees any read past the end. */
#include "test_util.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "herald/error.h"
#include "proto/stomp_frame.h"

static hr_stomp_frame_t frame;
static hr_buf_t scratch;
static hr_stomp_limits_t lim;
static uint8_t *input; /* the exact-size copy the last parse read */
static size_t used, hint;
static const char *err;

static int setup(void **state)
{
    (void)state;
    hr_stomp_limits_default(&lim);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    hr_buf_deinit(&scratch);
    free(input);
    input = NULL;
    return 0;
}

static hr_stomp_result_t parse_bytes(hr_stomp_version_t v, const void *p, size_t n)
{
    uint8_t *copy = malloc(n ? n : 1); /* p may point into the previous input */
    assert_non_null(copy);
    if (n)
        memcpy(copy, p, n);
    free(input);
    input = copy;
    return hr_stomp_parse(input, n, v, &lim, &frame, &scratch, &used, &hint, &err);
}

/* A string literal, embedded NULs included. */
#define PARSE(v, lit) parse_bytes(v, lit, sizeof(lit) - 1)

static void expect_frame_(hr_stomp_version_t v, const char *p, size_t n, hr_stomp_cmd_t cmd)
{
    hr_stomp_result_t r = parse_bytes(v, p, n);
    if (r != HR_STOMP_FRAME)
        fail_msg("expected a frame, got %d (%s) for %.*s", r, err ? err : "-", (int)n, p);
    assert_int_equal(frame.cmd, cmd);
    assert_int_equal(used, n);
    assert_null(err);
}
#define EXPECT_FRAME(v, lit, cmd) expect_frame_(v, lit, sizeof(lit) - 1, cmd)

static void expect_error_(hr_stomp_version_t v, const char *p, size_t n, hr_stomp_result_t want,
                          const char *msg)
{
    hr_stomp_result_t r = parse_bytes(v, p, n);
    if (r != want)
        fail_msg("expected result %d, got %d (%s) for %.*s", want, r, err ? err : "-", (int)n, p);
    assert_non_null(err);
    assert_string_equal(err, msg);
    assert_int_equal(used, 0);
}
#define EXPECT_SYNTAX(v, lit, msg) expect_error_(v, lit, sizeof(lit) - 1, HR_STOMP_ERR_SYNTAX, msg)
#define EXPECT_TOO_LARGE(v, lit, msg)                                                              \
    expect_error_(v, lit, sizeof(lit) - 1, HR_STOMP_ERR_TOO_LARGE, msg)

static void assert_slice_eq(hr_slice_t s, const void *want, size_t len)
{
    assert_int_equal(s.len, len);
    if (len)
        assert_memory_equal(s.ptr, want, len);
}

#define ASSERT_SLICE(s, lit) assert_slice_eq(s, lit, sizeof(lit) - 1)

static void assert_header(size_t i, const char *name, const char *value)
{
    assert_true(i < frame.nheaders);
    assert_slice_eq(frame.headers[i].name, name, strlen(name));
    assert_slice_eq(frame.headers[i].value, value, strlen(value));
}

static hr_slice_t sl(const char *s)
{
    return hr_slice(s, strlen(s));
}

static const hr_stomp_version_t versions[] = {HR_STOMP_10, HR_STOMP_11, HR_STOMP_12};
#define NVERSIONS (sizeof versions / sizeof versions[0])

/* ------------------------------------------------------------------------------------
 * Commands and basic frames
 * ---------------------------------------------------------------------------------- */

static void test_stomp_limits_default(void **state)
{
    (void)state;
    hr_stomp_limits_t l;
    hr_stomp_limits_default(&l);
    assert_int_equal(l.max_headers, 64);
    assert_int_equal(l.max_header_bytes, 16 * 1024);
    assert_int_equal(l.max_body, 16 * 1024 * 1024);
}

static void test_stomp_cmd_name_and_parse_every_command(void **state)
{
    (void)state;
    assert_null(hr_stomp_cmd_name(HR_STOMP_UNKNOWN));
    assert_null(hr_stomp_cmd_name((hr_stomp_cmd_t)99));
    for (int c = HR_STOMP_CONNECT; c <= HR_STOMP_ERROR; c++) {
        const char *name = hr_stomp_cmd_name((hr_stomp_cmd_t)c);
        assert_non_null(name);
        char text[64];
        int n = snprintf(text, sizeof text, "%s\n\n", name);
        for (size_t i = 0; i < NVERSIONS; i++) {
            assert_int_equal(parse_bytes(versions[i], text, (size_t)n + 1), HR_STOMP_FRAME);
            assert_int_equal(frame.cmd, c);
            assert_slice_eq(frame.cmd_text, name, strlen(name));
            assert_int_equal(frame.nheaders, 0);
            assert_int_equal(frame.body.len, 0);
            assert_false(frame.has_content_length);
            assert_int_equal(used, (size_t)n + 1);
        }
    }
}

static void test_stomp_parse_send_with_headers_and_body(void **state)
{
    (void)state;
    EXPECT_FRAME(HR_STOMP_12, "SEND\ndestination:/queue/a\ncontent-type:text/plain\n\nhello\0",
                 HR_STOMP_SEND);
    ASSERT_SLICE(frame.cmd_text, "SEND");
    assert_int_equal(frame.nheaders, 2);
    assert_header(0, "destination", "/queue/a");
    assert_header(1, "content-type", "text/plain");
    ASSERT_SLICE(frame.body, "hello");
    assert_false(frame.has_content_length);
    /* Slices without escapes point into the input. */
    assert_ptr_equal(frame.headers[0].value.ptr, input + 17);
    assert_ptr_equal(frame.body.ptr, input + 51);
}

static void test_stomp_parse_commands_are_case_sensitive(void **state)
{
    (void)state;
    EXPECT_SYNTAX(HR_STOMP_12, "send\n\n\0", "unknown command");
    EXPECT_SYNTAX(HR_STOMP_12, "Send\n\n\0", "unknown command");
    EXPECT_SYNTAX(HR_STOMP_12, "SEND \n\n\0", "unknown command");
    EXPECT_SYNTAX(HR_STOMP_12, " SEND\n\n\0", "unknown command");
    EXPECT_SYNTAX(HR_STOMP_12, "SENDX\n\n\0", "unknown command");
    EXPECT_SYNTAX(HR_STOMP_12, "SEN\n\n\0", "unknown command");
    EXPECT_SYNTAX(HR_STOMP_10, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "unknown command");
    /* Known as soon as the command line is complete, whatever follows. */
    EXPECT_SYNTAX(HR_STOMP_11, "FOO\n", "unknown command");
    EXPECT_SYNTAX(HR_STOMP_11, "\rSEND\n\n\0", "unknown command");
}

static void test_stomp_parse_header_get_first_wins(void **state)
{
    (void)state;
    EXPECT_FRAME(HR_STOMP_12, "MESSAGE\nfoo:1\nbar:x\nfoo:2\nfoo:3\n\n\0", HR_STOMP_MESSAGE);
    assert_int_equal(frame.nheaders, 4);
    assert_header(0, "foo", "1");
    assert_header(2, "foo", "2");
    assert_header(3, "foo", "3");
    const hr_slice_t *v = hr_stomp_header_get(&frame, "foo");
    assert_non_null(v);
    ASSERT_SLICE(*v, "1");
    v = hr_stomp_header_get(&frame, "bar");
    assert_non_null(v);
    ASSERT_SLICE(*v, "x");
    assert_null(hr_stomp_header_get(&frame, "fo"));
    assert_null(hr_stomp_header_get(&frame, "Foo"));
    assert_null(hr_stomp_header_get(&frame, "foo2"));
}

/* ------------------------------------------------------------------------------------
 * Header lines and escapes
 * ---------------------------------------------------------------------------------- */

static void test_stomp_parse_header_split_at_first_colon_values_not_trimmed(void **state)
{
    (void)state;
    for (size_t i = 0; i < NVERSIONS; i++) {
        EXPECT_FRAME(versions[i], "SEND\na:b:c\n x : y \nempty:\nk::\n\n\0", HR_STOMP_SEND);
        assert_int_equal(frame.nheaders, 4);
        assert_header(0, "a", "b:c");
        assert_header(1, " x ", " y ");
        assert_header(2, "empty", "");
        assert_header(3, "k", ":");
    }
}

static void test_stomp_parse_header_line_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < NVERSIONS; i++) {
        hr_stomp_version_t v = versions[i];
        EXPECT_SYNTAX(v, "SEND\nnocolon\n\n\0", "header line without ':'");
        EXPECT_SYNTAX(v, "SEND\na:1\n \n\n\0", "header line without ':'");
        EXPECT_SYNTAX(v, "SEND\n:value\n\n\0", "empty header name");
        EXPECT_SYNTAX(v, "SEND\n:\n\n\0", "empty header name");
        EXPECT_SYNTAX(v, "CONNECT\n:x\n\n\0", "empty header name");
        /* A NUL before the blank line, in the command or a header, line complete or not. */
        EXPECT_SYNTAX(v, "SEND\na:b\0c\n\n\0", "NUL in frame headers");
        EXPECT_SYNTAX(v, "SEND\0\n\n", "NUL in frame headers");
        EXPECT_SYNTAX(v, "SEND\n\0", "NUL in frame headers");
        EXPECT_SYNTAX(v, "SEND\na:b\0", "NUL in frame headers");
        EXPECT_SYNTAX(v, "DISCONNECT\0", "NUL in frame headers");
    }
}

static void test_stomp_parse_escapes_11(void **state)
{
    (void)state;
    EXPECT_FRAME(HR_STOMP_11, "MESSAGE\nk:a\\nb\\cc\\\\d\n\n\0", HR_STOMP_MESSAGE);
    assert_header(0, "k", "a\nb:c\\d");
    EXPECT_FRAME(HR_STOMP_11, "MESSAGE\nk:\\n\\c\\\\\n\n\0", HR_STOMP_MESSAGE);
    assert_header(0, "k", "\n:\\");
    /* Names are escaped too. */
    EXPECT_FRAME(HR_STOMP_11, "SEND\nx\\cy\\nz\\\\:v\n\n\0", HR_STOMP_SEND);
    assert_header(0, "x:y\nz\\", "v");
    /* \r is not a 1.1 escape. */
    EXPECT_SYNTAX(HR_STOMP_11, "SEND\nk:a\\rb\n\n\0", "invalid escape sequence in header");
}

static void test_stomp_parse_escapes_12(void **state)
{
    (void)state;
    EXPECT_FRAME(HR_STOMP_12, "MESSAGE\nk:a\\rb\\nc\\cd\\\\e\n\n\0", HR_STOMP_MESSAGE);
    assert_header(0, "k", "a\rb\nc:d\\e");
    EXPECT_FRAME(HR_STOMP_12, "SEND\n\\r\\n\\c\\\\:\\\\\\\\\n\n\0", HR_STOMP_SEND);
    assert_header(0, "\r\n:\\", "\\\\");
    /* Unescaped values live in scratch; the others still point into the input. */
    EXPECT_FRAME(HR_STOMP_12, "SEND\na:plain\nb:x\\cy\nc:plain2\n\n\0", HR_STOMP_SEND);
    assert_header(1, "b", "x:y");
    assert_true((uint8_t *)frame.headers[1].value.ptr >= scratch.data &&
                (uint8_t *)frame.headers[1].value.ptr < scratch.data + scratch.cap);
    assert_ptr_equal(frame.headers[0].value.ptr, input + 7);
    assert_ptr_equal(frame.headers[2].value.ptr, input + 22);
    assert_ptr_equal(frame.headers[1].name.ptr, input + 13);
}

static void test_stomp_parse_invalid_escapes(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "SEND\nk:\\t\n\n", "SEND\nk:a\\\n\n",      "SEND\nk:\\\n\n", "SEND\nk:\\C\n\n",
        "SEND\nk:\\N\n\n", "SEND\nk\\x:v\n\n",     "SEND\n\\:v\n\n", "SEND\nk:\\ \n\n",
        "SEND\nk:\\0\n\n", "SEND\nk:ok\\\\\\\n\n",
    };
    for (size_t v = 1; v < NVERSIONS; v++) {
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            char text[64];
            size_t n = strlen(bad[i]);
            memcpy(text, bad[i], n);
            text[n] = '\0';
            assert_int_equal(parse_bytes(versions[v], text, n + 1), HR_STOMP_ERR_SYNTAX);
            assert_string_equal(err, "invalid escape sequence in header");
        }
    }
}

static void test_stomp_parse_10_keeps_backslashes(void **state)
{
    (void)state;
    EXPECT_FRAME(HR_STOMP_10, "SEND\nk\\c:a\\nb\\cc\\\\d\\t\\r\\\n\n\0", HR_STOMP_SEND);
    assert_header(0, "k\\c", "a\\nb\\cc\\\\d\\t\\r\\");
    assert_ptr_equal(frame.headers[0].value.ptr, input + 9);
}

static void test_stomp_parse_connect_frames_never_unescaped(void **state)
{
    (void)state;
    static const char *const cmds[] = {"CONNECT", "STOMP", "CONNECTED"};
    for (size_t v = 0; v < NVERSIONS; v++) {
        for (size_t c = 0; c < 3; c++) {
            char text[128];
            int n = snprintf(text, sizeof text, "%s\nlogin:a\\nb\npasscode:p\\c\\\\:q\\t\\\n\n",
                             cmds[c]);
            assert_int_equal(parse_bytes(versions[v], text, (size_t)n + 1), HR_STOMP_FRAME);
            assert_header(0, "login", "a\\nb");
            assert_header(1, "passcode", "p\\c\\\\:q\\t\\");
        }
    }
    /* The same header in a SEND is unescaped (and \t refused). */
    EXPECT_FRAME(HR_STOMP_12, "SEND\nlogin:a\\nb\n\n\0", HR_STOMP_SEND);
    assert_header(0, "login", "a\nb");
}

static void test_stomp_parse_crlf_lines_every_version(void **state)
{
    (void)state;
    for (size_t i = 0; i < NVERSIONS; i++) {
        EXPECT_FRAME(versions[i], "SEND\r\na:1\r\nb:2\n\r\nbody\0", HR_STOMP_SEND);
        ASSERT_SLICE(frame.cmd_text, "SEND");
        assert_int_equal(frame.nheaders, 2);
        assert_header(0, "a", "1");
        assert_header(1, "b", "2");
        ASSERT_SLICE(frame.body, "body");
        EXPECT_FRAME(versions[i], "CONNECT\r\naccept-version:1.2\r\nhost:h\r\n\r\n\0",
                     HR_STOMP_CONNECT);
        assert_header(0, "accept-version", "1.2");
        assert_header(1, "host", "h");
    }
}

static void test_stomp_parse_lone_cr(void **state)
{
    (void)state;
    /* 1.0 and 1.1 keep a CR that does not end a line; 1.2 escapes CR, so refuses it. */
    for (size_t i = 0; i < 2; i++) {
        EXPECT_FRAME(versions[i], "SEND\na:x\ry\nb\r:z\r\r\n\n\0", HR_STOMP_SEND);
        assert_header(0, "a", "x\ry");
        assert_header(1, "b\r", "z\r");
    }
    EXPECT_SYNTAX(HR_STOMP_12, "SEND\na:x\ry\n\n\0", "carriage return in header");
    EXPECT_SYNTAX(HR_STOMP_12, "SEND\na:x\r\r\n\n\0", "carriage return in header");
    EXPECT_SYNTAX(HR_STOMP_12, "SEND\n\r:x\n\n\0", "carriage return in header");
    EXPECT_SYNTAX(HR_STOMP_12, "CONNECT\npasscode:a\rb\n\n\0", "carriage return in header");
    /* "\r\r\n" is a header line holding a CR, not a blank line. */
    EXPECT_SYNTAX(HR_STOMP_11, "SEND\n\r\r\n\0", "header line without ':'");
}

/* ------------------------------------------------------------------------------------
 * Bodies and content-length
 * ---------------------------------------------------------------------------------- */

static void test_stomp_parse_content_length_body_with_nuls(void **state)
{
    (void)state;
    for (size_t i = 0; i < NVERSIONS; i++) {
        EXPECT_FRAME(versions[i], "SEND\ncontent-length:5\n\na\0b\0c\0", HR_STOMP_SEND);
        assert_true(frame.has_content_length);
        ASSERT_SLICE(frame.body, "a\0b\0c");
        assert_header(0, "content-length", "5");
    }
    EXPECT_FRAME(HR_STOMP_12, "SEND\ncontent-length:0\n\n\0", HR_STOMP_SEND);
    assert_true(frame.has_content_length);
    assert_int_equal(frame.body.len, 0);
    /* Leading zeros are still decimal digits. */
    EXPECT_FRAME(HR_STOMP_12, "SEND\ncontent-length:0003\n\n\0\0\0\0", HR_STOMP_SEND);
    ASSERT_SLICE(frame.body, "\0\0\0");
    /* The frame ends at its NUL, not at the first NUL of the body. */
    assert_int_equal(PARSE(HR_STOMP_12, "SEND\ncontent-length:2\n\n\0\0\0MESSAGE\n\n\0"),
                     HR_STOMP_FRAME);
    assert_int_equal(used, 26);
}

static void test_stomp_parse_body_without_content_length(void **state)
{
    (void)state;
    EXPECT_FRAME(HR_STOMP_12, "SEND\n\nhello\nworld\r\n\0", HR_STOMP_SEND);
    ASSERT_SLICE(frame.body, "hello\nworld\r\n");
    assert_false(frame.has_content_length);
    EXPECT_FRAME(HR_STOMP_12, "SEND\n\n\0", HR_STOMP_SEND);
    assert_int_equal(frame.body.len, 0);
    /* Ends at the first NUL. */
    assert_int_equal(PARSE(HR_STOMP_12, "SEND\n\nab\0cd\0"), HR_STOMP_FRAME);
    ASSERT_SLICE(frame.body, "ab");
    assert_int_equal(used, 9);
}

static void test_stomp_parse_first_content_length_wins(void **state)
{
    (void)state;
    EXPECT_FRAME(HR_STOMP_12, "SEND\ncontent-length:1\ncontent-length:junk\n\n\0\0", HR_STOMP_SEND);
    ASSERT_SLICE(frame.body, "\0");
    assert_int_equal(frame.nheaders, 2);
    /* The name must match exactly. */
    EXPECT_FRAME(HR_STOMP_12, "SEND\nContent-Length:x\ncontent-length :y\n\nab\0", HR_STOMP_SEND);
    assert_false(frame.has_content_length);
    ASSERT_SLICE(frame.body, "ab");
    /* Names are compared unescaped: this one is "content-length\\". */
    EXPECT_FRAME(HR_STOMP_11, "SEND\ncontent-length\\\\:x\n\nab\0", HR_STOMP_SEND);
    assert_false(frame.has_content_length);
}

static void test_stomp_parse_bad_content_length(void **state)
{
    (void)state;
    static const char *const bad[] = {"",    "-1",  "+1",  " 1",  "1 ",  "0x10", "1a",
                                      "1.0", "1e3", "\t1", "1,0", "one", "１"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[64];
        int n = snprintf(text, sizeof text, "SEND\ncontent-length:%s\n\n", bad[i]);
        assert_int_equal(parse_bytes(HR_STOMP_10, text, (size_t)n + 1), HR_STOMP_ERR_SYNTAX);
        assert_string_equal(err, "invalid content-length");
    }
    /* Past size_t: too large, not malformed. */
    EXPECT_TOO_LARGE(HR_STOMP_12, "SEND\ncontent-length:99999999999999999999999999\n\n\0",
                     "body too large");
    EXPECT_TOO_LARGE(HR_STOMP_12, "SEND\ncontent-length:18446744073709551616\n\n\0",
                     "body too large");
    /* ... unless a non-digit follows. */
    EXPECT_SYNTAX(HR_STOMP_12, "SEND\ncontent-length:99999999999999999999999999x\n\n\0",
                  "invalid content-length");
}

static void test_stomp_parse_missing_nul_after_body(void **state)
{
    (void)state;
    EXPECT_SYNTAX(HR_STOMP_12, "SEND\ncontent-length:2\n\nabc\0", "missing NUL after body");
    EXPECT_SYNTAX(HR_STOMP_12, "SEND\ncontent-length:0\n\n\n", "missing NUL after body");
    EXPECT_SYNTAX(HR_STOMP_12, "SEND\ncontent-length:2\n\nab\n\0", "missing NUL after body");
}

/* ------------------------------------------------------------------------------------
 * Incomplete frames, heart-beats, several frames
 * ---------------------------------------------------------------------------------- */

static void test_stomp_parse_every_prefix_needs_more(void **state)
{
    (void)state;
    static const char f1[] = "SEND\r\ndestination:/q\\c1\ncontent-length:3\r\n\r\na\0b\0";
    static const char f2[] = "MESSAGE\nx:y\n\nbody\0";
    const char *fs[] = {f1, f2};
    size_t ns[] = {sizeof f1 - 1, sizeof f2 - 1};
    for (size_t k = 0; k < 2; k++) {
        for (size_t n = 0; n < ns[k]; n++) {
            assert_int_equal(parse_bytes(HR_STOMP_12, fs[k], n), HR_STOMP_NEED_MORE);
            assert_int_equal(used, 0);
            assert_null(err);
        }
        assert_int_equal(parse_bytes(HR_STOMP_12, fs[k], ns[k]), HR_STOMP_FRAME);
        assert_int_equal(used, ns[k]);
    }
}

static void test_stomp_parse_need_hint(void **state)
{
    (void)state;
    static const char f[] = "SEND\ncontent-length:10\n\n0123456789\0";
    size_t body_at = 24, total = sizeof f - 1;
    for (size_t n = 0; n < total; n++) {
        assert_int_equal(parse_bytes(HR_STOMP_12, f, n), HR_STOMP_NEED_MORE);
        /* Known once the blank line is in. */
        assert_int_equal(hint, n >= body_at ? total : 0);
    }
    assert_int_equal(parse_bytes(HR_STOMP_12, f, total), HR_STOMP_FRAME);
    assert_int_equal(hint, 0);
    /* No content-length: unknown. */
    assert_int_equal(PARSE(HR_STOMP_12, "SEND\n\nabc"), HR_STOMP_NEED_MORE);
    assert_int_equal(hint, 0);
    /* Not set on a heart-beat either (the caller calls again with the rest). */
    assert_int_equal(PARSE(HR_STOMP_12, "\nSEND\ncontent-length:5\n\nab"), HR_STOMP_HEARTBEAT);
    assert_int_equal(used, 1);
    assert_int_equal(hint, 0);
    assert_int_equal(parse_bytes(HR_STOMP_12, input + 1, 25), HR_STOMP_NEED_MORE);
    assert_int_equal(hint, 29);
    /* Huge content-length within max_body: the hint saturates. */
    lim.max_body = SIZE_MAX;
    assert_int_equal(PARSE(HR_STOMP_12, "SEND\ncontent-length:18446744073709551615\n\n"),
                     HR_STOMP_NEED_MORE);
    assert_int_equal(hint, SIZE_MAX);
}

static void test_stomp_parse_heartbeats(void **state)
{
    (void)state;
    assert_int_equal(PARSE(HR_STOMP_12, ""), HR_STOMP_NEED_MORE);
    assert_int_equal(used, 0);
    assert_int_equal(PARSE(HR_STOMP_12, "\n"), HR_STOMP_HEARTBEAT);
    assert_int_equal(used, 1);
    assert_int_equal(PARSE(HR_STOMP_12, "\r\n\n\r\n"), HR_STOMP_HEARTBEAT);
    assert_int_equal(used, 5);
    /* A CR at the end may be half of a CRLF: not consumed yet. */
    assert_int_equal(PARSE(HR_STOMP_12, "\r"), HR_STOMP_NEED_MORE);
    assert_int_equal(used, 0);
    assert_int_equal(PARSE(HR_STOMP_12, "\n\r"), HR_STOMP_HEARTBEAT);
    assert_int_equal(used, 1);
    /* EOLs, then an incomplete frame: the EOLs are reported, the rest is kept. */
    assert_int_equal(PARSE(HR_STOMP_12, "\n\r\nSEND\n"), HR_STOMP_HEARTBEAT);
    assert_int_equal(used, 3);
    /* EOLs, then a complete frame: one FRAME covers both. */
    assert_int_equal(PARSE(HR_STOMP_11, "\n\r\n\nSEND\n\nx\0\n\n"), HR_STOMP_FRAME);
    assert_int_equal(used, 12);
    ASSERT_SLICE(frame.body, "x");
    /* EOLs, then an error: the error. */
    assert_int_equal(PARSE(HR_STOMP_12, "\n\nBAD\n"), HR_STOMP_ERR_SYNTAX);
    assert_int_equal(used, 0);
}

static void test_stomp_parse_trailing_eols_are_not_consumed(void **state)
{
    (void)state;
    assert_int_equal(PARSE(HR_STOMP_12, "SEND\n\nx\0\r\n\n"), HR_STOMP_FRAME);
    assert_int_equal(used, 8);
    assert_int_equal(parse_bytes(HR_STOMP_12, input + used, 3), HR_STOMP_HEARTBEAT);
    assert_int_equal(used, 3);
}

static void test_stomp_parse_frames_back_to_back(void **state)
{
    (void)state;
    static const char in[] = "CONNECT\naccept-version:1.2\nhost:h\n\n\0"
                             "\n"
                             "SEND\ndestination:/q\ncontent-length:2\n\n\0\0\0"
                             "\r\n\r\n"
                             "SUBSCRIBE\nid:0\ndestination:/t\\c1\n\n\0"
                             "DISCONNECT\nreceipt:7\n\n\0"
                             "\n";
    static const hr_stomp_cmd_t want[] = {HR_STOMP_CONNECT, HR_STOMP_SEND, HR_STOMP_SUBSCRIBE,
                                          HR_STOMP_DISCONNECT};
    uint8_t *copy = malloc(sizeof in - 1);
    assert_non_null(copy);
    memcpy(copy, in, sizeof in - 1);
    size_t at = 0, nframes = 0, nbeats = 0;
    for (;;) {
        hr_stomp_result_t r = hr_stomp_parse(copy + at, sizeof in - 1 - at, HR_STOMP_12, &lim,
                                             &frame, &scratch, &used, &hint, &err);
        if (r == HR_STOMP_NEED_MORE)
            break;
        if (r == HR_STOMP_HEARTBEAT) {
            nbeats++;
        } else {
            assert_int_equal(r, HR_STOMP_FRAME);
            assert_true(nframes < 4);
            assert_int_equal(frame.cmd, want[nframes]);
            if (frame.cmd == HR_STOMP_SEND)
                ASSERT_SLICE(frame.body, "\0\0");
            if (frame.cmd == HR_STOMP_SUBSCRIBE)
                assert_header(1, "destination", "/t:1");
            nframes++;
        }
        at += used;
    }
    assert_int_equal(nframes, 4);
    assert_int_equal(nbeats, 1); /* the last "\n" */
    assert_int_equal(at, sizeof in - 1);
    free(copy);
}

/* ------------------------------------------------------------------------------------
 * Split independence: a caller that keeps unconsumed bytes, fed through feed_chunks,
 * must see the same frames and the same final error as one parse of the whole input.
 * ---------------------------------------------------------------------------------- */

typedef struct caller {
    hr_stomp_version_t v;
    hr_stomp_limits_t lim;
    hr_buf_t pending; /* bytes not consumed yet */
    hr_buf_t scratch;
    hr_buf_t log;    /* one line per frame (digest), then the final error, if any */
    size_t wait_for; /* need_hint of the last NEED_MORE: do not parse before that many */
    bool stopped;    /* an error ended the stream */
    hr_stomp_frame_t frame;
    const hr_buf_t *want;
} caller_t;

static void digest(hr_buf_t *log, const hr_stomp_frame_t *f)
{
    assert_int_equal(hr_buf_appendf(log, "%s %zu", hr_stomp_cmd_name(f->cmd), f->nheaders), 0);
    for (size_t i = 0; i < f->nheaders; i++) {
        const hr_stomp_header_t *h = &f->headers[i];
        assert_int_equal(hr_buf_appendf(log, " %zu:", h->name.len), 0);
        assert_int_equal(hr_buf_append(log, h->name.ptr, h->name.len), 0);
        assert_int_equal(hr_buf_appendf(log, "=%zu:", h->value.len), 0);
        assert_int_equal(hr_buf_append(log, h->value.ptr, h->value.len), 0);
    }
    assert_int_equal(hr_buf_appendf(log, " cl=%d %zu:", f->has_content_length, f->body.len), 0);
    assert_int_equal(hr_buf_append(log, f->body.ptr, f->body.len), 0);
    assert_int_equal(hr_buf_append(log, "\n", 1), 0);
}

static void caller_reset(void *ctx)
{
    caller_t *c = ctx;
    c->pending.len = 0;
    c->log.len = 0;
    c->wait_for = 0;
    c->stopped = false;
}

static void caller_feed(void *ctx, const uint8_t *chunk, size_t len)
{
    caller_t *c = ctx;
    if (c->stopped)
        return;
    assert_int_equal(hr_buf_append(&c->pending, chunk, len), 0);
    while (!c->stopped && c->pending.len >= c->wait_for) {
        size_t n = c->pending.len, u, h;
        const char *e;
        uint8_t *copy = malloc(n ? n : 1);
        assert_non_null(copy);
        if (n)
            memcpy(copy, c->pending.data, n);
        hr_stomp_result_t r =
            hr_stomp_parse(copy, n, c->v, &c->lim, &c->frame, &c->scratch, &u, &h, &e);
        c->wait_for = 0;
        if (r == HR_STOMP_FRAME) {
            digest(&c->log, &c->frame);
        } else if (r == HR_STOMP_HEARTBEAT) {
            assert_true(u > 0);
            for (size_t i = 0; i < u; i++)
                assert_true(copy[i] == '\n' || copy[i] == '\r');
        } else if (r == HR_STOMP_NEED_MORE) {
            assert_int_equal(u, 0);
            assert_true(h == 0 || h > n);
            c->wait_for = h;
        } else {
            assert_int_equal(hr_buf_appendf(&c->log, "error %d %s\n", r, e), 0);
            c->stopped = true;
        }
        free(copy);
        if (r == HR_STOMP_NEED_MORE)
            break;
        hr_buf_consume(&c->pending, u);
    }
}

static void caller_check(void *ctx)
{
    caller_t *c = ctx;
    if (c->log.len != c->want->len || memcmp(c->log.data, c->want->data, c->log.len) != 0)
        fail_msg("split parse gave\n%.*s\nwhole parse gave\n%.*s", (int)c->log.len,
                 (const char *)c->log.data, (int)c->want->len, (const char *)c->want->data);
}

static void caller_deinit(caller_t *c)
{
    hr_buf_deinit(&c->pending);
    hr_buf_deinit(&c->scratch);
    hr_buf_deinit(&c->log);
}

/* Runs in whole and in every split; returns the whole-input log in *want (caller frees). */
static void expect_split_independent(hr_stomp_version_t v, const hr_stomp_limits_t *l,
                                     const void *in, size_t n, hr_buf_t *want)
{
    caller_t *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->v = v;
    c->lim = *l;
    caller_reset(c);
    caller_feed(c, in, n);
    hr_buf_init(want);
    assert_int_equal(hr_buf_append(want, c->log.data, c->log.len), 0);
    c->want = want;
    feed_chunks(c, in, n, caller_reset, caller_feed, caller_check);
    caller_deinit(c);
    free(c);
}

/* Frames in a caller's log: each has one " cl=" (bodies and values here hold none). */
static size_t count_frames(const hr_buf_t *b)
{
    size_t n = 0;
    for (const uint8_t *p = b->data, *e = b->data + b->len;
         (p = memmem(p, (size_t)(e - p), " cl=", 4)) != NULL; p += 4)
        n++;
    return n;
}

static void test_stomp_parse_every_split_point(void **state)
{
    (void)state;
    static const char in[] = "\r\n"
                             "CONNECT\r\naccept-version:1.1,1.2\r\nhost:a\\b\r\n\r\n\0"
                             "\n\n"
                             "SEND\ndestination:/q\\c1\\n\\\\\ncontent-length:4\n\na\0\r\n\0"
                             "SEND\nx:y\nx:z\n\nno length\r\n\0\r\n"
                             "MESSAGE\r\nk\\cey:v\\cal\r\n\r\n\0"
                             "ACK\nid:1\n\n\0\n";
    for (size_t i = 1; i < NVERSIONS; i++) {
        hr_buf_t want;
        expect_split_independent(versions[i], &lim, in, sizeof in - 1, &want);
        assert_int_equal(count_frames(&want), 5);
        assert_null(memmem(want.data, want.len, "error", 5));
        hr_buf_deinit(&want);
    }
    /* In 1.0 the same bytes are frames too, with the backslashes kept. */
    hr_buf_t want;
    expect_split_independent(HR_STOMP_10, &lim, in, sizeof in - 1, &want);
    assert_int_equal(count_frames(&want), 5);
    assert_non_null(memmem(want.data, want.len, "/q\\c1\\n\\\\", 9));
    hr_buf_deinit(&want);
}

static void test_stomp_parse_errors_do_not_depend_on_split(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        size_t len;
        const char *err;
    } cases[] = {
#define C(lit, e) {lit, sizeof(lit) - 1, e}
        C("SEND\n\nok\0BAD\n\n\0", "error 3 unknown command"),
        C("SEND\n\nok\0\nSEND\nk:\\t\n\n\0", "error 3 invalid escape sequence in header"),
        C("SEND\ncontent-length:1\n\nab\0", "error 3 missing NUL after body"),
        C("SEND\na\0:b\n\n\0", "error 3 NUL in frame headers"),
        C("SEND\na:1\nb:2\nc:3\nd:4\n\n\0", "error 4 too many headers"),
        C("SEND\nlong:0123456789012345678901234567890123456789\n\n\0", "error 4 headers too large"),
        C("SEND\n\n0123456789abcdefX\0", "error 4 body too large"),
        C("SEND\ncontent-length:17\n\n", "error 4 body too large"),
        C("SEND\na:b\r\nnocolon\r\n", "error 3 header line without ':'"),
#undef C
    };
    hr_stomp_limits_t l = {.max_headers = 3, .max_header_bytes = 40, .max_body = 16};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hr_buf_t want;
        expect_split_independent(HR_STOMP_12, &l, cases[i].in, cases[i].len, &want);
        /* The log ends with the error line. */
        size_t elen = strlen(cases[i].err);
        if (want.len < elen + 1 || memcmp(want.data + want.len - elen - 1, cases[i].err, elen) != 0)
            fail_msg("case %zu: got %.*s", i, (int)want.len, (const char *)want.data);
        hr_buf_deinit(&want);
    }
}

/* ------------------------------------------------------------------------------------
 * Limits
 * ---------------------------------------------------------------------------------- */

static void test_stomp_parse_limit_max_headers(void **state)
{
    (void)state;
    lim.max_headers = 3;
    EXPECT_FRAME(HR_STOMP_12, "SEND\na:1\nb:2\nc:3\n\n\0", HR_STOMP_SEND);
    EXPECT_TOO_LARGE(HR_STOMP_12, "SEND\na:1\nb:2\nc:3\nd:4\n\n\0", "too many headers");
    /* Known as soon as the fourth line is complete, before the frame is. */
    EXPECT_TOO_LARGE(HR_STOMP_12, "SEND\na:1\nb:2\nc:3\nd:4\n", "too many headers");
    assert_int_equal(PARSE(HR_STOMP_12, "SEND\na:1\nb:2\nc:3\nd:4"), HR_STOMP_NEED_MORE);
    lim.max_headers = 0;
    EXPECT_FRAME(HR_STOMP_12, "DISCONNECT\n\n\0", HR_STOMP_DISCONNECT);
    EXPECT_TOO_LARGE(HR_STOMP_12, "DISCONNECT\nreceipt:1\n", "too many headers");
}

static void test_stomp_parse_max_headers_capped(void **state)
{
    (void)state;
    lim.max_headers = SIZE_MAX;
    lim.max_header_bytes = SIZE_MAX;
    hr_buf_t b;
    hr_buf_init(&b);
    assert_int_equal(hr_buf_append_str(&b, "SEND\n"), 0);
    for (int i = 0; i < HR_STOMP_MAX_HEADERS_CAP; i++)
        assert_int_equal(hr_buf_appendf(&b, "h%d:v\\c%d\n", i, i), 0);
    size_t at_cap = b.len;
    assert_int_equal(hr_buf_append(&b, "\n\0", 2), 0);
    assert_int_equal(parse_bytes(HR_STOMP_12, b.data, b.len), HR_STOMP_FRAME);
    assert_int_equal(frame.nheaders, HR_STOMP_MAX_HEADERS_CAP);
    assert_header(HR_STOMP_MAX_HEADERS_CAP - 1, "h255", "v:255");
    b.len = at_cap;
    assert_int_equal(hr_buf_append_str(&b, "one:more\n\n"), 0);
    assert_int_equal(hr_buf_append(&b, "", 1), 0);
    assert_int_equal(parse_bytes(HR_STOMP_12, b.data, b.len), HR_STOMP_ERR_TOO_LARGE);
    assert_string_equal(err, "too many headers");
    hr_buf_deinit(&b);
}

static void test_stomp_parse_limit_header_bytes(void **state)
{
    (void)state;
    /* "SEND\r\n" + "a:12345\n" + "\r\n" = 16 bytes; heart-beats before do not count. */
    lim.max_header_bytes = 16;
    EXPECT_FRAME(HR_STOMP_12, "\n\n\nSEND\r\na:12345\n\r\nbody\0", HR_STOMP_SEND);
    lim.max_header_bytes = 15;
    EXPECT_TOO_LARGE(HR_STOMP_12, "SEND\r\na:12345\n\r\nbody\0", "headers too large");
    /* As soon as the bytes at hand pass the limit without the blank line. */
    EXPECT_TOO_LARGE(HR_STOMP_12, "SEND\r\na:12345\n\r", "headers too large");
    assert_int_equal(PARSE(HR_STOMP_12, "SEND\r\na:12345\n"), HR_STOMP_NEED_MORE);
    /* A command line that never ends. */
    lim.max_header_bytes = 64;
    char big[200];
    memset(big, 'A', sizeof big);
    assert_int_equal(parse_bytes(HR_STOMP_12, big, 64), HR_STOMP_ERR_TOO_LARGE);
    assert_string_equal(err, "headers too large");
    assert_int_equal(parse_bytes(HR_STOMP_12, big, 63), HR_STOMP_NEED_MORE);
    /* The raw (escaped) bytes count, not the unescaped ones. */
    lim.max_header_bytes = 13;
    EXPECT_FRAME(HR_STOMP_12, "SEND\na:\\c\\c\n\n\0", HR_STOMP_SEND);
    lim.max_header_bytes = 12;
    EXPECT_TOO_LARGE(HR_STOMP_12, "SEND\na:\\c\\c\n\n\0", "headers too large");
    lim.max_header_bytes = 0;
    EXPECT_TOO_LARGE(HR_STOMP_12, "S", "headers too large");
    assert_int_equal(PARSE(HR_STOMP_12, "\n"), HR_STOMP_HEARTBEAT);
}

static void test_stomp_parse_limit_body_with_content_length(void **state)
{
    (void)state;
    lim.max_body = 4;
    EXPECT_FRAME(HR_STOMP_12, "SEND\ncontent-length:4\n\nab\0d\0", HR_STOMP_SEND);
    /* Refused from the header alone, before any body byte arrives. */
    EXPECT_TOO_LARGE(HR_STOMP_12, "SEND\ncontent-length:5\n", "body too large");
    EXPECT_TOO_LARGE(HR_STOMP_12, "SEND\ncontent-length:5\n\nabcde\0", "body too large");
    lim.max_body = 0;
    EXPECT_FRAME(HR_STOMP_12, "SEND\ncontent-length:0\n\n\0", HR_STOMP_SEND);
    EXPECT_TOO_LARGE(HR_STOMP_12, "SEND\ncontent-length:1\n", "body too large");
}

static void test_stomp_parse_limit_body_without_content_length(void **state)
{
    (void)state;
    lim.max_body = 4;
    EXPECT_FRAME(HR_STOMP_12, "SEND\n\nabcd\0", HR_STOMP_SEND);
    assert_int_equal(PARSE(HR_STOMP_12, "SEND\n\nabcd"), HR_STOMP_NEED_MORE);
    /* max_body + 1 bytes and no NUL yet: known to be too large without waiting. */
    EXPECT_TOO_LARGE(HR_STOMP_12, "SEND\n\nabcde", "body too large");
    EXPECT_TOO_LARGE(HR_STOMP_12, "SEND\n\nabcde\0", "body too large");
    lim.max_body = 0;
    EXPECT_FRAME(HR_STOMP_12, "SEND\n\n\0", HR_STOMP_SEND);
    EXPECT_TOO_LARGE(HR_STOMP_12, "SEND\n\na", "body too large");
}

/* ------------------------------------------------------------------------------------
 * Scratch
 * ---------------------------------------------------------------------------------- */

static void test_stomp_parse_scratch_slices_stay_valid(void **state)
{
    (void)state;
    /* Many escaped values, scratch starting empty: the first escape reserves room for
     * all, so no later append moves the earlier ones (ASan would see it). */
    hr_buf_t b;
    hr_buf_init(&b);
    assert_int_equal(hr_buf_append_str(&b, "MESSAGE\n"), 0);
    for (int i = 0; i < 60; i++)
        assert_int_equal(hr_buf_appendf(&b, "k\\c%d:%0*d\\n\\\\\n", i, 40 + i, i), 0);
    assert_int_equal(hr_buf_append(&b, "\n\0", 2), 0);
    hr_buf_deinit(&scratch);
    assert_int_equal(parse_bytes(HR_STOMP_12, b.data, b.len), HR_STOMP_FRAME);
    uint8_t *at = scratch.data;
    assert_int_equal(frame.nheaders, 60);
    for (int i = 0; i < 60; i++) {
        char name[16], value[128];
        snprintf(name, sizeof name, "k:%d", i);
        snprintf(value, sizeof value, "%0*d\n\\", 40 + i, i);
        assert_header((size_t)i, name, value);
    }
    /* Reused for the next frame, without allocating again. */
    hr_alloc_fail_at(0);
    assert_int_equal(parse_bytes(HR_STOMP_12, b.data, b.len), HR_STOMP_FRAME);
    assert_int_equal(hr_alloc_count(), 0);
    assert_ptr_equal(scratch.data, at);
    hr_buf_deinit(&b);
}

static void test_stomp_parse_allocates_only_for_escapes(void **state)
{
    (void)state;
    hr_buf_deinit(&scratch);
    hr_alloc_fail_at(0);
    EXPECT_FRAME(HR_STOMP_12, "SEND\ndestination:/q\n\nx\0", HR_STOMP_SEND);
    EXPECT_FRAME(HR_STOMP_12, "CONNECT\nlogin:a\\c\n\n\0", HR_STOMP_CONNECT);
    EXPECT_FRAME(HR_STOMP_10, "SEND\ndestination:a\\c\n\n\0", HR_STOMP_SEND);
    assert_int_equal(hr_alloc_count(), 0);
    assert_null(scratch.data);
    /* When scratch cannot grow: a clean error, nothing half-parsed. */
    hr_alloc_fail_at(1);
    EXPECT_TOO_LARGE(HR_STOMP_12, "SEND\ndestination:a\\cb\n\n\0", "out of memory");
    hr_alloc_fail_at(0);
    EXPECT_FRAME(HR_STOMP_12, "SEND\ndestination:a\\cb\n\n\0", HR_STOMP_SEND);
    assert_header(0, "destination", "a:b");
}

/* ------------------------------------------------------------------------------------
 * Encoding
 * ---------------------------------------------------------------------------------- */

static void assert_buf_str(const hr_buf_t *b, const char *want, size_t n)
{
    if (b->len != n || memcmp(b->data, want, n) != 0)
        fail_msg("got [%.*s] want [%.*s]", (int)b->len, (const char *)b->data, (int)n, want);
}
#define ASSERT_BUF(b, lit) assert_buf_str(b, lit, sizeof(lit) - 1)

static void test_stomp_escape_per_version(void **state)
{
    (void)state;
    static const char raw[] = "a\\b\nc:d\re";
    hr_buf_t b;
    hr_buf_init(&b);
    assert_int_equal(hr_stomp_escape(&b, HR_STOMP_10, HR_STOMP_MESSAGE, raw, 9), 0);
    ASSERT_BUF(&b, "a\\b\nc:d\re");
    b.len = 0;
    assert_int_equal(hr_stomp_escape(&b, HR_STOMP_11, HR_STOMP_MESSAGE, raw, 9), 0);
    ASSERT_BUF(&b, "a\\\\b\\nc\\cd\re");
    b.len = 0;
    assert_int_equal(hr_stomp_escape(&b, HR_STOMP_12, HR_STOMP_MESSAGE, raw, 9), 0);
    ASSERT_BUF(&b, "a\\\\b\\nc\\cd\\re");
    for (size_t v = 0; v < NVERSIONS; v++) {
        hr_stomp_cmd_t never[] = {HR_STOMP_CONNECT, HR_STOMP_STOMP, HR_STOMP_CONNECTED};
        for (size_t c = 0; c < 3; c++) {
            b.len = 0;
            assert_int_equal(hr_stomp_escape(&b, versions[v], never[c], raw, 9), 0);
            ASSERT_BUF(&b, "a\\b\nc:d\re");
        }
    }
    /* Appends; nothing to escape; empty. */
    b.len = 0;
    assert_int_equal(hr_stomp_escape(&b, HR_STOMP_12, HR_STOMP_SEND, "xy", 2), 0);
    assert_int_equal(hr_stomp_escape(&b, HR_STOMP_12, HR_STOMP_SEND, ":", 1), 0);
    assert_int_equal(hr_stomp_escape(&b, HR_STOMP_12, HR_STOMP_SEND, NULL, 0), 0);
    ASSERT_BUF(&b, "xy\\c");
    hr_buf_deinit(&b);
}

static void test_stomp_encode_frame(void **state)
{
    (void)state;
    hr_stomp_header_t h[] = {{sl("destination"), sl("/q:1")}, {sl("a\nb"), sl("")}};
    hr_buf_t b;
    hr_buf_init(&b);
    assert_int_equal(hr_buf_append_str(&b, "prev"), 0);
    assert_int_equal(hr_stomp_encode(&b, HR_STOMP_12, HR_STOMP_MESSAGE, h, 2, "hi", 2, false), 0);
    ASSERT_BUF(&b, "prevMESSAGE\ndestination:/q\\c1\na\\nb:\n\nhi\0");
    b.len = 0;
    assert_int_equal(hr_stomp_encode(&b, HR_STOMP_10, HR_STOMP_RECEIPT, NULL, 0, NULL, 0, false),
                     0);
    ASSERT_BUF(&b, "RECEIPT\n\n\0");
    b.len = 0;
    hr_stomp_header_t v[] = {{sl("version"), sl("1.2")}, {sl("server"), sl("herald\\1")}};
    assert_int_equal(hr_stomp_encode(&b, HR_STOMP_12, HR_STOMP_CONNECTED, v, 2, NULL, 0, false), 0);
    ASSERT_BUF(&b, "CONNECTED\nversion:1.2\nserver:herald\\1\n\n\0");
    hr_buf_deinit(&b);
}

static void test_stomp_encode_content_length(void **state)
{
    (void)state;
    hr_stomp_header_t h[] = {{sl("content-length"), sl("999")}, {sl("k"), sl("v")}};
    hr_buf_t b;
    hr_buf_init(&b);
    /* A NUL in the body forces it. */
    assert_int_equal(hr_stomp_encode(&b, HR_STOMP_11, HR_STOMP_SEND, h + 1, 1, "a\0b", 3, false),
                     0);
    ASSERT_BUF(&b, "SEND\nk:v\ncontent-length:3\n\na\0b\0");
    /* with_length asks for it; the caller's own content-length is dropped. */
    b.len = 0;
    assert_int_equal(hr_stomp_encode(&b, HR_STOMP_12, HR_STOMP_MESSAGE, h, 2, "xyz", 3, true), 0);
    ASSERT_BUF(&b, "MESSAGE\nk:v\ncontent-length:3\n\nxyz\0");
    b.len = 0;
    assert_int_equal(hr_stomp_encode(&b, HR_STOMP_12, HR_STOMP_MESSAGE, h, 2, "xyz", 3, false), 0);
    ASSERT_BUF(&b, "MESSAGE\nk:v\n\nxyz\0");
    b.len = 0;
    assert_int_equal(hr_stomp_encode(&b, HR_STOMP_12, HR_STOMP_MESSAGE, NULL, 0, NULL, 0, true), 0);
    ASSERT_BUF(&b, "MESSAGE\ncontent-length:0\n\n\0");
    /* And it parses back with the NULs. */
    b.len = 0;
    assert_int_equal(hr_stomp_encode(&b, HR_STOMP_12, HR_STOMP_SEND, NULL, 0, "\0\0", 2, false), 0);
    assert_int_equal(parse_bytes(HR_STOMP_12, b.data, b.len), HR_STOMP_FRAME);
    assert_true(frame.has_content_length);
    ASSERT_SLICE(frame.body, "\0\0");
    hr_buf_deinit(&b);
}

static void test_stomp_encode_allocation_failure_restores_len(void **state)
{
    (void)state;
    hr_stomp_header_t h[] = {{sl("k"), sl("a:b")}};
    char body[600];
    memset(body, 'x', sizeof body);
    for (long nth = 1; nth < 10; nth++) {
        hr_buf_t b;
        hr_buf_init(&b);
        assert_int_equal(hr_buf_append_str(&b, "keep"), 0);
        hr_alloc_fail_at(nth);
        int rc = hr_stomp_encode(&b, HR_STOMP_12, HR_STOMP_MESSAGE, h, 1, body, sizeof body, true);
        long made = hr_alloc_count();
        hr_alloc_fail_at(0);
        if (rc == 0) {
            assert_true(made < nth);
            hr_buf_deinit(&b);
            break;
        }
        assert_int_equal(rc, HR_ENOMEM);
        ASSERT_BUF(&b, "keep");
        hr_buf_deinit(&b);
    }
    hr_buf_t b;
    hr_buf_init(&b);
    hr_alloc_fail_at(1);
    assert_int_equal(hr_stomp_escape(&b, HR_STOMP_12, HR_STOMP_SEND, "a:b", 3), HR_ENOMEM);
    hr_alloc_fail_at(0);
    assert_int_equal(b.len, 0);
    hr_buf_deinit(&b);
}

/* xorshift64*: reproducible random inputs. */
static uint64_t rnd_state = 0x9E3779B97F4A7C15u;
static uint32_t rnd(void)
{
    rnd_state ^= rnd_state >> 12;
    rnd_state ^= rnd_state << 25;
    rnd_state ^= rnd_state >> 27;
    return (uint32_t)((rnd_state * 0x2545F4914F6CDD1Du) >> 32);
}

/* A random string over the bytes that this version and command can carry. */
static size_t rnd_text(char *dst, size_t max, bool escaped, hr_stomp_version_t v, bool is_name)
{
    static const char any[] = "aZ09 -\\:\n\r\t\x7f\xc3\xa9";
    static const char plain[] = "aZ09 -\\\t\x7f\xc3\xa9"; /* unescaped frames: no ':' CR LF */
    const char *set = escaped ? any : plain;
    size_t nset = strlen(set);
    size_t n = rnd() % (max + 1);
    if (is_name && n == 0)
        n = 1;
    for (size_t i = 0; i < n; i++) {
        dst[i] = set[rnd() % nset];
        if (!escaped && !is_name && rnd() % 8 == 0)
            dst[i] = ':'; /* values may hold ':' even where nothing is escaped */
    }
    /* 1.1 does not escape CR, so a value cannot end with one (it would read as CRLF). */
    if (!is_name && v == HR_STOMP_11 && n > 0 && dst[n - 1] == '\r')
        dst[n - 1] = 'r';
    return n;
}

static void test_stomp_encode_parse_round_trip_random(void **state)
{
    (void)state;
    static const hr_stomp_cmd_t cmds[] = {HR_STOMP_SEND,    HR_STOMP_MESSAGE,   HR_STOMP_ERROR,
                                          HR_STOMP_CONNECT, HR_STOMP_CONNECTED, HR_STOMP_STOMP};
    enum { NH = 12, MAXLEN = 24 };
    char names[NH][MAXLEN], values[NH][MAXLEN];
    uint8_t body[64];
    hr_stomp_header_t h[NH];
    hr_buf_t b;
    hr_buf_init(&b);
    lim.max_headers = HR_STOMP_MAX_HEADERS_CAP;
    for (int iter = 0; iter < 3000; iter++) {
        hr_stomp_version_t v = versions[iter % NVERSIONS];
        hr_stomp_cmd_t cmd = cmds[rnd() % (sizeof cmds / sizeof cmds[0])];
        bool escaped = v != HR_STOMP_10 && cmd != HR_STOMP_CONNECT && cmd != HR_STOMP_STOMP &&
                       cmd != HR_STOMP_CONNECTED;
        size_t nh = rnd() % (NH + 1);
        for (size_t i = 0; i < nh; i++) {
            size_t nl = rnd_text(names[i], MAXLEN, escaped, v, true);
            if (nl == 14 && memcmp(names[i], "content-length", 14) == 0)
                names[i][0] = 'C';
            h[i].name = hr_slice(names[i], nl);
            h[i].value = hr_slice(values[i], rnd_text(values[i], MAXLEN, escaped, v, false));
        }
        size_t blen = rnd() % (sizeof body + 1);
        bool nul = false;
        for (size_t i = 0; i < blen; i++) {
            body[i] = (uint8_t)rnd();
            nul |= body[i] == 0;
        }
        bool with_length = rnd() % 2;
        b.len = 0;
        assert_int_equal(hr_stomp_encode(&b, v, cmd, h, nh, body, blen, with_length), 0);
        hr_stomp_result_t r = parse_bytes(v, b.data, b.len);
        if (r != HR_STOMP_FRAME)
            fail_msg("iteration %d: %d %s", iter, r, err);
        assert_int_equal(used, b.len);
        assert_int_equal(frame.cmd, cmd);
        bool want_cl = with_length || nul;
        assert_int_equal(frame.has_content_length, want_cl);
        assert_int_equal(frame.nheaders, nh + want_cl);
        for (size_t i = 0; i < nh; i++) {
            assert_slice_eq(frame.headers[i].name, h[i].name.ptr, h[i].name.len);
            assert_slice_eq(frame.headers[i].value, h[i].value.ptr, h[i].value.len);
        }
        assert_slice_eq(frame.body, body, blen);
    }
    hr_buf_deinit(&b);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_stomp_limits_default),
        T(test_stomp_cmd_name_and_parse_every_command),
        T(test_stomp_parse_send_with_headers_and_body),
        T(test_stomp_parse_commands_are_case_sensitive),
        T(test_stomp_parse_header_get_first_wins),
        T(test_stomp_parse_header_split_at_first_colon_values_not_trimmed),
        T(test_stomp_parse_header_line_errors),
        T(test_stomp_parse_escapes_11),
        T(test_stomp_parse_escapes_12),
        T(test_stomp_parse_invalid_escapes),
        T(test_stomp_parse_10_keeps_backslashes),
        T(test_stomp_parse_connect_frames_never_unescaped),
        T(test_stomp_parse_crlf_lines_every_version),
        T(test_stomp_parse_lone_cr),
        T(test_stomp_parse_content_length_body_with_nuls),
        T(test_stomp_parse_body_without_content_length),
        T(test_stomp_parse_first_content_length_wins),
        T(test_stomp_parse_bad_content_length),
        T(test_stomp_parse_missing_nul_after_body),
        T(test_stomp_parse_every_prefix_needs_more),
        T(test_stomp_parse_need_hint),
        T(test_stomp_parse_heartbeats),
        T(test_stomp_parse_trailing_eols_are_not_consumed),
        T(test_stomp_parse_frames_back_to_back),
        T(test_stomp_parse_every_split_point),
        T(test_stomp_parse_errors_do_not_depend_on_split),
        T(test_stomp_parse_limit_max_headers),
        T(test_stomp_parse_max_headers_capped),
        T(test_stomp_parse_limit_header_bytes),
        T(test_stomp_parse_limit_body_with_content_length),
        T(test_stomp_parse_limit_body_without_content_length),
        T(test_stomp_parse_scratch_slices_stay_valid),
        T(test_stomp_parse_allocates_only_for_escapes),
        T(test_stomp_escape_per_version),
        T(test_stomp_encode_frame),
        T(test_stomp_encode_content_length),
        T(test_stomp_encode_allocation_failure_restores_len),
        T(test_stomp_encode_parse_round_trip_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
