/* The WebSocket client (include/herald/client.h): URL parsing, name resolution and a
 * non-blocking connect, the opening handshake (RFC 6455 §4.1: key, request, strict
 * validation of the 101), masked frames out (§5.3), the shared receive state machine
 * (ws/ws_conn) in, ping/pong (§5.5.2-3), the close handshake (§7), permessage-deflate
 * (RFC 7692) and reconnection with a jittered exponential back-off.
 *
 * Built from the server's parts: hr_sock for I/O (corked writes, lingering close,
 * deferred free), the frame codec, the reader, the deflate negotiation and streams.
 * A client outlives its connections: each attempt restarts the embedded sock, and the
 * sock's on_free is where a connection ends (on_close) and where the client is freed
 * once destroyed, so nothing is ever freed inside its own callback.
 *
 * wss:// is the same over net/tls (the HTTP request waits in the out queue for the TLS
 * handshake; the connect timeout covers both). Not done here: proxies, redirects, asynchronous name
 * resolution (getaddrinfo blocks the loop for the lookup; fine for a CLI and a bench). */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "base/alloc.h"
#include "base/refbuf.h"
#include "client/ws_client.h"
#include "herald/error.h"
#include "http/http_parse.h"
#include "http/http_upgrade.h"
#include "net/tls.h"
#include "ws/ws_frame.h"

#define RECV_BUFFER (256 * 1024) /* as the server: a 64 KiB message usually arrives whole */
#define MAX_HEAD 16384
#define MAX_HEADERS 64
/* Messages shorter than this are sent uncompressed: deflate would not pay off. */
#define DEFLATE_MIN_BYTES 32
/* How long hr_client_close waits for the server's close frame. */
#define CLOSE_WAIT_MS 2000
/* A connection that stayed open this long resets the back-off to its minimum. */
#define STABLE_MS 5000
/* Compression output above this is released after the message, not kept for reuse. */
#define SCRATCH_KEEP (1u << 20)

/* Per-loop state shared by the clients of one loop: zlib streams for connections
 * without context takeover, and the output buffers of inflate and deflate. */
#define TLS_CTX_CACHE 4

struct hr_client_loop {
    hr_deflate_stream_t deflate, inflate;
    struct { /* TLS client contexts by verification settings (loading a CA store is slow) */
        bool insecure;
        char *cafile;
        struct ssl_ctx_st *ctx;
    } tls[TLS_CTX_CACHE];
    hr_buf_t scratch;  /* inflated incoming messages (the reader's scratch) */
    hr_buf_t zscratch; /* compressed outgoing messages */
};

static const hr_sock_ops_t client_ops;
static void start_attempt(hr_client_t *c);
static void try_connect(hr_client_t *c, int last_err);

static hr_client_t *client_of(hr_sock_t *s)
{
    return (hr_client_t *)s;
}

/* xorshift64*: frame masks need to be unpredictable to scripts in a browser, not
 * cryptographic (RFC 6455 §10.3); seeded from RAND_bytes per client. */
static uint64_t next_rand(hr_client_t *c)
{
    uint64_t x = c->prng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    c->prng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* ---------------------------------------------------------------- per-loop state */

static void sock_ctx_flush_hook(hr_loop_t *loop, void *data)
{
    (void)loop;
    hr_sock_ctx_flush(data);
}

static void sock_ctx_destroy_hook(hr_loop_t *loop, void *data)
{
    hr_sock_ctx_deinit(data);
    if (loop->sock_ctx == data)
        loop->sock_ctx = NULL;
    hr_free(data);
}

/* A standalone loop has no net layer yet: give it one, flushed at the end of each
 * iteration and freed with the loop (its deinit frees socks still waiting for on_free). */
static int ensure_sock_ctx(hr_loop_t *loop)
{
    if (loop->sock_ctx)
        return 0;
    if (loop->n_end_hooks == HR_LOOP_MAX_HOOKS || loop->n_destroy_hooks == HR_LOOP_MAX_HOOKS)
        return HR_ENOBUFS;
    hr_sock_ctx_t *ctx = hr_malloc(sizeof(*ctx));
    if (!ctx)
        return HR_ENOMEM;
    if (hr_sock_ctx_init(ctx, loop, RECV_BUFFER) != 0) {
        hr_free(ctx);
        return HR_ENOMEM;
    }
    hr_loop_add_end_hook(loop, sock_ctx_flush_hook, ctx);
    hr_loop_add_destroy_hook(loop, sock_ctx_destroy_hook, ctx);
    loop->sock_ctx = ctx;
    return 0;
}

static void client_loop_destroy(hr_loop_t *loop, void *data)
{
    hr_client_loop_t *cl = data;
    (void)loop;
    hr_deflate_stream_deinit(&cl->deflate);
    hr_deflate_stream_deinit(&cl->inflate);
    hr_buf_deinit(&cl->scratch);
    hr_buf_deinit(&cl->zscratch);
    for (int i = 0; i < TLS_CTX_CACHE; i++) {
        hr_tls_ctx_free(cl->tls[i].ctx);
        hr_free(cl->tls[i].cafile);
    }
    hr_free(cl);
}

/* The loop's shared client state, found by its destroy hook (the loop has no slot of
 * its own for us), made on first use. NULL on out of memory or no free hook. */
static hr_client_loop_t *client_loop_get(hr_loop_t *loop)
{
    for (int i = 0; i < loop->n_destroy_hooks; i++)
        if (loop->destroy_hooks[i].fn == client_loop_destroy)
            return loop->destroy_hooks[i].data;
    hr_client_loop_t *cl = hr_calloc(1, sizeof(*cl));
    if (cl && hr_loop_add_destroy_hook(loop, client_loop_destroy, cl) != 0) {
        hr_free(cl);
        cl = NULL;
    }
    return cl;
}

/* A reference to a client TLS context for these settings, shared by the loop's clients.
 * NULL with a message in err. */
static struct ssl_ctx_st *client_tls_ctx(hr_client_loop_t *cl, bool insecure, const char *cafile,
                                         char *err, size_t errlen)
{
    int free_slot = -1;
    for (int i = 0; i < TLS_CTX_CACHE; i++) {
        if (!cl->tls[i].ctx) {
            if (free_slot < 0)
                free_slot = i;
            continue;
        }
        if (cl->tls[i].insecure == insecure &&
            (cafile ? cl->tls[i].cafile && strcmp(cafile, cl->tls[i].cafile) == 0
                    : !cl->tls[i].cafile)) {
            SSL_CTX_up_ref(cl->tls[i].ctx);
            return cl->tls[i].ctx;
        }
    }
    struct ssl_ctx_st *ctx = hr_tls_client_ctx_create(insecure, cafile, err, errlen);
    if (!ctx || free_slot < 0)
        return ctx; /* the cache is full: this client's own */
    char *copy = cafile ? hr_strdup(cafile) : NULL;
    if (cafile && !copy)
        return ctx;
    cl->tls[free_slot].insecure = insecure;
    cl->tls[free_slot].cafile = copy;
    cl->tls[free_slot].ctx = ctx;
    SSL_CTX_up_ref(ctx);
    return ctx;
}

/* ---------------------------------------------------------------- URL and options */

static void set_err(char *err, size_t errlen, const char *msg)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", msg);
}

