/* The SockJS server protocol (sockjs-protocol 0.3.3) on the STOMP endpoint, so that
 * sockjs-client + @stomp/stompjs front ends written for Spring's .withSockJS() work
 * unchanged: GET /info, and the websocket, xhr-streaming, xhr-polling (xhr + xhr_send)
 * and eventsource transports under <prefix>/<server>/<session>/<transport>.
 *
 * The seam with STOMP: a SockJS session is a WebSocket client of the server itself. It
 * opens a socketpair, hands one end to the shard as an ordinary connection
 * (hr_session_accept_local) and speaks a WebSocket handshake to /stomp over the other,
 * forwarding the browser's Origin, Host, Authorization, Cookie and query (token=), and
 * the client's address (X-Herald-Client, believed from a socketpair peer only). So the
 * STOMP session (stomp.c), its permissions, limits, receipts, acks, heart-beats and
 * slow-consumer policy are exactly those of /stomp, and plain /stomp is untouched. What
 * it costs: two descriptors per session, one local write and read per frame each way,
 * and a JSON quoting of every frame per session (a fan-out to N SockJS subscribers
 * quotes N times; /stomp subscribers share one frame as before), on a fallback path.
 * Measured: about 2.2 KB of RSS and 3 descriptors per idle xhr-streaming session.
 *
 * No sticky sessions: every request of session S runs on S's home shard
 * (hr_server__home of the id), which owns the session, its socketpair end and its
 * timers. The HTTP connection stays on the shard that accepted it; the home posts the
 * frames for it back there (hr_server__run_on both ways, direct when they are the same).
 * A streaming receiver (rcv_t) lives on the request's shard and is referenced by its
 * connection and by the home until each lets go.
 *
 * Not supported: the iframe and htmlfile transports and jsonp (every browser SockJS
 * still serves has CORS XHR), and cookie_needed (no load balancer stickiness needed).
 * The same approach would let /pubsub run over SockJS; only /stomp is wired. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/hash.h"
#include "base/log.h"
#include "herald/error.h"
#include "http/forwarded.h"
#include "http/http_parse.h"
#include "http/http_upgrade.h"
#include "proto/sockjs_frame.h"
#include "server/sockjs.h"
#include "ws/ws_conn.h"
#include "ws/ws_frame.h"

#define SID_MAX 64
/* The SockJS heartbeat and session timeout (25 s and 5 s, what clients expect). Tests
 * shorten them with HERALD_SOCKJS_HEARTBEAT_MS / HERALD_SOCKJS_DISCONNECT_MS, read once
 * at registration, before the workers start. */
static uint32_t heartbeat_ms = 25000, disconnect_ms = 5000;
#define STREAM_LIMIT (128 * 1024) /* then the client opens the next streaming request */
#define HS_MAX 8192               /* the local handshake answer */
#define FWD_MAX 2048              /* a forwarded request header value */
#define NBUCKETS 256

#define NO_CACHE "Cache-Control: no-store, no-cache, no-transform, must-revalidate, max-age=0\r\n"
#define JS_TYPE "application/javascript; charset=UTF-8"
#define TEXT_TYPE "text/plain; charset=UTF-8"

enum { T_XHR, T_XHR_STREAMING, T_EVENTSOURCE, T_WEBSOCKET };
enum { S_CONNECTING, S_OPEN, S_CLOSED };
enum { R_NONE, R_POLL, R_STREAM, R_WS };
enum { OP_RECV, OP_SEND, OP_GONE };
enum { OUT_REPLY, OUT_WRITE, OUT_END };

typedef struct hr_sockjs_shard {
    hr_list_t buckets[NBUCKETS]; /* HTTP sessions by id */
    hr_list_t all;               /* every session of the shard, WebSocket ones included */
} sjs_shard_t;

/* A streamed answer (xhr_streaming, eventsource), on the request's shard. */
typedef struct rcv {
    hr_shard_t *home;
    hr_http_token_t tok;
    int refs; /* the connection's (until on_close) and the home's (until OUT_END) */
    bool gone;
    struct op *gone_op; /* made up front: the home always hears that the client left */
} rcv_t;

typedef struct sjs {
    hr_sock_t sock; /* our end of the socketpair */
    hr_list_t link; /* bucket, HTTP sessions only */
    hr_list_t all_link;
    hr_shard_t *sh;
    hr_timer_t timer; /* heartbeat with a receiver, else the disconnect delay */
    hr_ws_reader_t rd;
    hr_buf_t hs;      /* the handshake answer while it arrives */
    hr_buf_t pending; /* quoted messages, comma separated, for the next a[...] */
    uint8_t state, rkind, rtransport;
    bool open_sent, sock_freed, released, paused;
    uint16_t close_code;
    char close_reason[124];
    /* The one receiver: a long poll (rtok on rshard), a stream (rcv) or a WebSocket. */
    hr_shard_t *rshard;
    hr_http_token_t rtok;
    char *rcors; /* the poll's answer headers */
    rcv_t *rcv;
    hr_conn_t *ws;
    size_t rbytes;
    char id[SID_MAX + 1];
} sjs_t;

