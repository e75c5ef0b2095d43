/* Unit tests for logging (src/base/log.c): the three line formats, typed fields, escaping
 * of peer-controlled bytes (no line breaks, no forged fields, valid JSON even for invalid
 * UTF-8), the 4 KiB bound keeping lines well-formed, level filtering, one sink call per
 * line, and the redaction of secrets in request targets and headers. Lines are captured
 * with hr_log_set_sink; one test also checks the default path (stderr, one write). */
#include "test_util.h"

#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "herald/error.h"

typedef struct capture {
    char text[16384];
    size_t len;
    int lines;
} capture_t;

static capture_t cap;

static void sink(void *data, const char *line, size_t len)
{
    capture_t *c = data;
    assert_true(len > 0 && line[len - 1] == '\n');
    assert_null(memchr(line, '\n', len - 1)); /* one event, one line */
    assert_true(len <= 4096);
    assert_true(c->len + len < sizeof(c->text));
    memcpy(c->text + c->len, line, len);
    c->len += len;
    c->text[c->len] = 0;
    c->lines++;
}

static int setup(void **state)
{
    (void)state;
    memset(&cap, 0, sizeof(cap));
    hr_log_set_sink(sink, &cap);
    hr_log_set_level(HR_LOG_DEBUG);
    hr_log_set_format(HR_LOG_TEXT);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    hr_log_set_sink(NULL, NULL);
    hr_log_set_level(HR_LOG_INFO);
    hr_log_set_format(HR_LOG_TEXT);
    return 0;
}

/* The line without its timestamp prefix (text: after the first space; logfmt: after
 * "time=... "). */
static const char *after_time(void)
{
    const char *sp = strchr(cap.text, ' ');
    assert_non_null(sp);
    return sp + 1;
}

static void assert_timestamp(const char *t)
{
    /* 2026-11-26T20:00:00.123Z */
    assert_true(strlen(t) >= 24);
    for (int i = 0; i < 24; i++) {
        char c = t[i];
        switch (i) {
        case 4:
        case 7:
            assert_int_equal(c, '-');
            break;
        case 10:
            assert_int_equal(c, 'T');
            break;
        case 13:
        case 16:
            assert_int_equal(c, ':');
            break;
        case 19:
            assert_int_equal(c, '.');
            break;
        case 23:
            assert_int_equal(c, 'Z');
            break;
        default:
            assert_true(c >= '0' && c <= '9');
        }
    }
}

static json_t *parse_line(void)
{
    json_error_t err;
    json_t *j = json_loadb(cap.text, cap.len, 0, &err);
    if (!j)
        fail_msg("not JSON: %s (%s)", cap.text, err.text);
    assert_true(json_is_object(j));
    return j;
}

/* ---------------------------------------------------------------- formats */

static void test_log_set_format_name_accepts_the_three_names_only(void **state)
{
    (void)state;
    assert_int_equal(hr_log_set_format_name("json"), 0);
    assert_int_equal(hr_log_get_format(), HR_LOG_JSON);
    assert_int_equal(hr_log_set_format_name("logfmt"), 0);
    assert_int_equal(hr_log_get_format(), HR_LOG_LOGFMT);
    assert_int_equal(hr_log_set_format_name("text"), 0);
    assert_int_equal(hr_log_get_format(), HR_LOG_TEXT);
    assert_int_equal(hr_log_set_format_name("JSON"), HR_EINVAL);
    assert_int_equal(hr_log_set_format_name(""), HR_EINVAL);
    assert_int_equal(hr_log_get_format(), HR_LOG_TEXT);
}

static void test_log_text_is_time_level_message(void **state)
{
    (void)state;
    hr_log_info("herald %s: %d threads", "1.0", 4);
    assert_int_equal(cap.lines, 1);
    assert_timestamp(cap.text);
    assert_string_equal(after_time(), "info herald 1.0: 4 threads\n");
}

static void test_log_text_appends_fields_as_key_value(void **state)
{
    (void)state;
    hr_log_fields(HR_LOG_WARN,
                  HR_LOG_KV(hr_log_uint("conn", 4294967297ull), hr_log_str("path", "/ws"),
                            hr_log_int("status", -3), hr_log_str("reason", "origin not allowed"),
                            hr_log_bool("tls", false), hr_log_float("ms", 1.5)),
                  "handshake refused");
    assert_string_equal(after_time(), "warn handshake refused conn=4294967297 path=/ws status=-3 "
                                      "reason=\"origin not allowed\" tls=false ms=1.5\n");
}

