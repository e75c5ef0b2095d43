/* Unit tests for the incremental UTF-8 validator (src/ws/utf8.c): the classes of
 * Markus Kuhn's decoder stress test restated with our own data, every boundary code
 * point, exhaustive 1-3 byte inputs and random inputs against a slow arithmetic
 * reference, and verdicts that must not depend on how the input was split. */
#include "test_util.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald/error.h"
#include "ws/utf8.h"

/* ------------------------------------------------------------------------------------
 * Slow reference: decodes by arithmetic instead of a table. A partial sequence is kept
 * while the range of code points its completions could reach still meets the valid
 * range for its length (minus surrogates); the first byte that empties it is the
 * failure point.
 * ---------------------------------------------------------------------------------- */

enum verdict { V_COMPLETE, V_PARTIAL, V_BAD };

typedef struct ref_result {
    enum verdict verdict;
    long fail_at; /* index of the first bad byte, or -1 */
} ref_result_t;

static bool ref_reachable(uint32_t v, int have, int need)
{
    static const uint32_t lo_for[5] = {0, 0, 0x80, 0x800, 0x10000};
    static const uint32_t hi_for[5] = {0, 0x7F, 0x7FF, 0xFFFF, 0x10FFFF};
    int rem = need - have;
    uint64_t lo = (uint64_t)v << (6 * rem);
    uint64_t hi = lo | ((UINT64_C(1) << (6 * rem)) - 1);
    if (lo < lo_for[need])
        lo = lo_for[need];
    if (hi > hi_for[need])
        hi = hi_for[need];
    if (lo > hi)
        return false;
    return !(lo >= 0xD800 && hi <= 0xDFFF);
}

static ref_result_t ref_check(const uint8_t *p, size_t n)
{
    ref_result_t r = {V_COMPLETE, -1};
    int have = 0, need = 0;
    uint32_t v = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t b = p[i];
        if (have == 0) {
            if (b < 0x80)
                continue;
            if ((b & 0xE0) == 0xC0) {
                need = 2;
                v = b & 0x1F;
            } else if ((b & 0xF0) == 0xE0) {
                need = 3;
                v = b & 0x0F;
            } else if ((b & 0xF8) == 0xF0) {
                need = 4;
                v = b & 0x07;
            } else {
                r.verdict = V_BAD;
                r.fail_at = (long)i;
                return r;
            }
            have = 1;
        } else {
            if ((b & 0xC0) != 0x80) {
                r.verdict = V_BAD;
                r.fail_at = (long)i;
                return r;
            }
            v = (v << 6) | (b & 0x3F);
            have++;
        }
        if (!ref_reachable(v, have, need)) {
            r.verdict = V_BAD;
            r.fail_at = (long)i;
            return r;
        }
        if (have == need)
            have = 0;
    }
    r.verdict = have ? V_PARTIAL : V_COMPLETE;
    return r;
}

/* The implementation's answer, fed one byte at a time so the failing byte is exact. */
static ref_result_t impl_check(const uint8_t *p, size_t n)
{
    ref_result_t r = {V_COMPLETE, -1};
    hr_utf8_t u;
    hr_utf8_init(&u);
    for (size_t i = 0; i < n; i++) {
        if (hr_utf8_feed(&u, p + i, 1) != 0) {
            r.verdict = V_BAD;
            r.fail_at = (long)i;
            return r;
        }
    }
    r.verdict = hr_utf8_complete(&u) ? V_COMPLETE : V_PARTIAL;
    return r;
}

/* ------------------------------------------------------------------------------------
 * Chunked feeding: the verdict must be the same for every split.
 * ---------------------------------------------------------------------------------- */

typedef struct chunk_ctx {
    hr_utf8_t u;
    bool failed;
    enum verdict want;
} chunk_ctx_t;

static void chunk_reset(void *arg)
{
    chunk_ctx_t *c = arg;
    hr_utf8_init(&c->u);
    c->failed = false;
}