/* A request's work for the home shard. */
typedef struct op {
    uint8_t kind, transport;
    hr_shard_t *from;
    hr_http_token_t tok;
    rcv_t *rcv;
    char *cors;    /* answer headers */
    hr_buf_t data; /* OP_RECV: the local handshake request; OP_SEND: decoded messages */
    char id[SID_MAX + 1];
} op_t;

/* The home's answer for a request's shard. */
typedef struct out {
    uint8_t kind;
    int status;
    hr_http_token_t tok;
    rcv_t *rcv;
    const char *ctype;
    char *extra;
    size_t len;
    uint8_t data[];
} out_t;

static const hr_sock_ops_t sjs_ops;
static void deliver(sjs_t *s);

/* ---------------------------------------------------------------- request's shard */

static void op_free(struct op *o);

static void rcv_unref(rcv_t *r)
{
    if (--r->refs > 0)
        return;
    if (r->gone_op)
        op_free(r->gone_op);
    hr_free(r);
}

static bool stream_live(hr_http_token_t t)
{
    return t.c && t.c->seq == t.seq && t.c->phase == HR_PHASE_HTTP_STREAM;
}

static void on_out(void *ctx, void *arg)
{
    (void)ctx;
    out_t *o = arg;
    rcv_t *r = o->rcv;
    if (o->kind == OUT_REPLY) {
        hr_http_reply_token(o->tok, o->status, o->ctype, o->data, o->len, o->extra);
    } else if (o->kind == OUT_WRITE) {
        if (!r->gone)
            hr_http_stream_write(r->tok, o->data, o->len);
    } else {
        if (!r->gone && stream_live(r->tok)) {
            hr_http_stream_end(r->tok);
            r->gone = true;
            rcv_unref(r); /* the connection's: on_close does not run after the end */
        }
        rcv_unref(r);
    }
    hr_free(o->extra);
    hr_free(o);
}

static void op_free(op_t *o)
{
    hr_free(o->cors);
    hr_buf_deinit(&o->data);
    hr_free(o);
}

static void on_op(void *ctx, void *arg);

static void rcv_on_close(void *data)
{
    rcv_t *r = data;
    r->gone = true;
    op_t *o = r->gone_op;
    r->gone_op = NULL;
    hr_server__run_on(hr_server__current_shard(), r->home, on_op, o);
    rcv_unref(r);
}

/* ---------------------------------------------------------------- home: answers */

static void post_out(hr_shard_t *home, hr_shard_t *to, out_t *o)
{
    hr_server__run_on(home, to, on_out, o);
}

static out_t *out_new(uint8_t kind, const void *a, size_t alen, const void *b, size_t blen)
{
    out_t *o = hr_malloc(sizeof(*o) + alen + blen);
    if (!o)
        return NULL;
    memset(o, 0, sizeof(*o));
    o->kind = kind;
    o->len = alen + blen;
    if (alen)
        memcpy(o->data, a, alen);
    if (blen)
        memcpy(o->data + alen, b, blen);
    return o;
}

/* An answer to a deferred request; takes extra (answer headers). */
static void reply(hr_shard_t *home, hr_shard_t *to, hr_http_token_t tok, int status,
                  const char *ctype, const void *body, size_t len, const void *tail, size_t tlen,
                  char *extra)
{
    out_t *o = out_new(OUT_REPLY, body, len, tail, tlen);
    if (!o) {
        hr_free(extra);
        return; /* the request times out */
    }
    o->status = status;
    o->tok = tok;
    o->ctype = ctype;
    o->extra = extra;
    post_out(home, to, o);
}

static void stream_write(hr_shard_t *home, hr_shard_t *to, rcv_t *r, uint8_t transport,
                         const void *frame, size_t n)
{
    out_t *o;
    if (transport == T_EVENTSOURCE) {
        hr_buf_t ev;
        hr_buf_init(&ev);
        o = hr_sockjs_encode_event(&ev, frame, n) == 0
                ? out_new(OUT_WRITE, ev.data, ev.len, NULL, 0)
                : NULL;
        hr_buf_deinit(&ev);
    } else {
        o = out_new(OUT_WRITE, frame, n, "\n", 1);
    }
    if (!o)
        return;
    o->rcv = r;
    post_out(home, to, o);
}

static void stream_end(hr_shard_t *home, hr_shard_t *to, rcv_t *r)
{
    out_t *o = out_new(OUT_END, NULL, 0, NULL, 0);
    if (!o)
        return; /* the stream stays open until its client leaves */
    o->rcv = r;
    post_out(home, to, o);
}

/* One frame to a receiver that is not attached (refused or late), which then ends. */
static void answer_once(hr_shard_t *home, op_t *o, const char *frame)
{
    size_t n = strlen(frame);
    if (o->rcv) {
        stream_write(home, o->from, o->rcv, o->transport, frame, n);
        stream_end(home, o->from, o->rcv);
        o->rcv = NULL;
    } else {
        reply(home, o->from, o->tok, 200, JS_TYPE, frame, n, "\n", 1, o->cors);
        o->cors = NULL;
    }
}

/* ---------------------------------------------------------------- home: sessions */

static sjs_shard_t *shard_state(hr_shard_t *sh)
{
    if (!sh->sockjs && (sh->sockjs = hr_calloc(1, sizeof(*sh->sockjs)))) {
        for (int i = 0; i < NBUCKETS; i++)
            hr_list_init(&sh->sockjs->buckets[i]);
        hr_list_init(&sh->sockjs->all);
    }
    return sh->sockjs;
}

