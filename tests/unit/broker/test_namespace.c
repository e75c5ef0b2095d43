/* Unit tests for namespace options (src/broker/namespace.c): the defaults, every key of
 * a spec with its range ends, fractional TTLs, unspecified keys keeping defaults, a
 * clear one-line message for each kind of mistake, and first-match lookup falling back
 * to the defaults. Nothing here allocates. */
#include "test_util.h"

#include <stdio.h>
#include <string.h>

#include "broker/namespace.h"
#include "herald/error.h"

static hr_namespace_t ns;
static char err[256];

static int parse(const char *spec)
{
    memset(&ns, 0xa5, sizeof(ns));
    memset(err, 'x', sizeof(err));
    err[sizeof(err) - 1] = 0;
    int rc = hr_namespace_parse(spec, &ns, err, sizeof(err));
    if (rc == 0)
        assert_string_equal(err, "");
    return rc;
}

/* Parsing fails, and the message is one line that contains every piece in want. */
static void assert_parse_error(const char *spec, const char *want1, const char *want2)
{
    assert_int_equal(parse(spec), -1);
    assert_null(strchr(err, '\n'));
    if (!strstr(err, want1) || (want2 && !strstr(err, want2)))
        fail_msg("spec \"%s\": message \"%s\" lacks \"%s\" / \"%s\"", spec, err, want1,
                 want2 ? want2 : "");
}

static void assert_defaults_but_pattern(const hr_namespace_t *n)
{
    assert_int_equal(n->history_size, 100);
    assert_int_equal(n->history_ttl_ms, 300000);
    assert_true(n->client_publish);
    assert_false(n->presence);
    assert_int_equal(n->slow, HR_SLOW_DISCONNECT);
}

static void test_namespace_default_values(void **state)
{
    (void)state;
    hr_namespace_t d;
    hr_namespace_default(&d);
    assert_string_equal(d.pattern, ">");
    assert_defaults_but_pattern(&d);
}

static void test_namespace_parse_pattern_alone_keeps_defaults(void **state)
{
    (void)state;
    assert_int_equal(parse("orders.*"), 0);
    assert_string_equal(ns.pattern, "orders.*");
    assert_defaults_but_pattern(&ns);
    assert_int_equal(parse("chat.room.1"), 0);
    assert_string_equal(ns.pattern, "chat.room.1");
    assert_int_equal(parse("feeds.>"), 0);
    assert_string_equal(ns.pattern, "feeds.>");
}

static void test_namespace_parse_all_keys(void **state)
{
    (void)state;
    assert_int_equal(parse("orders.*:history=50,ttl=600,publish=off,presence=on,slow=drop-oldest"),
                     0);
    assert_string_equal(ns.pattern, "orders.*");
    assert_int_equal(ns.history_size, 50);
    assert_int_equal(ns.history_ttl_ms, 600000);
    assert_false(ns.client_publish);
    assert_true(ns.presence);
    assert_int_equal(ns.slow, HR_SLOW_DROP_OLDEST);
}

static void test_namespace_parse_unspecified_keys_keep_defaults(void **state)
{
    (void)state;
    assert_int_equal(parse("a:presence=on"), 0);
    assert_true(ns.presence);
    assert_int_equal(ns.history_size, 100);
    assert_int_equal(ns.history_ttl_ms, 300000);
    assert_true(ns.client_publish);
    assert_int_equal(ns.slow, HR_SLOW_DISCONNECT);
    assert_int_equal(parse("a:slow=drop-newest,publish=on,presence=off"), 0);
    assert_int_equal(ns.slow, HR_SLOW_DROP_NEWEST);
    assert_int_equal(parse("a:slow=disconnect"), 0);
    assert_int_equal(ns.slow, HR_SLOW_DISCONNECT);
}

static void test_namespace_parse_history_range_0_to_100000(void **state)
{
    (void)state;
    assert_int_equal(parse("a:history=0"), 0);
    assert_int_equal(ns.history_size, 0);
    assert_int_equal(parse("a:history=100000"), 0);
    assert_int_equal(ns.history_size, 100000);
    assert_int_equal(parse("a:history=007"), 0);
    assert_int_equal(ns.history_size, 7);
    assert_parse_error("a:history=100001", "history=100001", "0 to 100000");
    assert_parse_error("a:history=99999999999999999999999", "history=9999", NULL);
    assert_parse_error("a:history=-1", "history=-1", NULL);
    assert_parse_error("a:history=+5", "history=+5", NULL);
    assert_parse_error("a:history=1.5", "history=1.5", NULL);
    assert_parse_error("a:history=", "history=", "0 to 100000");
    assert_parse_error("a:history= 5", "history= 5", NULL);
    assert_parse_error("a:history=0x10", "history=0x10", NULL);
}

