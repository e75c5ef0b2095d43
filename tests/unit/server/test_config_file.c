/* Unit tests for the config file (src/server/config_file.c): keys are the option
 * table's names, top level or in [herald], [routes] maps to route-*; # and ; comments;
 * namespace repeats; every error is reported with its line; command-line options
 * override the file; values outlive the text; and the table written back by
 * hr_config_print reads back to the same configuration. */
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/log.h"
#include "server/config_file.h"
#include "server/reload.h"

#define MAX_ERRORS 32

typedef struct errors {
    int n;
    int line[MAX_ERRORS];
    char file[MAX_ERRORS][64];
    char msg[MAX_ERRORS][640];
} errors_t;

static void collect(void *data, const char *file, int line, const char *msg)
{
    errors_t *e = data;
    if (e->n < MAX_ERRORS) {
        e->line[e->n] = line;
        snprintf(e->file[e->n], sizeof(e->file[0]), "%s", file ? file : "");
        snprintf(e->msg[e->n], sizeof(e->msg[0]), "%s", msg);
    }
    e->n++;
}

/* Loads text over a fresh config; returns the load's result. */
static int load(hr_config_t *cfg, errors_t *e, const char *text)
{
    memset(e, 0, sizeof(*e));
    hr_config_init(cfg);
    return hr_config_load_string(cfg, "herald.conf", text, collect, e);
}

static void expect_error(const errors_t *e, int i, int line, const char *part)
{
    if (i >= e->n)
        fail_msg("expected an error #%d on line %d (%s), got %d errors", i, line, part, e->n);
    if (e->line[i] != line || !strstr(e->msg[i], part))
        fail_msg("error #%d: expected line %d with '%s', got line %d: %s", i, line, part,
                 e->line[i], e->msg[i]);
    assert_string_equal(e->file[i], "herald.conf");
}

static void test_config_file_top_level_and_herald_section(void **state)
{
    (void)state;
    hr_config_t cfg;
    errors_t e;
    assert_int_equal(load(&cfg, &e,
                          "threads = 3\n"
                          "max-message = 1K\n"
                          "[herald]\n"
                          "idle-timeout = 1.5\n"
                          "listen = 0.0.0.0:9000\n"
                          "compression = off\n"
                          "log-level = debug\n"
                          "stomp-heartbeat = 5000,0\n"),
                     0);
    assert_int_equal(e.n, 0);
    assert_int_equal(cfg.server.threads, 3);
    assert_int_equal(cfg.server.max_message, 1024);
    assert_int_equal(cfg.server.idle_timeout_ms, 1500);
    assert_string_equal(cfg.server.host, "0.0.0.0");
    assert_int_equal(cfg.server.port, 9000);
    assert_false(cfg.server.compression);
    assert_int_equal(cfg.log_level, HR_LOG_DEBUG);
    assert_int_equal(cfg.stomp_heartbeat[0], 5000);
    assert_int_equal(cfg.stomp_heartbeat[1], 0);
    /* untouched options keep their defaults */
    assert_int_equal(cfg.server.max_backlog, 1u << 20);
    hr_config_deinit(&cfg);
}

static void test_config_file_comments_blank_lines_and_indentation(void **state)
{
    (void)state;
    hr_config_t cfg;
    errors_t e;
    assert_int_equal(load(&cfg, &e,
                          "\xEF\xBB\xBF# a comment\n"
                          "; another comment\n"
                          "\n"
                          "   \t\n"
                          "threads = 2   # trailing comment\n"
                          "max-message = 2K ; trailing comment\n"
                          "   [herald]   \n"
                          "    ping-interval = 7\n"
                          "\tidle-timeout=8\r\n"
                          "api-key = a#b;c\n"),
                     0);
    assert_int_equal(e.n, 0);
    assert_int_equal(cfg.server.threads, 2);
    assert_int_equal(cfg.server.max_message, 2048);
    /* an indented line is a key of its own, not a continuation of the previous value */
    assert_int_equal(cfg.server.ping_interval_ms, 7000);
    assert_int_equal(cfg.server.idle_timeout_ms, 8000);
    /* # and ; not after a blank are part of the value */
    assert_string_equal(cfg.api_key, "a#b;c");
    hr_config_deinit(&cfg);
}

