/* The Redis bridge (see cluster.h).
 *
 * One thread, its own hr_loop, two hiredis async connections driven by a small adapter
 * on that loop: "cmd" for commands and scripts, "sub" for SUBSCRIBE/PSUBSCRIBE. Shards
 * post requests into the bridge loop's inbox; answers go back through the asking
 * shard's inbox. hiredis frees a reply when the callback returns, so replies are copied.
 *
 * Subscriptions are refcounted node-wide by Redis channel (or glob): the first interest
 * SUBSCRIBEs, the last UNSUBSCRIBEs. hiredis 0.14 drops its callback for a channel when
 * an "unsubscribe" reply arrives and leaves subscribed mode when the count reaches 0, so
 * a channel is never re-subscribed while its UNSUBSCRIBE is in flight (it is re-sent
 * after the reply), and the sub connection always holds one subscription of its own
 * (<prefix>:node:<id>) so the count never reaches 0. */
#include <errno.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/hash.h"
#include "base/log.h"
#include "cluster/cluster.h"
#include "cluster/envelope.h"
#include "herald/error.h"
#include "server/channels.h"

#define TICK_MS 100
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define CONNECT_TIMEOUT_MS 3000
/* Commands sent and not yet answered: past this, new ones fail at once (a Redis that
 * does not keep up must not grow hiredis' output buffer without bound). */
#define MAX_PENDING 65536
/* The node's heartbeat key <prefix>:node:<id>: presence lists only live nodes' clients. */
#define HEARTBEAT_MS 2000
#define HEARTBEAT_TTL_MS 6000

typedef struct conn {
    hr_io_t io;
    redisAsyncContext *ac;
    struct hr_cluster *cl;
    bool connected;
    uint64_t started_ms;
} conn_t;

/* One command from a shard. Lives until hiredis has called back (or never took it). */
typedef struct cmd {
    hr_list_t link; /* cl->pending while unanswered */
    hr_shard_t *sh;
    hr_cluster_reply_cb cb;
    void *ctx;
    hr_cluster_script_t *script; /* EVALSHA: retried as EVAL on NOSCRIPT */
    uint64_t deadline_ms;
    bool answered, retried;
    bool tracked, sent; /* sent: handed to hiredis at least once */
    int argc;
    const char **argv;
    size_t *argvlen;
} cmd_t;

typedef struct answer {
    hr_cluster_reply_cb cb;
    void *ctx;
    hr_cluster_reply_t *r;
    bool unknown;
} answer_t;

static const hr_cluster_reply_t unknown_reply = {.type = HR_CLUSTER_REPLY_UNKNOWN};

typedef struct waiter {
    struct waiter *next;
    hr_shard_t *sh;
    void (*fn)(void *ctx, void *arg);
    void *ctx, *arg;
} waiter_t;

enum { S_NONE, S_SUBSCRIBING, S_LIVE, S_UNSUBSCRIBING };

typedef struct rsub {
    struct rsub *next;
    uint64_t hash;
    long refs;
    int state;
    bool pattern;
    bool resync; /* re-sent after a reconnect, not yet confirmed */
    waiter_t *waiters;
    size_t len;
    char key[]; /* Redis channel or glob */
} rsub_t;

#define NBUCKETS 1024

struct hr_cluster {
    hr_server_t *srv;
    pthread_t thread;
    hr_loop_t loop;
    char host[256];
    int port, db;
    char *password;
    char node[HR_CLUSTER_NODE_ID_LEN + 1];
    char *prefix;
    conn_t cmd, sub;
    hr_list_t pending;
    size_t npending;
    rsub_t *subs[NBUCKETS];
    hr_timer_t tick, retry;
    uint64_t backoff_ms, beat_ms;
    bool stopping, was_up, down_logged, retry_armed;
    bool resyncing; /* connected, waiting for nresync confirmations before "up" */
    size_t nresync;
    hr_buf_t scratch;
    atomic_bool up;
    atomic_uint_fast64_t reconnects, msgs_in, msgs_out, errors;
};

/* ---------------------------------------------------------------- small helpers */

static void random_id(char *out, size_t n)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    uint8_t raw[32];
    if (n > sizeof(raw) || RAND_bytes(raw, (int)n) != 1) {
        uint64_t t = hr_clock_ms() * 6364136223846793005ull;
        for (size_t i = 0; i < n && i < sizeof(raw); i++)
            raw[i] = (uint8_t)(t >> ((i % 8) * 8)) ^ (uint8_t)i;
    }
    for (size_t i = 0; i < n; i++)
        out[i] = alphabet[raw[i] % 36];
    out[n] = 0;
}