static hr_list_t *bucket(sjs_shard_t *t, const char *id)
{
    return &t->buckets[hr_hash_name(id, strlen(id)) % NBUCKETS];
}

static sjs_t *find(sjs_shard_t *t, const char *id)
{
    hr_list_t *b = bucket(t, id);
    for (hr_list_t *n = b->next; n != b; n = n->next) {
        sjs_t *s = hr_list_entry(n, sjs_t, link);
        if (strcmp(s->id, id) == 0)
            return s;
    }
    return NULL;
}

static void arm(sjs_t *s, uint64_t ms)
{
    if (!s->released)
        hr_loop_timer_start(&s->sh->loop, &s->timer, ms);
}

static void sess_free(sjs_t *s)
{
    if (s->state != S_CONNECTING)
        hr_ws_reader_deinit(&s->rd);
    hr_buf_deinit(&s->hs);
    hr_buf_deinit(&s->pending);
    hr_free(s->rcors);
    hr_free(s);
}

/* Lets go of the receiver (the stream ends; a poll was answered already). */
static void rdrop(sjs_t *s)
{
    if (s->rkind == R_STREAM)
        stream_end(s->sh, s->rshard, s->rcv);
    else if (s->rkind == R_POLL)
        reply(s->sh, s->rshard, s->rtok, 200, JS_TYPE, "c[3000,\"Go away!\"]\n", 19, NULL, 0,
              s->rcors);
    else if (s->rkind == R_WS && s->ws)
        return; /* a WebSocket session ends with its connection */
    s->rcors = NULL;
    s->rcv = NULL;
    s->rkind = R_NONE;
    arm(s, disconnect_ms);
}

/* One SockJS frame to the current receiver. */
static void rsend(sjs_t *s, const char *frame, size_t n)
{
    switch (s->rkind) {
    case R_WS:
        if (s->ws)
            hr_conn_send(s->ws, frame, n, false);
        break;
    case R_POLL:
        reply(s->sh, s->rshard, s->rtok, 200, JS_TYPE, frame, n, "\n", 1, s->rcors);
        s->rcors = NULL;
        s->rkind = R_NONE;
        arm(s, disconnect_ms);
        return;
    case R_STREAM:
        stream_write(s->sh, s->rshard, s->rcv, s->rtransport, frame, n);
        s->rbytes += n;
        if (s->rbytes >= STREAM_LIMIT) {
            rdrop(s);
            return;
        }
        break;
    default:
        return;
    }
    arm(s, heartbeat_ms);
}

/* The session is over: out of the table, its STOMP connection closed (the STOMP session
 * ends), memory freed once our end of the socketpair is. */
static void sess_release(sjs_t *s)
{
    if (s->released)
        return;
    if (s->rkind == R_STREAM || s->rkind == R_POLL)
        rdrop(s);
    s->released = true;
    hr_loop_timer_stop(&s->sh->loop, &s->timer);
    if (hr_list_linked(&s->link))
        hr_list_remove(&s->link);
    hr_list_remove(&s->all_link);
    if (s->ws) {
        hr_conn_set_data(s->ws, NULL);
        hr_conn_close(s->ws, 1000, "Go away!");
        s->ws = NULL;
    }
    if (s->sock_freed)
        sess_free(s);
    else
        hr_sock_abort(&s->sock); /* on_free frees */
}

/* The STOMP side closed (or never opened): remember why for the client. */
static void sess_close(sjs_t *s, uint16_t code, const char *reason)
{
    if (s->state == S_CLOSED)
        return;
    if (s->state == S_CONNECTING)
        hr_ws_reader_init(&s->rd, HR_WS_ROLE_CLIENT, 0); /* sess_free deinits it */
    s->state = S_CLOSED;
    s->close_code = code;
    snprintf(s->close_reason, sizeof(s->close_reason), "%s", reason);
    hr_sock_close(&s->sock);
    deliver(s);
    if (s->rkind == R_NONE)
        arm(s, disconnect_ms); /* the close frame waits that long for a receiver */
}

/* Sends what the receiver should get next: o, the pending messages, the close frame. */
static void deliver(sjs_t *s)
{
    if (s->rkind == R_NONE || (s->rkind == R_WS && !s->ws))
        return;
    if (!s->open_sent && s->state == S_OPEN) {
        s->open_sent = true;
        rsend(s, "o", 1);
        if (s->rkind == R_NONE)
            return;
    }
    if (s->pending.len && s->open_sent) {
        hr_buf_t f;
        hr_buf_init(&f);
        if (hr_buf_reserve(&f, s->pending.len + 3) == 0) {
            hr_buf_append(&f, "a[", 2);
            hr_buf_append(&f, s->pending.data, s->pending.len);
            hr_buf_append(&f, "]", 1);
            s->pending.len = 0;
            rsend(s, (const char *)f.data, f.len);
        }
        hr_buf_deinit(&f);
        if (s->pending.cap > 65536)
            hr_buf_deinit(&s->pending);
        if (s->paused && s->state == S_OPEN) {
            s->paused = false;
            hr_sock_pause_reading(&s->sock, false);
        }
        if (s->rkind == R_NONE)
            return;
    }
    if (s->state == S_CLOSED) {
        hr_buf_t f;
        hr_buf_init(&f);
        if (hr_sockjs_encode_close(&f, s->close_code, s->close_reason) == 0)
            rsend(s, (const char *)f.data, f.len);
        hr_buf_deinit(&f);
        if (s->rkind == R_WS) {
            hr_conn_close(s->ws, 1000, "Go away!");
            return;
        }
        if (s->rkind != R_NONE)
            rdrop(s);
    }
}

