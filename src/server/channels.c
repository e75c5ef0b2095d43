/* Channels across shards (see channels.h).
 *
 * Publish: the publisher's shard posts the request to the channel's home; the home
 * assigns the next offset, encodes the message frame once (JSON protocol, ws header),
 * stores a reference in the history ring, and posts one reference to every shard, which
 * hands it to its local subscribers; the offset goes back to the publisher's shard.
 * Subscribe with recovery: the subscriber's shard registers the subscription as pending,
 * asks the home, and gets back the top offset and the missed frames; live frames that
 * reach a pending subscription were published before the home answered (the home's
 * posts arrive in order), so they are in the answer and are skipped, and frames after it
 * carry larger offsets: no gap, no duplicate. */
#include <jansson.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/hash.h"
#include "base/log.h"
#include "broker/channel.h"
#include "cluster/cluster.h"
#include "cluster/envelope.h"
#include "herald/error.h"
#include "proto/json_proto.h"
#include "server/channels.h"
#include "server/http_stream.h"
#include "server/stomp.h"

#define GC_INTERVAL_MS 1000
#define HOME_IDLE_MS (10 * 60 * 1000) /* an empty channel keeps its offsets this long */

typedef struct hist_item {
    hr_frame_t *frame;
    uint32_t data_len; /* the data value ends the payload, before the final '}' */
} hist_item_t;

/* ---------------------------------------------------------------- homes */

static void release_item(void *p)
{
    hist_item_t *it = p;
    hr_frame_unref(it->frame);
    hr_free(it);
}

static hr_chan_home_t *find_home(hr_shard_t *sh, const char *name, size_t len)
{
    if (!sh->nhome_buckets)
        return NULL;
    uint64_t h = hr_hash_name(name, len);
    for (hr_chan_home_t *c = sh->homes[h & (sh->nhome_buckets - 1)]; c; c = c->next)
        if (c->hash == h && c->name_len == len && memcmp(c->name, name, len) == 0)
            return c;
    return NULL;
}

static void new_epoch(char out[13])
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    uint8_t raw[12];
    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        uint64_t t = hr_clock_ms() * 6364136223846793005ull;
        memcpy(raw, &t, 8);
        memcpy(raw + 8, &t, 4);
    }
    for (int i = 0; i < 12; i++)
        out[i] = alphabet[raw[i] % 36];
    out[12] = 0;
}

/* With --redis the ring is also the cache that fills a subscription's answer with what
 * arrived while Redis was read (see on_sub_read): never smaller than REDIS_CACHE_MIN. */
#define REDIS_CACHE_MIN 64
static uint32_t cache_capacity(const hr_server_t *srv, const hr_namespace_t *ns)
{
    if (hr_cluster_enabled(srv) && ns->history_size < REDIS_CACHE_MIN)
        return REDIS_CACHE_MIN;
    return ns->history_size;
}

static hr_chan_home_t *get_home(hr_shard_t *sh, const char *name, size_t len)
{
    hr_chan_home_t *c = find_home(sh, name, len);
    if (c)
        return c;
    if (sh->nhomes >= sh->nhome_buckets) {
        size_t n = sh->nhome_buckets ? sh->nhome_buckets * 2 : 64;
        hr_chan_home_t **b = hr_calloc(n, sizeof(*b));
        if (!b)
            return NULL;
        for (size_t i = 0; i < sh->nhome_buckets; i++)
            while (sh->homes[i]) {
                hr_chan_home_t *x = sh->homes[i];
                sh->homes[i] = x->next;
                x->next = b[x->hash & (n - 1)];
                b[x->hash & (n - 1)] = x;
            }
        hr_free(sh->homes);
        sh->homes = b;
        sh->nhome_buckets = n;
    }
    c = hr_calloc(1, sizeof(*c) + len + 1);
    if (!c)
        return NULL;
    c->ns = hr_channels_namespace(sh->srv, name, len);
    char epoch[13];
    new_epoch(epoch);
    if (hr_history_init(&c->history, cache_capacity(sh->srv, c->ns), c->ns->history_ttl_ms, epoch,
                        release_item) != 0) {
        hr_free(c);
        return NULL;
    }
    hr_presence_init(&c->presence);
    c->hash = hr_hash_name(name, len);
    c->name_len = len;
    memcpy(c->name, name, len);
    c->next = sh->homes[c->hash & (sh->nhome_buckets - 1)];
    sh->homes[c->hash & (sh->nhome_buckets - 1)] = c;
    sh->nhomes++;
    return c;
}

static void free_home(hr_shard_t *sh, hr_chan_home_t *c)
{
    hr_chan_home_t **pp = &sh->homes[c->hash & (sh->nhome_buckets - 1)];
    while (*pp != c)
        pp = &(*pp)->next;
    *pp = c->next;
    sh->nhomes--;
    hr_history_deinit(&c->history);
    hr_presence_deinit(&c->presence);
    hr_free(c);
}

/* Expires history and forgets channels that have had nothing for a long time. */
static void on_gc(hr_timer_t *t)
{
    hr_shard_t *sh = hr_list_entry(t, hr_shard_t, chan_timer);
    uint64_t now = sh->loop.now_ms, wall = hr_loop_wall_ms();
    for (size_t i = 0; i < sh->nhome_buckets; i++) {
        for (hr_chan_home_t *c = sh->homes[i]; c;) {
            hr_chan_home_t *next = c->next;
            hr_history_expire(&c->history, wall);
            if (hr_history_count(&c->history) == 0 && hr_presence_count(&c->presence) == 0 &&
                !c->presence_dirty && now - c->last_used_ms > HOME_IDLE_MS)
                free_home(sh, c);
            c = next;
        }
    }
    hr_loop_timer_start(&sh->loop, &sh->chan_timer, GC_INTERVAL_MS);
}

const hr_namespace_t *hr_channels_namespace(const hr_server_t *srv, const char *name, size_t len)
{
    return hr_namespaces_lookup(&srv->namespaces, name, len);
}

int hr_channels_shard_init(hr_shard_t *sh)
{
    hr_topics_init(&sh->chan_subs);
    hr_topics_init(&sh->chan_patterns);
    hr_timer_init(&sh->chan_timer, on_gc);
    hr_loop_timer_start(&sh->loop, &sh->chan_timer, GC_INTERVAL_MS);
    return 0;
}

void hr_channels_shard_deinit(hr_shard_t *sh)
{
    hr_loop_timer_stop(&sh->loop, &sh->chan_timer);
    for (size_t i = 0; i < sh->nhome_buckets; i++)
        while (sh->homes[i])
            free_home(sh, sh->homes[i]);
    hr_free(sh->homes);
    sh->homes = NULL;
    sh->nhome_buckets = 0;
    hr_topics_deinit(&sh->chan_subs);
    hr_topics_deinit(&sh->chan_patterns);
}

/* ---------------------------------------------------------------- delivery */

/* Which subscriptions of a shard a delivery is for, and how exact ones are checked. */
enum { SCOPE_ALL, SCOPE_EXACT, SCOPE_PATTERN };
enum {
    CHECK_NONE,    /* every subscription, pending ones too (presence events) */
    CHECK_OFFSETS, /* live ones below the offset; moves their last offset */
    CHECK_LIVE,    /* live ones, offset untouched (outage and raw backend messages) */
    CHECK_RESET,   /* live ones; their last offset becomes this one (a new epoch) */
};

typedef struct delivery {
    atomic_uint refs;
    hr_frame_t *frame;
    uint64_t offset;       /* 0: a presence event or a raw backend message (not in history) */
    bool message;          /* false: a presence event */
    uint8_t scope;         /* SCOPE_*: with --redis, exact and pattern arrive apart */
    uint8_t check;         /* CHECK_* for exact subscriptions (patterns are never checked) */
    const char *glob;      /* SCOPE_PATTERN: the Redis glob it came through (after name) */
    uint32_t data_len;     /* the data value ends the frame's payload, before the final '}' */
    uint64_t published_ns; /* CLOCK_MONOTONIC at the home: herald_publish_latency_seconds */
    char epoch[24];
    _Atomic(hr_refbuf_t *) stomp[2]; /* STOMP MESSAGE tails, built by the first STOMP reader */
    size_t name_len;
    char name[];
} delivery_t;