/* Every script, loaded on each new command connection before anything else is sent on
 * it: a node's EVALSHAs then never meet NOSCRIPT. Relying on the NOSCRIPT fallback
 * alone would reorder a publisher's messages: when another node loads the script
 * between two of this node's EVALSHAs, the first fails, the next ones run, and the
 * first is retried as EVAL after them. (After a SCRIPT FLUSH on a live connection that
 * can still happen: the fallback keeps such messages, out of order.) */
#define MAX_SCRIPTS 16
static hr_cluster_script_t *all_scripts[MAX_SCRIPTS];
static int nscripts;

void hr_cluster_script_init(hr_cluster_script_t *s, const char *lua)
{
    bool known = false;
    for (int i = 0; i < nscripts; i++)
        known |= all_scripts[i] == s;
    if (!known && nscripts < MAX_SCRIPTS)
        all_scripts[nscripts++] = s;
    uint8_t d[SHA_DIGEST_LENGTH];
    SHA1((const uint8_t *)lua, strlen(lua), d);
    s->lua = lua;
    for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
        snprintf(s->sha + 2 * i, 3, "%02x", d[i]);
}

/* ---------------------------------------------------------------- public accessors */

bool hr_cluster_enabled(const hr_server_t *srv)
{
    return srv->redis.cl != NULL;
}

bool hr_cluster_up(const hr_server_t *srv)
{
    return srv->redis.cl && atomic_load(&srv->redis.cl->up);
}

const char *hr_cluster_node_id(const hr_server_t *srv)
{
    return srv->redis.cl ? srv->redis.cl->node : "";
}

const char *hr_cluster_prefix(const hr_server_t *srv)
{
    return srv->redis.cl ? srv->redis.cl->prefix : "";
}

void hr_cluster_stats(const hr_server_t *srv, hr_cluster_stats_t *out)
{
    const struct hr_cluster *cl = srv->redis.cl;
    *out = (hr_cluster_stats_t){0};
    if (!cl)
        return;
    out->up = atomic_load(&cl->up);
    out->reconnects = atomic_load(&cl->reconnects);
    out->messages_in = atomic_load(&cl->msgs_in);
    out->messages_out = atomic_load(&cl->msgs_out);
    out->errors = atomic_load(&cl->errors);
}

/* Posts to the bridge, waiting while its inbox is full. The bridge may itself be
 * waiting for room in this shard's inbox: drain it meanwhile, as hr_server__post does. */
static void post_bridge(struct hr_cluster *cl, hr_inbox_fn fn, void *arg)
{
    hr_shard_t *self = hr_server__current_shard();
    while (hr_loop_post(&cl->loop, fn, cl, arg) == HR_ENOBUFS) {
        if (self)
            hr_inbox_drain(&self->loop.inbox);
        sched_yield();
    }
}

/* ---------------------------------------------------------------- hiredis adapter */

static void conn_update(conn_t *c, uint32_t events)
{
    if (c->io.fd < 0)
        return;
    if (events == c->io.events)
        return;
    if (!c->io.events)
        hr_loop_io_start(&c->cl->loop, &c->io, events);
    else if (!events)
        hr_loop_io_stop(&c->cl->loop, &c->io);
    else
        hr_loop_io_update(&c->cl->loop, &c->io, events);
}

static void ev_add_read(void *p)
{
    conn_t *c = p;
    conn_update(c, c->io.events | EPOLLIN);
}
static void ev_del_read(void *p)
{
    conn_t *c = p;
    conn_update(c, c->io.events & ~(uint32_t)EPOLLIN);
}
static void ev_add_write(void *p)
{
    conn_t *c = p;
    conn_update(c, c->io.events | EPOLLOUT);
}
static void ev_del_write(void *p)
{
    conn_t *c = p;
    conn_update(c, c->io.events & ~(uint32_t)EPOLLOUT);
}
static void ev_cleanup(void *p)
{
    conn_t *c = p;
    conn_update(c, 0);
    c->io.fd = -1;
    c->ac = NULL;
    c->connected = false;
}