static void chunk_feed(void *arg, const uint8_t *p, size_t n)
{
    chunk_ctx_t *c = arg;
    int rc = hr_utf8_feed(&c->u, p, n);
    if (c->failed)
        assert_int_equal(rc, HR_EILSEQ); /* failure is sticky */
    assert_true(rc == 0 || rc == HR_EILSEQ);
    if (rc != 0)
        c->failed = true;
}

static void chunk_check(void *arg)
{
    chunk_ctx_t *c = arg;
    enum verdict got = c->failed ? V_BAD : hr_utf8_complete(&c->u) ? V_COMPLETE : V_PARTIAL;
    assert_int_equal(got, c->want);
}

static void expect(const void *bytes, size_t n, enum verdict want, long fail_at)
{
    const uint8_t *p = bytes;
    ref_result_t ref = ref_check(p, n);
    ref_result_t got = impl_check(p, n);
    assert_int_equal(ref.verdict, want);
    assert_int_equal(ref.fail_at, fail_at);
    assert_int_equal(got.verdict, want);
    assert_int_equal(got.fail_at, fail_at);
    assert_int_equal(hr_utf8_valid(p, n), want == V_COMPLETE);
    chunk_ctx_t c = {.want = want};
    feed_chunks(&c, p, n, chunk_reset, chunk_feed, chunk_check);
}

#define OK(s) expect(s, sizeof(s) - 1, V_COMPLETE, -1)
#define PARTIAL(s) expect(s, sizeof(s) - 1, V_PARTIAL, -1)
#define BAD_AT(s, i) expect(s, sizeof(s) - 1, V_BAD, i)

/* ------------------------------------------------------------------------------------
 * Kuhn stress-test classes.
 * ---------------------------------------------------------------------------------- */

static void test_utf8_accepts_correct_text(void **state)
{
    (void)state;
    OK("");
    OK("plain ascii, long enough to take the eight-byte fast path twice over");
    OK("gr\xC3\xBC\xC3\x9F dich, caf\xC3\xA9");              /* Latin-1 supplement */
    OK("\xCE\xB1\xCE\xB2\xCE\xB3 \xD0\x96\xD0\xB8\xD0\xB7"); /* Greek, Cyrillic */
    OK("\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E");              /* CJK */
    OK("\xF0\x9F\x98\x80 \xF0\x9F\x8E\x89");                 /* emoji, 4 bytes */
    OK("a\xC3\xA9\xE2\x82\xAC\xF0\x9D\x84\x9E"
       "z"); /* 1, 2, 3, 4 byte mix */
}

static void test_utf8_accepts_first_and_last_code_point_of_each_length(void **state)
{
    (void)state;
    expect("\x00", 1, V_COMPLETE, -1); /* U+0000 */
    OK("\x7F");                        /* U+007F */
    OK("\xC2\x80");                    /* U+0080 */
    OK("\xDF\xBF");                    /* U+07FF */
    OK("\xE0\xA0\x80");                /* U+0800 */
    OK("\xEF\xBF\xBF");                /* U+FFFF */
    OK("\xF0\x90\x80\x80");            /* U+10000 */
    OK("\xF4\x8F\xBF\xBF");            /* U+10FFFF */
}

static void test_utf8_accepts_other_boundaries(void **state)
{
    (void)state;
    OK("\xED\x9F\xBF");     /* U+D7FF, just below the surrogates */
    OK("\xEE\x80\x80");     /* U+E000, just above */
    OK("\xEF\xBF\xBD");     /* U+FFFD */
    OK("\xEF\xBF\xBE");     /* U+FFFE: a noncharacter, but valid UTF-8 */
    OK("\xF3\xBF\xBF\xBF"); /* U+FFFFF */
    OK("\xF1\x80\x80\x80"); /* U+40000 */
}

static void test_utf8_rejects_above_10ffff_at_second_byte(void **state)
{
    (void)state;
    BAD_AT("\xF4\x90", 1); /* U+110000 ruled out by 0x90 */
    BAD_AT("\xF4\x90\x80\x80", 1);
    BAD_AT("\xF4\xBF\xBF\xBF", 1);
    BAD_AT("\xF5\x80\x80\x80", 0); /* lead bytes F5..FF never start anything */
    BAD_AT("\xF7\xBF\xBF\xBF", 0);
}