static void delivery_unref(delivery_t *d)
{
    if (atomic_fetch_sub_explicit(&d->refs, 1, memory_order_acq_rel) == 1) {
        hr_frame_unref(d->frame);
        hr_refbuf_unref(atomic_load(&d->stomp[0]));
        hr_refbuf_unref(atomic_load(&d->stomp[1]));
        hr_free(d);
    }
}

/* The STOMP view of a delivery. */
static hr_chan_msg_t chan_msg(delivery_t *d)
{
    const hr_frame_t *f = d->frame;
    const char *payload = (const char *)f->plain->data + f->hdr_len;
    hr_chan_msg_t m = {.name = d->name,
                       .name_len = d->name_len,
                       .offset = d->offset,
                       .epoch = d->epoch,
                       .data = hr_slice(payload + f->payload_len - 1 - d->data_len, d->data_len),
                       .stomp = d->stomp};
    return m;
}

typedef struct pattern_walk {
    const delivery_t *d;
    hr_topic_t *hits[64];
    size_t n;
} pattern_walk_t;

static void collect_patterns(hr_topic_t *tp, void *ctx)
{
    pattern_walk_t *w = ctx;
    if (w->n < 64 && hr_channel_match(tp->name, tp->name_len, w->d->name, w->d->name_len))
        w->hits[w->n++] = tp;
}

static void send_to_topic(hr_topic_t *tp, delivery_t *d, int check, hr_slow_policy_t policy)
{
    hr_chan_msg_t m;
    bool have_m = false;
    /* A slow consumer is only marked closing here; its subscriptions stay until it is
     * freed, so the list does not change under this walk. */
    for (hr_list_t *n = tp->subs.next; n != &tp->subs; n = n->next) {
        hr_sub_t *sub = hr_list_entry(n, hr_sub_t, topic_link);
        if (check != CHECK_NONE && sub->state != HR_SUB_LIVE)
            continue;
        if (check == CHECK_OFFSETS) {
            if (d->offset <= sub->last_offset)
                continue;
            sub->last_offset = d->offset;
        } else if (check == CHECK_RESET) {
            sub->last_offset = d->offset;
        }
        if (sub->kind == HR_SUB_STOMP) {
            if (!d->message)
                continue; /* presence events are for the JSON protocol */
            if (!have_m) {
                m = chan_msg(d);
                have_m = true;
            }
            hr_stomp_session_channel_deliver(sub, &m, policy);
            continue;
        }
        if (sub->kind == HR_SUB_HTTP) { /* an SSE stream or a waiting long poll */
            if (!have_m) {
                m = chan_msg(d);
                have_m = true;
            }
            hr_http_stream_deliver(sub, d->frame, &m);
            continue;
        }
        hr_session_deliver(sub->owner, d->frame, policy);
    }
}

static uint64_t clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* n deliveries of one message were queued on sh: one observation each of the time from
 * the publish at the home until now. One clock read per shard and message rather than per
 * subscriber: the walk that queues to one shard's subscribers takes well under the first
 * bucket (0.5 ms) unless it holds tens of thousands of them. */
static void observe_latency(hr_shard_t *sh, const delivery_t *d, uint64_t n)
{
    if (!n || !d->message)
        return; /* presence events are not publishes */
    uint64_t now = clock_ns(), ns = now > d->published_ns ? now - d->published_ns : 0;
    int i = 0;
    while (i < HR_LATENCY_BUCKETS && ns > (uint64_t)hr_latency_bound_us(i) * 1000u)
        i++;
    sh->stats.publish_latency[i] += n;
    sh->stats.publish_latency_ns += ns * n;
}

/* --redis: a pattern subscription gets a message through the one PSUBSCRIBE glob its
 * pattern maps to, though several globs of the node may match the channel. Built in
 * zscratch, as the other inbox callbacks here do: no allocation per message and hit. */
static bool same_glob(hr_shard_t *sh, const hr_topic_t *tp, const char *glob)
{
    const char *prefix = hr_cluster_prefix(sh->srv);
    hr_buf_t *b = &sh->zscratch;
    b->len = 0;
    return hr_cluster_redis_channel(b, hr_slice(prefix, strlen(prefix)),
                                    hr_slice(tp->name, tp->name_len), true) == 0 &&
           b->len == strlen(glob) && memcmp(b->data, glob, b->len) == 0;
}

static void deliver_here(void *ctx, void *arg)
{
    hr_shard_t *sh = ctx;
    delivery_t *d = arg;
    /* Every queued frame counts one messages_out: the difference is this message's
     * deliveries here (subscribers dropped as slow consumers are not counted). */
    uint64_t out0 = sh->stats.messages_out;
    if (!sh->stopping) {
        hr_slow_policy_t policy = hr_channels_namespace(sh->srv, d->name, d->name_len)->slow;
        hr_topic_t *tp =
            d->scope == SCOPE_PATTERN ? NULL : hr_topics_find(&sh->chan_subs, d->name, d->name_len);
        if (tp)
            send_to_topic(tp, d, d->check, policy);
        if (sh->chan_patterns.count && d->scope != SCOPE_EXACT) {
            pattern_walk_t w = {.d = d};
            hr_topics_foreach(&sh->chan_patterns, collect_patterns, &w);
            for (size_t i = 0; i < w.n; i++)
                if (d->scope != SCOPE_PATTERN || same_glob(sh, w.hits[i], d->glob))
                    send_to_topic(w.hits[i], d, CHECK_NONE, policy);
        }
    }
    observe_latency(sh, d, sh->stats.messages_out - out0);
    delivery_unref(d);
}

/* A delivery of frame (its reference is taken over), or NULL (frame released). */
static delivery_t *delivery_new(hr_server_t *srv, const char *name, size_t len, hr_frame_t *frame,
                                uint64_t offset, uint32_t data_len, const char *epoch,
                                const char *glob, size_t glen)
{
    delivery_t *d = hr_malloc(sizeof(*d) + len + 1 + (glob ? glen + 1 : 0));
    if (!d) {
        hr_frame_unref(frame);
        return NULL;
    }
    atomic_init(&d->refs, (unsigned)srv->nshards);
    d->frame = frame;
    d->offset = offset;
    d->message = true;
    d->scope = SCOPE_ALL;
    d->check = offset ? CHECK_OFFSETS : CHECK_NONE;
    d->glob = NULL;
    d->data_len = data_len;
    d->published_ns = clock_ns();
    snprintf(d->epoch, sizeof(d->epoch), "%s", epoch);
    atomic_init(&d->stomp[0], NULL);
    atomic_init(&d->stomp[1], NULL);
    d->name_len = len;
    memcpy(d->name, name, len);
    d->name[len] = 0;
    if (glob) {
        char *g = d->name + len + 1;
        memcpy(g, glob, glen);
        g[glen] = 0;
        d->glob = g;
    }
    return d;
}

/* To every shard (self: the posting shard, NULL from the bridge thread). */
static void delivery_post(hr_server_t *srv, hr_shard_t *self, delivery_t *d)
{
    for (int i = 0; i < srv->nshards; i++) {
        if (self)
            hr_server__run_on(self, &srv->shards[i], deliver_here, d);
        else
            hr_server__post(&srv->shards[i], deliver_here, d);
    }
}

/* From the home: one frame to every shard's subscribers of the channel. */
static void fan_out(hr_shard_t *home, const hr_chan_home_t *c, hr_frame_t *frame, uint64_t offset,
                    uint32_t data_len)
{
    delivery_t *d = delivery_new(home->srv, c->name, c->name_len, frame, offset, data_len,
                                 c->history.epoch, NULL, 0);
    if (!d)
        return;
    d->message = offset != 0;
    delivery_post(home->srv, home, d);
}

/* ---------------------------------------------------------------- publish */

typedef struct pub_req {
    hr_shard_t *from;
    hr_chan_publish_cb cb;
    void *ctx;
    int err;
    bool outage; /* --redis: Redis is down, deliver on this node only */
    uint64_t offset;
    char epoch[24];
    size_t name_len, data_len;
    char buf[]; /* name, NUL, data, NUL */
} pub_req_t;

static void outage_publish(hr_shard_t *sh, pub_req_t *r);

static void pub_reply(void *ctx, void *arg)
{
    pub_req_t *r = arg;
    r->cb(r->ctx, r->err, r->offset, r->epoch);
    hr_free(r);
}

