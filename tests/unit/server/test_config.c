/* Unit tests for the option table (src/server/config.c, hr_config_set): every option
 * takes its default-like values; sizes with K/M/G; seconds with fractions become ms;
 * the --listen forms; flags refuse values; negative, garbage, overflowing and
 * out-of-range values fail with -1 and a message that names the option. */
#include "test_util.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "server/config.h"

static char err[512]; /* as in cmd_serve.c */

static int set(hr_config_t *cfg, const char *name, const char *value)
{
    err[0] = 0;
    return hr_config_set(cfg, name, value, err, sizeof(err));
}

/* Fails with -1, leaves the config as it was, and the message names --name. */
static void expect_bad(const char *name, const char *value)
{
    hr_config_t cfg, before;
    hr_config_init(&cfg);
    memcpy(&before, &cfg, sizeof(cfg));
    int rc = set(&cfg, name, value);
    if (rc != -1)
        fail_msg("--%s '%s' was accepted", name, value ? value : "(null)");
    char opt[64];
    snprintf(opt, sizeof(opt), "--%s", name);
    if (!strstr(err, opt))
        fail_msg("message for --%s '%s' does not name it: %s", name, value ? value : "(null)", err);
    assert_memory_equal(&cfg.server, &before.server, sizeof(cfg.server));
    assert_int_equal(cfg.log_level, before.log_level);
}

static void test_config_init_defaults(void **state)
{
    (void)state;
    hr_config_t cfg;
    hr_config_init(&cfg);
    assert_string_equal(cfg.listen, "127.0.0.1:8080");
    assert_int_equal(cfg.log_level, HR_LOG_INFO);
    assert_true(cfg.server.handle_signals);
    assert_int_equal(cfg.server.max_message, 16u << 20);
    assert_int_equal(cfg.server.ping_interval_ms, 25000);
    assert_int_equal(cfg.server.idle_timeout_ms, 60000);
    assert_int_equal(cfg.server.handshake_timeout_ms, 10000);
    assert_int_equal(cfg.server.shutdown_timeout_ms, 5000);
    assert_true(cfg.server.compression);
    assert_false(cfg.server.deflate_context_takeover);
}

static void test_config_every_option_takes_its_default_like_value(void **state)
{
    (void)state;
    hr_config_t cfg;
    hr_config_init(&cfg);
    memset(&cfg.server, 0x5A, sizeof(cfg.server)); /* so every field must be written */
    cfg.server.compression = true;
    cfg.server.deflate_context_takeover = false;
    assert_int_equal(set(&cfg, "listen", "127.0.0.1:8080"), 0);
    assert_string_equal(cfg.server.host, "127.0.0.1");
    assert_int_equal(cfg.server.port, 8080);
    assert_int_equal(set(&cfg, "threads", "4"), 0);
    assert_int_equal(cfg.server.threads, 4);
    assert_int_equal(set(&cfg, "max-message", "16M"), 0);
    assert_int_equal(cfg.server.max_message, 16u << 20);
    assert_int_equal(set(&cfg, "max-backlog", "1M"), 0);
    assert_int_equal(cfg.server.max_backlog, 1u << 20);
    assert_int_equal(set(&cfg, "max-header", "8K"), 0);
    assert_int_equal(cfg.server.max_header, 8192);
    assert_int_equal(set(&cfg, "ping-interval", "25"), 0);
    assert_int_equal(cfg.server.ping_interval_ms, 25000);
    assert_int_equal(set(&cfg, "idle-timeout", "60"), 0);
    assert_int_equal(cfg.server.idle_timeout_ms, 60000);
    assert_int_equal(set(&cfg, "handshake-timeout", "10"), 0);
    assert_int_equal(cfg.server.handshake_timeout_ms, 10000);
    assert_int_equal(set(&cfg, "shutdown-timeout", "5"), 0);
    assert_int_equal(cfg.server.shutdown_timeout_ms, 5000);
    const char *origins = "https://*.example.com,localhost:3000";
    assert_int_equal(set(&cfg, "allowed-origins", origins), 0);
    assert_ptr_equal(cfg.server.allowed_origins, origins);
    assert_int_equal(set(&cfg, "compression", "off"), 0);
    assert_false(cfg.server.compression);
    assert_int_equal(set(&cfg, "compression", "on"), 0);
    assert_true(cfg.server.compression);
    assert_int_equal(set(&cfg, "compression", "false"), 0);
    assert_false(cfg.server.compression);
    assert_int_equal(set(&cfg, "compression", "true"), 0);
    assert_true(cfg.server.compression);
    assert_int_equal(set(&cfg, "deflate-context-takeover", NULL), 0);
    assert_true(cfg.server.deflate_context_takeover);
    static const char *const levels[] = {"error", "warn", "info", "debug"};
    static const int level_values[] = {HR_LOG_ERROR, HR_LOG_WARN, HR_LOG_INFO, HR_LOG_DEBUG};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(set(&cfg, "log-level", levels[i]), 0);
        assert_int_equal(cfg.log_level, level_values[i]);
    }
}

