/* Unit tests for the webhook HTTP client (src/net/http_client.c) on a real hr_loop,
 * against a small blocking HTTP/1.1 server run in threads of this process (one thread
 * per connection, keep-alive, bodies by Content-Length). Paths: /ok echoes the request
 * body as JSON, /headers returns the request head, /empty is 204, /fail is 500, /slow
 * answers only after the client gave up, /big declares a body over the test's limit,
 * /bigstream streams one without a length. Every wait on the loop is bounded
 * (WAIT_MS); every test ends by destroying the client, checking the loop has no timer
 * left, and destroying the loop. */
#include "test_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/alloc.h"
#include "herald/error.h"
#include "loop/loop.h"
#include "net/http_client.h"

enum { WAIT_MS = 5000, MAX_CONNS = 512, BIG_BODY = 100000, HEAD_MAX = 65536 };

/* ------------------------------------------------------------------------------------
 * The test server.
 * ---------------------------------------------------------------------------------- */

typedef struct server {
    int lfd;
    uint16_t port;
    pthread_t accept_thread;
    pthread_mutex_t mu;
    pthread_t conns[MAX_CONNS];
    int nconns;
    atomic_int accepted;
    atomic_bool stop;
} server_t;

static server_t srv;

typedef struct conn {
    int fd;
    char buf[HEAD_MAX];
    size_t len;
} conn_t;

/* Waits up to ms for fd to be readable; false on timeout or server stop. */
static bool wait_readable(int fd, int ms)
{
    for (int waited = 0; waited < ms && !atomic_load(&srv.stop); waited += 50) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int n = poll(&p, 1, 50);
        if (n > 0)
            return true;
        if (n < 0 && errno != EINTR)
            return false;
    }
    return false;
}

/* Reads more into c->buf; false on EOF, error, full buffer or stop. */
static bool read_more(conn_t *c)
{
    if (c->len == sizeof(c->buf) || !wait_readable(c->fd, 10 * WAIT_MS))
        return false;
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
    if (n <= 0)
        return false;
    c->len += (size_t)n;
    return true;
}

static void send_all(int fd, const void *p, size_t n)
{
    const char *s = p;
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return; /* the client went away: fine for /slow and /big */
        s += w;
        n -= (size_t)w;
    }
}

static void send_response(int fd, const char *status, const char *ctype, const void *body,
                          size_t len)
{
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %s\r\nContent-Type: %s\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     status, ctype, len);
    send_all(fd, head, (size_t)n);
    send_all(fd, body, len);
}

static void send_big(int fd, bool declared)
{
    char head[256];
    int n = declared ? snprintf(head, sizeof(head),
                                "HTTP/1.1 200 OK\r\nContent-Type: "
                                "text/plain\r\nContent-Length: %d\r\n\r\n",
                                BIG_BODY)
                     : snprintf(head, sizeof(head),
                                "HTTP/1.1 200 OK\r\nContent-Type: "
                                "text/plain\r\nConnection: close\r\n\r\n");
    send_all(fd, head, (size_t)n);
    static char chunk[4096];
    memset(chunk, 'x', sizeof(chunk));
    for (int sent = 0; sent < BIG_BODY; sent += (int)sizeof(chunk))
        send_all(fd, chunk, sizeof(chunk));
}

/* Serves requests on one connection until the peer closes it. Returns false when the
 * connection must close after this request. */