static void pub_at_home(void *ctx, void *arg)
{
    hr_shard_t *sh = ctx;
    pub_req_t *r = arg;
    const char *name = r->buf, *data = r->buf + r->name_len + 1;
    if (atomic_load(&sh->srv->frozen)) {
        /* Handed over to a new process (handoff.c): the publisher retries there. */
        r->err = HR_EAGAIN;
        hr_server__run_on(sh, r->from, pub_reply, r);
        return;
    }
    if (r->outage) {
        outage_publish(sh, r);
        return;
    }
    hr_chan_home_t *c = get_home(sh, name, r->name_len);
    hist_item_t *it = c ? hr_malloc(sizeof(*it)) : NULL;
    hr_buf_t *out = &sh->zscratch;
    out->len = 0;
    uint64_t now = hr_loop_wall_ms();
    uint64_t offset = c ? c->history.next_offset : 0;
    hr_frame_t *f = NULL;
    if (it && hr_jp_encode_message(out, hr_slice(name, r->name_len), offset,
                                   hr_slice(c->history.epoch, strlen(c->history.epoch)), now,
                                   hr_slice(data, r->data_len)) == 0)
        f = hr_frame_create(out->data, out->len, false);
    if (!f) {
        hr_free(it);
        r->err = HR_ENOMEM;
    } else {
        it->frame = hr_frame_ref(f);
        it->data_len = (uint32_t)r->data_len;
        c->last_used_ms = sh->loop.now_ms;
        r->offset = hr_history_append(&c->history, it, now);
        snprintf(r->epoch, sizeof(r->epoch), "%s", c->history.epoch);
        fan_out(sh, c, f, r->offset, (uint32_t)r->data_len);
    }
    hr_server__run_on(sh, r->from, pub_reply, r);
}

/* --redis: a subscription recovers at most this many messages, or the namespace's
 * history size if larger. */
#define REDIS_RECOVER_MAX 1000u
/* --redis: Redis keys live at least this long after the last publish. */
#define REDIS_KEEP_MIN_MS (6ull * 3600 * 1000)

static uint64_t redis_keep_ms(const hr_namespace_t *ns)
{
    return ns->history_ttl_ms > REDIS_KEEP_MIN_MS ? ns->history_ttl_ms : REDIS_KEEP_MIN_MS;
}

static void on_redis_published(void *ctx, const hr_cluster_reply_t *x)
{
    pub_req_t *r = ctx;
    const char *epoch = "";
    switch (hr_cluster_publish_outcome(x, &r->offset, &epoch)) {
    case HR_CLUSTER_PUB_DONE:
        /* Delivery, this node's included, comes back through the Redis subscription. */
        snprintf(r->epoch, sizeof(r->epoch), "%s", epoch);
        pub_reply(NULL, r);
        return;
    case HR_CLUSTER_PUB_UNKNOWN:
        /* Sent, no answer: Redis may have published it, and then this node's subscribers
         * get it from there. Delivering it here too could give it twice; the publisher
         * is told and may send it again. */
        r->offset = 0;
        r->err = HR_CHAN_EUNKNOWN;
        pub_reply(NULL, r);
        return;
    case HR_CLUSTER_PUB_NOT_RUN:
        break;
    }
    /* Never sent (Redis known down) or refused by Redis before it published: this
     * node's subscribers still get it. */
    r->outage = true;
    hr_server__run_on(r->from, hr_server__home(r->from->srv, r->buf, r->name_len), pub_at_home, r);
}

/* The publish script (src/cluster/scripts.c): offset, epoch, history, PUBLISH at once. */
static int redis_publish(hr_shard_t *sh, pub_req_t *r)
{
    const hr_namespace_t *ns = hr_channels_namespace(sh->srv, r->buf, r->name_len);
    const char *prefix = hr_cluster_prefix(sh->srv), *node = hr_cluster_node_id(sh->srv);
    char size[24], keep[24], cand[13];
    snprintf(size, sizeof(size), "%u", ns->history_size);
    snprintf(keep, sizeof(keep), "%llu", (unsigned long long)redis_keep_ms(ns));
    new_epoch(cand);
    const char *argv[7] = {prefix, r->buf, r->buf + r->name_len + 1, node, size, keep, cand};
    size_t lens[7] = {strlen(prefix), r->name_len,  r->data_len, strlen(node),
                      strlen(size),   strlen(keep), strlen(cand)};
    return hr_cluster_eval_tracked(sh, &hr_cluster_publish_script, 0, 7, argv, lens,
                                   on_redis_published, r);
}

/* Redis is down: the home gives the message an offset under an epoch that exists only
 * on this node, so nobody mistakes it for Redis' history; exact subscribers' last
 * offsets stay (Redis' next offset may be lower), and recovery across it says
 * recovered:false. */
static void outage_publish(hr_shard_t *sh, pub_req_t *r)
{
    const char *name = r->buf, *data = r->buf + r->name_len + 1;
    hr_chan_home_t *c = get_home(sh, name, r->name_len);
    hr_buf_t *out = &sh->zscratch;
    out->len = 0;
    hr_frame_t *f = NULL;
    if (c && !c->outage_epoch[0]) {
        new_epoch(c->outage_epoch);
        c->outage_next = hr_history_top(&c->history) + 1;
    }
    uint64_t now = hr_loop_wall_ms();
    if (c && hr_jp_encode_message(out, hr_slice(name, r->name_len), c->outage_next,
                                  hr_slice(c->outage_epoch, strlen(c->outage_epoch)), now,
                                  hr_slice(data, r->data_len)) == 0)
        f = hr_frame_create(out->data, out->len, false);
    delivery_t *d = f ? delivery_new(sh->srv, name, r->name_len, f, c->outage_next,
                                     (uint32_t)r->data_len, c->outage_epoch, NULL, 0)
                      : NULL;
    if (!d) {
        r->err = HR_ENOMEM;
    } else {
        c->last_used_ms = sh->loop.now_ms;
        r->offset = c->outage_next++;
        snprintf(r->epoch, sizeof(r->epoch), "%s", c->outage_epoch);
        d->check = CHECK_LIVE;
        delivery_post(sh->srv, sh, d);
    }
    hr_server__run_on(sh, r->from, pub_reply, r);
}

int hr_channels_publish(hr_shard_t *sh, const char *name, size_t len, const char *data, size_t dlen,
                        hr_chan_publish_cb cb, void *ctx)
{
    pub_req_t *r = hr_malloc(sizeof(*r) + len + dlen + 2);
    if (!r)
        return HR_ENOMEM;
    *r = (pub_req_t){.from = sh, .cb = cb, .ctx = ctx, .name_len = len, .data_len = dlen};
    memcpy(r->buf, name, len);
    r->buf[len] = 0;
    memcpy(r->buf + len + 1, data, dlen);
    r->buf[len + 1 + dlen] = 0;
    if (hr_cluster_enabled(sh->srv)) {
        if (!atomic_load(&sh->srv->frozen) && hr_cluster_up(sh->srv) && redis_publish(sh, r) == 0)
            return 0;
        r->outage = true;
    }
    hr_server__run_on(sh, hr_server__home(sh->srv, name, len), pub_at_home, r);
    return 0;
}

/* ---------------------------------------------------------------- from Redis */

/* Empties the cache ring of c, which continues at next under epoch. */
static void cache_reset(hr_chan_home_t *c, const char *epoch, uint64_t next)
{
    uint32_t cap = c->history.capacity;
    uint64_t ttl = c->history.ttl_ms;
    hr_history_deinit(&c->history);
    if (hr_history_init(&c->history, cap, ttl, epoch, release_item) != 0) {
        char e[13];
        new_epoch(e); /* out of memory: an empty ring, which just never matches */
        hr_history_init(&c->history, 0, ttl, e, release_item);
    }
    c->history.next_offset = next;
}

typedef struct redis_msg {
    hr_frame_t *frame;
    uint64_t offset; /* 0: a raw backend PUBLISH */
    uint64_t time_ms;
    uint32_t data_len;
    char epoch[HR_HISTORY_EPOCH_MAX + 1];
    size_t name_len;
    char name[];
} redis_msg_t;

/* On the channel's home, in the order Redis published (one subscriber connection, one
 * inbox): the cache takes the message and every shard's exact subscribers get it. */