static void test_namespace_parse_ttl_seconds_with_fraction(void **state)
{
    (void)state;
    assert_int_equal(parse("a:ttl=0"), 0);
    assert_int_equal(ns.history_ttl_ms, 0);
    assert_int_equal(parse("a:ttl=0.25"), 0);
    assert_int_equal(ns.history_ttl_ms, 250);
    assert_int_equal(parse("a:ttl=.5"), 0);
    assert_int_equal(ns.history_ttl_ms, 500);
    assert_int_equal(parse("a:ttl=2."), 0);
    assert_int_equal(ns.history_ttl_ms, 2000);
    assert_int_equal(parse("a:ttl=1.001"), 0);
    assert_int_equal(ns.history_ttl_ms, 1001);
    assert_int_equal(parse("a:ttl=0.0015"), 0); /* rounded to the nearest ms */
    assert_int_equal(ns.history_ttl_ms, 2);
    assert_int_equal(parse("a:ttl=0.9996"), 0);
    assert_int_equal(ns.history_ttl_ms, 1000);
    assert_int_equal(parse("a:ttl=0.000"), 0);
    assert_int_equal(ns.history_ttl_ms, 0);
    assert_int_equal(parse("a:ttl=604800"), 0);
    assert_int_equal(ns.history_ttl_ms, 604800000ull);
    assert_int_equal(parse("a:ttl=604800.000"), 0);
    assert_int_equal(ns.history_ttl_ms, 604800000ull);
    assert_int_equal(parse("a:ttl=604799.9999"), 0);
    assert_int_equal(ns.history_ttl_ms, 604800000ull);
}

static void test_namespace_parse_ttl_rejects_out_of_range_and_junk(void **state)
{
    (void)state;
    assert_parse_error("a:ttl=604800.001", "ttl=604800.001", "604800");
    assert_parse_error("a:ttl=604801", "ttl=604801", NULL);
    assert_parse_error("a:ttl=0.0004", "ttl=0.0004", "0.001"); /* would round to "never" */
    assert_parse_error("a:ttl=.", "ttl=.", NULL);
    assert_parse_error("a:ttl=", "ttl=", NULL);
    assert_parse_error("a:ttl=1.2.3", "ttl=1.2.3", NULL);
    assert_parse_error("a:ttl=-1", "ttl=-1", NULL);
    assert_parse_error("a:ttl=1e3", "ttl=1e3", NULL);
    assert_parse_error("a:ttl=10s", "ttl=10s", NULL);
    assert_parse_error("a:ttl=1,5", "5", NULL); /* a comma separates options */
}

static void test_namespace_parse_onoff_and_slow_words_exactly(void **state)
{
    (void)state;
    assert_parse_error("a:publish=yes", "publish=yes", "on or off");
    assert_parse_error("a:presence=ON", "presence=ON", "on or off");
    assert_parse_error("a:presence=", "presence=", "on or off");
    assert_parse_error("a:slow=drop", "slow=drop", "drop-oldest");
    assert_parse_error("a:slow=drop_oldest", "slow=drop_oldest", "drop-newest");
}

static void test_namespace_parse_rejects_bad_pattern(void **state)
{
    (void)state;
    assert_parse_error("", "not a valid channel pattern", NULL);
    assert_parse_error(":history=5", "not a valid channel pattern", NULL);
    assert_parse_error("or ders:history=5", "\"or ders\"", "not a valid channel pattern");
    assert_parse_error("orders.>.x", "orders.>.x", "not a valid channel pattern");
    assert_parse_error("a..b", "a..b", NULL);
    assert_parse_error("a\nb", "a?b", NULL); /* quoted back printable */
    char longp[400];
    memset(longp, 'p', sizeof(longp));
    longp[sizeof(longp) - 1] = 0;
    assert_parse_error(longp, "ppp...", "not a valid channel pattern");
    longp[255] = 0;
    assert_int_equal(parse(longp), 0);
    assert_int_equal(strlen(ns.pattern), 255);
    assert_int_equal(hr_namespace_parse(NULL, &ns, err, sizeof(err)), -1);
}