static void test_utf8_rejects_five_and_six_byte_forms(void **state)
{
    (void)state;
    BAD_AT("\xF8\x88\x80\x80\x80", 0);
    BAD_AT("\xFB\xBF\xBF\xBF\xBF", 0);
    BAD_AT("\xFC\x84\x80\x80\x80\x80", 0);
    BAD_AT("\xFD\xBF\xBF\xBF\xBF\xBF", 0);
}

static void test_utf8_rejects_stray_continuation_bytes(void **state)
{
    (void)state;
    BAD_AT("\x80", 0);
    BAD_AT("\xBF", 0);
    BAD_AT("ab\x80", 2);
    BAD_AT("\x80\xBF\x80", 0);
    BAD_AT("\xC3\xA9\xA9", 2); /* one continuation too many */
    BAD_AT("\xE2\x82\xAC\x80", 3);
    for (unsigned b = 0x80; b <= 0xBF; b++) {
        uint8_t in[3] = {'x', (uint8_t)b, 'y'};
        expect(in, sizeof(in), V_BAD, 1);
    }
}

static void test_utf8_rejects_lonely_start_followed_by_space(void **state)
{
    (void)state;
    for (unsigned b = 0xC2; b <= 0xF4; b++) {
        uint8_t in[2] = {(uint8_t)b, ' '};
        expect(in, sizeof(in), V_BAD, 1);
    }
}

static void test_utf8_truncated_sequence_is_partial_not_complete(void **state)
{
    (void)state;
    PARTIAL("\xC2");
    PARTIAL("\xE0\xA0");
    PARTIAL("\xEF\xBF");
    PARTIAL("\xF0\x90\x80");
    PARTIAL("\xF4\x8F\xBF");
    PARTIAL("ok \xE2\x82");
    /* A truncated sequence followed by the next character fails at that character. */
    BAD_AT("\xE2\x82"
           "a",
           2);
    BAD_AT("\xF0\x9F\x98\xC3\xA9", 3);
}

static void test_utf8_rejects_impossible_bytes(void **state)
{
    (void)state;
    BAD_AT("\xFE", 0);
    BAD_AT("\xFF", 0);
    BAD_AT("\xFE\xFE\xFF\xFF", 0);
    BAD_AT("abc\xFF", 3);
}

static void test_utf8_rejects_overlong_at_first_deciding_byte(void **state)
{
    (void)state;
    BAD_AT("\xC0\xAF", 0); /* C0 and C1 can only encode overlongs */
    BAD_AT("\xC1\xBF", 0);
    BAD_AT("\xC0\x80", 0); /* overlong NUL */
    BAD_AT("\xE0\x80", 1);
    BAD_AT("\xE0\x80\xAF", 1);
    BAD_AT("\xE0\x9F\xBF", 1); /* largest 3-byte overlong */
    BAD_AT("\xE0\x80\x80", 1);
    BAD_AT("\xF0\x80", 1);
    BAD_AT("\xF0\x80\x80\xAF", 1);
    BAD_AT("\xF0\x8F\xBF\xBF", 1); /* largest 4-byte overlong */
    BAD_AT("\xF0\x80\x80\x80", 1);
}

static void test_utf8_rejects_single_surrogates(void **state)
{
    (void)state;
    BAD_AT("\xED\xA0", 1);
    BAD_AT("\xED\xA0\x80", 1); /* U+D800 */
    BAD_AT("\xED\xAD\xBF", 1); /* U+DB7F */
    BAD_AT("\xED\xAE\x80", 1); /* U+DB80 */
    BAD_AT("\xED\xAF\xBF", 1); /* U+DBFF */
    BAD_AT("\xED\xB0\x80", 1); /* U+DC00 */
    BAD_AT("\xED\xBE\x80", 1); /* U+DF80 */
    BAD_AT("\xED\xBF\xBF", 1); /* U+DFFF */
}