static void test_log_logfmt_quotes_message_and_escapes(void **state)
{
    (void)state;
    hr_log_set_format(HR_LOG_LOGFMT);
    hr_log_fields(HR_LOG_INFO,
                  HR_LOG_KV(hr_log_uint("conn", 7), hr_log_str("client", "a=b"),
                            hr_log_str("empty", ""), hr_log_str("none", NULL)),
                  "message with \"quotes\" and \\");
    assert_memory_equal(cap.text, "time=", 5);
    assert_timestamp(cap.text + 5);
    assert_string_equal(after_time(),
                        "level=info msg=\"message with \\\"quotes\\\" and \\\\\" conn=7 "
                        "client=\"a=b\" empty=\"\" none=\"\"\n");
}

static void test_log_json_is_one_object_with_typed_members(void **state)
{
    (void)state;
    hr_log_set_format(HR_LOG_JSON);
    hr_log_fields(HR_LOG_ERROR,
                  HR_LOG_KV(hr_log_uint("conn", 4294967297ull), hr_log_int("status", 403),
                            hr_log_str("path", "/ws?x=\"1\""), hr_log_str("user", NULL),
                            hr_log_bool("tls", true), hr_log_float("latency", 0.25)),
                  "say \"hi\"\t\\ now");
    assert_int_equal(cap.lines, 1);
    assert_memory_equal(cap.text, "{\"time\":\"", 9);
    json_t *j = parse_line();
    assert_timestamp(json_string_value(json_object_get(j, "time")));
    assert_string_equal(json_string_value(json_object_get(j, "level")), "error");
    assert_string_equal(json_string_value(json_object_get(j, "msg")), "say \"hi\"\t\\ now");
    assert_true(json_is_integer(json_object_get(j, "status")));
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 403);
    assert_string_equal(json_string_value(json_object_get(j, "path")), "/ws?x=\"1\"");
    assert_true(json_is_null(json_object_get(j, "user")));
    assert_true(json_is_true(json_object_get(j, "tls")));
    assert_true(json_is_real(json_object_get(j, "latency")));
    assert_int_equal(json_integer_value(json_object_get(j, "conn")), 4294967297ll);
    json_decref(j);
}

static void test_log_json_non_finite_float_is_null(void **state)
{
    (void)state;
    hr_log_set_format(HR_LOG_JSON);
    hr_log_fields(HR_LOG_INFO, HR_LOG_KV(hr_log_float("x", INFINITY)), "m");
    json_t *j = parse_line();
    assert_true(json_is_null(json_object_get(j, "x")));
    json_decref(j);
}

/* ---------------------------------------------------------------- hostile bytes */

static void test_log_newlines_never_split_a_line(void **state)
{
    (void)state;
    const char evil[] = "a\nfake=1\r\n2026-01-01T00:00:00.000Z error forged";
    for (int f = 0; f < 3; f++) {
        memset(&cap, 0, sizeof(cap));
        hr_log_set_format((hr_log_format_t)f);
        hr_log_fields(HR_LOG_INFO, HR_LOG_KV(hr_log_str("path", evil)), "got %s", evil);
        assert_int_equal(cap.lines, 1); /* the sink asserts a single '\n' at the end */
        assert_non_null(strstr(cap.text, "a\\nfake=1\\r\\n2026"));
    }
}

static void test_log_logfmt_value_cannot_forge_a_field(void **state)
{
    (void)state;
    hr_log_set_format(HR_LOG_LOGFMT);
    hr_log_fields(HR_LOG_INFO, HR_LOG_KV(hr_log_str("path", "/x level=error")), "m");
    assert_non_null(strstr(cap.text, " path=\"/x level=error\"\n"));
    memset(&cap, 0, sizeof(cap));
    hr_log_set_format(HR_LOG_TEXT);
    hr_log_fields(HR_LOG_INFO, HR_LOG_KV(hr_log_str("path", "/x\" status=200")), "m");
    assert_non_null(strstr(cap.text, " path=\"/x\\\" status=200\"\n"));
}

