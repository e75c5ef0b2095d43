/* TLS for hr_sock (see tls.h).
 *
 * One BIO of our own per connection serves both directions: reading calls read(2) on
 * the fd (OpenSSL reads ahead into its own buffer, released when empty), writing
 * appends to the thread's ciphertext buffer (sock ctx tls_out), which the caller then
 * writes with one system call. Writing never blocks inside OpenSSL, so SSL_write and
 * SSL_do_handshake never ask to be repeated with the same arguments, and the out
 * queue's blocks are consumed as they are encrypted. Ciphertext the socket did not
 * take goes to the connection's pend buffer and is written first next time (EPOLLOUT).
 *
 * The thread's error queue is cleared before each batch of SSL calls, so that an error
 * left by other OpenSSL users (JWT, SHA-1) is never mistaken for ours. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "base/alloc.h"
#include "base/log.h"
#include "herald/error.h"
#include "net/tls.h"

/* Plaintext encrypted per write system call at flush, and the largest record. */
#define FLUSH_BATCH (64 * 1024)
#define RECORD_MAX 16384

typedef struct hr_tls hr_tls_t;

struct hr_tls {
    SSL *ssl;
    hr_buf_t pend;  /* ciphertext the socket did not take yet (empty: no memory) */
    bool ready;     /* handshake done */
    bool failed;    /* a fatal TLS error: no more SSL calls but freeing */
    bool shut_sent; /* close_notify queued */
};

static _Thread_local char last_error[256];

static int send_out(hr_sock_t *s);

const char *hr_tls_last_error(void)
{
    return last_error[0] ? last_error : "TLS error";
}

/* Formats the oldest error on the queue (and the verify result) into last_error. */
static void note_error(SSL *ssl, const char *fallback)
{
    unsigned long e = ERR_peek_error();
    const char *reason = e ? ERR_reason_error_string(e) : NULL;
    long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    if (vr != X509_V_OK && ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED)
        snprintf(last_error, sizeof(last_error), "certificate verify failed (%s)",
                 X509_verify_cert_error_string(vr));
    else
        snprintf(last_error, sizeof(last_error), "%s", reason ? reason : fallback);
}

/* ---------------------------------------------------------------- the BIO */

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static int bio_write(BIO *b, const char *data, int len)
{
    hr_sock_t *s = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (len <= 0)
        return 0;
    if (hr_buf_append(&s->ctx->tls_out, data, (size_t)len) != 0)
        return -1; /* out of memory: a fatal error for this connection */
    return len;
}