static void test_config_known_options_and_their_values(void **state)
{
    (void)state;
    static const char *const with_value[] = {
        "listen",           "threads",         "max-message",  "max-backlog",
        "max-header",       "ping-interval",   "idle-timeout", "handshake-timeout",
        "shutdown-timeout", "allowed-origins", "compression",  "log-level"};
    for (size_t i = 0; i < sizeof(with_value) / sizeof(with_value[0]); i++) {
        bool takes = false;
        assert_true(hr_config_known(with_value[i], &takes));
        assert_true(takes);
    }
    bool takes = true;
    assert_true(hr_config_known("deflate-context-takeover", &takes));
    assert_false(takes);
    assert_false(hr_config_known("no-such-option", &takes));
    assert_false(hr_config_known("--listen", &takes));
    assert_false(hr_config_known("", NULL));
    assert_true(hr_config_known("listen", NULL));
}

static void test_config_unknown_option_is_minus_one(void **state)
{
    (void)state;
    expect_bad("no-such-option", "1");
    expect_bad("no-such-option", NULL);
    expect_bad("Listen", "127.0.0.1:1");
    expect_bad("max_message", "1");
}

static void test_config_sizes_take_k_m_g_suffixes(void **state)
{
    (void)state;
    hr_config_t cfg;
    hr_config_init(&cfg);
    static const struct {
        const char *v;
        uint64_t want;
    } ok[] = {
        {"1", 1},
        {"65536", 65536},
        {"64K", 64u << 10},
        {"64k", 64u << 10},
        {"16M", 16u << 20},
        {"16m", 16u << 20},
        {"1G", 1u << 30},
        {"3g", 3ull << 30},
        {"4294967295", 4294967295ull}, /* the maximum: messages are capped below 4 GiB */
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        assert_int_equal(set(&cfg, "max-message", ok[i].v), 0);
        assert_int_equal(cfg.server.max_message, ok[i].want);
    }
    assert_int_equal(set(&cfg, "max-message", "4G"), -1);  /* one past the maximum */
    assert_int_equal(set(&cfg, "max-backlog", "1024"), 0); /* its minimum */
    assert_int_equal(cfg.server.max_backlog, 1024);
    assert_int_equal(set(&cfg, "max-header", "256"), 0);
    assert_int_equal(cfg.server.max_header, 256);
    assert_int_equal(set(&cfg, "max-header", "1M"), 0); /* its maximum */
    assert_int_equal(cfg.server.max_header, 1u << 20);
    assert_int_equal(set(&cfg, "max-header", "1024K"), 0);
    assert_int_equal(cfg.server.max_header, 1u << 20);
}

