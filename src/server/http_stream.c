/* Server-Sent Events and long-polling on the channels (docs/sse-poll.md), and publishing
 * over HTTP POST, for clients that cannot use WebSocket.
 *
 * A GET subscribes through the same machinery as /pubsub: one hr_sub_t per channel in
 * the shard's tables, linked into the connection's list (so a connection that goes
 * drops them like any other), recovery from history with the position the client
 * brings, presence, the same permission checks and --max-subscriptions. An SSE request
 * then streams every message as an event whose id is the position after it; a long poll
 * answers with what arrived and the new position, and unsubscribes: between two polls
 * the server keeps nothing, so any node (or thread) can take the next one.
 *
 * Each event's payload is the message frame's own bytes, queued by reference: only the
 * "id:" line is private to a subscriber.
 *
 * A request is authenticated as a WebSocket handshake is (a JWT, or the auth webhook,
 * which answers later: the request is deferred and run again with its verdict through
 * hr_http_resume), and an SSE stream or a waiting poll of a user counts against
 * --max-connections-per-user while it lasts, in Redis too with --redis (another wait).
 * An SSE reader that falls behind is dropped (slow=disconnect), or, in a drop-oldest or
 * drop-newest namespace, its stream ends cleanly after what is queued: messages are not
 * skipped inside a stream, since a later event id would hide the loss from the
 * reconnection (Last-Event-ID) that recovers them from history. */
#include "server/http_stream.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/grant.h"
#include "base/alloc.h"
#include "base/log.h"
#include "broker/channel.h"
#include "cluster/cluster_limits.h"
#include "herald/error.h"
#include "http/http_upgrade.h"
#include "net/outq.h"
#include "proto/json_proto.h"
#include "proto/position.h"

#define SSE_PING_MS 15000
#define POLL_TIMEOUT_DEFAULT_S 25
#define POLL_TIMEOUT_MAX_S 60
#define MAX_CHANNELS 64 /* per request, below --max-subscriptions when that is smaller */
#define CORS_METHODS "GET, POST, OPTIONS"

typedef struct hs hs_t;

/* What a request holds for its stream: the grant and the --max-connections-per-user
 * counts, carried across the waits for the auth webhook and Redis, then the stream's
 * until it ends. */
typedef struct held {
    hr_auth_grant_t *grant; /* NULL: anonymous */
    uint32_t user_limit;    /* srv->per_user handle (limits.h), 0: not counted */
    uint8_t user_redis;     /* HR_CLUSTER_USER_* */
} held_t;

typedef struct chan {
    hs_t *hs;
    hr_sub_t *sub; /* valid while the request is live (the connection owns its list) */
    bool pattern;
    bool since; /* the client brought a position for it */
    bool known; /* offset and epoch known: answered, or brought by the client */
    bool recovered;
    uint64_t since_offset, offset;
    char epoch[HR_POSITION_EPOCH_MAX + 1];
    size_t len;
    char *name; /* NUL-terminated, in the request's allocation after ch[] */
} chan_t;

struct hs {
    hr_http_token_t tok;
    hr_shard_t *sh;
    uint64_t client; /* hr_conn_id: presence */
    held_t held;
    bool poll;
    bool closed; /* on_close ran or the request finished: free once no answer is due */
    bool ready;  /* every subscription answered */
    bool any_since, all_recovered;
    bool overflow; /* SSE: more came before the subscribed event than --max-backlog */
    bool ending;   /* SSE: fell behind in a drop-* namespace: ends after what is queued */
    int pending;   /* subscription answers still to come */
    uint32_t timeout_ms;
    hr_timer_t timer; /* SSE: keep-alive and token expiry; poll: timeout, or answer now */
    hr_buf_t pre;     /* SSE: events before ready; poll: the messages, comma-separated */
    hr_buf_t head;    /* SSE: the private part of the event being written, kept between */
    size_t nmsgs;
    size_t nch;
    chan_t ch[];
};

/* ---------------------------------------------------------------- answers */

static void append_error(hr_buf_t *b, const char *code, const char *msg)
{
    hr_buf_append_str(b, "{\"type\":\"error\",\"code\":\"");
    hr_buf_append_str(b, code);
    hr_buf_append_str(b, "\",\"message\":");
    hr_jp_append_string(b, msg, strlen(msg));
    hr_buf_append_str(b, "}");
}

/* CORS headers for an allowed Origin (check_origin), or "" without one. */
typedef struct cors {
    char h[600];
} cors_t;

static void reply_error_ex(hr_http_ctx_t *x, const cors_t *cors, int status, const char *code,
                           const char *msg, const char *more)
{
    hr_buf_t b;
    hr_buf_init(&b);
    append_error(&b, code, msg);
    char extra[800];
    snprintf(extra, sizeof(extra), "%s%s%s", cors->h,
             status == 401 ? "WWW-Authenticate: Bearer realm=\"herald\"\r\n" : "",
             more ? more : "");
    hr_http_reply(x, status, "application/json", b.data, b.len, extra);
    hr_buf_deinit(&b);
}

static void reply_error(hr_http_ctx_t *x, const cors_t *cors, int status, const char *code,
                        const char *msg)
{
    reply_error_ex(x, cors, status, code, msg, NULL);
}

/* The Origin policy of the WebSocket handshake (--allowed-origins): a request without
 * Origin passes, an allowed one gets Access-Control-Allow-Origin, others are refused. */
