/* Unit tests for position strings and query parameters (src/proto/position.c): entries
 * read from the right (channels with ':'), every malformed class, the entry bound, the
 * append/parse round trip, query iteration and percent-decoding. */
#include "test_util.h"

#include <stdio.h>
#include <string.h>

#include "base/buf.h"
#include "herald/error.h"
#include "proto/position.h"

static int parse(const char *s, hr_position_entry_t *e, size_t max)
{
    return hr_position_parse(s, strlen(s), e, max);
}

static void assert_entry(const hr_position_entry_t *e, const char *chan, uint64_t off,
                         const char *epoch)
{
    assert_int_equal(e->channel.len, strlen(chan));
    assert_memory_equal(e->channel.ptr, chan, e->channel.len);
    assert_true(e->offset == off);
    assert_int_equal(e->epoch.len, strlen(epoch));
    assert_memory_equal(e->epoch.ptr, epoch, e->epoch.len);
}

static void test_position_parse_one_and_many(void **state)
{
    (void)state;
    hr_position_entry_t e[4];
    assert_int_equal(parse("orders.42:18:k3j9x0", e, 4), 1);
    assert_entry(&e[0], "orders.42", 18, "k3j9x0");
    assert_int_equal(parse("a:0:e,b:7:x1", e, 4), 2);
    assert_entry(&e[0], "a", 0, "e");
    assert_entry(&e[1], "b", 7, "x1");
}

static void test_position_parse_channel_with_colons(void **state)
{
    (void)state;
    hr_position_entry_t e[2];
    assert_int_equal(parse("room:12:3:e0", e, 2), 1);
    assert_entry(&e[0], "room:12", 3, "e0");
    assert_int_equal(parse("::1:a", e, 2), 1);
    assert_entry(&e[0], ":", 1, "a");
}

static void test_position_parse_empty_has_no_entries(void **state)
{
    (void)state;
    hr_position_entry_t e[1];
    assert_int_equal(hr_position_parse("", 0, e, 1), 0);
}

static void test_position_parse_rejects_malformed(void **state)
{
    (void)state;
    static const char *bad[] = {",",
                                "a:1:e,",
                                ",a:1:e",
                                "a:1:e,,b:2:f",
                                "a:1",
                                "a::e",
                                ":1:e",
                                "a:1:",
                                "a:x:e",
                                "a:1:E",
                                "a:-1:e",
                                "a:1:e-",
                                "a1:e",
                                "a:+1:e",
                                "a: 1:e",
                                "a:1:e ",
                                "abc",
                                "a:1:e:",
                                "a:9007199254740992:e",
                                "a:99999999999999999999999:e",
                                "a:1:e\n"};
    hr_position_entry_t e[4];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = parse(bad[i], e, 4);
        if (rc != HR_EINVAL)
            fail_msg("\"%s\" parsed as %d", bad[i], rc);
    }
}

static void test_position_parse_offset_max_and_epoch_max(void **state)
{
    (void)state;
    hr_position_entry_t e[1];
    assert_int_equal(parse("a:9007199254740991:e", e, 1), 1);
    assert_true(e[0].offset == UINT64_C(9007199254740991));
    char s[128];
    snprintf(s, sizeof(s), "a:1:%0*d", HR_POSITION_EPOCH_MAX, 0);
    assert_int_equal(parse(s, e, 1), 1);
    snprintf(s, sizeof(s), "a:1:%0*d", HR_POSITION_EPOCH_MAX + 1, 0);
    assert_int_equal(parse(s, e, 1), HR_EINVAL);
}

static void test_position_parse_more_than_max_is_enobufs(void **state)
{
    (void)state;
    hr_position_entry_t e[2];
    assert_int_equal(parse("a:1:e,b:2:e,c:3:e", e, 2), HR_ENOBUFS);
    assert_int_equal(parse("a:1:e,b:2:e", e, 2), 2);
    assert_int_equal(parse("a:1:e", e, 0), HR_ENOBUFS);
}