static void test_utf8_rejects_paired_surrogates(void **state)
{
    (void)state;
    BAD_AT("\xED\xA0\x80\xED\xB0\x80", 1); /* U+D800 U+DC00 (CESU-8 style) */
    BAD_AT("\xED\xAF\xBF\xED\xBF\xBF", 1); /* U+DBFF U+DFFF */
    BAD_AT("ok\xED\xA1\x8C\xED\xBE\xB4", 3);
}

static void test_utf8_rejects_surrogate_split_across_fragments(void **state)
{
    (void)state;
    hr_utf8_t u;
    hr_utf8_init(&u);
    assert_int_equal(hr_utf8_feed(&u, (const uint8_t *)"text \xED", 6), 0);
    assert_false(hr_utf8_complete(&u));
    assert_int_equal(hr_utf8_feed(&u, (const uint8_t *)"\xA0\x80", 2), HR_EILSEQ);
    assert_false(hr_utf8_complete(&u));
}

static void test_utf8_accepts_four_byte_char_split_across_fragments(void **state)
{
    (void)state;
    const uint8_t s[] = {0xF0, 0x9F, 0x92, 0xA9};
    hr_utf8_t u;
    hr_utf8_init(&u);
    for (size_t i = 0; i < sizeof(s); i++) {
        assert_false(hr_utf8_complete(&u) && i > 0);
        assert_int_equal(hr_utf8_feed(&u, s + i, 1), 0);
    }
    assert_true(hr_utf8_complete(&u));
}

static void test_utf8_failure_is_sticky(void **state)
{
    (void)state;
    hr_utf8_t u;
    hr_utf8_init(&u);
    assert_int_equal(hr_utf8_feed(&u, (const uint8_t *)"\xFF", 1), HR_EILSEQ);
    assert_int_equal(hr_utf8_feed(&u, (const uint8_t *)"a", 1), HR_EILSEQ);
    assert_int_equal(hr_utf8_feed(&u, (const uint8_t *)"", 0), HR_EILSEQ);
    assert_false(hr_utf8_complete(&u));
    hr_utf8_init(&u);
    assert_int_equal(hr_utf8_feed(&u, (const uint8_t *)"a", 1), 0);
    assert_true(hr_utf8_complete(&u));
}

static void test_utf8_empty_feed_keeps_state(void **state)
{
    (void)state;
    hr_utf8_t u;
    hr_utf8_init(&u);
    assert_int_equal(hr_utf8_feed(&u, (const uint8_t *)"\xE2", 1), 0);
    assert_int_equal(hr_utf8_feed(&u, NULL, 0), 0);
    assert_int_equal(hr_utf8_feed(&u, (const uint8_t *)"\x82\xAC", 2), 0);
    assert_true(hr_utf8_complete(&u));
}

/* The 8-byte ASCII fast path must still stop at the exact bad byte, at any alignment. */
static void test_utf8_ascii_fast_path_finds_bad_byte_at_every_position(void **state)
{
    (void)state;
    uint8_t buf[80];
    for (size_t start = 0; start < 8; start++) {
        for (size_t len = 0; len <= 64; len++) {
            for (size_t bad = 0; bad <= len; bad++) {
                memset(buf, 'a', sizeof(buf));
                uint8_t *p = buf + start;
                if (bad < len)
                    p[bad] = 0xC0;
                ref_result_t got = impl_check(p, len);
                hr_utf8_t u;
                hr_utf8_init(&u);
                int rc = hr_utf8_feed(&u, p, len);
                if (bad < len) {
                    assert_int_equal(rc, HR_EILSEQ);
                    assert_int_equal(got.fail_at, (long)bad);
                } else {
                    assert_int_equal(rc, 0);
                    assert_true(hr_utf8_complete(&u));
                }
            }
        }
    }
}

