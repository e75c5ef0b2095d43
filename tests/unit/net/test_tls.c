/* Unit tests for TLS on hr_sock (src/net/tls.c): both ends of a non-blocking
 * socketpair on one loop, with a self-signed certificate made here with OpenSSL. The
 * handshake completes and data goes both ways (including output queued before the
 * handshake), megabytes through a small socket buffer arrive intact (partial writes,
 * EPOLLOUT, packed records), close sends close_notify, a silent peer is cut off by the
 * sock timer, a plain HTTP request gets a 400, and the client verifies certificates
 * (untrusted, trusted through cafile, wrong name). ASan checks the frees. */
#include "test_util.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/refbuf.h"
#include "herald/error.h"
#include "loop/loop.h"
#include "net/sock.h"
#include "net/tls.h"

static char dir[64], cert_path[128], key_path[128];
static SSL_CTX *server_ctx, *client_insecure;

/* ---------------------------------------------------------------- certificate */

static void add_ext(X509 *x, int nid, const char *value)
{
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    assert_non_null(ext);
    assert_int_equal(X509_add_ext(x, ext, -1), 1);
    X509_EXTENSION_free(ext);
}

static void make_cert(void)
{
    EVP_PKEY *pkey = EVP_EC_gen("P-256");
    assert_non_null(pkey);
    X509 *x = X509_new();
    assert_non_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 4242);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, pkey);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1,
                               0);
    X509_set_issuer_name(x, name);
    add_ext(x, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
    add_ext(x, NID_basic_constraints, "critical,CA:TRUE");
    assert_true(X509_sign(x, pkey, EVP_sha256()) > 0);

    FILE *f = fopen(cert_path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_X509(f, x), 1);
    fclose(f);
    f = fopen(key_path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(pkey);
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/herald-tls-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(cert_path, sizeof(cert_path), "%s/cert.pem", dir);
    snprintf(key_path, sizeof(key_path), "%s/key.pem", dir);
    make_cert();
    char err[256];
    server_ctx = hr_tls_server_ctx_create(cert_path, key_path, err, sizeof(err));
    client_insecure = hr_tls_client_ctx_create(true, NULL, err, sizeof(err));
    return server_ctx && client_insecure ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    hr_tls_ctx_free(server_ctx);
    hr_tls_ctx_free(client_insecure);
    unlink(cert_path);
    unlink(key_path);
    rmdir(dir);
    return 0;
}

/* ---------------------------------------------------------------- two ends on one loop */

typedef struct peer {
    hr_sock_t sock; /* first */
    hr_buf_t rx;
    bool eof, freed, got_close_notify, timer_fired;
    int eof_err;
    char eof_reason[256];
} peer_t;

static void on_data(hr_sock_t *s, uint8_t *data, size_t len)
{
    peer_t *p = (peer_t *)s;
    assert_int_equal(hr_buf_append(&p->rx, data, len), 0);
}

static void on_eof(hr_sock_t *s, int err)
{
    peer_t *p = (peer_t *)s;
    p->eof = true;
    p->eof_err = err;
    snprintf(p->eof_reason, sizeof(p->eof_reason), "%s", hr_tls_last_error());
    SSL *ssl = hr_sock_tls_ssl(s);
    if (ssl && (SSL_get_shutdown(ssl) & SSL_RECEIVED_SHUTDOWN))
        p->got_close_notify = true;
}

static void on_timer(hr_sock_t *s)
{
    peer_t *p = (peer_t *)s;
    p->timer_fired = true;
    hr_sock_abort(s); /* as session.c does with a silent connection */
}

static void on_free(hr_sock_t *s)
{
    ((peer_t *)s)->freed = true;
}

static const hr_sock_ops_t ops = {
    .on_data = on_data, .on_eof = on_eof, .on_timer = on_timer, .on_free = on_free};

typedef struct world {
    hr_loop_t loop;
    hr_sock_ctx_t ctx;
    peer_t server, client;
} world_t;

static void flush_hook(hr_loop_t *loop, void *data)
{
    (void)loop;
    hr_sock_ctx_flush(data);
}

static void world_init(world_t *w, size_t recv_size)
{
    memset(w, 0, sizeof(*w));
    assert_int_equal(hr_loop_init(&w->loop, 64), 0);
    assert_int_equal(hr_sock_ctx_init(&w->ctx, &w->loop, recv_size), 0);
    w->ctx.linger_ms = 500;
    hr_loop_add_end_hook(&w->loop, flush_hook, &w->ctx);
    w->server.freed = w->client.freed = true; /* until started */
}

static void socket_pair(int fds[2], int sndbuf)
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
    if (sndbuf) {
        setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
        setsockopt(fds[1], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    }
}

static void start_peer(world_t *w, peer_t *p, int fd, SSL_CTX *ctx, const char *name)
{
    hr_buf_init(&p->rx);
    p->freed = false;
    assert_int_equal(hr_sock_start(&p->sock, &w->ctx, fd, &ops), 0);
    if (ctx)
        assert_int_equal(hr_sock_start_tls(&p->sock, ctx, name), 0);
}

/* Connected TLS server and client over a socketpair (the handshake has not run yet). */
static void world_pair(world_t *w, SSL_CTX *cctx, const char *name, int sndbuf)
{
    int fds[2];
    socket_pair(fds, sndbuf);
    start_peer(w, &w->server, fds[0], server_ctx, NULL);
    start_peer(w, &w->client, fds[1], cctx, name);
}

typedef bool (*cond_fn)(world_t *w);

/* A TLS server peer whose client is a plain socket: its fd, for the test to drive. */
static int world_raw_client(world_t *w)
{
    world_init(w, 65536);
    int fds[2];
    socket_pair(fds, 0);
    start_peer(w, &w->server, fds[0], server_ctx, NULL);
    return fds[1];
}

/* Runs the loop until cond holds; fails after 10 s. */
static void run_until(world_t *w, cond_fn cond)
{
    uint64_t end = hr_clock_ms() + 10000;
    while (!cond(w)) {
        assert_true(hr_clock_ms() < end);
        hr_loop_run_once(&w->loop, 20);
    }
}

static bool both_freed(world_t *w)
{
    return w->server.freed && w->client.freed;
}

static void world_deinit(world_t *w)
{
    if (!w->server.freed)
        hr_sock_abort(&w->server.sock);
    if (!w->client.freed)
        hr_sock_abort(&w->client.sock);
    hr_sock_ctx_flush(&w->ctx);
    assert_true(both_freed(w));
    hr_buf_deinit(&w->server.rx);
    hr_buf_deinit(&w->client.rx);
    hr_sock_ctx_deinit(&w->ctx);
    hr_loop_deinit(&w->loop);
}

static bool rx_is(const peer_t *p, const char *s)
{
    return p->rx.len == strlen(s) && memcmp(p->rx.data, s, p->rx.len) == 0;
}

/* ---------------------------------------------------------------- tests */

static bool hello_arrived(world_t *w)
{
    return w->server.rx.len >= 5;
}

static bool world_arrived(world_t *w)
{
    return w->client.rx.len >= 5;
}

static void test_tls_handshake_and_data_both_ways(void **state)
{
    (void)state;
    world_t w;
    world_init(&w, 65536);
    world_pair(&w, client_insecure, "localhost", 0);
    /* Queued before the handshake: waits for it. */
    assert_int_equal(hr_sock_write_copy(&w.client.sock, "hello", 5), 0);
    run_until(&w, hello_arrived);
    assert_true(rx_is(&w.server, "hello"));
    assert_true(hr_sock_tls_ready(&w.server.sock));
    assert_true(hr_sock_tls_ready(&w.client.sock));
    SSL *ssl = hr_sock_tls_ssl(&w.client.sock);
    assert_true(SSL_version(ssl) >= TLS1_2_VERSION);
    const unsigned char *alpn = NULL;
    unsigned alpn_len = 0;
    SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
    assert_int_equal(alpn_len, 8);
    assert_memory_equal(alpn, "http/1.1", 8);
    assert_int_equal(hr_sock_write_copy(&w.server.sock, "world", 5), 0);
    run_until(&w, world_arrived);
    assert_true(rx_is(&w.client, "world"));
    assert_null(hr_sock_tls_ssl(&(hr_sock_t){0}));
    world_deinit(&w);
}

#define BIG (3u << 20)

static uint8_t pattern(size_t i, unsigned seed)
{
    return (uint8_t)((i * 131u + seed) ^ (i >> 9));
}

/* Queues n bytes of the pattern as blocks of varied sizes: tiny ones (packed into one
 * record), medium, and larger than a record. */
static void queue_pattern(hr_sock_t *s, size_t n, unsigned seed)
{
    static const size_t sizes[] = {1, 7, 100, 3000, 16384, 16385, 70000, 200000, 13};
    size_t at = 0, k = 0;
    while (at < n) {
        size_t len = sizes[k++ % (sizeof(sizes) / sizeof(sizes[0]))];
        if (len > n - at)
            len = n - at;
        hr_refbuf_t *rb = hr_refbuf_create(len);
        assert_non_null(rb);
        for (size_t i = 0; i < len; i++)
            rb->data[i] = pattern(at + i, seed);
        assert_int_equal(hr_sock_write(s, rb, 0, len), 0);
        at += len;
    }
}

static bool big_arrived(world_t *w)
{
    return w->server.rx.len >= BIG && w->client.rx.len >= BIG + 1000;
}

static void test_tls_large_writes_both_ways_intact(void **state)
{
    (void)state;
    world_t w;
    world_init(&w, 32768);
    world_pair(&w, client_insecure, "localhost", 8192);
    queue_pattern(&w.client.sock, BIG, 1);
    queue_pattern(&w.server.sock, BIG + 1000, 2);
    run_until(&w, big_arrived);
    assert_int_equal(w.server.rx.len, BIG);
    assert_int_equal(w.client.rx.len, BIG + 1000);
    for (size_t i = 0; i < BIG; i++)
        if (w.server.rx.data[i] != pattern(i, 1))
            fail_msg("server byte %zu differs", i);
    for (size_t i = 0; i < BIG + 1000; i++)
        if (w.client.rx.data[i] != pattern(i, 2))
            fail_msg("client byte %zu differs", i);
    assert_int_equal(hr_sock_queued(&w.server.sock), 0);
    world_deinit(&w);
}

static bool client_eof(world_t *w)
{
    return w->client.eof;
}

static void test_tls_close_sends_close_notify_after_queued_data(void **state)
{
    (void)state;
    world_t w;
    world_init(&w, 65536);
    world_pair(&w, client_insecure, "localhost", 0);
    assert_int_equal(hr_sock_write_copy(&w.client.sock, "hello", 5), 0);
    run_until(&w, hello_arrived);
    assert_int_equal(hr_sock_write_copy(&w.server.sock, "bye", 3), 0);
    hr_sock_close(&w.server.sock);
    run_until(&w, client_eof);
    assert_true(rx_is(&w.client, "bye"));
    assert_int_equal(w.client.eof_err, 0);
    assert_true(w.client.got_close_notify);
    run_until(&w, both_freed);  /* the client closed: the lingering server sees EOF */
    assert_false(w.server.eof); /* a closing sock reports nothing */
    world_deinit(&w);
}

static bool server_freed(world_t *w)
{
    return w->server.freed;
}

static void test_tls_silent_peer_is_cut_off_by_the_timer(void **state)
{
    (void)state;
    world_t w;
    int peer = world_raw_client(&w);
    hr_loop_update_time(&w.loop);
    hr_sock_timer(&w.server.sock, 100); /* the handshake timeout */
    uint64_t t0 = hr_clock_ms();
    run_until(&w, server_freed);
    assert_true(w.server.timer_fired);
    assert_true(hr_clock_ms() - t0 < 5000);
    char c;
    assert_int_equal(read(peer, &c, 1), 0); /* EOF: the server's side is closed */
    close(peer);
    world_deinit(&w);
}

static bool server_eof(world_t *w)
{
    return w->server.eof;
}

static void test_tls_plain_http_request_gets_400(void **state)
{
    (void)state;
    world_t w;
    int peer = world_raw_client(&w);
    static const char req[] = "GET /ws HTTP/1.1\r\nHost: localhost\r\n\r\n";
    assert_int_equal(write(peer, req, sizeof(req) - 1), (ssize_t)sizeof(req) - 1);
    run_until(&w, server_eof);
    assert_int_equal(w.server.eof_err, HR_EPROTO);
    for (int i = 0; i < 20; i++)
        hr_loop_run_once(&w.loop, 5);
    char buf[512] = {0};
    ssize_t n = read(peer, buf, sizeof(buf) - 1);
    assert_true(n > 12);
    assert_memory_equal(buf, "HTTP/1.1 400", 12);
    close(peer); /* the lingering server sees EOF */
    run_until(&w, server_freed);
    world_deinit(&w);
}

static bool client_done(world_t *w)
{
    return w->client.eof || w->client.rx.len >= 2;
}

/* A client with ctx, to name: whether the handshake went through (the server's "ok"
 * arrived); otherwise the reason the client gave. */
static bool try_verify(SSL_CTX *ctx, const char *name, char *reason, size_t rlen)
{
    world_t w;
    world_init(&w, 65536);
    world_pair(&w, ctx, name, 0);
    assert_int_equal(hr_sock_write_copy(&w.server.sock, "ok", 2), 0);
    run_until(&w, client_done);
    bool ok = rx_is(&w.client, "ok");
    if (!ok) {
        assert_int_equal(w.client.eof_err, HR_EPROTO);
        snprintf(reason, rlen, "%s", w.client.eof_reason);
    }
    world_deinit(&w);
    return ok;
}

static void test_tls_client_verifies_the_server(void **state)
{
    (void)state;
    char err[256], why[256] = "";
    SSL_CTX *system = hr_tls_client_ctx_create(false, NULL, err, sizeof(err));
    SSL_CTX *pinned = hr_tls_client_ctx_create(false, cert_path, err, sizeof(err));
    assert_non_null(system);
    assert_non_null(pinned);
    /* Self-signed: not in the system store. */
    assert_false(try_verify(system, "localhost", why, sizeof(why)));
    assert_non_null(strstr(why, "certificate verify failed"));
    /* Trusted through cafile, by DNS name and by IP address. */
    assert_true(try_verify(pinned, "localhost", why, sizeof(why)));
    assert_true(try_verify(pinned, "127.0.0.1", why, sizeof(why)));
    /* Trusted, but for another name. */
    assert_false(try_verify(pinned, "example.com", why, sizeof(why)));
    assert_non_null(strstr(why, "certificate verify failed"));
    hr_tls_ctx_free(system);
    hr_tls_ctx_free(pinned);
    assert_null(hr_tls_client_ctx_create(false, "/nonexistent/ca.pem", err, sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent/ca.pem"));
}

static void test_tls_server_ctx_refuses_bad_files(void **state)
{
    (void)state;
    char err[512];
    assert_null(hr_tls_server_ctx_create("/nonexistent.pem", key_path, err, sizeof(err)));
    assert_non_null(strstr(err, "--tls-cert /nonexistent.pem"));
    /* The key where the certificate should be, and the other way round. */
    assert_null(hr_tls_server_ctx_create(key_path, key_path, err, sizeof(err)));
    assert_non_null(strstr(err, "--tls-cert"));
    assert_null(hr_tls_server_ctx_create(cert_path, cert_path, err, sizeof(err)));
    assert_non_null(strstr(err, "--tls-key"));
    /* A key that does not match. */
    char other[160];
    snprintf(other, sizeof(other), "%s/other.pem", dir);
    EVP_PKEY *pkey = EVP_EC_gen("P-256");
    FILE *f = fopen(other, "w");
    assert_non_null(f);
    PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    EVP_PKEY_free(pkey);
    assert_null(hr_tls_server_ctx_create(cert_path, other, err, sizeof(err)));
    assert_non_null(strstr(err, "does not match"));
    unlink(other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls_handshake_and_data_both_ways),
        cmocka_unit_test(test_tls_large_writes_both_ways_intact),
        cmocka_unit_test(test_tls_close_sends_close_notify_after_queued_data),
        cmocka_unit_test(test_tls_silent_peer_is_cut_off_by_the_timer),
        cmocka_unit_test(test_tls_plain_http_request_gets_400),
        cmocka_unit_test(test_tls_client_verifies_the_server),
        cmocka_unit_test(test_tls_server_ctx_refuses_bad_files),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
