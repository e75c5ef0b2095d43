/* A WebSocket connection from accept to free: the HTTP phase (request head, RFC 6455
 * §4.2 checks, origin policy, subprotocol and permessage-deflate negotiation, the 101),
 * then the open phase (ws reader -> route callbacks, ping/pong, idle and ping timer),
 * then the close handshake (RFC 6455 §7) and the deferred free.
 *
 * What it does not do: anything protocol-specific beyond WebSocket (routes do that)
 * and plain HTTP endpoints other than error answers (a later module). */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/log.h"
#include "cluster/cluster_limits.h"
#include "herald/error.h"
#include "http/http_parse.h"
#include "http/http_upgrade.h"
#include "net/tls.h"
#include "net/http_client.h"
#include "server/channels.h"
#include "server/server.h"
#include "server/sockjs.h"
#include "server/stomp.h"
#include "ws/ws_frame.h"

#define MAX_HEADERS 64
/* Messages shorter than this are sent uncompressed: deflate would not pay off. */
#define DEFLATE_MIN_BYTES 32

static const hr_sock_ops_t conn_ops;

static hr_conn_t *conn_of(hr_sock_t *s)
{
    return (hr_conn_t *)s;
}

static uint64_t now_ms(const hr_conn_t *c)
{
    return conn_shard(c)->loop.now_ms;
}

/* Counts a request refused with status (408: not complete in time) under its reason for
 * herald_handshakes_rejected_total, and under the limit that refused it, if any. */
static void count_refusal(hr_shard_t *sh, int status)
{
    int r = status == 400   ? HR_REJECT_BAD_REQUEST
            : status == 401 ? HR_REJECT_UNAUTHORIZED
            : status == 403 ? HR_REJECT_ORIGIN
            : status == 404 ? HR_REJECT_NOT_FOUND
            : status == 405 ? HR_REJECT_METHOD
            : status == 408 ? HR_REJECT_TIMEOUT
            : status == 413 ? HR_REJECT_TOO_LARGE
            : status == 426 ? HR_REJECT_UPGRADE_REQUIRED
            : status == 431 ? HR_REJECT_TOO_LARGE
            : status == 503 ? HR_REJECT_UNAVAILABLE
            : status == 505 ? HR_REJECT_VERSION
                            : HR_REJECT_OTHER;
    sh->stats.handshakes_failed++;
    sh->stats.rejected[r]++;
    if (status == 431)
        sh->stats.limit_rejections[HR_LIMIT_MAX_HEADER]++;
    else if (status == 413)
        sh->stats.limit_rejections[HR_LIMIT_MAX_BODY]++;
}

/* ---------------------------------------------------------------- accept and free */

/* tls: whether the server's TLS applies (not to a local socketpair, hr_session_accept_local). */
static void accept_fd(hr_shard_t *sh, int fd, bool tls)
{
    hr_conn_t *c = hr_pool_alloc(&sh->conn_pool);
    if (!c) {
        close(fd);
        return;
    }
    c->seq = ++sh->conn_seq;
    c->protocol = -1;
    hr_list_init(&c->route_link);
    hr_list_init(&c->subs);
    hr_buf_init(&c->u.head);
    if (hr_sock_start(&c->sock, &sh->sock, fd, &conn_ops) != 0) {
        close(fd);
        hr_pool_free(&sh->conn_pool, c);
        return;
    }
    hr_list_push_back(&sh->conns, &c->shard_link);
    sh->stats.accepted++;
    /* --max-connections: the excess is accepted (to be told why), answered 503 at its
     * first request, and holds no slot meanwhile. */
    hr_server_t *srv = sh->srv;
    int total = atomic_fetch_add_explicit(&srv->nconns, 1, memory_order_relaxed) + 1;
    if (srv->sec.max_connections > 0 && total > srv->sec.max_connections) {
        atomic_fetch_sub_explicit(&srv->nconns, 1, memory_order_relaxed);
        c->over_limit = 1;
    }
    if (tls && srv->tls_ctx && hr_sock_start_tls(&c->sock, srv->tls_ctx, NULL) != 0) {
        c->phase = HR_PHASE_CLOSING;
        hr_sock_abort(&c->sock); /* out of memory: on_free follows (and uncounts) */
        return;
    }
    hr_log_fields(HR_LOG_DEBUG, HR_LOG_KV(hr_log_uint("conn", hr_conn_id(c))),
                  "accepted on thread %d", sh->index);
    c->last_rx_ms = (uint32_t)now_ms(c);
    hr_sock_timer(&c->sock, sh->srv->opt.handshake_timeout_ms);
}

void hr_session_accept(hr_shard_t *sh, int fd)
{
    accept_fd(sh, fd, true);
}

void hr_session_accept_local(hr_shard_t *sh, int fd)
{
    accept_fd(sh, fd, false);
}

/* Leaves the route and every topic: from here on no broadcast reaches c. */
static void detach(hr_conn_t *c)
{
    if (hr_list_linked(&c->route_link))
        hr_list_remove(&c->route_link);
    hr_shard_t *sh = conn_shard(c);
    while (!hr_list_empty(&c->subs)) {
        hr_sub_t *sub = hr_list_entry(c->subs.next, hr_sub_t, owner_link);
        if (sub->table == &sh->topics)
            hr_topics_remove(sub->table, sub);
        else
            hr_channels_unsubscribe(sh, sub, hr_conn_id(c));
    }
}

static void on_free(hr_sock_t *s)
{
    hr_conn_t *c = conn_of(s);
    detach(c);
    if (c->opened && c->route->cb.on_close) {
        uint16_t code = c->close_known ? c->close_code : HR_WS_CLOSE_ABNORMAL;
        const char *why = c->dfl && c->dfl->close_reason ? c->dfl->close_reason : "";
        c->route->cb.on_close(c, code, why, c->close_reason_len);
    }
    if (c->dfl && c->dfl->stream_close) {
        void (*fn)(void *) = c->dfl->stream_close;
        c->dfl->stream_close = NULL;
        fn(c->dfl->stream_data); /* a streamed answer's owner: once, here (session.c) */
    }
    hr_list_remove(&c->shard_link);
    if (c->opened)
        hr_ws_reader_deinit(&c->u.rd);
    else
        hr_buf_deinit(&c->u.head);
    if (c->dfl) {
        if (c->dfl->own_inflate) {
            hr_deflate_stream_deinit(c->dfl->own_inflate);
            hr_free(c->dfl->own_inflate);
        }
        if (c->dfl->own_deflate) {
            hr_deflate_stream_deinit(c->dfl->own_deflate);
            hr_free(c->dfl->own_deflate);
        }
        hr_loop_timer_stop(&conn_shard(c)->loop, &c->dfl->expiry);
        if (c->dfl->user_limit && c->dfl->user_redis >= HR_CLUSTER_USER_LOCAL)
            hr_cluster_limits_release(conn_shard(c), hr_conn_user(c));
        hr_auth_grant_free(c->dfl->grant);
        hr_limit_release(&conn_shard(c)->srv->per_user, c->dfl->user_limit);
        hr_free(c->dfl->close_reason);
        hr_free(c->dfl);
    }
    hr_server_t *srv = conn_shard(c)->srv;
    if (c->opened || !c->over_limit)
        atomic_fetch_sub_explicit(&srv->nconns, 1, memory_order_relaxed);
    hr_limit_release(&srv->per_ip, c->sock.tag);
    hr_pool_free(&conn_shard(c)->conn_pool, c);
}

/* ---------------------------------------------------------------- sending */

/* Queues a frame of this connection's own: header and payload are copied into its out
 * queue, packed with the frames before it (one write of many small echoes). */
static int send_own(hr_conn_t *c, uint8_t opcode, bool rsv1, const void *data, size_t len)
{
    uint8_t hdr[HR_WS_FRAME_HEADER_MAX];
    size_t hl = hr_ws_frame_encode_header(hdr, true, rsv1 ? HR_WS_RSV1 : 0, opcode, len, NULL);
    int rc = hr_sock_write_parts(&c->sock, hdr, hl, data, len);
    if (rc == 0) {
        hr_shard_stats_t *st = &conn_shard(c)->stats;
        st->bytes_out += hl + len;
        if (opcode < HR_WS_OP_CLOSE)
            st->messages_out++;
    }
    return rc;
}

static void send_close(hr_conn_t *c, uint16_t code, const char *reason, size_t rlen)
{
    if (c->close_sent)
        return;
    c->close_sent = true;
    uint8_t payload[125];
    size_t n = hr_ws_close_payload(payload, code, reason, rlen);
    send_own(c, HR_WS_OP_CLOSE, false, payload, n);
}

/* Remembers the close code and reason for on_close (the reason only if a route will be
 * told: an idle connection carries no reason buffer). */
static void keep_close(hr_conn_t *c, uint16_t code, const char *reason, size_t len)
{
    c->close_known = true;
    c->close_code = code;
    if (!len || !c->route->cb.on_close || (c->dfl && c->dfl->close_reason))
        return;
    if (len > 123)
        len = 123;
    /* The reason lives in the connection's occasional state, made now if need be. */
    if (!c->dfl && !(c->dfl = hr_calloc(1, sizeof(*c->dfl))))
        return;
    c->dfl->close_reason = hr_malloc(len + 1);
    if (c->dfl->close_reason) {
        memcpy(c->dfl->close_reason, reason, len);
        c->dfl->close_reason[len] = 0;
        c->close_reason_len = (uint8_t)len;
    }
}

/* Fails the connection: our close frame (if the WebSocket is open), then close. */
static void start_close(hr_conn_t *c, uint16_t code, const char *reason)
{
    if (c->phase == HR_PHASE_OPEN) {
        size_t rlen = strlen(reason);
        send_close(c, code, reason, rlen);
        /* on_close reports the code we sent when we started the close. */
        keep_close(c, code, reason, rlen);
    }
    c->phase = HR_PHASE_CLOSING;
    hr_sock_close(&c->sock);
}