/* Multi-byte characters embedded after long ASCII runs, at every alignment. */
static void test_utf8_multibyte_after_ascii_run_at_every_offset(void **state)
{
    (void)state;
    static const char *seqs[] = {"\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80"};
    uint8_t buf[64];
    for (size_t s = 0; s < 3; s++) {
        size_t n = strlen(seqs[s]);
        for (size_t at = 0; at + n <= 40; at++) {
            memset(buf, 'x', 40);
            memcpy(buf + at, seqs[s], n);
            assert_true(hr_utf8_valid(buf, 40));
            /* cut the sequence short: the next byte is ASCII and must fail there */
            if (at + n < 40) {
                buf[at + n - 1] = 'x';
                assert_false(hr_utf8_valid(buf, 40));
                ref_result_t got = impl_check(buf, 40);
                assert_int_equal(got.fail_at, (long)(at + n - 1));
            }
        }
    }
}

/* ------------------------------------------------------------------------------------
 * Exhaustive and random comparison with the reference.
 * ---------------------------------------------------------------------------------- */

static void compare(const uint8_t *p, size_t n)
{
    ref_result_t ref = ref_check(p, n);
    ref_result_t got = impl_check(p, n);
    if (ref.verdict != got.verdict || ref.fail_at != got.fail_at) {
        char hex[3 * 64 + 1] = "";
        for (size_t i = 0; i < n && i < 64; i++)
            snprintf(hex + 3 * i, 4, "%02X ", p[i]);
        fail_msg("input %s: reference verdict %d at %ld, validator %d at %ld", hex, ref.verdict,
                 ref.fail_at, got.verdict, got.fail_at);
    }
    hr_utf8_t u;
    hr_utf8_init(&u);
    int rc = hr_utf8_feed(&u, p, n);
    assert_int_equal(rc == 0, ref.verdict != V_BAD);
    assert_int_equal(hr_utf8_valid(p, n), ref.verdict == V_COMPLETE);
}

static void test_utf8_every_one_and_two_byte_input_matches_reference(void **state)
{
    (void)state;
    uint8_t in[2];
    for (unsigned a = 0; a < 256; a++) {
        in[0] = (uint8_t)a;
        compare(in, 1);
        for (unsigned b = 0; b < 256; b++) {
            in[1] = (uint8_t)b;
            compare(in, 2);
        }
    }
}

static void test_utf8_every_three_byte_input_matches_reference(void **state)
{
    (void)state;
    uint8_t in[3];
    for (unsigned a = 0; a < 256; a++) {
        for (unsigned b = 0; b < 256; b++) {
            for (unsigned c = 0; c < 256; c++) {
                in[0] = (uint8_t)a;
                in[1] = (uint8_t)b;
                in[2] = (uint8_t)c;
                compare(in, 3);
            }
        }
    }
}

/* Every 4-byte input whose lead is F0..F4, walking the continuation bytes over all
 * of 80..BF plus a few non-continuation probes. */
static void test_utf8_four_byte_leads_match_reference(void **state)
{
    (void)state;
    static const uint8_t probes[] = {0x00, 0x41, 0x7F, 0xC2, 0xE0, 0xF0, 0xFF};
    uint8_t in[4];
    for (unsigned a = 0xF0; a <= 0xF4; a++) {
        for (unsigned b = 0x80; b <= 0xBF + sizeof(probes); b++) {
            for (unsigned c = 0x80; c <= 0xBF + sizeof(probes); c++) {
                for (unsigned d = 0x80; d <= 0xBF + sizeof(probes); d += 3) {
                    in[0] = (uint8_t)a;
                    in[1] = b <= 0xBF ? (uint8_t)b : probes[b - 0xC0];
                    in[2] = c <= 0xBF ? (uint8_t)c : probes[c - 0xC0];
                    in[3] = d <= 0xBF ? (uint8_t)d : probes[d - 0xC0];
                    compare(in, 4);
                }
            }
        }
    }
}

static uint64_t rng_state = 0x9E3779B97F4A7C15u;

static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 32);
}

