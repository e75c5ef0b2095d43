/* The STOMP session (docs/stomp.md): frames parsed by the pure codec (proto/stomp_frame)
 * from WebSocket messages, whatever their boundaries; subscriptions on channels, queues
 * and user destinations; acknowledgements; transactions; heart-beats; /app dispatch to
 * the embedder's callback or the webhook. Every refusal is an ERROR frame with a message
 * (and the offending frame's receipt), then the close STOMP requires. Answers that come
 * from other shards find the session again by (connection, seq). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "auth/grant.h"
#include "base/log.h"
#include "broker/channel.h"
#include "herald/error.h"
#include "net/http_client.h"
#include "server/stomp.h"
#include "ws/utf8.h"
#include "ws/ws_frame.h"

#define MAX_TXS 16
#define MAX_TX_FRAMES 1000
#define WEBHOOK_TIMEOUT_MS 10000

enum { K_TOPIC, K_PATTERN, K_QUEUE, K_USER };
enum { ACK_AUTO, ACK_CLIENT, ACK_INDIVIDUAL };

typedef struct sess sess_t;

typedef struct ssub {
    hr_list_t link; /* sess.subs */
    sess_t *ss;
    uint8_t kind;
    uint8_t ack;
    hr_sub_t *sub; /* topics, patterns, user destinations */
    uint64_t cid;  /* queues: the consumer id */
    size_t id_len, esc_id_len, dest_len;
    char *id;     /* as given */
    char *esc_id; /* escaped for the session's version */
    char *dest;   /* as subscribed */
} ssub_t;

typedef struct unacked {
    hr_list_t link; /* sess.unacked, in delivery order */
    ssub_t *s;
    uint64_t seq;
    char id[24];
} unacked_t;

typedef struct tx {
    hr_list_t link;
    char *name;
    hr_buf_t frames; /* [size_t length][frame bytes]... */
    size_t n;
} tx_t;

struct sess {
    hr_conn_t *c;
    hr_stomp_version_t v;
    bool connected, failed;
    bool used_app; /* sent to /app: the backend hears of its end */
    char *user;
    char id[32];
    hr_buf_t in;  /* the start of a frame that has not all arrived */
    size_t need;  /* bytes in needs before the frame can complete (parser's hint) */
    hr_buf_t scr; /* the parser's unescaped values */
    hr_list_t subs;
    hr_list_t chan_list; /* hr_sub_t.owner_link: channel subscriptions */
    hr_list_t user_list; /* hr_sub_t.owner_link: user destinations */
    hr_list_t unacked;
    hr_list_t txs;
    size_t nsubs, ntxs;
    hr_timer_t hb;
    uint32_t hb_out_ms, hb_in_ms, hb_timeout_ms;
    uint64_t last_beat_ms;
};

static atomic_ullong next_cid;
static _Thread_local hr_stomp_frame_t tl_frame;

static hr_shard_t *sess_shard(const sess_t *ss)
{
    return conn_shard(ss->c);
}

static hr_stomp_limits_t limits(const sess_t *ss)
{
    hr_stomp_limits_t l;
    hr_stomp_limits_default(&l);
    l.max_body = (size_t)conn_shard(ss->c)->srv->opt.max_message;
    return l;
}

/* ---------------------------------------------------------------- sending */

static void send_frame(sess_t *ss, hr_stomp_cmd_t cmd, const hr_stomp_header_t *h, size_t n,
                       const void *body, size_t blen)
{
    hr_buf_t *b = &sess_shard(ss)->zscratch;
    b->len = 0;
    if (hr_stomp_encode(b, ss->v, cmd, h, n, body, blen, blen > 0) != 0)
        return;
    hr_conn_send(ss->c, b->data, b->len, !hr_utf8_valid(b->data, b->len));
}

static hr_stomp_header_t hdr(const char *name, const void *value, size_t len)
{
    return (hr_stomp_header_t){hr_slice(name, strlen(name)), hr_slice(value, len)};
}

static hr_stomp_header_t hdrs(const char *name, const char *value)
{
    return hdr(name, value, strlen(value));
}

static void send_receipt(sess_t *ss, const char *receipt, size_t len)
{
    hr_stomp_header_t h = hdr("receipt-id", receipt, len);
    send_frame(ss, HR_STOMP_RECEIPT, &h, 1, NULL, 0);
}

/* ERROR frame, then the close STOMP requires; nothing more is read from the session. */
static void fail_ex(sess_t *ss, uint16_t code, const char *message, const hr_slice_t *receipt,
                    const char *detail, const char *version)
{
    if (ss->failed)
        return;
    ss->failed = true;
    hr_stomp_header_t h[5];
    size_t n = 0;
    h[n++] = hdrs("message", message);
    if (receipt)
        h[n++] = hdr("receipt-id", receipt->ptr, receipt->len);
    if (version)
        h[n++] = hdrs("version", version);
    h[n++] = hdrs("content-type", "text/plain");
    const char *body = detail ? detail : message;
    send_frame(ss, HR_STOMP_ERROR, h, n, body, strlen(body));
    char reason[124];
    snprintf(reason, sizeof(reason), "%s", message);
    hr_conn_close(ss->c, code, reason);
    hr_log_debug("stomp %s: ERROR %s", ss->id, message);
}

static void fail(sess_t *ss, uint16_t code, const char *message, const hr_stomp_frame_t *f)
{
    fail_ex(ss, code, message, f ? hr_stomp_header_get(f, "receipt") : NULL, NULL, NULL);
}

/* ---------------------------------------------------------------- async operations */

/* A pending answer for a session: which connection, and the receipt to send. */
typedef struct sop {
    hr_conn_t *c;
    uint32_t seq;
    ssub_t *s; /* subscribe: the subscription (compared, never dereferenced if gone) */
    size_t receipt_len;
    bool has_receipt;
    char receipt[];
} sop_t;

static sop_t *sop_new(sess_t *ss, const hr_stomp_frame_t *f)
{
    const hr_slice_t *r = f ? hr_stomp_header_get(f, "receipt") : NULL;
    sop_t *o = hr_calloc(1, sizeof(*o) + (r ? r->len : 0) + 1);
    if (!o)
        return NULL;
    o->c = ss->c;
    o->seq = ss->c->seq;
    if (r) {
        o->has_receipt = true;
        o->receipt_len = r->len;
        memcpy(o->receipt, r->ptr, r->len);
    }
    return o;
}

static sess_t *sop_sess(const sop_t *o)
{
    if (o->c->seq != o->seq || o->c->phase != HR_PHASE_OPEN ||
        o->c->route->cb.on_message != hr_stomp_route_cb.on_message)
        return NULL;
    sess_t *ss = hr_conn_data(o->c);
    return ss && !ss->failed ? ss : NULL;
}

static void sop_done(sop_t *o, sess_t *ss)
{
    if (ss && o->has_receipt)
        send_receipt(ss, o->receipt, o->receipt_len);
    hr_free(o);
}

static void sop_fail(sop_t *o, sess_t *ss, uint16_t code, const char *message)
{
    if (ss) {
        hr_slice_t r = hr_slice(o->receipt, o->receipt_len);
        fail_ex(ss, code, message, o->has_receipt ? &r : NULL, NULL, NULL);
    }
    hr_free(o);
}

