/* The admin page's live feed (docs/web.md): the WebSocket route /admin/ws, which gets a
 * JSON stats snapshot once a second.
 *
 * A repeating timer on thread 0 gathers the snapshot the way /metrics does: it posts to
 * every shard, each fills its own slot on its own thread (counters, open connections,
 * queued bytes, CPU time of the thread, and how late the post ran, a cheap load
 * indicator), and the last one hands the gather back to thread 0, which encodes it once
 * and sends it with hr_server_broadcast to every feed connection on every thread. Rates
 * (messages per second) are the page's differences of these cumulative counters. The
 * timer does nothing while nobody watches, so an idle feed costs one timer wake-up per
 * second. Channels: each shard keeps its TOP_PER_SHARD channels with the most local
 * subscribers; the snapshot lists the TOP_CHANNELS largest of their sums (exact while a
 * channel's subscribers are on few threads or there are few channels).
 *
 * With --api-key the handshake must carry the key, as the subprotocol
 * "herald-key.<key>" (not logged by proxies or the access log, but only token characters)
 * or as ?key= (any key, percent-encoded, but the URL may be logged): 401 otherwise. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "api/web.h"
#include "base/alloc.h"
#include "base/buf.h"
#include "proto/json_proto.h"

#define ADMIN_PATH "/admin/ws"
#define TICK_MS 1000
#define TOP_PER_SHARD 32
#define TOP_CHANNELS 20

typedef struct top_chan {
    char *name;
    uint64_t subs;
    const hr_topic_t *topic; /* while the shard walks its channels; name is copied after */
} top_chan_t;

typedef struct admin_gather {
    hr_server_t *srv;
    hr_shard_t *origin;
    int route;
    atomic_int pending;
    uint64_t posted_ns;
    struct admin_slot {
        hr_shard_stats_t stats;
        uint64_t conns, queued, homes, cpu_ns, lag_ns;
        top_chan_t top[TOP_PER_SHARD];
        size_t ntop;
    } slot[];
} admin_gather_t;

/* Feed connections in this process: while 0 the timer gathers nothing. Process-wide
 * rather than per server only because it merely gates that work. */
static atomic_int watchers;
/* A gather is running: a late one is not overtaken by the next tick. */
static atomic_bool gathering;

static uint64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---------------------------------------------------------------- the handshake */

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Compares without an early exit on the first differing byte. */
static bool same_key(const char *key, const char *s, size_t n)
{
    size_t kl = strlen(key);
    unsigned diff = (unsigned)(kl ^ n);
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)s[i] ^ (unsigned char)key[i < kl ? i : 0];
    return kl > 0 && diff == 0;
}

static bool key_in_protocols(const char *key, const hr_http_request_t *req)
{
    for (size_t i = 0; i < req->num_headers; i++) {
        const hr_http_header_t *h = &req->headers[i];
        if (h->name_len != 22 || strncasecmp(h->name, "Sec-WebSocket-Protocol", 22) != 0)
            continue;
        const char *p = h->value, *end = h->value + h->value_len;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == ',' || *p == '\t'))
                p++;
            const char *q = p;
            while (q < end && *q != ',' && *q != ' ' && *q != '\t')
                q++;
            if (q - p > 11 && memcmp(p, "herald-key.", 11) == 0 &&
                same_key(key, p + 11, q - p - 11))
                return true;
            p = q;
        }
    }
    return false;
}

static bool key_in_query(const char *key, const hr_http_request_t *req)
{
    const char *q = memchr(req->target, '?', req->target_len);
    if (!q)
        return false;
    const char *p = q + 1, *end = req->target + req->target_len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *e = amp ? amp : end;
        if (e - p > 4 && memcmp(p, "key=", 4) == 0) {
            char v[512];
            size_t n = 0;
            for (const char *s = p + 4; s < e; s++) {
                if (n == sizeof(v))
                    return false;
                int hi, lo;
                if (*s == '%' && e - s > 2 && (hi = hexval(s[1])) >= 0 &&
                    (lo = hexval(s[2])) >= 0) {
                    v[n++] = (char)(hi * 16 + lo);
                    s += 2;
                } else {
                    v[n++] = *s == '+' ? ' ' : *s;
                }
            }
            return same_key(key, v, n);
        }
        p = e + 1;
    }
    return false;
}

int hr_admin_check_key(const char *key, const hr_http_request_t *req)
{
    if (!key || !*key)
        return 0;
    return key_in_protocols(key, req) || key_in_query(key, req) ? 0 : 401;
}

static int check_route(const hr_server_t *s, const hr_http_request_t *req)
{
    return hr_admin_check_key(s->api_key, req);
}

/* ---------------------------------------------------------------- the feed */

static void on_open(hr_conn_t *c)
{
    (void)c;
    atomic_fetch_add(&watchers, 1);
}

static void on_close(hr_conn_t *c, uint16_t code, const char *reason, size_t reason_len)
{
    (void)c, (void)code, (void)reason, (void)reason_len;
    atomic_fetch_sub(&watchers, 1);
}