/* Biased towards bytes that matter: leads, the edges of continuation ranges, ASCII. */
static uint8_t random_byte(void)
{
    static const uint8_t edges[] = {0x00, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF,
                                    0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xEC, 0xED,
                                    0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF};
    uint32_t r = rng();
    switch (r % 4) {
    case 0:
        return (uint8_t)(r >> 8);
    case 1:
        return edges[(r >> 8) % sizeof(edges)];
    case 2:
        return (uint8_t)(0x80 + ((r >> 8) & 0x3F));
    default:
        return (uint8_t)('a' + (r >> 8) % 26);
    }
}

static void test_utf8_random_inputs_match_reference(void **state)
{
    (void)state;
    uint8_t buf[48];
    for (int iter = 0; iter < 300000; iter++) {
        size_t n = rng() % sizeof(buf);
        for (size_t i = 0; i < n; i++)
            buf[i] = random_byte();
        compare(buf, n);
    }
}

/* Random valid text built from random code points always passes, split anywhere. */
static void test_utf8_random_valid_text_passes_every_split(void **state)
{
    (void)state;
    uint8_t buf[64];
    for (int iter = 0; iter < 300; iter++) {
        size_t n = 0;
        while (n + 4 <= sizeof(buf) - 4) {
            uint32_t cp = rng() % 0x110000;
            if (cp >= 0xD800 && cp <= 0xDFFF)
                continue;
            if (cp < 0x80) {
                buf[n++] = (uint8_t)cp;
            } else if (cp < 0x800) {
                buf[n++] = (uint8_t)(0xC0 | cp >> 6);
                buf[n++] = (uint8_t)(0x80 | (cp & 0x3F));
            } else if (cp < 0x10000) {
                buf[n++] = (uint8_t)(0xE0 | cp >> 12);
                buf[n++] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
                buf[n++] = (uint8_t)(0x80 | (cp & 0x3F));
            } else {
                buf[n++] = (uint8_t)(0xF0 | cp >> 18);
                buf[n++] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
                buf[n++] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
                buf[n++] = (uint8_t)(0x80 | (cp & 0x3F));
            }
        }
        chunk_ctx_t c = {.want = V_COMPLETE};
        feed_chunks(&c, buf, n, chunk_reset, chunk_feed, chunk_check);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_accepts_correct_text),
        cmocka_unit_test(test_utf8_accepts_first_and_last_code_point_of_each_length),
        cmocka_unit_test(test_utf8_accepts_other_boundaries),
        cmocka_unit_test(test_utf8_rejects_above_10ffff_at_second_byte),
        cmocka_unit_test(test_utf8_rejects_five_and_six_byte_forms),
        cmocka_unit_test(test_utf8_rejects_stray_continuation_bytes),
        cmocka_unit_test(test_utf8_rejects_lonely_start_followed_by_space),
        cmocka_unit_test(test_utf8_truncated_sequence_is_partial_not_complete),
        cmocka_unit_test(test_utf8_rejects_impossible_bytes),
        cmocka_unit_test(test_utf8_rejects_overlong_at_first_deciding_byte),
        cmocka_unit_test(test_utf8_rejects_single_surrogates),
        cmocka_unit_test(test_utf8_rejects_paired_surrogates),
        cmocka_unit_test(test_utf8_rejects_surrogate_split_across_fragments),
        cmocka_unit_test(test_utf8_accepts_four_byte_char_split_across_fragments),
        cmocka_unit_test(test_utf8_failure_is_sticky),
        cmocka_unit_test(test_utf8_empty_feed_keeps_state),
        cmocka_unit_test(test_utf8_ascii_fast_path_finds_bad_byte_at_every_position),
        cmocka_unit_test(test_utf8_multibyte_after_ascii_run_at_every_offset),
        cmocka_unit_test(test_utf8_every_one_and_two_byte_input_matches_reference),
        cmocka_unit_test(test_utf8_every_three_byte_input_matches_reference),
        cmocka_unit_test(test_utf8_four_byte_leads_match_reference),
        cmocka_unit_test(test_utf8_random_inputs_match_reference),
        cmocka_unit_test(test_utf8_random_valid_text_passes_every_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