static void on_routed(void *ctx, int err, const char *errmsg)
{
    sop_t *o = ctx;
    sess_t *ss = sop_sess(o);
    /* HR_EAGAIN: handing over to a new process (handoff.c), going away; HR_CHAN_EUNKNOWN:
     * Redis did not answer (docs/cluster.md), try again later. */
    if (err)
        sop_fail(o, ss,
                 err == HR_EAGAIN          ? 1001
                 : err == HR_CHAN_EUNKNOWN ? 1013
                                           : 1008,
                 errmsg && *errmsg ? errmsg : "could not send");
    else
        sop_done(o, ss);
}

/* ---------------------------------------------------------------- CONNECT */

static bool parse_hb(const hr_slice_t *s, uint32_t *x, uint32_t *y)
{
    char buf[48];
    if (s->len == 0 || s->len >= sizeof(buf))
        return false;
    memcpy(buf, s->ptr, s->len);
    buf[s->len] = 0;
    char *end;
    if (buf[0] < '0' || buf[0] > '9')
        return false;
    unsigned long a = strtoul(buf, &end, 10);
    if (*end != ',' || end[1] < '0' || end[1] > '9')
        return false;
    unsigned long b = strtoul(end + 1, &end, 10);
    if (*end || a > 86400000ul || b > 86400000ul)
        return false;
    *x = (uint32_t)a;
    *y = (uint32_t)b;
    return true;
}

static void on_hb_timer(hr_timer_t *t);

static void arm_hb(sess_t *ss)
{
    uint32_t every = ss->hb_out_ms;
    if (ss->hb_in_ms && (!every || ss->hb_in_ms < every))
        every = ss->hb_in_ms;
    if (every)
        hr_loop_timer_start(&sess_shard(ss)->loop, &ss->hb, every);
}

static void on_hb_timer(hr_timer_t *t)
{
    sess_t *ss = (sess_t *)((char *)t - offsetof(sess_t, hb));
    hr_conn_t *c = ss->c;
    if (ss->failed || c->phase != HR_PHASE_OPEN)
        return;
    uint64_t now = sess_shard(ss)->loop.now_ms;
    if (ss->hb_timeout_ms && (uint32_t)now - c->last_rx_ms > ss->hb_timeout_ms) {
        fail(ss, 1008, "heart-beat timeout", NULL);
        return;
    }
    if (ss->hb_out_ms && now - ss->last_beat_ms + 8 >= ss->hb_out_ms) {
        hr_conn_send(c, "\n", 1, false);
        ss->last_beat_ms = now;
    }
    arm_hb(ss);
}

/* --auth on: the user is the token's, never the login header's. A connection that
 * authenticated at the handshake keeps that identity (CONNECT credentials are then
 * ignored); otherwise the token comes in "Authorization: Bearer T" or in passcode (where
 * stompjs users put it, in connectHeaders). false: refused (ERROR sent). */
static bool connect_auth(sess_t *ss, const hr_stomp_frame_t *f)
{
    hr_server_t *srv = sess_shard(ss)->srv;
    if (!hr_conn_grant(ss->c)) {
        const hr_slice_t *a = hr_stomp_header_get(f, "Authorization");
        if (!a)
            a = hr_stomp_header_get(f, "authorization");
        const hr_slice_t *pc = hr_stomp_header_get(f, "passcode");
        hr_slice_t tok = {0};
        if (a && a->len > 7 && strncasecmp(a->ptr, "Bearer ", 7) == 0)
            tok = hr_slice((const char *)a->ptr + 7, a->len - 7);
        else if (pc && pc->len)
            tok = *pc;
        const char *why = "invalid token";
        if (tok.len) {
            if (hr_conn_authenticate(ss->c, tok.ptr, tok.len, &why) != 0) {
                fail_ex(ss, 1008, why, hr_stomp_header_get(f, "receipt"), NULL, NULL);
                return false;
            }
        } else if (srv->sec.auth == HR_AUTH_REQUIRED) {
            fail_ex(ss, 1008, "authentication required", hr_stomp_header_get(f, "receipt"),
                    "Send a token: CONNECT with an Authorization: Bearer header or as passcode, "
                    "or ?token= in the WebSocket URL.",
                    NULL);
            return false;
        }
    }
    const char *user = hr_conn_user(ss->c);
    if (user && !(ss->user = hr_strdup(user))) {
        fail(ss, 1011, "out of memory", f);
        return false;
    }
    int per_user = hr_session_count_user(ss->c); /* no-op if counted at the handshake */
    if (per_user) {
        fail(ss, per_user == HR_ENOBUFS ? 1013 : 1011,
             per_user == HR_ENOBUFS ? "too many connections for this user" : "out of memory", f);
        return false;
    }
    return true;
}

void hr_stomp_session_expired(hr_conn_t *c)
{
    sess_t *ss = hr_conn_data(c);
    if (ss)
        fail(ss, HR_WS_CLOSE_TOKEN_EXPIRED, "token expired", NULL);
}

static void do_connect(sess_t *ss, const hr_stomp_frame_t *f)
{
    hr_server_t *srv = sess_shard(ss)->srv;
    const hr_slice_t *av = hr_stomp_header_get(f, "accept-version");
    hr_stomp_version_t v = HR_STOMP_10;
    if (av) {
        int best = 0;
        const char *p = av->ptr, *end = p + av->len;
        while (p < end) {
            const char *comma = memchr(p, ',', (size_t)(end - p));
            size_t n = (size_t)((comma ? comma : end) - p);
            if (n == 3 && memcmp(p, "1.2", 3) == 0 && best < 12)
                best = 12;
            else if (n == 3 && memcmp(p, "1.1", 3) == 0 && best < 11)
                best = 11;
            else if (n == 3 && memcmp(p, "1.0", 3) == 0 && best < 10)
                best = 10;
            p = comma ? comma + 1 : end;
        }
        if (!best) {
            fail_ex(ss, 1002, "unsupported protocol version", hr_stomp_header_get(f, "receipt"),
                    "Supported protocol versions are 1.0, 1.1 and 1.2.", "1.0,1.1,1.2");
            return;
        }
        v = (hr_stomp_version_t)best;
    }
    uint32_t cx = 0, cy = 0;
    const hr_slice_t *hb = hr_stomp_header_get(f, "heart-beat");
    if (hb && v >= HR_STOMP_11 && !parse_hb(hb, &cx, &cy)) {
        fail(ss, 1002, "invalid heart-beat header (expected two integers: cx,cy)", f);
        return;
    }
    const hr_slice_t *login = hr_stomp_header_get(f, "login");
    if (srv->sec.auth != HR_AUTH_OFF) {
        if (!connect_auth(ss, f))
            return;
    } else if (login && login->len) {
        bool ok = login->len <= 255 && hr_utf8_valid(login->ptr, login->len);
        for (size_t i = 0; ok && i < login->len; i++)
            if (((const uint8_t *)login->ptr)[i] < 0x20 || ((const char *)login->ptr)[i] == '/')
                ok = false;
        if (!ok) {
            fail(ss, 1008, "invalid login (1-255 bytes of text without '/')", f);
            return;
        }
        ss->user = hr_malloc(login->len + 1);
        if (!ss->user) {
            fail(ss, 1011, "out of memory", f);
            return;
        }
        memcpy(ss->user, login->ptr, login->len);
        ss->user[login->len] = 0;
    }
    ss->v = v;
    ss->connected = true;
    if (v >= HR_STOMP_11) {
        uint32_t sx = srv->stomp.hb_send_ms, sy = srv->stomp.hb_recv_ms;
        ss->hb_out_ms = sx && cy ? (sx > cy ? sx : cy) : 0;
        ss->hb_in_ms = cx && sy ? (cx > sy ? cx : sy) : 0;
        ss->hb_timeout_ms =
            (uint32_t)(ss->hb_in_ms * (srv->stomp.hb_grace > 1 ? srv->stomp.hb_grace : 1));
    }
    char hbv[48];
    snprintf(hbv, sizeof(hbv), "%u,%u", srv->stomp.hb_send_ms, srv->stomp.hb_recv_ms);
    hr_stomp_header_t h[5];
    size_t n = 0;
    if (v >= HR_STOMP_11) {
        h[n++] = hdrs("version", v == HR_STOMP_12 ? "1.2" : "1.1");
        h[n++] = hdrs("heart-beat", hbv);
    }
    h[n++] = hdrs("server", "Herald/" HR_VERSION_STRING);
    h[n++] = hdrs("session", ss->id);
    if (ss->user)
        h[n++] = hdrs("user-name", ss->user);
    send_frame(ss, HR_STOMP_CONNECTED, h, n, NULL, 0);
    ss->last_beat_ms = sess_shard(ss)->loop.now_ms;
    arm_hb(ss);
}