static bool serve_one(conn_t *c)
{
    char *end;
    while ((end = memmem(c->buf, c->len, "\r\n\r\n", 4)) == NULL)
        if (!read_more(c))
            return false;
    size_t head_len = (size_t)(end - c->buf) + 4;
    size_t body_len = 0;
    for (char *p = c->buf; p < c->buf + head_len; p++) {
        if (*p == '\n' && strncasecmp(p + 1, "Content-Length:", 15) == 0) {
            body_len = strtoul(p + 16, NULL, 10);
            break;
        }
    }
    if (head_len + body_len > sizeof(c->buf))
        return false;
    while (c->len < head_len + body_len)
        if (!read_more(c))
            return false;
    char path[64] = "";
    sscanf(c->buf, "%*s %63s", path);
    const char *body = c->buf + head_len;
    bool keep = true;
    if (strcmp(path, "/ok") == 0) {
        send_response(c->fd, "200 OK", "application/json", body, body_len);
    } else if (strcmp(path, "/headers") == 0) {
        send_response(c->fd, "200 OK", "text/plain", c->buf, head_len);
    } else if (strcmp(path, "/empty") == 0) {
        send_all(c->fd, "HTTP/1.1 204 No Content\r\n\r\n", 27);
    } else if (strcmp(path, "/fail") == 0) {
        send_response(c->fd, "500 Internal Server Error", "text/plain", "boom", 4);
    } else if (strcmp(path, "/slow") == 0) {
        /* Answer only once the client has given up (closed), or after 10 s. */
        char tmp[256];
        while (wait_readable(c->fd, 10 * WAIT_MS) && recv(c->fd, tmp, sizeof(tmp), 0) > 0)
            ;
        send_response(c->fd, "200 OK", "text/plain", "late", 4);
        keep = false;
    } else if (strcmp(path, "/big") == 0) {
        send_big(c->fd, true);
        keep = false;
    } else if (strcmp(path, "/bigstream") == 0) {
        send_big(c->fd, false);
        keep = false;
    } else {
        send_response(c->fd, "404 Not Found", "text/plain", "", 0);
    }
    memmove(c->buf, c->buf + head_len + body_len, c->len - head_len - body_len);
    c->len -= head_len + body_len;
    return keep;
}

static void *conn_main(void *arg)
{
    conn_t *c = arg;
    while (serve_one(c))
        ;
    close(c->fd);
    free(c);
    return NULL;
}

static void *accept_main(void *arg)
{
    (void)arg;
    for (;;) {
        int fd = accept(srv.lfd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR && !atomic_load(&srv.stop))
                continue;
            return NULL; /* shut down by server_stop */
        }
        atomic_fetch_add(&srv.accepted, 1);
        conn_t *c = calloc(1, sizeof(*c));
        if (c)
            c->fd = fd; /* before the thread starts: it owns c from then on */
        pthread_mutex_lock(&srv.mu);
        if (!c || srv.nconns == MAX_CONNS ||
            pthread_create(&srv.conns[srv.nconns], NULL, conn_main, c) != 0) {
            free(c);
            close(fd);
        } else {
            srv.nconns++;
        }
        pthread_mutex_unlock(&srv.mu);
    }
}

