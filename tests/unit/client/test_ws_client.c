/* The WebSocket client against an in-process server (the public herald.h API, port 0,
 * one thread): echo at the frame-length boundaries, compression, fragmentation, ping,
 * both close directions, a refused connect, a 404, subprotocols, reconnection and bad
 * URLs. Clients run on a standalone loop driven in bounded steps, so no test can hang:
 * every wait has a deadline and fails the test when it passes. */
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test_util.h"

#include "herald.h"
#include "herald/client.h"
#include "http/http_upgrade.h"
#include "loop/loop.h"

enum { WAIT_MS = 10000 };

/* ---------------------------------------------------------------- the server */

static void echo_message(hr_conn_t *c, const uint8_t *data, size_t len, bool binary)
{
    hr_conn_send(c, data, len, binary);
}

static void bye_open(hr_conn_t *c)
{
    hr_conn_close(c, 4001, "bye");
}

static hr_server_t *server_start(uint16_t *port)
{
    static const char *const protos[] = {"json", "chat", NULL};
    hr_server_options_t o;
    hr_server_options_init(&o);
    o.host = "127.0.0.1";
    o.port = 0;
    o.threads = 1;
    char err[256] = "";
    hr_server_t *s = hr_server_create(&o, err, sizeof(err));
    if (!s)
        fail_msg("hr_server_create: %s", err);
    hr_route_callbacks_t echo = {.on_message = echo_message};
    hr_route_callbacks_t bye = {.on_open = bye_open};
    assert_true(hr_server_add_route(s, "/echo", &echo, NULL, NULL) >= 0);
    assert_true(hr_server_add_route(s, "/bye", &bye, NULL, NULL) >= 0);
    assert_true(hr_server_add_route(s, "/proto", &echo, protos, NULL) >= 0);
    if (hr_server_start(s, err, sizeof(err)) != 0)
        fail_msg("hr_server_start: %s", err);
    *port = hr_server_port(s);
    assert_true(*port != 0);
    return s;
}

static void server_stop(hr_server_t *s)
{
    hr_server_stop(s);
    hr_server_wait(s);
    hr_server_destroy(s);
}

/* ---------------------------------------------------------------- a recording client */

typedef struct tc {
    hr_loop_t *loop;
    hr_client_t *c;
    int opens, closes, errors, messages, pongs;
    uint16_t close_code;
    char close_reason[128];
    size_t close_reason_len;
    int err;
    char errmsg[256];
    uint8_t *msg;
    size_t msg_len;
    bool msg_binary;
    char pong[128];
    size_t pong_len;
    bool close_in_on_close; /* hr_client_close from on_close: stops reconnecting */
} tc_t;

static void on_open(hr_client_t *c)
{
    tc_t *t = hr_client_data(c);
    t->opens++;
    assert_true(hr_client_is_open(c));
}

static void on_message(hr_client_t *c, const uint8_t *data, size_t len, bool binary)
{
    tc_t *t = hr_client_data(c);
    t->messages++;
    free(t->msg);
    t->msg = malloc(len ? len : 1);
    assert_non_null(t->msg);
    memcpy(t->msg, data, len);
    t->msg_len = len;
    t->msg_binary = binary;
}

static void on_pong(hr_client_t *c, const uint8_t *data, size_t len)
{
    tc_t *t = hr_client_data(c);
    t->pongs++;
    assert_true(len <= sizeof(t->pong));
    memcpy(t->pong, data, len);
    t->pong_len = len;
}

static void on_close(hr_client_t *c, uint16_t code, const char *reason, size_t reason_len)
{
    tc_t *t = hr_client_data(c);
    t->closes++;
    t->close_code = code;
    assert_true(reason_len < sizeof(t->close_reason));
    memcpy(t->close_reason, reason, reason_len);
    t->close_reason[reason_len] = '\0';
    t->close_reason_len = reason_len;
    assert_false(hr_client_is_open(c));
    if (t->close_in_on_close)
        hr_client_close(c, 1000, NULL);
}

static void on_error(hr_client_t *c, int err, const char *msg)
{
    tc_t *t = hr_client_data(c);
    t->errors++;
    t->err = err;
    snprintf(t->errmsg, sizeof(t->errmsg), "%s", msg);
}

static const hr_client_callbacks_t callbacks = {on_open, on_message, on_pong, on_close, on_error};

static void tc_init(tc_t *t)
{
    memset(t, 0, sizeof(*t));
    t->loop = hr_loop_create();
    assert_non_null(t->loop);
}