static void test_log_json_control_and_invalid_utf8_stay_valid(void **state)
{
    (void)state;
    hr_log_set_format(HR_LOG_JSON);
    /* BEL, DEL, a valid "é" and "€", then invalid: lone continuation, overlong '/',
     * surrogate, truncated 3-byte sequence at the end */
    const char bytes[] = "\x07\x7f\xc3\xa9\xe2\x82\xac\x80\xc0\xaf\xed\xa0\x80\xe2\x82";
    hr_log_fields(HR_LOG_INFO, HR_LOG_KV(hr_log_strn("v", bytes, sizeof(bytes) - 1)), "%s", bytes);
    json_t *j = parse_line();
    const char *expect = "\x07\x7f\xc3\xa9\xe2\x82\xac"
                         "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                         "\xef\xbf\xbd\xef\xbf\xbd";
    assert_string_equal(json_string_value(json_object_get(j, "v")), expect);
    assert_string_equal(json_string_value(json_object_get(j, "msg")), expect);
    assert_non_null(strstr(cap.text, "\\u0007\\u007f"));
    json_decref(j);
}

static void test_log_field_keys_are_sanitised(void **state)
{
    (void)state;
    hr_log_set_format(HR_LOG_JSON);
    hr_log_fields(HR_LOG_INFO, HR_LOG_KV(hr_log_int("a\"b c", 1), hr_log_int("", 2)), "m");
    json_t *j = parse_line();
    assert_int_equal(json_integer_value(json_object_get(j, "a_b_c")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "_")), 2);
    json_decref(j);
}

/* ---------------------------------------------------------------- bounds */

static void test_log_long_message_is_cut_and_line_stays_well_formed(void **state)
{
    (void)state;
    static char big[10000];
    memset(big, 'x', sizeof(big) - 1);
    for (int f = 0; f < 3; f++) {
        memset(&cap, 0, sizeof(cap));
        hr_log_set_format((hr_log_format_t)f);
        hr_log_fields(HR_LOG_INFO, HR_LOG_KV(hr_log_uint("conn", 1)), "%s", big);
        assert_int_equal(cap.lines, 1);
        assert_true(cap.len <= 4096);
        assert_non_null(strstr(cap.text, "xxx..."));
        if (f == HR_LOG_JSON) {
            json_t *j = parse_line();
            json_decref(j);
        }
    }
}

static void test_log_field_that_does_not_fit_is_left_out_whole(void **state)
{
    (void)state;
    /* Escaping quadruples control bytes: 3000 of them cannot fit after the message. */
    static char ctl[3001];
    memset(ctl, 0x01, sizeof(ctl) - 1);
    for (int f = 0; f < 3; f++) {
        memset(&cap, 0, sizeof(cap));
        hr_log_set_format((hr_log_format_t)f);
        hr_log_fields(
            HR_LOG_INFO,
            HR_LOG_KV(hr_log_uint("conn", 9), hr_log_str("big", ctl), hr_log_uint("after", 1)),
            "short");
        assert_int_equal(cap.lines, 1);
        assert_true(cap.len <= 4096);
        assert_non_null(strstr(cap.text, "conn"));
        assert_null(strstr(cap.text, "big"));
        assert_null(strstr(cap.text, "after"));
        if (f == HR_LOG_JSON) {
            json_t *j = parse_line();
            assert_int_equal(json_integer_value(json_object_get(j, "conn")), 9);
            json_decref(j);
        }
    }
}

static void test_log_level_filters_events(void **state)
{
    (void)state;
    hr_log_set_level(HR_LOG_WARN);
    hr_log_info("hidden");
    hr_log_debug("hidden");
    hr_log_fields(HR_LOG_INFO, HR_LOG_KV(hr_log_uint("conn", 1)), "hidden");
    assert_int_equal(cap.lines, 0);
    assert_false(hr_log_enabled(HR_LOG_INFO));
    assert_true(hr_log_enabled(HR_LOG_ERROR));
    hr_log_warn("shown");
    hr_log_error("shown");
    assert_int_equal(cap.lines, 2);
}

/* Without a sink a line goes to fd 2 in one write: read it back through a pipe. */
static void test_log_default_sink_is_stderr_one_line(void **state)
{
    (void)state;
    hr_log_set_sink(NULL, NULL);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(stderr);
    int saved = dup(2);
    assert_true(saved >= 0);
    assert_int_equal(dup2(fds[1], 2), 2);
    hr_log_set_format(HR_LOG_LOGFMT);
    hr_log_fields(HR_LOG_INFO, HR_LOG_KV(hr_log_uint("conn", 42)), "to stderr");
    dup2(saved, 2);
    close(saved);
    close(fds[1]);
    char buf[512];
    ssize_t n = read(fds[0], buf, sizeof(buf) - 1);
    close(fds[0]);
    assert_true(n > 0);
    buf[n] = 0;
    assert_non_null(strstr(buf, " level=info msg=\"to stderr\" conn=42\n"));
    assert_int_equal(strchr(buf, '\n') - buf, n - 1);
}