static void fail_conn(hr_conn_t *c, uint16_t code, const char *reason)
{
    start_close(c, code, reason);
    detach(c);
}

/* A slow consumer: its backlog is past the cap. Drop what has not started to go out,
 * tell it why (1008), close. Counted. */
static void drop_slow(hr_conn_t *c)
{
    hr_shard_t *sh = conn_shard(c);
    sh->stats.slow_consumer_closes++;
    sh->stats.limit_rejections[HR_LIMIT_MAX_BACKLOG]++;
    hr_log_fields(HR_LOG_INFO,
                  HR_LOG_KV(hr_log_uint("conn", hr_conn_id(c)),
                            hr_log_uint("queued_bytes", hr_sock_queued(&c->sock)),
                            hr_log_uint("frames", c->sock.outq.count)),
                  "slow consumer: backlog over max-backlog, closing with 1008");
    if (c->route->cb.on_error)
        c->route->cb.on_error(c, HR_ENOBUFS);
    hr_outq_drop_unstarted(&c->sock.outq);
    /* Called while a fan-out walks subscriber lists: the connection stays in them (as
     * closing, so it gets nothing more) until it is freed, and the walk is undisturbed. */
    start_close(c, HR_WS_CLOSE_POLICY_VIOLATION, "backlog limit exceeded");
}

/* Backlog check before queueing: a message is accepted while the bytes waiting behind
 * the message at the head of the queue (the one being written) are within max_backlog.
 * A single large message therefore never counts against the client, and memory per
 * connection is bounded by one message plus max_backlog. */
static bool over_backlog(hr_conn_t *c)
{
    if (hr_outq_backlog(&c->sock.outq) <= conn_shard(c)->srv->opt.max_backlog)
        return false;
    drop_slow(c);
    return true;
}

static bool can_compress(const hr_conn_t *c, size_t len)
{
    return c->dfl && len >= DEFLATE_MIN_BYTES && c->dfl->p.server_max_window_bits >= 9;
}

int hr_conn_send(hr_conn_t *c, const void *data, size_t len, bool binary)
{
    if (c->phase != HR_PHASE_OPEN)
        return HR_ECLOSED;
    if (over_backlog(c))
        return HR_ENOBUFS;
    uint8_t op = binary ? HR_WS_OP_BINARY : HR_WS_OP_TEXT;
    if (!can_compress(c, len))
        return send_own(c, op, false, data, len);
    hr_shard_t *sh = conn_shard(c);
    bool takeover = !c->dfl->p.server_no_context_takeover;
    hr_deflate_stream_t *s = takeover ? c->dfl->own_deflate : &sh->deflate_shared;
    if (takeover && !s)
        s = c->dfl->own_deflate = hr_calloc(1, sizeof(*s));
    if (!s)
        return HR_ENOMEM;
    /* Not zscratch: callers build their messages there. */
    sh->dscratch.len = 0;
    int rc = hr_deflate_compress(s, &sh->srv->deflate, c->dfl->p.server_max_window_bits, !takeover,
                                 data, len, &sh->dscratch);
    if (rc == 0)
        rc = send_own(c, op, true, sh->dscratch.data, sh->dscratch.len);
    if (sh->dscratch.cap > (1u << 20))
        hr_buf_deinit(&sh->dscratch);
    return rc;
}

void hr_session_send_frame(hr_conn_t *c, hr_frame_t *f)
{
    hr_session_deliver(c, f, HR_SLOW_DISCONNECT);
}

#define HEAD_ARENA 65536

/* Whether one more shared frame may be queued for c under policy (see hr_session_deliver). */
static bool admit(hr_conn_t *c, hr_slow_policy_t policy)
{
    if (c->phase != HR_PHASE_OPEN)
        return false;
    if (hr_outq_backlog(&c->sock.outq) > conn_shard(c)->srv->opt.max_backlog) {
        hr_shard_t *sh = conn_shard(c);
        if (policy == HR_SLOW_DISCONNECT) {
            drop_slow(c);
            return false;
        }
        /* The client keeps its connection and sees the loss as a gap in the offsets. */
        sh->stats.limit_rejections[HR_LIMIT_MAX_BACKLOG]++;
        if (policy == HR_SLOW_DROP_NEWEST) {
            sh->stats.dropped_messages++;
            return false;
        }
        uint32_t before = c->sock.outq.count;
        hr_outq_drop_unstarted(&c->sock.outq); /* drop-oldest: the queued backlog goes */
        sh->stats.dropped_messages += before - c->sock.outq.count;
    }
    return true;
}

void hr_session_deliver_parts(hr_conn_t *c, bool binary, const void *head, size_t hlen,
                              hr_refbuf_t *tail, hr_slow_policy_t policy)
{
    if (!admit(c, policy))
        return;
    uint8_t hdr[HR_WS_FRAME_HEADER_MAX];
    size_t hl = hr_ws_frame_encode_header(hdr, true, 0, binary ? HR_WS_OP_BINARY : HR_WS_OP_TEXT,
                                          hlen + tail->len, NULL);
    /* The heads of one fan-out are carved from one shard-wide block: a private copy per
     * subscriber would cost an allocation each (the queue's last item is the shared tail
     * of the previous message, which a copy cannot be packed into). */
    hr_shard_t *sh = conn_shard(c);
    size_t need = hl + hlen;
    if (!sh->head_arena || sh->head_arena_used + need > sh->head_arena->len) {
        hr_refbuf_unref(sh->head_arena);
        sh->head_arena = hr_refbuf_create(need > HEAD_ARENA ? need : HEAD_ARENA);
        sh->head_arena_used = 0;
        if (!sh->head_arena)
            return;
    }
    hr_refbuf_t *a = sh->head_arena;
    size_t off = sh->head_arena_used;
    memcpy(a->data + off, hdr, hl);
    memcpy(a->data + off + hl, head, hlen);
    sh->head_arena_used += need;
    if (hr_sock_write(&c->sock, hr_refbuf_ref(a), off, off + need) == 0 &&
        hr_sock_write(&c->sock, hr_refbuf_ref(tail), 0, tail->len) == 0) {
        sh->stats.messages_out++;
        sh->stats.bytes_out += need + tail->len;
    }
}

void hr_session_deliver(hr_conn_t *c, hr_frame_t *f, hr_slow_policy_t policy)
{
    if (!admit(c, policy))
        return;
    hr_refbuf_t *rb = NULL;
    /* The shared compressed variant is made without context and with a 15-bit window:
     * any peer that did not limit our window can inflate it. A peer with context
     * takeover would mirror a window our own stream never saw, so it gets plain. */
    if (can_compress(c, f->payload_len) && c->dfl->p.server_no_context_takeover &&
        c->dfl->p.server_max_window_bits == 15) {
        hr_shard_t *sh = conn_shard(c);
        rb = hr_frame_deflated(f, &sh->deflate_shared, &sh->srv->deflate, &sh->zscratch);
    }
    if (!rb)
        rb = f->plain;
    if (hr_sock_write(&c->sock, hr_refbuf_ref(rb), 0, rb->len) == 0) {
        conn_shard(c)->stats.messages_out++;
        conn_shard(c)->stats.bytes_out += rb->len;
    }
}

void hr_conn_close(hr_conn_t *c, uint16_t code, const char *reason)
{
    if (c->phase != HR_PHASE_OPEN)
        return;
    fail_conn(c, code ? code : HR_WS_CLOSE_NORMAL, reason ? reason : "");
}

void hr_session_shutdown(hr_conn_t *c)
{
    /* The reason is a hint for clients: the service goes on (another process, or this one
     * restarted), so reconnect, with `since` to recover what was missed. */
    const char *why = conn_shard(c)->srv->shutdown_reason;
    if (c->phase == HR_PHASE_OPEN)
        fail_conn(c, HR_WS_CLOSE_GOING_AWAY, why ? why : "server shutting down, reconnect");
    else if (c->phase == HR_PHASE_HTTP_STREAM) {
        /* A streamed answer ends well-formed (the last chunk); its owner hears on_close. */
        if (c->dfl->stream_chunked)
            hr_sock_write_copy(&c->sock, "0\r\n\r\n", 5);
        c->phase = HR_PHASE_CLOSING;
        hr_sock_close(&c->sock);
    } else if (c->phase == HR_PHASE_HTTP || c->phase == HR_PHASE_HTTP_WAIT) {
        /* Flush an answer already queued (a publish's offset: a client that missed it
         * would publish again); a later one is dropped, and no request is read. */
        c->phase = HR_PHASE_CLOSING;
        hr_sock_close(&c->sock);
    }
}

/* ---------------------------------------------------------------- open phase */

static int on_message(void *ud, uint8_t opcode, uint8_t *data, size_t len)
{
    hr_conn_t *c = ud;
    hr_shard_t *sh = conn_shard(c);
    if (sh->srv->sec.max_message_rate > 0 && !hr_rate_take(&c->rate_tokens)) {
        sh->stats.limit_rejections[HR_LIMIT_MAX_MESSAGE_RATE]++;
        hr_log_fields(HR_LOG_INFO, HR_LOG_KV(hr_log_uint("conn", hr_conn_id(c))),
                      "message rate over max-message-rate, closing with 1008");
        fail_conn(c, HR_WS_CLOSE_POLICY_VIOLATION, "message rate exceeded");
        return 1;
    }
    sh->stats.messages_in++;
    if (c->route->cb.on_message)
        c->route->cb.on_message(c, data, len, opcode == HR_WS_OP_BINARY);
    return c->phase != HR_PHASE_OPEN;
}

static int on_control(void *ud, uint8_t opcode, uint16_t code, uint8_t *data, size_t len)
{
    hr_conn_t *c = ud;
    if (opcode == HR_WS_OP_PING) {
        send_own(c, HR_WS_OP_PONG, false, data, len);
        return 0;
    }
    if (opcode == HR_WS_OP_PONG)
        return 0;
    /* Close (RFC 6455 §5.5.1): echo the status code, then close the TCP connection. */
    keep_close(c, code, (const char *)data, len);
    send_close(c, code, NULL, 0);
    c->phase = HR_PHASE_CLOSING;
    detach(c);
    hr_sock_close(&c->sock);
    return 1;
}