static bool check_origin(hr_http_ctx_t *x, cors_t *cors)
{
    cors->h[0] = 0;
    const hr_http_header_t *o = hr_http_find_header(x->req, "Origin");
    if (!o)
        return true;
    const hr_http_header_t *h = hr_http_find_header(x->req, "Host");
    hr_server_t *srv = conn_shard(x->c)->srv;
    bool ok =
        o->value_len < 256 &&
        hr_http_origin_allowed(o->value, o->value_len, h ? h->value : NULL, h ? h->value_len : 0,
                               (const char *const *)srv->origins, srv->norigins);
    for (size_t i = 0; ok && i < o->value_len; i++)
        ok = (unsigned char)o->value[i] >= 0x20 && o->value[i] != 0x7f;
    if (!ok) {
        reply_error(x, cors, 403, "not_allowed", "origin not allowed");
        return false;
    }
    snprintf(cors->h, sizeof(cors->h), "Access-Control-Allow-Origin: %.*s\r\nVary: Origin\r\n",
             (int)o->value_len, o->value);
    return true;
}

static bool is_method(const hr_http_ctx_t *x, const char *m)
{
    size_t n = strlen(m);
    return x->req->method_len == n && memcmp(x->req->method, m, n) == 0;
}

/* ---------------------------------------------------------------- authentication */

/* The request's bearer token: Authorization first, then ?token= (EventSource cannot set
 * headers). Decoded into buf; its length, 0 for none, -1 when malformed. */
static ssize_t find_token(hr_http_ctx_t *x, char *buf, size_t cap)
{
    const hr_http_header_t *h = hr_http_find_header(x->req, "Authorization");
    if (h && h->value_len > 7 && strncasecmp(h->value, "Bearer ", 7) == 0) {
        size_t n = h->value_len - 7;
        if (n > cap)
            return -1;
        memcpy(buf, h->value + 7, n);
        return (ssize_t)n;
    }
    size_t pos = 0;
    hr_slice_t name, value;
    while (hr_query_next(x->query, x->query_len, &pos, &name, &value))
        if (name.len == 5 && memcmp(name.ptr, "token", 5) == 0) {
            ssize_t n = hr_query_decode(value.ptr, value.len, buf, cap);
            return n < 0 ? -1 : n;
        }
    return 0;
}

/* A request waiting for the auth webhook or Redis: hr_http_resume runs it again with
 * what the wait brought. */
typedef struct wait {
    hr_http_token_t tok;
    hr_shard_t *sh;
    bool poll;
    int refused; /* the webhook's refusal (401, 403, 503), 0: none */
    const char *why;
    bool over; /* Redis: the user is at --max-connections-per-user on the live nodes */
    held_t held;
} wait_t;

/* Gives back the user's connection slots (the grant stays: it names the user). */
static void held_release(hr_shard_t *sh, held_t *h)
{
    if (h->user_limit && h->user_redis >= HR_CLUSTER_USER_LOCAL)
        hr_cluster_limits_release(sh, h->grant->user);
    hr_limit_release(&sh->srv->per_user, h->user_limit);
    h->user_limit = 0;
    h->user_redis = HR_CLUSTER_USER_NONE;
}

static void wait_free(wait_t *w)
{
    held_release(w->sh, &w->held);
    hr_auth_grant_free(w->held.grant);
    hr_free(w);
}

static void on_resume(hr_http_ctx_t *x, void *data);

/* The webhook's verdict (session.c): the request runs again with it. */
static void on_webhook(void *ctx, int status, hr_auth_grant_t *g, const char *why)
{
    wait_t *w = ctx;
    w->refused = status;
    w->why = why;
    w->held.grant = g;
    if (hr_http_resume(w->tok, on_resume, w) != 0)
        wait_free(w); /* the client left meanwhile */
}

/* --auth (docs/security.md) for one request: 0 with *g (NULL: anonymous), -1 when
 * answered (401, or 503 when the webhook cannot be asked), 1 when deferred until the auth
 * webhook answers. The grant is the request's own: a keep-alive connection carries none
 * from one request to the next. */
static int authenticate(hr_http_ctx_t *x, const cors_t *cors, bool poll, hr_auth_grant_t **g)
{
    hr_server_t *srv = conn_shard(x->c)->srv;
    *g = NULL;
    if (srv->sec.auth == HR_AUTH_OFF)
        return 0;
    char tok[8192];
    ssize_t n = find_token(x, tok, sizeof(tok));
    if (n == 0 && srv->sec.auth == HR_AUTH_OPTIONAL)
        return 0;
    const char *why = n < 0 ? "malformed token" : "authentication required";
    const hr_jwt_keys_t *k = &srv->sec.jwt;
    if (n > 0 && (k->secret || k->pub) &&
        hr_jwt_verify(tok, (size_t)n, k, (int64_t)(hr_loop_wall_ms() / 1000), g, &why) != 0)
        n = 0; /* refused below with why */
    if (n > 0 && srv->sec.auth_webhook) {
        /* As at a WebSocket handshake: the token (verified if keys are configured) goes
         * to the backend, whose answer decides and names the user. */
        hr_auth_grant_free(*g);
        *g = NULL;
        wait_t *w = hr_calloc(1, sizeof(*w));
        if (w) {
            w->sh = conn_shard(x->c);
            w->poll = poll;
        }
        if (!w || hr_session_ask_webhook(x->c, x->req, tok, (size_t)n, on_webhook, w) != 0) {
            hr_free(w);
            reply_error(x, cors, 503, "unavailable", "authentication backend unavailable");
            return -1;
        }
        w->tok = hr_http_defer(x);
        return 1;
    }
    if (n > 0 && *g)
        return 0;
    if (n > 0)
        why = "tokens on this endpoint must be JWTs (--jwt-secret or --jwt-public-key)";
    reply_error(x, cors, 401, "unauthorized", why);
    return -1;
}