static void redis_at_home(void *ctx, void *arg)
{
    hr_shard_t *sh = ctx;
    redis_msg_t *m = arg;
    hr_chan_home_t *c = get_home(sh, m->name, m->name_len);
    int check = m->offset ? CHECK_OFFSETS : CHECK_LIVE;
    if (!c) {
        hr_frame_unref(m->frame);
        hr_free(m);
        return;
    }
    c->last_used_ms = sh->loop.now_ms;
    if (m->offset) {
        c->outage_epoch[0] = 0; /* Redis is back: the next outage gets a new epoch */
        if (strcmp(m->epoch, c->history.epoch) != 0) {
            cache_reset(c, m->epoch, m->offset); /* Redis lost its keys, or first sight */
            check = CHECK_RESET;
        } else if (m->offset < c->history.next_offset) {
            hr_frame_unref(m->frame); /* seen already */
            hr_free(m);
            return;
        } else if (m->offset > c->history.next_offset) {
            cache_reset(c, m->epoch, m->offset); /* the cache stays consecutive */
        }
        hist_item_t *it = hr_malloc(sizeof(*it));
        if (it) {
            it->frame = hr_frame_ref(m->frame);
            it->data_len = m->data_len;
            hr_history_append(&c->history, it, m->time_ms);
        } else {
            cache_reset(c, m->epoch, m->offset + 1);
        }
    }
    delivery_t *d = delivery_new(sh->srv, m->name, m->name_len, m->frame, m->offset, m->data_len,
                                 m->epoch, NULL, 0);
    if (d) {
        d->scope = SCOPE_EXACT;
        d->check = (uint8_t)check;
        delivery_post(sh->srv, sh, d);
    }
    hr_free(m);
}

/* Another node's presence change: an event for this node's subscribers (this node's own
 * were delivered locally when they happened). */
static int presence_from_redis(hr_server_t *srv, hr_buf_t *scratch, const char *name, size_t len,
                               const struct hr_cluster_env *env, const char *glob, size_t glen)
{
    if (hr_slice_eq_str(env->node, hr_cluster_node_id(srv)))
        return 0;
    char cid[24];
    int n = snprintf(cid, sizeof(cid), "%llu", (unsigned long long)env->client);
    scratch->len = 0;
    hr_frame_t *f = NULL;
    if (hr_jp_encode_presence_event(scratch, env->join ? HR_JP_JOIN : HR_JP_LEAVE,
                                    hr_slice(name, len), hr_slice(cid, (size_t)n), env->data) == 0)
        f = hr_frame_create(scratch->data, scratch->len, false);
    delivery_t *d = f ? delivery_new(srv, name, len, f, 0, 0, "", glob, glen) : NULL;
    if (!d)
        return HR_ENOMEM;
    d->message = false;
    d->scope = glob ? SCOPE_PATTERN : SCOPE_EXACT;
    delivery_post(srv, NULL, d);
    return 0;
}

int hr_channels__from_redis(hr_server_t *srv, hr_buf_t *scratch, const char *name, size_t len,
                            const struct hr_cluster_env *env, const char *glob, size_t glen)
{
    if (!hr_channel_name_valid(name, len) || env->data.len > UINT32_MAX)
        return HR_EINVAL;
    if (env->presence)
        return presence_from_redis(srv, scratch, name, len, env, glob, glen);
    /* Nodes publish validated JSON; a backend's (raw PUBLISH or FCALL) is checked here,
     * so that a subscriber never gets a broken frame. */
    if (!env->herald || hr_slice_eq_str(env->node, "backend")) {
        json_t *v = json_loadb(env->data.ptr, env->data.len, JSON_DECODE_ANY, NULL);
        if (!v) {
            hr_log_warn("redis: message on channel %.*s dropped: data is not JSON", (int)len, name);
            return HR_EINVAL;
        }
        json_decref(v);
    }
    char epoch[HR_HISTORY_EPOCH_MAX + 1] = "";
    if (env->herald)
        snprintf(epoch, sizeof(epoch), "%.*s", (int)env->epoch.len, (const char *)env->epoch.ptr);
    uint64_t time_ms = env->herald ? env->time_ms : hr_loop_wall_ms();
    scratch->len = 0;
    hr_frame_t *f = NULL;
    if (hr_jp_encode_message(scratch, hr_slice(name, len), env->offset,
                             hr_slice(epoch, strlen(epoch)), time_ms, env->data) == 0)
        f = hr_frame_create(scratch->data, scratch->len, false);
    if (!f)
        return HR_ENOMEM;
    if (glob) {
        delivery_t *d = delivery_new(srv, name, len, f, env->offset, (uint32_t)env->data.len, epoch,
                                     glob, glen);
        if (!d)
            return HR_ENOMEM;
        d->scope = SCOPE_PATTERN;
        delivery_post(srv, NULL, d);
        return 0;
    }
    redis_msg_t *m = hr_malloc(sizeof(*m) + len + 1);
    if (!m) {
        hr_frame_unref(f);
        return HR_ENOMEM;
    }
    m->frame = f;
    m->offset = env->offset;
    m->time_ms = time_ms;
    m->data_len = (uint32_t)env->data.len;
    snprintf(m->epoch, sizeof(m->epoch), "%s", epoch);
    m->name_len = len;
    memcpy(m->name, name, len);
    m->name[len] = 0;
    hr_server__post(hr_server__home(srv, name, len), redis_at_home, m);
    return 0;
}

/* ---------------------------------------------------------------- presence events */

static void presence_event(hr_shard_t *home, const hr_chan_home_t *c, hr_jp_presence_t ev,
                           uint64_t client, const char *user)
{
    char cid[24];
    int n = snprintf(cid, sizeof(cid), "%llu", (unsigned long long)client);
    hr_buf_t *out = &home->zscratch;
    out->len = 0;
    if (hr_jp_encode_presence_event(out, ev, hr_slice(c->name, c->name_len),
                                    hr_slice(cid, (size_t)n),
                                    hr_slice(user, user ? strlen(user) : 0)) != 0)
        return;
    hr_frame_t *f = hr_frame_create(out->data, out->len, false);
    if (f)
        fan_out(home, c, f, 0, 0);
}

/* --redis: a presence write of one channel, on its home: its name until Redis answers. */
typedef struct presence_op {
    hr_shard_t *home;
    bool resync;
    size_t name_len;
    char name[];
} presence_op_t;

static presence_op_t *presence_op_new(hr_shard_t *home, const hr_chan_home_t *c, bool resync)
{
    presence_op_t *op = hr_malloc(sizeof(*op) + c->name_len + 1);
    if (op) {
        *op = (presence_op_t){.home = home, .resync = resync, .name_len = c->name_len};
        memcpy(op->name, c->name, c->name_len + 1);
    }
    return op;
}

/* A failed write leaves the home dirty (kept, rewritten by the next resync); a confirmed
 * resync makes it clean. Answers come in the order the writes were sent. */
static void on_presence_written(void *ctx, const hr_cluster_reply_t *x)
{
    presence_op_t *op = ctx;
    hr_chan_home_t *c = find_home(op->home, op->name, op->name_len);
    bool ok = x && x->type == HR_CLUSTER_REPLY_INTEGER;
    if (c && !ok)
        c->presence_dirty = true;
    else if (c && op->resync)
        c->presence_dirty = false;
    hr_free(op);
}

/* --redis: shared presence (src/cluster/scripts.c). The hash field is NODE:CLIENT; the
 * change is announced to the other nodes through the channel's Redis channel. While
 * Redis is down the change is only local; the reconnect rewrites this node's fields
 * (of every home still there: a dirty one is not freed before that). */
static void redis_presence(hr_shard_t *sh, hr_chan_home_t *c, uint64_t client, const char *user,
                           bool join)
{
    if (!hr_cluster_up(sh->srv)) {
        c->presence_dirty = true;
        return;
    }
    const char *prefix = hr_cluster_prefix(sh->srv), *node = hr_cluster_node_id(sh->srv);
    char cid[24], keep[24];
    snprintf(cid, sizeof(cid), "%llu", (unsigned long long)client);
    snprintf(keep, sizeof(keep), "%llu", (unsigned long long)redis_keep_ms(c->ns));
    const char *argv[8] = {prefix,           c->name,          node, cid,
                           user ? user : "", join ? "1" : "0", keep, "1"};
    size_t lens[8];
    for (int i = 0; i < 8; i++)
        lens[i] = i == 1 ? c->name_len : strlen(argv[i]);
    presence_op_t *op = presence_op_new(sh, c, false);
    if (!op)
        c->presence_dirty = true; /* the write goes out, its failure would go unnoticed */
    if (hr_cluster_eval(sh, &hr_cluster_presence_script, 0, 8, argv, lens,
                        op ? on_presence_written : NULL, op) != 0) {
        hr_free(op);
        c->presence_dirty = true;
    }
}