static const hr_ws_reader_cb_t reader_cb = {on_message, on_control};

static void feed_ws(hr_conn_t *c, uint8_t *data, size_t len)
{
    hr_shard_stats_t *st = &conn_shard(c)->stats;
    st->bytes_in += len;
    ssize_t n = hr_ws_reader_feed(&c->u.rd, data, len, &reader_cb, c);
    if (n >= 0)
        return;
    st->protocol_errors++;
    if (c->u.rd.close_code == HR_WS_CLOSE_TOO_BIG)
        st->limit_rejections[HR_LIMIT_MAX_MESSAGE]++;
    hr_log_fields(
        HR_LOG_DEBUG,
        HR_LOG_KV(hr_log_uint("conn", hr_conn_id(c)), hr_log_int("code", c->u.rd.close_code)),
        "%s, closing", hr_strerror((int)n));
    if (c->phase != HR_PHASE_OPEN)
        return;
    if (c->route->cb.on_error)
        c->route->cb.on_error(c, (int)n);
    const char *why = c->u.rd.close_code == HR_WS_CLOSE_INVALID_PAYLOAD ? "invalid payload"
                      : c->u.rd.close_code == HR_WS_CLOSE_TOO_BIG       ? "message too big"
                                                                        : "protocol error";
    fail_conn(c, c->u.rd.close_code, why);
}

/* The connection's one timer: handshake timeout before the upgrade; afterwards idle
 * timeout and pings, re-armed lazily from the last activity. Times are kept as 32-bit
 * milliseconds (they wrap every 49 days; only differences shorter than that matter). */
static void on_timer(hr_sock_t *s)
{
    hr_conn_t *c = conn_of(s);
    const hr_server_options_t *o = &conn_shard(c)->srv->opt;
    uint32_t now = (uint32_t)now_ms(c);
    if (c->phase == HR_PHASE_HTTP || c->phase == HR_PHASE_HTTP_WAIT) {
        /* A request begun and not complete (or not answered) in time is refused; a silent
         * connection or an idle keep-alive one is just closed. */
        if (c->u.head.len) {
            count_refusal(conn_shard(c), 408);
            conn_shard(c)->stats.limit_rejections[HR_LIMIT_HANDSHAKE_TIMEOUT]++;
            hr_log_fields(HR_LOG_DEBUG, HR_LOG_KV(hr_log_uint("conn", hr_conn_id(c))),
                          "request not complete within the handshake timeout");
        }
        hr_sock_abort(&c->sock); /* slow or silent handshake, idle keep-alive, no answer */
        return;
    }
    if (c->phase != HR_PHASE_OPEN)
        return; /* also a stream: exempt from timeouts, its owner writes keep-alives */
    uint32_t silent = now - c->last_rx_ms;
    if (o->idle_timeout_ms && silent >= o->idle_timeout_ms) {
        conn_shard(c)->stats.limit_rejections[HR_LIMIT_IDLE_TIMEOUT]++;
        fail_conn(c, HR_WS_CLOSE_GOING_AWAY, "idle timeout");
        return;
    }
    if (o->ping_interval_ms && now - c->last_ping_ms >= o->ping_interval_ms &&
        silent >= o->ping_interval_ms) {
        send_own(c, HR_WS_OP_PING, false, NULL, 0);
        c->last_ping_ms = now;
    }
    /* Milliseconds until the next thing to check. */
    uint32_t wait = UINT32_MAX;
    if (o->idle_timeout_ms)
        wait = o->idle_timeout_ms - silent;
    if (o->ping_interval_ms) {
        uint32_t since_ping = now - c->last_ping_ms;
        uint32_t quiet = silent < since_ping ? silent : since_ping;
        uint32_t w = quiet < o->ping_interval_ms ? o->ping_interval_ms - quiet : 1;
        if (w < wait)
            wait = w;
    }
    if (wait != UINT32_MAX)
        hr_sock_timer(&c->sock, wait ? wait : 1);
}

hr_ip_t hr_session_client_ip(const hr_conn_t *c, const hr_http_request_t *req)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    hr_ip_t peer = {0}, client;
    if (getpeername(c->sock.io.fd, (struct sockaddr *)&ss, &sl) == 0)
        hr_ip_from_sockaddr((struct sockaddr *)&ss, &peer);
    client = peer;
    if (req)
        hr_forwarded_client(&conn_shard(c)->srv->trust, &peer, req, &client);
    return client;
}

/* ---------------------------------------------------------------- HTTP phase */

/* --access-log: one line per WebSocket handshake and per plain HTTP request. The client
 * address is worked out here, from the peer and the proxy headers (http/forwarded.h),
 * and not kept: an idle connection does not pay for it. req is NULL for a request that
 * did not parse; proto is the subprotocol of a 101. */
static void access_log(hr_conn_t *c, const hr_http_request_t *req, int status, const char *proto)
{
    hr_server_t *srv = conn_shard(c)->srv;
    if (!srv->access_log || !hr_log_enabled(HR_LOG_INFO))
        return;
    hr_ip_t client = hr_session_client_ip(c, req);
    char addr[HR_IP_STRLEN], path[512];
    hr_ip_format(&client, addr);
    if (req)
        hr_log_redact_query(req->target, req->target_len, path, sizeof(path));
    const hr_http_header_t *ua = req ? hr_http_find_header(req, "User-Agent") : NULL;
    uint32_t took = (uint32_t)now_ms(c) - c->req_start_ms;
    hr_log_fields(
        HR_LOG_INFO,
        HR_LOG_KV(hr_log_uint("conn", hr_conn_id(c)), hr_log_str("client", addr),
                  hr_log_strn("method", req ? req->method : NULL, req ? req->method_len : 0),
                  hr_log_str("path", req ? path : NULL), hr_log_int("status", status),
                  hr_log_str("proto", proto),
                  hr_log_strn("ua", ua ? ua->value : NULL,
                              ua ? (ua->value_len > 256 ? 256 : ua->value_len) : 0),
                  hr_log_uint("duration_ms", took)),
        "access");
}

static void http_fail(hr_conn_t *c, int status, const char *reason, const char *extra)
{
    hr_buf_t out;
    hr_buf_init(&out);
    count_refusal(conn_shard(c), status);
    if (hr_http_write_error(&out, status, reason, extra) == 0)
        hr_sock_write_copy(&c->sock, out.data, out.len);
    hr_buf_deinit(&out);
    hr_log_fields(HR_LOG_DEBUG,
                  HR_LOG_KV(hr_log_uint("conn", hr_conn_id(c)), hr_log_int("status", status),
                            hr_log_str("reason", reason)),
                  "handshake refused");
    c->phase = HR_PHASE_CLOSING;
    hr_sock_close(&c->sock);
}

/* Refuses a request that parsed: logged (--access-log), answered, closed. */
static void refuse(hr_conn_t *c, const hr_http_request_t *req, int status, const char *reason,
                   const char *extra)
{
    access_log(c, req, status, NULL);
    http_fail(c, status, reason, extra);
}

/* Refuses a request over a connection limit (HR_LIMIT_*): 503, retry later. */
static void refuse_busy(hr_conn_t *c, const hr_http_request_t *req, int limit, const char *reason)
{
    conn_shard(c)->stats.limit_rejections[limit]++;
    refuse(c, req, 503, reason, "Retry-After: 5\r\n");
}

/* --max-connections-per-ip: counts the handshake under its client address (the proxy
 * headers believed as far as --trusted-proxies goes) until the connection is freed.
 * 0, or -1 when refused. */
static int count_client(hr_conn_t *c, const hr_http_request_t *req)
{
    hr_server_t *srv = conn_shard(c)->srv;
    int max = srv->sec.max_connections_per_ip;
    if (max <= 0 || c->sock.tag)
        return 0; /* no limit, or counted before an asynchronous step of the handshake */
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    hr_ip_t peer = {0}, client;
    ss.ss_family = AF_UNSPEC;
    if (getpeername(c->sock.io.fd, (struct sockaddr *)&ss, &sl) == 0)
        hr_ip_from_sockaddr((struct sockaddr *)&ss, &peer);
    hr_forwarded_client(&srv->trust, &peer, req, &client);
    /* A SockJS session's local connection (sockjs.c) names its client, or "-" when the
     * SockJS WebSocket that carries it was counted; only a socketpair peer may. */
    const hr_http_header_t *local =
        ss.ss_family == AF_UNIX ? hr_http_find_header(req, "X-Herald-Client") : NULL;
    if (local && local->value_len == 1 && local->value[0] == '-')
        return 0;
    if (local && hr_ip_parse(local->value, local->value_len, &client) != 0)
        memset(&client, 0, sizeof(client));
    int rc = hr_limit_acquire(&srv->per_ip, client.b, sizeof(client.b), max, &c->sock.tag);
    if (rc == HR_ENOBUFS)
        refuse_busy(c, req, HR_LIMIT_MAX_CONN_PER_IP, "too many connections from this address");
    else if (rc)
        refuse(c, req, 503, "out of memory", NULL);
    return rc ? -1 : 0;
}

int hr_session_count_user(hr_conn_t *c)
{
    hr_server_t *srv = conn_shard(c)->srv;
    const char *user = hr_conn_user(c);
    if (srv->sec.max_connections_per_user <= 0 || !user || !*user || c->dfl->user_limit)
        return 0;
    int rc = hr_limit_acquire(&srv->per_user, user, strlen(user), srv->sec.max_connections_per_user,
                              &c->dfl->user_limit);
    if (rc == HR_ENOBUFS)
        conn_shard(c)->stats.limit_rejections[HR_LIMIT_MAX_CONN_PER_USER]++;
    if (rc == 0 && c->opened && hr_cluster_limits_active(srv)) {
        /* STOMP CONNECT: the session is open, so Redis is told, not asked (cluster_limits.h) */
        hr_cluster_limits_add(conn_shard(c), user);
        c->dfl->user_redis = HR_CLUSTER_USER_LOCAL;
    }
    return rc;
}