static void tc_connect(tc_t *t, hr_client_options_t *o)
{
    char err[256] = "";
    t->c = hr_client_connect(t->loop, o, &callbacks, t, err, sizeof(err));
    if (!t->c)
        fail_msg("hr_client_connect(%s): %s", o->url, err);
}

static void tc_done(tc_t *t)
{
    if (t->c)
        hr_client_destroy(t->c);
    hr_loop_destroy(t->loop);
    free(t->msg);
}

typedef bool (*cond_fn)(const tc_t *t, int arg);

/* Runs the loop until cond holds; fails the test after WAIT_MS. */
static void run_until(tc_t *t, cond_fn cond, int arg, const char *what)
{
    uint64_t end = hr_clock_ms() + WAIT_MS;
    while (!cond(t, arg)) {
        if (hr_clock_ms() > end)
            fail_msg("timed out waiting for %s (opens %d closes %d errors %d messages %d: %s)",
                     what, t->opens, t->closes, t->errors, t->messages, t->errmsg);
        hr_loop_run_once(t->loop, 10);
    }
}

static bool opens_at_least(const tc_t *t, int n)
{
    return t->opens >= n || t->closes > 0;
}

static bool closes_at_least(const tc_t *t, int n)
{
    return t->closes >= n;
}

static bool messages_at_least(const tc_t *t, int n)
{
    return t->messages >= n || t->closes > 0;
}

static bool pongs_at_least(const tc_t *t, int n)
{
    return t->pongs >= n || t->closes > 0;
}

static void url_for(char *url, size_t n, uint16_t port, const char *path)
{
    snprintf(url, n, "ws://127.0.0.1:%u%s", port, path);
}

/* Connects to path on the server and waits for on_open. */
static void open_client(tc_t *t, uint16_t port, const char *path, bool compress)
{
    char url[128];
    url_for(url, sizeof(url), port, path);
    hr_client_options_t o;
    hr_client_options_init(&o);
    o.url = url;
    o.compress = compress;
    tc_connect(t, &o);
    run_until(t, opens_at_least, 1, "on_open");
    assert_int_equal(t->opens, 1);
    assert_int_equal(t->errors, 0);
}

/* Sends one message and checks the echo is the same bytes with the same type. */
static void echo_once(tc_t *t, const uint8_t *data, size_t len, bool binary)
{
    int before = t->messages;
    assert_int_equal(hr_client_send(t->c, data, len, binary), 0);
    run_until(t, messages_at_least, before + 1, "the echo");
    assert_int_equal(t->messages, before + 1);
    assert_int_equal(t->msg_len, len);
    assert_int_equal(t->msg_binary, binary);
    if (len)
        assert_memory_equal(t->msg, data, len);
}

static uint8_t *pattern(size_t len, bool binary)
{
    uint8_t *p = malloc(len ? len : 1);
    assert_non_null(p);
    for (size_t i = 0; i < len; i++)
        p[i] = binary ? (uint8_t)(i * 7 + (i >> 8)) : (uint8_t)('a' + (i * 7 + (i >> 9)) % 26);
    return p;
}

static const size_t sizes[] = {0, 1, 125, 126, 65535, 65536, 1u << 20};

static void echo_sizes(tc_t *t)
{
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        for (int b = 0; b < 2; b++) {
            uint8_t *p = pattern(sizes[i], b);
            echo_once(t, p, sizes[i], b);
            free(p);
        }
    }
}

/* ---------------------------------------------------------------- tests */

static void test_ws_client_echoes_text_and_binary_at_length_boundaries(void **state)
{
    (void)state;
    uint16_t port;
    hr_server_t *s = server_start(&port);
    tc_t t;
    tc_init(&t);
    open_client(&t, port, "/echo", false);
    assert_false(hr_client_compressed(t.c));
    assert_null(hr_client_protocol(t.c));
    echo_sizes(&t);
    assert_int_equal(t.closes, 0);
    tc_done(&t);
    server_stop(s);
}

static void test_ws_client_compression_is_negotiated_and_echoed(void **state)
{
    (void)state;
    uint16_t port;
    hr_server_t *s = server_start(&port);
    tc_t t;
    tc_init(&t);
    open_client(&t, port, "/echo", true);
    assert_true(hr_client_compressed(t.c));
    echo_sizes(&t);
    const char *small = "short, sent plain";
    echo_once(&t, (const uint8_t *)small, strlen(small), false);
    assert_int_equal(t.errors, 0);
    tc_done(&t);
    server_stop(s);
}