typedef struct resync {
    const char **argv;
    size_t *lens;
    char (*ids)[24];
    size_t n, cap;
} resync_t;

static int resync_client(void *ctx, uint64_t client, const char *user, uint32_t subs)
{
    (void)subs;
    resync_t *w = ctx;
    if (w->n + 2 > w->cap)
        return 1;
    snprintf(w->ids[w->n / 2], 24, "%llu", (unsigned long long)client);
    w->argv[w->n] = w->ids[w->n / 2];
    w->argv[w->n + 1] = user ? user : "";
    w->n += 2;
    return 0;
}

void hr_channels__presence_resync(void *ctx, void *arg)
{
    (void)arg;
    hr_shard_t *sh = ctx;
    const char *prefix = hr_cluster_prefix(sh->srv), *node = hr_cluster_node_id(sh->srv);
    for (size_t b = 0; b < sh->nhome_buckets; b++) {
        for (hr_chan_home_t *c = sh->homes[b]; c; c = c->next) {
            if (!c->ns->presence)
                continue;
            char keep[24];
            snprintf(keep, sizeof(keep), "%llu", (unsigned long long)redis_keep_ms(c->ns));
            size_t count = hr_presence_count(&c->presence), cap = 4 + 2 * count;
            resync_t w = {.argv = hr_malloc(cap * sizeof(char *)),
                          .lens = hr_malloc(cap * sizeof(size_t)),
                          .ids = hr_malloc((count + 1) * 24),
                          .n = 4,
                          .cap = cap};
            if (w.argv && w.lens && w.ids) {
                w.argv[0] = prefix;
                w.argv[1] = c->name;
                w.argv[2] = node;
                w.argv[3] = keep;
                hr_presence_foreach(&c->presence, resync_client, &w);
                for (size_t i = 0; i < w.n; i++)
                    w.lens[i] = i == 1 ? c->name_len : strlen(w.argv[i]);
                presence_op_t *op = presence_op_new(sh, c, true);
                if (hr_cluster_eval(sh, &hr_cluster_presence_resync_script, 0, (int)w.n, w.argv,
                                    w.lens, op ? on_presence_written : NULL, op) != 0)
                    hr_free(op);
            }
            hr_free(w.argv);
            hr_free(w.lens);
            hr_free(w.ids);
        }
    }
}

/* ---------------------------------------------------------------- subscribe */

/* Releases an answer's references to history frames, and the array. */
static void free_frames(hr_frame_t **frames, size_t n)
{
    for (size_t i = 0; i < n; i++)
        hr_frame_unref(frames[i]);
    hr_free(frames);
}

typedef struct sub_req {
    hr_shard_t *from;
    hr_chan_subscribe_cb cb;
    void *ctx;
    hr_chan_sub_result_t res;
    bool since;
    uint64_t since_offset;
    uint64_t client;
    char since_epoch[72];
    char user[HR_PRESENCE_USER_MAX + 1];
    size_t name_len;
    char name[];
} sub_req_t;

static void sub_reply(void *ctx, void *arg)
{
    sub_req_t *r = arg;
    r->cb(r->ctx, &r->res);
    free_frames(r->res.frames, r->res.nframes);
    hr_free(r);
}

/* Presence of a new subscriber: with --redis posted by the subscriber's shard straight
 * to the home (not through the bridge), so that it stays ordered with the leave. */
static bool presence_join(hr_shard_t *sh, hr_chan_home_t *c, sub_req_t *r)
{
    if (c->ns->presence &&
        hr_presence_add(&c->presence, r->client, r->user[0] ? r->user : NULL) == 1) {
        presence_event(sh, c, HR_JP_JOIN, r->client, r->user[0] ? r->user : NULL);
        return true;
    }
    return false;
}

/* The answer from the home's ring: without --redis the history, with it (Redis down)
 * the cache, which cannot vouch for completeness: recovered stays false. */
static void sub_local_answer(hr_shard_t *sh, hr_chan_home_t *c, sub_req_t *r)
{
    hr_history_expire(&c->history, hr_loop_wall_ms());
    r->res.top = hr_history_top(&c->history);
    snprintf(r->res.epoch, sizeof(r->res.epoch), "%s", c->history.epoch);
    if (r->since && !hr_cluster_enabled(sh->srv)) {
        hr_history_range_t range;
        if (hr_history_since(&c->history, r->since_offset, r->since_epoch, &range) ==
            HR_HISTORY_RECOVERED) {
            r->res.recovered = true;
            if (range.count) {
                r->res.frames = hr_malloc(range.count * sizeof(hr_frame_t *));
                if (!r->res.frames) {
                    r->res.recovered = false;
                } else {
                    for (size_t i = 0; i < range.count; i++) {
                        const hist_item_t *it = hr_history_at(&c->history, range.first + i)->item;
                        r->res.frames[i] = hr_frame_ref(it->frame);
                    }
                    r->res.nframes = range.count;
                }
            }
        }
    }
    if (!hr_cluster_enabled(sh->srv))
        presence_join(sh, c, r);
    hr_server__run_on(sh, r->from, sub_reply, r);
}

/* One Redis history entry "OFFSET TIME_MS DATA". */
static bool parse_entry(const hr_cluster_reply_t *e, uint64_t *offset, uint64_t *time_ms,
                        hr_slice_t *data)
{
    if (e->type != HR_CLUSTER_REPLY_STRING)
        return false;
    char *end;
    const char *s = e->str;
    unsigned long long o = strtoull(s, &end, 10);
    if (end == s || *end != ' ')
        return false;
    s = end + 1;
    unsigned long long t = strtoull(s, &end, 10);
    if (end == s || *end != ' ')
        return false;
    *offset = o;
    *time_ms = t;
    *data = hr_slice(end + 1, e->len - (size_t)(end + 1 - e->str));
    return o > 0 && data->len <= UINT32_MAX;
}

static hr_frame_t *entry_frame(hr_buf_t *out, const char *name, size_t len, uint64_t offset,
                               const char *epoch, uint64_t time_ms, hr_slice_t data)
{
    out->len = 0;
    if (hr_jp_encode_message(out, hr_slice(name, len), offset, hr_slice(epoch, strlen(epoch)),
                             time_ms, data) != 0)
        return NULL;
    return hr_frame_create(out->data, out->len, false);
}

/* The read script's answer {top, epoch, covered, entries}, checked. */
static bool read_reply_ok(const hr_cluster_reply_t *x)
{
    return x && x->type == HR_CLUSTER_REPLY_ARRAY && x->n >= 4 &&
           x->elem[0]->type == HR_CLUSTER_REPLY_INTEGER && x->elem[0]->integer >= 0 &&
           x->elem[1]->type == HR_CLUSTER_REPLY_STRING && hr_history_epoch_valid(x->elem[1]->str) &&
           x->elem[2]->type == HR_CLUSTER_REPLY_INTEGER &&
           (x->elem[3]->type == HR_CLUSTER_REPLY_ARRAY || x->elem[3]->type == HR_CLUSTER_REPLY_NIL);
}

/* --redis, on the home: Redis' top, epoch and missed entries, read after the node's
 * SUBSCRIBE was confirmed. Messages with offsets above Redis' top may have reached the
 * home meanwhile (the subscriber connection is not the command connection): the pending
 * subscription skipped them, so the answer adds them from the cache. */