/* An exact path, else a route whose path ends in '/' as a prefix (SockJS sessions). */
static const hr_route_t *find_route(const hr_server_t *srv, const char *target, size_t len)
{
    const char *q = memchr(target, '?', len);
    if (q)
        len = (size_t)(q - target);
    const hr_route_t *prefix = NULL;
    for (int i = 0; i < srv->nroutes; i++) {
        const char *p = srv->routes[i].path;
        size_t pl = strlen(p);
        if (pl == len && memcmp(p, target, len) == 0)
            return &srv->routes[i];
        if (!prefix && pl > 1 && p[pl - 1] == '/' && pl < len && memcmp(p, target, pl) == 0)
            prefix = &srv->routes[i];
    }
    return prefix;
}

/* A WebSocket upgrade for a WebSocket route: it wins over a plain HTTP prefix route at
 * the same path (SockJS serves both under /stomp/). */
static bool is_ws_upgrade(const hr_server_t *srv, const hr_http_request_t *req)
{
    const hr_http_header_t *h = hr_http_find_header(req, "Upgrade");
    return h && hr_http_list_has_token(h->value, h->value_len, "websocket") &&
           find_route(srv, req->target, req->target_len);
}

static int setup_deflate(hr_conn_t *c)
{
    hr_shard_t *sh = conn_shard(c);
    hr_deflate_stream_t *inf = &sh->inflate_shared;
    if (!c->dfl->p.client_no_context_takeover) {
        c->dfl->own_inflate = hr_calloc(1, sizeof(*c->dfl->own_inflate));
        inf = c->dfl->own_inflate;
    }
    if (!inf ||
        hr_ws_reader_set_deflate(&c->u.rd, inf, &sh->scratch, c->dfl->p.client_max_window_bits,
                                 c->dfl->p.client_no_context_takeover) != 0)
        return HR_ENOMEM;
    return 0;
}

/* ---------------------------------------------------------------- authentication */

static int upgrade(hr_conn_t *c, hr_http_request_t *req);

/* Finishes a handshake that waited for an asynchronous answer: the request (n bytes)
 * is still in the head buffer. As process_http does, the buffer is taken out first: the
 * reader set up by the upgrade shares its storage; frames pipelined after the request
 * are fed to the new WebSocket. */
static void resume_upgrade(hr_conn_t *c, hr_http_request_t *req, int n)
{
    hr_buf_t head = c->u.head;
    hr_buf_init(&c->u.head);
    if (upgrade(c, req) == 0 && (size_t)n < head.len)
        feed_ws(c, head.data + n, head.len - (size_t)n);
    hr_buf_deinit(&head);
}

/* How long the auth webhook may take; the handshake timeout still bounds the whole. */
#define AUTH_WEBHOOK_TIMEOUT_MS 5000
#define WWW_AUTH_INVALID "WWW-Authenticate: Bearer realm=\"herald\", error=\"invalid_token\"\r\n"
#define WWW_AUTH_NONE "WWW-Authenticate: Bearer realm=\"herald\"\r\n"

int hr_session_auth_start(hr_server_t *s, char *err, size_t errlen)
{
    hr_jwt_keys_deinit(&s->sec.jwt);
    if (s->sec.auth == HR_AUTH_OFF)
        return 0;
    if (!s->sec.jwt_secret && !s->sec.jwt_public_key && !s->sec.auth_webhook) {
        snprintf(err, errlen,
                 "--auth %s needs --jwt-secret, --jwt-public-key or --auth-webhook to check tokens",
                 s->sec.auth == HR_AUTH_REQUIRED ? "required" : "optional");
        return HR_EINVAL;
    }
    return hr_jwt_keys_load(&s->sec.jwt, s->sec.jwt_secret, s->sec.jwt_public_key, err, errlen);
}

void hr_session_auth_stop(hr_server_t *s)
{
    hr_jwt_keys_deinit(&s->sec.jwt);
}

const hr_auth_grant_t *hr_conn_grant(const hr_conn_t *c)
{
    return c->dfl ? c->dfl->grant : NULL;
}

const char *hr_conn_user(const hr_conn_t *c)
{
    return c->dfl && c->dfl->grant ? c->dfl->grant->user : NULL;
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The token's exp passed on a live connection: the protocol's own error first
 * ({"type":"error","code":"token_expired"} on /pubsub, an ERROR frame on /stomp),
 * then close 4001. */
static void on_token_expired(hr_timer_t *t)
{
    hr_conn_deflate_t *x = (hr_conn_deflate_t *)((char *)t - offsetof(hr_conn_deflate_t, expiry));
    hr_conn_t *c = x->conn;
    if (c->phase != HR_PHASE_OPEN) {
        if (c->phase != HR_PHASE_CLOSING) { /* expired while the handshake waited */
            c->phase = HR_PHASE_CLOSING;
            hr_sock_abort(&c->sock);
        }
        return;
    }
    hr_log_fields(HR_LOG_DEBUG, HR_LOG_KV(hr_log_uint("conn", hr_conn_id(c))),
                  "token expired, closing with 4001");
    if (c->route->cb.on_message == hr_stomp_route_cb.on_message) {
        hr_stomp_session_expired(c);
    } else if (c->route->cb.on_message == hr_pubsub_route.on_message) {
        static const char msg[] =
            "{\"type\":\"error\",\"code\":\"token_expired\",\"message\":\"token expired\"}";
        hr_conn_send(c, msg, sizeof(msg) - 1, false);
    }
    if (c->phase == HR_PHASE_OPEN)
        fail_conn(c, HR_WS_CLOSE_TOKEN_EXPIRED, "token expired");
}

/* Makes g (taken) the connection's grant and arms its expiry. 0 or HR_ENOMEM (g freed). */
static int attach_grant(hr_conn_t *c, hr_auth_grant_t *g)
{
    if (!c->dfl && !(c->dfl = hr_calloc(1, sizeof(*c->dfl)))) {
        hr_auth_grant_free(g);
        return HR_ENOMEM;
    }
    hr_conn_deflate_t *x = c->dfl;
    hr_loop_t *loop = &conn_shard(c)->loop;
    hr_loop_timer_stop(loop, &x->expiry);
    hr_auth_grant_free(x->grant);
    x->grant = g;
    x->conn = c;
    hr_timer_init(&x->expiry, on_token_expired);
    if (g->exp) {
        uint64_t now = wall_ms(), at = (uint64_t)g->exp * 1000;
        hr_loop_timer_start(loop, &x->expiry, at > now ? at - now : 1);
    }
    return 0;
}

int hr_conn_authenticate(hr_conn_t *c, const char *tok, size_t len, const char **why)
{
    const hr_jwt_keys_t *k = &conn_shard(c)->srv->sec.jwt;
    if (!k->secret && !k->pub) {
        *why = "tokens are checked by the auth webhook: send the token with the handshake";
        return HR_EINVAL;
    }
    hr_auth_grant_t *g = NULL;
    int rc = hr_jwt_verify(tok, len, k, (int64_t)(wall_ms() / 1000), &g, why);
    if (rc == 0 && (rc = attach_grant(c, g)) != 0)
        *why = "out of memory";
    return rc;
}

/* The bearer token of a handshake: "Authorization: Bearer T", else "token=T" in the
 * query. Found: true with *tok pointing into the request. */
static bool find_token(const hr_http_request_t *req, hr_slice_t *tok)
{
    const hr_http_header_t *h = hr_http_find_header(req, "Authorization");
    if (h && h->value_len > 7 && strncasecmp(h->value, "Bearer ", 7) == 0) {
        const char *p = h->value + 7, *e = h->value + h->value_len;
        while (p < e && *p == ' ')
            p++;
        while (e > p && e[-1] == ' ')
            e--;
        *tok = hr_slice(p, (size_t)(e - p));
        return true;
    }
    const char *q = memchr(req->target, '?', req->target_len);
    const char *end = req->target + req->target_len;
    for (const char *p = q ? q + 1 : end; p < end;) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pe = amp ? amp : end;
        if (pe - p >= 6 && memcmp(p, "token=", 6) == 0) {
            *tok = hr_slice(p + 6, (size_t)(pe - p - 6));
            return true;
        }
        p = pe + 1;
    }
    return false;
}

/* Parses again the request held in the head buffer while an asynchronous step ran (it
 * was complete the first time): its length, or <= 0 if it was lost. */
static ssize_t reparse(const hr_conn_t *c, hr_http_request_t *req, hr_http_header_t *headers)
{
    *req = (hr_http_request_t){.headers = headers, .num_headers = MAX_HEADERS};
    int st;
    return hr_http_parse_request((const char *)c->u.head.data, c->u.head.len, c->u.head.len, req,
                                 &st);
}

typedef struct auth_op {
    hr_conn_t *c;
    uint32_t seq;
} auth_op_t;

/* The auth webhook's verdict on a handshake: accepted, the handshake goes on from the
 * request kept in the head buffer; refused with the verdict's status. */
static void on_auth_answer(void *ctx, int status, hr_auth_grant_t *g, const char *why)
{
    auth_op_t *o = ctx;
    hr_conn_t *c = o->c;
    bool mine = c->seq == o->seq && c->phase == HR_PHASE_HTTP_WAIT && !c->opened;
    hr_free(o);
    if (!mine) {
        hr_auth_grant_free(g); /* gone (handshake timeout, peer closed) */
        return;
    }
    hr_http_header_t headers[MAX_HEADERS];
    hr_http_request_t req;
    ssize_t n = reparse(c, &req, headers);
    c->phase = HR_PHASE_HTTP;
    if (n <= 0) {
        hr_auth_grant_free(g);
        http_fail(c, 500, "lost the request", NULL);
        return;
    }
    if (status == 0 && attach_grant(c, g) != 0) {
        status = 503;
        why = "out of memory";
    }
    if (status) {
        refuse(c, &req, status, why, status == 401 ? WWW_AUTH_INVALID : NULL);
        return;
    }
    resume_upgrade(c, &req, n);
}