/* A request run again after a wait: the webhook's refusal is answered (-1, w freed);
 * else 0 with what w held moved to *h (w freed). */
static int take_wait(hr_http_ctx_t *x, const cors_t *cors, wait_t *w, held_t *h, bool *over)
{
    if (w->refused) {
        reply_error(x, cors, w->refused,
                    w->refused == 401   ? "unauthorized"
                    : w->refused == 403 ? "not_allowed"
                                        : "unavailable",
                    w->why ? w->why : "refused");
        wait_free(w);
        return -1;
    }
    *h = w->held;
    *over = w->over;
    hr_free(w);
    return 0;
}

/* Redis' verdict on the user's count (cluster_limits.h): the request runs again. */
static void on_cluster_user(void *ctx, int verdict)
{
    wait_t *w = ctx;
    w->held.user_redis = verdict > 0   ? HR_CLUSTER_USER_COUNTED
                         : verdict < 0 ? HR_CLUSTER_USER_LOCAL
                                       : HR_CLUSTER_USER_NONE;
    w->over = verdict == 0;
    if (hr_http_resume(w->tok, on_resume, w) != 0)
        wait_free(w);
}

/* --max-connections-per-user: a stream (or waiting poll) of an authenticated user counts
 * as one of the user's connections, as a WebSocket does, here and with --redis in Redis.
 * 0: counted in *h (or nothing to count), 1: deferred until Redis answers (*h moved into
 * the wait), -1: refused (503) and answered. over: Redis said so already. */
static int count_user(hr_http_ctx_t *x, const cors_t *cors, bool poll, held_t *h, bool over)
{
    hr_shard_t *sh = conn_shard(x->c);
    hr_server_t *srv = sh->srv;
    int max = srv->sec.max_connections_per_user;
    const char *user = h->grant ? h->grant->user : NULL;
    if (max <= 0 || !user || !*user)
        return 0;
    int rc = over ? HR_ENOBUFS : 0;
    if (!rc && !h->user_limit)
        rc = hr_limit_acquire(&srv->per_user, user, strlen(user), max, &h->user_limit);
    if (rc) {
        held_release(sh, h);
        if (rc == HR_ENOBUFS)
            sh->stats.limit_rejections[HR_LIMIT_MAX_CONN_PER_USER]++;
        reply_error_ex(x, cors, 503, rc == HR_ENOBUFS ? "limit_exceeded" : "internal",
                       rc == HR_ENOBUFS ? "too many connections for this user" : "out of memory",
                       rc == HR_ENOBUFS ? "Retry-After: 5\r\n" : NULL);
        return -1;
    }
    if (h->user_redis != HR_CLUSTER_USER_NONE || !hr_cluster_limits_active(srv))
        return 0;
    wait_t *w = hr_calloc(1, sizeof(*w));
    if (!w || hr_cluster_limits_acquire(sh, user, max, on_cluster_user, w) != 0) {
        hr_free(w);
        h->user_redis = HR_CLUSTER_USER_LOCAL; /* Redis unreachable: the local count decides */
        return 0;
    }
    w->sh = sh;
    w->poll = poll;
    h->user_redis = HR_CLUSTER_USER_ASKED;
    w->held = *h;
    *h = (held_t){0};
    w->tok = hr_http_defer(x);
    return 1;
}

/* ---------------------------------------------------------------- request parsing */

/* Reads channel=, since= (or Last-Event-ID) and timeout= into a new hs_t (NULL and
 * answered on error). */