static char *dup_n(const char *s, size_t n)
{
    char *d = hr_malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* Splits "ws[s]://host[:port][/path][?query][#frag]"; *tls for wss. Returns NULL or a
 * static message. */
static const char *parse_url(hr_client_t *c, const char *url, bool *tls)
{
    if (!url || !*url)
        return "no URL";
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return "URL contains whitespace or control characters";
    *tls = strncasecmp(url, "wss://", 6) == 0;
    if (!*tls && strncasecmp(url, "ws://", 5) != 0)
        return "URL must start with ws:// or wss://";
    const char *a = url + (*tls ? 6 : 5);
    unsigned long default_port = *tls ? 443 : 80;
    size_t alen = strcspn(a, "/?#");
    const char *rest = a + alen;
    if (memchr(a, '@', alen))
        return "user info in URL not supported";

    const char *host = a, *after;
    size_t hlen;
    bool v6 = a[0] == '[';
    if (v6) {
        const char *close = memchr(a, ']', alen);
        if (!close)
            return "bad IPv6 address in URL";
        host = a + 1;
        hlen = (size_t)(close - host);
        after = close + 1;
    } else {
        const char *colon = memchr(a, ':', alen);
        hlen = colon ? (size_t)(colon - a) : alen;
        after = a + hlen;
    }
    if (hlen == 0)
        return "empty host in URL";

    unsigned long port = default_port;
    if (after < rest) {
        if (*after != ':' || after + 1 == rest || rest - after > 6)
            return "bad port in URL";
        port = 0;
        for (const char *p = after + 1; p < rest; p++) {
            if (*p < '0' || *p > '9')
                return "bad port in URL";
            port = port * 10 + (unsigned long)(*p - '0');
        }
        if (port == 0 || port > 65535)
            return "bad port in URL";
    }

    char portbuf[8], hostbuf[300];
    snprintf(portbuf, sizeof(portbuf), "%lu", port);
    if (hlen > 255)
        return "host name too long";
    int n = snprintf(hostbuf, sizeof(hostbuf), "%s%.*s%s%s%s", v6 ? "[" : "", (int)hlen, host,
                     v6 ? "]" : "", port != default_port ? ":" : "",
                     port != default_port ? portbuf : "");
    size_t plen = strcspn(rest, "#");
    c->host = dup_n(host, hlen);
    c->port = dup_n(portbuf, strlen(portbuf));
    c->host_header = dup_n(hostbuf, (size_t)n);
    if (plen == 0)
        c->target = dup_n("/", 1);
    else if (rest[0] == '?') {
        c->target = hr_malloc(plen + 2);
        if (c->target) {
            c->target[0] = '/';
            memcpy(c->target + 1, rest, plen);
            c->target[plen + 1] = '\0';
        }
    } else
        c->target = dup_n(rest, plen);
    if (!c->host || !c->port || !c->host_header || !c->target)
        return "out of memory";
    return NULL;
}

static bool has_crlf(const char *s)
{
    return s && strpbrk(s, "\r\n") != NULL;
}

/* Copies a NULL-terminated list; *bad is set if an element holds CR or LF. */
static char **dup_list(const char *const *l, bool *bad, bool *nomem)
{
    if (!l)
        return NULL;
    size_t n = 0;
    while (l[n])
        n++;
    char **d = hr_calloc(n + 1, sizeof(*d));
    if (!d) {
        *nomem = true;
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (has_crlf(l[i]))
            *bad = true;
        if (!(d[i] = hr_strdup(l[i])))
            *nomem = true;
    }
    return d;
}

static void free_list(char **l)
{
    if (!l)
        return;
    for (char **p = l; *p; p++)
        hr_free(*p);
    hr_free(l);
}

static void free_addrs(hr_client_t *c)
{
    if (c->ai_list)
        freeaddrinfo(c->ai_list);
    c->ai_list = c->ai_cur = NULL;
}

static void client_free(hr_client_t *c)
{
    hr_loop_timer_stop(c->loop, &c->timer);
    free_addrs(c);
    hr_buf_deinit(&c->head);
    hr_free(c->host);
    hr_free(c->port);
    hr_free(c->host_header);
    hr_free(c->target);
    hr_free(c->origin);
    hr_free(c->source_addr);
    free_list(c->headers);
    free_list(c->protocols);
    hr_tls_ctx_free(c->tls_ctx);
    hr_free(c);
}

void hr_client_options_init(hr_client_options_t *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->max_message = 16u << 20;
    opts->max_backlog = 16u << 20;
    opts->connect_timeout_ms = 10000;
    opts->reconnect_min_ms = 500;
    opts->reconnect_max_ms = 30000;
}

/* ---------------------------------------------------------------- errors and endings */

static void report_error(hr_client_t *c, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Calls on_error with a one-line message (unless the client is being destroyed). */
static void report_error(hr_client_t *c, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errmsg, sizeof(c->errmsg), fmt, ap);
    va_end(ap);
    if (!c->destroyed && c->cb.on_error)
        c->cb.on_error(c, err, c->errmsg);
}

/* A failure with no sock to carry it (resolution, socket, an immediate connect error):
 * delivered from the client's timer, never inside hr_client_connect. */
static void defer_failure(hr_client_t *c, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void defer_failure(hr_client_t *c, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errmsg, sizeof(c->errmsg), fmt, ap);
    va_end(ap);
    c->pending_err = err ? err : HR_EINVAL;
    c->state = HR_CLIENT_IDLE;
    hr_loop_timer_start(c->loop, &c->timer, 0);
}

/* The connection (or attempt) is over: on_close, then the next attempt if reconnecting.
 * Back-off: min, doubling up to max, ±20% jitter; back to min after a stable connection. */
static void ended(hr_client_t *c)
{
    bool was_open = c->opened;
    uint16_t code = c->close_received ? c->close_code : HR_WS_CLOSE_ABNORMAL;
    c->opened = false;
    c->state = HR_CLIENT_IDLE;
    if (!c->destroyed && c->cb.on_close)
        c->cb.on_close(c, code, c->close_reason, c->close_received ? c->close_reason_len : 0);
    if (c->destroyed || c->user_closed || !c->opt.reconnect)
        return;
    if (was_open && c->loop->now_ms - c->opened_ms >= STABLE_MS)
        c->backoff_ms = c->opt.reconnect_min_ms;
    uint64_t base = c->backoff_ms, delta = base / 5;
    uint64_t delay = base - delta + next_rand(c) % (2 * delta + 1);
    c->backoff_ms =
        base * 2 > c->opt.reconnect_max_ms ? c->opt.reconnect_max_ms : (uint32_t)(base * 2);
    hr_loop_timer_start(c->loop, &c->timer, delay);
}

/* The client's own timer: a deferred failure, or the next reconnect attempt. */
static void on_client_timer(hr_timer_t *t)
{
    hr_client_t *c = hr_list_entry(t, hr_client_t, timer);
    c->dispatching = true;
    if (c->pending_err) {
        int err = c->pending_err;
        c->pending_err = 0;
        report_error(c, err, "%s", c->errmsg);
        ended(c);
    } else if (!c->destroyed && !c->user_closed) {
        start_attempt(c);
    }
    c->dispatching = false;
    if (c->destroyed && !c->sock_live)
        client_free(c);
}

/* Frees what one connection held; the client itself stays. */
static void release_conn(hr_client_t *c)
{
    if (c->rd_live) {
        hr_ws_reader_deinit(&c->rd);
        c->rd_live = false;
    }
    hr_buf_deinit(&c->head);
    if (c->own_inflate) {
        hr_deflate_stream_deinit(c->own_inflate);
        hr_free(c->own_inflate);
        c->own_inflate = NULL;
    }
    if (c->own_deflate) {
        hr_deflate_stream_deinit(c->own_deflate);
        hr_free(c->own_deflate);
        c->own_deflate = NULL;
    }
    hr_free(c->protocol);
    c->protocol = NULL;
    c->deflate = false;
}

static void on_free(hr_sock_t *s)
{
    hr_client_t *c = client_of(s);
    c->dispatching = true;
    release_conn(c);
    if (c->next_addr && !c->destroyed && !c->user_closed && c->ai_cur) {
        c->next_addr = false;
        c->sock_live = false;
        c->ai_cur = c->ai_cur->ai_next;
        try_connect(c, 0);
    } else {
        free_addrs(c);
        c->sock_live = false;
        ended(c);
    }
    c->dispatching = false;
    if (c->destroyed && !c->sock_live)
        client_free(c);
}

/* ---------------------------------------------------------------- connecting */

static int bind_source(hr_client_t *c, int fd, int family)
{
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = family;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_PASSIVE;
    if (getaddrinfo(c->source_addr, NULL, &hints, &ai) != 0 || !ai) {
        if (ai)
            freeaddrinfo(ai);
        return HR_EINVAL;
    }
    int rc = bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 ? -errno : 0;
    freeaddrinfo(ai);
    return rc;
}

/* Opens a socket for ai and starts connecting. Returns the fd, or -errno / HR_E*. */
static int open_socket(hr_client_t *c, const struct addrinfo *ai, const char **what)
{
    *what = "socket";
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (c->source_addr) {
        *what = "bind to source address";
        int rc = bind_source(c, fd, ai->ai_family);
        if (rc) {
            close(fd);
            return rc;
        }
    }
    *what = "connect";
    /* A non-blocking connect interrupted by a signal goes on in the background (EINTR
     * is then EINPROGRESS; retrying would be EALREADY). */
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS && errno != EINTR) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

/* Tries c->ai_cur and the addresses after it until a connect is under way. */
static void try_connect(hr_client_t *c, int last_err)
{
    const char *what = "connect";
    for (; c->ai_cur; c->ai_cur = c->ai_cur->ai_next) {
        int fd = open_socket(c, c->ai_cur, &what);
        if (fd < 0) {
            last_err = fd;
            continue;
        }
        int rc = hr_sock_connect(&c->sock, c->loop->sock_ctx, fd, &client_ops);
        if (rc) {
            close(fd);
            last_err = rc;
            continue;
        }
        c->sock_live = true;
        c->state = HR_CLIENT_CONNECTING;
        hr_sock_timer(&c->sock, c->opt.connect_timeout_ms);
        return;
    }
    free_addrs(c);
    defer_failure(c, last_err, "%s to %s:%s failed: %s", what, c->host, c->port,
                  hr_strerror(last_err));
}

static void start_attempt(hr_client_t *c)
{
    c->close_sent = c->close_received = false;
    c->close_code = 0;
    c->close_reason_len = 0;
    c->opened = c->next_addr = false;
    c->pending_err = 0;
    free_addrs(c);
    struct addrinfo hints = {0};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(c->host, c->port, &hints, &c->ai_list);
    if (rc != 0 || !c->ai_list) {
        c->ai_list = NULL;
        defer_failure(c, HR_ENOENT, "cannot resolve %s: %s", c->host,
                      rc ? gai_strerror(rc) : "no address");
        return;
    }
    c->ai_cur = c->ai_list;
    try_connect(c, HR_ENOENT);
}

/* ---------------------------------------------------------------- sending */

/* Builds one masked frame (header + masked copy of the payload) in a refbuf and queues
 * it. RFC 6455 §5.3: a fresh key per frame. 0, HR_ENOMEM or HR_ECLOSED. */
static int send_frame(hr_client_t *c, uint8_t opcode, bool fin, unsigned rsv, const void *data,
                      size_t len)
{
    uint8_t mask[4];
    uint32_t m = (uint32_t)(next_rand(c) >> 32);
    memcpy(mask, &m, sizeof(mask));
    hr_refbuf_t *rb = hr_refbuf_create(HR_WS_FRAME_HEADER_MAX + len);
    if (!rb)
        return HR_ENOMEM;
    size_t h = hr_ws_frame_encode_header(rb->data, fin, rsv, opcode, len, mask);
    if (len) {
        memcpy(rb->data + h, data, len);
        hr_ws_mask(rb->data + h, len, mask, 0);
    }
    return hr_sock_write(&c->sock, rb, 0, h + len);
}

static void send_close(hr_client_t *c, uint16_t code, const char *reason, size_t rlen)
{
    if (c->close_sent)
        return;
    c->close_sent = true;
    uint8_t payload[125];
    size_t n = hr_ws_close_payload(payload, code, reason, rlen);
    send_frame(c, HR_WS_OP_CLOSE, true, 0, payload, n);
}

static bool can_compress(const hr_client_t *c, size_t len)
{
    /* zlib cannot compress with an 8-bit window; RFC 7692 §6 lets us send plain. */
    return c->deflate && c->shared && len >= DEFLATE_MIN_BYTES &&
           c->dfl.client_max_window_bits >= 9;
}

int hr_client_send(hr_client_t *c, const void *data, size_t len, bool binary)
{
    if (c->state != HR_CLIENT_OPEN)
        return HR_ESTATE;
    if (hr_sock_queued(&c->sock) > c->opt.max_backlog)
        return HR_ENOBUFS;
    uint8_t op = binary ? HR_WS_OP_BINARY : HR_WS_OP_TEXT;
    if (!can_compress(c, len))
        return send_frame(c, op, true, 0, data, len);
    hr_client_loop_t *cl = c->shared;
    bool takeover = !c->dfl.client_no_context_takeover;
    hr_deflate_stream_t *s = takeover ? c->own_deflate : &cl->deflate;
    if (takeover && !s)
        s = c->own_deflate = hr_calloc(1, sizeof(*s));
    int rc = HR_ENOMEM;
    cl->zscratch.len = 0;
    if (s && hr_deflate_compress(s, &c->dcfg, c->dfl.client_max_window_bits, !takeover, data, len,
                                 &cl->zscratch) == 0)
        rc = send_frame(c, op, true, HR_WS_RSV1, cl->zscratch.data, cl->zscratch.len);
    if (cl->zscratch.cap > SCRATCH_KEEP)
        hr_buf_deinit(&cl->zscratch);
    return rc;
}

int hr_client_send_frame(hr_client_t *c, uint8_t opcode, bool fin, const void *data, size_t len)
{
    if (c->state != HR_CLIENT_OPEN)
        return HR_ESTATE;
    switch (opcode) {
    case HR_WS_OP_CONT:
    case HR_WS_OP_TEXT:
    case HR_WS_OP_BINARY:
        break;
    case HR_WS_OP_CLOSE:
    case HR_WS_OP_PING:
    case HR_WS_OP_PONG:
        if (len > 125 || !fin)
            return HR_EINVAL;
        break;
    default:
        return HR_EINVAL;
    }
    if (hr_sock_queued(&c->sock) > c->opt.max_backlog)
        return HR_ENOBUFS;
    return send_frame(c, opcode, fin, 0, data, len);
}

int hr_client_ping(hr_client_t *c, const void *data, size_t len)
{
    if (len > 125)
        return HR_EINVAL;
    if (c->state != HR_CLIENT_OPEN)
        return HR_ESTATE;
    c->last_ping_ms = c->loop->now_ms;
    return send_frame(c, HR_WS_OP_PING, true, 0, data, len);
}

/* ---------------------------------------------------------------- open phase */

/* A callback that closed or destroyed the client stops the reader. */
static int stop_feeding(const hr_client_t *c)
{
    return c->destroyed || (c->sock.flags & (HR_SOCK_CLOSING | HR_SOCK_CLOSED));
}

static int on_message(void *ud, uint8_t opcode, uint8_t *data, size_t len)
{
    hr_client_t *c = ud;
    if (c->cb.on_message && !c->destroyed)
        c->cb.on_message(c, data, len, opcode == HR_WS_OP_BINARY);
    return stop_feeding(c);
}

static int on_control(void *ud, uint8_t opcode, uint16_t code, uint8_t *data, size_t len)
{
    hr_client_t *c = ud;
    if (opcode == HR_WS_OP_PING) {
        if (!c->close_sent)
            send_frame(c, HR_WS_OP_PONG, true, 0, data, len);
        return stop_feeding(c);
    }
    if (opcode == HR_WS_OP_PONG) {
        if (c->cb.on_pong && !c->destroyed)
            c->cb.on_pong(c, data, len);
        return stop_feeding(c);
    }
    /* Close (RFC 6455 §5.5.1): echo the status code unless ours went first, then close
     * the TCP connection (the server closes first; our lingering close reads its FIN). */
    c->close_received = true;
    c->close_code = code;
    c->close_reason_len = (uint8_t)(len > sizeof(c->close_reason) ? sizeof(c->close_reason) : len);
    memcpy(c->close_reason, data, c->close_reason_len);
    send_close(c, code, NULL, 0);
    c->state = HR_CLIENT_CLOSING;
    hr_sock_close(&c->sock);
    return 1;
}

static const hr_ws_reader_cb_t reader_cb = {on_message, on_control};

static void feed_ws(hr_client_t *c, uint8_t *data, size_t len)
{
    if (!c->rd_live)
        return;
    ssize_t n = hr_ws_reader_feed(&c->rd, data, len, &reader_cb, c);
    if (n >= 0)
        return;
    uint16_t code = c->rd.close_code;
    const char *why = code == HR_WS_CLOSE_INVALID_PAYLOAD ? "invalid payload"
                      : code == HR_WS_CLOSE_TOO_BIG       ? "message too big"
                      : n == HR_ENOMEM                    ? "out of memory"
                                                          : "protocol error";
    /* After an error the reader takes no more input (ws_conn.h). */
    hr_ws_reader_deinit(&c->rd);
    c->rd_live = false;
    report_error(c, n == HR_ENOMEM ? HR_ENOMEM : HR_EPROTO, "%s from server, closing with %u", why,
                 code);
    send_close(c, code, why, strlen(why));
    c->state = HR_CLIENT_CLOSING;
    hr_sock_close(&c->sock);
}

/* The sock's timer: connect + handshake timeout, then pings after silence, then the
 * wait for the server's close. */
static void on_timer(hr_sock_t *s)
{
    hr_client_t *c = client_of(s);
    uint64_t now = c->loop->now_ms;
    switch (c->state) {
    case HR_CLIENT_CONNECTING:
    case HR_CLIENT_HANDSHAKE:
        report_error(c, -ETIMEDOUT, "%s to %s:%s timed out after %u ms",
                     c->state == HR_CLIENT_CONNECTING ? "connect" : "handshake", c->host, c->port,
                     c->opt.connect_timeout_ms);
        c->state = HR_CLIENT_CLOSING;
        hr_sock_abort(&c->sock);
        return;
    case HR_CLIENT_CLOSING:
        hr_sock_abort(&c->sock); /* no close frame from the server in time: 1006 */
        return;
    case HR_CLIENT_OPEN:
        break;
    case HR_CLIENT_IDLE:
        return;
    }
    uint32_t iv = c->opt.ping_interval_ms;
    if (!iv)
        return;
    if (now - c->last_rx_ms >= iv && now - c->last_ping_ms >= iv) {
        send_frame(c, HR_WS_OP_PING, true, 0, NULL, 0);
        c->last_ping_ms = now;
    }
    uint64_t base = c->last_rx_ms > c->last_ping_ms ? c->last_rx_ms : c->last_ping_ms;
    uint64_t next = base + iv;
    hr_sock_timer(&c->sock, next > now ? next - now : 1);
}

/* ---------------------------------------------------------------- handshake */

static void fail_handshake(hr_client_t *c, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail_handshake(hr_client_t *c, int err, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    report_error(c, err, "%s", msg);
    c->state = HR_CLIENT_CLOSING;
    hr_sock_abort(&c->sock);
}

/* RFC 6455 §4.1: the request. The key is 16 random bytes, base64. */
static int send_request(hr_client_t *c)
{
    uint8_t nonce[16];
    if (RAND_bytes(nonce, sizeof(nonce)) != 1)
        for (size_t i = 0; i < sizeof(nonce); i++)
            nonce[i] = (uint8_t)next_rand(c);
    EVP_EncodeBlock((unsigned char *)c->key, nonce, sizeof(nonce));

    hr_buf_t out;
    hr_buf_init(&out);
    int rc = hr_buf_appendf(&out,
                            "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                            "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                            "Sec-WebSocket-Version: 13\r\n",
                            c->target, c->host_header, c->key);
    if (rc == 0 && c->origin)
        rc = hr_buf_appendf(&out, "Origin: %s\r\n", c->origin);
    if (rc == 0 && c->protocols && c->protocols[0]) {
        rc = hr_buf_append_str(&out, "Sec-WebSocket-Protocol: ");
        for (size_t i = 0; rc == 0 && c->protocols[i]; i++)
            rc = hr_buf_appendf(&out, "%s%s", i ? ", " : "", c->protocols[i]);
        if (rc == 0)
            rc = hr_buf_append_str(&out, "\r\n");
    }
    if (rc == 0 && c->dcfg.enabled) {
        char offer[256];
        if (hr_deflate_offer(&c->dcfg, offer, sizeof(offer)) > 0)
            rc = hr_buf_appendf(&out, "Sec-WebSocket-Extensions: %s\r\n", offer);
    }
    for (size_t i = 0; rc == 0 && c->headers && c->headers[i]; i++)
        rc = hr_buf_appendf(&out, "%s\r\n", c->headers[i]);
    if (rc == 0)
        rc = hr_buf_append_str(&out, "\r\n");
    if (rc == 0)
        rc = hr_sock_write_copy(&c->sock, out.data, out.len);
    hr_buf_deinit(&out);
    return rc;
}

static void on_connect(hr_sock_t *s, int err)
{
    hr_client_t *c = client_of(s);
    if (err) {
        if (c->ai_cur && c->ai_cur->ai_next) {
            c->next_addr = true; /* on_free tries the next address */
            return;
        }
        report_error(c, err, "connect to %s:%s failed: %s", c->host, c->port, hr_strerror(err));
        c->state = HR_CLIENT_CLOSING;
        return;
    }
    c->state = HR_CLIENT_HANDSHAKE;
    if (c->tls_ctx && hr_sock_start_tls(&c->sock, c->tls_ctx, c->host) != 0) {
        fail_handshake(c, HR_EPROTO, "TLS with %s:%s failed: %s", c->host, c->port,
                       hr_tls_last_error());
        return;
    }
    if (send_request(c) != 0)
        fail_handshake(c, HR_ENOMEM, "out of memory sending the handshake");
}

static bool value_is(const hr_http_header_t *h, const char *s)
{
    return h->value_len == strlen(s) && memcmp(h->value, s, h->value_len) == 0;
}

static bool name_is(const hr_http_header_t *h, const char *name)
{
    return h->name_len == strlen(name) && strncasecmp(h->name, name, h->name_len) == 0;
}

/* RFC 6455 §4.1 (the client's checks of the server's handshake) and RFC 7692 §5.1.
 * Returns 0, or fails the connection and returns -1. */
static int check_101(hr_client_t *c, const char *buf, const hr_http_response_t *res)
{
    if (res->status != 101) {
        fail_handshake(c, HR_EPROTO, "%.*s", (int)res->status_line_len, buf);
        return -1;
    }
    const hr_http_header_t *h = hr_http_find_response_header(res, "Upgrade");
    if (!h || !hr_http_list_has_token(h->value, h->value_len, "websocket")) {
        fail_handshake(c, HR_EPROTO, "handshake: 101 without Upgrade: websocket");
        return -1;
    }
    h = hr_http_find_response_header(res, "Connection");
    if (!h || !hr_http_list_has_token(h->value, h->value_len, "upgrade")) {
        fail_handshake(c, HR_EPROTO, "handshake: 101 without Connection: Upgrade");
        return -1;
    }
    char accept[29];
    hr_http_accept_key(c->key, strlen(c->key), accept);
    h = hr_http_find_response_header(res, "Sec-WebSocket-Accept");
    if (!h || !value_is(h, accept)) {
        fail_handshake(c, HR_EPROTO, "handshake: wrong Sec-WebSocket-Accept");
        return -1;
    }
    h = hr_http_find_response_header(res, "Sec-WebSocket-Protocol");
    if (h) {
        for (size_t i = 0; c->protocols && c->protocols[i] && !c->protocol; i++)
            if (value_is(h, c->protocols[i]) && !(c->protocol = hr_strdup(c->protocols[i]))) {
                fail_handshake(c, HR_ENOMEM, "out of memory");
                return -1;
            }
        if (!c->protocol) {
            fail_handshake(c, HR_EPROTO, "handshake: server chose subprotocol '%.*s' not offered",
                           (int)h->value_len, h->value);
            return -1;
        }
    }
    const hr_http_header_t *ext = NULL;
    for (size_t i = 0; i < res->num_headers; i++) {
        if (!name_is(&res->headers[i], "Sec-WebSocket-Extensions"))
            continue;
        if (ext || !c->dcfg.enabled) {
            fail_handshake(c, HR_EPROTO, "handshake: server sent extensions not offered");
            return -1;
        }
        ext = &res->headers[i];
    }
    if (ext) {
        if (hr_deflate_accept_response(ext->value, ext->value_len, &c->dcfg, &c->dfl) != 0) {
            fail_handshake(c, HR_EPROTO, "handshake: bad extension response '%.*s'",
                           (int)ext->value_len, ext->value);
            return -1;
        }
        c->deflate = true;
    }
    return 0;
}

/* The 101 is valid: set up the reader and tell the user. */
static int open_ws(hr_client_t *c)
{
    hr_ws_reader_init(&c->rd, HR_WS_ROLE_CLIENT, c->opt.max_message);
    c->rd_live = true;
    if (c->deflate) {
        /* Without context takeover the server's messages inflate from an empty window,
         * so a stream shared per loop does; otherwise this connection keeps its own. */
        hr_deflate_stream_t *inf = &c->shared->inflate;
        if (!c->dfl.server_no_context_takeover)
            inf = c->own_inflate = hr_calloc(1, sizeof(*c->own_inflate));
        if (!inf || hr_ws_reader_set_deflate(&c->rd, inf, &c->shared->scratch,
                                             c->dfl.server_max_window_bits,
                                             c->dfl.server_no_context_takeover) != 0) {
            fail_handshake(c, HR_ENOMEM, "out of memory");
            return -1;
        }
    }
    c->state = HR_CLIENT_OPEN;
    c->opened = true;
    c->opened_ms = c->last_rx_ms = c->last_ping_ms = c->loop->now_ms;
    hr_loop_timer_stop(c->loop, &c->sock.timer);
    if (c->opt.ping_interval_ms)
        hr_sock_timer(&c->sock, c->opt.ping_interval_ms);
    if (c->cb.on_open && !c->destroyed)
        c->cb.on_open(c);
    return 0;
}

static void feed_head(hr_client_t *c, uint8_t *data, size_t len)
{
    uint8_t *buf = data;
    size_t blen = len;
    hr_buf_t head = c->head; /* taken over: freed below, after the reader is done with it */
    hr_buf_init(&c->head);
    if (head.len) {
        if (hr_buf_append(&head, data, len)) {
            hr_buf_deinit(&head);
            fail_handshake(c, HR_ENOMEM, "out of memory");
            return;
        }
        buf = head.data;
        blen = head.len;
    }
    hr_http_header_t headers[MAX_HEADERS];
    hr_http_response_t res = {.headers = headers, .num_headers = MAX_HEADERS};
    ssize_t n = hr_http_parse_response((const char *)buf, blen, MAX_HEAD, &res);
    if (n == HR_EAGAIN) {
        if (buf == data && hr_buf_append(&head, data, len)) {
            hr_buf_deinit(&head);
            fail_handshake(c, HR_ENOMEM, "out of memory");
            return;
        }
        c->head = head;
        return;
    }
    if (n < 0)
        fail_handshake(c, HR_EPROTO, "%s",
                       n == HR_EMSGSIZE ? "handshake: response head too large"
                                        : "handshake: malformed HTTP response");
    else if (check_101(c, (const char *)buf, &res) == 0 && open_ws(c) == 0 &&
             c->state == HR_CLIENT_OPEN && (size_t)n < blen)
        feed_ws(c, buf + n, blen - (size_t)n); /* frames right behind the 101 */
    hr_buf_deinit(&head);
}

/* ---------------------------------------------------------------- sock callbacks */

static void on_data(hr_sock_t *s, uint8_t *data, size_t len)
{
    hr_client_t *c = client_of(s);
    c->last_rx_ms = c->loop->now_ms;
    if (c->state == HR_CLIENT_HANDSHAKE)
        feed_head(c, data, len);
    else if (c->state == HR_CLIENT_OPEN || c->state == HR_CLIENT_CLOSING)
        feed_ws(c, data, len);
}

static void on_eof(hr_sock_t *s, int err)
{
    hr_client_t *c = client_of(s);
    if (c->state == HR_CLIENT_HANDSHAKE && s->tls && !hr_sock_tls_ready(s) && err) {
        report_error(c, err, "TLS handshake with %s:%s failed: %s", c->host, c->port,
                     err == HR_EPROTO ? hr_tls_last_error() : hr_strerror(err));
    } else if (c->state == HR_CLIENT_HANDSHAKE) {
        if (err)
            report_error(c, err, "handshake failed: %s", hr_strerror(err));
        else
            report_error(c, HR_EPROTO, "connection closed during the handshake");
    } else if (c->state == HR_CLIENT_OPEN && err) {
        report_error(c, err, "socket error: %s", hr_strerror(err));
    }
    c->state = HR_CLIENT_CLOSING;
}

static const hr_sock_ops_t client_ops = {
    .on_data = on_data,
    .on_eof = on_eof,
    .on_timer = on_timer,
    .on_free = on_free,
    .on_connect = on_connect,
};

/* ---------------------------------------------------------------- public API */

hr_client_t *hr_client_connect(hr_loop_t *loop, const hr_client_options_t *opts,
                               const hr_client_callbacks_t *cb, void *user, char *err,
                               size_t errlen)
{
    if (!loop || !opts) {
        set_err(err, errlen, "no loop or options");
        return NULL;
    }
    hr_client_t *c = hr_calloc(1, sizeof(*c));
    if (!c) {
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    c->loop = loop;
    c->opt = *opts;
    c->opt.url = NULL;
    c->opt.headers = c->opt.protocols = NULL;
    c->opt.origin = c->opt.source_addr = NULL;
    c->opt.tls_cafile = NULL; /* used during the call only */
    if (cb)
        c->cb = *cb;
    c->user = user;
    hr_timer_init(&c->timer, on_client_timer);
    hr_buf_init(&c->head);
    if (!c->opt.max_message)
        c->opt.max_message = 16u << 20;
    if (!c->opt.max_backlog)
        c->opt.max_backlog = 16u << 20;
    if (!c->opt.connect_timeout_ms)
        c->opt.connect_timeout_ms = 10000;
    if (!c->opt.reconnect_min_ms)
        c->opt.reconnect_min_ms = 500;
    if (c->opt.reconnect_max_ms < c->opt.reconnect_min_ms)
        c->opt.reconnect_max_ms = c->opt.reconnect_min_ms > 30000 ? c->opt.reconnect_min_ms : 30000;
    c->backoff_ms = c->opt.reconnect_min_ms;
    hr_deflate_config_default(&c->dcfg);
    c->dcfg.enabled = opts->compress;

    bool tls = false;
    const char *msg = parse_url(c, opts->url, &tls);
    if (msg)
        goto fail;
    bool bad = false, nomem = false;
    c->headers = dup_list(opts->headers, &bad, &nomem);
    c->protocols = dup_list(opts->protocols, &bad, &nomem);
    if (opts->origin && !(c->origin = hr_strdup(opts->origin)))
        nomem = true;
    if (opts->source_addr && !(c->source_addr = hr_strdup(opts->source_addr)))
        nomem = true;
    if (has_crlf(opts->origin))
        bad = true;
    msg = nomem ? "out of memory" : bad ? "header, origin or protocol contains CR or LF" : NULL;
    if (msg)
        goto fail;
    if (ensure_sock_ctx(loop) != 0 || !(c->shared = client_loop_get(loop))) {
        msg = "out of memory (or no free loop hook)";
        goto fail;
    }
    if (tls && !(c->tls_ctx = client_tls_ctx(c->shared, opts->tls_insecure, opts->tls_cafile, err,
                                             errlen))) {
        client_free(c);
        return NULL;
    }
    if (RAND_bytes((unsigned char *)&c->prng, sizeof(c->prng)) != 1)
        c->prng = hr_clock_ms() ^ (uint64_t)(uintptr_t)c;
    if (!c->prng)
        c->prng = 0x9E3779B97F4A7C15ULL;
    hr_loop_update_time(loop);
    start_attempt(c);
    return c;

fail:
    set_err(err, errlen, msg);
    client_free(c);
    return NULL;
}

void hr_client_close(hr_client_t *c, uint16_t code, const char *reason)
{
    c->user_closed = true;
    if (!c->pending_err)
        hr_loop_timer_stop(c->loop, &c->timer); /* a scheduled reconnect */
    switch (c->state) {
    case HR_CLIENT_OPEN: {
        if (code != HR_WS_CLOSE_NORMAL && (code < 3000 || code > 4999))
            code = HR_WS_CLOSE_NORMAL;
        send_close(c, code, reason ? reason : "", reason ? strlen(reason) : 0);
        c->state = HR_CLIENT_CLOSING;
        hr_sock_timer(&c->sock, CLOSE_WAIT_MS);
        break;
    }
    case HR_CLIENT_CONNECTING:
    case HR_CLIENT_HANDSHAKE:
        c->state = HR_CLIENT_CLOSING;
        hr_sock_abort(&c->sock);
        break;
    case HR_CLIENT_CLOSING:
    case HR_CLIENT_IDLE:
        break;
    }
}

void hr_client_destroy(hr_client_t *c)
{
    if (!c)
        return;
    c->destroyed = c->user_closed = true;
    hr_loop_timer_stop(c->loop, &c->timer);
    if (c->sock_live) {
        if (!(c->sock.flags & HR_SOCK_CLOSED))
            hr_sock_abort(&c->sock); /* on_free frees the client */
        return;
    }
    if (!c->dispatching)
        client_free(c);
}

void hr_client_set_data(hr_client_t *c, void *data)
{
    c->user = data;
}

void *hr_client_data(const hr_client_t *c)
{
    return c->user;
}

bool hr_client_is_open(const hr_client_t *c)
{
    return c->opened;
}

const char *hr_client_protocol(const hr_client_t *c)
{
    return c->protocol;
}

bool hr_client_compressed(const hr_client_t *c)
{
    return c->deflate;
}

size_t hr_client_queued(const hr_client_t *c)
{
    return c->sock_live ? hr_sock_queued(&c->sock) : 0;
}