typedef struct webhook_op {
    hr_session_auth_cb cb;
    void *ctx;
} webhook_op_t;

/* The auth webhook answered: 200 {"user", "channels"} accepts, 401 or 403 refuses with
 * that status, and anything else (unreachable, other statuses, a malformed answer) is a
 * 503. */
static void on_webhook_answer(void *ctx, const hr_http_result_t *r)
{
    webhook_op_t o = *(webhook_op_t *)ctx;
    hr_free(ctx);
    hr_auth_grant_t *g = NULL;
    const char *why = "authentication backend unavailable";
    int status = 503;
    if (r->err) {
        hr_log_warn("auth webhook unreachable: %s", r->errmsg);
    } else if (r->status == 401 || r->status == 403) {
        status = r->status;
        why = r->status == 401 ? "refused by the authentication backend"
                               : "forbidden by the authentication backend";
    } else if (r->status != 200) {
        hr_log_warn("auth webhook answered %d", r->status);
    } else if (hr_auth_grant_parse((const char *)r->body, r->body_len, "user", &g, &why) != 0) {
        hr_log_warn("auth webhook answer: %s", why);
        why = "authentication backend answer invalid";
    } else {
        status = 0;
    }
    o.cb(o.ctx, status, g, status ? why : NULL);
}

int hr_session_ask_webhook(hr_conn_t *c, const hr_http_request_t *req, const char *tok,
                           size_t tok_len, hr_session_auth_cb cb, void *ctx)
{
    hr_shard_t *sh = conn_shard(c);
    hr_server_t *srv = sh->srv;
    hr_ip_t client = hr_session_client_ip(c, req);
    char addr[HR_IP_STRLEN];
    hr_ip_format(&client, addr);
    const char *q = memchr(req->target, '?', req->target_len);
    json_t *body = json_object(), *hs = json_object();
    json_object_set_new(body, "path",
                        json_stringn(req->target, q ? (size_t)(q - req->target) : req->target_len));
    /* Credentials travel once, as "token": never in headers (Cookie is left out too). */
    for (size_t i = 0; i < req->num_headers; i++) {
        const hr_http_header_t *h = &req->headers[i];
        char name[128];
        if (h->name_len >= sizeof(name))
            continue;
        for (size_t k = 0; k < h->name_len; k++)
            name[k] = (char)(h->name[k] >= 'A' && h->name[k] <= 'Z' ? h->name[k] + 32 : h->name[k]);
        name[h->name_len] = 0;
        if (strcmp(name, "authorization") == 0 || strcmp(name, "cookie") == 0 ||
            json_object_get(hs, name))
            continue;
        json_object_set_new(hs, name, json_stringn(h->value, h->value_len));
    }
    json_object_set_new(body, "headers", hs);
    json_object_set_new(body, "token", json_stringn(tok, tok_len));
    json_object_set_new(body, "client", json_string(addr));
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    webhook_op_t *o = text ? hr_malloc(sizeof(*o)) : NULL;
    hr_http_client_t *hc = o ? hr_stomp_http(sh) : NULL;
    int rc = HR_ENOMEM;
    if (hc) {
        o->cb = cb;
        o->ctx = ctx;
        rc = hr_http_client_post(hc, srv->sec.auth_webhook, "application/json", text, strlen(text),
                                 NULL, AUTH_WEBHOOK_TIMEOUT_MS, 65536, on_webhook_answer, o);
    }
    free(text);
    if (rc)
        hr_free(o);
    return rc;
}

/* Asks the auth webhook about a handshake with token tok. 1 (answer pending) or -1. */
static int ask_webhook(hr_conn_t *c, const hr_http_request_t *req, hr_slice_t tok)
{
    auth_op_t *o = hr_malloc(sizeof(*o));
    if (o) {
        o->c = c;
        o->seq = c->seq;
    }
    if (!o || hr_session_ask_webhook(c, req, tok.ptr, tok.len, on_auth_answer, o) != 0) {
        hr_free(o);
        refuse(c, req, 503, "authentication backend unavailable", NULL);
        return -1;
    }
    c->phase = HR_PHASE_HTTP_WAIT;
    return 1;
}

/* ---------------------------------------------------------------- per user, cluster-wide */

typedef struct user_op {
    hr_conn_t *c;
    uint32_t seq;
    char user[]; /* to give the slot back if the connection left meanwhile */
} user_op_t;

/* Redis answered whether the user is under --max-connections-per-user on every node
 * (cluster_limits.h): refused as by the local count, or the handshake goes on from the
 * request kept in the head buffer, as after the auth webhook. */
static void on_cluster_user(void *ctx, int verdict)
{
    user_op_t *o = ctx;
    hr_conn_t *c = o->c;
    bool mine = c->seq == o->seq && c->phase == HR_PHASE_HTTP_WAIT && !c->opened;
    if (!mine) {
        if (verdict > 0)
            hr_cluster_limits_release(hr_server__current_shard(), o->user);
        hr_free(o);
        return;
    }
    hr_free(o);
    hr_http_header_t headers[MAX_HEADERS];
    hr_http_request_t req;
    ssize_t n = reparse(c, &req, headers);
    c->phase = HR_PHASE_HTTP;
    c->dfl->user_redis = verdict > 0 ? HR_CLUSTER_USER_COUNTED : HR_CLUSTER_USER_LOCAL;
    if (n > 0 && verdict == 0) {
        c->dfl->user_redis = HR_CLUSTER_USER_NONE;
        hr_limit_release(&conn_shard(c)->srv->per_user, c->dfl->user_limit);
        c->dfl->user_limit = 0;
        refuse_busy(c, &req, HR_LIMIT_MAX_CONN_PER_USER, "too many connections for this user");
        return;
    }
    if (n <= 0) {
        http_fail(c, 500, "lost the request", NULL);
        return;
    }
    resume_upgrade(c, &req, n);
}

/* With --redis, counts the user's connection in Redis as well, once the local count
 * took it. 0: go on (nothing to ask, or asked already; Redis unreachable: the local
 * count decides), 1: waiting for Redis, -1: refused and answered. */
static int count_user_redis(hr_conn_t *c, const hr_http_request_t *req)
{
    hr_shard_t *sh = conn_shard(c);
    const char *user = hr_conn_user(c);
    if (!user || !c->dfl->user_limit || c->dfl->user_redis != HR_CLUSTER_USER_NONE ||
        !hr_cluster_limits_active(sh->srv))
        return 0;
    size_t ulen = strlen(user);
    user_op_t *o = hr_malloc(sizeof(*o) + ulen + 1);
    if (!o) {
        refuse(c, req, 503, "out of memory", NULL);
        return -1;
    }
    o->c = c;
    o->seq = c->seq;
    memcpy(o->user, user, ulen + 1);
    if (hr_cluster_limits_acquire(sh, user, sh->srv->sec.max_connections_per_user, on_cluster_user,
                                  o) != 0) {
        hr_free(o);
        c->dfl->user_redis = HR_CLUSTER_USER_LOCAL;
        return 0;
    }
    c->dfl->user_redis = HR_CLUSTER_USER_ASKED;
    c->phase = HR_PHASE_HTTP_WAIT;
    return 1;
}

/* --auth at the handshake (docs/security.md). 0: go on (authenticated or anonymous),
 * -1: refused with 401 and answered, 1: waiting for the auth webhook. A STOMP endpoint
 * with --auth required accepts a handshake without a token: its CONNECT must bring one. */
static int authenticate(hr_conn_t *c, const hr_http_request_t *req, const hr_route_t *route)
{
    hr_server_t *srv = conn_shard(c)->srv;
    if (srv->sec.auth == HR_AUTH_OFF || hr_conn_grant(c))
        return 0; /* off, or accepted by the webhook already */
    hr_slice_t tok;
    if (!find_token(req, &tok)) {
        if (srv->sec.auth == HR_AUTH_OPTIONAL ||
            route->cb.on_message == hr_stomp_route_cb.on_message ||
            route->cb.on_message == hr_sockjs_route_cb.on_message)
            return 0;
        refuse(c, req, 401, "authentication required", WWW_AUTH_NONE);
        return -1;
    }
    const hr_jwt_keys_t *k = &srv->sec.jwt;
    hr_auth_grant_t *g = NULL;
    const char *why = "invalid token";
    if (k->secret || k->pub) {
        if (hr_jwt_verify(tok.ptr, tok.len, k, (int64_t)(wall_ms() / 1000), &g, &why) != 0) {
            refuse(c, req, 401, why, WWW_AUTH_INVALID);
            return -1;
        }
    }
    if (srv->sec.auth_webhook) {
        /* The token (verified if keys are configured) goes to the backend, whose answer
         * decides and names the user. */
        hr_auth_grant_free(g);
        return ask_webhook(c, req, tok);
    }
    if (attach_grant(c, g) != 0) {
        refuse(c, req, 503, "out of memory", NULL);
        return -1;
    }
    return 0;
}

/* Answers a complete request head: 0 (open), -1 (refused), or 1 (waiting for the
 * auth webhook, the request kept in the head buffer). */