static const hr_route_callbacks_t feed_cb = {.on_open = on_open, .on_close = on_close};

/* Keeps the shard's TOP_PER_SHARD channels by local subscribers (their names are copied
 * once the walk is over: only the final ones). */
static void count_topic(hr_topic_t *tp, void *ctx)
{
    struct admin_slot *s = ctx;
    uint64_t n = 0;
    for (hr_list_t *l = tp->subs.next; l != &tp->subs; l = l->next)
        n++;
    size_t at = s->ntop;
    while (at > 0 && s->top[at - 1].subs < n)
        at--;
    if (at == TOP_PER_SHARD)
        return;
    if (s->ntop == TOP_PER_SHARD)
        s->ntop--;
    memmove(&s->top[at + 1], &s->top[at], (s->ntop - at) * sizeof(s->top[0]));
    s->top[at] = (top_chan_t){.subs = n, .topic = tp};
    s->ntop++;
}

/* The slot's top list outlives the shard's channels: copies their names. */
static void copy_top_names(struct admin_slot *s)
{
    size_t kept = 0;
    for (size_t i = 0; i < s->ntop; i++) {
        char *name = hr_strdup(s->top[i].topic->name);
        if (name)
            s->top[kept++] = (top_chan_t){.name = name, .subs = s->top[i].subs};
    }
    s->ntop = kept;
}

static void append_u64(hr_buf_t *b, const char *key, uint64_t v)
{
    hr_buf_appendf(b, "\"%s\":%llu,", key, (unsigned long long)v);
}

static int by_subs(const void *a, const void *b)
{
    const top_chan_t *x = a, *y = b;
    if (x->subs != y->subs)
        return x->subs < y->subs ? 1 : -1;
    return strcmp(x->name, y->name);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const top_chan_t *)a)->name, ((const top_chan_t *)b)->name);
}

static void encode(hr_buf_t *b, admin_gather_t *g)
{
    hr_server_t *srv = g->srv;
    int n = srv->nshards;
    hr_shard_stats_t sum = {0};
    uint64_t conns = 0, homes = 0;
    for (int i = 0; i < n; i++) {
        const hr_shard_stats_t *s = &g->slot[i].stats;
        conns += g->slot[i].conns;
        homes += g->slot[i].homes;
        sum.messages_in += s->messages_in;
        sum.messages_out += s->messages_out;
        sum.bytes_in += s->bytes_in;
        sum.bytes_out += s->bytes_out;
        sum.slow_consumer_closes += s->slow_consumer_closes;
        sum.dropped_messages += s->dropped_messages;
        sum.protocol_errors += s->protocol_errors;
        sum.accepted += s->accepted;
        for (int k = 0; k < HR_REJECT__COUNT; k++)
            sum.rejected[k] += s->rejected[k];
        for (int k = 0; k < HR_LIMIT__COUNT; k++)
            sum.limit_rejections[k] += s->limit_rejections[k];
    }
    hr_buf_appendf(b, "{\"type\":\"stats\",\"time\":%llu,",
                   (unsigned long long)(clock_ns(CLOCK_REALTIME) / 1000000));
    append_u64(b, "connections", conns);
    append_u64(b, "accepted", sum.accepted);
    append_u64(b, "messages_in", sum.messages_in);
    append_u64(b, "messages_out", sum.messages_out);
    append_u64(b, "bytes_in", sum.bytes_in);
    append_u64(b, "bytes_out", sum.bytes_out);
    append_u64(b, "slow_consumer_closes", sum.slow_consumer_closes);
    append_u64(b, "dropped_messages", sum.dropped_messages);
    append_u64(b, "protocol_errors", sum.protocol_errors);
    append_u64(b, "channels_total", homes);
    static const char *const reasons[] = {
#define HR_NAME_(name, label) label,
        HR_REJECT_MAP(HR_NAME_)
#undef HR_NAME_
    };
    static const char *const limits[] = {
#define HR_NAME_(name, label) label,
        HR_LIMIT_MAP(HR_NAME_)
#undef HR_NAME_
    };
    hr_buf_append_str(b, "\"rejected\":{");
    for (int k = 0; k < HR_REJECT__COUNT; k++)
        hr_buf_appendf(b, "%s\"%s\":%llu", k ? "," : "", reasons[k],
                       (unsigned long long)sum.rejected[k]);
    hr_buf_append_str(b, "},\"limit_rejections\":{");
    for (int k = 0; k < HR_LIMIT__COUNT; k++)
        hr_buf_appendf(b, "%s\"%s\":%llu", k ? "," : "", limits[k],
                       (unsigned long long)sum.limit_rejections[k]);
    hr_buf_append_str(b, "},\"threads\":[");
    for (int i = 0; i < n; i++) {
        const struct admin_slot *s = &g->slot[i];
        hr_buf_appendf(
            b,
            "%s{\"thread\":%d,\"connections\":%llu,\"messages_in\":%llu,"
            "\"messages_out\":%llu,\"bytes_out\":%llu,\"queued_bytes\":%llu,"
            "\"channels\":%llu,\"cpu_ms\":%.3f,\"lag_ms\":%.3f}",
            i ? "," : "", i, (unsigned long long)s->conns, (unsigned long long)s->stats.messages_in,
            (unsigned long long)s->stats.messages_out, (unsigned long long)s->stats.bytes_out,
            (unsigned long long)s->queued, (unsigned long long)s->homes, (double)s->cpu_ns / 1e6,
            (double)s->lag_ns / 1e6);
    }
    /* Sum each channel's subscribers over the shards' top lists, largest first. */
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += g->slot[i].ntop;
    top_chan_t *all = hr_malloc((total ? total : 1) * sizeof(*all));
    size_t k = 0;
    for (int i = 0; all && i < n; i++)
        for (size_t j = 0; j < g->slot[i].ntop; j++)
            all[k++] = g->slot[i].top[j];
    if (all)
        qsort(all, k, sizeof(*all), by_name);
    size_t merged = 0;
    for (size_t i = 0; all && i < k; i++) {
        if (merged && strcmp(all[merged - 1].name, all[i].name) == 0)
            all[merged - 1].subs += all[i].subs;
        else
            all[merged++] = all[i];
    }
    if (all)
        qsort(all, merged, sizeof(*all), by_subs);
    hr_buf_append_str(b, "],\"channels\":[");
    for (size_t i = 0; all && i < merged && i < TOP_CHANNELS; i++) {
        hr_buf_append_str(b, i ? ",{\"channel\":" : "{\"channel\":");
        hr_jp_append_string(b, all[i].name, strlen(all[i].name));
        hr_buf_appendf(b, ",\"subscribers\":%llu}", (unsigned long long)all[i].subs);
    }
    hr_buf_append_str(b, "]}");
    hr_free(all);
}