static void test_config_bad_sizes_are_minus_one_naming_the_option(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "-1",
        "-0",
        "+5",
        "0",
        "0K",
        "abc",
        "K",
        "12X",
        "1.5M",
        "16MB",
        "16 M",
        "1T",
        "1025G",
        "1099511627777",
        "18446744073709551615",
        "18446744073709551616",
        "99999999999999999999999",
        "17179869184G",
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_bad("max-message", bad[i]);
    expect_bad("max-message", NULL);
    expect_bad("max-backlog", "1023");
    expect_bad("max-backlog", "1025G");
    expect_bad("max-header", "255");
    expect_bad("max-header", "1025K");
    expect_bad("max-header", "2M");
    expect_bad("max-header", "1G");
}

static void test_config_threads_range(void **state)
{
    (void)state;
    hr_config_t cfg;
    hr_config_init(&cfg);
    assert_int_equal(set(&cfg, "threads", "1"), 0);
    assert_int_equal(cfg.server.threads, 1);
    assert_int_equal(set(&cfg, "threads", "256"), 0);
    assert_int_equal(cfg.server.threads, 256);
    static const char *const bad[] = {
        "0", "-1", "257", "2x", "x2", "1.5", "", "4294967297", "99999999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_bad("threads", bad[i]);
    expect_bad("threads", NULL);
}

static void test_config_seconds_with_fractions_become_ms(void **state)
{
    (void)state;
    hr_config_t cfg;
    hr_config_init(&cfg);
    static const struct {
        const char *v;
        uint32_t want;
    } ok[] = {
        {"0", 0},      {"0.5", 500},         {"1.25", 1250}, {"0.001", 1},
        {"1.5", 1500}, {"86400", 86400000u}, {"30", 30000},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        assert_int_equal(set(&cfg, "idle-timeout", ok[i].v), 0);
        assert_int_equal(cfg.server.idle_timeout_ms, ok[i].want);
        assert_int_equal(set(&cfg, "ping-interval", ok[i].v), 0);
        assert_int_equal(cfg.server.ping_interval_ms, ok[i].want);
    }
    assert_int_equal(set(&cfg, "handshake-timeout", "0.001"), 0); /* its minimum */
    assert_int_equal(cfg.server.handshake_timeout_ms, 1);
    assert_int_equal(set(&cfg, "handshake-timeout", "3600"), 0);
    assert_int_equal(cfg.server.handshake_timeout_ms, 3600000);
    assert_int_equal(set(&cfg, "shutdown-timeout", "0.25"), 0);
    assert_int_equal(cfg.server.shutdown_timeout_ms, 250);
}

static void test_config_bad_seconds_are_minus_one_naming_the_option(void **state)
{
    (void)state;
    static const char *const bad[] = {"-1",    "-0.5", "86400.5", "86401", "1e9", "abc",  "1s",
                                      "1.5.2", "nan",  "inf",     "-inf",  "",    "1e999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        expect_bad("idle-timeout", bad[i]);
        expect_bad("ping-interval", bad[i]);
    }
    expect_bad("handshake-timeout", "0"); /* must be positive */
    expect_bad("handshake-timeout", "0.0004");
    expect_bad("handshake-timeout", "3601");
    expect_bad("shutdown-timeout", "3600.01");
    expect_bad("shutdown-timeout", NULL);
}

static void test_config_listen_forms(void **state)
{
    (void)state;
    hr_config_t cfg;
    hr_config_init(&cfg);
    assert_int_equal(set(&cfg, "listen", "127.0.0.1:0"), 0);
    assert_string_equal(cfg.server.host, "127.0.0.1");
    assert_int_equal(cfg.server.port, 0);
    assert_int_equal(set(&cfg, "listen", "[::1]:8080"), 0);
    assert_string_equal(cfg.server.host, "::1");
    assert_int_equal(cfg.server.port, 8080);
    assert_int_equal(set(&cfg, "listen", "0.0.0.0:65535"), 0);
    assert_string_equal(cfg.server.host, "0.0.0.0");
    assert_int_equal(cfg.server.port, 65535);
    assert_int_equal(set(&cfg, "listen", "localhost:1"), 0);
    assert_string_equal(cfg.server.host, "localhost");
    assert_int_equal(cfg.server.port, 1);
    assert_int_equal(set(&cfg, "listen", "[::]:443"), 0);
    assert_string_equal(cfg.server.host, "::");
    assert_int_equal(cfg.server.port, 443);
}

static void test_config_bad_listen_is_minus_one_naming_the_option(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "127.0.0.1",       /* missing port */
        "127.0.0.1:",      /* empty port */
        ":8080",           /* missing host */
        "127.0.0.1:70000", /* port out of range */
        "127.0.0.1:65536",
        "127.0.0.1:-1",
        "127.0.0.1:80x",
        "127.0.0.1:x",
        "[::1]", /* IPv6 without a port */
        "[::1]:",
        "127.0.0.1:99999999999999999999999",
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_bad("listen", bad[i]);
    expect_bad("listen", NULL);
    char longv[300];
    memset(longv, 'h', sizeof(longv));
    strcpy(longv + sizeof(longv) - 6, ":8080");
    expect_bad("listen", longv);
}

static void test_config_flags_refuse_values(void **state)
{
    (void)state;
    expect_bad("deflate-context-takeover", "on");
    expect_bad("deflate-context-takeover", "true");
    expect_bad("deflate-context-takeover", "");
}

static void test_config_onoff_and_level_refuse_other_words(void **state)
{
    (void)state;
    static const char *const onoff[] = {"yes", "no", "1", "0", "ON", "of", "", "on "};
    for (size_t i = 0; i < sizeof(onoff) / sizeof(onoff[0]); i++)
        expect_bad("compression", onoff[i]);
    expect_bad("compression", NULL);
    static const char *const levels[] = {"verbose", "INFO", "warning", "3", "", "trace"};
    for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++)
        expect_bad("log-level", levels[i]);
    expect_bad("log-level", NULL);
    expect_bad("allowed-origins", NULL);
}