static void test_config_file_quoted_value_keeps_comment_characters(void **state)
{
    (void)state;
    hr_config_t cfg;
    errors_t e;
    assert_int_equal(load(&cfg, &e, "api-key = \"s3cret ;not # a comment\"  # comment\n"), 0);
    assert_string_equal(cfg.api_key, "s3cret ;not # a comment");
    hr_config_deinit(&cfg);
}

static void test_config_file_routes_section(void **state)
{
    (void)state;
    hr_config_t cfg;
    errors_t e;
    assert_int_equal(load(&cfg, &e,
                          "route-broadcast = /all\n"
                          "[routes]\n"
                          "echo = /echo\n"
                          "pubsub = off\n"
                          "stomp = /s\n"),
                     0);
    assert_string_equal(cfg.route_echo, "/echo");
    assert_string_equal(cfg.route_broadcast, "/all");
    assert_string_equal(cfg.route_pubsub, "off");
    assert_string_equal(cfg.route_stomp, "/s");
    hr_config_deinit(&cfg);
}

static void test_config_file_namespace_repeats_in_order(void **state)
{
    (void)state;
    hr_config_t cfg;
    errors_t e;
    assert_int_equal(load(&cfg, &e,
                          "namespace = orders.*:history=50,ttl=600\n"
                          "namespace = chat.>:presence=on\n"
                          "[herald]\n"
                          "namespace = feed\n"),
                     0);
    assert_int_equal(cfg.namespaces.count, 3);
    assert_string_equal(cfg.namespaces.items[0].pattern, "orders.*");
    assert_int_equal(cfg.namespaces.items[0].history_size, 50);
    assert_int_equal(cfg.namespaces.items[0].history_ttl_ms, 600000);
    assert_string_equal(cfg.namespaces.items[1].pattern, "chat.>");
    assert_true(cfg.namespaces.items[1].presence);
    assert_string_equal(cfg.namespaces.items[2].pattern, "feed");
    hr_config_deinit(&cfg);
}

static void test_config_file_error_names_its_line(void **state)
{
    (void)state;
    hr_config_t cfg;
    errors_t e;
    assert_int_equal(load(&cfg, &e,
                          "# line 1\n"
                          "threads = 2\n"
                          "\n"
                          "max-message = lots\n"),
                     1);
    assert_int_equal(e.n, 1);
    expect_error(&e, 0, 4, "invalid value 'lots' for --max-message");
    hr_config_deinit(&cfg);
}

static void test_config_file_reports_every_error(void **state)
{
    (void)state;
    hr_config_t cfg;
    errors_t e;
    int n = load(&cfg, &e,
                 "threads = x\n"                        /* 1 */
                 "a line without a value\n"             /* 2 */
                 "[herald\n"                            /* 3 */
                 "max-message = 1K\n"                   /* 4 */
                 "max-message = 2K\n"                   /* 5 */
                 "[routes]\n"                           /* 6 */
                 "bogus = /x\n"                         /* 7 */
                 "echo = ws\n"                          /* 8 */
                 "[herald]\n"                           /* 9 */
                 "deflate-context-takeover = maybe\n"   /* 10 */
                 "= 3\n"                                /* 11 */
                 "namespace = a:history=-1\n"           /* 12 */
                 "namespace = b\n"                      /* 13 */
                 "namespace = b\n"                      /* 14 */
                 "ping-interval =\n"                    /* 15 */
                 "log-format = xml\n"                   /* 16 */
                 "unterminated [section at the end\n"); /* 17, no newline issue */
    assert_int_equal(n, 13);
    assert_int_equal(e.n, 13);
    expect_error(&e, 0, 1, "for --threads");
    expect_error(&e, 1, 2, "expected KEY = VALUE");
    expect_error(&e, 2, 3, "expected ']'");
    expect_error(&e, 3, 5, "given twice (first on line 4)");
    expect_error(&e, 4, 7, "unknown route 'bogus'");
    expect_error(&e, 5, 8, "for --route-echo");
    expect_error(&e, 6, 10, "for --deflate-context-takeover");
    expect_error(&e, 7, 11, "missing key");
    expect_error(&e, 8, 12, "namespace");
    expect_error(&e, 9, 14, "given twice");
    expect_error(&e, 10, 15, "needs a value");
    expect_error(&e, 11, 16, "for --log-format");
    expect_error(&e, 12, 17, "expected KEY = VALUE");
    hr_config_deinit(&cfg);
}