static int bio_read(BIO *b, char *buf, int len)
{
    hr_sock_t *s = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (len <= 0)
        return 0;
    ssize_t n;
    do {
        n = read(s->io.fd, buf, (size_t)len);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        BIO_set_retry_read(b);
        return -1;
    }
    return (int)n; /* 0: EOF; -1 with errno: SSL_ERROR_SYSCALL */
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b, (void)num, (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static void bio_init_method(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "herald sock");
    if (m && BIO_meth_set_write(m, bio_write) && BIO_meth_set_read(m, bio_read) &&
        BIO_meth_set_ctrl(m, bio_ctrl) && BIO_meth_set_create(m, bio_create))
        bio_method = m;
    else if (m)
        BIO_meth_free(m);
}

/* ---------------------------------------------------------------- contexts */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static const char *openssl_reason(void)
{
    unsigned long e = ERR_peek_error(); /* the first: the cause ("no start line") */
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    return r ? r : "unknown error";
}

/* ALPN: HTTP/1.1 when offered; otherwise no ALPN (an h2-only client then gives up on its
 * own terms rather than by a handshake failure). */
static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl, (void)arg;
    static const unsigned char http11[] = "\x08http/1.1";
    unsigned char *sel = NULL;
    if (SSL_select_next_proto(&sel, outlen, http11, sizeof(http11) - 1, in, inlen) ==
        OPENSSL_NPN_NEGOTIATED) {
        *out = sel;
        return SSL_TLSEXT_ERR_OK;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

/* Mozilla "intermediate" for TLS 1.2, ECDHE only (forward secret AEAD); TLS 1.3 keeps
 * OpenSSL's defaults (AES-GCM and ChaCha20-Poly1305). */
static const char tls12_ciphers[] = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

static SSL_CTX *ctx_new(const SSL_METHOD *method)
{
    SSL_CTX *ctx = SSL_CTX_new(method);
    if (!ctx)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_IGNORE_UNEXPECTED_EOF);
    if (SSL_CTX_set_cipher_list(ctx, tls12_ciphers) != 1) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

static bool readable(const char *file, char *err, size_t errlen, const char *what)
{
    FILE *f = fopen(file, "r");
    if (!f) {
        set_err(err, errlen, "%s %s: %s", what, file, strerror(errno));
        return false;
    }
    fclose(f);
    return true;
}

SSL_CTX *hr_tls_server_ctx_create(const char *cert_file, const char *key_file, char *err,
                                  size_t errlen)
{
    if (!cert_file || !key_file) {
        set_err(err, errlen, "--tls-cert and --tls-key go together");
        return NULL;
    }
    if (!readable(cert_file, err, errlen, "--tls-cert") ||
        !readable(key_file, err, errlen, "--tls-key"))
        return NULL;
    ERR_clear_error();
    SSL_CTX *ctx = ctx_new(TLS_server_method());
    if (!ctx) {
        set_err(err, errlen, "cannot create a TLS context: %s", openssl_reason());
        return NULL;
    }
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* Resumption by tickets only (stateless): no session cache shared by the threads. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(ctx, 1);
    SSL_CTX_set_alpn_select_cb(ctx, select_alpn, NULL);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        set_err(err, errlen, "--tls-cert %s: not a usable PEM certificate: %s", cert_file,
                openssl_reason());
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH)
            set_err(err, errlen, "--tls-key %s does not match the certificate in --tls-cert %s",
                    key_file, cert_file);
        else
            set_err(err, errlen,
                    "--tls-key %s: no usable PEM private key (unencrypted RSA or EC): %s", key_file,
                    openssl_reason());
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        set_err(err, errlen, "--tls-key %s does not match the certificate in --tls-cert (%s)",
                key_file, openssl_reason());
        goto fail;
    }
    ERR_clear_error();
    return ctx;
fail:
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return NULL;
}

SSL_CTX *hr_tls_client_ctx_create(bool insecure, const char *cafile, char *err, size_t errlen)
{
    ERR_clear_error();
    SSL_CTX *ctx = ctx_new(TLS_client_method());
    if (!ctx) {
        set_err(err, errlen, "cannot create a TLS context: %s", openssl_reason());
        return NULL;
    }
    if (insecure) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        int ok = cafile ? SSL_CTX_load_verify_locations(ctx, cafile, NULL)
                        : SSL_CTX_set_default_verify_paths(ctx);
        if (ok != 1) {
            set_err(err, errlen, "cannot load CA certificates from %s: %s",
                    cafile ? cafile : "the system store", openssl_reason());
            ERR_clear_error();
            SSL_CTX_free(ctx);
            return NULL;
        }
    }
    ERR_clear_error();
    return ctx;
}

void hr_tls_ctx_free(SSL_CTX *ctx)
{
    SSL_CTX_free(ctx);
}

/* ---------------------------------------------------------------- per connection */

static bool is_ip_literal(const char *host)
{
    ASN1_OCTET_STRING *ip = a2i_IPADDRESS(host);
    if (!ip)
        return false;
    ASN1_OCTET_STRING_free(ip);
    return true;
}