static hs_t *parse_request(hr_http_ctx_t *x, const cors_t *cors, bool poll)
{
    hr_shard_t *sh = conn_shard(x->c);
    size_t max = (size_t)sh->srv->sec.max_subscriptions;
    if (max > MAX_CHANNELS || max == 0)
        max = MAX_CHANNELS;
    size_t pos = 0, n = 0, names = 0;
    hr_slice_t name, value, since = {0};
    bool have_since = false;
    long timeout = POLL_TIMEOUT_DEFAULT_S;
    while (hr_query_next(x->query, x->query_len, &pos, &name, &value)) {
        if (name.len == 7 && memcmp(name.ptr, "channel", 7) == 0) {
            n++;
            names += (value.len < HR_JP_CHANNEL_MAX ? value.len : HR_JP_CHANNEL_MAX) + 1;
        } else if (name.len == 5 && memcmp(name.ptr, "since", 5) == 0) {
            since = value;
            have_since = true;
        } else if (poll && name.len == 7 && memcmp(name.ptr, "timeout", 7) == 0) {
            char t[8];
            ssize_t tl = hr_query_decode(value.ptr, value.len, t, sizeof(t) - 1);
            char *end = NULL;
            if (tl > 0) {
                t[tl] = 0;
                timeout = strtol(t, &end, 10);
            }
            if (tl <= 0 || *end || timeout < 0 || timeout > POLL_TIMEOUT_MAX_S) {
                reply_error(x, cors, 400, "bad_request", "timeout must be 0..60 seconds");
                return NULL;
            }
        }
    }
    if (n == 0) {
        reply_error(x, cors, 400, "bad_request", "no channel: add ?channel=NAME");
        return NULL;
    }
    if (n > max) {
        sh->stats.limit_rejections[HR_LIMIT_MAX_SUBSCRIPTIONS]++;
        reply_error(x, cors, 400, "limit_exceeded", "too many channels");
        return NULL;
    }
    /* One allocation: the request, its channels, their names (decoding only shrinks). */
    hs_t *hs = hr_calloc(1, sizeof(*hs) + n * sizeof(chan_t) + names);
    char *pool = hs ? (char *)&hs->ch[n] : NULL;
    if (!hs) {
        reply_error(x, cors, 503, "internal", "out of memory");
        return NULL;
    }
    hs->poll = poll;
    hs->timeout_ms = (uint32_t)timeout * 1000;
    hs->sh = sh;
    hr_buf_init(&hs->pre);
    pos = 0;
    while (hr_query_next(x->query, x->query_len, &pos, &name, &value)) {
        if (name.len != 7 || memcmp(name.ptr, "channel", 7) != 0)
            continue;
        chan_t *ch = &hs->ch[hs->nch];
        ch->name = pool;
        ssize_t l = hr_query_decode(value.ptr, value.len, ch->name,
                                    value.len < HR_JP_CHANNEL_MAX ? value.len : HR_JP_CHANNEL_MAX);
        ch->pattern = l > 0 && hr_channel_is_pattern(ch->name, (size_t)l);
        if (l <= 0 || (ch->pattern ? !hr_channel_pattern_valid(ch->name, (size_t)l)
                                   : !hr_channel_name_valid(ch->name, (size_t)l))) {
            hr_free(hs);
            reply_error(x, cors, 400, "bad_request", "invalid channel name");
            return NULL;
        }
        ch->len = (size_t)l;
        ch->name[l] = 0;
        ch->hs = hs;
        bool dup = false;
        for (size_t i = 0; i < hs->nch; i++)
            dup |= hs->ch[i].len == ch->len && memcmp(hs->ch[i].name, ch->name, ch->len) == 0;
        if (!dup) {
            hs->nch++;
            pool += ch->len + 1;
        }
    }
    /* The position to resume from: Last-Event-ID (an EventSource reconnecting) wins. */
    char sbuf[8192];
    ssize_t slen = 0;
    const hr_http_header_t *lei = hr_http_find_header(x->req, "Last-Event-ID");
    if (lei && lei->value_len) {
        if (lei->value_len > sizeof(sbuf)) {
            slen = -1;
        } else {
            memcpy(sbuf, lei->value, lei->value_len);
            slen = (ssize_t)lei->value_len;
        }
    } else if (have_since) {
        slen = hr_query_decode(since.ptr, since.len, sbuf, sizeof(sbuf));
    }
    hr_position_entry_t e[MAX_CHANNELS];
    int ne = slen < 0 ? HR_EINVAL : hr_position_parse(sbuf, (size_t)slen, e, MAX_CHANNELS);
    if (ne < 0) {
        hr_free(hs);
        reply_error(x, cors, 400, "bad_request",
                    "invalid position: expected channel:offset:epoch entries joined by ','");
        return NULL;
    }
    hs->all_recovered = true;
    for (int i = 0; i < ne; i++)
        for (size_t k = 0; k < hs->nch; k++) {
            chan_t *ch = &hs->ch[k];
            if (ch->pattern || ch->len != e[i].channel.len ||
                memcmp(ch->name, e[i].channel.ptr, ch->len) != 0)
                continue;
            ch->since = ch->known = true;
            ch->since_offset = ch->offset = e[i].offset;
            memcpy(ch->epoch, e[i].epoch.ptr, e[i].epoch.len);
            ch->epoch[e[i].epoch.len] = 0;
            hs->any_since = true;
        }
    return hs;
}

/* ---------------------------------------------------------------- life cycle */

static void hs_free(hs_t *hs)
{
    hr_loop_timer_stop(&hs->sh->loop, &hs->timer);
    held_release(hs->sh, &hs->held);
    hr_auth_grant_free(hs->held.grant);
    hr_buf_deinit(&hs->pre);
    hr_buf_deinit(&hs->head);
    hr_free(hs);
}

/* The request is live: its connection still streams its answer. */
static bool live(const hs_t *hs)
{
    const hr_conn_t *c = hs->tok.c;
    return !hs->closed && c && c->seq == hs->tok.seq && c->phase == HR_PHASE_HTTP_STREAM;
}

static void on_close(void *data)
{
    hs_t *hs = data;
    /* The connection dropped the subscriptions already (they are in its list). */
    hs->closed = true;
    held_release(hs->sh, &hs->held); /* the user's slot is free as the stream ends */
    if (hs->poll)
        hs->sh->stats.poll_waiting--;
    else
        hs->sh->stats.sse_open--;
    hr_loop_timer_stop(&hs->sh->loop, &hs->timer);
    if (!hs->pending)
        hs_free(hs);
}

/* Ends a live request ourselves: unsubscribes, ends the body, frees when nothing is due. */
static void finish(hs_t *hs)
{
    for (size_t i = 0; i < hs->nch; i++)
        if (hs->ch[i].sub) {
            hr_channels_unsubscribe(hs->sh, hs->ch[i].sub, hs->client);
            hs->ch[i].sub = NULL;
        }
    hr_http_stream_end(hs->tok); /* no on_close after this */
    on_close(hs);
}

/* Appends the position string of every channel whose position is known. */
static int append_position(hr_buf_t *b, const hs_t *hs)
{
    size_t mark = b->len;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < hs->nch; i++) {
        const chan_t *ch = &hs->ch[i];
        if (!ch->pattern && ch->known)
            rc = hr_position_append(b, mark, hr_slice(ch->name, ch->len), ch->offset,
                                    hr_slice(ch->epoch, strlen(ch->epoch)));
    }
    if (rc)
        b->len = mark;
    return rc;
}