static void test_ws_client_fragmented_send_is_echoed_as_one_message(void **state)
{
    (void)state;
    uint16_t port;
    hr_server_t *s = server_start(&port);
    tc_t t;
    tc_init(&t);
    open_client(&t, port, "/echo", false);
    assert_int_equal(hr_client_send_frame(t.c, HR_WS_OP_TEXT, false, "Hel", 3), 0);
    assert_int_equal(hr_client_send_frame(t.c, HR_WS_OP_CONT, false, "lo, ", 4), 0);
    assert_int_equal(hr_client_send_frame(t.c, HR_WS_OP_CONT, true, "world", 5), 0);
    run_until(&t, messages_at_least, 1, "the reassembled echo");
    assert_int_equal(t.messages, 1);
    assert_int_equal(t.msg_len, 12);
    assert_memory_equal(t.msg, "Hello, world", 12);
    assert_false(t.msg_binary);
    assert_int_equal(hr_client_send_frame(t.c, 0x3, true, "x", 1), HR_EINVAL);
    tc_done(&t);
    server_stop(s);
}

static void test_ws_client_ping_gets_pong_with_the_payload(void **state)
{
    (void)state;
    uint16_t port;
    hr_server_t *s = server_start(&port);
    tc_t t;
    tc_init(&t);
    open_client(&t, port, "/echo", false);
    char big[126] = {0};
    assert_int_equal(hr_client_ping(t.c, big, sizeof(big)), HR_EINVAL);
    assert_int_equal(hr_client_ping(t.c, "are you there", 13), 0);
    run_until(&t, pongs_at_least, 1, "on_pong");
    assert_int_equal(t.pong_len, 13);
    assert_memory_equal(t.pong, "are you there", 13);
    tc_done(&t);
    server_stop(s);
}

static void test_ws_client_server_close_4001_is_reported(void **state)
{
    (void)state;
    uint16_t port;
    hr_server_t *s = server_start(&port);
    tc_t t;
    tc_init(&t);
    open_client(&t, port, "/bye", false);
    run_until(&t, closes_at_least, 1, "on_close");
    assert_int_equal(t.close_code, 4001);
    assert_string_equal(t.close_reason, "bye");
    assert_int_equal(t.errors, 0);
    assert_false(hr_client_is_open(t.c));
    assert_int_equal(hr_client_send(t.c, "x", 1, false), HR_ESTATE);
    tc_done(&t);
    server_stop(s);
}

static void test_ws_client_close_1000_gets_the_servers_echo(void **state)
{
    (void)state;
    uint16_t port;
    hr_server_t *s = server_start(&port);
    tc_t t;
    tc_init(&t);
    open_client(&t, port, "/echo", false);
    hr_client_close(t.c, 1000, "done");
    assert_int_equal(hr_client_send(t.c, "x", 1, false), HR_ESTATE);
    run_until(&t, closes_at_least, 1, "on_close");
    assert_int_equal(t.close_code, 1000);
    assert_int_equal(t.errors, 0);
    tc_done(&t);
    server_stop(s);
}

/* A port that was just free on 127.0.0.1: nothing listens there. */
static uint16_t closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t alen = sizeof(a);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void test_ws_client_connect_refused_is_error_then_1006(void **state)
{
    (void)state;
    tc_t t;
    tc_init(&t);
    char url[128];
    url_for(url, sizeof(url), closed_port(), "/echo");
    hr_client_options_t o;
    hr_client_options_init(&o);
    o.url = url;
    tc_connect(&t, &o);
    assert_int_equal(t.errors, 0); /* never inside hr_client_connect */
    run_until(&t, closes_at_least, 1, "on_close");
    assert_int_equal(t.errors, 1);
    assert_int_equal(t.opens, 0);
    assert_int_equal(t.close_code, 1006);
    assert_non_null(strstr(t.errmsg, "refused"));
    tc_done(&t);
}

static void test_ws_client_404_reports_the_status_line(void **state)
{
    (void)state;
    uint16_t port;
    hr_server_t *s = server_start(&port);
    tc_t t;
    tc_init(&t);
    char url[128];
    url_for(url, sizeof(url), port, "/nowhere?x=1");
    hr_client_options_t o;
    hr_client_options_init(&o);
    o.url = url;
    tc_connect(&t, &o);
    run_until(&t, closes_at_least, 1, "on_close");
    assert_int_equal(t.errors, 1);
    assert_int_equal(t.err, HR_EPROTO);
    assert_non_null(strstr(t.errmsg, "404"));
    assert_int_equal(t.close_code, 1006);
    assert_int_equal(t.opens, 0);
    tc_done(&t);
    server_stop(s);
}