static void on_sub_read(void *ctx, const hr_cluster_reply_t *x)
{
    sub_req_t *r = ctx;
    hr_shard_t *sh = hr_server__home(r->from->srv, r->name, r->name_len);
    hr_chan_home_t *c = get_home(sh, r->name, r->name_len);
    if (!c) {
        r->res.err = HR_ENOMEM;
        hr_server__run_on(sh, r->from, sub_reply, r);
        return;
    }
    if (!read_reply_ok(x)) {
        sub_local_answer(sh, c, r);
        return;
    }
    uint64_t top = (uint64_t)x->elem[0]->integer;
    const char *epoch = x->elem[1]->str;
    const hr_cluster_reply_t *items = x->elem[3];
    size_t n = items->type == HR_CLUSTER_REPLY_ARRAY ? items->n : 0;
    if (strcmp(epoch, c->history.epoch) != 0)
        cache_reset(c, epoch, top + 1);
    hr_history_expire(&c->history, hr_loop_wall_ms());
    size_t cached = hr_history_count(&c->history);
    r->res.frames = hr_calloc(n + cached + 1, sizeof(hr_frame_t *));
    if (!r->res.frames) {
        r->res.err = HR_ENOMEM;
        hr_server__run_on(sh, r->from, sub_reply, r);
        return;
    }
    /* Covered, and all of it in the answer (a backend may keep more history than the
     * namespace says, and the read stops at REDIS_RECOVER_MAX). */
    bool recovered = r->since && x->elem[2]->integer == 1 && top - r->since_offset == n;
    uint64_t wall = hr_loop_wall_ms(), ttl = c->ns->history_ttl_ms;
    for (size_t i = 0; recovered && i < n; i++) {
        uint64_t off, t;
        hr_slice_t data;
        hr_frame_t *f = NULL;
        if (!parse_entry(items->elem[i], &off, &t, &data) || off != r->since_offset + 1 + i ||
            (ttl && wall > t && wall - t >= ttl) ||
            !(f = entry_frame(&sh->zscratch, r->name, r->name_len, off, epoch, t, data))) {
            recovered = false; /* expired (namespace TTL) or unreadable: say so */
            break;
        }
        r->res.frames[r->res.nframes++] = f;
    }
    if (!recovered) {
        free_frames(r->res.frames, r->res.nframes);
        r->res.frames = NULL;
        r->res.nframes = 0;
    }
    /* What arrived after the read (the cache is consecutive): the subscription skipped
     * it, so its top is the cache's; with recovery the answer carries it too. */
    for (size_t i = 0; i < cached; i++) {
        const hr_history_entry_t *e = hr_history_at(&c->history, i);
        if (e->offset <= top)
            continue;
        if (e->offset != top + 1 && recovered) {
            free_frames(r->res.frames, r->res.nframes); /* the cache lost some: say so */
            r->res.frames = NULL;
            r->res.nframes = 0;
            recovered = false;
        }
        if (recovered)
            r->res.frames[r->res.nframes++] = hr_frame_ref(((const hist_item_t *)e->item)->frame);
        top = e->offset;
    }
    r->res.top = top;
    r->res.recovered = recovered;
    snprintf(r->res.epoch, sizeof(r->res.epoch), "%s", epoch);
    hr_server__run_on(sh, r->from, sub_reply, r);
}

static void sub_at_home(void *ctx, void *arg)
{
    hr_shard_t *sh = ctx;
    sub_req_t *r = arg;
    hr_chan_home_t *c = get_home(sh, r->name, r->name_len);
    if (!c) {
        r->res.err = HR_ENOMEM;
        hr_server__run_on(sh, r->from, sub_reply, r);
        return;
    }
    c->last_used_ms = sh->loop.now_ms;
    if (hr_cluster_up(sh->srv)) {
        const char *prefix = hr_cluster_prefix(sh->srv);
        char since[24], limit[24], keep[24], cand[13];
        snprintf(since, sizeof(since), "%lld", r->since ? (long long)r->since_offset : -1ll);
        unsigned lim =
            c->ns->history_size > REDIS_RECOVER_MAX ? c->ns->history_size : REDIS_RECOVER_MAX;
        snprintf(limit, sizeof(limit), "%u", r->since ? lim : 0u);
        snprintf(keep, sizeof(keep), "%llu", (unsigned long long)redis_keep_ms(c->ns));
        new_epoch(cand);
        const char *argv[7] = {prefix, r->name, since, r->since_epoch, limit, cand, keep};
        size_t lens[7] = {strlen(prefix), r->name_len,  strlen(since), strlen(r->since_epoch),
                          strlen(limit),  strlen(cand), strlen(keep)};
        if (hr_cluster_eval(sh, &hr_cluster_read_script, 0, 7, argv, lens, on_sub_read, r) == 0)
            return;
    }
    sub_local_answer(sh, c, r);
}

static void join_at_home(void *ctx, void *arg)
{
    hr_shard_t *sh = ctx;
    sub_req_t *r = arg;
    hr_chan_home_t *c = get_home(sh, r->name, r->name_len);
    if (c && presence_join(sh, c, r))
        redis_presence(sh, c, r->client, r->user, true);
    hr_free(r);
}

/* --redis: the bridge has SUBSCRIBEd (or Redis is down): now ask the home. */
static void sub_ready(void *ctx, void *arg)
{
    hr_shard_t *sh = ctx;
    sub_req_t *r = arg;
    hr_server__run_on(sh, hr_server__home(sh->srv, r->name, r->name_len), sub_at_home, r);
}

int hr_channels_subscribe(hr_shard_t *sh, hr_sub_t *sub, bool since, uint64_t since_offset,
                          const char *epoch, uint64_t client, const char *user,
                          hr_chan_subscribe_cb cb, void *ctx)
{
    const hr_topic_t *tp = sub->topic;
    sub_req_t *r = hr_calloc(1, sizeof(*r) + tp->name_len + 1);
    if (!r) {
        /* The caller ends a failed subscription with hr_channels_unsubscribe, which gives
         * back one unit of the node's Redis interest: take it here too. */
        if (hr_cluster_enabled(sh->srv))
            hr_cluster_interest(sh, tp->name, tp->name_len, false, true, NULL, NULL, NULL);
        return HR_ENOMEM;
    }
    r->from = sh;
    r->cb = cb;
    r->ctx = ctx;
    r->since = since;
    r->since_offset = since_offset;
    r->client = client;
    if (epoch)
        snprintf(r->since_epoch, sizeof(r->since_epoch), "%s", epoch);
    if (user)
        snprintf(r->user, sizeof(r->user), "%s", user);
    r->name_len = tp->name_len;
    memcpy(r->name, tp->name, tp->name_len + 1);
    hr_shard_t *home = hr_server__home(sh->srv, tp->name, tp->name_len);
    if (!hr_cluster_enabled(sh->srv)) {
        hr_server__run_on(sh, home, sub_at_home, r);
        return 0;
    }
    if (hr_channels_namespace(sh->srv, tp->name, tp->name_len)->presence) {
        sub_req_t *j = hr_malloc(sizeof(*r) + tp->name_len + 1);
        if (j) {
            memcpy(j, r, sizeof(*r) + tp->name_len + 1);
            hr_server__run_on(sh, home, join_at_home, j);
        }
    }
    hr_cluster_interest(sh, tp->name, tp->name_len, false, true, sub_ready, sh, r);
    return 0;
}

void hr_channels_pattern_added(hr_shard_t *sh, hr_sub_t *sub)
{
    if (hr_cluster_enabled(sh->srv))
        hr_cluster_interest(sh, sub->topic->name, sub->topic->name_len, true, true, NULL, NULL,
                            NULL);
}

typedef struct leave_req {
    uint64_t client;
    size_t name_len;
    char name[];
} leave_req_t;

static void leave_at_home(void *ctx, void *arg)
{
    hr_shard_t *sh = ctx;
    leave_req_t *r = arg;
    hr_chan_home_t *c = find_home(sh, r->name, r->name_len);
    if (c && c->ns->presence) {
        const char *u = hr_presence_user(&c->presence, r->client);
        char user[HR_PRESENCE_USER_MAX + 1] = "";
        if (u)
            snprintf(user, sizeof(user), "%s", u);
        if (hr_presence_remove(&c->presence, r->client) == 1) {
            presence_event(sh, c, HR_JP_LEAVE, r->client, user[0] ? user : NULL);
            if (hr_cluster_enabled(sh->srv))
                redis_presence(sh, c, r->client, user, false);
        }
    }
    hr_free(r);
}