/* ---------------------------------------------------------------- secrets */

static void assert_redacts(const char *in, const char *want)
{
    char out[256];
    size_t n = hr_log_redact_query(in, strlen(in), out, sizeof(out));
    assert_string_equal(out, want);
    assert_int_equal(n, strlen(want));
}

static void test_log_redact_query_hides_secret_parameters(void **state)
{
    (void)state;
    assert_redacts("/ws", "/ws");
    assert_redacts("/ws?", "/ws?");
    assert_redacts("/ws?token=secret", "/ws?token=REDACTED");
    assert_redacts("/pubsub?room=a&token=secret&x=1", "/pubsub?room=a&token=REDACTED&x=1");
    assert_redacts("/ws?access_token=s1&api_key=s2&key=s3&password=s4",
                   "/ws?access_token=REDACTED&api_key=REDACTED&key=REDACTED&password=REDACTED");
    assert_redacts("/ws?TOKEN=s&Api_Key=s&refresh_token=s&client_secret=s&jwt=s",
                   "/ws?TOKEN=REDACTED&Api_Key=REDACTED&refresh_token=REDACTED"
                   "&client_secret=REDACTED&jwt=REDACTED");
    /* encoded names, ';' separators, empty and repeated values */
    assert_redacts("/ws?to%6Ben=s&a=1;password=s&token=&token=s2",
                   "/ws?to%6Ben=REDACTED&a=1;password=REDACTED&token=REDACTED&token=REDACTED");
    /* harmless parameters and bare names stay */
    assert_redacts("/api/x/history?since=5&epoch=abc&token&keys=1&monkey=2",
                   "/api/x/history?since=5&epoch=abc&token&keys=1&monkey=2");
    assert_redacts("/ws?a=1&&b=2&", "/ws?a=1&&b=2&");
    /* '=' inside the value: the whole value goes */
    assert_redacts("/ws?token=a=b=c&z=1", "/ws?token=REDACTED&z=1");
}

static void test_log_redact_query_never_leaks_when_cut(void **state)
{
    (void)state;
    const char *in = "/ws?token=supersecretvalue";
    for (size_t capn = 1; capn <= 32; capn++) {
        char out[64];
        memset(out, '#', sizeof(out));
        size_t n = hr_log_redact_query(in, strlen(in), out, capn);
        assert_true(n < capn);
        assert_int_equal(out[n], 0);
        assert_int_equal(strlen(out), n);
        assert_null(strstr(out, "super"));
        assert_int_equal(out[capn], '#'); /* nothing written past cap */
    }
    char out[8];
    assert_int_equal(hr_log_redact_query(NULL, 0, out, sizeof(out)), 0);
    assert_string_equal(out, "");
    assert_int_equal(hr_log_redact_query(in, strlen(in), out, 0), 0);
}

static void test_log_header_is_secret(void **state)
{
    (void)state;
    const char *secret[] = {"Authorization", "authorization", "Proxy-Authorization",
                            "Cookie",        "set-cookie",    "X-API-Key",
                            "x-api-key"};
    for (size_t i = 0; i < sizeof(secret) / sizeof(secret[0]); i++)
        assert_true(hr_log_header_is_secret(secret[i], strlen(secret[i])));
    const char *open[] = {"Host", "Origin", "User-Agent", "X-API", "Cookies", "Authorization2"};
    for (size_t i = 0; i < sizeof(open) / sizeof(open[0]); i++)
        assert_false(hr_log_header_is_secret(open[i], strlen(open[i])));
    assert_true(hr_log_header_is_secret("Cookie: x", 6)); /* only the name's bytes count */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_log_set_format_name_accepts_the_three_names_only,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_text_is_time_level_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_text_appends_fields_as_key_value, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_logfmt_quotes_message_and_escapes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_log_json_is_one_object_with_typed_members, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_log_json_non_finite_float_is_null, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_newlines_never_split_a_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_logfmt_value_cannot_forge_a_field, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_log_json_control_and_invalid_utf8_stay_valid, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_log_field_keys_are_sanitised, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_long_message_is_cut_and_line_stays_well_formed,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_field_that_does_not_fit_is_left_out_whole, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_log_level_filters_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_default_sink_is_stderr_one_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_redact_query_hides_secret_parameters, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_log_redact_query_never_leaks_when_cut, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_log_header_is_secret, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