static void test_ws_client_subprotocol_is_chosen(void **state)
{
    (void)state;
    static const char *const offer[] = {"chat", "superchat", NULL};
    static const char *const extra[] = {"X-Test: 1", NULL};
    uint16_t port;
    hr_server_t *s = server_start(&port);
    tc_t t;
    tc_init(&t);
    char url[128], origin[64];
    url_for(url, sizeof(url), port, "/proto");
    /* The server's default origin policy: the Origin's host:port must be the Host. */
    snprintf(origin, sizeof(origin), "http://127.0.0.1:%u", port);
    hr_client_options_t o;
    hr_client_options_init(&o);
    o.url = url;
    o.protocols = offer;
    o.headers = extra;
    o.origin = origin;
    tc_connect(&t, &o);
    run_until(&t, opens_at_least, 1, "on_open");
    if (t.opens != 1)
        fail_msg("not open: %s", t.errmsg);
    assert_non_null(hr_client_protocol(t.c));
    assert_string_equal(hr_client_protocol(t.c), "chat");
    echo_once(&t, (const uint8_t *)"{}", 2, false);
    tc_done(&t);
    server_stop(s);
}

static void test_ws_client_reconnects_after_each_close(void **state)
{
    (void)state;
    uint16_t port;
    hr_server_t *s = server_start(&port);
    tc_t t;
    tc_init(&t);
    char url[128];
    url_for(url, sizeof(url), port, "/bye");
    hr_client_options_t o;
    hr_client_options_init(&o);
    o.url = url;
    o.reconnect = true;
    o.reconnect_min_ms = 50;
    o.reconnect_max_ms = 200;
    tc_connect(&t, &o);
    run_until(&t, closes_at_least, 3, "three closes");
    assert_true(t.opens >= 3);
    assert_int_equal(t.close_code, 4001);
    /* hr_client_close from on_close ends the cycle. */
    t.close_in_on_close = true;
    int closes = t.closes + 1;
    run_until(&t, closes_at_least, closes, "one more close");
    int opens = t.opens;
    uint64_t end = hr_clock_ms() + 500;
    while (hr_clock_ms() < end)
        hr_loop_run_once(t.loop, 10);
    assert_int_equal(t.opens, opens);
    tc_done(&t);
    server_stop(s);
}

static void test_ws_client_bad_urls_are_refused(void **state)
{
    (void)state;
    static const struct {
        const char *url, *msg;
    } cases[] = {
        {"127.0.0.1:80/x", "ws://"},
        {"http://example.com/", "ws://"},
        {"wss://example.com:0/", "bad port"}, /* wss:// parses as ws:// does */
        {"ws:///path", "empty host"},
        {"ws://:8080/", "empty host"},
        {"ws://example.com:/", "bad port"},
        {"ws://example.com:0/", "bad port"},
        {"ws://example.com:65536/", "bad port"},
        {"ws://example.com:80x/", "bad port"},
        {"ws://[::1/", "IPv6"},
        {"ws://exa mple.com/", "whitespace"},
        {"", "no URL"},
    };
    hr_loop_t *loop = hr_loop_create();
    assert_non_null(loop);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        hr_client_options_t o;
        hr_client_options_init(&o);
        o.url = cases[i].url;
        char err[256] = "";
        hr_client_t *c = hr_client_connect(loop, &o, &callbacks, NULL, err, sizeof(err));
        if (c)
            fail_msg("\"%s\" was accepted", cases[i].url);
        if (!strstr(err, cases[i].msg))
            fail_msg("\"%s\": \"%s\" does not mention \"%s\"", cases[i].url, err, cases[i].msg);
    }
    hr_loop_destroy(loop);
}

static void test_ws_client_destroy_while_connecting_frees_without_callbacks(void **state)
{
    (void)state;
    uint16_t port;
    hr_server_t *s = server_start(&port);
    tc_t t;
    tc_init(&t);
    char url[128];
    url_for(url, sizeof(url), port, "/echo");
    hr_client_options_t o;
    hr_client_options_init(&o);
    o.url = url;
    tc_connect(&t, &o);
    hr_client_destroy(t.c);
    t.c = NULL;
    for (int i = 0; i < 5; i++)
        hr_loop_run_once(t.loop, 10);
    assert_int_equal(t.opens + t.closes + t.errors, 0);
    tc_done(&t);
    server_stop(s);
}