static int upgrade(hr_conn_t *c, hr_http_request_t *req)
{
    hr_server_t *srv = conn_shard(c)->srv;
    const hr_route_t *route = find_route(srv, req->target, req->target_len);
    if (!route) {
        refuse(c, req, 404, "no WebSocket endpoint at this path", NULL);
        return -1;
    }
    hr_http_upgrade_t up;
    if (hr_http_upgrade_check(req, &up) != 0) {
        const char *extra = up.status == 426 ? "Sec-WebSocket-Version: 13\r\nUpgrade: websocket\r\n"
                            : up.status == 405 ? "Allow: GET\r\n"
                                               : NULL;
        refuse(c, req, up.status, up.reason, extra);
        return -1;
    }
    if (!hr_http_origin_allowed(up.origin, up.origin_len, up.host, up.host_len,
                                (const char *const *)srv->origins, srv->norigins)) {
        refuse(c, req, 403, "origin not allowed", NULL);
        return -1;
    }
    int checked = route->check ? route->check(srv, req) : 0;
    if (checked) {
        refuse(c, req, checked, checked == 401 ? "unauthorized" : "refused", NULL);
        return -1;
    }
    int auth = route->check ? 0 : authenticate(c, req, route);
    if (auth)
        return auth; /* refused (-1), or waiting for the auth webhook (1) */
    if (count_client(c, req) != 0)
        return -1;
    int per_user = hr_session_count_user(c);
    if (per_user) {
        refuse(c, req, 503,
               per_user == HR_ENOBUFS ? "too many connections for this user" : "out of memory",
               per_user == HR_ENOBUFS ? "Retry-After: 5\r\n" : NULL);
        return -1;
    }
    int cluster = count_user_redis(c, req);
    if (cluster)
        return cluster; /* refused (-1), or waiting for Redis (1) */
    c->protocol = (int8_t)hr_http_choose_subprotocol(req, (const char *const *)route->subprotocols,
                                                     route->nsubprotocols);
    char ext[256];
    const char *ext_resp = NULL;
    if (srv->deflate.enabled) {
        char offers[2048];
        size_t olen = 0;
        for (size_t i = 0; i < req->num_headers; i++) {
            const hr_http_header_t *h = &req->headers[i];
            if (h->name_len != 24 || strncasecmp(h->name, "Sec-WebSocket-Extensions", 24))
                continue;
            if (olen + h->value_len + 2 >= sizeof(offers))
                break;
            if (olen) {
                memcpy(offers + olen, ", ", 2);
                olen += 2;
            }
            memcpy(offers + olen, h->value, h->value_len);
            olen += h->value_len;
        }
        offers[olen] = 0;
        hr_deflate_params_t params;
        if (olen &&
            hr_deflate_negotiate(offers, olen, &srv->deflate, &params, ext, sizeof(ext)) == 1) {
            if (!c->dfl && !(c->dfl = hr_calloc(1, sizeof(*c->dfl)))) {
                refuse(c, req, 503, "out of memory", NULL);
                return -1;
            }
            c->dfl->p = params;
            ext_resp = ext;
        }
    }
    char accept[29];
    hr_http_accept_key(up.key, up.key_len, accept);
    hr_buf_t out;
    hr_buf_init(&out);
    int rc = hr_http_write_101(
        &out, accept, c->protocol >= 0 ? route->subprotocols[c->protocol] : NULL, ext_resp);
    if (rc == 0)
        rc = hr_sock_write_copy(&c->sock, out.data, out.len);
    hr_buf_deinit(&out);
    if (rc) {
        c->phase = HR_PHASE_CLOSING;
        hr_sock_abort(&c->sock);
        return -1;
    }
    c->route = route;
    c->phase = HR_PHASE_OPEN;
    conn_shard(c)->stats.handshakes_ok++;
    access_log(c, req, 101, hr_conn_protocol(c)); /* before last_ping_ms overwrites req_start_ms */
    hr_ws_reader_init(&c->u.rd, HR_WS_ROLE_SERVER, srv->opt.max_message);
    if (ext_resp && setup_deflate(c) != 0) {
        /* The 101 is queued already: fail the open connection cleanly. */
        hr_ws_reader_deinit(&c->u.rd);
        hr_buf_init(&c->u.head);
        fail_conn(c, HR_WS_CLOSE_INTERNAL_ERROR, "out of memory");
        return -1;
    }
    hr_list_push_back(&conn_shard(c)->route_conns[route->id], &c->route_link);
    c->last_rx_ms = c->last_ping_ms = (uint32_t)now_ms(c);
    c->opened = true;
    c->rate_tokens = hr_rate_full(srv->sec.message_burst);
    on_timer(&c->sock); /* arms the idle / ping timer */
    if (route->cb.on_open) {
        conn_shard(c)->upgrading = req; /* SockJS forwards it (sockjs.c) */
        route->cb.on_open(c);
        conn_shard(c)->upgrading = NULL;
    }
    return 0;
}

/* ---------------------------------------------------------------- plain HTTP */

static const hr_http_route_t *find_http(const hr_server_t *srv, const char *path, size_t len)
{
    for (int i = 0; i < srv->n_http_routes; i++) {
        const hr_http_route_t *r = &srv->http_routes[i];
        size_t pl = strlen(r->path);
        if (r->prefix ? len >= pl && memcmp(path, r->path, pl) == 0
                      : len == pl && memcmp(path, r->path, pl) == 0)
            return r;
    }
    return NULL;
}

static bool wants_keep_alive(const hr_http_request_t *req)
{
    const hr_http_header_t *h = hr_http_find_header(req, "Connection");
    if (req->version_minor >= 1)
        return !h || !hr_http_list_has_token(h->value, h->value_len, "close");
    return h && hr_http_list_has_token(h->value, h->value_len, "keep-alive");
}

/* The body length of a request: 0 and *status 0, or -1 with the status to answer. */
static long long body_length(const hr_http_request_t *req, size_t max_body, int *status)
{
    *status = 0;
    if (hr_http_find_header(req, "Transfer-Encoding")) {
        *status = 400; /* framed by hr_http_chunked_framing, never by a length */
        return -1;
    }
    const hr_http_header_t *h = hr_http_find_header(req, "Content-Length");
    if (!h)
        return 0;
    if (hr_http_count_header(req, "Content-Length") != 1 || h->value_len == 0 ||
        h->value_len > 12) {
        *status = 400;
        return -1;
    }
    long long n = 0;
    for (size_t i = 0; i < h->value_len; i++) {
        if (h->value[i] < '0' || h->value[i] > '9') {
            *status = 400;
            return -1;
        }
        n = n * 10 + (h->value[i] - '0');
    }
    if ((unsigned long long)n > max_body) {
        *status = 413;
        return -1;
    }
    return n;
}

/* The bytes of the answered request at the front of the head buffer (head and body as
 * kept: a chunked body decoded), or -1; the next request there starts afresh. */
static long long front_len(hr_conn_t *c, const hr_http_request_t *req, size_t n)
{
    if (c->dfl && c->dfl->body_chunked) {
        c->dfl->body_chunked = false;
        return (long long)c->dfl->chunked_len;
    }
    int st;
    long long b = body_length(req, conn_shard(c)->srv->max_body, &st);
    return b < 0 ? -1 : (long long)n + b;
}

static bool is_head(const hr_http_request_t *req)
{
    return req && req->method_len == 4 && memcmp(req->method, "HEAD", 4) == 0;
}

/* head: a HEAD request, answered with GET's head (Content-Length too) and no body,
 * RFC 9110 §9.3.2. */
static void write_reply(hr_conn_t *c, bool keep_alive, int status, const char *content_type,
                        const void *body, size_t len, const char *extra_headers, bool head)
{
    hr_buf_t out;
    hr_buf_init(&out);
    if (hr_http_write_response(&out, status, content_type, body, len, keep_alive, extra_headers) ==
        0)
        hr_sock_write_copy(&c->sock, out.data, out.len - (head ? len : 0));
    hr_buf_deinit(&out);
    if (!keep_alive) {
        c->phase = HR_PHASE_CLOSING;
        hr_sock_close(&c->sock);
    } else {
        /* The handshake timeout doubles as the keep-alive idle timeout. */
        hr_sock_timer(&c->sock, conn_shard(c)->srv->opt.handshake_timeout_ms);
        c->req_start_ms = (uint32_t)now_ms(c); /* a pipelined request starts now */
    }
}

void hr_http_reply(hr_http_ctx_t *x, int status, const char *content_type, const void *body,
                   size_t len, const char *extra_headers)
{
    if (x->answered)
        return;
    x->answered = true;
    access_log(x->c, x->req, status, NULL);
    write_reply(x->c, x->keep_alive, status, content_type, body, len, extra_headers,
                is_head(x->req));
}

hr_http_token_t hr_http_defer(hr_http_ctx_t *x)
{
    x->answered = true;
    x->c->phase = HR_PHASE_HTTP_WAIT;
    return (hr_http_token_t){x->c, x->c->seq};
}

static void process_http(hr_conn_t *c, uint8_t *buf, size_t blen, bool in_head);

void hr_http_reply_token(hr_http_token_t t, int status, const char *content_type, const void *body,
                         size_t len, const char *extra_headers)
{
    hr_conn_t *c = t.c;
    /* Pool slots are never unmapped: a closed or reused connection shows another phase
     * or seq, and the late answer is dropped. */
    if (c->seq != t.seq || c->phase != HR_PHASE_HTTP_WAIT)
        return;
    hr_http_ctx_t *cur = conn_shard(c)->http_current;
    if (cur && cur->c == c) {
        /* Answered before the handler even returned (the data was on this thread): the
         * request is still the handler's, not yet in the head buffer. */
        c->phase = HR_PHASE_HTTP;
        cur->answered = false;
        hr_http_reply(cur, status, content_type, body, len, extra_headers);
        return;
    }
    hr_http_header_t headers[MAX_HEADERS];
    hr_http_request_t req;
    ssize_t n = reparse(c, &req, headers);
    long long total = n > 0 ? front_len(c, &req, (size_t)n) : -1;
    bool keep = n > 0 && total >= 0 && wants_keep_alive(&req);
    c->phase = HR_PHASE_HTTP;
    access_log(c, n > 0 ? &req : NULL, status, NULL);
    write_reply(c, keep, status, content_type, body, len, extra_headers, n > 0 && is_head(&req));
    if (!keep)
        return;
    hr_buf_consume(&c->u.head, (size_t)total);
    if (c->u.head.len)
        process_http(c, c->u.head.data, c->u.head.len, true); /* pipelined requests */
    else
        hr_buf_deinit(&c->u.head);
}

