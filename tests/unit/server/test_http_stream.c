/* Unit tests for streamed HTTP answers (hr_http_stream_start/_write/_end in
 * src/server/session.c) against an in-process server and a blocking client socket:
 * exact chunked framing, HTTP/1.0 bodies until close, keep-alive and pipelined requests
 * after the end (inside and outside the handler), on_close exactly once when the client
 * leaves and never after the end, writes to a gone stream, and a slow consumer. */
#include "test_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "base/refbuf.h"
#include "herald.h"
#include "herald/error.h"
#include "server/server.h"

static atomic_int closes;    /* on_close calls */
static atomic_int last_rc;   /* the timer's last write result */
static atomic_int flood_rc;  /* the flood handler's final write result */
static hr_http_token_t held; /* worker thread only */
static bool end_held;        /* worker thread only: the timer ends the stream */

static void on_close(void *data)
{
    (void)data;
    atomic_fetch_add(&closes, 1);
}

static void tick(hr_timer_handle_t *t, void *data)
{
    (void)data;
    if (end_held) {
        hr_http_stream_end(held);
        hr_timer_stop(t);
        return;
    }
    int rc = hr_http_stream_write(held, "tick", 4);
    atomic_store(&last_rc, rc);
    if (rc != 0) {
        hr_http_stream_end(held); /* gone: a no-op that must not call on_close */
        hr_timer_stop(t);
    }
}

static bool query_is(const hr_http_ctx_t *x, const char *q)
{
    return x->query && x->query_len == strlen(q) && memcmp(x->query, q, x->query_len) == 0;
}

static void stream_handler(hr_http_ctx_t *x, void *data)
{
    hr_server_t *s = data;
    hr_http_token_t t = hr_http_stream_start(x, 200, "text/plain", "X-Test: 1\r\n", on_close, NULL);
    assert_non_null(t.c);
    if (query_is(x, "flood")) {
        static char big[65536];
        int rc = 0;
        for (int i = 0; i < 4096 && rc == 0; i++)
            rc = hr_http_stream_write(t, big, sizeof(big));
        atomic_store(&flood_rc, rc);
        return;
    }
    assert_int_equal(hr_http_stream_write(t, "hello", 5), 0);
    assert_int_equal(hr_http_stream_write(t, "", 0), 0); /* no empty chunk: it would end */
    if (query_is(x, "end")) {
        hr_refbuf_t *rb = hr_refbuf_create(6);
        memcpy(rb->data, "SHARED", 6);
        assert_int_equal(hr_http_stream_write_shared(t, "<", 1, rb, 1, 5, ">", 1), 0);
        hr_refbuf_unref(rb);
        hr_http_stream_end(t);
        return;
    }
    held = t;
    end_held = query_is(x, "later");
    assert_non_null(hr_timer_start(s, 30, 30, tick, NULL));
}

static void plain_handler(hr_http_ctx_t *x, void *data)
{
    (void)data;
    hr_http_reply(x, 200, NULL, "ok", 2, NULL);
}

static hr_server_t *server_start(uint16_t *port, size_t max_backlog)
{
    hr_server_options_t o;
    hr_server_options_init(&o);
    o.host = "127.0.0.1";
    o.port = 0;
    o.threads = 1;
    if (max_backlog)
        o.max_backlog = max_backlog;
    char err[256] = "";
    hr_server_t *s = hr_server_create(&o, err, sizeof(err));
    if (!s)
        fail_msg("hr_server_create: %s", err);
    assert_int_equal(hr_server__add_http(s, "/s", false, stream_handler, s), 0);
    assert_int_equal(hr_server__add_http(s, "/plain", false, plain_handler, NULL), 0);
    if (hr_server_start(s, err, sizeof(err)) != 0)
        fail_msg("hr_server_start: %s", err);
    *port = hr_server_port(s);
    atomic_store(&closes, 0);
    atomic_store(&last_rc, 1);
    atomic_store(&flood_rc, 1);
    return s;
}

static void server_stop(hr_server_t *s)
{
    hr_server_stop(s);
    hr_server_wait(s);
    hr_server_destroy(s);
}

static int dial(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static void send_all(int fd, const char *s)
{
    assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
}

/* Reads until the text contains want (or EOF with until_eof); NUL-terminated in buf. */
static size_t read_until(int fd, char *buf, size_t cap, const char *want, bool until_eof)
{
    size_t n = 0;
    for (;;) {
        buf[n] = 0;
        if (want && strstr(buf, want))
            return n;
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r <= 0) {
            if (!until_eof)
                fail_msg("read ended (%zd) before \"%s\"; got: %s", r, want ? want : "", buf);
            return n;
        }
        n += (size_t)r;
    }
}

static void wait_for(atomic_int *v, int want)
{
    for (int i = 0; i < 500 && atomic_load(v) != want; i++)
        usleep(10000);
    assert_int_equal(atomic_load(v), want);
}