static void gather_free(admin_gather_t *g)
{
    for (int i = 0; i < g->srv->nshards; i++)
        for (size_t j = 0; j < g->slot[i].ntop; j++)
            hr_free(g->slot[i].top[j].name);
    hr_free(g);
    atomic_store(&gathering, false);
}

static void gather_finish(void *ctx, void *arg)
{
    (void)ctx;
    admin_gather_t *g = arg;
    hr_buf_t b;
    hr_buf_init(&b);
    encode(&b, g);
    if (b.len && !atomic_load(&g->srv->stop_requested))
        hr_server_broadcast(g->srv, g->route, b.data, b.len, false);
    hr_buf_deinit(&b);
    gather_free(g);
}

static void gather_here(void *ctx, void *arg)
{
    hr_shard_t *sh = ctx;
    admin_gather_t *g = arg;
    struct admin_slot *s = &g->slot[sh->index];
    s->lag_ns = clock_ns(CLOCK_MONOTONIC) - g->posted_ns;
    s->cpu_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    for (hr_list_t *l = sh->conns.next; l != &sh->conns; l = l->next) {
        hr_conn_t *c = hr_list_entry(l, hr_conn_t, shard_link);
        s->queued += hr_sock_queued(&c->sock);
        if (c->phase == HR_PHASE_OPEN)
            s->conns++;
    }
    s->stats = sh->stats;
    s->homes = sh->nhomes;
    hr_topics_foreach(&sh->chan_subs, count_topic, s);
    copy_top_names(s);
    if (atomic_fetch_sub(&g->pending, 1) == 1)
        hr_server__run_on(sh, g->origin, gather_finish, g);
}

static void on_tick(hr_timer_handle_t *t, void *data)
{
    (void)t;
    hr_server_t *srv = data;
    if (atomic_load(&watchers) <= 0 || atomic_load(&srv->stop_requested) ||
        atomic_exchange(&gathering, true))
        return;
    int route = -1;
    for (int i = 0; i < srv->nroutes; i++)
        if (srv->routes[i].check == check_route)
            route = srv->routes[i].id;
    hr_shard_t *self = hr_server__current_shard();
    admin_gather_t *g = route < 0 || !self
                            ? NULL
                            : hr_calloc(1, sizeof(*g) + (size_t)srv->nshards * sizeof(g->slot[0]));
    if (!g) {
        atomic_store(&gathering, false);
        return;
    }
    g->srv = srv;
    g->origin = self;
    g->route = route;
    atomic_init(&g->pending, srv->nshards);
    g->posted_ns = clock_ns(CLOCK_MONOTONIC);
    for (int i = 0; i < srv->nshards; i++)
        hr_server__run_on(self, &srv->shards[i], gather_here, g);
}

int hr_admin_register(hr_server_t *s)
{
    static const char *const protocols[] = {"herald-admin", NULL};
    int id = hr_server_add_route(s, ADMIN_PATH, &feed_cb, protocols, NULL);
    if (id < 0)
        return id;
    for (int i = 0; i < s->nroutes; i++)
        if (s->routes[i].id == id)
            s->routes[i].check = check_route;
    return hr_timer_start(s, TICK_MS, TICK_MS, on_tick, s) ? 0 : HR_ENOMEM;
}