static void on_timer(hr_timer_t *t)
{
    sjs_t *s = hr_list_entry(t, sjs_t, timer);
    if (s->rkind != R_NONE) {
        rsend(s, "h", 1);
        return;
    }
    /* No receiver for the disconnect delay: the client has gone (SockJS session
     * timeout), or a closed session has been remembered long enough. */
    sess_release(s);
}

static sjs_t *sess_new(hr_shard_t *sh, const char *id, const hr_buf_t *handshake)
{
    sjs_shard_t *t = shard_state(sh);
    sjs_t *s = t ? hr_calloc(1, sizeof(*s)) : NULL;
    if (!s)
        return NULL;
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) {
        hr_log_warn("sockjs: socketpair: %s", strerror(errno));
        hr_free(s);
        return NULL;
    }
    if (hr_sock_start(&s->sock, &sh->sock, fds[0], &sjs_ops) != 0) {
        close(fds[0]);
        close(fds[1]);
        hr_free(s);
        return NULL;
    }
    s->sh = sh;
    hr_timer_init(&s->timer, on_timer);
    hr_list_init(&s->link);
    hr_list_push_back(&t->all, &s->all_link);
    if (id) {
        snprintf(s->id, sizeof(s->id), "%s", id);
        hr_list_push_back(bucket(t, id), &s->link);
    }
    if (hr_sock_write_copy(&s->sock, handshake->data, handshake->len) != 0) {
        close(fds[1]);
        sess_close(s, 1011, "out of memory");
        return s;
    }
    hr_session_accept_local(sh, fds[1]);
    return s;
}

/* Queues one client message for the STOMP connection: a masked text frame (key 0: the
 * payload needs no copy, and RFC 6455 §5.3 lets any key through). */
static int send_local(sjs_t *s, uint8_t opcode, const void *p, size_t n)
{
    static const uint8_t key[4] = {0};
    uint8_t hdr[HR_WS_FRAME_HEADER_MAX];
    size_t hl = hr_ws_frame_encode_header(hdr, true, 0, opcode, n, key);
    return hr_sock_write_parts(&s->sock, hdr, hl, p, n);
}

/* ---------------------------------------------------------------- home: the STOMP side */

static int on_local_message(void *ud, uint8_t opcode, uint8_t *data, size_t len)
{
    (void)opcode;
    sjs_t *s = ud;
    if ((s->pending.len && hr_buf_append(&s->pending, ",", 1) != 0) ||
        hr_sockjs_quote(&s->pending, data, len) != 0) {
        sess_close(s, 1011, "out of memory");
        return 1;
    }
    /* Nobody is receiving: stop reading, so the STOMP connection's own backlog limit
     * and slow-consumer policy apply, as on /stomp. */
    size_t cap = s->sh->srv->opt.max_backlog ? s->sh->srv->opt.max_backlog : (1u << 20);
    if (s->pending.len > cap && !s->paused) {
        s->paused = true;
        hr_sock_pause_reading(&s->sock, true);
    }
    return 0;
}