/* ---------------------------------------------------------------- long poll */

static void poll_answer(hs_t *hs)
{
    hr_buf_t b;
    hr_buf_init(&b);
    hr_buf_append_str(&b, "{\"messages\":[");
    if (hs->pre.len)
        hr_buf_append(&b, hs->pre.data, hs->pre.len);
    hr_buf_append_str(&b, "],\"position\":");
    hr_buf_t p;
    hr_buf_init(&p);
    append_position(&p, hs);
    hr_jp_append_string(&b, p.data ? (const char *)p.data : "", p.len);
    hr_buf_deinit(&p);
    int rc = hr_buf_appendf(&b, ",\"recovered\":%s}", hs->all_recovered ? "true" : "false");
    if (rc == 0)
        hr_http_stream_write(hs->tok, b.data, b.len);
    hr_buf_deinit(&b);
    finish(hs);
}

static void on_timer(hr_timer_t *t)
{
    hs_t *hs = (hs_t *)((char *)t - offsetof(hs_t, timer));
    if (!live(hs))
        return;
    if (hs->poll) {
        poll_answer(hs);
        return;
    }
    if (hs->ending) {
        finish(hs);
        return;
    }
    uint64_t wall = hr_loop_wall_ms();
    if (hs->held.grant && hs->held.grant->exp && (uint64_t)hs->held.grant->exp * 1000 <= wall) {
        static const char ev[] = "event: error\ndata: {\"type\":\"error\",\"code\":\"token_"
                                 "expired\",\"message\":\"token expired\"}\n\n";
        hr_http_stream_write(hs->tok, ev, sizeof(ev) - 1);
        finish(hs);
        return;
    }
    /* A stream with output waiting past --max-backlog is not idle: no ping, which would
     * close it as a slow consumer whatever the namespace's slow policy. */
    if (hr_outq_backlog(&hs->tok.c->sock.outq) <= hs->sh->srv->opt.max_backlog &&
        hr_http_stream_write(hs->tok, ": ping\n\n", 8) != 0)
        return; /* closing: on_close follows */
    uint32_t ping = hs->sh->srv->opt.ping_interval_ms;
    uint64_t next = ping && ping < SSE_PING_MS ? ping : SSE_PING_MS;
    if (hs->held.grant && hs->held.grant->exp) {
        uint64_t at = (uint64_t)hs->held.grant->exp * 1000;
        if (at - wall < next)
            next = at - wall;
    }
    hr_loop_timer_start(&hs->sh->loop, &hs->timer, next ? next : 1);
}

/* ---------------------------------------------------------------- delivery */

/* Writes (or, before the subscribed event, keeps) one SSE event: "event:" line if
 * named, "id:" line with the position for a message, the payload as one data line. */
static void sse_event(hs_t *hs, const char *event, bool with_id, hr_frame_t *f, hr_slice_t chan)
{
    hr_shard_t *sh = hs->sh;
    if (hs->ready &&
        (hs->ending ||
         (hr_outq_backlog(&hs->tok.c->sock.outq) > sh->srv->opt.max_backlog &&
          hr_channels_namespace(sh->srv, chan.ptr, chan.len)->slow != HR_SLOW_DISCONNECT))) {
        /* Behind in a drop-* namespace: nothing more is queued, and the stream ends after
         * what is (on the timer: a fan-out may be walking this subscription's list). The
         * client reconnects with the id of the last event it read and recovers the rest
         * from history; skipping messages inside the stream would hide them from that. */
        if (!hs->ending) {
            hs->ending = true;
            sh->stats.limit_rejections[HR_LIMIT_MAX_BACKLOG]++;
            hr_loop_timer_start(&sh->loop, &hs->timer, 1);
        }
        if (with_id)
            sh->stats.dropped_messages++;
        return;
    }
    const uint8_t *payload = f->plain->data + f->hdr_len;
    size_t plen = f->payload_len;
    /* The head is built in the request's own buffer, reused from event to event: no
     * allocation per recipient once it has grown to an event's head. */
    hr_buf_t *head = &hs->head;
    head->len = 0;
    int rc = 0;
    if (event)
        rc = hr_buf_appendf(head, "event: %s\n", event);
    if (rc == 0 && with_id) {
        rc = hr_buf_append_str(head, "id: ");
        if (rc == 0)
            rc = append_position(head, hs);
        if (rc == 0)
            rc = hr_buf_append(head, "\n", 1);
    }
    if (rc == 0)
        rc = hr_buf_append_str(head, "data: ");
    /* JSON has line breaks only between tokens, where a space means the same: a payload
     * with any is sent as a private copy on one line (SSE ends a data line there). */
    bool flat = !memchr(payload, '\n', plen) && !memchr(payload, '\r', plen);
    if (rc == 0 && (!flat || !hs->ready)) {
        size_t at = head->len;
        rc = hr_buf_append(head, payload, plen);
        for (size_t i = at; rc == 0 && i < head->len; i++)
            if (head->data[i] == '\n' || head->data[i] == '\r')
                head->data[i] = ' ';
        if (rc == 0)
            rc = hr_buf_append(head, "\n\n", 2);
    }
    if (rc != 0)
        return;
    if (!hs->ready) {
        /* Ended when ready, not here: a fan-out may be walking this subscription's list. */
        if (hs->overflow || hs->pre.len + head->len > hs->sh->srv->opt.max_backlog ||
            hr_buf_append(&hs->pre, head->data, head->len) != 0)
            hs->overflow = true;
        else if (with_id)
            hs->sh->stats.stream_messages_out++;
    } else if (flat) {
        if (hr_http_stream_write_shared(hs->tok, head->data, head->len, f->plain, f->hdr_len,
                                        f->hdr_len + plen, "\n\n", 2) == 0)
            hs->sh->stats.stream_messages_out++;
    } else if (hr_http_stream_write(hs->tok, head->data, head->len) == 0) {
        hs->sh->stats.stream_messages_out++;
    }
    if (head->cap > 4096)
        hr_buf_deinit(head); /* a large private copy: not kept for the next event */
}

