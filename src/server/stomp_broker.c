/* STOMP destinations on the broker (see stomp.h and docs/stomp.md).
 *
 * /topic/NAME is the channel NAME: a SEND becomes a channel publish (channels.c), which
 * reaches STOMP and JSON subscribers alike. /queue/NAME lives on the home shard of its
 * name: the home holds the waiting messages, the consumers in round-robin order and the
 * messages delivered but not yet acknowledged; consumers' shards talk to it through
 * inboxes. /user/USER/REST goes to every shard, where the sessions of USER subscribed to
 * /user/REST receive it. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "auth/grant.h"
#include "base/alloc.h"
#include "base/hash.h"
#include "base/log.h"
#include "broker/channel.h"
#include "herald/error.h"
#include "net/http_client.h"
#include "server/stomp.h"
#include "ws/utf8.h"

#define QUEUE_BUCKETS 256
#define QUEUE_MAX_MESSAGES 10000 /* waiting plus unacknowledged, per queue */

/* ---------------------------------------------------------------- messages */

static bool travels(hr_slice_t name)
{
    static const char *const own[] = {"destination",  "receipt",    "transaction", "content-length",
                                      "subscription", "message-id", "ack",         "id",
                                      "redelivered"};
    for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++)
        if (hr_slice_eq_str(name, own[i]))
            return false;
    return true;
}

hr_smsg_t *hr_smsg_create(const hr_stomp_header_t *h, size_t n, const void *body, size_t len)
{
    size_t bytes = len, keep = 0;
    for (size_t i = 0; i < n; i++)
        if (travels(h[i].name)) {
            bytes += h[i].name.len + h[i].value.len;
            keep++;
        }
    hr_smsg_t *m = hr_malloc(sizeof(*m) + keep * sizeof(hr_stomp_header_t) + bytes + 1);
    if (!m)
        return NULL;
    atomic_init(&m->refs, 1);
    m->headers = (hr_stomp_header_t *)m->data;
    uint8_t *p = m->data + keep * sizeof(hr_stomp_header_t);
    m->nheaders = 0;
    for (size_t i = 0; i < n; i++) {
        if (!travels(h[i].name))
            continue;
        hr_stomp_header_t *o = &m->headers[m->nheaders++];
        memcpy(p, h[i].name.ptr, h[i].name.len);
        o->name = hr_slice(p, h[i].name.len);
        p += h[i].name.len;
        memcpy(p, h[i].value.ptr, h[i].value.len);
        o->value = hr_slice(p, h[i].value.len);
        p += h[i].value.len;
    }
    if (len)
        memcpy(p, body, len);
    m->body = hr_slice(p, len);
    return m;
}

hr_smsg_t *hr_smsg_ref(hr_smsg_t *m)
{
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return m;
}

void hr_smsg_unref(hr_smsg_t *m)
{
    if (m && atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
        hr_free(m);
}

size_t hr_stomp_headers_from_json(const void *obj, hr_stomp_header_t *h, size_t cap)
{
    size_t n = 0;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v)
    {
        if (json_is_string(v) && n < cap)
            h[n++] = (hr_stomp_header_t){hr_slice(k, strlen(k)),
                                         hr_slice(json_string_value(v), json_string_length(v))};
    }
    return n;
}

/* ---------------------------------------------------------------- body <-> JSON */