/* ---------------------------------------------------------------- subscriptions */

static ssub_t *find_sub(sess_t *ss, const void *id, size_t len)
{
    for (hr_list_t *n = ss->subs.next; n != &ss->subs; n = n->next) {
        ssub_t *s = hr_list_entry(n, ssub_t, link);
        if (s->id_len == len && memcmp(s->id, id, len) == 0)
            return s;
    }
    return NULL;
}

static bool sub_alive(sess_t *ss, const ssub_t *s)
{
    for (hr_list_t *n = ss->subs.next; n != &ss->subs; n = n->next)
        if (hr_list_entry(n, ssub_t, link) == s)
            return true;
    return false;
}

static void free_unacked_of(sess_t *ss, const ssub_t *s)
{
    for (hr_list_t *n = ss->unacked.next; n != &ss->unacked;) {
        unacked_t *u = hr_list_entry(n, unacked_t, link);
        n = n->next;
        if (u->s == s) {
            hr_list_remove(&u->link);
            hr_free(u);
        }
    }
}

/* Ends a subscription: leaves the broker (a queue takes back what was not acknowledged). */
static void drop_sub(sess_t *ss, ssub_t *s)
{
    hr_shard_t *sh = sess_shard(ss);
    switch (s->kind) {
    case K_TOPIC:
    case K_PATTERN:
        if (s->sub)
            hr_channels_unsubscribe(sh, s->sub, hr_conn_id(ss->c));
        break;
    case K_USER:
        if (s->sub)
            hr_topics_remove(s->sub->table, s->sub);
        break;
    case K_QUEUE:
        hr_stomp_queue_unsubscribe(sh, s->dest + 7, s->dest_len - 7, s->cid);
        break;
    }
    free_unacked_of(ss, s);
    hr_list_remove(&s->link);
    ss->nsubs--;
    hr_free(s->id);
    hr_free(s->esc_id);
    hr_free(s->dest);
    hr_free(s);
}

static void on_channel_subscribed(void *ctx, const hr_chan_sub_result_t *r)
{
    sop_t *o = ctx;
    sess_t *ss = sop_sess(o);
    if (!ss || !sub_alive(ss, o->s)) {
        hr_free(o);
        return;
    }
    ssub_t *s = o->s;
    if (r->err) {
        sop_fail(o, ss, 1011, "could not subscribe");
        return;
    }
    s->sub->last_offset = r->top;
    s->sub->state = HR_SUB_LIVE;
    sop_done(o, ss);
}

static char *dup_n(const void *p, size_t n)
{
    char *s = hr_malloc(n + 1);
    if (s) {
        memcpy(s, p, n);
        s[n] = 0;
    }
    return s;
}