static void test_ws_client_pings_after_silence(void **state)
{
    (void)state;
    uint16_t port;
    hr_server_t *s = server_start(&port);
    tc_t t;
    tc_init(&t);
    char url[128];
    url_for(url, sizeof(url), port, "/echo");
    hr_client_options_t o;
    hr_client_options_init(&o);
    o.url = url;
    o.ping_interval_ms = 50;
    tc_connect(&t, &o);
    run_until(&t, pongs_at_least, 2, "two automatic pongs");
    assert_int_equal(t.pong_len, 0);
    assert_int_equal(t.closes, 0);
    tc_done(&t);
    server_stop(s);
}

static void test_ws_client_send_over_max_backlog_is_enobufs(void **state)
{
    (void)state;
    uint16_t port;
    hr_server_t *s = server_start(&port);
    tc_t t;
    tc_init(&t);
    char url[128];
    url_for(url, sizeof(url), port, "/echo");
    hr_client_options_t o;
    hr_client_options_init(&o);
    o.url = url;
    o.max_backlog = 1000;
    tc_connect(&t, &o);
    run_until(&t, opens_at_least, 1, "on_open");
    uint8_t *p = pattern(2000, true);
    /* Writes are corked until the end of the iteration: the first is queued, the second
     * finds 2000 bytes waiting. */
    assert_int_equal(hr_client_send(t.c, p, 2000, true), 0);
    assert_true(hr_client_queued(t.c) > 1000);
    assert_int_equal(hr_client_send(t.c, p, 2000, true), HR_ENOBUFS);
    run_until(&t, messages_at_least, 1, "the echo");
    assert_int_equal(hr_client_queued(t.c), 0);
    assert_int_equal(hr_client_send(t.c, p, 2000, true), 0);
    free(p);
    tc_done(&t);
    server_stop(s);
}

/* ---------------------------------------------------------------- a scripted server */

/* One connection on a raw socket in a thread: reads the request, answers with a 101
 * built from the client's key plus extra (headers and bytes after the head), then
 * records what the client sends until EOF. */
typedef struct fake {
    int lfd;
    uint16_t port;
    bool bad_accept;
    const char *extra; /* appended after the Sec-WebSocket-Accept line */
    size_t extra_len;
    pthread_t th;
    uint8_t rx[4096]; /* client bytes after the request head */
    size_t rx_len;
} fake_t;

static void *fake_run(void *arg)
{
    fake_t *f = arg;
    int fd = accept(f->lfd, NULL, NULL);
    if (fd < 0)
        return NULL;
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char req[4096];
    size_t n = 0;
    char *end = NULL;
    while (!end && n < sizeof(req) - 1) {
        ssize_t r = read(fd, req + n, sizeof(req) - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
        req[n] = '\0';
        end = strstr(req, "\r\n\r\n");
    }
    const char *k = end ? strstr(req, "Sec-WebSocket-Key: ") : NULL;
    if (k) {
        char accept_key[29];
        hr_http_accept_key(k + 19, 24, accept_key);
        if (f->bad_accept)
            accept_key[0] = accept_key[0] == 'A' ? 'B' : 'A';
        char resp[1024];
        int len = snprintf(resp, sizeof(resp),
                           "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n",
                           accept_key);
        memcpy(resp + len, f->extra, f->extra_len);
        (void)!write(fd, resp, (size_t)len + f->extra_len);
        size_t head = (size_t)(end + 4 - req);
        f->rx_len = n - head;
        memmove(f->rx, req + head, f->rx_len);
        for (;;) {
            ssize_t r = read(fd, f->rx + f->rx_len, sizeof(f->rx) - f->rx_len);
            if (r <= 0)
                break;
            f->rx_len += (size_t)r;
        }
    }
    close(fd);
    return NULL;
}

static void fake_start(fake_t *f, bool bad_accept, const char *extra, size_t extra_len)
{
    memset(f, 0, sizeof(*f));
    f->bad_accept = bad_accept;
    f->extra = extra;
    f->extra_len = extra_len;
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(f->lfd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(f->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(f->lfd, 4), 0);
    socklen_t alen = sizeof(a);
    assert_int_equal(getsockname(f->lfd, (struct sockaddr *)&a, &alen), 0);
    f->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&f->th, NULL, fake_run, f), 0);
}

static void fake_join(fake_t *f)
{
    pthread_join(f->th, NULL);
    close(f->lfd);
}