int hr_http_resume(hr_http_token_t t, hr_http_handler_fn fn, void *data)
{
    hr_conn_t *c = t.c;
    if (!c || c->seq != t.seq || c->phase != HR_PHASE_HTTP_WAIT)
        return HR_ECLOSED;
    hr_shard_t *sh = conn_shard(c);
    hr_http_header_t headers[MAX_HEADERS];
    hr_http_request_t req;
    ssize_t n = reparse(c, &req, headers);
    int st;
    long long blen = -1, total = -1;
    if (n > 0 && c->dfl && c->dfl->body_chunked) { /* decoded in place behind the head */
        blen = (long long)c->dfl->chunked.body_len;
        total = (long long)c->dfl->chunked_len;
    } else if (n > 0 && (blen = body_length(&req, sh->srv->max_body, &st)) >= 0) {
        total = n + blen;
    }
    c->phase = HR_PHASE_HTTP;
    if (total < 0 || c->u.head.len < (size_t)total) {
        http_fail(c, 500, "lost the request", NULL);
        return 0;
    }
    const char *q = memchr(req.target, '?', req.target_len);
    size_t plen = q ? (size_t)(q - req.target) : req.target_len;
    hr_http_ctx_t x = {.c = c,
                       .req = &req,
                       .path = req.target,
                       .path_len = plen,
                       .query = q ? q + 1 : NULL,
                       .query_len = q ? req.target_len - plen - 1 : 0,
                       .body = c->u.head.data + n,
                       .body_len = (size_t)blen,
                       .keep_alive = wants_keep_alive(&req)};
    hr_http_ctx_t *outer = sh->http_current;
    sh->http_current = &x;
    fn(&x, data);
    sh->http_current = outer;
    if (!x.answered)
        hr_http_reply(&x, 500, NULL, "no answer\n", 10, NULL);
    if (c->phase != HR_PHASE_HTTP)
        return 0; /* waits again, streams (the request stays in the buffer), or closes */
    /* Answered: as hr_http_reply_token, serve what was pipelined behind it. */
    if (c->dfl)
        c->dfl->body_chunked = false;
    hr_buf_consume(&c->u.head, (size_t)total);
    if (c->u.head.len)
        process_http(c, c->u.head.data, c->u.head.len, true);
    else
        hr_buf_deinit(&c->u.head);
    return 0;
}

/* ---------------------------------------------------------------- streamed answers */

hr_http_token_t hr_http_stream_start(hr_http_ctx_t *x, int status, const char *content_type,
                                     const char *extra_headers, hr_http_stream_close_fn on_close,
                                     void *data)
{
    hr_conn_t *c = x->c;
    if (x->answered)
        return (hr_http_token_t){NULL, 0};
    /* A stream holds its connection as a WebSocket does: --max-connections-per-ip
     * counts it (once per connection, until it is freed); refused with 503. */
    if (!c->sock.tag && count_client(c, x->req) != 0) {
        x->answered = true;
        return (hr_http_token_t){NULL, 0};
    }
    /* HTTP/1.0 has no chunks: the body runs until the connection closes. */
    bool chunked = x->req->version_minor >= 1;
    if (!c->dfl && !(c->dfl = hr_calloc(1, sizeof(*c->dfl)))) {
        hr_http_reply(x, 503, NULL, "out of memory\n", 14, NULL);
        return (hr_http_token_t){NULL, 0};
    }
    hr_buf_t out;
    hr_buf_init(&out);
    int rc = hr_buf_appendf(&out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n%s%s\r\n", status,
                            hr_http_status_text(status),
                            content_type ? content_type : "text/plain; charset=utf-8",
                            chunked ? "Transfer-Encoding: chunked\r\n" : "",
                            chunked && x->keep_alive ? "" : "Connection: close\r\n");
    if (rc == 0 && extra_headers) {
        /* Extra headers go before the blank line that ends the head. */
        out.len -= 2;
        rc = hr_buf_append_str(&out, extra_headers);
        if (rc == 0)
            rc = hr_buf_append(&out, "\r\n", 2);
    }
    if (rc == 0)
        rc = hr_sock_write_copy(&c->sock, out.data, out.len);
    hr_buf_deinit(&out);
    if (rc) {
        hr_http_reply(x, 503, NULL, "out of memory\n", 14, NULL);
        return (hr_http_token_t){NULL, 0};
    }
    x->answered = true;
    access_log(c, x->req, status, NULL);
    c->phase = HR_PHASE_HTTP_STREAM;
    c->dfl->stream_close = on_close;
    c->dfl->stream_data = data;
    c->dfl->stream_chunked = chunked;
    c->dfl->stream_keep = chunked && x->keep_alive;
    return (hr_http_token_t){c, c->seq};
}

static hr_conn_t *stream_conn(hr_http_token_t t)
{
    hr_conn_t *c = t.c;
    return c && c->seq == t.seq && c->phase == HR_PHASE_HTTP_STREAM ? c : NULL;
}

/* Past --max-backlog: as drop_slow for a WebSocket, without a close frame. The owner
 * hears on_close when the connection is freed, not now: a fan-out may be walking the
 * subscriber list this connection is in. */
static bool stream_over_backlog(hr_conn_t *c)
{
    hr_shard_t *sh = conn_shard(c);
    if (hr_outq_backlog(&c->sock.outq) <= sh->srv->opt.max_backlog)
        return false;
    sh->stats.slow_consumer_closes++;
    sh->stats.limit_rejections[HR_LIMIT_MAX_BACKLOG]++;
    hr_log_fields(HR_LOG_INFO,
                  HR_LOG_KV(hr_log_uint("conn", hr_conn_id(c)),
                            hr_log_uint("queued_bytes", hr_sock_queued(&c->sock))),
                  "slow consumer: streamed answer over max-backlog, closing");
    hr_outq_drop_unstarted(&c->sock.outq);
    c->phase = HR_PHASE_CLOSING;
    hr_sock_close(&c->sock);
    return true;
}

int hr_http_stream_write_shared(hr_http_token_t t, const void *head, size_t hlen, hr_refbuf_t *tail,
                                size_t off, size_t end, const void *trail, size_t tlen)
{
    hr_conn_t *c = stream_conn(t);
    if (!c)
        return HR_ECLOSED;
    size_t n = hlen + (tail ? end - off : 0) + tlen;
    if (!n)
        return 0; /* an empty chunk would end the body */
    if (stream_over_backlog(c))
        return HR_EAGAIN;
    char size[20] = "";
    size_t sl = 0;
    if (c->dfl->stream_chunked)
        sl = (size_t)snprintf(size, sizeof(size), "%zx\r\n", n);
    int rc = hr_sock_write_parts(&c->sock, size, sl, head, hlen);
    if (rc == 0 && tail && end > off)
        rc = hr_sock_write(&c->sock, hr_refbuf_ref(tail), off, end);
    if (rc == 0 && (tlen || sl))
        rc = hr_sock_write_parts(&c->sock, trail, tlen, "\r\n", sl ? 2 : 0);
    if (rc) {
        /* A chunk half queued cannot be taken back: the stream is broken, close it. */
        c->phase = HR_PHASE_CLOSING;
        hr_sock_abort(&c->sock);
        return HR_ECLOSED;
    }
    conn_shard(c)->stats.bytes_out += sl + n + (sl ? 2 : 0);
    return 0;
}

int hr_http_stream_write(hr_http_token_t t, const void *p, size_t n)
{
    return hr_http_stream_write_shared(t, p, n, NULL, 0, 0, NULL, 0);
}

void hr_http_stream_end(hr_http_token_t t)
{
    hr_conn_t *c = stream_conn(t);
    if (!c)
        return;
    c->dfl->stream_close = NULL;
    if (c->dfl->stream_chunked)
        hr_sock_write_copy(&c->sock, "0\r\n\r\n", 5);
    if (!c->dfl->stream_keep) {
        c->phase = HR_PHASE_CLOSING;
        hr_sock_close(&c->sock);
        return;
    }
    c->phase = HR_PHASE_HTTP;
    hr_sock_timer(&c->sock, conn_shard(c)->srv->opt.handshake_timeout_ms);
    c->req_start_ms = (uint32_t)now_ms(c);
    hr_http_ctx_t *cur = conn_shard(c)->http_current;
    if (cur && cur->c == c)
        return; /* ended inside its handler: process_http goes on with the next request */
    /* The request is at the front of the head buffer (process_http kept it): drop it and
     * serve what was pipelined behind it. */
    hr_http_header_t headers[MAX_HEADERS];
    hr_http_request_t req;
    ssize_t n = reparse(c, &req, headers);
    long long total = n > 0 ? front_len(c, &req, (size_t)n) : -1;
    if (total < 0) {
        c->phase = HR_PHASE_CLOSING;
        hr_sock_close(&c->sock);
        return;
    }
    hr_buf_consume(&c->u.head, (size_t)total);
    if (c->u.head.len)
        process_http(c, c->u.head.data, c->u.head.len, true);
    else
        hr_buf_deinit(&c->u.head);
}

/* Keeps the request bytes (for a deferred answer, or until the rest arrives). */
static bool keep_bytes(hr_conn_t *c, const uint8_t *buf, size_t blen, bool in_head)
{
    if (in_head || hr_buf_append(&c->u.head, buf, blen) == 0)
        return true;
    http_fail(c, 503, "out of memory", NULL);
    return false;
}

/* Decodes the chunked body of the request whose head is buf[0..n), in place: the data
 * follows the head, and a partial body is kept as head + data so far (its framing
 * dropped), so the buffer never holds more than --max-header + --max-body. Returns the
 * request's bytes in buf once complete (the rest is pipelined), 0 when more is needed, or
 * -1 after refusing it (400 malformed, 413 over --max-body, 431 trailers). */