static void test_http_stream_chunked_then_pipelined_request(void **state)
{
    (void)state;
    uint16_t port;
    hr_server_t *s = server_start(&port, 0);
    int fd = dial(port);
    send_all(fd, "GET /s?end HTTP/1.1\r\nHost: x\r\n\r\nGET /plain HTTP/1.1\r\nHost: x\r\n\r\n");
    char buf[4096];
    read_until(fd, buf, sizeof(buf), "\r\n\r\nok", false);
    const char *body = strstr(buf, "\r\n\r\n");
    assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(buf, "Transfer-Encoding: chunked\r\n"));
    assert_non_null(strstr(buf, "X-Test: 1\r\n"));
    assert_null(strstr(buf, "Connection: close"));
    assert_non_null(body);
    const char *want = "\r\n\r\n5\r\nhello\r\n6\r\n<HARE>\r\n0\r\n\r\nHTTP/1.1 200 OK";
    assert_memory_equal(body, want, strlen(want));
    close(fd);
    usleep(50000);
    assert_int_equal(atomic_load(&closes), 0); /* ended: never on_close */
    server_stop(s);
}

static void test_http_stream_ended_later_serves_the_pipelined_request(void **state)
{
    (void)state;
    uint16_t port;
    hr_server_t *s = server_start(&port, 0);
    int fd = dial(port);
    send_all(fd, "GET /s?later HTTP/1.1\r\nHost: x\r\n\r\nGET /plain HTTP/1.1\r\nHost: x\r\n\r\n");
    char buf[4096];
    read_until(fd, buf, sizeof(buf), "\r\n\r\nok", false);
    assert_non_null(strstr(buf, "5\r\nhello\r\n0\r\n\r\nHTTP/1.1 200 OK"));
    close(fd);
    usleep(50000);
    assert_int_equal(atomic_load(&closes), 0);
    server_stop(s);
}

static void test_http_stream_http10_body_runs_until_close(void **state)
{
    (void)state;
    uint16_t port;
    hr_server_t *s = server_start(&port, 0);
    int fd = dial(port);
    send_all(fd, "GET /s?end HTTP/1.0\r\n\r\n");
    char buf[4096];
    read_until(fd, buf, sizeof(buf), NULL, true);
    assert_null(strstr(buf, "Transfer-Encoding"));
    assert_non_null(strstr(buf, "Connection: close\r\n"));
    const char *body = strstr(buf, "\r\n\r\n");
    assert_non_null(body);
    assert_string_equal(body + 4, "hello<HARE>");
    close(fd);
    server_stop(s);
}

static void test_http_stream_on_close_once_when_the_client_leaves(void **state)
{
    (void)state;
    uint16_t port;
    hr_server_t *s = server_start(&port, 0);
    int fd = dial(port);
    send_all(fd, "GET /s?hold HTTP/1.1\r\nHost: x\r\n\r\n");
    char buf[4096];
    read_until(fd, buf, sizeof(buf), "4\r\ntick\r\n", false);
    close(fd);
    wait_for(&closes, 1);
    wait_for(&last_rc, HR_ECLOSED); /* the next write finds it gone; the end adds nothing */
    usleep(50000);
    assert_int_equal(atomic_load(&closes), 1);
    server_stop(s);
}

static void test_http_stream_shutdown_ends_the_body(void **state)
{
    (void)state;
    uint16_t port;
    hr_server_t *s = server_start(&port, 0);
    int fd = dial(port);
    send_all(fd, "GET /s?hold HTTP/1.1\r\nHost: x\r\n\r\n");
    char buf[8192];
    read_until(fd, buf, sizeof(buf), "hello\r\n", false);
    server_stop(s);
    size_t n = read_until(fd, buf, sizeof(buf), NULL, true);
    assert_true(n >= 5);
    assert_memory_equal(buf + n - 5, "0\r\n\r\n", 5);
    assert_int_equal(atomic_load(&closes), 1);
    close(fd);
}

static void test_http_stream_slow_consumer_is_eagain_then_closed(void **state)
{
    (void)state;
    uint16_t port;
    hr_server_t *s = server_start(&port, 4096);
    int fd = dial(port);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    send_all(fd, "GET /s?flood HTTP/1.1\r\nHost: x\r\n\r\n");
    wait_for(&flood_rc, HR_EAGAIN);
    close(fd); /* the server's bounded flush would give up too, after seconds */
    wait_for(&closes, 1);
    server_stop(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_stream_chunked_then_pipelined_request),
        cmocka_unit_test(test_http_stream_ended_later_serves_the_pipelined_request),
        cmocka_unit_test(test_http_stream_http10_body_runs_until_close),
        cmocka_unit_test(test_http_stream_on_close_once_when_the_client_leaves),
        cmocka_unit_test(test_http_stream_shutdown_ends_the_body),
        cmocka_unit_test(test_http_stream_slow_consumer_is_eagain_then_closed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