/* Records a message of channel ch (NULL: came through a pattern) and passes it on. */
static void take_message(hs_t *hs, chan_t *ch, hr_frame_t *f, uint64_t offset, const char *epoch,
                         hr_slice_t chan)
{
    if (ch) {
        ch->offset = offset;
        snprintf(ch->epoch, sizeof(ch->epoch), "%s", epoch);
        ch->known = true;
    }
    if (!hs->poll) {
        sse_event(hs, NULL, true, f, chan);
        return;
    }
    if (hs->pre.len > hs->sh->srv->opt.max_backlog)
        return; /* answered soon (armed below); the rest waits for the next poll */
    if (hs->nmsgs && hr_buf_append(&hs->pre, ",", 1) != 0)
        return;
    const uint8_t *payload = f->plain->data + f->hdr_len;
    if (hr_buf_append(&hs->pre, payload, f->payload_len) == 0)
        hs->nmsgs++;
    if (hs->ready && hs->nmsgs == 1) {
        /* Answer in the next loop iteration, with whatever else arrives in this one; not
         * now: a fan-out may be walking the list this subscription is in. */
        hr_loop_timer_start(&hs->sh->loop, &hs->timer, 1);
    }
}

void hr_http_stream_deliver(hr_sub_t *sub, hr_frame_t *f, const hr_chan_msg_t *m)
{
    hs_t *hs = sub->owner;
    if (!live(hs))
        return;
    if (!m->offset) {
        if (hs->poll)
            return; /* presence events are for streams */
        const char *p = (const char *)f->plain->data + f->hdr_len;
        bool leave = f->payload_len > 15 && memcmp(p, "{\"type\":\"leave\"", 15) == 0;
        sse_event(hs, leave ? "leave" : "join", false, f, hr_slice(m->name, m->name_len));
        return;
    }
    chan_t *ch = NULL;
    for (size_t i = 0; i < hs->nch && !ch; i++)
        if (hs->ch[i].sub == sub && !hs->ch[i].pattern)
            ch = &hs->ch[i];
    take_message(hs, ch, f, m->offset, m->epoch, hr_slice(m->name, m->name_len));
}

/* ---------------------------------------------------------------- subscribe */

static void sse_ready(hs_t *hs)
{
    if (hs->overflow) {
        finish(hs); /* fell behind before it started: the client reconnects */
        return;
    }
    hr_buf_t b;
    hr_buf_init(&b);
    hr_buf_append_str(&b, "event: subscribed\ndata: {\"type\":\"subscribed\",\"channels\":[");
    for (size_t i = 0; i < hs->nch; i++) {
        const chan_t *ch = &hs->ch[i];
        hr_buf_append_str(&b, i ? ",{\"channel\":" : "{\"channel\":");
        hr_jp_append_string(&b, ch->name, ch->len);
        if (ch->pattern) {
            hr_buf_append_str(&b, ",\"pattern\":true}");
            continue;
        }
        hr_buf_appendf(&b, ",\"offset\":%llu,\"epoch\":", (unsigned long long)ch->offset);
        hr_jp_append_string(&b, ch->epoch, strlen(ch->epoch));
        hr_buf_appendf(&b, ",\"recovered\":%s}", ch->since && ch->recovered ? "true" : "false");
    }
    int rc = hr_buf_append_str(&b, "]}\n\n");
    if (rc == 0 && hs->pre.len)
        rc = hr_buf_append(&b, hs->pre.data, hs->pre.len);
    hr_buf_deinit(&hs->pre);
    if (rc != 0 || hr_http_stream_write(hs->tok, b.data, b.len) != 0) {
        hr_buf_deinit(&b);
        if (rc)
            finish(hs);
        return;
    }
    hr_buf_deinit(&b);
    uint32_t ping = hs->sh->srv->opt.ping_interval_ms;
    hr_loop_timer_start(&hs->sh->loop, &hs->timer, ping && ping < SSE_PING_MS ? ping : SSE_PING_MS);
    if (hs->held.grant && hs->held.grant->exp)
        on_timer(&hs->timer); /* arms the earlier of ping and expiry (writes one ping) */
}

static void became_ready(hs_t *hs)
{
    hs->ready = true;
    if (!hs->poll) {
        sse_ready(hs);
        return;
    }
    /* A poll answers at once without a position (it learns one), with news or a gap. */
    if (!hs->any_since || hs->nmsgs || !hs->all_recovered || hs->timeout_ms == 0)
        poll_answer(hs);
    else
        hr_loop_timer_start(&hs->sh->loop, &hs->timer, hs->timeout_ms);
}

