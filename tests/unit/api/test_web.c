/* The web pages' pure parts: which file a path names (and which paths are refused as
 * leaving web/), content types, and the admin feed's --api-key check at the handshake. */
#include <string.h>

#include "test_util.h"

#include "api/web.h"
#include "herald/error.h"
#include "http/http_parse.h"

static int resolve(const char *path, char *out)
{
    return hr_web_resolve(path, strlen(path), out, 128);
}

static void test_web_resolve_exact_pages(void **state)
{
    (void)state;
    char n[128];
    assert_int_equal(resolve("/", n), 0);
    assert_string_equal(n, "index.html");
    assert_int_equal(resolve("/admin", n), 0);
    assert_string_equal(n, "admin.html");
    assert_int_equal(resolve("/herald.js", n), 0);
    assert_string_equal(n, "herald.js");
    assert_int_equal(resolve("/static/app.css", n), 0);
    assert_string_equal(n, "app.css");
    assert_int_equal(resolve("/vendor/stomp.umd.min.js", n), 0);
    assert_string_equal(n, "vendor/stomp.umd.min.js");
}

static void test_web_resolve_unknown_is_enoent(void **state)
{
    (void)state;
    char n[128];
    assert_int_equal(resolve("/index.htm", n), HR_ENOENT);
    assert_int_equal(resolve("/admin/", n), HR_ENOENT);
    assert_int_equal(resolve("/static/package.json", n), HR_ENOENT); /* not a page asset */
    assert_int_equal(resolve("/static/README", n), HR_ENOENT);
    char longname[200] = "/static/";
    memset(longname + 8, 'a', 150);
    longname[158] = 0;
    assert_int_equal(resolve(longname, n), HR_ENOENT);
}

static void test_web_resolve_traversal_is_einval(void **state)
{
    (void)state;
    char n[128];
    static const char *const bad[] = {
        "/static/",          "/static/../CMakeLists.txt", "/static/..",   "/static/a/b.js",
        "/static/%2e%2e.js", "/static/.hidden.css",       "/static/a\\b", "/vendor/../x.js",
        "/vendor/a..b.js",   "/static/a b.css",           "/vendor/",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = resolve(bad[i], n);
        if (rc != HR_EINVAL)
            fail_msg("%s: %d", bad[i], rc);
    }
}

static void test_web_content_types(void **state)
{
    (void)state;
    assert_string_equal(hr_web_content_type("a.js"), "text/javascript; charset=utf-8");
    assert_string_equal(hr_web_content_type("a.mjs"), "text/javascript; charset=utf-8");
    assert_string_equal(hr_web_content_type("index.html"), "text/html; charset=utf-8");
    assert_string_equal(hr_web_content_type("app.css"), "text/css; charset=utf-8");
    assert_string_equal(hr_web_content_type("x"), "application/octet-stream");
}

static void test_web_embedded_table_has_the_pages(void **state)
{
    (void)state;
    const char *want[] = {"index.html", "admin.html", "app.css", "demo.js", "admin.js"};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        bool found = false;
        for (const hr_web_file_t *f = hr_web_embedded; f->name; f++)
            if (strcmp(f->name, want[i]) == 0) {
                found = f->len > 0 && f->etag[0] == '"';
                break;
            }
        if (!found)
            fail_msg("%s not embedded", want[i]);
    }
    assert_non_null(hr_web_vendor[0].name);
}

/* A request with one optional header. */
static int check(const char *key, const char *target, const char *hname, const char *hvalue)
{
    hr_http_header_t h = {hname, hname ? strlen(hname) : 0, hvalue, hvalue ? strlen(hvalue) : 0};
    hr_http_request_t req = {.method = "GET",
                             .method_len = 3,
                             .target = target,
                             .target_len = strlen(target),
                             .headers = &h,
                             .num_headers = hname ? 1 : 0};
    return hr_admin_check_key(key, &req);
}

static void test_admin_key_not_set_lets_everyone_in(void **state)
{
    (void)state;
    assert_int_equal(check(NULL, "/admin/ws", NULL, NULL), 0);
    assert_int_equal(check("", "/admin/ws", NULL, NULL), 0);
}

static void test_admin_key_in_subprotocol(void **state)
{
    (void)state;
    assert_int_equal(
        check("s3cret", "/admin/ws", "Sec-WebSocket-Protocol", "herald-admin, herald-key.s3cret"),
        0);
    assert_int_equal(check("s3cret", "/admin/ws", "sec-websocket-protocol", "herald-key.s3cret"),
                     0);
    assert_int_equal(
        check("s3cret", "/admin/ws", "Sec-WebSocket-Protocol", "herald-admin, herald-key.s3cre"),
        401);
    assert_int_equal(check("s3cret", "/admin/ws", "Sec-WebSocket-Protocol", "herald-key.s3cretX"),
                     401);
    assert_int_equal(check("s3cret", "/admin/ws", "Sec-WebSocket-Protocol", "herald-admin"), 401);
    assert_int_equal(check("s3cret", "/admin/ws", NULL, NULL), 401);
}

static void test_admin_key_in_query_percent_decoded(void **state)
{
    (void)state;
    assert_int_equal(check("s3cret", "/admin/ws?key=s3cret", NULL, NULL), 0);
    assert_int_equal(check("a b/c", "/admin/ws?x=1&key=a%20b%2Fc", NULL, NULL), 0);
    assert_int_equal(check("a b/c", "/admin/ws?key=a+b%2fc&y=2", NULL, NULL), 0);
    assert_int_equal(check("s3cret", "/admin/ws?key=", NULL, NULL), 401);
    assert_int_equal(check("s3cret", "/admin/ws?key=s3cre", NULL, NULL), 401);
    assert_int_equal(check("s3cret", "/admin/ws?mykey=s3cret", NULL, NULL), 401);
    assert_int_equal(check("s3cret", "/admin/ws?key=%zz", NULL, NULL), 401);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_web_resolve_exact_pages),
        cmocka_unit_test(test_web_resolve_unknown_is_enoent),
        cmocka_unit_test(test_web_resolve_traversal_is_einval),
        cmocka_unit_test(test_web_content_types),
        cmocka_unit_test(test_web_embedded_table_has_the_pages),
        cmocka_unit_test(test_admin_key_not_set_lets_everyone_in),
        cmocka_unit_test(test_admin_key_in_subprotocol),
        cmocka_unit_test(test_admin_key_in_query_percent_decoded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
