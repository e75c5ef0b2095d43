/* Unit tests for the SockJS codec (src/proto/sockjs_frame.c): JSON quoting with the
 * SockJS unicode escapes (each range, surrogate pairs for astral code points, invalid
 * UTF-8 as Latin-1 escapes), a[...] and c[...] frames, and the decoding of client
 * payloads: arrays, lone strings, whitespace, every escape, surrogate pairs and lone
 * surrogates, each kind of broken input, round trips, allocation failure. */
#include "test_util.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "herald/error.h"
#include "proto/sockjs_frame.h"

static hr_buf_t out;

static int teardown(void **state)
{
    (void)state;
    hr_buf_deinit(&out);
    hr_alloc_fail_at(0);
    return 0;
}

static void expect_quote_(const void *in, size_t n, const char *want)
{
    out.len = 0;
    assert_int_equal(hr_sockjs_quote(&out, in, n), 0);
    assert_int_equal(out.len, strlen(want));
    assert_memory_equal(out.data, want, out.len);
}
#define EXPECT_QUOTE(lit, want) expect_quote_(lit, sizeof(lit) - 1, want)

static void test_sockjs_quote_plain_ascii_is_copied(void **state)
{
    (void)state;
    EXPECT_QUOTE("", "\"\"");
    EXPECT_QUOTE("CONNECTED\nversion:1.2\n\n", "\"CONNECTED\\nversion:1.2\\n\\n\"");
    EXPECT_QUOTE("a\"b\\c/d", "\"a\\\"b\\\\c/d\"");
}

static void test_sockjs_quote_controls_and_nul(void **state)
{
    (void)state;
    EXPECT_QUOTE("\x00\x01\t\r\x1f\x7f", "\"\\u0000\\u0001\\t\\r\\u001f\\u007f\"");
}

static void test_sockjs_quote_escapes_each_sockjs_range(void **state)
{
    (void)state;
    EXPECT_QUOTE("\xc2\x80\xc2\x9f\xc2\xa0", "\"\\u0080\\u009f\xc2\xa0\""); /* C1 */
    EXPECT_QUOTE("\xc2\xad", "\"\\u00ad\"");                                /* SHY */
    EXPECT_QUOTE("\xd8\x80\xd8\x84\xd8\x85", "\"\\u0600\\u0604\xd8\x85\""); /* Arabic */
    EXPECT_QUOTE("\xdc\x8f", "\"\\u070f\"");                                /* Syriac */
    EXPECT_QUOTE("\xe1\x9e\xb4\xe1\x9e\xb5", "\"\\u17b4\\u17b5\"");         /* Khmer */
    EXPECT_QUOTE("\xe2\x80\x8b\xe2\x80\x8c", "\"\xe2\x80\x8b\\u200c\"");    /* ZWNJ */
    EXPECT_QUOTE("\xe2\x80\xa8\xe2\x80\xaf\xe2\x80\xb0", "\"\\u2028\\u202f\xe2\x80\xb0\""); /* LS */
    EXPECT_QUOTE("\xe2\x81\xa0\xe2\x81\xaf", "\"\\u2060\\u206f\"");
    EXPECT_QUOTE("\xef\xbb\xbf", "\"\\ufeff\""); /* BOM */
    EXPECT_QUOTE("\xef\xbf\xaf\xef\xbf\xb0\xef\xbf\xbf", "\"\xef\xbf\xaf\\ufff0\\uffff\"");
    EXPECT_QUOTE("h\xc3\xa9llo \xe2\x82\xac", "\"h\xc3\xa9llo \xe2\x82\xac\""); /* kept */
}

static void test_sockjs_quote_astral_as_surrogate_pair(void **state)
{
    (void)state;
    EXPECT_QUOTE("\xf0\x9f\x98\x80", "\"\\ud83d\\ude00\"");
    EXPECT_QUOTE("\xf4\x8f\xbf\xbf", "\"\\udbff\\udfff\"");
}

static void test_sockjs_quote_invalid_utf8_as_latin1(void **state)
{
    (void)state;
    EXPECT_QUOTE("\xff\xfe", "\"\\u00ff\\u00fe\"");
    EXPECT_QUOTE("\xc0\xaf", "\"\\u00c0\\u00af\"");            /* overlong */
    EXPECT_QUOTE("\xed\xa0\x80", "\"\\u00ed\\u00a0\\u0080\""); /* encoded surrogate */
    EXPECT_QUOTE("a\xe2\x82", "\"a\\u00e2\\u0082\"");          /* truncated */
}

static void test_sockjs_encode_array_and_close(void **state)
{
    (void)state;
    hr_slice_t m[2] = {hr_slice("x", 1), hr_slice("y\n", 2)};
    assert_int_equal(hr_sockjs_encode_array(&out, m, 2), 0);
    assert_int_equal(hr_sockjs_encode_close(&out, 2010, "Another connection still open"), 0);
    const char *want = "a[\"x\",\"y\\n\"]c[2010,\"Another connection still open\"]";
    assert_int_equal(out.len, strlen(want));
    assert_memory_equal(out.data, want, out.len);
    out.len = 0;
    assert_int_equal(hr_sockjs_encode_array(&out, NULL, 0), 0);
    assert_memory_equal(out.data, "a[]", 3);
}