static void on_subscribed(void *ctx, const hr_chan_sub_result_t *r)
{
    chan_t *ch = ctx;
    hs_t *hs = ch->hs;
    /* This answer stays counted in pending until the end: nothing below frees hs. */
    if (!hs->closed && live(hs)) {
        if (r->err) {
            if (!hs->poll) {
                static const char ev[] =
                    "event: error\ndata: {\"type\":\"error\",\"code\":\"internal\","
                    "\"message\":\"could not subscribe\"}\n\n";
                hr_http_stream_write(hs->tok, ev, sizeof(ev) - 1);
            }
            finish(hs);
        } else {
            ch->recovered = ch->since && r->recovered;
            if (ch->since && !ch->recovered)
                hs->all_recovered = false;
            /* Missed messages (consecutive offsets up to top), in order, before any live
             * one (held back until now). */
            uint64_t first = r->top - r->nframes + 1;
            for (size_t i = 0; i < r->nframes && !hs->closed; i++)
                take_message(hs, ch, r->frames[i], first + i, r->epoch,
                             hr_slice(ch->name, ch->len));
            if (!hs->closed) {
                ch->known = true;
                ch->offset = r->top;
                snprintf(ch->epoch, sizeof(ch->epoch), "%s", r->epoch);
                ch->sub->last_offset = r->top;
                ch->sub->state = HR_SUB_LIVE;
            }
        }
    }
    if (--hs->pending)
        return;
    if (hs->closed)
        hs_free(hs);
    else if (live(hs))
        became_ready(hs);
}

/* Subscribes every channel of a request whose stream has started. */
static void subscribe_all(hs_t *hs, hr_conn_t *c)
{
    hr_shard_t *sh = hs->sh;
    const char *user = hs->held.grant ? hs->held.grant->user : NULL;
    hs->pending = 1; /* the loop's own: no answer completes the request meanwhile */
    for (size_t i = 0; i < hs->nch; i++) {
        chan_t *ch = &hs->ch[i];
        hr_topics_t *t = ch->pattern ? &sh->chan_patterns : &sh->chan_subs;
        if (hr_topics_subscribe(t, ch->name, ch->len, hs, &c->subs) != 0) {
            hs->pending--;
            finish(hs);
            return;
        }
        ch->sub = hr_topics_last_of(&c->subs);
        ch->sub->kind = HR_SUB_HTTP;
        if (ch->pattern) {
            ch->sub->state = HR_SUB_LIVE;           /* live only: a pattern has no offsets */
            hr_channels_pattern_added(sh, ch->sub); /* --redis: PSUBSCRIBE */
            continue;
        }
        ch->sub->state = HR_SUB_PENDING;
        hs->pending++;
        if (hr_channels_subscribe(sh, ch->sub, ch->since, ch->since_offset,
                                  ch->since ? ch->epoch : NULL, hs->client, user, on_subscribed,
                                  ch) != 0) {
            hs->pending -= 2;
            finish(hs);
            return;
        }
    }
    if (--hs->pending == 0) {
        if (hs->closed)
            hs_free(hs);
        else
            became_ready(hs);
    }
}

/* ---------------------------------------------------------------- GET */

/* w: NULL the first time, else the wait after which the request runs again. */
static void handle_get(hr_http_ctx_t *x, const cors_t *cors, bool poll, wait_t *w)
{
    hr_shard_t *sh = conn_shard(x->c);
    held_t held = {0};
    bool over = false;
    if (w) {
        if (take_wait(x, cors, w, &held, &over) != 0)
            return;
    } else {
        if (poll)
            sh->stats.poll_requests++;
        else
            sh->stats.sse_requests++;
        if (authenticate(x, cors, poll, &held.grant) != 0)
            return; /* refused, or run again once the webhook answers */
    }
    hs_t *hs = parse_request(x, cors, poll);
    if (!hs) {
        held_release(sh, &held);
        hr_auth_grant_free(held.grant);
        return;
    }
    hs->held = held;
    hs->client = hr_conn_id(x->c);
    hr_timer_init(&hs->timer, on_timer);
    const hr_auth_grant_t *g = held.grant;
    for (size_t i = 0; i < hs->nch; i++)
        if (!hr_auth_may_subscribe(g, &sh->srv->namespaces, hs->ch[i].name, hs->ch[i].len)) {
            hs_free(hs);
            reply_error(x, cors, 403, "not_allowed", "subscribe to this channel not allowed");
            return;
        }
    if (count_user(x, cors, poll, &hs->held, over) != 0) {
        hs_free(hs); /* refused, or run again once Redis answers (the wait took the count) */
        return;
    }
    char extra[800];
    snprintf(extra, sizeof(extra), "Cache-Control: no-cache\r\n%s%s", cors->h,
             poll ? "" : "X-Accel-Buffering: no\r\n");
    hs->tok = hr_http_stream_start(x, 200, poll ? "application/json" : "text/event-stream", extra,
                                   on_close, hs);
    if (!hs->tok.c) {
        hs_free(hs);
        return;
    }
    if (poll)
        sh->stats.poll_waiting++;
    else
        sh->stats.sse_open++;
    /* The reconnection delay EventSource uses; the blank line dispatches nothing. */
    if (!poll)
        hr_http_stream_write(hs->tok, "retry: 3000\n\n", 13);
    subscribe_all(hs, x->c);
}

/* ---------------------------------------------------------------- POST: publish */

typedef struct pub_op {
    hr_http_token_t tok;
    char cors[600];
    json_t *id; /* NULL: none */
} pub_op_t;