static void do_subscribe(sess_t *ss, const hr_stomp_frame_t *f)
{
    hr_shard_t *sh = sess_shard(ss);
    const hr_slice_t *dest = hr_stomp_header_get(f, "destination");
    const hr_slice_t *id = hr_stomp_header_get(f, "id");
    const hr_slice_t *ack = hr_stomp_header_get(f, "ack");
    if (!dest || !dest->len) {
        fail(ss, 1002, "SUBSCRIBE without destination", f);
        return;
    }
    if (!id && ss->v >= HR_STOMP_11) {
        fail(ss, 1002, "SUBSCRIBE without id", f);
        return;
    }
    if (!id)
        id = dest; /* 1.0: the destination names the subscription */
    if (!hr_utf8_valid(id->ptr, id->len) || !hr_utf8_valid(dest->ptr, dest->len)) {
        fail(ss, 1002, "headers must be UTF-8", f);
        return;
    }
    uint8_t mode = ACK_AUTO;
    if (ack && hr_slice_eq_str(*ack, "client"))
        mode = ACK_CLIENT;
    else if (ack && hr_slice_eq_str(*ack, "client-individual"))
        mode = ACK_INDIVIDUAL;
    else if (ack && !hr_slice_eq_str(*ack, "auto")) {
        fail(ss, 1002, "invalid ack mode (auto, client or client-individual)", f);
        return;
    }
    if (find_sub(ss, id->ptr, id->len)) {
        fail(ss, 1008, "subscription id already in use", f);
        return;
    }
    if (ss->nsubs >= (size_t)sess_shard(ss)->srv->sec.max_subscriptions) {
        sess_shard(ss)->stats.limit_rejections[HR_LIMIT_MAX_SUBSCRIPTIONS]++;
        fail(ss, 1008, "too many subscriptions", f);
        return;
    }
    const char *d = dest->ptr;
    size_t dl = dest->len;
    uint8_t kind;
    if (dl > 7 && memcmp(d, "/topic/", 7) == 0) {
        kind = hr_channel_is_pattern(d + 7, dl - 7) ? K_PATTERN : K_TOPIC;
        if (!hr_channel_pattern_valid(d + 7, dl - 7)) {
            fail(ss, 1008, "invalid topic name", f);
            return;
        }
        if (!hr_auth_may_subscribe(hr_conn_grant(ss->c), &sh->srv->namespaces, d + 7, dl - 7)) {
            fail(ss, 1008, "not allowed", f);
            return;
        }
    } else if (dl > 7 && memcmp(d, "/queue/", 7) == 0) {
        kind = K_QUEUE;
        if (!hr_channel_name_valid(d + 7, dl - 7)) {
            fail(ss, 1008, "invalid queue name (no wildcards on queues)", f);
            return;
        }
    } else if (dl > 6 && memcmp(d, "/user/", 6) == 0) {
        kind = K_USER;
        if (!ss->user) {
            fail(ss, 1008, "user destinations need a user (CONNECT with login, or a token)", f);
            return;
        }
    } else if (dl >= 5 && memcmp(d, "/app/", 5) == 0) {
        fail(ss, 1008, "cannot subscribe to /app destinations (@SubscribeMapping is not supported)",
             f);
        return;
    } else {
        fail_ex(ss, 1008, "unknown destination", hr_stomp_header_get(f, "receipt"),
                "Subscriptions are to /topic/NAME, /queue/NAME or /user/queue/NAME.", NULL);
        return;
    }
    ssub_t *s = hr_calloc(1, sizeof(*s));
    hr_buf_t esc;
    hr_buf_init(&esc);
    if (!s || !(s->id = dup_n(id->ptr, id->len)) || !(s->dest = dup_n(d, dl)) ||
        hr_stomp_escape(&esc, ss->v, HR_STOMP_MESSAGE, id->ptr, id->len) != 0 ||
        !(s->esc_id = dup_n(esc.data, esc.len))) {
        hr_buf_deinit(&esc);
        if (s) {
            hr_free(s->id);
            hr_free(s->dest);
        }
        hr_free(s);
        fail(ss, 1011, "out of memory", f);
        return;
    }
    s->esc_id_len = esc.len;
    hr_buf_deinit(&esc);
    s->ss = ss;
    s->kind = kind;
    s->ack = mode;
    s->id_len = id->len;
    s->dest_len = dl;
    hr_list_push_back(&ss->subs, &s->link);
    ss->nsubs++;
    int rc = 0;
    sop_t *o = sop_new(ss, f);
    if (!o)
        rc = HR_ENOMEM;
    else if (kind == K_TOPIC || kind == K_PATTERN) {
        hr_topics_t *t = kind == K_PATTERN ? &sh->chan_patterns : &sh->chan_subs;
        rc = hr_topics_subscribe(t, d + 7, dl - 7, s, &ss->chan_list);
        if (rc == 0) {
            s->sub = hr_topics_last_of(&ss->chan_list);
            s->sub->kind = HR_SUB_STOMP;
            if (kind == K_PATTERN) {
                s->sub->state = HR_SUB_LIVE;
                hr_channels_pattern_added(sh, s->sub); /* --redis: PSUBSCRIBE */
            } else {
                s->sub->state = HR_SUB_PENDING;
                o->s = s;
                rc = hr_channels_subscribe(sh, s->sub, false, 0, NULL, hr_conn_id(ss->c), ss->user,
                                           on_channel_subscribed, o);
                if (rc == 0)
                    return; /* the receipt follows the home's answer */
            }
        }
    } else if (kind == K_QUEUE) {
        s->cid = atomic_fetch_add(&next_cid, 1) + 1;
        hr_qconsumer_t q = {.shard = sh,
                            .c = ss->c,
                            .conn_seq = ss->c->seq,
                            .cid = s->cid,
                            .auto_ack = mode == ACK_AUTO};
        rc = hr_stomp_queue_subscribe(sh, d + 7, dl - 7, &q);
    } else {
        /* /user/REST -> "USER\n/REST" */
        size_t ul = strlen(ss->user);
        char *key = hr_malloc(ul + 1 + dl - 5);
        if (!key) {
            rc = HR_ENOMEM;
        } else {
            memcpy(key, ss->user, ul);
            key[ul] = '\n';
            memcpy(key + ul + 1, d + 5, dl - 5);
            hr_topics_t *users = hr_stomp_users(sh);
            rc = hr_topics_subscribe(users, key, ul + 1 + dl - 5, s, &ss->user_list);
            hr_free(key);
            if (rc == 0) {
                s->sub = hr_topics_last_of(&ss->user_list);
                s->sub->kind = HR_SUB_STOMP;
            }
        }
    }
    if (rc) {
        if (s->kind == K_QUEUE)
            s->kind = K_USER; /* not registered: nothing to leave */
        drop_sub(ss, s);
        hr_free(o);
        fail(ss, 1011, "could not subscribe", f);
        return;
    }
    sop_done(o, ss);
}

static void do_unsubscribe(sess_t *ss, const hr_stomp_frame_t *f)
{
    const hr_slice_t *id = hr_stomp_header_get(f, "id");
    if (!id && ss->v == HR_STOMP_10)
        id = hr_stomp_header_get(f, "destination");
    if (!id) {
        fail(ss, 1002, "UNSUBSCRIBE without id", f);
        return;
    }
    ssub_t *s = find_sub(ss, id->ptr, id->len);
    if (!s) {
        fail(ss, 1008, "no subscription with this id", f);
        return;
    }
    drop_sub(ss, s);
    const hr_slice_t *r = hr_stomp_header_get(f, "receipt");
    if (r)
        send_receipt(ss, r->ptr, r->len);
}

/* ---------------------------------------------------------------- delivery */