/* A port on 127.0.0.1 with nothing listening (bound, then closed). */
static uint16_t closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static int server_start(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    /* Requests to 127.0.0.1 must not detour through a proxy from the environment. */
    unsetenv("http_proxy");
    unsetenv("HTTP_PROXY");
    unsetenv("https_proxy");
    unsetenv("HTTPS_PROXY");
    unsetenv("all_proxy");
    unsetenv("ALL_PROXY");
    memset(&srv, 0, sizeof(srv));
    pthread_mutex_init(&srv.mu, NULL);
    srv.lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (srv.lfd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    if (bind(srv.lfd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(srv.lfd, 128) != 0 ||
        getsockname(srv.lfd, (struct sockaddr *)&a, &al) != 0)
        return -1;
    srv.port = ntohs(a.sin_port);
    return pthread_create(&srv.accept_thread, NULL, accept_main, NULL) == 0 ? 0 : -1;
}

static int server_stop(void **state)
{
    (void)state;
    atomic_store(&srv.stop, true);
    shutdown(srv.lfd, SHUT_RDWR); /* wakes accept() */
    pthread_join(srv.accept_thread, NULL);
    close(srv.lfd);
    for (int i = 0; i < srv.nconns; i++)
        pthread_join(srv.conns[i], NULL);
    pthread_mutex_destroy(&srv.mu);
    return 0;
}

/* ------------------------------------------------------------------------------------
 * The client side.
 * ---------------------------------------------------------------------------------- */

typedef struct fixture fixture_t;

/* One request's outcome, copied out of the borrowed result. */
typedef struct call {
    fixture_t *f;
    int ndone;
    bool inside_post; /* done ran while hr_http_client_post was on the stack */
    int err;
    char errmsg[256];
    int status;
    char content_type[128];
    bool has_content_type;
    char *body;
    size_t body_len;
    int repost_rc;       /* what a post from inside done returned */
    const char *repost;  /* path to post from inside done, or NULL */
    struct call *second; /* the call for that post */
} call_t;

struct fixture {
    hr_loop_t loop;
    hr_http_client_t *hc;
    bool in_post;
    int total_done;
};

static void on_done(void *ctx, const hr_http_result_t *r);

static void fixture_init(fixture_t *f)
{
    memset(f, 0, sizeof(*f));
    assert_int_equal(hr_loop_init(&f->loop, 64), 0);
    f->hc = hr_http_client_create(&f->loop);
    assert_non_null(f->hc);
}

static void fixture_done(fixture_t *f)
{
    hr_http_client_destroy(f->hc);
    assert_int_equal(f->loop.wheel.count, 0); /* no timer of the client left */
    hr_loop_deinit(&f->loop);
}

static void call_free(call_t *c)
{
    free(c->body);
    c->body = NULL;
}

static void make_url(char *url, size_t n, uint16_t port, const char *path)
{
    snprintf(url, n, "http://127.0.0.1:%u%s", (unsigned)port, path);
}

static int post_url(fixture_t *f, call_t *c, const char *url, const char *body,
                    const char *const *headers, uint32_t timeout_ms, size_t max_response)
{
    c->f = f;
    f->in_post = true;
    int rc = hr_http_client_post(f->hc, url, "application/json", body, body ? strlen(body) : 0,
                                 headers, timeout_ms, max_response, on_done, c);
    f->in_post = false;
    return rc;
}

static int post(fixture_t *f, call_t *c, const char *path, const char *body, uint32_t timeout_ms,
                size_t max_response)
{
    char url[128];
    make_url(url, sizeof(url), srv.port, path);
    return post_url(f, c, url, body, NULL, timeout_ms, max_response);
}

static void on_done(void *ctx, const hr_http_result_t *r)
{
    call_t *c = ctx;
    c->ndone++;
    c->f->total_done++;
    c->inside_post = c->f->in_post;
    c->err = r->err;
    snprintf(c->errmsg, sizeof(c->errmsg), "%s", r->errmsg ? r->errmsg : "(null)");
    c->status = r->status;
    c->has_content_type = r->content_type != NULL;
    if (r->content_type)
        snprintf(c->content_type, sizeof(c->content_type), "%s", r->content_type);
    free(c->body);
    c->body = malloc(r->body_len + 1);
    if (c->body && r->body) {
        memcpy(c->body, r->body, r->body_len);
        c->body[r->body_len] = 0;
    }
    c->body_len = r->body_len;
    if (c->repost)
        c->repost_rc = post(c->f, c->second, c->repost, "{\"again\":1}", 2000, 4096);
}

/* Runs the loop until total_done reaches n or WAIT_MS pass. */
static void run_until_done(fixture_t *f, int n)
{
    uint64_t deadline = hr_clock_ms() + WAIT_MS;
    while (f->total_done < n && hr_clock_ms() < deadline)
        hr_loop_run_once(&f->loop, 50);
    assert_int_equal(f->total_done, n);
}

static void run_for(fixture_t *f, uint64_t ms)
{
    uint64_t deadline = hr_clock_ms() + ms;
    while (hr_clock_ms() < deadline)
        hr_loop_run_once(&f->loop, 10);
}

/* ------------------------------------------------------------------------------------
 * Responses.
 * ---------------------------------------------------------------------------------- */

static void test_http_client_200_delivers_status_body_and_content_type(void **state)
{
    (void)state;
    fixture_t f;
    fixture_init(&f);
    call_t c = {0};
    assert_int_equal(post(&f, &c, "/ok", "{\"hello\":\"world\"}", 2000, 4096), 0);
    assert_int_equal(hr_http_client_pending(f.hc), 1);
    run_until_done(&f, 1);
    assert_int_equal(c.ndone, 1);
    assert_false(c.inside_post);
    assert_int_equal(c.err, 0);
    assert_string_equal(c.errmsg, "");
    assert_int_equal(c.status, 200);
    assert_true(c.has_content_type);
    assert_string_equal(c.content_type, "application/json");
    assert_int_equal(c.body_len, 17);
    assert_string_equal(c.body, "{\"hello\":\"world\"}");
    assert_int_equal(hr_http_client_pending(f.hc), 0);
    call_free(&c);
    fixture_done(&f);
}

static void test_http_client_204_delivers_empty_body(void **state)
{
    (void)state;
    fixture_t f;
    fixture_init(&f);
    call_t c = {0};
    assert_int_equal(post(&f, &c, "/empty", "{}", 2000, 4096), 0);
    run_until_done(&f, 1);
    assert_int_equal(c.err, 0);
    assert_int_equal(c.status, 204);
    assert_false(c.has_content_type);
    assert_int_equal(c.body_len, 0);
    assert_non_null(c.body); /* the result's body is never NULL */
    call_free(&c);
    fixture_done(&f);
}

static void test_http_client_500_is_a_status_not_an_error(void **state)
{
    (void)state;
    fixture_t f;
    fixture_init(&f);
    call_t c = {0};
    assert_int_equal(post(&f, &c, "/fail", "{}", 2000, 4096), 0);
    run_until_done(&f, 1);
    assert_int_equal(c.err, 0);
    assert_int_equal(c.status, 500);
    assert_string_equal(c.content_type, "text/plain");
    assert_string_equal(c.body, "boom");
    call_free(&c);
    fixture_done(&f);
}

static void test_http_client_sends_content_type_user_agent_and_extra_headers(void **state)
{
    (void)state;
    fixture_t f;
    fixture_init(&f);
    /* A body large enough that curl would otherwise send Expect: 100-continue. */
    static char big[2 * 1024 * 1024 / 64];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    const char *const headers[] = {"X-Herald-Test: yes", "Authorization: Bearer t0k3n", NULL};
    char url[128];
    make_url(url, sizeof(url), srv.port, "/headers");
    call_t c = {0};
    assert_int_equal(post_url(&f, &c, url, big, headers, 2000, HEAD_MAX), 0);
    run_until_done(&f, 1);
    assert_int_equal(c.err, 0);
    assert_int_equal(c.status, 200);
    assert_non_null(strstr(c.body, "POST /headers HTTP/1.1\r\n"));
    assert_non_null(strstr(c.body, "\r\nContent-Type: application/json\r\n"));
    assert_non_null(strstr(c.body, "\r\nUser-Agent: Herald/" HR_VERSION_STRING "\r\n"));
    assert_non_null(strstr(c.body, "\r\nX-Herald-Test: yes\r\n"));
    assert_non_null(strstr(c.body, "\r\nAuthorization: Bearer t0k3n\r\n"));
    assert_null(strcasestr(c.body, "\nExpect:"));
    char cl[64];
    snprintf(cl, sizeof(cl), "\r\nContent-Length: %zu\r\n", strlen(big));
    assert_non_null(strstr(c.body, cl));
    call_free(&c);
    fixture_done(&f);
}

static void test_http_client_reuses_kept_alive_connection(void **state)
{
    (void)state;
    fixture_t f;
    fixture_init(&f);
    int before = atomic_load(&srv.accepted);
    call_t c[3] = {{0}};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(post(&f, &c[i], "/ok", "{\"n\":1}", 2000, 4096), 0);
        run_until_done(&f, i + 1);
        assert_int_equal(c[i].status, 200);
        call_free(&c[i]);
    }
    assert_int_equal(atomic_load(&srv.accepted) - before, 1);
    fixture_done(&f);
}

/* ------------------------------------------------------------------------------------
 * Failures.
 * ---------------------------------------------------------------------------------- */

static void test_http_client_connection_refused_is_error_with_message(void **state)
{
    (void)state;
    fixture_t f;
    fixture_init(&f);
    char url[128];
    make_url(url, sizeof(url), closed_port(), "/ok");
    call_t c = {0};
    assert_int_equal(post_url(&f, &c, url, "{}", NULL, 2000, 4096), 0);
    run_until_done(&f, 1);
    assert_int_equal(c.err, -ECONNREFUSED);
    assert_true(strlen(c.errmsg) > 0);
    assert_int_equal(c.status, 0);
    assert_int_equal(c.body_len, 0);
    call_free(&c);
    fixture_done(&f);
}

static void test_http_client_timeout_is_etimedout(void **state)
{
    (void)state;
    fixture_t f;
    fixture_init(&f);
    call_t c = {0};
    uint64_t start = hr_clock_ms();
    assert_int_equal(post(&f, &c, "/slow", "{}", 200, 4096), 0);
    run_until_done(&f, 1);
    assert_int_equal(c.err, -ETIMEDOUT);
    assert_true(strlen(c.errmsg) > 0);
    assert_true(hr_clock_ms() - start >= 200);
    call_free(&c);
    fixture_done(&f);
}

static void test_http_client_declared_response_over_max_is_emsgsize(void **state)
{
    (void)state;
    fixture_t f;
    fixture_init(&f);
    call_t c = {0};
    assert_int_equal(post(&f, &c, "/big", "{}", 2000, 1000), 0);
    run_until_done(&f, 1);
    assert_int_equal(c.err, HR_EMSGSIZE);
    assert_non_null(strstr(c.errmsg, "response too large"));
    call_free(&c);
    fixture_done(&f);
}

static void test_http_client_streamed_response_over_max_is_emsgsize(void **state)
{
    (void)state;
    fixture_t f;
    fixture_init(&f);
    call_t c = {0};
    assert_int_equal(post(&f, &c, "/bigstream", "{}", 2000, 1000), 0);
    run_until_done(&f, 1);
    assert_int_equal(c.err, HR_EMSGSIZE);
    assert_non_null(strstr(c.errmsg, "response too large"));
    assert_int_equal(c.body_len, 0);
    call_free(&c);
    fixture_done(&f);
}

static void test_http_client_unsupported_scheme_is_einval(void **state)
{
    (void)state;
    fixture_t f;
    fixture_init(&f);
    call_t c = {0};
    assert_int_equal(post_url(&f, &c, "ftp://127.0.0.1/x", "{}", NULL, 2000, 4096), 0);
    run_until_done(&f, 1);
    assert_int_equal(c.err, HR_EINVAL);
    assert_true(strlen(c.errmsg) > 0);
    call_free(&c);
    fixture_done(&f);
}

static void test_http_client_post_rejects_bad_arguments(void **state)
{
    (void)state;
    fixture_t f;
    fixture_init(&f);
    call_t c = {.f = &f};
    char url[128];
    make_url(url, sizeof(url), srv.port, "/ok");
    const char *const crlf[] = {"X-A: 1\r\nX-B: 2", NULL};
    const char *const nocolon[] = {"X-A 1", NULL};
    assert_int_equal(
        hr_http_client_post(f.hc, NULL, "application/json", "{}", 2, NULL, 1000, 4096, on_done, &c),
        HR_EINVAL);
    assert_int_equal(hr_http_client_post(f.hc, url, NULL, "{}", 2, NULL, 1000, 4096, on_done, &c),
                     HR_EINVAL);
    assert_int_equal(hr_http_client_post(f.hc, url, "a/b", "{}", 2, NULL, 0, 4096, on_done, &c),
                     HR_EINVAL);
    assert_int_equal(hr_http_client_post(f.hc, url, "a/b", NULL, 2, NULL, 1000, 4096, on_done, &c),
                     HR_EINVAL);
    assert_int_equal(hr_http_client_post(f.hc, url, "a/b", "{}", 2, NULL, 1000, 4096, NULL, &c),
                     HR_EINVAL);
    assert_int_equal(
        hr_http_client_post(f.hc, url, "a/b\r\nX: y", "{}", 2, NULL, 1000, 4096, on_done, &c),
        HR_EINVAL);
    assert_int_equal(hr_http_client_post(f.hc, url, "a/b", "{}", 2, crlf, 1000, 4096, on_done, &c),
                     HR_EINVAL);
    assert_int_equal(
        hr_http_client_post(f.hc, url, "a/b", "{}", 2, nocolon, 1000, 4096, on_done, &c),
        HR_EINVAL);
    assert_int_equal(hr_http_client_pending(f.hc), 0);
    run_for(&f, 50);
    assert_int_equal(c.ndone, 0);
    fixture_done(&f);
}

/* ------------------------------------------------------------------------------------
 * Callback discipline: exactly once, never inside post, cancelled by destroy.
 * ---------------------------------------------------------------------------------- */

static void test_http_client_done_never_runs_inside_post(void **state)
{
    (void)state;
    fixture_t f;
    fixture_init(&f);
    char refused[128];
    make_url(refused, sizeof(refused), closed_port(), "/ok");
    call_t c[4] = {{0}};
    /* Each of these fails at curl's first look; none may fail from inside post. */
    assert_int_equal(post_url(&f, &c[0], refused, "{}", NULL, 2000, 4096), 0);
    assert_int_equal(post_url(&f, &c[1], "ftp://127.0.0.1/x", "{}", NULL, 2000, 4096), 0);
    assert_int_equal(post_url(&f, &c[2], "http://[::1", "{}", NULL, 2000, 4096), 0);
    assert_int_equal(post(&f, &c[3], "/ok", NULL, 2000, 4096), 0); /* empty body */
    assert_int_equal(f.total_done, 0);
    assert_int_equal(hr_http_client_pending(f.hc), 4);
    run_until_done(&f, 4);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(c[i].ndone, 1);
        assert_false(c[i].inside_post);
        call_free(&c[i]);
    }
    assert_int_not_equal(c[0].err, 0);
    assert_int_equal(c[1].err, HR_EINVAL);
    assert_int_not_equal(c[2].err, 0);
    assert_int_equal(c[3].err, 0);
    assert_int_equal(c[3].status, 200);
    assert_int_equal(c[3].body_len, 0);
    fixture_done(&f);
}