int hr_sock_start_tls(hr_sock_t *s, SSL_CTX *ctx, const char *server_name)
{
    pthread_once(&bio_once, bio_init_method);
    if (!bio_method || !ctx)
        return HR_EINVAL;
    hr_tls_t *t = hr_calloc(1, sizeof(*t));
    if (!t)
        return HR_ENOMEM;
    ERR_clear_error();
    t->ssl = SSL_new(ctx);
    BIO *bio = t->ssl ? BIO_new(bio_method) : NULL;
    if (!bio) {
        SSL_free(t->ssl);
        hr_free(t);
        ERR_clear_error();
        return HR_ENOMEM;
    }
    BIO_set_data(bio, s);
    SSL_set_bio(t->ssl, bio, bio); /* one reference, for both directions */
    hr_buf_init(&t->pend);
    s->tls = t;
    if (!server_name) {
        SSL_set_accept_state(t->ssl);
        return 0;
    }
    SSL_set_connect_state(t->ssl);
    static const unsigned char http11[] = "\x08http/1.1";
    int ok = SSL_set_alpn_protos(t->ssl, http11, sizeof(http11) - 1) == 0;
    if (is_ip_literal(server_name)) {
        if (SSL_get_verify_mode(t->ssl) != SSL_VERIFY_NONE)
            ok = ok && X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), server_name) == 1;
    } else {
        ok = ok && SSL_set_tlsext_host_name(t->ssl, server_name) == 1;
        if (SSL_get_verify_mode(t->ssl) != SSL_VERIFY_NONE)
            ok = ok && SSL_set1_host(t->ssl, server_name) == 1;
    }
    if (!ok) {
        ERR_clear_error();
        return HR_EINVAL; /* s->tls is set: freed with the sock */
    }
    /* The client hello goes out now; the server's reply arrives as input. */
    int r = SSL_do_handshake(t->ssl);
    int e = SSL_get_error(t->ssl, r);
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
        note_error(t->ssl, "handshake failed");
        ERR_clear_error();
        s->ctx->tls_out.len = 0;
        return HR_EPROTO;
    }
    int rc = send_out(s);
    if (rc == HR_EAGAIN)
        hr_sock__schedule_flush(s);
    return rc == HR_EAGAIN ? 0 : rc;
}

bool hr_sock_tls_ready(const hr_sock_t *s)
{
    return s->tls && s->tls->ready;
}

SSL *hr_sock_tls_ssl(const hr_sock_t *s)
{
    return s->tls ? s->tls->ssl : NULL;
}

void hr_tls__free(hr_sock_t *s)
{
    hr_tls_t *t = s->tls;
    s->tls = NULL;
    SSL_free(t->ssl);
    hr_buf_deinit(&t->pend);
    hr_free(t);
}

/* ---------------------------------------------------------------- output */

static int write_fd(int fd, const uint8_t *p, size_t len, size_t *done)
{
    ssize_t w;
    do {
        w = write(fd, p, len);
    } while (w < 0 && errno == EINTR);
    if (w < 0) {
        *done = 0;
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
    }
    *done = (size_t)w;
    return 0;
}

/* Writes the connection's pending ciphertext. 0 (none left), HR_EAGAIN, -errno. */
static int write_pend(hr_sock_t *s)
{
    hr_tls_t *t = s->tls;
    if (!t->pend.len)
        return 0;
    size_t w;
    int rc = write_fd(s->io.fd, t->pend.data, t->pend.len, &w);
    if (rc)
        return rc;
    hr_buf_consume(&t->pend, w);
    if (t->pend.len)
        return HR_EAGAIN;
    hr_buf_deinit(&t->pend);
    return 0;
}

/* Sends the thread's ciphertext buffer: one write; the rest goes to pend (behind what
 * is there already). 0, HR_EAGAIN (some left in pend), HR_ENOMEM or -errno. */