static hr_refbuf_t *build_tail(const hr_chan_msg_t *m, hr_stomp_version_t v)
{
    hr_buf_t b;
    hr_buf_init(&b);
    char mid[64], len[24];
    bool text = m->data.len && ((const char *)m->data.ptr)[0] == '"';
    json_t *str = NULL;
    const void *body = m->data.ptr;
    size_t blen = m->data.len;
    if (text) {
        json_error_t e;
        str = json_loadb(m->data.ptr, m->data.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
        if (str && json_is_string(str)) {
            body = json_string_value(str);
            blen = json_string_length(str);
        } else {
            text = false;
        }
    }
    snprintf(mid, sizeof(mid), "%s-%llu", m->epoch, (unsigned long long)m->offset);
    snprintf(len, sizeof(len), "%zu", blen);
    int rc = hr_buf_append_str(&b, "destination:/topic/");
    if (rc == 0)
        rc = hr_stomp_escape(&b, v, HR_STOMP_MESSAGE, m->name, m->name_len);
    if (rc == 0)
        rc = hr_buf_appendf(&b, "\nmessage-id:%s\ncontent-type:%s\ncontent-length:%s\n\n", mid,
                            text ? "text/plain;charset=UTF-8" : "application/json", len);
    if (rc == 0)
        rc = hr_buf_append(&b, body, blen);
    if (rc == 0)
        rc = hr_buf_append(&b, "", 1);
    json_decref(str);
    hr_refbuf_t *rb = rc == 0 ? hr_refbuf_create(b.len) : NULL;
    if (rb)
        memcpy(rb->data, b.data, b.len);
    hr_buf_deinit(&b);
    return rb;
}

void hr_stomp_session_channel_deliver(hr_sub_t *sub, const hr_chan_msg_t *m,
                                      hr_slow_policy_t policy)
{
    ssub_t *s = sub->owner;
    sess_t *ss = s->ss;
    if (ss->failed)
        return;
    int vi = ss->v >= HR_STOMP_11;
    hr_refbuf_t *tail = atomic_load_explicit(&m->stomp[vi], memory_order_acquire);
    if (!tail) {
        hr_refbuf_t *mine = build_tail(m, ss->v);
        if (!mine)
            return;
        hr_refbuf_t *expected = NULL;
        if (atomic_compare_exchange_strong(&m->stomp[vi], &expected, mine)) {
            tail = mine;
        } else {
            hr_refbuf_unref(mine); /* another shard built it first */
            tail = expected;
        }
    }
    char head[512];
    int n;
    if (s->ack != ACK_AUTO && ss->v == HR_STOMP_12)
        n = snprintf(head, sizeof(head), "MESSAGE\nsubscription:%.*s\nack:%s-%llu\n",
                     (int)s->esc_id_len, s->esc_id, m->epoch, (unsigned long long)m->offset);
    else
        n = snprintf(head, sizeof(head), "MESSAGE\nsubscription:%.*s\n", (int)s->esc_id_len,
                     s->esc_id);
    if (n < 0 || (size_t)n >= sizeof(head)) {
        /* A long subscription id: the head built in a buffer of its own. */
        hr_buf_t b;
        hr_buf_init(&b);
        if (hr_buf_appendf(&b, "MESSAGE\nsubscription:%.*s\n", (int)s->esc_id_len, s->esc_id) == 0)
            hr_session_deliver_parts(ss->c, false, b.data, b.len, tail, policy);
        hr_buf_deinit(&b);
        return;
    }
    hr_session_deliver_parts(ss->c, false, head, (size_t)n, tail, policy);
}

/* A queue or user message, built for this recipient. 0 or an error. */
static int send_message(sess_t *ss, const ssub_t *s, const char *dest, const char *msgid,
                        const hr_smsg_t *m, bool redelivered)
{
    hr_stomp_header_t h[HR_STOMP_MAX_HEADERS_CAP + 8];
    size_t n = 0;
    h[n++] = hdr("subscription", s->id, s->id_len);
    h[n++] = hdrs("message-id", msgid);
    h[n++] = hdrs("destination", dest);
    if (s->ack != ACK_AUTO && ss->v == HR_STOMP_12)
        h[n++] = hdrs("ack", msgid);
    if (redelivered)
        h[n++] = hdrs("redelivered", "true");
    for (size_t i = 0; i < m->nheaders && n < sizeof(h) / sizeof(h[0]); i++)
        h[n++] = m->headers[i];
    hr_buf_t *b = &sess_shard(ss)->zscratch;
    b->len = 0;
    int rc = hr_stomp_encode(b, ss->v, HR_STOMP_MESSAGE, h, n, m->body.ptr, m->body.len, true);
    if (rc == 0)
        rc = hr_conn_send(ss->c, b->data, b->len, !hr_utf8_valid(b->data, b->len));
    return rc;
}

static sess_t *live_sess(hr_conn_t *c, uint32_t conn_seq)
{
    if (c->seq != conn_seq || c->phase != HR_PHASE_OPEN ||
        c->route->cb.on_message != hr_stomp_route_cb.on_message)
        return NULL;
    sess_t *ss = hr_conn_data(c);
    return ss && !ss->failed ? ss : NULL;
}

bool hr_stomp_session_queue_deliver(hr_conn_t *c, uint32_t conn_seq, uint64_t cid,
                                    const char *qname, size_t qlen, uint64_t seq,
                                    const hr_smsg_t *m, bool redelivered)
{
    sess_t *ss = live_sess(c, conn_seq);
    ssub_t *s = NULL;
    for (hr_list_t *n = ss ? ss->subs.next : NULL; n && n != &ss->subs; n = n->next) {
        ssub_t *x = hr_list_entry(n, ssub_t, link);
        if (x->kind == K_QUEUE && x->cid == cid) {
            s = x;
            break;
        }
    }
    if (!s)
        return false;
    unacked_t *u = s->ack != ACK_AUTO ? hr_calloc(1, sizeof(*u)) : NULL;
    if (s->ack != ACK_AUTO && !u)
        return false;
    char msgid[24], dest[8 + 256];
    snprintf(msgid, sizeof(msgid), "q%llu", (unsigned long long)seq);
    snprintf(dest, sizeof(dest), "/queue/%.*s", (int)qlen, qname);
    if (send_message(ss, s, dest, msgid, m, redelivered) != 0) {
        hr_free(u);
        return false;
    }
    if (u) {
        u->s = s;
        u->seq = seq;
        memcpy(u->id, msgid, sizeof(u->id));
        hr_list_push_back(&ss->unacked, &u->link);
    }
    return true;
}

void hr_stomp_session_user_deliver(hr_shard_t *sh, const char *key, size_t klen, const char *msgid,
                                   const hr_smsg_t *m)
{
    hr_topic_t *tp = hr_topics_find(hr_stomp_users(sh), key, klen);
    if (!tp)
        return;
    for (hr_list_t *n = tp->subs.next; n != &tp->subs; n = n->next) {
        ssub_t *s = hr_list_entry(n, hr_sub_t, topic_link)->owner;
        if (!s->ss->failed)
            send_message(s->ss, s, s->dest, msgid, m, false);
    }
}

/* ---------------------------------------------------------------- ACK / NACK */

static void do_ack(sess_t *ss, const hr_stomp_frame_t *f, bool ack)
{
    const hr_slice_t *id = hr_stomp_header_get(f, ss->v == HR_STOMP_12 ? "id" : "message-id");
    if (!id) {
        fail(ss, 1002, ss->v == HR_STOMP_12 ? "ACK/NACK without id" : "ACK/NACK without message-id",
             f);
        return;
    }
    unacked_t *hit = NULL;
    for (hr_list_t *n = ss->unacked.next; n != &ss->unacked; n = n->next) {
        unacked_t *u = hr_list_entry(n, unacked_t, link);
        if (strlen(u->id) == id->len && memcmp(u->id, id->ptr, id->len) == 0) {
            hit = u;
            break;
        }
    }
    if (hit) {
        ssub_t *s = hit->s;
        /* client mode: this one and every earlier one of the subscription. */
        uint64_t seqs[256];
        size_t n = 0;
        hr_list_t *stop = hit->link.next;
        for (hr_list_t *l = s->ack == ACK_CLIENT ? ss->unacked.next : &hit->link; l != stop;) {
            unacked_t *u = hr_list_entry(l, unacked_t, link);
            l = l->next;
            if (u->s != s)
                continue;
            seqs[n++] = u->seq;
            hr_list_remove(&u->link);
            hr_free(u);
            if (n == sizeof(seqs) / sizeof(seqs[0])) {
                hr_stomp_queue_settle(sess_shard(ss), s->dest + 7, s->dest_len - 7, s->cid, seqs, n,
                                      ack);
                n = 0;
            }
        }
        if (n)
            hr_stomp_queue_settle(sess_shard(ss), s->dest + 7, s->dest_len - 7, s->cid, seqs, n,
                                  ack);
    }
    const hr_slice_t *r = hr_stomp_header_get(f, "receipt");
    if (r)
        send_receipt(ss, r->ptr, r->len);
}

/* ---------------------------------------------------------------- /app */

typedef struct app_op {
    hr_shard_t *sh;
    sop_t *o;
    char dest[256];
} app_op_t;

static int route_answer(hr_shard_t *sh, json_t *msg, const char *app_dest, const char **err)
{
    if (!json_is_object(msg)) {
        *err = "backend answer: each message must be a JSON object";
        return HR_EINVAL;
    }
    json_t *jd = json_object_get(msg, "destination"), *jb = json_object_get(msg, "body");
    json_t *jc = json_object_get(msg, "content-type"), *jh = json_object_get(msg, "headers");
    if ((jd && !json_is_string(jd)) || (jc && !json_is_string(jc)) || (jh && !json_is_object(jh))) {
        *err = "backend answer: destination and content-type must be strings, headers an object";
        return HR_EINVAL;
    }
    char dbuf[300];
    const char *dest = jd ? json_string_value(jd) : dbuf;
    if (!jd && !app_dest) {
        *err = "backend answer: a message without destination";
        return HR_EINVAL;
    }
    if (!jd)
        snprintf(dbuf, sizeof(dbuf), "/topic/%s", app_dest + 5);
    char *text = NULL;
    const char *body = "";
    size_t blen = 0;
    const char *ctype = jc ? json_string_value(jc) : NULL;
    if (jb && json_is_string(jb)) {
        body = json_string_value(jb);
        blen = json_string_length(jb);
    } else if (jb && !json_is_null(jb)) {
        text = json_dumps(jb, JSON_ENCODE_ANY | JSON_COMPACT);
        if (!text) {
            *err = "out of memory";
            return HR_ENOMEM;
        }
        body = text;
        blen = strlen(text);
        if (!ctype)
            ctype = "application/json";
    }
    hr_stomp_header_t h[64];
    size_t n = hr_stomp_headers_from_json(jh, h, 64);
    int rc = hr_stomp_route(sh, dest, strlen(dest), ctype, ctype ? strlen(ctype) : 0, h, n, body,
                            blen, NULL, NULL, NULL, err);
    free(text);
    return rc;
}

/* Routes the messages of a backend's answer (one object or an array). 0 or an error. */
static int route_answers(hr_shard_t *sh, const hr_http_result_t *r, const char *app_dest,
                         const char **err)
{
    json_error_t e;
    json_t *root = json_loadb((const char *)r->body, r->body_len, JSON_DECODE_ANY, &e);
    int rc = root ? 0 : HR_EINVAL;
    if (!root)
        *err = "backend answer is not JSON";
    else if (json_is_array(root)) {
        size_t i;
        json_t *m;
        json_array_foreach(root, i, m)
        {
            if (rc == 0)
                rc = route_answer(sh, m, app_dest, err);
        }
    } else {
        rc = route_answer(sh, root, app_dest, err);
    }
    json_decref(root);
    return rc;
}

/* The answer to a disconnect event: there is no session left to tell of errors. */
static void on_disconnect_hook(void *ctx, const hr_http_result_t *r)
{
    hr_shard_t *sh = ctx;
    const char *err = NULL;
    if (r->err)
        hr_log_warn("stomp: disconnect event: backend unreachable: %s", r->errmsg);
    else if (r->status < 200 || r->status > 299)
        hr_log_warn("stomp: disconnect event: backend answered %d", r->status);
    else if (r->status != 204 && r->body_len && !sh->stopping &&
             route_answers(sh, r, NULL, &err) != 0)
        hr_log_warn("stomp: disconnect event: %s", err);
}

static void on_webhook(void *ctx, const hr_http_result_t *r)
{
    app_op_t *a = ctx;
    sop_t *o = a->o;
    sess_t *ss = a->sh->stopping ? NULL : sop_sess(o);
    char msg[200];
    if (!ss) {
        hr_free(o);
    } else if (r->err) {
        snprintf(msg, sizeof(msg), "application backend unreachable: %s", r->errmsg);
        sop_fail(o, ss, 1011, msg);
    } else if (r->status < 200 || r->status > 299) {
        snprintf(msg, sizeof(msg), "application backend answered %d", r->status);
        sop_fail(o, ss, 1011, msg);
    } else if (r->status == 204 || r->body_len == 0) {
        sop_done(o, ss);
    } else {
        const char *err = NULL;
        if (route_answers(a->sh, r, a->dest, &err) != 0) {
            snprintf(msg, sizeof(msg), "%s%s", strncmp(err, "backend", 7) ? "backend answer: " : "",
                     err);
            sop_fail(o, ss, 1011, msg);
        } else {
            sop_done(o, ss);
        }
    }
    hr_free(a);
}

static void do_app(sess_t *ss, const hr_stomp_frame_t *f, const hr_slice_t *dest)
{
    hr_shard_t *sh = sess_shard(ss);
    const hr_stomp_config_t *cfg = &sh->srv->stomp;
    const hr_slice_t *ct = hr_stomp_header_get(f, "content-type");
    if (cfg->app_fn) {
        char d[300], ctype[256], err[200] = "";
        snprintf(d, sizeof(d), "%.*s", (int)dest->len, (const char *)dest->ptr);
        if (ct)
            snprintf(ctype, sizeof(ctype), "%.*s", (int)ct->len, (const char *)ct->ptr);
        hr_stomp_app_message_t m = {.destination = d,
                                    .session = ss->id,
                                    .user = ss->user,
                                    .content_type = ct ? ctype : NULL,
                                    .body = f->body.ptr,
                                    .body_len = f->body.len};
        if (cfg->app_fn(ss->c, &m, cfg->app_data, err, sizeof(err)) != 0) {
            fail(ss, 1008, err[0] ? err : "refused by the application", f);
            return;
        }
        const hr_slice_t *r = hr_stomp_header_get(f, "receipt");
        if (r)
            send_receipt(ss, r->ptr, r->len);
        return;
    }
    if (!cfg->app_webhook) {
        fail(ss, 1008,
             "no application handler for /app destinations (start herald with --app-webhook URL)",
             f);
        return;
    }
    if (!hr_utf8_valid(f->body.ptr, f->body.len) || dest->len > 255) {
        fail(ss, 1008,
             "/app messages must have a UTF-8 body and a destination of at most 255 bytes", f);
        return;
    }
    ss->used_app = true;
    json_t *req = json_object(), *h = json_object();
    json_object_set_new(req, "event", json_string("send"));
    json_object_set_new(req, "destination", json_stringn(dest->ptr, dest->len));
    json_object_set_new(req, "session", json_string(ss->id));
    json_object_set_new(req, "user", ss->user ? json_string(ss->user) : json_null());
    for (size_t i = 0; i < f->nheaders; i++) {
        const hr_stomp_header_t *x = &f->headers[i];
        if (hr_slice_eq_str(x->name, "destination") || hr_slice_eq_str(x->name, "receipt") ||
            hr_slice_eq_str(x->name, "content-length") || hr_slice_eq_str(x->name, "transaction"))
            continue;
        char name[256];
        snprintf(name, sizeof(name), "%.*s", (int)x->name.len, (const char *)x->name.ptr);
        if (!json_object_get(h, name) && hr_utf8_valid(x->value.ptr, x->value.len))
            json_object_set_new(h, name, json_stringn(x->value.ptr, x->value.len));
    }
    json_object_set_new(req, "headers", h);
    json_object_set_new(req, "body", json_stringn(f->body.ptr, f->body.len));
    char *text = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    app_op_t *a = text ? hr_calloc(1, sizeof(*a)) : NULL;
    sop_t *o = a ? sop_new(ss, f) : NULL;
    hr_http_client_t *hc = o ? hr_stomp_http(sh) : NULL;
    if (hc) {
        a->o = o;
        a->sh = sh;
        snprintf(a->dest, sizeof(a->dest), "%.*s", (int)dest->len, (const char *)dest->ptr);
    }
    if (!hc || hr_http_client_post(hc, cfg->app_webhook, "application/json", text, strlen(text),
                                   NULL, WEBHOOK_TIMEOUT_MS, (size_t)sh->srv->opt.max_message,
                                   on_webhook, a) != 0) {
        hr_free(o);
        hr_free(a);
        fail(ss, 1011, "could not call the application backend", f);
    }
    free(text);
}

/* ---------------------------------------------------------------- SEND */

static void do_send(sess_t *ss, const hr_stomp_frame_t *f)
{
    const hr_slice_t *dest = hr_stomp_header_get(f, "destination");
    if (!dest || !dest->len) {
        fail(ss, 1002, "SEND without destination", f);
        return;
    }
    if (dest->len > 5 && memcmp(dest->ptr, "/app/", 5) == 0) {
        do_app(ss, f, dest);
        return;
    }
    const hr_slice_t *ct = hr_stomp_header_get(f, "content-type");
    sop_t *o = sop_new(ss, f);
    const char *err = "out of memory";
    int rc = o ? hr_stomp_route(sess_shard(ss), dest->ptr, dest->len, ct ? ct->ptr : NULL,
                                ct ? ct->len : 0, f->headers, f->nheaders, f->body.ptr, f->body.len,
                                ss->c, on_routed, o, &err)
               : HR_ENOMEM;
    if (rc) {
        hr_free(o);
        bool unknown = strcmp(err, "unknown destination") == 0;
        fail_ex(ss, rc == HR_ENOMEM ? 1011 : 1008, err, hr_stomp_header_get(f, "receipt"),
                unknown ? "Destinations are /topic/NAME, /queue/NAME, /user/USER/... and /app/NAME."
                        : NULL,
                NULL);
    }
}

/* ---------------------------------------------------------------- transactions */

static tx_t *find_tx(sess_t *ss, const hr_slice_t *name)
{
    for (hr_list_t *n = ss->txs.next; n != &ss->txs; n = n->next) {
        tx_t *t = hr_list_entry(n, tx_t, link);
        if (strlen(t->name) == name->len && memcmp(t->name, name->ptr, name->len) == 0)
            return t;
    }
    return NULL;
}

static void free_tx(sess_t *ss, tx_t *t)
{
    hr_list_remove(&t->link);
    ss->ntxs--;
    hr_buf_deinit(&t->frames);
    hr_free(t->name);
    hr_free(t);
}

static void process(sess_t *ss, const hr_stomp_frame_t *f, const uint8_t *raw, size_t rawlen,
                    bool replay);

static void do_tx(sess_t *ss, const hr_stomp_frame_t *f)
{
    const hr_slice_t *name = hr_stomp_header_get(f, "transaction");
    if (!name || !name->len) {
        fail(ss, 1002, "missing transaction header", f);
        return;
    }
    tx_t *t = find_tx(ss, name);
    const hr_slice_t *r = hr_stomp_header_get(f, "receipt");
    char *rcopy = r ? dup_n(r->ptr, r->len) : NULL;
    size_t rlen = r ? r->len : 0;
    if (f->cmd == HR_STOMP_BEGIN) {
        if (t) {
            fail(ss, 1008, "transaction already begun", f);
        } else if (ss->ntxs >= MAX_TXS) {
            fail(ss, 1008, "too many open transactions", f);
        } else if (!(t = hr_calloc(1, sizeof(*t))) || !(t->name = dup_n(name->ptr, name->len))) {
            hr_free(t);
            fail(ss, 1011, "out of memory", f);
        } else {
            hr_buf_init(&t->frames);
            hr_list_push_back(&ss->txs, &t->link);
            ss->ntxs++;
        }
    } else if (!t) {
        fail(ss, 1008, "unknown transaction", f);
    } else if (f->cmd == HR_STOMP_ABORT) {
        free_tx(ss, t);
    } else {
        /* COMMIT: the held frames, in order. They were parsed once already; the same
         * parser reads them again into a frame of their own (the caller's is in use). */
        hr_list_remove(&t->link);
        ss->ntxs--;
        hr_stomp_frame_t *inner = hr_malloc(sizeof(*inner));
        hr_stomp_limits_t lim = limits(ss);
        size_t off = 0;
        while (inner && off < t->frames.len && !ss->failed) {
            size_t len;
            memcpy(&len, t->frames.data + off, sizeof(len));
            off += sizeof(len);
            size_t used = 0, need = 0;
            const char *err = NULL;
            if (hr_stomp_parse(t->frames.data + off, len, ss->v, &lim, inner, &ss->scr, &used,
                               &need, &err) == HR_STOMP_FRAME) {
                /* Its receipt went out when it was held. */
                for (size_t i = 0; i < inner->nheaders; i++)
                    if (hr_slice_eq_str(inner->headers[i].name, "receipt")) {
                        memmove(&inner->headers[i], &inner->headers[i + 1],
                                (inner->nheaders - i - 1) * sizeof(inner->headers[0]));
                        inner->nheaders--;
                        i--;
                    }
                process(ss, inner, NULL, 0, true);
            }
            off += len;
        }
        if (!inner)
            fail(ss, 1011, "out of memory", NULL);
        hr_free(inner);
        hr_buf_deinit(&t->frames);
        hr_free(t->name);
        hr_free(t);
    }
    if (!ss->failed && rcopy)
        send_receipt(ss, rcopy, rlen);
    hr_free(rcopy);
}

/* A SEND, ACK or NACK inside a transaction: held as received until COMMIT. true if held. */
static bool hold_in_tx(sess_t *ss, const hr_stomp_frame_t *f, const uint8_t *raw, size_t rawlen)
{
    const hr_slice_t *name = hr_stomp_header_get(f, "transaction");
    if (!name)
        return false;
    tx_t *t = find_tx(ss, name);
    if (!t) {
        fail(ss, 1008, "unknown transaction", f);
        return true;
    }
    size_t max = (size_t)sess_shard(ss)->srv->opt.max_message;
    if (t->n >= MAX_TX_FRAMES || t->frames.len + rawlen > max) {
        fail(ss, 1008, "transaction too large", f);
        return true;
    }
    if (hr_buf_append(&t->frames, &rawlen, sizeof(rawlen)) != 0 ||
        hr_buf_append(&t->frames, raw, rawlen) != 0) {
        fail(ss, 1011, "out of memory", f);
        return true;
    }
    t->n++;
    const hr_slice_t *r = hr_stomp_header_get(f, "receipt");
    if (r)
        send_receipt(ss, r->ptr, r->len);
    return true;
}

/* ---------------------------------------------------------------- frames */

static void process(sess_t *ss, const hr_stomp_frame_t *f, const uint8_t *raw, size_t rawlen,
                    bool replay)
{
    if (!ss->connected) {
        if (f->cmd == HR_STOMP_CONNECT || f->cmd == HR_STOMP_STOMP)
            do_connect(ss, f);
        else
            fail(ss, 1002, "expected CONNECT (or STOMP) as the first frame", f);
        return;
    }
    switch (f->cmd) {
    case HR_STOMP_CONNECT:
    case HR_STOMP_STOMP:
        fail(ss, 1002, "already connected", f);
        break;
    case HR_STOMP_SEND:
        if (replay || !hold_in_tx(ss, f, raw, rawlen))
            do_send(ss, f);
        break;
    case HR_STOMP_SUBSCRIBE:
        do_subscribe(ss, f);
        break;
    case HR_STOMP_UNSUBSCRIBE:
        do_unsubscribe(ss, f);
        break;
    case HR_STOMP_ACK:
    case HR_STOMP_NACK:
        if (f->cmd == HR_STOMP_NACK && ss->v == HR_STOMP_10) {
            fail(ss, 1002, "NACK is not part of STOMP 1.0", f);
            break;
        }
        if (replay || !hold_in_tx(ss, f, raw, rawlen))
            do_ack(ss, f, f->cmd == HR_STOMP_ACK);
        break;
    case HR_STOMP_BEGIN:
    case HR_STOMP_COMMIT:
    case HR_STOMP_ABORT:
        do_tx(ss, f);
        break;
    case HR_STOMP_DISCONNECT: {
        const hr_slice_t *r = hr_stomp_header_get(f, "receipt");
        if (r)
            send_receipt(ss, r->ptr, r->len);
        ss->failed = true; /* read nothing more */
        hr_conn_close(ss->c, 1000, "disconnect");
        break;
    }
    default:
        fail(ss, 1002, "unexpected frame (a server frame, or unknown)", f);
        break;
    }
}

/* Parses and runs the frames in data[0..len); returns the bytes consumed (the rest is the
 * start of a frame still arriving). */
static size_t consume(sess_t *ss, const uint8_t *data, size_t len)
{
    hr_stomp_limits_t lim = limits(ss);
    size_t off = 0;
    ss->need = 0;
    while (off < len && !ss->failed) {
        size_t used = 0, need = 0;
        const char *err = "malformed frame";
        hr_stomp_result_t r = hr_stomp_parse(data + off, len - off, ss->v ? ss->v : HR_STOMP_12,
                                             &lim, &tl_frame, &ss->scr, &used, &need, &err);
        if (r == HR_STOMP_NEED_MORE) {
            ss->need = need;
            break;
        }
        if (r == HR_STOMP_ERR_SYNTAX || r == HR_STOMP_ERR_TOO_LARGE) {
            fail(ss, r == HR_STOMP_ERR_TOO_LARGE ? 1009 : 1002, err, NULL);
            break;
        }
        if (r == HR_STOMP_FRAME)
            process(ss, &tl_frame, data + off, used, false);
        off += used;
    }
    if (ss->scr.cap > 65536)
        hr_buf_deinit(&ss->scr);
    return off;
}

static void on_message(hr_conn_t *c, const uint8_t *data, size_t len, bool binary)
{
    (void)binary;
    sess_t *ss = hr_conn_data(c);
    if (!ss || ss->failed)
        return;
    if (ss->in.len == 0) {
        size_t used = consume(ss, data, len);
        if (!ss->failed && used < len && hr_buf_append(&ss->in, data + used, len - used) != 0)
            fail(ss, 1011, "out of memory", NULL);
        return;
    }
    if (hr_buf_append(&ss->in, data, len) != 0) {
        fail(ss, 1011, "out of memory", NULL);
        return;
    }
    if (ss->in.len < ss->need)
        return; /* the frame is not all here yet */
    size_t used = consume(ss, ss->in.data, ss->in.len);
    hr_buf_consume(&ss->in, used);
    if (ss->in.len == 0)
        hr_buf_deinit(&ss->in);
}

static void on_open(hr_conn_t *c)
{
    sess_t *ss = hr_calloc(1, sizeof(*ss));
    if (!ss) {
        hr_conn_close(c, 1011, "out of memory");
        return;
    }
    ss->c = c;
    snprintf(ss->id, sizeof(ss->id), "s%llx", (unsigned long long)hr_conn_id(c));
    hr_buf_init(&ss->in);
    hr_buf_init(&ss->scr);
    hr_list_init(&ss->subs);
    hr_list_init(&ss->chan_list);
    hr_list_init(&ss->user_list);
    hr_list_init(&ss->unacked);
    hr_list_init(&ss->txs);
    hr_timer_init(&ss->hb, on_hb_timer);
    hr_conn_set_data(c, ss);
}

static void on_close(hr_conn_t *c, uint16_t code, const char *reason, size_t reason_len)
{
    (void)code;
    (void)reason;
    (void)reason_len;
    sess_t *ss = hr_conn_data(c);
    if (!ss)
        return;
    hr_shard_t *sh = conn_shard(c);
    hr_loop_timer_stop(&sh->loop, &ss->hb);
    /* Spring's SessionDisconnectEvent: the backend that saw the session's /app messages
     * hears of its end (and may answer with messages, e.g. a "left" notice). */
    hr_http_client_t *hc =
        ss->used_app && sh->srv->stomp.app_webhook && !sh->stopping ? hr_stomp_http(sh) : NULL;
    if (hc) {
        json_t *ev = json_object();
        json_object_set_new(ev, "event", json_string("disconnect"));
        json_object_set_new(ev, "session", json_string(ss->id));
        json_object_set_new(ev, "user", ss->user ? json_string(ss->user) : json_null());
        char *text = json_dumps(ev, JSON_COMPACT);
        json_decref(ev);
        if (!text ||
            hr_http_client_post(hc, sh->srv->stomp.app_webhook, "application/json", text,
                                strlen(text), NULL, WEBHOOK_TIMEOUT_MS,
                                (size_t)sh->srv->opt.max_message, on_disconnect_hook, sh) != 0)
            hr_log_warn("stomp %s: could not send the disconnect event", ss->id);
        free(text);
    }
    while (!hr_list_empty(&ss->subs))
        drop_sub(ss, hr_list_entry(ss->subs.next, ssub_t, link));
    while (!hr_list_empty(&ss->txs))
        free_tx(ss, hr_list_entry(ss->txs.next, tx_t, link));
    hr_buf_deinit(&ss->in);
    hr_buf_deinit(&ss->scr);
    hr_free(ss->user);
    hr_free(ss);
    hr_conn_set_data(c, NULL);
}

const hr_route_callbacks_t hr_stomp_route_cb = {
    .on_open = on_open, .on_message = on_message, .on_close = on_close};

int hr_stomp_add_route(hr_server_t *s, const char *path, hr_stomp_app_fn app, void *data)
{
    static const char *const protocols[] = {"v12.stomp", "v11.stomp", "v10.stomp", NULL};
    if (!s || s->started)
        return HR_EINVAL;
    if (app) {
        s->stomp.app_fn = app;
        s->stomp.app_data = data;
    }
    return hr_server_add_route(s, path, &hr_stomp_route_cb, protocols, NULL);
}