void hr_channels_unsubscribe(hr_shard_t *sh, hr_sub_t *sub, uint64_t client)
{
    const hr_topic_t *tp = sub->topic;
    bool pattern = sub->table == &sh->chan_patterns;
    const hr_namespace_t *ns =
        pattern ? NULL : hr_channels_namespace(sh->srv, tp->name, tp->name_len);
    leave_req_t *r = ns && ns->presence ? hr_malloc(sizeof(*r) + tp->name_len + 1) : NULL;
    if (r) {
        r->client = client;
        r->name_len = tp->name_len;
        memcpy(r->name, tp->name, tp->name_len + 1);
    }
    hr_shard_t *home = r ? hr_server__home(sh->srv, tp->name, tp->name_len) : NULL;
    if (hr_cluster_enabled(sh->srv))
        hr_cluster_interest(sh, tp->name, tp->name_len, pattern, false, NULL, NULL, NULL);
    hr_topics_remove(sub->table, sub);
    if (r)
        hr_server__run_on(sh, home, leave_at_home, r);
}

/* ---------------------------------------------------------------- history */

typedef struct hist_req {
    hr_shard_t *from;
    hr_chan_history_cb cb;
    void *ctx;
    hr_chan_history_result_t res;
    bool since;
    uint64_t since_offset;
    unsigned limit;
    char since_epoch[72];
    size_t name_len;
    char name[];
} hist_req_t;

static void hist_reply(void *ctx, void *arg)
{
    hist_req_t *r = arg;
    r->cb(r->ctx, &r->res);
    free_frames(r->res.frames, r->res.n);
    hr_free(r->res.items);
    hr_free(r);
}

static void hist_at_home(void *ctx, void *arg)
{
    hr_shard_t *sh = ctx;
    hist_req_t *r = arg;
    hr_chan_home_t *c = find_home(sh, r->name, r->name_len);
    if (!c) {
        /* Nothing was ever published here (or the channel was forgotten): no epoch to
         * recover against, so say so rather than answer with an empty one. */
        r->res.err = HR_ENOENT;
        hr_server__run_on(sh, r->from, hist_reply, r);
        return;
    }
    hr_history_expire(&c->history, hr_loop_wall_ms());
    r->res.top = hr_history_top(&c->history);
    snprintf(r->res.epoch, sizeof(r->res.epoch), "%s", c->history.epoch);
    hr_history_range_t range = {0, 0};
    if (r->since) {
        r->res.recovered = hr_history_since(&c->history, r->since_offset, r->since_epoch, &range) ==
                           HR_HISTORY_RECOVERED;
        if (!r->res.recovered)
            hr_history_last(&c->history, r->limit, &range);
        else if (range.count > r->limit)
            range.count = r->limit; /* the oldest missed first; the client asks again */
    } else {
        hr_history_last(&c->history, r->limit, &range);
    }
    if (range.count) {
        r->res.items = hr_malloc(range.count * sizeof(*r->res.items));
        r->res.frames = hr_malloc(range.count * sizeof(*r->res.frames));
        if (!r->res.items || !r->res.frames) {
            r->res.err = HR_ENOMEM;
            range.count = 0;
        }
    }
    for (size_t i = 0; i < range.count; i++) {
        const hr_history_entry_t *e = hr_history_at(&c->history, range.first + i);
        const hist_item_t *it = e->item;
        const hr_frame_t *f = it->frame;
        const uint8_t *payload = f->plain->data + f->hdr_len;
        r->res.items[i].offset = e->offset;
        r->res.items[i].time_ms = e->time_ms;
        r->res.items[i].data = hr_slice(payload + f->payload_len - 1 - it->data_len, it->data_len);
        r->res.frames[i] = hr_frame_ref(it->frame);
    }
    r->res.n = range.count;
    hr_server__run_on(sh, r->from, hist_reply, r);
}

/* --redis: history straight from Redis, on the asking shard. */
static void on_hist_read(void *ctx, const hr_cluster_reply_t *x)
{
    hist_req_t *r = ctx;
    hr_shard_t *sh = r->from;
    if (!read_reply_ok(x)) {
        /* Redis went away: the home's cache is better than nothing. */
        hr_server__run_on(sh, hr_server__home(sh->srv, r->name, r->name_len), hist_at_home, r);
        return;
    }
    const char *epoch = x->elem[1]->str;
    const hr_cluster_reply_t *items = x->elem[3];
    size_t n = items->type == HR_CLUSTER_REPLY_ARRAY ? items->n : 0;
    r->res.top = (uint64_t)x->elem[0]->integer;
    snprintf(r->res.epoch, sizeof(r->res.epoch), "%s", epoch);
    r->res.recovered = r->since && x->elem[2]->integer == 1;
    if (r->res.top == 0 && n == 0) {
        r->res.err = HR_ENOENT; /* never published: as without --redis */
        hist_reply(NULL, r);
        return;
    }
    if (n) {
        r->res.items = hr_malloc(n * sizeof(*r->res.items));
        r->res.frames = hr_malloc(n * sizeof(*r->res.frames));
        if (!r->res.items || !r->res.frames) {
            r->res.err = HR_ENOMEM;
            n = 0;
        }
    }
    const hr_namespace_t *ns = hr_channels_namespace(sh->srv, r->name, r->name_len);
    uint64_t wall = hr_loop_wall_ms(), ttl = ns->history_ttl_ms;
    for (size_t i = 0; i < n; i++) {
        uint64_t off, t;
        hr_slice_t data;
        hr_frame_t *f;
        if (!parse_entry(items->elem[i], &off, &t, &data) || (ttl && wall > t && wall - t >= ttl) ||
            !(f = entry_frame(&sh->zscratch, r->name, r->name_len, off, epoch, t, data))) {
            r->res.recovered = false; /* expired by the namespace TTL: a gap */
            continue;
        }
        const hr_frame_t *fr = f;
        const uint8_t *payload = fr->plain->data + fr->hdr_len;
        hr_chan_history_item_t *it = &r->res.items[r->res.n];
        it->offset = off;
        it->time_ms = t;
        it->data = hr_slice(payload + fr->payload_len - 1 - data.len, data.len);
        r->res.frames[r->res.n++] = f;
    }
    hist_reply(NULL, r);
}

int hr_channels_history(hr_shard_t *sh, const char *name, size_t len, bool since,
                        uint64_t since_offset, const char *epoch, unsigned limit,
                        hr_chan_history_cb cb, void *ctx)
{
    hist_req_t *r = hr_calloc(1, sizeof(*r) + len + 1);
    if (!r)
        return HR_ENOMEM;
    r->from = sh;
    r->cb = cb;
    r->ctx = ctx;
    r->since = since;
    r->since_offset = since_offset;
    r->limit = limit ? limit : 100;
    if (epoch)
        snprintf(r->since_epoch, sizeof(r->since_epoch), "%s", epoch);
    r->name_len = len;
    memcpy(r->name, name, len);
    r->name[len] = 0;
    if (hr_cluster_up(sh->srv)) {
        const char *prefix = hr_cluster_prefix(sh->srv);
        char s_since[24], s_limit[24], keep[24], cand[13];
        const hr_namespace_t *ns = hr_channels_namespace(sh->srv, name, len);
        snprintf(s_since, sizeof(s_since), "%lld", since ? (long long)since_offset : -1ll);
        snprintf(s_limit, sizeof(s_limit), "%u", r->limit);
        snprintf(keep, sizeof(keep), "%llu", (unsigned long long)redis_keep_ms(ns));
        new_epoch(cand);
        const char *argv[7] = {prefix, r->name, s_since, r->since_epoch, s_limit, cand, keep};
        size_t lens[7] = {strlen(prefix),  len,          strlen(s_since), strlen(r->since_epoch),
                          strlen(s_limit), strlen(cand), strlen(keep)};
        if (hr_cluster_eval(sh, &hr_cluster_read_script, 0, 7, argv, lens, on_hist_read, r) == 0)
            return 0;
    }
    hr_server__run_on(sh, hr_server__home(sh->srv, name, len), hist_at_home, r);
    return 0;
}

/* ---------------------------------------------------------------- presence query */

typedef struct pres_req {
    hr_shard_t *from;
    hr_chan_presence_cb cb;
    void *ctx;
    hr_chan_presence_result_t res;
    size_t cap;
    size_t name_len;
    char name[];
} pres_req_t;

static void pres_reply(void *ctx, void *arg)
{
    pres_req_t *r = arg;
    r->cb(r->ctx, &r->res);
    for (size_t i = 0; i < r->res.n; i++)
        hr_free(r->res.clients[i].user);
    hr_free(r->res.clients);
    hr_free(r);
}