static void test_sockjs_encode_event_percent_encodes(void **state)
{
    (void)state;
    assert_int_equal(hr_sockjs_encode_event(&out, "a[\"100% %41\"]", 13), 0);
    assert_int_equal(hr_sockjs_encode_event(&out, "x\r\n\0", 4), 0);
    const char want[] = "data: a[\"100%25 %2541\"]\r\n\r\ndata: x%0d%0a%00\r\n\r\n";
    assert_int_equal(out.len, sizeof(want) - 1);
    assert_memory_equal(out.data, want, out.len);
}

/* Decodes lit and checks the strings against want[0..n). */
static void expect_decode_(const char *in, size_t len, bool allow_string, const char *const *want,
                           const size_t *wlen, ssize_t n)
{
    out.len = 0;
    char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, in, len);
    ssize_t got = hr_sockjs_decode((const uint8_t *)copy, len, allow_string, &out);
    free(copy);
    assert_int_equal(got, n);
    size_t off = 0;
    hr_slice_t s;
    for (ssize_t i = 0; i < n; i++) {
        assert_true(hr_sockjs_next(&out, &off, &s));
        assert_int_equal(s.len, wlen[i]);
        assert_memory_equal(s.ptr, want[i], s.len);
    }
    assert_false(hr_sockjs_next(&out, &off, &s));
}
#define EXPECT_DECODE1(lit, str, want)                                                             \
    do {                                                                                           \
        const char *w_[1] = {want};                                                                \
        size_t l_[1] = {sizeof(want) - 1};                                                         \
        expect_decode_(lit, sizeof(lit) - 1, str, w_, l_, 1);                                      \
    } while (0)

static ssize_t decode_lit(const char *p, size_t n, bool allow_string)
{
    out.len = 0;
    char *copy = malloc(n ? n : 1);
    assert_non_null(copy);
    if (n)
        memcpy(copy, p, n);
    ssize_t r = hr_sockjs_decode((const uint8_t *)copy, n, allow_string, &out);
    free(copy);
    return r;
}
#define DECODE(lit, str) decode_lit(lit, sizeof(lit) - 1, str)

static void test_sockjs_decode_array_of_strings(void **state)
{
    (void)state;
    const char *w[3] = {"SEND\ndestination:/topic/a\n\nhi\0", "", "x"};
    size_t l[3] = {30, 0, 1};
    const char in[] = " [ \"SEND\\ndestination:/topic/a\\n\\nhi\\u0000\" ,\"\",\n\"x\" ]\r\n";
    expect_decode_(in, sizeof(in) - 1, false, w, l, 3);
    assert_int_equal(DECODE("[]", false), 0);
    assert_int_equal(DECODE(" [ ] ", false), 0);
}

static void test_sockjs_decode_every_escape(void **state)
{
    (void)state;
    EXPECT_DECODE1("[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"]", false, "\"\\/\b\f\n\r\t");
    EXPECT_DECODE1("[\"\\u00e9\\u20AC\"]", false, "\xc3\xa9\xe2\x82\xac");
    EXPECT_DECODE1("[\"\\ud83d\\ude00\"]", false, "\xf0\x9f\x98\x80");
    EXPECT_DECODE1("[\"h\xc3\xa9\xf0\x9f\x98\x80\"]", false, "h\xc3\xa9\xf0\x9f\x98\x80");
}

static void test_sockjs_decode_lone_surrogates_become_fffd(void **state)
{
    (void)state;
    EXPECT_DECODE1("[\"\\ud83d\"]", false, "\xef\xbf\xbd");
    EXPECT_DECODE1("[\"\\ude00x\"]", false, "\xef\xbf\xbdx");
    EXPECT_DECODE1("[\"\\ud83d\\u0041\"]", false,
                   "\xef\xbf\xbd"
                   "A");
}

static void test_sockjs_decode_lone_string_only_when_allowed(void **state)
{
    (void)state;
    EXPECT_DECODE1(" \"abc\" ", true, "abc");
    assert_int_equal(DECODE("\"abc\"", false), HR_EPROTO);
}

static void test_sockjs_decode_empty_is_eagain(void **state)
{
    (void)state;
    assert_int_equal(DECODE("", false), HR_EAGAIN);
    assert_int_equal(DECODE(" \r\n", true), HR_EAGAIN);
}