/* Connects to the fake server and runs until on_close. */
static void fake_session(tc_t *t, fake_t *f)
{
    static const char *const offer[] = {"chat", NULL};
    char url[128];
    url_for(url, sizeof(url), f->port, "/");
    hr_client_options_t o;
    hr_client_options_init(&o);
    o.url = url;
    o.protocols = offer;
    tc_connect(t, &o);
    run_until(t, closes_at_least, 1, "on_close");
    assert_int_equal(t->close_code, 1006);
    assert_int_equal(t->errors, 1);
}

static void test_ws_client_bad_frame_after_the_101_is_error_and_close_1002(void **state)
{
    (void)state;
    /* The end of the head and a frame with reserved opcode 0x3 in one write. */
    static const char extra[] = "\r\n\x83\x00";
    fake_t f;
    fake_start(&f, false, extra, sizeof(extra) - 1);
    tc_t t;
    tc_init(&t);
    fake_session(&t, &f);
    assert_int_equal(t.opens, 1);
    assert_int_equal(t.err, HR_EPROTO);
    fake_join(&f);
    /* The client's close frame: FIN+close, masked, code 1002 under the mask. */
    assert_true(f.rx_len >= 8);
    assert_int_equal(f.rx[0], 0x88);
    assert_true(f.rx[1] & 0x80);
    uint16_t code = (uint16_t)((f.rx[6] ^ f.rx[2]) << 8 | (f.rx[7] ^ f.rx[3]));
    assert_int_equal(code, 1002);
    tc_done(&t);
}

static void test_ws_client_wrong_accept_key_fails_the_handshake(void **state)
{
    (void)state;
    fake_t f;
    fake_start(&f, true, "\r\n", 2);
    tc_t t;
    tc_init(&t);
    fake_session(&t, &f);
    assert_int_equal(t.opens, 0);
    assert_non_null(strstr(t.errmsg, "Accept"));
    tc_done(&t);
    fake_join(&f);
}

static void test_ws_client_subprotocol_not_offered_fails_the_handshake(void **state)
{
    (void)state;
    static const char extra[] = "Sec-WebSocket-Protocol: superchat\r\n\r\n";
    fake_t f;
    fake_start(&f, false, extra, sizeof(extra) - 1);
    tc_t t;
    tc_init(&t);
    fake_session(&t, &f);
    assert_int_equal(t.opens, 0);
    assert_non_null(strstr(t.errmsg, "subprotocol"));
    tc_done(&t);
    fake_join(&f);
}

static void test_ws_client_unoffered_extension_fails_the_handshake(void **state)
{
    (void)state;
    static const char extra[] = "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n";
    fake_t f;
    fake_start(&f, false, extra, sizeof(extra) - 1);
    tc_t t;
    tc_init(&t);
    fake_session(&t, &f);
    assert_int_equal(t.opens, 0);
    assert_non_null(strstr(t.errmsg, "extension"));
    tc_done(&t);
    fake_join(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ws_client_echoes_text_and_binary_at_length_boundaries),
        cmocka_unit_test(test_ws_client_compression_is_negotiated_and_echoed),
        cmocka_unit_test(test_ws_client_fragmented_send_is_echoed_as_one_message),
        cmocka_unit_test(test_ws_client_ping_gets_pong_with_the_payload),
        cmocka_unit_test(test_ws_client_server_close_4001_is_reported),
        cmocka_unit_test(test_ws_client_close_1000_gets_the_servers_echo),
        cmocka_unit_test(test_ws_client_connect_refused_is_error_then_1006),
        cmocka_unit_test(test_ws_client_404_reports_the_status_line),
        cmocka_unit_test(test_ws_client_subprotocol_is_chosen),
        cmocka_unit_test(test_ws_client_reconnects_after_each_close),
        cmocka_unit_test(test_ws_client_bad_urls_are_refused),
        cmocka_unit_test(test_ws_client_destroy_while_connecting_frees_without_callbacks),
        cmocka_unit_test(test_ws_client_pings_after_silence),
        cmocka_unit_test(test_ws_client_send_over_max_backlog_is_enobufs),
        cmocka_unit_test(test_ws_client_bad_frame_after_the_101_is_error_and_close_1002),
        cmocka_unit_test(test_ws_client_wrong_accept_key_fails_the_handshake),
        cmocka_unit_test(test_ws_client_subprotocol_not_offered_fails_the_handshake),
        cmocka_unit_test(test_ws_client_unoffered_extension_fails_the_handshake),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