static int on_local_control(void *ud, uint8_t opcode, uint16_t code, uint8_t *data, size_t len)
{
    sjs_t *s = ud;
    if (opcode == HR_WS_OP_PING) {
        send_local(s, HR_WS_OP_PONG, data, len);
        return 0;
    }
    if (opcode != HR_WS_OP_CLOSE)
        return 0;
    uint8_t payload[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    send_local(s, HR_WS_OP_CLOSE, payload, code == 1005 ? 0 : 2);
    char reason[124];
    snprintf(reason, sizeof(reason), "%.*s", (int)(len < 123 ? len : 123), (const char *)data);
    sess_close(s, code == 1005 ? 3000 : code, len ? reason : "Go away!");
    return 1;
}

static const hr_ws_reader_cb_t local_cb = {on_local_message, on_local_control};

/* The local handshake answer: 101, or the refusal (origin, limits, authentication). */
static ssize_t read_handshake(sjs_t *s, const uint8_t *data, size_t len)
{
    size_t before = s->hs.len;
    if (hr_buf_append(&s->hs, data, len) != 0) {
        sess_close(s, 1011, "out of memory");
        return -1;
    }
    const uint8_t *end = memmem(s->hs.data, s->hs.len, "\r\n\r\n", 4);
    if (!end) {
        if (s->hs.len > HS_MAX)
            sess_close(s, 1011, "bad local handshake");
        return s->hs.len > HS_MAX ? -1 : 0;
    }
    size_t head = (size_t)(end - s->hs.data) + 4;
    if (hr_buf_append(&s->hs, "", 1) != 0) { /* a NUL for sscanf */
        sess_close(s, 1011, "out of memory");
        return -1;
    }
    s->hs.len--;
    int status = 0;
    char reason[96] = "";
    sscanf((const char *)s->hs.data, "HTTP/1.1 %d %95[^\r\n]", &status, reason);
    if (status != 101) {
        /* The body of a refusal is its reason ("origin not allowed\n"). */
        size_t bl = s->hs.len - head;
        if (bl > 0 && bl < sizeof(reason)) {
            memcpy(reason, s->hs.data + head, bl);
            reason[bl] = 0;
            reason[strcspn(reason, "\r\n")] = 0;
        }
        sess_close(s, status == 503 ? 1013 : status == 401 || status == 403 ? 1008 : 1011, reason);
        return -1;
    }
    hr_ws_reader_init(&s->rd, HR_WS_ROLE_CLIENT, 0);
    s->state = S_OPEN;
    hr_buf_deinit(&s->hs);
    return (ssize_t)(head - before); /* bytes of data that were the head */
}

static void on_local_data(hr_sock_t *sock, uint8_t *data, size_t len)
{
    sjs_t *s = (sjs_t *)sock;
    if (s->state == S_CONNECTING) {
        ssize_t used = read_handshake(s, data, len);
        if (used < 0 || s->state != S_OPEN) {
            deliver(s);
            return;
        }
        data += used;
        len -= (size_t)used;
    }
    if (s->state == S_OPEN && len) {
        ssize_t n = hr_ws_reader_feed(&s->rd, data, len, &local_cb, s);
        if (n < 0)
            sess_close(s, 1011, "internal error");
    }
    deliver(s);
}

static void on_local_eof(hr_sock_t *sock, int err)
{
    (void)err;
    sess_close((sjs_t *)sock, 1006, "Connection lost");
}

static void on_local_timer(hr_sock_t *sock)
{
    hr_sock_abort(sock);
}

static void on_local_free(hr_sock_t *sock)
{
    sjs_t *s = (sjs_t *)sock;
    s->sock_freed = true;
    if (s->released)
        sess_free(s);
}

static const hr_sock_ops_t sjs_ops = {.on_data = on_local_data,
                                      .on_eof = on_local_eof,
                                      .on_timer = on_local_timer,
                                      .on_free = on_local_free};

/* ---------------------------------------------------------------- home: requests */

static void attach(sjs_t *s, op_t *o)
{
    if (s->rkind != R_NONE) {
        answer_once(s->sh, o, "c[2010,\"Another connection still open\"]");
        return;
    }
    s->rkind = o->rcv ? R_STREAM : R_POLL;
    s->rtransport = o->transport;
    s->rshard = o->from;
    s->rtok = o->tok;
    s->rcv = o->rcv;
    s->rbytes = 0;
    o->rcv = NULL;
    if (s->rkind == R_POLL) { /* a stream's headers went out already */
        s->rcors = o->cors;
        o->cors = NULL;
    }
    arm(s, heartbeat_ms);
    deliver(s);
}

static void on_op(void *ctx, void *arg)
{
    hr_shard_t *sh = ctx;
    op_t *o = arg;
    sjs_shard_t *t = shard_state(sh);
    sjs_t *s = t ? find(t, o->id) : NULL;
    if (o->kind == OP_GONE) {
        if (s && s->rkind == R_STREAM && s->rcv == o->rcv)
            rdrop(s);
        o->rcv = NULL; /* only compared: the connection has let go of it already */
    } else if (o->kind == OP_SEND) {
        if (!s || s->state == S_CLOSED) {
            reply(sh, o->from, o->tok, 404, TEXT_TYPE, "Session not found.\n", 19, NULL, 0,
                  o->cors);
        } else if (hr_sock_queued(&s->sock) > (size_t)sh->srv->opt.max_message + (1u << 20)) {
            reply(sh, o->from, o->tok, 503, TEXT_TYPE, "Session busy.\n", 14, NULL, 0, o->cors);
        } else {
            size_t off = 0;
            hr_slice_t m;
            while (hr_sockjs_next(&o->data, &off, &m))
                send_local(s, HR_WS_OP_TEXT, m.ptr, m.len);
            reply(sh, o->from, o->tok, 204, TEXT_TYPE, NULL, 0, NULL, 0, o->cors);
        }
        o->cors = NULL;
    } else {
        if (!s)
            s = sess_new(sh, o->id, &o->data);
        if (s)
            attach(s, o);
        else
            answer_once(sh, o, "c[1011,\"Server error\"]");
    }
    if (o->rcv)
        stream_end(sh, o->from, o->rcv); /* not attached: the home lets go of it */
    op_free(o);
}

/* ---------------------------------------------------------------- request's shard: HTTP */

/* The request as the local handshake to the STOMP route (target "path[?query]"), with
 * the client's address for --max-connections-per-ip (X-Herald-Client, believed only from
 * a socketpair). c: the request's connection; req NULL: none to forward. The SockJS
 * WebSocket was counted at its own handshake: its session is not counted again. */
static int build_handshake(hr_conn_t *c, const hr_http_request_t *req, const char *path,
                           size_t plen, const char *query, size_t qlen, hr_buf_t *b)
{
    static const char *const fwd[] = {"Origin",     "Authorization",   "Cookie",
                                      "User-Agent", "X-Forwarded-For", "X-Forwarded-Proto",
                                      "X-Real-IP",  "Forwarded"};
    hr_ip_t client = hr_session_client_ip(c, req);
    char ip[HR_IP_STRLEN] = "-"; /* a WebSocket's request: counted already */
    if (!conn_shard(c)->upgrading)
        hr_ip_format(&client, ip);
    const hr_http_header_t *host = req ? hr_http_find_header(req, "Host") : NULL;
    int rc =
        hr_buf_appendf(b,
                       "GET %.*s%s%.*s HTTP/1.1\r\nHost: %.*s\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nX-Herald-Client: %s\r\n",
                       (int)plen, path, query ? "?" : "", (int)qlen, query ? query : "",
                       host && host->value_len < FWD_MAX ? (int)host->value_len : 9,
                       host && host->value_len < FWD_MAX ? host->value : "localhost", ip);
    for (size_t i = 0; rc == 0 && req && i < sizeof(fwd) / sizeof(fwd[0]); i++) {
        const hr_http_header_t *h = hr_http_find_header(req, fwd[i]);
        if (h && h->value_len < FWD_MAX)
            rc = hr_buf_appendf(b, "%s: %.*s\r\n", fwd[i], (int)h->value_len, h->value);
    }
    return rc ? rc : hr_buf_append(b, "\r\n", 2);
}

/* CORS headers for an answer (SockJS: credentials allowed, the origin echoed). */
static void cors_headers(const hr_http_request_t *req, char *out, size_t cap)
{
    const hr_http_header_t *o = hr_http_find_header(req, "Origin");
    if (o && o->value_len < 256 && !(o->value_len == 4 && memcmp(o->value, "null", 4) == 0))
        snprintf(out, cap,
                 "Access-Control-Allow-Origin: %.*s\r\nAccess-Control-Allow-Credentials: "
                 "true\r\nVary: Origin\r\n",
                 (int)o->value_len, o->value);
    else
        snprintf(out, cap, "Access-Control-Allow-Origin: *\r\n");
}

static void preflight(hr_http_ctx_t *x, const char *cors, const char *methods)
{
    char extra[1024];
    const hr_http_header_t *h = hr_http_find_header(x->req, "Access-Control-Request-Headers");
    snprintf(extra, sizeof(extra),
             "%sAccess-Control-Allow-Methods: %s\r\n%s%.*s%sAccess-Control-Max-Age: "
             "31536000\r\nCache-Control: public, max-age=31536000\r\n",
             cors, methods, h && h->value_len < 256 ? "Access-Control-Allow-Headers: " : "",
             h && h->value_len < 256 ? (int)h->value_len : 0, h ? h->value : "",
             h && h->value_len < 256 ? "\r\n" : "");
    hr_http_reply(x, 204, NULL, NULL, 0, extra);
}

static bool method_is(const hr_http_ctx_t *x, const char *m)
{
    return x->req->method_len == strlen(m) && memcmp(x->req->method, m, x->req->method_len) == 0;
}

static void info(hr_http_ctx_t *x, const char *cors)
{
    uint32_t entropy = 0;
    if (getrandom(&entropy, sizeof(entropy), GRND_NONBLOCK) != sizeof(entropy))
        entropy = (uint32_t)hr_clock_ms();
    char body[160], extra[600];
    int n = snprintf(body, sizeof(body),
                     "{\"entropy\":%u,\"origins\":[\"*:*\"],\"cookie_needed\":false,"
                     "\"websocket\":true}",
                     entropy);
    snprintf(extra, sizeof(extra), "%s" NO_CACHE, cors);
    hr_http_reply(x, 200, "application/json; charset=UTF-8", body, (size_t)n, extra);
}

/* A valid server or session id: not empty, no dots (sockjs-protocol "Session URLs"). */
static bool valid_id(const char *p, size_t n)
{
    return n > 0 && n <= SID_MAX && !memchr(p, '.', n);
}

static void on_http(hr_http_ctx_t *x, void *data)
{
    hr_shard_t *self = conn_shard(x->c);
    const hr_route_t *route = &self->srv->routes[(intptr_t)data];
    size_t pl = strlen(route->path); /* "/stomp/" */
    const char *p = x->path + pl;
    size_t n = x->path_len - pl;
    /* The origin policy of the WebSocket endpoints applies (docs/security.md): a page
     * from elsewhere gets no session, and no CORS headers to read answers with. */
    const hr_http_header_t *origin = hr_http_find_header(x->req, "Origin");
    const hr_http_header_t *host = hr_http_find_header(x->req, "Host");
    if (origin &&
        !hr_http_origin_allowed(origin->value, origin->value_len, host ? host->value : NULL,
                                host ? host->value_len : 0, (const char *const *)self->srv->origins,
                                self->srv->norigins)) {
        hr_http_reply(x, 403, TEXT_TYPE, "Origin not allowed.\n", 20, NULL);
        return;
    }
    char cors[400], extra[600];
    cors_headers(x->req, cors, sizeof(cors));
    snprintf(extra, sizeof(extra), "%s" NO_CACHE, cors);
    bool options = method_is(x, "OPTIONS");
    if (n == 0) {
        hr_http_reply(x, 200, TEXT_TYPE, "Welcome to SockJS!\n", 19, NULL);
        return;
    }
    if (n == 4 && memcmp(p, "info", 4) == 0) {
        if (options)
            preflight(x, cors, "OPTIONS, GET");
        else if (method_is(x, "GET") || method_is(x, "HEAD"))
            info(x, cors);
        else
            hr_http_reply(x, 405, TEXT_TYPE, "Method not allowed.\n", 20,
                          "Allow: OPTIONS, GET\r\n");
        return;
    }
    if (n == 9 && memcmp(p, "websocket", 9) == 0) {
        hr_http_reply(x, 400, TEXT_TYPE, "Can \"Upgrade\" only to \"WebSocket\".\n", 36, NULL);
        return;
    }
    /* <server>/<session>/<transport> */
    const char *s1 = memchr(p, '/', n);
    const char *s2 = s1 ? memchr(s1 + 1, '/', (size_t)(p + n - s1 - 1)) : NULL;
    const char *tr = s2 ? s2 + 1 : NULL;
    size_t trl = tr ? (size_t)(p + n - tr) : 0;
    const char *sid = s1 ? s1 + 1 : NULL;
    size_t sidl = s2 ? (size_t)(s2 - sid) : 0;
    if (!s2 || !valid_id(p, (size_t)(s1 - p)) || !valid_id(sid, sidl) || memchr(tr, '/', trl)) {
        hr_http_reply(x, 404, TEXT_TYPE, "Not found.\n", 11, NULL);
        return;
    }
    int transport = trl == 3 && !memcmp(tr, "xhr", 3)               ? T_XHR
                    : trl == 13 && !memcmp(tr, "xhr_streaming", 13) ? T_XHR_STREAMING
                    : trl == 11 && !memcmp(tr, "eventsource", 11)   ? T_EVENTSOURCE
                    : trl == 9 && !memcmp(tr, "websocket", 9)       ? T_WEBSOCKET
                    : trl == 8 && !memcmp(tr, "xhr_send", 8)        ? -1
                                                                    : -2;
    if (transport == -2) {
        hr_http_reply(x, 404, TEXT_TYPE, "Not found.\n", 11, NULL);
        return;
    }
    if (transport == T_WEBSOCKET) {
        hr_http_reply(x, 400, TEXT_TYPE, "Can \"Upgrade\" only to \"WebSocket\".\n", 36, NULL);
        return;
    }
    bool get = transport == T_EVENTSOURCE;
    if (options && !get) {
        preflight(x, cors, "OPTIONS, POST");
        return;
    }
    if (!method_is(x, get ? "GET" : "POST")) {
        hr_http_reply(x, 405, TEXT_TYPE, "Method not allowed.\n", 20,
                      get ? "Allow: GET\r\n" : "Allow: OPTIONS, POST\r\n");
        return;
    }
    op_t *o = hr_calloc(1, sizeof(*o));
    if (!o || !(o->cors = hr_strdup(extra))) {
        hr_free(o);
        hr_http_reply(x, 503, TEXT_TYPE, "Out of memory.\n", 15, NULL);
        return;
    }
    memcpy(o->id, sid, sidl);
    o->from = self;
    o->transport = (uint8_t)(transport < 0 ? 0 : transport);
    int rc = 0;
    if (transport < 0) {
        o->kind = OP_SEND;
        ssize_t m = hr_sockjs_decode(x->body, x->body_len, false, &o->data);
        if (m < 0) {
            op_free(o);
            if (m == HR_ENOMEM)
                hr_http_reply(x, 503, TEXT_TYPE, "Out of memory.\n", 15, extra);
            else if (m == HR_EAGAIN)
                hr_http_reply(x, 500, TEXT_TYPE, "Payload expected.", 17, extra);
            else
                hr_http_reply(x, 500, TEXT_TYPE, "Broken JSON encoding.", 21, extra);
            return;
        }
    } else {
        o->kind = OP_RECV;
        rc = build_handshake(x->c, x->req, route->path, pl - 1, x->query, x->query_len, &o->data);
    }
    if (rc == 0 && transport != T_XHR_STREAMING && transport != T_EVENTSOURCE) {
        o->tok = hr_http_defer(x);
        /* A poll is answered within the heartbeat period, past the handshake timeout. */
        if (transport == T_XHR)
            hr_sock_timer(&x->c->sock, heartbeat_ms + 10000);
    } else if (rc == 0) {
        rcv_t *r = hr_calloc(1, sizeof(*r));
        op_t *gone = r ? hr_calloc(1, sizeof(*gone)) : NULL;
        if (!gone) {
            hr_free(r);
            rc = HR_ENOMEM;
        } else {
            r->home = hr_server__home(self->srv, o->id, sidl);
            r->refs = 2;
            gone->kind = OP_GONE;
            gone->rcv = r;
            memcpy(gone->id, o->id, sizeof(gone->id));
            r->gone_op = gone;
            bool es = transport == T_EVENTSOURCE;
            r->tok = hr_http_stream_start(x, 200, es ? "text/event-stream; charset=UTF-8" : JS_TYPE,
                                          extra, rcv_on_close, r);
            if (!r->tok.c) {
                op_free(gone);
                hr_free(r); /* answered (503) */
                op_free(o);
                return;
            }
            /* Preludes: 2048 'h' then a newline defeats browser buffering of
             * xhr-streaming; an empty line opens the event stream. */
            if (es) {
                hr_http_stream_write(r->tok, "\r\n", 2);
            } else {
                char h[2049];
                memset(h, 'h', 2048);
                h[2048] = '\n';
                hr_http_stream_write(r->tok, h, sizeof(h));
            }
            o->rcv = r;
        }
    }
    if (rc != 0) {
        op_free(o);
        hr_http_reply(x, 503, TEXT_TYPE, "Out of memory.\n", 15, NULL);
        return;
    }
    hr_server__run_on(self, hr_server__home(self->srv, o->id, sidl), on_op, o);
}

/* ---------------------------------------------------------------- the SockJS WebSocket */

static void ws_on_open(hr_conn_t *c)
{
    const char *path = c->route->path; /* "/stomp/" */
    /* The upgrade request, as the HTTP transports forward theirs (?token= included). */
    const hr_http_request_t *req = conn_shard(c)->upgrading;
    const char *q = req ? memchr(req->target, '?', req->target_len) : NULL;
    size_t ql = q ? (size_t)(req->target + req->target_len - q - 1) : 0;
    hr_buf_t hs;
    hr_buf_init(&hs);
    sjs_t *s = NULL;
    if (build_handshake(c, req, path, strlen(path) - 1, q ? q + 1 : NULL, ql, &hs) == 0)
        s = sess_new(conn_shard(c), NULL, &hs);
    hr_buf_deinit(&hs);
    if (!s) {
        hr_conn_close(c, 1011, "out of memory");
        return;
    }
    s->rkind = R_WS;
    s->rtransport = T_WEBSOCKET;
    s->ws = c;
    hr_conn_set_data(c, s);
    arm(s, heartbeat_ms);
    deliver(s);
}

static void ws_on_message(hr_conn_t *c, const uint8_t *data, size_t len, bool binary)
{
    (void)binary;
    sjs_t *s = hr_conn_data(c);
    if (!s)
        return;
    hr_buf_t msgs;
    hr_buf_init(&msgs);
    ssize_t n = hr_sockjs_decode(data, len, true, &msgs);
    if (n == HR_EPROTO) {
        hr_conn_close(c, 1002, "Broken JSON encoding.");
    } else if (n > 0 && s->state != S_CLOSED) {
        size_t off = 0;
        hr_slice_t m;
        while (hr_sockjs_next(&msgs, &off, &m))
            send_local(s, HR_WS_OP_TEXT, m.ptr, m.len);
    }
    hr_buf_deinit(&msgs);
}

static void ws_on_close(hr_conn_t *c, uint16_t code, const char *reason, size_t reason_len)
{
    (void)code, (void)reason, (void)reason_len;
    sjs_t *s = hr_conn_data(c);
    if (!s)
        return;
    hr_conn_set_data(c, NULL);
    s->ws = NULL;
    s->rkind = R_NONE;
    sess_release(s);
}

const hr_route_callbacks_t hr_sockjs_route_cb = {
    .on_open = ws_on_open, .on_message = ws_on_message, .on_close = ws_on_close};

/* ---------------------------------------------------------------- registration */

static void env_ms(const char *name, uint32_t *ms)
{
    const char *v = getenv(name);
    char *end;
    unsigned long n = v ? strtoul(v, &end, 10) : 0;
    if (v && *v && !*end && n > 0 && n <= 600000)
        *ms = (uint32_t)n;
}

int hr_sockjs_add_routes(hr_server_t *s, const char *prefix)
{
    env_ms("HERALD_SOCKJS_HEARTBEAT_MS", &heartbeat_ms);
    env_ms("HERALD_SOCKJS_DISCONNECT_MS", &disconnect_ms);
    size_t n = strlen(prefix);
    while (n > 1 && prefix[n - 1] == '/')
        n--;
    char path[256];
    if (n + 12 > sizeof(path))
        return HR_EINVAL;
    snprintf(path, sizeof(path), "%.*s/websocket", (int)n, prefix);
    int rc = hr_stomp_add_route(s, path, NULL, NULL);
    if (rc < 0)
        return rc;
    path[n + 1] = 0; /* "/stomp/" */
    int id = hr_server_add_route(s, path, &hr_sockjs_route_cb, NULL, NULL);
    if (id < 0)
        return id;
    return hr_server__add_http(s, path, true, on_http, (void *)(intptr_t)id);
}

void hr_sockjs_shard_deinit(hr_shard_t *sh)
{
    sjs_shard_t *t = sh->sockjs;
    if (!t)
        return;
    /* The workers have stopped: nothing is posted any more, the home's references to
     * streamed answers are let go here. */
    while (!hr_list_empty(&t->all)) {
        sjs_t *s = hr_list_entry(t->all.next, sjs_t, all_link);
        if (s->rkind == R_STREAM)
            rcv_unref(s->rcv);
        hr_free(s->rcors);
        s->rcors = NULL;
        s->rkind = R_NONE;
        s->ws = NULL;
        s->released = true;
        hr_loop_timer_stop(&sh->loop, &s->timer);
        if (hr_list_linked(&s->link))
            hr_list_remove(&s->link);
        hr_list_remove(&s->all_link);
        if (s->sock_freed)
            sess_free(s);
        else
            hr_sock_abort(&s->sock);
    }
    hr_sock_ctx_flush(&sh->sock); /* on_free of the aborted ones */
    hr_free(t);
    sh->sockjs = NULL;
}