static void test_position_append_round_trips(void **state)
{
    (void)state;
    hr_buf_t b;
    hr_buf_init(&b);
    assert_int_equal(hr_position_append(&b, 0, hr_slice("x:y", 3), 5, hr_slice("ab1", 3)), 0);
    assert_int_equal(hr_position_append(&b, 0, hr_slice("z", 1), 0, hr_slice("q", 1)), 0);
    assert_int_equal(b.len, strlen("x:y:5:ab1,z:0:q"));
    assert_memory_equal(b.data, "x:y:5:ab1,z:0:q", b.len);
    hr_position_entry_t e[2];
    assert_int_equal(hr_position_parse((const char *)b.data, b.len, e, 2), 2);
    assert_entry(&e[0], "x:y", 5, "ab1");
    assert_entry(&e[1], "z", 0, "q");
    /* After a prefix: no ',' before the first entry past `from`, one before the next. */
    b.len = 0;
    assert_int_equal(hr_buf_append(&b, "id: ", 4), 0);
    assert_int_equal(hr_position_append(&b, 4, hr_slice("a", 1), 1, hr_slice("e", 1)), 0);
    assert_int_equal(hr_position_append(&b, 4, hr_slice("b", 1), 2, hr_slice("e", 1)), 0);
    assert_int_equal(b.len, strlen("id: a:1:e,b:2:e"));
    assert_memory_equal(b.data, "id: a:1:e,b:2:e", b.len);
    hr_buf_deinit(&b);
}

static void test_query_next_iterates_and_skips_empty(void **state)
{
    (void)state;
    const char *q = "channel=a&&channel=b%2Cc&flag&since=";
    size_t pos = 0, len = strlen(q);
    hr_slice_t n, v;
    assert_true(hr_query_next(q, len, &pos, &n, &v));
    assert_int_equal(n.len, 7);
    assert_memory_equal(v.ptr, "a", 1);
    assert_true(hr_query_next(q, len, &pos, &n, &v));
    assert_int_equal(v.len, 5);
    assert_memory_equal(v.ptr, "b%2Cc", 5);
    assert_true(hr_query_next(q, len, &pos, &n, &v));
    assert_int_equal(n.len, 4);
    assert_int_equal(v.len, 0);
    assert_true(hr_query_next(q, len, &pos, &n, &v));
    assert_memory_equal(n.ptr, "since", 5);
    assert_int_equal(v.len, 0);
    assert_false(hr_query_next(q, len, &pos, &n, &v));
}

static void test_query_decode_escapes_and_errors(void **state)
{
    (void)state;
    char d[16];
    assert_int_equal(hr_query_decode("a%3Ab+c%2c", 10, d, sizeof(d)), 6);
    assert_memory_equal(d, "a:b c,", 6);
    assert_int_equal(hr_query_decode("%", 1, d, sizeof(d)), HR_EINVAL);
    assert_int_equal(hr_query_decode("%4", 2, d, sizeof(d)), HR_EINVAL);
    assert_int_equal(hr_query_decode("%zz", 3, d, sizeof(d)), HR_EINVAL);
    assert_int_equal(hr_query_decode("%00", 3, d, sizeof(d)), HR_EINVAL);
    assert_int_equal(hr_query_decode("a\0b", 3, d, sizeof(d)), HR_EINVAL);
    assert_int_equal(hr_query_decode("abc", 3, d, 2), HR_ENOBUFS);
    assert_int_equal(hr_query_decode("%41", 3, d, 1), 1);
    assert_int_equal(d[0], 'A');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_position_parse_one_and_many),
        cmocka_unit_test(test_position_parse_channel_with_colons),
        cmocka_unit_test(test_position_parse_empty_has_no_entries),
        cmocka_unit_test(test_position_parse_rejects_malformed),
        cmocka_unit_test(test_position_parse_offset_max_and_epoch_max),
        cmocka_unit_test(test_position_parse_more_than_max_is_enobufs),
        cmocka_unit_test(test_position_append_round_trips),
        cmocka_unit_test(test_query_next_iterates_and_skips_empty),
        cmocka_unit_test(test_query_decode_escapes_and_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
