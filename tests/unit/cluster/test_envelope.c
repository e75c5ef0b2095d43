/* Unit tests for the Redis envelope and channel/glob names (src/cluster/envelope.c):
 * round trip, raw backend payloads, every malformed header field, and the PSUBSCRIBE
 * glob of Herald patterns with metacharacters escaped. */
#include "test_util.h"

#include <stdio.h>
#include <string.h>

#include "cluster/envelope.h"
#include "herald/error.h"

static int parse(const char *s, hr_cluster_env_t *e)
{
    return hr_cluster_env_parse(s, strlen(s), e);
}

static bool slice_is(hr_slice_t s, const char *want)
{
    return s.len == strlen(want) && memcmp(s.ptr, want, s.len) == 0;
}

static void test_envelope_round_trip(void **state)
{
    (void)state;
    hr_buf_t b;
    hr_buf_init(&b);
    const char *data = "{\"a\":[1,2,\"x y\\n\"]}";
    assert_int_equal(hr_cluster_env_encode(&b, hr_slice("node12345678", 12), 42,
                                           hr_slice("abcdefgh1234", 12), 1700000000123ull,
                                           hr_slice(data, strlen(data))),
                     0);
    hr_cluster_env_t e;
    assert_int_equal(hr_cluster_env_parse((const char *)b.data, b.len, &e), 0);
    assert_true(e.herald);
    assert_true(slice_is(e.node, "node12345678"));
    assert_int_equal(e.offset, 42);
    assert_true(slice_is(e.epoch, "abcdefgh1234"));
    assert_int_equal(e.time_ms, 1700000000123ull);
    assert_true(slice_is(e.data, data));
    hr_buf_deinit(&b);
}

static void test_envelope_data_may_hold_newlines_and_spaces(void **state)
{
    (void)state;
    hr_cluster_env_t e;
    assert_int_equal(parse("H1 n 1 abcdefgh 5\n{\"k\":\n \"v w\"}\n", &e), 0);
    assert_true(slice_is(e.data, "{\"k\":\n \"v w\"}\n"));
    assert_int_equal(parse("H1 backend 7 abcdefgh 0\n", &e), 0);
    assert_true(slice_is(e.node, "backend"));
    assert_int_equal(e.data.len, 0);
}

static void test_envelope_raw_payloads(void **state)
{
    (void)state;
    hr_cluster_env_t e;
    const char *raw[] = {"{\"raw\":true}", "", "H", "H1", "h1 n 1 abcdefgh 5\nx", "H2 n 1 x 5\n"};
    for (size_t i = 0; i < sizeof(raw) / sizeof(raw[0]); i++) {
        assert_int_equal(parse(raw[i], &e), 0);
        assert_false(e.herald);
        assert_int_equal(e.offset, 0);
        assert_true(slice_is(e.data, raw[i]));
    }
}

static void test_envelope_rejects_bad_headers(void **state)
{
    (void)state;
    hr_cluster_env_t e;
    const char *bad[] = {
        "H1 ",                                                   /* nothing */
        "H1 n 1 abcdefgh 5",                                     /* no newline */
        "H1  1 abcdefgh 5\n{}",                                  /* empty node */
        "H1 n.x 1 abcdefgh 5\n{}",                               /* bad node byte */
        "H1 n 0 abcdefgh 5\n{}",                                 /* offset 0 */
        "H1 n -1 abcdefgh 5\n{}",                                /* sign */
        "H1 n 1x abcdefgh 5\n{}",                                /* junk in offset */
        "H1 n 12345678901234567890 abcdefgh 5\n{}",              /* 20 digits */
        "H1 n 1 short 5\n{}",                                    /* epoch under 8 */
        "H1 n 1 ABCDEFGH 5\n{}",                                 /* epoch upper case */
        "H1 n 1 abcdefgh12345678x 5\n{}",                        /* epoch over 16 */
        "H1 n 1 abcdefgh x\n{}",                                 /* time */
        "H1 n 1 abcdefgh \n{}",                                  /* empty time */
        "H1 n 1 abcdefgh 5 6\n{}",                               /* extra field */
        "H1 n 01 abcdefgh 5\n{}",                                /* leading zero */
        "H1 aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 1 abcdefgh 5\n{}", /* node of 33 */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(parse(bad[i], &e), HR_EINVAL);
    /* A NUL inside the epoch (found by the fuzzer). */
    static const char nul[] = "H1 n 42 abcdefgh12\0005 17\n{}";
    assert_int_equal(hr_cluster_env_parse(nul, sizeof(nul) - 1, &e), HR_EINVAL);
}

static void test_envelope_presence(void **state)
{
    (void)state;
    hr_cluster_env_t e;
    assert_int_equal(parse("P1 node1 join 42\nalice smith", &e), 0);
    assert_true(e.presence);
    assert_false(e.herald);
    assert_true(e.join);
    assert_true(slice_is(e.node, "node1"));
    assert_int_equal(e.client, 42);
    assert_true(slice_is(e.data, "alice smith"));
    assert_int_equal(parse("P1 node1 leave 7\n", &e), 0);
    assert_true(e.presence);
    assert_false(e.join);
    assert_int_equal(e.data.len, 0);
    const char *bad[] = {"P1 node1 join 42",    "P1 node1 part 42\n", "P1 node1 join x\n",
                         "P1 node1 join 042\n", "P1 no.de join 4\n",  "P1  join 4\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(parse(bad[i], &e), HR_EINVAL);
    char big[200];
    int n = snprintf(big, sizeof(big), "P1 n join 1\n");
    memset(big + n, 'u', 129);
    big[n + 129] = 0;
    assert_int_equal(parse(big, &e), HR_EINVAL);
    big[n + 128] = 0;
    assert_int_equal(parse(big, &e), 0);
}

static void check_channel(const char *prefix, const char *name, bool pattern, const char *want)
{
    hr_buf_t b;
    hr_buf_init(&b);
    assert_int_equal(hr_cluster_redis_channel(&b, hr_slice(prefix, strlen(prefix)),
                                              hr_slice(name, strlen(name)), pattern),
                     0);
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.data, want, b.len);
    hr_buf_deinit(&b);
}

static void test_redis_channel_names(void **state)
{
    (void)state;
    check_channel("herald", "orders.42", false, "herald:ch:orders.42");
    check_channel("he*r[a]ld", "orders.42", false, "he*r[a]ld:ch:orders.42"); /* not a glob */
}

static void test_redis_globs(void **state)
{
    (void)state;
    check_channel("herald", "orders.*", true, "herald:ch:orders.*");
    check_channel("herald", "orders.>", true, "herald:ch:orders.*");
    check_channel("herald", "*.status", true, "herald:ch:*.status");
    check_channel("herald", "a.*.c.>", true, "herald:ch:a.*.c.*");
    check_channel("herald", "exact.name", true, "herald:ch:exact.name");
    /* Metacharacters that are not whole wildcard segments, prefix included, escaped. */
    check_channel("h*[x]?\\", "a.*", true, "h\\*\\[x\\]\\?\\\\:ch:a.*");
    check_channel("herald", "a*b.?.[c]", true, "herald:ch:a\\*b.\\?.\\[c\\]");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_envelope_round_trip),
        cmocka_unit_test(test_envelope_data_may_hold_newlines_and_spaces),
        cmocka_unit_test(test_envelope_raw_payloads),
        cmocka_unit_test(test_envelope_rejects_bad_headers),
        cmocka_unit_test(test_envelope_presence),
        cmocka_unit_test(test_redis_channel_names),
        cmocka_unit_test(test_redis_globs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