static void test_http_client_done_may_post_again(void **state)
{
    (void)state;
    fixture_t f;
    fixture_init(&f);
    call_t second = {0};
    call_t first = {.repost = "/ok", .second = &second};
    assert_int_equal(post(&f, &first, "/ok", "{\"first\":1}", 2000, 4096), 0);
    run_until_done(&f, 2);
    assert_int_equal(first.repost_rc, 0);
    assert_int_equal(first.status, 200);
    assert_int_equal(second.ndone, 1);
    assert_int_equal(second.status, 200);
    assert_string_equal(second.body, "{\"again\":1}");
    call_free(&first);
    call_free(&second);
    fixture_done(&f);
}

enum { NCONC = 50 };

static void test_http_client_50_concurrent_requests_complete_exactly_once(void **state)
{
    (void)state;
    fixture_t f;
    fixture_init(&f);
    static call_t c[NCONC];
    char body[NCONC][32];
    memset(c, 0, sizeof(c));
    for (int i = 0; i < NCONC; i++) {
        snprintf(body[i], sizeof(body[i]), "{\"req\":%d}", i);
        assert_int_equal(post(&f, &c[i], "/ok", body[i], 4000, 4096), 0);
    }
    assert_int_equal(hr_http_client_pending(f.hc), NCONC);
    run_until_done(&f, NCONC);
    run_for(&f, 50); /* nothing more may arrive */
    assert_int_equal(f.total_done, NCONC);
    for (int i = 0; i < NCONC; i++) {
        assert_int_equal(c[i].ndone, 1);
        assert_int_equal(c[i].err, 0);
        assert_int_equal(c[i].status, 200);
        assert_string_equal(c[i].body, body[i]);
        call_free(&c[i]);
    }
    assert_int_equal(hr_http_client_pending(f.hc), 0);
    fixture_done(&f);
}