static int collect_client(void *ctx, uint64_t client, const char *user, uint32_t subs)
{
    pres_req_t *r = ctx;
    if (r->res.n == r->cap)
        return 1;
    hr_chan_presence_client_t *pc = &r->res.clients[r->res.n++];
    pc->client = client;
    pc->user = user && *user ? hr_strdup(user) : NULL; /* "" from the set: anonymous */
    return 0;
}

static void pres_at_home(void *ctx, void *arg)
{
    hr_shard_t *sh = ctx;
    pres_req_t *r = arg;
    const hr_namespace_t *ns = hr_channels_namespace(sh->srv, r->name, r->name_len);
    hr_chan_home_t *c = find_home(sh, r->name, r->name_len);
    if (!ns->presence) {
        r->res.err = HR_ESTATE;
    } else if (c && hr_presence_count(&c->presence)) {
        r->cap = hr_presence_count(&c->presence);
        r->res.clients = hr_calloc(r->cap, sizeof(*r->res.clients));
        if (r->res.clients)
            hr_presence_foreach(&c->presence, collect_client, r);
        else
            r->res.err = HR_ENOMEM;
    }
    hr_server__run_on(sh, r->from, pres_reply, r);
}

/* --redis: the clients of every live node, from Redis, on the asking shard. */
static void on_presence_read(void *ctx, const hr_cluster_reply_t *x)
{
    pres_req_t *r = ctx;
    hr_shard_t *sh = r->from;
    if (!x || x->type != HR_CLUSTER_REPLY_ARRAY) {
        /* Redis went away: this node's own clients at least. */
        hr_server__run_on(sh, hr_server__home(sh->srv, r->name, r->name_len), pres_at_home, r);
        return;
    }
    size_t n = x->n / 2;
    r->res.clients = n ? hr_calloc(n, sizeof(*r->res.clients)) : NULL;
    if (n && !r->res.clients)
        r->res.err = HR_ENOMEM;
    for (size_t i = 0; r->res.clients && i < n; i++) {
        const hr_cluster_reply_t *id = x->elem[2 * i], *user = x->elem[2 * i + 1];
        if (id->type != HR_CLUSTER_REPLY_STRING || user->type != HR_CLUSTER_REPLY_STRING)
            continue;
        hr_chan_presence_client_t *pc = &r->res.clients[r->res.n++];
        pc->client = strtoull(id->str, NULL, 10);
        pc->user = user->len ? hr_strdup(user->str) : NULL; /* "": anonymous */
    }
    pres_reply(NULL, r);
}

int hr_channels_presence(hr_shard_t *sh, const char *name, size_t len, hr_chan_presence_cb cb,
                         void *ctx)
{
    pres_req_t *r = hr_calloc(1, sizeof(*r) + len + 1);
    if (!r)
        return HR_ENOMEM;
    r->from = sh;
    r->cb = cb;
    r->ctx = ctx;
    r->name_len = len;
    memcpy(r->name, name, len);
    if (hr_cluster_up(sh->srv) && hr_channels_namespace(sh->srv, name, len)->presence) {
        const char *prefix = hr_cluster_prefix(sh->srv);
        const char *argv[2] = {prefix, r->name};
        size_t lens[2] = {strlen(prefix), len};
        if (hr_cluster_eval(sh, &hr_cluster_presence_query_script, 0, 2, argv, lens,
                            on_presence_read, r) == 0)
            return 0;
    }
    hr_server__run_on(sh, hr_server__home(sh->srv, name, len), pres_at_home, r);
    return 0;
}

/* ---------------------------------------------------------------- graceful restart */

int hr_channels_snapshot(hr_server_t *srv, hr_chan_snapshot_t **out, size_t *n)
{
    size_t total = 0;
    for (int i = 0; i < srv->nshards; i++)
        total += srv->shards[i].nhomes;
    *out = NULL;
    *n = 0;
    hr_chan_snapshot_t *v = total ? hr_calloc(total, sizeof(*v)) : NULL;
    if (total && !v)
        return HR_ENOMEM;
    size_t k = 0;
    for (int i = 0; i < srv->nshards; i++) {
        hr_shard_t *sh = &srv->shards[i];
        for (size_t b = 0; b < sh->nhome_buckets; b++) {
            for (const hr_chan_home_t *c = sh->homes[b]; c; c = c->next) {
                hr_chan_snapshot_t *ch = &v[k++];
                size_t count = hr_history_count(&c->history);
                ch->name = hr_malloc(c->name_len + 1);
                ch->items = count ? hr_calloc(count, sizeof(*ch->items)) : NULL;
                if (!ch->name || (count && !ch->items)) {
                    hr_channels_snapshot_free(v, k);
                    return HR_ENOMEM;
                }
                memcpy(ch->name, c->name, c->name_len + 1);
                ch->name_len = c->name_len;
                snprintf(ch->epoch, sizeof(ch->epoch), "%s", c->history.epoch);
                ch->next_offset = c->history.next_offset;
                for (size_t j = 0; j < count; j++) {
                    const hr_history_entry_t *e = hr_history_at(&c->history, j);
                    const hist_item_t *it = e->item;
                    const hr_frame_t *f = it->frame;
                    const uint8_t *payload = f->plain->data + f->hdr_len;
                    ch->items[j].offset = e->offset;
                    ch->items[j].time_ms = e->time_ms;
                    ch->items[j].data =
                        hr_slice(payload + f->payload_len - 1 - it->data_len, it->data_len);
                    ch->items[j].frame = hr_frame_ref(it->frame);
                }
                ch->n = count;
            }
        }
    }
    *out = v;
    *n = k;
    return 0;
}

void hr_channels_snapshot_free(hr_chan_snapshot_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < v[i].n; j++)
            if (v[i].items[j].frame)
                hr_frame_unref(v[i].items[j].frame);
        hr_free(v[i].items);
        hr_free(v[i].name);
    }
    hr_free(v);
}

int hr_channels_restore(hr_server_t *srv, const hr_chan_snapshot_t *ch)
{
    if (srv->started)
        return HR_ESTATE;
    if (!hr_channel_name_valid(ch->name, ch->name_len) || !hr_history_epoch_valid(ch->epoch) ||
        ch->next_offset < 1 || ch->n >= ch->next_offset)
        return HR_EINVAL;
    /* The ring holds consecutive offsets ending at the top (history.c): anything else
     * would make a recovery answer wrong. */
    for (size_t j = 0; j < ch->n; j++)
        if (ch->items[j].offset != ch->next_offset - ch->n + j ||
            ch->items[j].data.len > UINT32_MAX)
            return HR_EINVAL;
    hr_shard_t *sh = hr_server__home(srv, ch->name, ch->name_len);
    if (find_home(sh, ch->name, ch->name_len))
        return HR_EEXIST;
    hr_chan_home_t *c = get_home(sh, ch->name, ch->name_len);
    if (!c)
        return HR_ENOMEM;
    uint32_t cap = c->history.capacity;
    uint64_t ttl = c->history.ttl_ms;
    hr_history_deinit(&c->history);
    if (hr_history_init(&c->history, cap, ttl, ch->epoch, release_item) != 0) {
        free_home(sh, c);
        return HR_ENOMEM;
    }
    c->last_used_ms = hr_loop_update_time(&sh->loop);
    c->history.next_offset = ch->n ? ch->items[0].offset : ch->next_offset;
    hr_buf_t *out = &sh->zscratch;
    for (size_t j = 0; j < ch->n; j++) {
        /* The frame a subscriber of this process would have got: same offset, epoch and
         * time, so a recovered message is byte for byte the one that was missed. */
        const hr_chan_snapshot_item_t *e = &ch->items[j];
        hist_item_t *it = hr_malloc(sizeof(*it));
        hr_frame_t *f = NULL;
        out->len = 0;
        if (it &&
            hr_jp_encode_message(out, hr_slice(ch->name, ch->name_len), e->offset,
                                 hr_slice(ch->epoch, strlen(ch->epoch)), e->time_ms, e->data) == 0)
            f = hr_frame_create(out->data, out->len, false);
        if (!f) {
            hr_free(it);
            free_home(sh, c);
            return HR_ENOMEM;
        }
        it->frame = f;
        it->data_len = (uint32_t)e->data.len;
        hr_history_append(&c->history, it, e->time_ms);
    }
    c->history.next_offset = ch->next_offset;
    return 0;
}