static void on_io(hr_io_t *io, uint32_t events)
{
    conn_t *c = (conn_t *)io;
    if (c->ac && (events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
        redisAsyncHandleRead(c->ac);
    if (c->ac && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
        redisAsyncHandleWrite(c->ac);
}

/* ---------------------------------------------------------------- commands */

static void deliver_answer(void *ctx, void *arg)
{
    (void)ctx;
    answer_t *a = arg;
    a->cb(a->ctx, a->unknown ? &unknown_reply : a->r);
    hr_cluster__reply_free(a->r);
    hr_free(a);
}

/* Hands r (owned, may be NULL) to the asking shard, once. */
static void answer(cmd_t *c, hr_cluster_reply_t *r)
{
    if (c->answered) {
        hr_cluster__reply_free(r);
        return;
    }
    c->answered = true;
    hr_list_remove(&c->link);
    c->sh->srv->redis.cl->npending--;
    /* Nobody to tell: fire and forget, or a worker that has left its loop. */
    bool gone = !c->cb || c->sh->srv->redis.cl->stopping || atomic_load(&c->sh->exited);
    answer_t *a = gone ? NULL : hr_malloc(sizeof(*a));
    if (!a) {
        hr_cluster__reply_free(r);
        return; /* without memory the asker never hears back */
    }
    /* No answer to a command Redis may have run: a tracked asker must not assume it
     * did not (a publish would be delivered twice). */
    *a = (answer_t){.cb = c->cb, .ctx = c->ctx, .r = r, .unknown = !r && c->tracked && c->sent};
    hr_server__post(c->sh, deliver_answer, a);
}

static void cmd_free(cmd_t *c)
{
    hr_free(c);
}

static void on_cmd_reply(redisAsyncContext *ac, void *reply, void *priv);

static int cmd_send(struct hr_cluster *cl, cmd_t *c)
{
    c->deadline_ms = cl->loop.now_ms + HR_CLUSTER_TIMEOUT_MS;
    if (redisAsyncCommandArgv(cl->cmd.ac, on_cmd_reply, c, c->argc, c->argv, c->argvlen) !=
        REDIS_OK)
        return HR_ECLOSED;
    c->sent = true;
    return 0;
}

static void on_cmd_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    struct hr_cluster *cl = ((conn_t *)ac->ev.data)->cl;
    cmd_t *c = priv;
    redisReply *x = reply;
    if (x && x->type == REDIS_REPLY_ERROR && c->script && !c->retried && !c->answered &&
        strncmp(x->str, "NOSCRIPT", 8) == 0 && cl->cmd.ac) {
        /* Redis restarted or flushed its scripts: send the source once. */
        c->retried = true;
        c->argv[0] = "EVAL";
        c->argvlen[0] = 4;
        c->argv[1] = c->script->lua;
        c->argvlen[1] = strlen(c->script->lua);
        if (cmd_send(cl, c) == 0)
            return;
    }
    if (x && x->type == REDIS_REPLY_ERROR) {
        atomic_fetch_add(&cl->errors, 1);
        hr_log_warn("redis: %.*s", (int)x->len, x->str);
    } else if (x && c->script == &hr_cluster_publish_script) {
        atomic_fetch_add(&cl->msgs_out, 1);
    }
    answer(c, x ? hr_cluster__reply_copy(x) : NULL);
    cmd_free(c);
}

static void run_cmd(void *ctx, void *arg)
{
    struct hr_cluster *cl = ctx;
    cmd_t *c = arg;
    hr_list_push_back(&cl->pending, &c->link);
    if (cl->npending++ >= MAX_PENDING)
        atomic_fetch_add(&cl->errors, 1);
    if (cl->npending > MAX_PENDING || !atomic_load(&cl->up) || !cl->cmd.ac ||
        cmd_send(cl, c) != 0) {
        answer(c, NULL);
        cmd_free(c);
    }
}

static int submit(hr_shard_t *sh, hr_cluster_script_t *script, int nkeys, int argc,
                  const char **argv, const size_t *argvlen, hr_cluster_reply_cb cb, void *ctx,
                  bool tracked)
{
    struct hr_cluster *cl = sh->srv->redis.cl;
    if (!cl)
        return HR_ESTATE;
    if (argc < (script ? 0 : 1))
        return HR_EINVAL;
    int extra = script ? 3 : 0, n = argc + extra;
    size_t bytes = sizeof(cmd_t) + (size_t)n * (sizeof(char *) + sizeof(size_t)) + 64;
    for (int i = 0; i < argc; i++)
        bytes += argvlen[i] + 1;
    cmd_t *c = hr_malloc(bytes);
    if (!c)
        return HR_ENOMEM;
    *c = (cmd_t){.sh = sh, .cb = cb, .ctx = ctx, .script = script, .argc = n, .tracked = tracked};
    c->argv = (const char **)(c + 1);
    c->argvlen = (size_t *)(c->argv + n);
    char *p = (char *)(c->argvlen + n);
    if (script) {
        c->argv[0] = "EVALSHA";
        c->argvlen[0] = 7;
        c->argv[1] = script->sha;
        c->argvlen[1] = 40;
        int k = snprintf(p, 24, "%d", nkeys);
        c->argv[2] = p;
        c->argvlen[2] = (size_t)k;
        p += 24;
    }
    for (int i = 0; i < argc; i++) {
        memcpy(p, argv[i], argvlen[i]);
        p[argvlen[i]] = 0;
        c->argv[extra + i] = p;
        c->argvlen[extra + i] = argvlen[i];
        p += argvlen[i] + 1;
    }
    post_bridge(cl, run_cmd, c);
    return 0;
}

int hr_cluster_command(hr_shard_t *sh, hr_cluster_reply_cb cb, void *ctx, int argc,
                       const char **argv, const size_t *argvlen)
{
    return submit(sh, NULL, 0, argc, argv, argvlen, cb, ctx, false);
}

int hr_cluster_eval(hr_shard_t *sh, hr_cluster_script_t *s, int nkeys, int argc, const char **argv,
                    const size_t *argvlen, hr_cluster_reply_cb cb, void *ctx)
{
    return submit(sh, s, nkeys, argc, argv, argvlen, cb, ctx, false);
}

int hr_cluster_eval_tracked(hr_shard_t *sh, hr_cluster_script_t *s, int nkeys, int argc,
                            const char **argv, const size_t *argvlen, hr_cluster_reply_cb cb,
                            void *ctx)
{
    return submit(sh, s, nkeys, argc, argv, argvlen, cb, ctx, true);
}

/* ---------------------------------------------------------------- subscriptions */

static rsub_t **rsub_slot(struct hr_cluster *cl, const char *key, size_t len, bool pattern,
                          uint64_t *hash)
{
    uint64_t h = hr_hash_name(key, len) ^ (pattern ? 0x9e3779b97f4a7c15ull : 0);
    *hash = h;
    rsub_t **pp = &cl->subs[h % NBUCKETS];
    while (*pp && !((*pp)->hash == h && (*pp)->pattern == pattern && (*pp)->len == len &&
                    memcmp((*pp)->key, key, len) == 0))
        pp = &(*pp)->next;
    return pp;
}

static void flush_waiters(rsub_t *s)
{
    while (s->waiters) {
        waiter_t *w = s->waiters;
        s->waiters = w->next;
        hr_server__post(w->sh, w->fn, w->arg);
        hr_free(w);
    }
}

static void on_sub_reply(redisAsyncContext *ac, void *reply, void *priv);

static void rsub_send(struct hr_cluster *cl, rsub_t *s, bool subscribe)
{
    const char *verb = s->pattern ? (subscribe ? "PSUBSCRIBE" : "PUNSUBSCRIBE")
                                  : (subscribe ? "SUBSCRIBE" : "UNSUBSCRIBE");
    const char *argv[2] = {verb, s->key};
    size_t lens[2] = {strlen(verb), s->len};
    s->state = subscribe ? S_SUBSCRIBING : S_UNSUBSCRIBING;
    if (!cl->sub.ac ||
        redisAsyncCommandArgv(cl->sub.ac, on_sub_reply, cl, 2, argv, lens) != REDIS_OK)
        s->state = S_NONE; /* the reconnect subscribes again */
}

static void rsub_maybe_free(rsub_t **pp)
{
    rsub_t *s = *pp;
    if (s->refs > 0 || s->state != S_NONE || s->waiters)
        return;
    *pp = s->next;
    hr_free(s);
}

typedef struct interest {
    hr_shard_t *sh;
    bool pattern, add;
    void (*fn)(void *ctx, void *arg);
    void *arg;
    size_t len;
    char key[];
} interest_t;

static void run_interest(void *ctx, void *iarg)
{
    struct hr_cluster *cl = ctx;
    interest_t *in = iarg;
    uint64_t h;
    rsub_t **pp = rsub_slot(cl, in->key, in->len, in->pattern, &h);
    rsub_t *s = *pp;
    if (!s && in->add) {
        s = hr_calloc(1, sizeof(*s) + in->len + 1);
        if (!s) {
            if (in->fn)
                hr_server__post(in->sh, in->fn, in->arg);
            hr_free(in);
            return;
        }
        s->hash = h;
        s->pattern = in->pattern;
        s->len = in->len;
        memcpy(s->key, in->key, in->len);
        *pp = s;
    }
    if (!s) {
        hr_free(in);
        return;
    }
    /* The subscriber connection works (also while re-subscribing after a reconnect). */
    bool linked = cl->sub.ac && cl->sub.connected;
    if (in->add) {
        s->refs++;
        waiter_t *w = in->fn ? hr_malloc(sizeof(*w)) : NULL;
        if (in->fn && (!w || !linked || s->state == S_LIVE)) {
            /* Down: delivery is local only, nothing to wait for. */
            hr_free(w);
            hr_server__post(in->sh, in->fn, in->arg);
        } else if (w) {
            *w = (waiter_t){.next = s->waiters, .sh = in->sh, .fn = in->fn, .arg = in->arg};
            s->waiters = w;
        }
        if (linked && s->state == S_NONE)
            rsub_send(cl, s, true);
    } else {
        if (s->refs > 0)
            s->refs--;
        if (s->refs == 0 && s->state == S_LIVE && linked)
            rsub_send(cl, s, false);
        rsub_maybe_free(pp);
    }
    hr_free(in);
}

void hr_cluster_interest(hr_shard_t *sh, const char *name, size_t len, bool pattern, bool add,
                         void (*on_ready)(void *ctx, void *arg), void *ctx, void *arg)
{
    struct hr_cluster *cl = sh->srv->redis.cl;
    (void)ctx; /* on_ready runs on sh (its ctx is sh) */
    hr_buf_t b;
    hr_buf_init(&b);
    interest_t *in = NULL;
    if (hr_cluster_redis_channel(&b, hr_slice(cl->prefix, strlen(cl->prefix)), hr_slice(name, len),
                                 pattern) == 0)
        in = hr_malloc(sizeof(*in) + b.len + 1);
    if (!in) {
        hr_buf_deinit(&b);
        if (on_ready)
            on_ready(sh, arg);
        return;
    }
    *in = (interest_t){.sh = sh, .pattern = pattern, .add = add, .fn = on_ready, .arg = arg};
    in->len = b.len;
    memcpy(in->key, b.data, b.len);
    in->key[b.len] = 0;
    hr_buf_deinit(&b);
    post_bridge(cl, run_interest, in);
}

static void finish_up(struct hr_cluster *cl);

/* A message or (un)subscribe confirmation on the sub connection. */
static void on_sub_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    struct hr_cluster *cl = priv;
    redisReply *x = reply;
    if (!x || x->type != REDIS_REPLY_ARRAY || x->elements < 3 ||
        x->element[0]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = x->element[0]->str;
    bool pmsg = strcmp(kind, "pmessage") == 0;
    if (strcmp(kind, "message") == 0 || (pmsg && x->elements >= 4)) {
        const redisReply *ch = x->element[pmsg ? 2 : 1], *pl = x->element[pmsg ? 3 : 2];
        const redisReply *glob = pmsg ? x->element[1] : NULL;
        if (ch->type != REDIS_REPLY_STRING || pl->type != REDIS_REPLY_STRING)
            return;
        size_t plen = strlen(cl->prefix);
        if (ch->len <= plen + 4 || memcmp(ch->str, cl->prefix, plen) != 0 ||
            memcmp(ch->str + plen, ":ch:", 4) != 0)
            return;
        atomic_fetch_add(&cl->msgs_in, 1);
        hr_cluster_env_t env;
        if (hr_cluster_env_parse(pl->str, pl->len, &env) != 0) {
            atomic_fetch_add(&cl->errors, 1);
            hr_log_warn("redis: malformed Herald envelope on %.*s", (int)ch->len, ch->str);
            return;
        }
        if (hr_channels__from_redis(cl->srv, &cl->scratch, ch->str + plen + 4, ch->len - plen - 4,
                                    &env, glob ? glob->str : NULL, glob ? glob->len : 0) != 0)
            atomic_fetch_add(&cl->errors, 1);
        return;
    }
    bool sub = strcmp(kind, "subscribe") == 0 || strcmp(kind, "psubscribe") == 0;
    bool unsub = strcmp(kind, "unsubscribe") == 0 || strcmp(kind, "punsubscribe") == 0;
    if ((!sub && !unsub) || x->element[1]->type != REDIS_REPLY_STRING)
        return;
    uint64_t h;
    rsub_t **pp = rsub_slot(cl, x->element[1]->str, x->element[1]->len, kind[0] == 'p', &h);
    rsub_t *s = *pp;
    if (!s)
        return; /* the node's own channel */
    if (sub && s->state == S_SUBSCRIBING) {
        s->state = S_LIVE;
        flush_waiters(s);
        if (s->resync) {
            s->resync = false;
            if (--cl->nresync == 0 && cl->resyncing) {
                cl->resyncing = false;
                finish_up(cl);
            }
        }
        if (s->refs == 0)
            rsub_send(cl, s, false);
    } else if (unsub && s->state == S_UNSUBSCRIBING) {
        s->state = S_NONE;
        if (s->refs > 0)
            rsub_send(cl, s, true);
        else
            rsub_maybe_free(pp);
    }
}

/* ---------------------------------------------------------------- connection life */

static void connect_both(struct hr_cluster *cl);

static void all_down(struct hr_cluster *cl)
{
    if (cl->stopping)
        return;
    atomic_store(&cl->up, false);
    cl->resyncing = false;
    cl->nresync = 0;
    if (!cl->down_logged) { /* once per outage */
        if (cl->was_up)
            hr_log_warn("redis: connection to %s:%d lost; delivery is local until it is back",
                        cl->host, cl->port);
        else
            hr_log_warn("redis: cannot connect to %s:%d; retrying with back-off", cl->host,
                        cl->port);
        cl->down_logged = true;
    }
    cl->was_up = false;
    /* Subscriptions: re-sent after the reconnect; waiters need not wait for Redis. */
    for (size_t i = 0; i < NBUCKETS; i++) {
        for (rsub_t **pp = &cl->subs[i]; *pp;) {
            rsub_t *s = *pp;
            s->state = S_NONE;
            s->resync = false;
            flush_waiters(s);
            rsub_maybe_free(pp);
            if (*pp == s)
                pp = &s->next;
        }
    }
    if (cl->cmd.ac) {
        redisAsyncContext *ac = cl->cmd.ac;
        redisAsyncDisconnect(ac);
    }
    if (cl->sub.ac) {
        redisAsyncContext *ac = cl->sub.ac;
        redisAsyncDisconnect(ac);
    }
    if (!cl->cmd.ac && !cl->sub.ac && !cl->stopping && !cl->retry_armed) {
        uint64_t j = 0;
        RAND_bytes((uint8_t *)&j, sizeof(j));
        uint64_t delay = cl->backoff_ms / 2 + j % (cl->backoff_ms / 2 + 1);
        cl->backoff_ms = cl->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : cl->backoff_ms * 2;
        cl->retry_armed = true;
        hr_loop_timer_start(&cl->loop, &cl->retry, delay);
    }
}

static void on_ignore(redisAsyncContext *ac, void *reply, void *priv);

static void heartbeat(struct hr_cluster *cl)
{
    char key[300];
    snprintf(key, sizeof(key), "%s:node:%s", cl->prefix, cl->node);
    cl->beat_ms = cl->loop.now_ms;
    if (cl->cmd.ac)
        redisAsyncCommand(cl->cmd.ac, on_ignore, NULL, "SET %s 1 PX %d", key, HEARTBEAT_TTL_MS);
}

/* Up only once every subscription is confirmed again: until then publishes stay local
 * (a message published meanwhile would miss this node's own subscribers). */
static void finish_up(struct hr_cluster *cl)
{
    atomic_store(&cl->up, true);
    cl->was_up = true;
    cl->down_logged = false;
    cl->backoff_ms = BACKOFF_MIN_MS;
    hr_log_info("redis: connected to %s:%d as node %s", cl->host, cl->port, cl->node);
    heartbeat(cl);
    /* Redis may have come back empty: every shard writes its presence again. */
    for (int i = 0; i < cl->srv->nshards; i++)
        if (!atomic_load(&cl->srv->shards[i].exited))
            hr_server__post(&cl->srv->shards[i], hr_channels__presence_resync, NULL);
}

static void check_up(struct hr_cluster *cl)
{
    if (!cl->cmd.connected || !cl->sub.connected || atomic_load(&cl->up) || cl->resyncing)
        return;
    /* Everything local subscribers want, again. */
    cl->resyncing = true;
    cl->nresync = 0;
    for (size_t i = 0; i < NBUCKETS; i++)
        for (rsub_t *s = cl->subs[i]; s; s = s->next)
            if (s->refs > 0 && s->state == S_NONE) {
                rsub_send(cl, s, true);
                if (s->state == S_SUBSCRIBING) {
                    s->resync = true;
                    cl->nresync++;
                }
            }
    if (cl->nresync == 0) {
        cl->resyncing = false;
        finish_up(cl);
    }
}

static conn_t *conn_of(const redisAsyncContext *ac)
{
    return ac->ev.data;
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    conn_t *c = conn_of(ac);
    struct hr_cluster *cl = c->cl;
    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback. */
        c->ac = NULL;
        c->connected = false;
        c->io.fd = -1;
        all_down(cl);
        return;
    }
    c->connected = true;
    check_up(cl);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    (void)status;
    conn_t *c = conn_of(ac);
    c->ac = NULL;
    c->connected = false;
    c->io.fd = -1;
    all_down(c->cl);
}

static void on_ignore(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    (void)priv;
    redisReply *x = reply;
    if (x && x->type == REDIS_REPLY_ERROR)
        hr_log_warn("redis: %.*s", (int)x->len, x->str);
}

/* Herald's publish as a Redis 7 function for backends (FCALL <prefix>_publish 0 NAME
 * DATA), when the prefix makes a valid function name. An error (Redis < 7) is logged. */
static void load_function(struct hr_cluster *cl, redisAsyncContext *ac)
{
    for (const char *p = cl->prefix; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_'))
            return;
    hr_buf_t *b = &cl->scratch;
    if (hr_cluster__function_build(b, cl->prefix) != 0)
        return;
    const char *argv[4] = {"FUNCTION", "LOAD", "REPLACE", (const char *)b->data};
    size_t lens[4] = {8, 4, 7, b->len};
    redisAsyncCommandArgv(ac, on_ignore, NULL, 4, argv, lens);
}

static int connect_one(struct hr_cluster *cl, conn_t *c, bool is_sub)
{
    redisAsyncContext *ac = redisAsyncConnect(cl->host, cl->port);
    if (!ac)
        return HR_ENOMEM;
    if (ac->err) {
        redisAsyncFree(ac);
        return HR_ECLOSED;
    }
    c->ac = ac;
    c->cl = cl;
    c->connected = false;
    c->started_ms = cl->loop.now_ms;
    c->io = (hr_io_t){.fd = ac->c.fd, .cb = on_io};
    ac->ev.data = c;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    /* Queued before anything else: AUTH, then SELECT (the sub connection needs no db). */
    if (cl->password)
        redisAsyncCommand(ac, on_ignore, NULL, "AUTH %s", cl->password);
    if (is_sub) {
        char own[300];
        snprintf(own, sizeof(own), "%s:node:%s", cl->prefix, cl->node);
        redisAsyncCommand(ac, on_sub_reply, cl, "SUBSCRIBE %s", own);
    } else {
        if (cl->db)
            redisAsyncCommand(ac, on_ignore, NULL, "SELECT %d", cl->db);
        for (int i = 0; i < nscripts; i++)
            redisAsyncCommand(ac, on_ignore, NULL, "SCRIPT LOAD %s", all_scripts[i]->lua);
        load_function(cl, ac);
    }
    return 0;
}

static void connect_both(struct hr_cluster *cl)
{
    if (connect_one(cl, &cl->cmd, false) != 0 || connect_one(cl, &cl->sub, true) != 0)
        all_down(cl);
}

static void on_retry(hr_timer_t *t)
{
    struct hr_cluster *cl = hr_list_entry(t, struct hr_cluster, retry);
    cl->retry_armed = false;
    if (cl->stopping)
        return;
    atomic_fetch_add(&cl->reconnects, 1);
    connect_both(cl);
}

/* Command timeouts and connect timeouts. */
static void on_tick(hr_timer_t *t)
{
    struct hr_cluster *cl = hr_list_entry(t, struct hr_cluster, tick);
    uint64_t now = cl->loop.now_ms;
    while (!hr_list_empty(&cl->pending)) {
        cmd_t *c = hr_list_entry(cl->pending.next, cmd_t, link);
        if (c->deadline_ms > now)
            break;
        atomic_fetch_add(&cl->errors, 1);
        answer(c, NULL); /* hiredis still owns c until it calls back */
    }
    for (conn_t *c = &cl->cmd; c; c = c == &cl->cmd ? &cl->sub : NULL)
        if (c->ac && !c->connected && now - c->started_ms > CONNECT_TIMEOUT_MS) {
            hr_log_warn("redis: connect to %s:%d timed out", cl->host, cl->port);
            redisAsyncContext *ac = c->ac;
            redisAsyncDisconnect(ac);
        }
    if (atomic_load(&cl->up) && now - cl->beat_ms >= HEARTBEAT_MS)
        heartbeat(cl);
    if (!cl->stopping)
        hr_loop_timer_start(&cl->loop, &cl->tick, TICK_MS);
}

/* ---------------------------------------------------------------- thread, start, stop */

static void *bridge_main(void *arg)
{
    struct hr_cluster *cl = arg;
    hr_loop_update_time(&cl->loop);
    hr_loop_timer_start(&cl->loop, &cl->tick, TICK_MS);
    connect_both(cl);
    hr_loop_run(&cl->loop);
    return NULL;
}

static void do_stop(void *ctx, void *arg)
{
    (void)arg;
    struct hr_cluster *cl = ctx;
    cl->stopping = true;
    hr_loop_timer_stop(&cl->loop, &cl->tick);
    hr_loop_timer_stop(&cl->loop, &cl->retry);
    /* Pending callbacks run with NULL replies; the shards have stopped, so answers to
     * them are dropped. */
    if (cl->cmd.ac)
        redisAsyncFree(cl->cmd.ac);
    if (cl->sub.ac)
        redisAsyncFree(cl->sub.ac);
    hr_loop_stop(&cl->loop);
}

/* redis://[[user]:password@]host[:port][/db] */
static int parse_url(struct hr_cluster *cl, const char *url, char *err, size_t errlen)
{
    if (strncmp(url, "redis://", 8) != 0) {
        snprintf(err, errlen, "--redis: expected redis://host:port/db, got '%s'", url);
        return HR_EINVAL;
    }
    const char *s = url + 8, *at = strrchr(s, '@');
    if (at) {
        const char *colon = memchr(s, ':', (size_t)(at - s));
        const char *pw = colon ? colon + 1 : s;
        cl->password = hr_malloc((size_t)(at - pw) + 1);
        if (!cl->password)
            return HR_ENOMEM;
        memcpy(cl->password, pw, (size_t)(at - pw));
        cl->password[at - pw] = 0;
        s = at + 1;
    }
    size_t hl = strcspn(s, ":/");
    if (hl == 0 || hl >= sizeof(cl->host)) {
        snprintf(err, errlen, "--redis: no host in '%s'", url);
        return HR_EINVAL;
    }
    memcpy(cl->host, s, hl);
    cl->host[hl] = 0;
    s += hl;
    cl->port = 6379;
    if (*s == ':') {
        char *end;
        long p = strtol(s + 1, &end, 10);
        if (end == s + 1 || p < 1 || p > 65535) {
            snprintf(err, errlen, "--redis: bad port in '%s'", url);
            return HR_EINVAL;
        }
        cl->port = (int)p;
        s = end;
    }
    if (*s == '/' && s[1]) {
        char *end;
        long db = strtol(s + 1, &end, 10);
        if (*end || db < 0 || db > 1000000) {
            snprintf(err, errlen, "--redis: bad database number in '%s'", url);
            return HR_EINVAL;
        }
        cl->db = (int)db;
    } else if (*s && strcmp(s, "/") != 0) {
        snprintf(err, errlen, "--redis: cannot parse '%s'", url);
        return HR_EINVAL;
    }
    return 0;
}

static void cluster_free(struct hr_cluster *cl)
{
    for (size_t i = 0; i < NBUCKETS; i++)
        while (cl->subs[i]) {
            rsub_t *s = cl->subs[i];
            cl->subs[i] = s->next;
            while (s->waiters) {
                waiter_t *w = s->waiters;
                s->waiters = w->next;
                hr_free(w);
            }
            hr_free(s);
        }
    hr_buf_deinit(&cl->scratch);
    hr_free(cl->password);
    hr_free(cl->prefix);
    hr_free(cl);
}

int hr_cluster_start(hr_server_t *srv, char *err, size_t errlen)
{
    if (!srv->redis.url)
        return 0;
    const char *prefix = srv->redis.prefix ? srv->redis.prefix : "herald";
    if (!*prefix || strlen(prefix) > 64) {
        snprintf(err, errlen, "--redis-prefix: 1..64 characters");
        return HR_EINVAL;
    }
    struct hr_cluster *cl = hr_calloc(1, sizeof(*cl));
    if (!cl)
        return HR_ENOMEM;
    cl->srv = srv;
    hr_list_init(&cl->pending);
    hr_buf_init(&cl->scratch);
    cl->cmd.io.fd = cl->sub.io.fd = -1;
    cl->backoff_ms = BACKOFF_MIN_MS;
    cl->prefix = hr_strdup(prefix);
    int rc = cl->prefix ? parse_url(cl, srv->redis.url, err, errlen) : HR_ENOMEM;
    if (rc == 0)
        rc = hr_loop_init(&cl->loop, 16384);
    if (rc) {
        if (rc == HR_ENOMEM)
            snprintf(err, errlen, "--redis: out of memory");
        cluster_free(cl);
        return rc;
    }
    hr_timer_init(&cl->tick, on_tick);
    hr_timer_init(&cl->retry, on_retry);
    random_id(cl->node, HR_CLUSTER_NODE_ID_LEN);
    hr_cluster__scripts_init();
    srv->redis.cl = cl;
    if (pthread_create(&cl->thread, NULL, bridge_main, cl) != 0) {
        srv->redis.cl = NULL;
        hr_loop_deinit(&cl->loop);
        cluster_free(cl);
        snprintf(err, errlen, "cannot create the Redis bridge thread");
        return HR_ENOMEM;
    }
    hr_log_info("cluster: node %s, redis %s:%d db %d, prefix '%s'", cl->node, cl->host, cl->port,
                cl->db, cl->prefix);
    return 0;
}

void hr_cluster_stop(hr_server_t *srv)
{
    struct hr_cluster *cl = srv->redis.cl;
    if (!cl)
        return;
    post_bridge(cl, do_stop, NULL);
    pthread_join(cl->thread, NULL);
    /* Answers queued for nobody. */
    hr_inbox_drain(&cl->loop.inbox);
    hr_loop_deinit(&cl->loop);
    srv->redis.cl = NULL;
    cluster_free(cl);
}