static void test_config_error_message_fits_a_small_buffer(void **state)
{
    (void)state;
    hr_config_t cfg;
    hr_config_init(&cfg);
    char small[12];
    memset(small, 'X', sizeof(small));
    assert_int_equal(hr_config_set(&cfg, "max-message", "garbage", small, sizeof(small)), -1);
    assert_non_null(memchr(small, 0, sizeof(small)));
}

static void test_config_usage_lists_every_option(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    hr_config_usage(f);
    fclose(f);
    static const char *const names[] = {
        "--listen",           "--threads",         "--max-message",  "--max-backlog",
        "--max-header",       "--ping-interval",   "--idle-timeout", "--handshake-timeout",
        "--shutdown-timeout", "--allowed-origins", "--compression",  "--deflate-context-takeover",
        "--log-level"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        assert_non_null(strstr(text, names[i]));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_init_defaults),
        cmocka_unit_test(test_config_every_option_takes_its_default_like_value),
        cmocka_unit_test(test_config_known_options_and_their_values),
        cmocka_unit_test(test_config_unknown_option_is_minus_one),
        cmocka_unit_test(test_config_sizes_take_k_m_g_suffixes),
        cmocka_unit_test(test_config_bad_sizes_are_minus_one_naming_the_option),
        cmocka_unit_test(test_config_threads_range),
        cmocka_unit_test(test_config_seconds_with_fractions_become_ms),
        cmocka_unit_test(test_config_bad_seconds_are_minus_one_naming_the_option),
        cmocka_unit_test(test_config_listen_forms),
        cmocka_unit_test(test_config_bad_listen_is_minus_one_naming_the_option),
        cmocka_unit_test(test_config_flags_refuse_values),
        cmocka_unit_test(test_config_onoff_and_level_refuse_other_words),
        cmocka_unit_test(test_config_error_message_fits_a_small_buffer),
        cmocka_unit_test(test_config_usage_lists_every_option),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