static long long decode_chunked(hr_conn_t *c, const hr_http_request_t *req, uint8_t *buf,
                                size_t blen, size_t n, bool in_head, size_t *body_len)
{
    if (!c->dfl && !(c->dfl = hr_calloc(1, sizeof(*c->dfl)))) {
        refuse(c, req, 503, "out of memory", NULL);
        return -1;
    }
    hr_http_chunked_t *d = &c->dfl->chunked;
    if (!in_head || !c->dfl->body_chunked) {
        hr_http_chunked_init(d, conn_shard(c)->srv->max_body);
        c->dfl->body_chunked = true;
    }
    size_t at = n + d->body_len, out;
    ssize_t r = hr_http_chunked_feed(d, buf + at, blen - at, &out);
    if (r == HR_EAGAIN) {
        if (in_head)
            c->u.head.len = at + out;
        else
            keep_bytes(c, buf, at + out, false);
        return 0;
    }
    if (r < 0) {
        int st = hr_http_chunked_status(d);
        refuse(c, req, st,
               st == 413   ? "request body too large"
               : st == 431 ? "chunked trailer section too large"
                           : "malformed chunked request body",
               NULL);
        return -1;
    }
    *body_len = d->body_len;
    c->dfl->chunked_len = at + (size_t)r;
    return (long long)c->dfl->chunked_len;
}

/* Serves the requests in buf[0..blen): plain HTTP ones while the connection stays in the
 * HTTP phase (keep-alive, pipelining), or the upgrade. in_head: buf is c->u.head's. */
static void process_http(hr_conn_t *c, uint8_t *buf, size_t blen, bool in_head)
{
    hr_server_t *srv = conn_shard(c)->srv;
    const hr_server_options_t *o = &srv->opt;
    for (;;) {
        hr_http_header_t headers[MAX_HEADERS];
        hr_http_request_t req = {.headers = headers, .num_headers = MAX_HEADERS};
        int status = 400;
        ssize_t n = hr_http_parse_request((const char *)buf, blen, o->max_header, &req, &status);
        if (n == HR_EAGAIN) {
            keep_bytes(c, buf, blen, in_head);
            return;
        }
        if (n < 0) {
            access_log(c, NULL, status, NULL);
            http_fail(c, status,
                      status == 431   ? "request header fields too large"
                      : status == 505 ? "HTTP version not supported"
                                      : "malformed request",
                      NULL);
            return;
        }
        if (c->over_limit) {
            refuse_busy(c, &req, HR_LIMIT_MAX_CONNECTIONS, "too many connections, try again later");
            return;
        }
        const char *q = memchr(req.target, '?', req.target_len);
        size_t plen = q ? (size_t)(q - req.target) : req.target_len;
        const hr_http_route_t *route =
            is_ws_upgrade(srv, &req) ? NULL : find_http(srv, req.target, plen);
        if (!route) {
            /* A WebSocket upgrade. The head buffer shares its storage with the reader the
             * upgrade sets up: take it out first; the request and any pipelined frames
             * still point into it. */
            hr_buf_t head = c->u.head;
            hr_buf_init(&c->u.head);
            int up = upgrade(c, &req);
            if (up == 1) {
                /* The auth webhook answers later: the request waits in the head buffer. */
                if (in_head)
                    c->u.head = head;
                else
                    keep_bytes(c, buf, blen, false);
                return;
            }
            if (up == 0 && (size_t)n < blen)
                feed_ws(c, buf + n, blen - (size_t)n);
            if (in_head)
                hr_buf_deinit(&head);
            return;
        }
        /* RFC 9112 §6.1: Transfer-Encoding frames the body (chunked only), or Content-Length. */
        int framing = hr_http_chunked_framing(&req);
        if (framing > 1) {
            refuse(c, &req, framing,
                   framing == 501 ? "Transfer-Encoding not supported: only chunked"
                                  : "invalid Transfer-Encoding (with Content-Length, in "
                                    "HTTP/1.0, or not ending in chunked)",
                   NULL);
            return;
        }
        size_t body_len = 0, total;
        if (framing == 1) {
            long long t = decode_chunked(c, &req, buf, blen, (size_t)n, in_head, &body_len);
            if (t <= 0)
                return;
            total = (size_t)t;
        } else {
            long long body = body_length(&req, srv->max_body, &status);
            if (body < 0) {
                refuse(c, &req, status,
                       status == 413 ? "request body too large" : "invalid Content-Length", NULL);
                return;
            }
            body_len = (size_t)body;
            total = (size_t)n + body_len;
            if (blen < total) {
                keep_bytes(c, buf, blen, in_head);
                return;
            }
        }
        hr_http_ctx_t x = {.c = c,
                           .req = &req,
                           .path = req.target,
                           .path_len = plen,
                           .query = q ? q + 1 : NULL,
                           .query_len = q ? req.target_len - plen - 1 : 0,
                           .body = buf + n,
                           .body_len = body_len,
                           .keep_alive = wants_keep_alive(&req)};
        hr_shard_t *sh = conn_shard(c);
        sh->http_current = &x;
        route->fn(&x, route->data);
        sh->http_current = NULL;
        if (!x.answered)
            hr_http_reply(&x, 500, NULL, "no answer\n", 10, NULL);
        if (c->phase == HR_PHASE_HTTP_WAIT || c->phase == HR_PHASE_HTTP_STREAM) {
            /* Answered later: the request stays at the front of the head buffer. */
            if (!in_head && !keep_bytes(c, buf, blen, false))
                return;
            return;
        }
        if (c->phase != HR_PHASE_HTTP)
            return; /* closing */
        if (framing == 1)
            c->dfl->body_chunked = false; /* answered: the next request starts afresh */
        if (in_head) {
            hr_buf_consume(&c->u.head, total);
            buf = c->u.head.data;
            blen = c->u.head.len;
            if (!blen) {
                hr_buf_deinit(&c->u.head);
                return;
            }
        } else {
            buf += total;
            blen -= total;
            if (!blen)
                return;
        }
    }
}

static void feed_http(hr_conn_t *c, uint8_t *data, size_t len)
{
    const hr_server_t *srv = conn_shard(c)->srv;
    bool waiting = c->phase == HR_PHASE_HTTP_WAIT || c->phase == HR_PHASE_HTTP_STREAM;
    if (c->u.head.len || waiting) {
        if (c->u.head.len + len > srv->opt.max_header + srv->max_body + 65536) {
            if (c->phase == HR_PHASE_HTTP_STREAM) {
                c->phase = HR_PHASE_CLOSING; /* no error answer inside a streamed body */
                hr_sock_abort(&c->sock);
                return;
            }
            http_fail(c, 431, "too much data while a request is being answered", NULL);
            return;
        }
        if (hr_buf_append(&c->u.head, data, len)) {
            http_fail(c, 503, "out of memory", NULL);
            return;
        }
        if (waiting)
            return; /* pipelined: parsed after the answer */
        process_http(c, c->u.head.data, c->u.head.len, true);
        return;
    }
    process_http(c, data, len, false);
}

static void on_data(hr_sock_t *s, uint8_t *data, size_t len)
{
    hr_conn_t *c = conn_of(s);
    uint32_t now = (uint32_t)now_ms(c);
    const hr_server_t *srv = conn_shard(c)->srv;
    /* The rate bucket was last refilled when data last came (last_rx_ms). */
    if (c->phase == HR_PHASE_OPEN && srv->sec.max_message_rate > 0)
        c->rate_tokens = hr_rate_refill(c->rate_tokens, now - c->last_rx_ms,
                                        srv->sec.max_message_rate, srv->sec.message_burst);
    c->last_rx_ms = now;
    if (c->phase == HR_PHASE_HTTP && !c->u.head.len)
        c->req_start_ms = c->last_rx_ms; /* the first bytes of a request (access log) */
    if (c->phase == HR_PHASE_OPEN)
        feed_ws(c, data, len);
    else if (c->phase == HR_PHASE_HTTP || c->phase == HR_PHASE_HTTP_WAIT ||
             c->phase == HR_PHASE_HTTP_STREAM)
        feed_http(c, data, len);
}

static void on_eof(hr_sock_t *s, int err)
{
    hr_conn_t *c = conn_of(s);
    if (c->phase == HR_PHASE_OPEN && err && c->route->cb.on_error)
        c->route->cb.on_error(c, err);
    c->phase = HR_PHASE_CLOSING;
    detach(c);
}

static const hr_sock_ops_t conn_ops = {
    .on_data = on_data, .on_eof = on_eof, .on_timer = on_timer, .on_free = on_free};

/* ---------------------------------------------------------------- accessors */

void hr_conn_set_data(hr_conn_t *c, void *data)
{
    c->user = data;
}

void *hr_conn_data(const hr_conn_t *c)
{
    return c->user;
}

void *hr_conn_route_data(const hr_conn_t *c)
{
    return c->route->data;
}

int hr_conn_route(const hr_conn_t *c)
{
    return c->route->id;
}

hr_server_t *hr_conn_server(const hr_conn_t *c)
{
    return conn_shard(c)->srv;
}

const char *hr_conn_protocol(const hr_conn_t *c)
{
    return c->protocol >= 0 ? c->route->subprotocols[c->protocol] : NULL;
}

uint64_t hr_conn_id(const hr_conn_t *c)
{
    /* Unique per server: the thread in the high bits, that thread's counter below. */
    return (uint64_t)conn_shard(c)->index << 32 | c->seq;
}

int hr_conn_thread(const hr_conn_t *c)
{
    return conn_shard(c)->index;
}

int hr_conn_subscribe(hr_conn_t *c, const char *topic)
{
    if (!topic || !*topic)
        return HR_EINVAL;
    if (c->phase != HR_PHASE_OPEN)
        return HR_ECLOSED;
    return hr_topics_subscribe(&conn_shard(c)->topics, topic, strlen(topic), c, &c->subs);
}

int hr_conn_unsubscribe(hr_conn_t *c, const char *topic)
{
    return hr_topics_unsubscribe(&conn_shard(c)->topics, topic, strlen(topic), c);
}