static void on_published(void *ctx, int err, uint64_t offset, const char *epoch)
{
    pub_op_t *o = ctx;
    hr_buf_t b;
    hr_buf_init(&b);
    int status = 200;
    if (err == HR_EAGAIN) {
        status = 503;
        append_error(&b, "unavailable", "server restarting: publish again");
    } else if (err == HR_CHAN_EUNKNOWN) {
        status = 503;
        append_error(&b, "unavailable",
                     "Redis did not answer: the publish may or may not have happened; publish "
                     "again to be sure");
    } else if (err) {
        status = 500;
        append_error(&b, "internal", "could not publish");
    } else {
        hr_buf_append_str(&b, "{\"type\":\"ok\"");
        if (o->id) {
            char *id = json_dumps(o->id, JSON_COMPACT | JSON_ENCODE_ANY);
            if (id) {
                hr_buf_append_str(&b, ",\"id\":");
                hr_buf_append_str(&b, id);
                free(id);
            }
        }
        hr_buf_appendf(&b, ",\"offset\":%llu,\"epoch\":", (unsigned long long)offset);
        hr_jp_append_string(&b, epoch, strlen(epoch));
        hr_buf_append_str(&b, "}");
    }
    hr_http_reply_token(o->tok, status, "application/json", b.data, b.len, o->cors);
    hr_buf_deinit(&b);
    json_decref(o->id);
    hr_free(o);
}

static void handle_post(hr_http_ctx_t *x, const cors_t *cors, wait_t *w)
{
    hr_shard_t *sh = conn_shard(x->c);
    hr_auth_grant_t *g;
    held_t held;
    bool over;
    if (w) {
        if (take_wait(x, cors, w, &held, &over) != 0)
            return;
        g = held.grant;
        (void)over; /* a publish holds no connection slot */
    } else if (authenticate(x, cors, false, &g) != 0) {
        return; /* refused, or run again once the webhook answers */
    }
    json_error_t jerr;
    json_t *root = json_loadb((const char *)x->body, x->body_len, 0, &jerr);
    json_t *chan = root ? json_object_get(root, "channel") : NULL;
    json_t *data = root ? json_object_get(root, "data") : NULL;
    json_t *id = root ? json_object_get(root, "id") : NULL;
    const char *name = json_is_string(chan) ? json_string_value(chan) : NULL;
    size_t len = name ? json_string_length(chan) : 0;
    const char *why =
        !root                                               ? "body is not valid JSON"
        : !json_is_object(root)                             ? "body must be a JSON object"
        : !name                                             ? "channel (a string) is required"
        : !data                                             ? "data is required"
        : id && !json_is_string(id) && !json_is_integer(id) ? "id must be a string or an integer"
        : !hr_channel_name_valid(name, len) ? "invalid channel name (no patterns here)"
                                            : NULL;
    if (why) {
        reply_error(x, cors, 400, "bad_request", why);
        goto done;
    }
    const hr_namespace_t *ns = hr_channels_namespace(sh->srv, name, len);
    if (!hr_auth_may_publish(g, ns, name, len)) {
        reply_error(x, cors, 403, "not_allowed",
                    ns->client_publish && ns->access != HR_ACCESS_SERVER
                        ? "publish to this channel not allowed"
                        : "clients may not publish to this channel");
        goto done;
    }
    char *text = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);
    pub_op_t *o = text ? hr_calloc(1, sizeof(*o)) : NULL;
    if (!o) {
        free(text);
        reply_error(x, cors, 503, "internal", "out of memory");
        goto done;
    }
    snprintf(o->cors, sizeof(o->cors), "%s", cors->h);
    o->id = id ? json_incref(id) : NULL;
    /* Deferred first: the answer may come before hr_channels_publish returns. */
    o->tok = hr_http_defer(x);
    if (hr_channels_publish(sh, name, len, text, strlen(text), on_published, o) != 0)
        on_published(o, HR_ENOMEM, 0, "");
    free(text);
done:
    json_decref(root);
    hr_auth_grant_free(g);
}

/* ---------------------------------------------------------------- routes */

static void handle(hr_http_ctx_t *x, bool poll)
{
    cors_t cors;
    if (!check_origin(x, &cors))
        return;
    if (is_method(x, "GET")) {
        handle_get(x, &cors, poll, NULL);
    } else if (is_method(x, "POST")) {
        handle_post(x, &cors, NULL);
    } else if (is_method(x, "OPTIONS")) {
        char extra[1000];
        snprintf(extra, sizeof(extra),
                 "%sAccess-Control-Allow-Methods: " CORS_METHODS
                 "\r\nAccess-Control-Allow-Headers: Authorization, Content-Type, "
                 "Last-Event-ID\r\nAccess-Control-Max-Age: 600\r\nAllow: " CORS_METHODS "\r\n",
                 cors.h);
        hr_http_reply(x, 204, NULL, "", 0, extra);
    } else {
        char extra[700];
        snprintf(extra, sizeof(extra), "%sAllow: " CORS_METHODS "\r\n", cors.h);
        hr_buf_t b;
        hr_buf_init(&b);
        append_error(&b, "bad_request", "method not allowed: use GET, POST or OPTIONS");
        hr_http_reply(x, 405, "application/json", b.data, b.len, extra);
        hr_buf_deinit(&b);
    }
}

static void on_resume(hr_http_ctx_t *x, void *data)
{
    wait_t *w = data;
    cors_t cors;
    if (!check_origin(x, &cors))
        wait_free(w);
    else if (is_method(x, "POST"))
        handle_post(x, &cors, w);
    else
        handle_get(x, &cors, w->poll, w);
}

void hr_http_sse_handle(hr_http_ctx_t *x, void *data)
{
    (void)data;
    handle(x, false);
}

void hr_http_poll_handle(hr_http_ctx_t *x, void *data)
{
    (void)data;
    handle(x, true);
}