static void test_namespace_parse_rejects_bad_options(void **state)
{
    (void)state;
    assert_parse_error("a:colour=red", "unknown option \"colour\"", "history");
    assert_parse_error("a:History=5", "unknown option \"History\"", NULL);
    assert_parse_error("a:history", "\"history\" needs a value", NULL);
    assert_parse_error("a:", "empty option", NULL);
    assert_parse_error("a:history=5,", "empty option", NULL);
    assert_parse_error("a:history=5,,ttl=1", "empty option", NULL);
    assert_parse_error("a:history=5,history=6", "\"history\" given twice", NULL);
    assert_parse_error("a:=5", "unknown option \"\"", NULL);
    assert_parse_error("a:ttl=1:2", "ttl=1:2", NULL);
}

static void test_namespace_parse_failure_leaves_out_untouched(void **state)
{
    (void)state;
    hr_namespace_t before;
    memset(&ns, 0x5a, sizeof(ns));
    before = ns;
    assert_int_equal(hr_namespace_parse("a:history=5,ttl=x", &ns, err, sizeof(err)), -1);
    assert_memory_equal(&ns, &before, sizeof(ns));
}

static void test_namespace_parse_message_fits_small_buffers(void **state)
{
    (void)state;
    char small[8];
    memset(small, 'x', sizeof(small));
    assert_int_equal(hr_namespace_parse("a:colour=red", &ns, small, sizeof(small)), -1);
    assert_int_equal(strlen(small), sizeof(small) - 1);
    assert_int_equal(hr_namespace_parse("a:colour=red", &ns, NULL, 0), -1);
    char copy[8];
    memcpy(copy, small, sizeof(copy));
    assert_int_equal(hr_namespace_parse("a:colour=red", &ns, small, 0), -1);
    assert_memory_equal(small, copy, sizeof(copy)); /* errlen 0: nothing written */
}

static void test_namespace_slow_policy_names_round_trip(void **state)
{
    (void)state;
    hr_slow_policy_t all[] = {HR_SLOW_DISCONNECT, HR_SLOW_DROP_OLDEST, HR_SLOW_DROP_NEWEST};
    for (size_t i = 0; i < 3; i++) {
        char spec[64];
        snprintf(spec, sizeof(spec), "a:slow=%s", hr_slow_policy_name(all[i]));
        assert_int_equal(parse(spec), 0);
        assert_int_equal(ns.slow, all[i]);
    }
}

static hr_namespace_t make(const char *spec)
{
    hr_namespace_t n;
    assert_int_equal(hr_namespace_parse(spec, &n, err, sizeof(err)), 0);
    return n;
}

static const hr_namespace_t *lookup(const hr_namespaces_t *l, const char *channel)
{
    return hr_namespaces_lookup(l, channel, strlen(channel));
}

static void test_namespaces_lookup_first_added_match_wins(void **state)
{
    (void)state;
    static hr_namespaces_t l;
    hr_namespaces_init(&l);
    hr_namespace_t vip = make("orders.vip:history=1000");
    hr_namespace_t star = make("orders.*:history=50");
    hr_namespace_t tail = make("orders.>:history=7,presence=on");
    assert_int_equal(hr_namespaces_add(&l, &vip), 0);
    assert_int_equal(hr_namespaces_add(&l, &star), 0);
    assert_int_equal(hr_namespaces_add(&l, &tail), 0);
    assert_int_equal(lookup(&l, "orders.vip")->history_size, 1000);
    assert_int_equal(lookup(&l, "orders.42")->history_size, 50);
    assert_int_equal(lookup(&l, "orders.42.x")->history_size, 7);
    assert_true(lookup(&l, "orders.42.x")->presence);
    /* nothing matches "orders" itself: the defaults, pattern ">" */
    const hr_namespace_t *d = lookup(&l, "orders");
    assert_string_equal(d->pattern, ">");
    assert_defaults_but_pattern(d);
    assert_ptr_equal(lookup(&l, "chat.1"), d);
}

static void test_namespaces_lookup_order_is_insertion_order(void **state)
{
    (void)state;
    static hr_namespaces_t l;
    hr_namespaces_init(&l);
    hr_namespace_t tail = make("orders.>:history=7");
    hr_namespace_t vip = make("orders.vip:history=1000");
    assert_int_equal(hr_namespaces_add(&l, &tail), 0);
    assert_int_equal(hr_namespaces_add(&l, &vip), 0);
    assert_int_equal(lookup(&l, "orders.vip")->history_size, 7);
}