static void test_config_file_unknown_key_error_with_its_line(void **state)
{
    (void)state;
    hr_config_t cfg;
    errors_t e;
    assert_int_equal(load(&cfg, &e,
                          "threads = 2\n"
                          "\n"
                          "max-mesage = 1K\n"
                          "[herald]\n"
                          "config = other.conf\n"),
                     2);
    expect_error(&e, 0, 3, "unknown option 'max-mesage'");
    expect_error(&e, 1, 5, "unknown option 'config'");
    hr_config_deinit(&cfg);
}

static void test_config_file_unknown_section_reported_once_at_its_header(void **state)
{
    (void)state;
    hr_config_t cfg;
    errors_t e;
    assert_int_equal(load(&cfg, &e,
                          "[server]\n"
                          "threads = 2\n"
                          "max-message = 1K\n"
                          "[herald]\n"
                          "threads = 3\n"),
                     1);
    expect_error(&e, 0, 1, "unknown section [server]");
    assert_int_equal(cfg.server.threads, 3);
    hr_config_deinit(&cfg);
}

static void test_config_file_flag_takes_on_off(void **state)
{
    (void)state;
    hr_config_t cfg;
    errors_t e;
    assert_int_equal(load(&cfg, &e, "deflate-context-takeover = on\n"), 0);
    assert_true(cfg.server.deflate_context_takeover);
    hr_config_deinit(&cfg);
    assert_int_equal(load(&cfg, &e, "deflate-context-takeover = false\n"), 0);
    assert_false(cfg.server.deflate_context_takeover);
    hr_config_deinit(&cfg);
}

static void test_config_file_long_line_is_read_whole(void **state)
{
    (void)state;
    char origins[1200] = "";
    for (int i = 0; i < 40; i++)
        snprintf(origins + strlen(origins), sizeof(origins) - strlen(origins),
                 "%shttps://app%02d.example.com", i ? ", " : "", i);
    char text[1400];
    snprintf(text, sizeof(text), "allowed-origins = %s\nthreads = 4\n", origins);
    hr_config_t cfg;
    errors_t e;
    assert_int_equal(load(&cfg, &e, text), 0);
    assert_string_equal(cfg.server.allowed_origins, origins);
    assert_int_equal(cfg.server.threads, 4);
    hr_config_deinit(&cfg);
}

static void test_config_file_values_outlive_the_text(void **state)
{
    (void)state;
    char *text = strdup("api-key = k1\napp-webhook = http://127.0.0.1:9/app\n"
                        "trusted-proxies = 10.0.0.0/8\nallowed-origins = *\n");
    hr_config_t cfg;
    errors_t e;
    assert_int_equal(load(&cfg, &e, text), 0);
    memset(text, 'X', strlen(text));
    free(text);
    assert_string_equal(cfg.api_key, "k1");
    assert_string_equal(cfg.app_webhook, "http://127.0.0.1:9/app");
    assert_string_equal(cfg.trusted_proxies, "10.0.0.0/8");
    assert_string_equal(cfg.server.allowed_origins, "*");
    hr_config_deinit(&cfg);
}

static void test_config_file_flags_override_file(void **state)
{
    (void)state;
    hr_config_t cfg;
    errors_t e;
    assert_int_equal(load(&cfg, &e,
                          "max-message = 1K\n"
                          "threads = 2\n"
                          "api-key = from-file\n"
                          "namespace = orders.*:history=50\n"
                          "namespace = chat.>:presence=on\n"),
                     0);
    hr_config_arg_t args[] = {
        {"max-message", "64K"},
        {"api-key", "from-flag"},
        {"namespace", "chat.>:history=7"},
        {"namespace", "orders.eu"},
        {"deflate-context-takeover", NULL},
    };
    char err[512];
    assert_int_equal(hr_config_apply_args(&cfg, args, 5, err, sizeof(err)), 0);
    assert_int_equal(cfg.server.max_message, 64 * 1024);
    assert_int_equal(cfg.server.threads, 2); /* from the file: not on the command line */
    assert_string_equal(cfg.api_key, "from-flag");
    assert_true(cfg.server.deflate_context_takeover);
    /* the command line's namespaces first; the file's chat.> yields to the flag's */
    assert_int_equal(cfg.namespaces.count, 3);
    assert_string_equal(cfg.namespaces.items[0].pattern, "chat.>");
    assert_int_equal(cfg.namespaces.items[0].history_size, 7);
    assert_false(cfg.namespaces.items[0].presence);
    assert_string_equal(cfg.namespaces.items[1].pattern, "orders.eu");
    assert_string_equal(cfg.namespaces.items[2].pattern, "orders.*");
    assert_int_equal(cfg.namespaces.items[2].history_size, 50);
    hr_config_deinit(&cfg);
}

