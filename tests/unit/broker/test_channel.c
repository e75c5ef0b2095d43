/* Unit tests for channel names and patterns (src/broker/channel.c): the byte set, the
 * length limits, empty segments, where "*" and ">" may stand, and matching of exact,
 * single-segment and tail wildcards, including the edges where a name is one segment
 * short or long. */
#include "test_util.h"

#include <string.h>

#include "broker/channel.h"

static bool name_ok(const char *s)
{
    return hr_channel_name_valid(s, strlen(s));
}

static bool pat_ok(const char *s)
{
    return hr_channel_pattern_valid(s, strlen(s));
}

static bool match(const char *pat, const char *name)
{
    return hr_channel_match(pat, strlen(pat), name, strlen(name));
}

static void test_channel_name_accepts_every_allowed_byte(void **state)
{
    (void)state;
    assert_true(name_ok("a"));
    assert_true(name_ok("orders"));
    assert_true(name_ok("orders.42"));
    assert_true(name_ok("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"));
    assert_true(name_ok("_-:@/=+~!"));
    assert_true(name_ok("chat:room/1.user@example=x+y~z!"));
}

static void test_channel_name_rejects_other_bytes(void **state)
{
    (void)state;
    const char *bad = " *>#$%&'\"()?,;<[\\]^`{|}\t\n\x7f";
    for (const char *c = bad; *c; c++) {
        char s[4] = {'a', *c, 'b', 0};
        assert_false(name_ok(s));
    }
    assert_false(hr_channel_name_valid("a\0b", 3));
    assert_false(name_ok("caf\xc3\xa9"));
    assert_false(name_ok("\x80"));
    assert_false(name_ok("\xff"));
}

static void test_channel_name_length_is_1_to_255(void **state)
{
    (void)state;
    char s[300];
    memset(s, 'x', sizeof(s));
    assert_false(hr_channel_name_valid(s, 0));
    assert_true(hr_channel_name_valid(s, 1));
    assert_true(hr_channel_name_valid(s, 255));
    assert_false(hr_channel_name_valid(s, 256));
    assert_false(hr_channel_name_valid(NULL, 0));
    assert_false(hr_channel_pattern_valid(s, 256));
}

static void test_channel_name_rejects_empty_segments(void **state)
{
    (void)state;
    assert_false(name_ok("."));
    assert_false(name_ok(".a"));
    assert_false(name_ok("a."));
    assert_false(name_ok("a..b"));
    assert_true(name_ok("a.b.c"));
}

static void test_channel_name_rejects_wildcards(void **state)
{
    (void)state;
    assert_false(name_ok("*"));
    assert_false(name_ok(">"));
    assert_false(name_ok("orders.*"));
    assert_false(name_ok("orders.>"));
}

static void test_channel_pattern_star_is_a_whole_segment_anywhere(void **state)
{
    (void)state;
    assert_true(pat_ok("*"));
    assert_true(pat_ok("*.a"));
    assert_true(pat_ok("a.*"));
    assert_true(pat_ok("a.*.b"));
    assert_true(pat_ok("*.*"));
    assert_false(pat_ok("a*"));
    assert_false(pat_ok("a.b*.c"));
    assert_false(pat_ok("**"));
    assert_false(pat_ok("a.*."));
}

static void test_channel_pattern_gt_only_as_whole_last_segment(void **state)
{
    (void)state;
    assert_true(pat_ok(">"));
    assert_true(pat_ok("a.>"));
    assert_true(pat_ok("*.>"));
    assert_false(pat_ok(">.a"));
    assert_false(pat_ok("a.>.b"));
    assert_false(pat_ok("a>"));
    assert_false(pat_ok("a.>>"));
    assert_false(pat_ok("a.>."));
}

static void test_channel_pattern_accepts_every_valid_name(void **state)
{
    (void)state;
    assert_true(pat_ok("orders"));
    assert_true(pat_ok("chat:room/1.user@example=x+y~z!"));
    assert_false(pat_ok("a b"));
    assert_false(pat_ok(""));
}

static void test_channel_is_pattern_only_with_a_wildcard(void **state)
{
    (void)state;
    assert_true(hr_channel_is_pattern("a.*", 3));
    assert_true(hr_channel_is_pattern(">", 1));
    assert_false(hr_channel_is_pattern("a.b", 3));
    assert_false(hr_channel_is_pattern("a*", 2));
    assert_false(hr_channel_is_pattern(">.a", 3));
}

static void test_channel_match_exact_matches_itself_only(void **state)
{
    (void)state;
    assert_true(match("orders", "orders"));
    assert_true(match("orders.42", "orders.42"));
    assert_false(match("orders", "orders.42"));
    assert_false(match("orders.42", "orders"));
    assert_false(match("orders", "order"));
    assert_false(match("order", "orders"));
    assert_false(match("orders.42", "orders.43"));
}

static void test_channel_match_star_is_exactly_one_segment(void **state)
{
    (void)state;
    assert_true(match("orders.*", "orders.42"));
    assert_false(match("orders.*", "orders"));
    assert_false(match("orders.*", "orders.42.x"));
    assert_false(match("orders.*", "order.42"));
    assert_true(match("*", "x"));
    assert_false(match("*", "x.y"));
    assert_true(match("*.42", "orders.42"));
    assert_false(match("*.42", "orders.43"));
    assert_true(match("a.*.c", "a.b.c"));
    assert_false(match("a.*.c", "a.b.d"));
    assert_false(match("a.*.c", "a.c"));
    assert_true(match("*.*", "a.b"));
    assert_false(match("*.*", "a"));
}

static void test_channel_match_gt_is_one_or_more_segments(void **state)
{
    (void)state;
    assert_true(match("orders.>", "orders.42"));
    assert_true(match("orders.>", "orders.42.x"));
    assert_true(match("orders.>", "orders.42.x.y.z"));
    assert_false(match("orders.>", "orders"));
    assert_false(match("orders.>", "ordersx.42"));
    assert_true(match(">", "a"));
    assert_true(match(">", "a.b.c"));
    assert_true(match("*.>", "a.b"));
    assert_false(match("*.>", "a"));
}

static void test_channel_match_wildcard_in_name_is_literal_text(void **state)
{
    (void)state;
    /* names are validated before they get here; this only pins what matching does */
    assert_false(match("orders.42", "orders.*"));
    assert_true(match("orders.*", "orders.*"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_channel_name_accepts_every_allowed_byte),
        cmocka_unit_test(test_channel_name_rejects_other_bytes),
        cmocka_unit_test(test_channel_name_length_is_1_to_255),
        cmocka_unit_test(test_channel_name_rejects_empty_segments),
        cmocka_unit_test(test_channel_name_rejects_wildcards),
        cmocka_unit_test(test_channel_pattern_star_is_a_whole_segment_anywhere),
        cmocka_unit_test(test_channel_pattern_gt_only_as_whole_last_segment),
        cmocka_unit_test(test_channel_pattern_accepts_every_valid_name),
        cmocka_unit_test(test_channel_is_pattern_only_with_a_wildcard),
        cmocka_unit_test(test_channel_match_exact_matches_itself_only),
        cmocka_unit_test(test_channel_match_star_is_exactly_one_segment),
        cmocka_unit_test(test_channel_match_gt_is_one_or_more_segments),
        cmocka_unit_test(test_channel_match_wildcard_in_name_is_literal_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