static void test_namespaces_empty_list_gives_defaults(void **state)
{
    (void)state;
    static hr_namespaces_t l;
    hr_namespaces_init(&l);
    const hr_namespace_t *d = lookup(&l, "anything");
    assert_non_null(d);
    assert_defaults_but_pattern(d);
}

static void test_namespaces_add_rejects_bad_duplicate_and_65th(void **state)
{
    (void)state;
    static hr_namespaces_t l;
    hr_namespaces_init(&l);
    hr_namespace_t n;
    hr_namespace_default(&n);
    strcpy(n.pattern, "a b");
    assert_int_equal(hr_namespaces_add(&l, &n), HR_EINVAL);
    memset(n.pattern, 'x', sizeof(n.pattern)); /* no terminator */
    assert_int_equal(hr_namespaces_add(&l, &n), HR_EINVAL);
    for (int i = 0; i < HR_NAMESPACES_MAX; i++) {
        snprintf(n.pattern, sizeof(n.pattern), "ns%d.*", i);
        n.history_size = (uint32_t)i;
        assert_int_equal(hr_namespaces_add(&l, &n), 0);
    }
    assert_int_equal(l.count, HR_NAMESPACES_MAX);
    strcpy(n.pattern, "ns3.*");
    assert_int_equal(hr_namespaces_add(&l, &n), HR_EEXIST);
    strcpy(n.pattern, "one.more");
    assert_int_equal(hr_namespaces_add(&l, &n), HR_ENOBUFS);
    assert_int_equal(lookup(&l, "ns63.x")->history_size, 63);
    assert_int_equal(lookup(&l, "ns0.x")->history_size, 0);
}

static void test_namespace_parse_access_modes(void **state)
{
    (void)state;
    hr_namespace_t d;
    hr_namespace_default(&d);
    assert_int_equal(d.access, HR_ACCESS_PUBLIC);
    assert_int_equal(parse("orders.*:access=private"), 0);
    assert_int_equal(ns.access, HR_ACCESS_PRIVATE);
    assert_true(ns.client_publish);
    assert_int_equal(parse("news.>:access=server,history=5"), 0);
    assert_int_equal(ns.access, HR_ACCESS_SERVER);
    assert_int_equal(ns.history_size, 5);
    assert_int_equal(parse("a:access=public"), 0);
    assert_int_equal(ns.access, HR_ACCESS_PUBLIC);
    assert_parse_error("a:access=secret", "access=secret", "public, private or server");
    assert_parse_error("a:access=Private", "access=Private", NULL);
    assert_parse_error("a:access=private,access=public", "\"access\" given twice", NULL);
    assert_parse_error("a:access", "needs a value", NULL);
    assert_string_equal(hr_ns_access_name(HR_ACCESS_PRIVATE), "private");
    assert_string_equal(hr_ns_access_name(HR_ACCESS_SERVER), "server");
    assert_string_equal(hr_ns_access_name((hr_ns_access_t)9), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_namespace_default_values),
        cmocka_unit_test(test_namespace_parse_pattern_alone_keeps_defaults),
        cmocka_unit_test(test_namespace_parse_all_keys),
        cmocka_unit_test(test_namespace_parse_unspecified_keys_keep_defaults),
        cmocka_unit_test(test_namespace_parse_history_range_0_to_100000),
        cmocka_unit_test(test_namespace_parse_ttl_seconds_with_fraction),
        cmocka_unit_test(test_namespace_parse_ttl_rejects_out_of_range_and_junk),
        cmocka_unit_test(test_namespace_parse_onoff_and_slow_words_exactly),
        cmocka_unit_test(test_namespace_parse_rejects_bad_pattern),
        cmocka_unit_test(test_namespace_parse_rejects_bad_options),
        cmocka_unit_test(test_namespace_parse_failure_leaves_out_untouched),
        cmocka_unit_test(test_namespace_parse_message_fits_small_buffers),
        cmocka_unit_test(test_namespace_slow_policy_names_round_trip),
        cmocka_unit_test(test_namespaces_lookup_first_added_match_wins),
        cmocka_unit_test(test_namespaces_lookup_order_is_insertion_order),
        cmocka_unit_test(test_namespaces_empty_list_gives_defaults),
        cmocka_unit_test(test_namespaces_add_rejects_bad_duplicate_and_65th),
        cmocka_unit_test(test_namespace_parse_access_modes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