static void test_config_file_bad_flag_is_an_error(void **state)
{
    (void)state;
    hr_config_t cfg;
    hr_config_init(&cfg);
    hr_config_arg_t args[] = {{"threads", "0"}};
    char err[512];
    assert_int_equal(hr_config_apply_args(&cfg, args, 1, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "--threads"));
    hr_config_deinit(&cfg);
}

/* A temporary file holding text; its path in path[]. */
static void write_temp(char *path, size_t len, const char *text)
{
    snprintf(path, len, "/tmp/herald-test-config-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static void test_config_load_file_with_args_and_line_numbers(void **state)
{
    (void)state;
    char path[64];
    write_temp(path, sizeof(path), "threads = 2\nmax-message = 1K\n\nidle-timeout = never\n");
    hr_config_t cfg;
    errors_t e = {0};
    hr_config_arg_t args[] = {{"max-message", "4K"}};
    assert_int_equal(hr_config_load(&cfg, path, args, 1, collect, &e), 1);
    assert_int_equal(e.n, 1);
    assert_int_equal(e.line[0], 4);
    assert_string_equal(e.file[0], path);
    hr_config_deinit(&cfg);
    unlink(path);

    write_temp(path, sizeof(path), "threads = 2\nmax-message = 1K\n");
    memset(&e, 0, sizeof(e));
    assert_int_equal(hr_config_load(&cfg, path, args, 1, collect, &e), 0);
    assert_int_equal(cfg.server.threads, 2);
    assert_int_equal(cfg.server.max_message, 4096); /* the flag wins */
    hr_config_deinit(&cfg);
    unlink(path);
}

static void test_config_load_file_unreadable(void **state)
{
    (void)state;
    hr_config_t cfg;
    errors_t e = {0};
    int rc = hr_config_load(&cfg, "/nonexistent/herald.conf", NULL, 0, collect, &e);
    assert_true(rc < 0);
    assert_int_equal(e.n, 1);
    assert_int_equal(e.line[0], 0);
    assert_non_null(strstr(e.msg[0], "cannot read"));
    hr_config_deinit(&cfg);
}

/* Every option set away from its default is written by hr_config_print and reads back
 * to the same value. */
static void test_config_print_reads_back(void **state)
{
    (void)state;
    hr_config_t cfg;
    errors_t e;
    assert_int_equal(load(&cfg, &e,
                          "listen = [::1]:9001\n"
                          "threads = 5\n"
                          "max-message = 3M\n"
                          "max-backlog = 1000000\n"
                          "ping-interval = 0.25\n"
                          "idle-timeout = 0\n"
                          "allowed-origins = https://a.example, https://b.example\n"
                          "compression = off\n"
                          "deflate-context-takeover = on\n"
                          "namespace = orders.*:history=50,ttl=0.5,publish=off,slow=drop-oldest\n"
                          "namespace = chat.>:presence=on\n"
                          "api-key = \"k ;1\"\n"
                          "stomp-heartbeat = 1000,2000\n"
                          "stomp-heartbeat-grace = 2.5\n"
                          "log-format = json\n"
                          "access-log = on\n"
                          "log-level = warn\n"
                          "[routes]\n"
                          "echo = /e\n"
                          "stomp = off\n"),
                     0);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    hr_config_print(f, &cfg);
    fclose(f);
    hr_config_t back;
    int n = load(&back, &e, text);
    if (n != 0)
        fail_msg("printed config has %d errors, first on line %d: %s\n%s", n, e.line[0], e.msg[0],
                 text);
    for (size_t i = 0; i < hr_config_count(); i++)
        if (!hr_config_same(&cfg, &back, hr_config_name(i)))
            fail_msg("--%s differs after print and read\n%s", hr_config_name(i), text);
    assert_non_null(strstr(text, "\nmax-message = 3M\n"));
    assert_non_null(strstr(text, "\n# max-header = 8K\n")); /* a default, commented out */
    assert_non_null(strstr(text, "\n[routes]\n"));
    free(text);
    hr_config_deinit(&back);
    hr_config_deinit(&cfg);
}

static void test_config_same_and_copy(void **state)
{
    (void)state;
    hr_config_t a, b;
    errors_t e;
    assert_int_equal(load(&a, &e, "listen = 0.0.0.0:1\napi-key = one\nmax-message = 1K\n"), 0);
    assert_int_equal(load(&b, &e, "listen = 0.0.0.0:2\napi-key = two\nmax-message = 1K\n"), 0);
    assert_false(hr_config_same(&a, &b, "listen"));
    assert_false(hr_config_same(&a, &b, "api-key"));
    assert_true(hr_config_same(&a, &b, "max-message"));
    assert_int_equal(hr_config_copy(&b, &a, "listen"), 0);
    assert_int_equal(hr_config_copy(&b, &a, "api-key"), 0);
    hr_config_deinit(&a); /* b keeps its own copies */
    assert_string_equal(b.server.host, "0.0.0.0");
    assert_int_equal(b.server.port, 1);
    assert_string_equal(b.api_key, "one");
    char out[64];
    hr_config_format(&b, "listen", out, sizeof(out));
    assert_string_equal(out, "0.0.0.0:1");
    hr_config_deinit(&b);
}

static void test_config_reload_live_options(void **state)
{
    (void)state;
    assert_true(hr_reload_is_live("max-message"));
    assert_true(hr_reload_is_live("namespace"));
    assert_true(hr_reload_is_live("allowed-origins"));
    assert_false(hr_reload_is_live("listen"));
    assert_false(hr_reload_is_live("threads"));
    assert_false(hr_reload_is_live("route-echo"));
    assert_false(hr_reload_is_live("compression"));
}

/* Out of memory at each allocation in turn: an error, never a crash or a leak. */
static void test_config_file_allocation_failures(void **state)
{
    (void)state;
    const char *text = "api-key = k\nnamespace = a\nthreads = 2\n[routes]\necho = /e\n";
    for (long nth = 1; nth < 64; nth++) {
        hr_config_t cfg;
        errors_t e = {0};
        hr_config_init(&cfg);
        hr_alloc_fail_at(nth);
        int n = hr_config_load_string(&cfg, "herald.conf", text, collect, &e);
        hr_alloc_fail_at(0);
        hr_config_deinit(&cfg);
        if (n == 0)
            return; /* got through */
        assert_true(e.n >= 1);
    }
    fail_msg("never got through");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_file_top_level_and_herald_section),
        cmocka_unit_test(test_config_file_comments_blank_lines_and_indentation),
        cmocka_unit_test(test_config_file_quoted_value_keeps_comment_characters),
        cmocka_unit_test(test_config_file_routes_section),
        cmocka_unit_test(test_config_file_namespace_repeats_in_order),
        cmocka_unit_test(test_config_file_error_names_its_line),
        cmocka_unit_test(test_config_file_reports_every_error),
        cmocka_unit_test(test_config_file_unknown_key_error_with_its_line),
        cmocka_unit_test(test_config_file_unknown_section_reported_once_at_its_header),
        cmocka_unit_test(test_config_file_flag_takes_on_off),
        cmocka_unit_test(test_config_file_long_line_is_read_whole),
        cmocka_unit_test(test_config_file_values_outlive_the_text),
        cmocka_unit_test(test_config_file_flags_override_file),
        cmocka_unit_test(test_config_file_bad_flag_is_an_error),
        cmocka_unit_test(test_config_load_file_with_args_and_line_numbers),
        cmocka_unit_test(test_config_load_file_unreadable),
        cmocka_unit_test(test_config_print_reads_back),
        cmocka_unit_test(test_config_same_and_copy),
        cmocka_unit_test(test_config_reload_live_options),
        cmocka_unit_test(test_config_file_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