static int send_out(hr_sock_t *s)
{
    hr_tls_t *t = s->tls;
    hr_buf_t *out = &s->ctx->tls_out;
    if (!out->len)
        return t->pend.len ? HR_EAGAIN : 0;
    size_t w = 0;
    int rc = 0;
    if (!t->pend.len)
        rc = write_fd(s->io.fd, out->data, out->len, &w);
    if (rc == 0 && w < out->len && hr_buf_append(&t->pend, out->data + w, out->len - w) != 0)
        rc = HR_ENOMEM;
    out->len = 0;
    if (out->cap > 4 * FLUSH_BATCH) /* a large handshake flight or a burst: do not keep it */
        hr_buf_deinit(out);
    return rc ? rc : t->pend.len ? HR_EAGAIN : 0;
}

/* Drops n bytes from the front of the out queue (they are encrypted). */
static void outq_consume(hr_outq_t *q, size_t n)
{
    uint32_t mask = (1u << q->cap_log2) - 1;
    q->bytes -= n;
    while (n) {
        hr_outq_item_t *it = &q->items[q->head];
        size_t len = it->end - it->off;
        if (n < len) {
            it->off += n;
            q->head_partial = true;
            return;
        }
        n -= len;
        q->head_partial = false;
        hr_refbuf_unref(it->rb);
        q->head = (q->head + 1) & mask;
        q->count--;
    }
}

static bool ssl_write_all(SSL *ssl, const void *p, size_t len)
{
    return len == 0 || SSL_write(ssl, p, (int)len) == (int)len;
}

/* Encrypts up to about budget bytes of the out queue into the thread's ciphertext
 * buffer. Small blocks are packed into one record through the receive buffer (free
 * while flushing: on_data is never running then). 0 or HR_EPROTO. */
static int encrypt(hr_sock_t *s, size_t budget)
{
    hr_outq_t *q = &s->outq;
    SSL *ssl = s->tls->ssl;
    uint8_t *stage = s->ctx->recv_buf;
    size_t cap = s->ctx->recv_size < RECORD_MAX ? s->ctx->recv_size : RECORD_MAX;
    size_t used = 0, done = 0;
    while (q->count && done < budget) {
        hr_outq_item_t *it = &q->items[q->head];
        const uint8_t *p = it->rb->data + it->off;
        size_t len = it->end - it->off;
        if (len <= cap - used) {
            memcpy(stage + used, p, len);
            used += len;
            done += len;
            outq_consume(q, len);
            continue;
        }
        if (used) {
            if (!ssl_write_all(ssl, stage, used))
                return HR_EPROTO;
            used = 0;
        }
        if (len < cap)
            continue; /* staged on the next round */
        size_t n = budget - done;
        if (n > len)
            n = len;
        if (n > INT_MAX)
            n = INT_MAX;
        if (!ssl_write_all(ssl, p, n))
            return HR_EPROTO;
        done += n;
        outq_consume(q, n);
    }
    if (used && !ssl_write_all(ssl, stage, used))
        return HR_EPROTO;
    return 0;
}

int hr_tls__flush(hr_sock_t *s)
{
    hr_tls_t *t = s->tls;
    int rc = write_pend(s);
    if (rc)
        return rc;
    ERR_clear_error();
    if (!t->ready || t->failed) {
        /* Nothing can be sent before the handshake; when closing, nothing will be. */
        if (t->failed || (s->flags & HR_SOCK_CLOSING))
            hr_outq_deinit(&s->outq);
        return 0;
    }
    while (s->outq.count) {
        s->ctx->tls_out.len = 0;
        rc = encrypt(s, FLUSH_BATCH);
        if (rc == 0)
            rc = send_out(s);
        if (rc)
            return rc;
    }
    hr_outq_deinit(&s->outq); /* empty: frees the item array */
    if ((s->flags & HR_SOCK_CLOSING) && !t->shut_sent) {
        t->shut_sent = true;
        SSL_shutdown(t->ssl); /* close_notify; the peer's is not waited for */
        ERR_clear_error();
        return send_out(s);
    }
    return 0;
}

/* ---------------------------------------------------------------- input */

