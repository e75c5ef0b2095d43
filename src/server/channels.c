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
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/hash.h"
#include "base/log.h"
#include "broker/channel.h"
#include "herald/error.h"
#include "proto/json_proto.h"
#include "server/channels.h"
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
    if (hr_history_init(&c->history, c->ns->history_size, c->ns->history_ttl_ms, epoch,
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
                now - c->last_used_ms > HOME_IDLE_MS)
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

typedef struct delivery {
    atomic_uint refs;
    hr_frame_t *frame;
    uint64_t offset;       /* 0: a presence event (not in history, not offset-checked) */
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

static void send_to_topic(hr_topic_t *tp, delivery_t *d, bool check_offsets,
                          hr_slow_policy_t policy)
{
    hr_chan_msg_t m;
    bool have_m = false;
    /* A slow consumer is only marked closing here; its subscriptions stay until it is
     * freed, so the list does not change under this walk. */
    for (hr_list_t *n = tp->subs.next; n != &tp->subs; n = n->next) {
        hr_sub_t *sub = hr_list_entry(n, hr_sub_t, topic_link);
        if (check_offsets) {
            if (sub->state != HR_SUB_LIVE || d->offset <= sub->last_offset)
                continue;
            sub->last_offset = d->offset;
        }
        if (sub->kind == HR_SUB_STOMP) {
            if (!d->offset)
                continue; /* presence events are for the JSON protocol */
            if (!have_m) {
                m = chan_msg(d);
                have_m = true;
            }
            hr_stomp_session_channel_deliver(sub, &m, policy);
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
    if (!n || !d->offset)
        return; /* presence events are not publishes */
    uint64_t now = clock_ns(), ns = now > d->published_ns ? now - d->published_ns : 0;
    int i = 0;
    while (i < HR_LATENCY_BUCKETS && ns > (uint64_t)hr_latency_bound_us(i) * 1000u)
        i++;
    sh->stats.publish_latency[i] += n;
    sh->stats.publish_latency_ns += ns * n;
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
        hr_topic_t *tp = hr_topics_find(&sh->chan_subs, d->name, d->name_len);
        if (tp)
            send_to_topic(tp, d, d->offset != 0, policy);
        if (sh->chan_patterns.count) {
            pattern_walk_t w = {.d = d};
            hr_topics_foreach(&sh->chan_patterns, collect_patterns, &w);
            for (size_t i = 0; i < w.n; i++)
                send_to_topic(w.hits[i], d, false, policy);
        }
    }
    observe_latency(sh, d, sh->stats.messages_out - out0);
    delivery_unref(d);
}

/* From the home: one frame to every shard's subscribers of the channel. */
static void fan_out(hr_shard_t *home, const hr_chan_home_t *c, hr_frame_t *frame, uint64_t offset,
                    uint32_t data_len)
{
    hr_server_t *srv = home->srv;
    delivery_t *d = hr_malloc(sizeof(*d) + c->name_len + 1);
    if (!d) {
        hr_frame_unref(frame);
        return;
    }
    atomic_init(&d->refs, (unsigned)srv->nshards);
    d->frame = frame;
    d->offset = offset;
    d->data_len = data_len;
    d->published_ns = clock_ns();
    snprintf(d->epoch, sizeof(d->epoch), "%s", c->history.epoch);
    atomic_init(&d->stomp[0], NULL);
    atomic_init(&d->stomp[1], NULL);
    d->name_len = c->name_len;
    memcpy(d->name, c->name, c->name_len + 1);
    for (int i = 0; i < srv->nshards; i++)
        hr_server__run_on(home, &srv->shards[i], deliver_here, d);
}

/* ---------------------------------------------------------------- publish */

typedef struct pub_req {
    hr_shard_t *from;
    hr_chan_publish_cb cb;
    void *ctx;
    int err;
    uint64_t offset;
    char epoch[24];
    size_t name_len, data_len;
    char buf[]; /* name, NUL, data, NUL */
} pub_req_t;

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
    hr_server__run_on(sh, hr_server__home(sh->srv, name, len), pub_at_home, r);
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
    hr_history_expire(&c->history, hr_loop_wall_ms());
    r->res.top = hr_history_top(&c->history);
    snprintf(r->res.epoch, sizeof(r->res.epoch), "%s", c->history.epoch);
    if (r->since) {
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
    if (c->ns->presence &&
        hr_presence_add(&c->presence, r->client, r->user[0] ? r->user : NULL) == 1)
        presence_event(sh, c, HR_JP_JOIN, r->client, r->user[0] ? r->user : NULL);
    hr_server__run_on(sh, r->from, sub_reply, r);
}

int hr_channels_subscribe(hr_shard_t *sh, hr_sub_t *sub, bool since, uint64_t since_offset,
                          const char *epoch, uint64_t client, const char *user,
                          hr_chan_subscribe_cb cb, void *ctx)
{
    const hr_topic_t *tp = sub->topic;
    sub_req_t *r = hr_calloc(1, sizeof(*r) + tp->name_len + 1);
    if (!r)
        return HR_ENOMEM;
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
    hr_server__run_on(sh, hr_server__home(sh->srv, tp->name, tp->name_len), sub_at_home, r);
    return 0;
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
        if (hr_presence_remove(&c->presence, r->client) == 1)
            presence_event(sh, c, HR_JP_LEAVE, r->client, user[0] ? user : NULL);
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