static bool json_valid(const void *s, size_t n, bool container_only)
{
    json_error_t e;
    json_t *v = json_loadb(s, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    bool ok = v && (!container_only || json_is_object(v) || json_is_array(v));
    json_decref(v);
    return ok;
}

static bool has_json_type(const char *ctype, size_t n)
{
    for (size_t i = 0; i + 4 <= n; i++)
        if (strncasecmp(ctype + i, "json", 4) == 0)
            return true;
    return false;
}

int hr_stomp_body_to_json(const void *body, size_t len, const char *ctype, size_t ctype_len,
                          hr_buf_t *out, const char **errmsg)
{
    const char *s = body;
    size_t i = 0;
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
        i++;
    if (ctype && has_json_type(ctype, ctype_len)) {
        if (!json_valid(body, len, false)) {
            *errmsg = "body is not valid JSON (content-type says JSON)";
            return HR_EINVAL;
        }
        return hr_buf_append(out, body, len);
    }
    if (!ctype && i < len && (s[i] == '{' || s[i] == '[') && json_valid(body, len, true))
        return hr_buf_append(out, body, len);
    if (!hr_utf8_valid(body, len)) {
        *errmsg = "body is neither JSON nor UTF-8 text (channels carry JSON values)";
        return HR_EINVAL;
    }
    json_t *str = json_stringn(body, len);
    char *text = str ? json_dumps(str, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    json_decref(str);
    if (!text) {
        *errmsg = "out of memory";
        return HR_ENOMEM;
    }
    int rc = hr_buf_append_str(out, text);
    free(text);
    return rc;
}

/* ---------------------------------------------------------------- shard state */

typedef struct qmsg {
    hr_list_t link;
    uint64_t seq;
    uint64_t holder; /* consumer id while unacknowledged */
    uint64_t avoid;  /* a consumer that returned it (nack): another one first */
    bool redelivered;
    hr_smsg_t *m;
} qmsg_t;

typedef struct qcons {
    hr_list_t link;
    hr_qconsumer_t q;
} qcons_t;

typedef struct queue {
    struct queue *next;
    uint64_t hash;
    hr_list_t ready;    /* qmsg_t waiting, in order */
    hr_list_t inflight; /* qmsg_t delivered, not yet acknowledged */
    hr_list_t consumers;
    size_t nready, ninflight, nconsumers;
    size_t name_len;
    char name[];
} queue_t;

/* Message numbers, unique in the process: message-id "q<seq>" and "u<seq>". */
static atomic_ullong next_seq;

typedef struct hr_stomp_shard {
    queue_t *queues[QUEUE_BUCKETS];
    hr_topics_t users; /* "USER\n/REST" -> STOMP subscriptions of this shard */
    hr_http_client_t *http;
} hr_stomp_shard_t;

int hr_stomp_shard_init(hr_shard_t *sh)
{
    sh->stomp = hr_calloc(1, sizeof(*sh->stomp));
    if (!sh->stomp)
        return HR_ENOMEM;
    hr_topics_init(&sh->stomp->users);
    return 0;
}

static void free_msgs(hr_list_t *l)
{
    while (!hr_list_empty(l)) {
        qmsg_t *q = hr_list_entry(l->next, qmsg_t, link);
        hr_list_remove(&q->link);
        hr_smsg_unref(q->m);
        hr_free(q);
    }
}

void hr_stomp_shard_deinit(hr_shard_t *sh)
{
    hr_stomp_shard_t *st = sh->stomp;
    if (!st)
        return;
    for (size_t i = 0; i < QUEUE_BUCKETS; i++)
        while (st->queues[i]) {
            queue_t *q = st->queues[i];
            st->queues[i] = q->next;
            free_msgs(&q->ready);
            free_msgs(&q->inflight);
            while (!hr_list_empty(&q->consumers)) {
                qcons_t *c = hr_list_entry(q->consumers.next, qcons_t, link);
                hr_list_remove(&c->link);
                hr_free(c);
            }
            hr_free(q);
        }
    if (st->http)
        hr_http_client_destroy(st->http);
    hr_topics_deinit(&st->users);
    hr_free(st);
    sh->stomp = NULL;
}

hr_http_client_t *hr_stomp_http(hr_shard_t *sh)
{
    if (!sh->stomp->http)
        sh->stomp->http = hr_http_client_create(&sh->loop);
    return sh->stomp->http;
}

hr_topics_t *hr_stomp_users(hr_shard_t *sh)
{
    return &sh->stomp->users;
}

/* ---------------------------------------------------------------- queues (home side) */

static queue_t *find_queue(hr_shard_t *sh, const char *name, size_t len, bool create)
{
    uint64_t h = hr_hash_name(name, len);
    queue_t **b = &sh->stomp->queues[h % QUEUE_BUCKETS];
    for (queue_t *q = *b; q; q = q->next)
        if (q->hash == h && q->name_len == len && memcmp(q->name, name, len) == 0)
            return q;
    if (!create)
        return NULL;
    queue_t *q = hr_calloc(1, sizeof(*q) + len + 1);
    if (!q)
        return NULL;
    q->hash = h;
    hr_list_init(&q->ready);
    hr_list_init(&q->inflight);
    hr_list_init(&q->consumers);
    q->name_len = len;
    memcpy(q->name, name, len);
    q->next = *b;
    *b = q;
    return q;
}

/* Forgets a queue with nothing in it and nobody reading it. */
static void maybe_free_queue(hr_shard_t *sh, queue_t *q)
{
    if (q->nready || q->ninflight || q->nconsumers)
        return;
    queue_t **pp = &sh->stomp->queues[q->hash % QUEUE_BUCKETS];
    while (*pp != q)
        pp = &(*pp)->next;
    *pp = q->next;
    hr_free(q);
}

/* A delivery on its way to a consumer's shard. */
typedef struct qdeliv {
    hr_shard_t *home;
    hr_qconsumer_t q;
    uint64_t seq;
    bool redelivered;
    hr_smsg_t *m;
    size_t name_len;
    char name[];
} qdeliv_t;

static void queue_dispatch(hr_shard_t *sh, queue_t *q);

/* Home: a delivery came back (the consumer was gone). */
static void bounce_at_home(void *ctx, void *arg)
{
    hr_shard_t *sh = ctx;
    qdeliv_t *d = arg;
    queue_t *q = find_queue(sh, d->name, d->name_len, true);
    qmsg_t *back = NULL;
    if (q && !d->q.auto_ack) {
        /* Unacknowledged ones are still in inflight, unless the consumer's departure
         * already put them back. */
        for (hr_list_t *n = q->inflight.next; n != &q->inflight; n = n->next) {
            qmsg_t *x = hr_list_entry(n, qmsg_t, link);
            if (x->seq == d->seq && x->holder == d->q.cid) {
                back = x;
                hr_list_remove(&x->link);
                q->ninflight--;
                break;
            }
        }
    } else if (q) {
        back = hr_calloc(1, sizeof(*back));
        if (back) {
            back->seq = d->seq;
            back->m = hr_smsg_ref(d->m);
        }
    }
    if (back) {
        back->holder = 0;
        back->avoid = d->q.cid; /* its consumer is leaving: another one first */
        hr_list_push_front(&q->ready, &back->link);
        q->nready++;
        queue_dispatch(sh, q);
    }
    hr_smsg_unref(d->m);
    hr_free(d);
}

/* Consumer's shard: write it, or send it back. */
static void deliver_at_consumer(void *ctx, void *arg)
{
    hr_shard_t *sh = ctx;
    qdeliv_t *d = arg;
    if (!sh->stopping &&
        hr_stomp_session_queue_deliver(d->q.c, d->q.conn_seq, d->q.cid, d->name, d->name_len,
                                       d->seq, d->m, d->redelivered)) {
        hr_smsg_unref(d->m);
        hr_free(d);
        return;
    }
    hr_server__run_on(sh, d->home, bounce_at_home, d);
}

static qcons_t *next_consumer(queue_t *q, uint64_t avoid)
{
    qcons_t *first = hr_list_entry(q->consumers.next, qcons_t, link);
    if (avoid && first->q.cid == avoid && q->nconsumers > 1)
        first = hr_list_entry(first->link.next, qcons_t, link);
    /* Round-robin: the chosen one goes to the back. */
    hr_list_remove(&first->link);
    hr_list_push_back(&q->consumers, &first->link);
    return first;
}

static void queue_dispatch(hr_shard_t *sh, queue_t *q)
{
    while (q->nready && q->nconsumers) {
        qmsg_t *x = hr_list_entry(q->ready.next, qmsg_t, link);
        qcons_t *cons = next_consumer(q, x->avoid);
        qdeliv_t *d = hr_malloc(sizeof(*d) + q->name_len + 1);
        if (!d)
            return;
        hr_list_remove(&x->link);
        q->nready--;
        d->home = sh;
        d->q = cons->q;
        d->seq = x->seq;
        d->redelivered = x->redelivered;
        d->m = hr_smsg_ref(x->m);
        d->name_len = q->name_len;
        memcpy(d->name, q->name, q->name_len + 1);
        if (cons->q.auto_ack) {
            hr_smsg_unref(x->m);
            hr_free(x);
        } else {
            x->holder = cons->q.cid;
            hr_list_push_back(&q->inflight, &x->link);
            q->ninflight++;
        }
        hr_server__run_on(sh, cons->q.shard, deliver_at_consumer, d);
    }
}

/* Requests to a queue's home. */
typedef enum qop_kind { QOP_SEND, QOP_SUB, QOP_UNSUB, QOP_ACK, QOP_NACK } qop_kind_t;

typedef struct qop {
    qop_kind_t kind;
    hr_shard_t *from;
    hr_qconsumer_t q;
    hr_smsg_t *m;
    hr_stomp_done_fn done;
    void *ctx;
    int err;
    size_t nseqs;
    uint64_t *seqs;
    size_t name_len;
    char name[];
} qop_t;

static void qop_reply(void *ctx, void *arg)
{
    (void)ctx;
    qop_t *o = arg;
    if (o->done)
        o->done(o->ctx, o->err, o->err ? "queue is full" : "");
    hr_free(o);
}

static void requeue(queue_t *q, qmsg_t *x, uint64_t avoid)
{
    x->holder = 0;
    x->redelivered = true;
    x->avoid = avoid;
    hr_list_push_front(&q->ready, &x->link);
    q->nready++;
}

static void qop_at_home(void *ctx, void *arg)
{
    hr_shard_t *sh = ctx;
    qop_t *o = arg;
    queue_t *q = find_queue(sh, o->name, o->name_len, o->kind == QOP_SEND || o->kind == QOP_SUB);
    switch (o->kind) {
    case QOP_SEND: {
        qmsg_t *x =
            q && q->nready + q->ninflight < QUEUE_MAX_MESSAGES ? hr_calloc(1, sizeof(*x)) : NULL;
        if (!x) {
            o->err = q ? HR_ENOBUFS : HR_ENOMEM;
            hr_smsg_unref(o->m);
        } else {
            x->seq = atomic_fetch_add(&next_seq, 1) + 1;
            x->m = o->m;
            hr_list_push_back(&q->ready, &x->link);
            q->nready++;
            queue_dispatch(sh, q);
        }
        o->m = NULL;
        hr_server__run_on(sh, o->from, qop_reply, o);
        return;
    }
    case QOP_SUB: {
        qcons_t *c = q ? hr_calloc(1, sizeof(*c)) : NULL;
        if (c) {
            c->q = o->q;
            hr_list_push_back(&q->consumers, &c->link);
            q->nconsumers++;
            queue_dispatch(sh, q);
        }
        break;
    }
    case QOP_UNSUB:
        if (!q)
            break;
        for (hr_list_t *n = q->consumers.next; n != &q->consumers; n = n->next) {
            qcons_t *c = hr_list_entry(n, qcons_t, link);
            if (c->q.cid == o->q.cid) {
                hr_list_remove(&c->link);
                q->nconsumers--;
                hr_free(c);
                break;
            }
        }
        /* Its unacknowledged messages go back, oldest first, ahead of the waiting ones. */
        for (hr_list_t *n = q->inflight.prev; n != &q->inflight;) {
            qmsg_t *x = hr_list_entry(n, qmsg_t, link);
            n = n->prev;
            if (x->holder == o->q.cid) {
                hr_list_remove(&x->link);
                q->ninflight--;
                requeue(q, x, o->q.cid);
            }
        }
        queue_dispatch(sh, q);
        maybe_free_queue(sh, q);
        break;
    case QOP_ACK:
    case QOP_NACK:
        if (!q)
            break;
        for (size_t i = o->nseqs; i-- > 0;) { /* newest first: requeued ones keep order */
            for (hr_list_t *n = q->inflight.next; n != &q->inflight; n = n->next) {
                qmsg_t *x = hr_list_entry(n, qmsg_t, link);
                if (x->seq != o->seqs[i] || x->holder != o->q.cid)
                    continue;
                hr_list_remove(&x->link);
                q->ninflight--;
                if (o->kind == QOP_NACK) {
                    requeue(q, x, o->q.cid);
                } else {
                    hr_smsg_unref(x->m);
                    hr_free(x);
                }
                break;
            }
        }
        queue_dispatch(sh, q);
        maybe_free_queue(sh, q);
        break;
    }
    hr_free(o->seqs);
    hr_free(o);
}

static qop_t *qop_new(hr_shard_t *sh, qop_kind_t kind, const char *name, size_t len)
{
    qop_t *o = hr_calloc(1, sizeof(*o) + len + 1);
    if (!o)
        return NULL;
    o->kind = kind;
    o->from = sh;
    o->name_len = len;
    memcpy(o->name, name, len);
    return o;
}

static void qop_post(hr_shard_t *sh, qop_t *o)
{
    hr_server__run_on(sh, hr_server__home(sh->srv, o->name, o->name_len), qop_at_home, o);
}

int hr_stomp_queue_subscribe(hr_shard_t *sh, const char *name, size_t len, const hr_qconsumer_t *q)
{
    qop_t *o = qop_new(sh, QOP_SUB, name, len);
    if (!o)
        return HR_ENOMEM;
    o->q = *q;
    qop_post(sh, o);
    return 0;
}

void hr_stomp_queue_unsubscribe(hr_shard_t *sh, const char *name, size_t len, uint64_t cid)
{
    qop_t *o = qop_new(sh, QOP_UNSUB, name, len);
    if (!o) {
        hr_log_error("stomp: out of memory leaving queue %.*s", (int)len, name);
        return;
    }
    o->q.cid = cid;
    qop_post(sh, o);
}

void hr_stomp_queue_settle(hr_shard_t *sh, const char *name, size_t len, uint64_t cid,
                           const uint64_t *seqs, size_t n, bool ack)
{
    qop_t *o = qop_new(sh, ack ? QOP_ACK : QOP_NACK, name, len);
    uint64_t *copy = o && n ? hr_malloc(n * sizeof(*copy)) : NULL;
    if (!o || (n && !copy)) {
        hr_free(o);
        hr_log_error("stomp: out of memory settling messages of queue %.*s", (int)len, name);
        return;
    }
    if (n)
        memcpy(copy, seqs, n * sizeof(*copy));
    o->q.cid = cid;
    o->seqs = copy;
    o->nseqs = n;
    qop_post(sh, o);
}

/* ---------------------------------------------------------------- user destinations */

typedef struct udeliv {
    atomic_uint refs;
    hr_smsg_t *m;
    char msgid[32];
    size_t key_len;
    char key[];
} udeliv_t;

static void udeliv_at(void *ctx, void *arg)
{
    hr_shard_t *sh = ctx;
    udeliv_t *u = arg;
    if (!sh->stopping)
        hr_stomp_session_user_deliver(sh, u->key, u->key_len, u->msgid, u->m);
    if (atomic_fetch_sub_explicit(&u->refs, 1, memory_order_acq_rel) == 1) {
        hr_smsg_unref(u->m);
        hr_free(u);
    }
}

/* ---------------------------------------------------------------- routing */

typedef struct done_post {
    hr_stomp_done_fn done;
    void *ctx;
} done_post_t;

static void done_later(void *ctx, void *arg)
{
    (void)ctx;
    done_post_t *p = arg;
    p->done(p->ctx, 0, "");
    hr_free(p);
}

typedef struct pub_wait {
    hr_stomp_done_fn done;
    void *ctx;
} pub_wait_t;

static void on_channel_published(void *ctx, int err, uint64_t offset, const char *epoch)
{
    (void)offset;
    (void)epoch;
    pub_wait_t *w = ctx;
    if (w->done)
        w->done(w->ctx, err,
                err == HR_EAGAIN ? "server restarting: send again after reconnecting"
                : err == HR_CHAN_EUNKNOWN
                    ? "Redis did not answer: the message may or may not have been published; "
                      "send again to be sure"
                : err ? "could not publish"
                      : "");
    hr_free(w);
}

static int route_topic(hr_shard_t *sh, const char *name, size_t len, const char *ctype,
                       size_t ctype_len, const void *body, size_t blen, const hr_conn_t *client,
                       hr_stomp_done_fn done, void *ctx, const char **errmsg)
{
    if (!hr_channel_name_valid(name, len)) {
        *errmsg = hr_channel_pattern_valid(name, len) ? "cannot send to a wildcard destination"
                                                      : "invalid topic name";
        return HR_EINVAL;
    }
    if (client && !hr_auth_may_publish(hr_conn_grant(client),
                                       hr_channels_namespace(sh->srv, name, len), name, len)) {
        *errmsg = "not allowed";
        return HR_ESTATE;
    }
    hr_buf_t data;
    hr_buf_init(&data);
    int rc = hr_stomp_body_to_json(body, blen, ctype, ctype_len, &data, errmsg);
    pub_wait_t *w = rc == 0 ? hr_malloc(sizeof(*w)) : NULL;
    if (rc == 0 && !w) {
        rc = HR_ENOMEM;
        *errmsg = "out of memory";
    }
    if (rc == 0) {
        w->done = done;
        w->ctx = ctx;
        rc = hr_channels_publish(sh, name, len, (const char *)data.data, data.len,
                                 on_channel_published, w);
        if (rc) {
            hr_free(w);
            *errmsg = "out of memory";
        }
    }
    hr_buf_deinit(&data);
    return rc;
}

static bool user_name_valid(const char *s, size_t n)
{
    if (n == 0 || n > 255)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == '/' || s[i] == 0x7f)
            return false;
    return true;
}

int hr_stomp_route(hr_shard_t *sh, const char *dest, size_t dlen, const char *ctype,
                   size_t ctype_len, const hr_stomp_header_t *extra, size_t nextra,
                   const void *body, size_t blen, const hr_conn_t *client, hr_stomp_done_fn done,
                   void *ctx, const char **errmsg)
{
    if (dlen > 7 && memcmp(dest, "/topic/", 7) == 0)
        return route_topic(sh, dest + 7, dlen - 7, ctype, ctype_len, body, blen, client, done, ctx,
                           errmsg);
    bool queue = dlen > 7 && memcmp(dest, "/queue/", 7) == 0;
    bool user = dlen > 6 && memcmp(dest, "/user/", 6) == 0;
    if (!queue && !user) {
        *errmsg = dlen > 5 && memcmp(dest, "/app/", 5) == 0
                      ? "application destinations cannot be sent to from here"
                      : "unknown destination";
        return HR_EINVAL;
    }
    const char *user_end = NULL;
    if (user) {
        user_end = memchr(dest + 6, '/', dlen - 6);
        if (!user_end || !user_name_valid(dest + 6, (size_t)(user_end - dest - 6)) ||
            (size_t)(dest + dlen - user_end) < 2) {
            *errmsg = "user destinations are /user/USER/DESTINATION";
            return HR_EINVAL;
        }
    } else if (!hr_channel_name_valid(dest + 7, dlen - 7)) {
        *errmsg = "invalid queue name";
        return HR_EINVAL;
    }
    /* The message keeps content-type and the sender's own headers. */
    hr_stomp_header_t hs[HR_STOMP_MAX_HEADERS_CAP + 1];
    size_t n = 0;
    if (ctype)
        hs[n++] = (hr_stomp_header_t){hr_slice("content-type", 12), hr_slice(ctype, ctype_len)};
    for (size_t i = 0; i < nextra && n < HR_STOMP_MAX_HEADERS_CAP + 1; i++)
        if (!hr_slice_eq_str(extra[i].name, "content-type"))
            hs[n++] = extra[i];
    hr_smsg_t *m = hr_smsg_create(hs, n, body, blen);
    if (!m) {
        *errmsg = "out of memory";
        return HR_ENOMEM;
    }
    if (queue) {
        qop_t *o = qop_new(sh, QOP_SEND, dest + 7, dlen - 7);
        if (!o) {
            hr_smsg_unref(m);
            *errmsg = "out of memory";
            return HR_ENOMEM;
        }
        o->m = m;
        o->done = done;
        o->ctx = ctx;
        qop_post(sh, o);
        return 0;
    }
    /* /user/USER/REST -> key "USER\n/REST" on every shard. */
    size_t ulen = (size_t)(user_end - dest - 6), rlen = (size_t)(dest + dlen - user_end);
    udeliv_t *u = hr_malloc(sizeof(*u) + ulen + 1 + rlen + 1);
    done_post_t *p = done ? hr_malloc(sizeof(*p)) : NULL;
    if (!u || (done && !p)) {
        hr_free(u);
        hr_free(p);
        hr_smsg_unref(m);
        *errmsg = "out of memory";
        return HR_ENOMEM;
    }
    u->m = m;
    snprintf(u->msgid, sizeof(u->msgid), "u%llu",
             (unsigned long long)(atomic_fetch_add(&next_seq, 1) + 1));
    memcpy(u->key, dest + 6, ulen);
    u->key[ulen] = '\n';
    memcpy(u->key + ulen + 1, user_end, rlen);
    u->key_len = ulen + 1 + rlen;
    u->key[u->key_len] = 0;
    atomic_init(&u->refs, (unsigned)sh->srv->nshards);
    for (int i = 0; i < sh->srv->nshards; i++)
        hr_server__run_on(sh, &sh->srv->shards[i], udeliv_at, u);
    if (p) {
        p->done = done;
        p->ctx = ctx;
        hr_server__post(sh, done_later, p);
    }
    return 0;
}

/* ---------------------------------------------------------------- from any thread */

typedef struct any_send {
    size_t dlen, clen, blen;
    bool has_ctype;
    char buf[]; /* dest, ctype, body */
} any_send_t;

static void any_send_at(void *ctx, void *arg)
{
    hr_shard_t *sh = ctx;
    any_send_t *a = arg;
    const char *err = NULL;
    if (hr_stomp_route(sh, a->buf, a->dlen, a->has_ctype ? a->buf + a->dlen : NULL, a->clen, NULL,
                       0, a->buf + a->dlen + a->clen, a->blen, NULL, NULL, NULL, &err) != 0)
        hr_log_warn("stomp: hr_stomp_send to %.*s: %s", (int)a->dlen, a->buf, err);
    hr_free(a);
}

int hr_stomp_send(hr_server_t *s, const char *destination, const char *content_type,
                  const void *body, size_t len)
{
    if (!s || !destination || (!body && len))
        return HR_EINVAL;
    hr_shard_t *sh = hr_server__current_shard();
    if (sh && sh->srv == s) {
        const char *err = NULL;
        int rc = hr_stomp_route(sh, destination, strlen(destination), content_type,
                                content_type ? strlen(content_type) : 0, NULL, 0, body, len, NULL,
                                NULL, NULL, &err);
        return rc == HR_ESTATE ? HR_EINVAL : rc;
    }
    if (!s->started)
        return HR_ESTATE;
    size_t dlen = strlen(destination), clen = content_type ? strlen(content_type) : 0;
    any_send_t *a = hr_malloc(sizeof(*a) + dlen + clen + len + 1);
    if (!a)
        return HR_ENOMEM;
    a->dlen = dlen;
    a->clen = clen;
    a->blen = len;
    a->has_ctype = content_type != NULL;
    memcpy(a->buf, destination, dlen);
    memcpy(a->buf + dlen, content_type ? content_type : "", clen);
    if (len)
        memcpy(a->buf + dlen + clen, body, len);
    hr_server__post(&s->shards[0], any_send_at, a);
    return 0;
}