/* A failed SSL call: EOF, socket error or TLS error (err from SSL_get_error). */
static void fail(hr_sock_t *s, int err)
{
    hr_tls_t *t = s->tls;
    if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && errno == 0)) {
        ERR_clear_error();
        s->ops->on_eof(s, 0); /* close_notify, or EOF without one */
        hr_sock__finish(s);
        return;
    }
    if (err == SSL_ERROR_SYSCALL) {
        int e = -errno;
        ERR_clear_error();
        snprintf(last_error, sizeof(last_error), "%s", strerror(-e));
        s->ops->on_eof(s, e);
        hr_sock__finish(s);
        return;
    }
    /* A TLS protocol error: OpenSSL queued an alert; a plain HTTP request gets a plain
     * answer. Then the lingering close, so that they arrive. */
    note_error(t->ssl, "TLS error");
    bool http = ERR_GET_REASON(ERR_peek_error()) == SSL_R_HTTP_REQUEST;
    ERR_clear_error();
    t->failed = true;
    hr_buf_t *out = &s->ctx->tls_out;
    if (http) {
        static const char msg[] = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
                                  "Content-Length: 40\r\nConnection: close\r\n\r\n"
                                  "plain HTTP request sent to a TLS port\r\n\r\n";
        out->len = 0;
        hr_buf_append(out, msg, sizeof(msg) - 1);
    }
    hr_log_debug("TLS %s failed: %s", t->ready ? "connection" : "handshake", last_error);
    int rc = send_out(s);
    s->ops->on_eof(s, HR_EPROTO);
    if (rc != 0 && rc != HR_EAGAIN)
        hr_sock__finish(s);
    else
        hr_sock_close(s);
}

void hr_tls__read(hr_sock_t *s)
{
    hr_tls_t *t = s->tls;
    if (t->failed)
        return;
    ERR_clear_error();
    if (!t->ready) {
        int r = SSL_do_handshake(t->ssl);
        int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(t->ssl, r);
        if (e != SSL_ERROR_NONE && e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
            fail(s, e);
            return;
        }
        int rc = send_out(s);
        if (rc != 0 && rc != HR_EAGAIN) {
            s->ops->on_eof(s, rc);
            hr_sock__finish(s);
            return;
        }
        if (rc == HR_EAGAIN || (e == SSL_ERROR_NONE && s->outq.count))
            hr_sock__schedule_flush(s);
        if (e != SSL_ERROR_NONE)
            return;
        t->ready = true;
    }
    hr_sock_ctx_t *ctx = s->ctx;
    for (int i = 0; i < 4; i++) {
        size_t got = 0;
        int e = SSL_ERROR_NONE;
        while (got < ctx->recv_size) {
            size_t want = ctx->recv_size - got;
            int n = SSL_read(t->ssl, ctx->recv_buf + got, want > INT_MAX ? INT_MAX : (int)want);
            if (n <= 0) {
                e = SSL_get_error(t->ssl, n);
                break;
            }
            got += (size_t)n;
        }
        if (ctx->tls_out.len) { /* a key update answered, an alert */
            int rc = send_out(s);
            if (rc == HR_EAGAIN)
                hr_sock__schedule_flush(s);
        }
        if (got) {
            s->ops->on_data(s, ctx->recv_buf, got);
            if (s->flags & (HR_SOCK_CLOSED | HR_SOCK_CLOSING) || !(s->io.events & EPOLLIN))
                return; /* paused: hr_sock_pause_reading looks again on resume */
        }
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            return;
        if (e != SSL_ERROR_NONE) {
            fail(s, e);
            return;
        }
    }
    /* Enough for one event; what OpenSSL holds already raises no event: read it at the
     * end of this iteration. Bytes still in the socket do. */
    if (SSL_has_pending(t->ssl)) {
        s->flags |= HR_SOCK_TLS_READ;
        hr_sock__schedule_flush(s);
    }
}