static void test_sockjs_decode_broken_json_is_eproto(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "[",
        "[\"x\"",
        "[\"x\",]",
        "[,\"x\"]",
        "[\"x\"]]",
        "[\"x\" \"y\"]",
        "[1]",
        "[null]",
        "{\"a\":1}",
        "x",
        "[\"\\x\"]",
        "[\"\\u12\"]",
        "[\"\\u12g4\"]",
        "[\"a\nb\"]",
        "[\"\xff\"]",
        "[\"\xc0\xaf\"]",
        "[\"\xe2\x82\"]",
        "[\"x\"] x",
        "[\"\\",
        "[\"x\\u\"]",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(decode_lit(bad[i], strlen(bad[i]), true), HR_EPROTO);
}

static void test_sockjs_quote_then_decode_round_trips(void **state)
{
    (void)state;
    srand(7);
    hr_buf_t q;
    hr_buf_init(&q);
    for (int round = 0; round < 500; round++) {
        /* Random valid UTF-8 from a mix of ASCII, controls and the escaped ranges. */
        static const uint32_t pool[] = {'a',    '"',    '\\',   0,       0x1f,
                                        0x7f,   0xad,   0xe9,   0x604,   0x200d,
                                        0x2028, 0xfeff, 0xffff, 0x1f600, 0x10ffff};
        hr_buf_t s;
        hr_buf_init(&s);
        int n = rand() % 20;
        for (int i = 0; i < n; i++) {
            uint32_t cp = pool[(size_t)rand() % (sizeof(pool) / sizeof(pool[0]))];
            uint8_t b[4];
            size_t k;
            if (cp < 0x80)
                b[0] = (uint8_t)cp, k = 1;
            else if (cp < 0x800)
                b[0] = (uint8_t)(0xc0 | cp >> 6), b[1] = (uint8_t)(0x80 | (cp & 0x3f)), k = 2;
            else if (cp < 0x10000)
                b[0] = (uint8_t)(0xe0 | cp >> 12), b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f)),
                b[2] = (uint8_t)(0x80 | (cp & 0x3f)), k = 3;
            else
                b[0] = (uint8_t)(0xf0 | cp >> 18), b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f)),
                b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f)), b[3] = (uint8_t)(0x80 | (cp & 0x3f)),
                k = 4;
            assert_int_equal(hr_buf_append(&s, b, k), 0);
        }
        q.len = 0;
        hr_slice_t m = hr_slice(s.data, s.len);
        assert_int_equal(hr_sockjs_encode_array(&q, &m, 1), 0);
        /* Only printable ASCII leaves the encoder outside the kept ranges. */
        out.len = 0;
        assert_int_equal(hr_sockjs_decode(q.data + 1, q.len - 1, false, &out), 1);
        size_t off = 0;
        hr_slice_t got;
        assert_true(hr_sockjs_next(&out, &off, &got));
        assert_int_equal(got.len, s.len);
        if (s.len)
            assert_memory_equal(got.ptr, s.data, s.len);
        hr_buf_deinit(&s);
    }
    hr_buf_deinit(&q);
}

static void test_sockjs_allocation_failure_is_enomem(void **state)
{
    (void)state;
    const char in[] = "[\"abc\",\"\\u00e9\"]";
    for (long nth = 1; nth < 8; nth++) {
        hr_buf_deinit(&out);
        hr_alloc_fail_at(nth);
        ssize_t r = hr_sockjs_decode((const uint8_t *)in, sizeof(in) - 1, false, &out);
        hr_alloc_fail_at(0);
        assert_true(r == 2 || r == HR_ENOMEM);
        hr_buf_deinit(&out);
        hr_alloc_fail_at(nth);
        int q = hr_sockjs_quote(&out, "abc\xe2\x80\xa8", 6);
        hr_alloc_fail_at(0);
        assert_true(q == 0 || q == HR_ENOMEM);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_sockjs_quote_plain_ascii_is_copied, teardown),
        cmocka_unit_test_teardown(test_sockjs_quote_controls_and_nul, teardown),
        cmocka_unit_test_teardown(test_sockjs_quote_escapes_each_sockjs_range, teardown),
        cmocka_unit_test_teardown(test_sockjs_quote_astral_as_surrogate_pair, teardown),
        cmocka_unit_test_teardown(test_sockjs_quote_invalid_utf8_as_latin1, teardown),
        cmocka_unit_test_teardown(test_sockjs_encode_array_and_close, teardown),
        cmocka_unit_test_teardown(test_sockjs_encode_event_percent_encodes, teardown),
        cmocka_unit_test_teardown(test_sockjs_decode_array_of_strings, teardown),
        cmocka_unit_test_teardown(test_sockjs_decode_every_escape, teardown),
        cmocka_unit_test_teardown(test_sockjs_decode_lone_surrogates_become_fffd, teardown),
        cmocka_unit_test_teardown(test_sockjs_decode_lone_string_only_when_allowed, teardown),
        cmocka_unit_test_teardown(test_sockjs_decode_empty_is_eagain, teardown),
        cmocka_unit_test_teardown(test_sockjs_decode_broken_json_is_eproto, teardown),
        cmocka_unit_test_teardown(test_sockjs_quote_then_decode_round_trips, teardown),
        cmocka_unit_test_teardown(test_sockjs_allocation_failure_is_enomem, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