static void test_http_client_destroy_cancels_in_flight_with_eclosed(void **state)
{
    (void)state;
    fixture_t f;
    fixture_init(&f);
    call_t unused = {0};
    call_t c[6] = {{0}};
    for (int i = 0; i < 3; i++)
        assert_int_equal(post(&f, &c[i], "/slow", "{}", 4000, 4096), 0);
    run_for(&f, 100); /* connected and waiting for the answer */
    for (int i = 3; i < 6; i++)
        assert_int_equal(post(&f, &c[i], "/slow", "{}", 4000, 4096), 0); /* not started */
    c[0].repost = "/ok"; /* a post from a cancelled done is refused */
    c[0].second = &unused;
    assert_int_equal(f.total_done, 0);
    assert_int_equal(hr_http_client_pending(f.hc), 6);
    fixture_done(&f);
    assert_int_equal(f.total_done, 6);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(c[i].ndone, 1);
        assert_int_equal(c[i].err, HR_ECLOSED);
        assert_true(strlen(c[i].errmsg) > 0);
        call_free(&c[i]);
    }
    assert_int_equal(c[0].repost_rc, HR_ECLOSED);
    assert_int_equal(unused.ndone, 0);
}

static void test_http_client_fails_cleanly_at_every_allocation(void **state)
{
    (void)state;
    bool completed = false;
    for (long nth = 1; nth < 200 && !completed; nth++) {
        fixture_t f;
        memset(&f, 0, sizeof(f));
        assert_int_equal(hr_loop_init(&f.loop, 64), 0);
        hr_alloc_fail_at(nth);
        f.hc = hr_http_client_create(&f.loop);
        if (!f.hc) {
            hr_alloc_fail_at(0);
            hr_loop_deinit(&f.loop);
            continue;
        }
        call_t c = {0};
        int rc = post(&f, &c, "/ok", "{\"oom\":true}", 2000, 4096);
        if (rc == 0) {
            /* Allocations while the request runs (socket state, body) fail too. */
            uint64_t deadline = hr_clock_ms() + WAIT_MS;
            while (f.total_done < 1 && hr_clock_ms() < deadline)
                hr_loop_run_once(&f.loop, 50);
        }
        long made = hr_alloc_count();
        hr_alloc_fail_at(0);
        if (rc == 0) {
            assert_int_equal(c.ndone, 1);
            if (c.err == 0) {
                assert_int_equal(c.status, 200);
                assert_string_equal(c.body, "{\"oom\":true}");
                completed = made < nth; /* no allocation failed: every point was covered */
            } else {
                assert_int_equal(c.err, HR_ENOMEM);
                assert_true(strlen(c.errmsg) > 0);
            }
        } else {
            assert_int_equal(rc, HR_ENOMEM);
            assert_int_equal(hr_http_client_pending(f.hc), 0);
        }
        call_free(&c);
        fixture_done(&f);
    }
    assert_true(completed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_client_200_delivers_status_body_and_content_type),
        cmocka_unit_test(test_http_client_204_delivers_empty_body),
        cmocka_unit_test(test_http_client_500_is_a_status_not_an_error),
        cmocka_unit_test(test_http_client_sends_content_type_user_agent_and_extra_headers),
        cmocka_unit_test(test_http_client_reuses_kept_alive_connection),
        cmocka_unit_test(test_http_client_connection_refused_is_error_with_message),
        cmocka_unit_test(test_http_client_timeout_is_etimedout),
        cmocka_unit_test(test_http_client_declared_response_over_max_is_emsgsize),
        cmocka_unit_test(test_http_client_streamed_response_over_max_is_emsgsize),
        cmocka_unit_test(test_http_client_unsupported_scheme_is_einval),
        cmocka_unit_test(test_http_client_post_rejects_bad_arguments),
        cmocka_unit_test(test_http_client_done_never_runs_inside_post),
        cmocka_unit_test(test_http_client_done_may_post_again),
        cmocka_unit_test(test_http_client_50_concurrent_requests_complete_exactly_once),
        cmocka_unit_test(test_http_client_destroy_cancels_in_flight_with_eclosed),
        cmocka_unit_test(test_http_client_fails_cleanly_at_every_allocation),
    };
    return cmocka_run_group_tests(tests, server_start, server_stop);
}
