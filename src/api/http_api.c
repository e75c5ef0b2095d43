/* The backend HTTP API under /api/ (docs/api.md): publish to channels, read history and
 * presence, list channels, disconnect a client, read stats. JSON in, JSON out; every
 * error is {"error":"<code>","message":"..."} with the matching status. Answers that
 * need another thread (the channel's home, or every thread) are deferred and sent when
 * the data comes back; the connection may be gone by then, which the token tells. */
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "api/api.h"
#include "base/alloc.h"
#include "broker/channel.h"
#include "cluster/cluster.h"
#include "herald/error.h"
#include "proto/json_proto.h"
#include "server/channels.h"
#include "server/stomp.h"

#define MAX_BROADCAST 100
#define JSON_TYPE "application/json"

/* ---------------------------------------------------------------- replies */

static void reply_json(hr_http_ctx_t *x, int status, const char *json, size_t len,
                       const char *extra)
{
    hr_http_reply(x, status, JSON_TYPE, json, len, extra);
}

static void error_body(hr_buf_t *b, const char *code, const char *message)
{
    b->len = 0;
    hr_buf_append_str(b, "{\"error\":\"");
    hr_buf_append_str(b, code);
    hr_buf_append_str(b, "\",\"message\":");
    hr_jp_append_string(b, message, strlen(message));
    hr_buf_append_str(b, "}");
}

static void fail(hr_http_ctx_t *x, int status, const char *code, const char *message,
                 const char *extra)
{
    hr_buf_t *b = &conn_shard(x->c)->zscratch;
    error_body(b, code, message);
    reply_json(x, status, (const char *)b->data, b->len, extra);
}

static void fail_later(hr_http_token_t t, int status, const char *code, const char *message)
{
    hr_buf_t b;
    hr_buf_init(&b);
    error_body(&b, code, message);
    hr_http_reply_token(t, status, JSON_TYPE, b.data, b.len, NULL);
    hr_buf_deinit(&b);
}

static bool method_is(const hr_http_ctx_t *x, const char *m)
{
    size_t n = strlen(m);
    return x->req->method_len == n && memcmp(x->req->method, m, n) == 0;
}

static bool want_method(hr_http_ctx_t *x, const char *m)
{
    if (method_is(x, m))
        return true;
    char allow[32];
    snprintf(allow, sizeof(allow), "Allow: %s\r\n", m);
    fail(x, 405, "method_not_allowed", "method not allowed here", allow);
    return false;
}

/* --api-key: "Authorization: Bearer KEY" or "X-API-Key: KEY". */
static bool authorized(const hr_http_ctx_t *x, const char *key)
{
    if (!key)
        return true;
    size_t kl = strlen(key);
    const hr_http_header_t *h = hr_http_find_header(x->req, "X-API-Key");
    if (h && h->value_len == kl && memcmp(h->value, key, kl) == 0)
        return true;
    h = hr_http_find_header(x->req, "Authorization");
    return h && h->value_len == kl + 7 && strncasecmp(h->value, "Bearer ", 7) == 0 &&
           memcmp(h->value + 7, key, kl) == 0;
}

static json_t *parse_body(hr_http_ctx_t *x)
{
    json_error_t jerr;
    json_t *root = json_loadb((const char *)x->body, x->body_len, 0, &jerr);
    if (!root) {
        char msg[200];
        snprintf(msg, sizeof(msg), "invalid JSON body: %s", jerr.text);
        fail(x, 400, "bad_request", msg, NULL);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        fail(x, 400, "bad_request", "the body must be a JSON object", NULL);
        return NULL;
    }
    return root;
}

static bool channel_ok(hr_http_ctx_t *x, json_t *v, const char **name, size_t *len)
{
    if (!json_is_string(v)) {
        fail(x, 400, "bad_request", "channel must be a string", NULL);
        return false;
    }
    *name = json_string_value(v);
    *len = json_string_length(v);
    if (!hr_channel_name_valid(*name, *len)) {
        fail(x, 400, "bad_request", "invalid channel name", NULL);
        return false;
    }
    return true;
}

/* ---------------------------------------------------------------- publish, broadcast */

typedef struct pub_batch {
    hr_http_token_t tok;
    size_t n, done, failed;
    size_t unavailable; /* of failed: the server is handing over (handoff.c) */
    size_t unknown;     /* of failed: --redis, Redis did not answer (HR_CHAN_EUNKNOWN) */
    char *data;         /* compact JSON of the value */
    struct {
        char *channel;
        uint64_t offset;
        char epoch[24];
    } items[];
} pub_batch_t;

static void batch_free(pub_batch_t *b)
{
    for (size_t i = 0; i < b->n; i++)
        hr_free(b->items[i].channel);
    hr_free(b->data);
    hr_free(b);
}

typedef struct pub_slot {
    pub_batch_t *batch;
    size_t i;
    bool single; /* /api/publish: the bare result */
} pub_slot_t;

static void batch_done(pub_batch_t *b, bool single)
{
    if (b->unavailable || b->unknown) {
        /* unavailable: nothing was published by this process after the handoff began, so
         * retrying (on the new process, same address) publishes exactly once. unknown:
         * Redis may or may not have published, so sending again is at-least-once. */
        hr_buf_t e;
        hr_buf_init(&e);
        error_body(&e, "unavailable",
                   b->unavailable ? "server restarting: publish again"
                                  : "Redis did not answer: the publish may or may not have "
                                    "happened; publish again to be sure");
        hr_http_reply_token(b->tok, 503, JSON_TYPE, e.data, e.len, "Retry-After: 1\r\n");
        hr_buf_deinit(&e);
        batch_free(b);
        return;
    }
    if (b->failed) {
        fail_later(b->tok, 500, "internal", "could not publish");
        batch_free(b);
        return;
    }
    hr_buf_t out;
    hr_buf_init(&out);
    if (single) {
        hr_buf_appendf(&out, "{\"offset\":%llu,\"epoch\":", (unsigned long long)b->items[0].offset);
        hr_jp_append_string(&out, b->items[0].epoch, strlen(b->items[0].epoch));
        hr_buf_append_str(&out, "}");
    } else {
        hr_buf_append_str(&out, "{\"results\":[");
        for (size_t i = 0; i < b->n; i++) {
            hr_buf_append_str(&out, i ? ",{\"channel\":" : "{\"channel\":");
            hr_jp_append_string(&out, b->items[i].channel, strlen(b->items[i].channel));
            hr_buf_appendf(&out,
                           ",\"offset\":%llu,\"epoch\":", (unsigned long long)b->items[i].offset);
            hr_jp_append_string(&out, b->items[i].epoch, strlen(b->items[i].epoch));
            hr_buf_append_str(&out, "}");
        }
        hr_buf_append_str(&out, "]}");
    }
    hr_http_reply_token(b->tok, 200, JSON_TYPE, out.data, out.len, NULL);
    hr_buf_deinit(&out);
    batch_free(b);
}

static void on_published(void *ctx, int err, uint64_t offset, const char *epoch)
{
    pub_slot_t *s = ctx;
    pub_batch_t *b = s->batch;
    if (err) {
        b->failed++;
        b->unavailable += err == HR_EAGAIN;
        b->unknown += err == HR_CHAN_EUNKNOWN;
    } else {
        b->items[s->i].offset = offset;
        snprintf(b->items[s->i].epoch, sizeof(b->items[s->i].epoch), "%s", epoch);
    }
    bool single = s->single;
    hr_free(s);
    if (++b->done == b->n)
        batch_done(b, single);
}

/* Publishes data to the n channels of names[]; answers when all are done. */
static void publish_all(hr_http_ctx_t *x, const char **names, const size_t *lens, size_t n,
                        json_t *data, bool single)
{
    pub_batch_t *b = hr_calloc(1, sizeof(*b) + n * sizeof(b->items[0]));
    char *text = b ? json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    if (!b || !text) {
        hr_free(b);
        free(text);
        fail(x, 500, "internal", "out of memory", NULL);
        return;
    }
    b->data = hr_strdup(text);
    free(text);
    b->n = n;
    for (size_t i = 0; i < n; i++)
        b->items[i].channel = hr_strdup(names[i]);
    b->tok = hr_http_defer(x);
    hr_shard_t *sh = conn_shard(x->c);
    for (size_t i = 0; i < n; i++) {
        /* The answer may come at once (this thread is the channel's home): fill the slot
         * before publishing, and touch nothing of b after the last publish. */
        pub_slot_t *s = hr_malloc(sizeof(*s));
        if (s)
            *s = (pub_slot_t){.batch = b, .i = i, .single = single};
        if (!s || !b->data || !b->items[i].channel ||
            hr_channels_publish(sh, names[i], lens[i], b->data, strlen(b->data), on_published, s)) {
            hr_free(s);
            b->failed++;
            if (++b->done == b->n) {
                batch_done(b, single);
                return;
            }
        }
    }
}

static void api_publish(hr_http_ctx_t *x)
{
    if (!want_method(x, "POST"))
        return;
    json_t *root = parse_body(x);
    if (!root)
        return;
    const char *name;
    size_t len;
    json_t *data = json_object_get(root, "data");
    if (channel_ok(x, json_object_get(root, "channel"), &name, &len)) {
        if (!data)
            fail(x, 400, "bad_request", "data is required (any JSON value)", NULL);
        else
            publish_all(x, &name, &len, 1, data, true);
    }
    json_decref(root);
}

static void api_broadcast(hr_http_ctx_t *x)
{
    if (!want_method(x, "POST"))
        return;
    json_t *root = parse_body(x);
    if (!root)
        return;
    json_t *chans = json_object_get(root, "channels"), *data = json_object_get(root, "data");
    size_t n = json_is_array(chans) ? json_array_size(chans) : 0;
    const char *names[MAX_BROADCAST];
    size_t lens[MAX_BROADCAST];
    if (!json_is_array(chans) || n == 0 || n > MAX_BROADCAST) {
        fail(x, 400, "bad_request", "channels must be an array of 1 to 100 channel names", NULL);
    } else if (!data) {
        fail(x, 400, "bad_request", "data is required (any JSON value)", NULL);
    } else {
        size_t i = 0;
        for (; i < n; i++)
            if (!channel_ok(x, json_array_get(chans, i), &names[i], &lens[i]))
                break;
        if (i == n)
            publish_all(x, names, lens, n, data, false);
    }
    json_decref(root);
}

/* ---------------------------------------------------------------- history, presence */

typedef struct chan_op {
    hr_http_token_t tok;
    bool since;
    size_t name_len;
    char name[];
} chan_op_t;

static void on_history(void *ctx, const hr_chan_history_result_t *r)
{
    chan_op_t *o = ctx;
    if (r->err == HR_ENOENT) {
        fail_later(o->tok, 404, "not_found", "no message was published to this channel");
        hr_free(o);
        return;
    }
    if (r->err) {
        fail_later(o->tok, 500, "internal", "could not read history");
        hr_free(o);
        return;
    }
    hr_buf_t out;
    hr_buf_init(&out);
    hr_slice_t chan = hr_slice(o->name, o->name_len), epoch = hr_slice(r->epoch, strlen(r->epoch));
    hr_buf_append_str(&out, "{\"channel\":");
    hr_jp_append_string(&out, o->name, o->name_len);
    hr_buf_appendf(&out, ",\"offset\":%llu,\"epoch\":", (unsigned long long)r->top);
    hr_jp_append_string(&out, r->epoch, strlen(r->epoch));
    if (o->since)
        hr_buf_append_str(&out, r->recovered ? ",\"recovered\":true" : ",\"recovered\":false");
    hr_buf_append_str(&out, ",\"messages\":[");
    /* The items have the shape of the protocol's history items: one encoder for both. */
    for (size_t i = 0; i < r->n; i++)
        hr_jp_encode_ok_history_item(&out, chan, r->items[i].offset, epoch, r->items[i].time_ms,
                                     r->items[i].data);
    hr_buf_append_str(&out, "]}");
    hr_http_reply_token(o->tok, 200, JSON_TYPE, out.data, out.len, NULL);
    hr_buf_deinit(&out);
    hr_free(o);
}

static void on_presence(void *ctx, const hr_chan_presence_result_t *r)
{
    chan_op_t *o = ctx;
    if (r->err == HR_ESTATE) {
        fail_later(o->tok, 403, "not_allowed", "presence is off for this channel's namespace");
    } else if (r->err) {
        fail_later(o->tok, 500, "internal", "could not read presence");
    } else {
        hr_buf_t out;
        hr_buf_init(&out);
        hr_buf_append_str(&out, "{\"channel\":");
        hr_jp_append_string(&out, o->name, o->name_len);
        hr_buf_append_str(&out, ",\"clients\":[");
        for (size_t i = 0; i < r->n; i++) {
            hr_buf_appendf(&out, "%s{\"client\":\"%llu\",\"user\":", i ? "," : "",
                           (unsigned long long)r->clients[i].client);
            const char *u = r->clients[i].user;
            if (u)
                hr_jp_append_string(&out, u, strlen(u));
            else
                hr_buf_append_str(&out, "null");
            hr_buf_append_str(&out, "}");
        }
        hr_buf_append_str(&out, "]}");
        hr_http_reply_token(o->tok, 200, JSON_TYPE, out.data, out.len, NULL);
        hr_buf_deinit(&out);
    }
    hr_free(o);
}

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Percent-decodes s[0..n) into out (cap bytes). Returns the length or -1. */
static long pct_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '%') {
            if (i + 2 >= n)
                return -1;
            int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            ch = (char)(hi * 16 + lo);
            i += 2;
        }
        if (o == cap)
            return -1;
        out[o++] = ch;
    }
    return (long)o;
}

/* The value of key in a query string, decoded; false if absent or malformed. */
static bool query_get(const hr_http_ctx_t *x, const char *key, char *out, size_t cap)
{
    size_t kl = strlen(key);
    const char *q = x->query, *end = q ? q + x->query_len : NULL;
    while (q && q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *stop = amp ? amp : end;
        if ((size_t)(stop - q) > kl && memcmp(q, key, kl) == 0 && q[kl] == '=') {
            long n = pct_decode(q + kl + 1, (size_t)(stop - q - (long)kl - 1), out, cap - 1);
            if (n < 0)
                return false;
            out[n] = 0;
            return true;
        }
        q = amp ? amp + 1 : end;
    }
    return false;
}

static bool parse_u64(const char *s, uint64_t max, uint64_t *v)
{
    if (!*s)
        return false;
    uint64_t n = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || n > (max - (uint64_t)(*s - '0')) / 10)
            return false;
        n = n * 10 + (uint64_t)(*s - '0');
    }
    *v = n;
    return true;
}

static void api_channel(hr_http_ctx_t *x, const char *rest, size_t rn)
{
    /* rest: "NAME/history" or "NAME/presence" (NAME percent-encoded, may contain '/') */
    const char *slash = NULL;
    for (size_t i = rn; i-- > 0;)
        if (rest[i] == '/') {
            slash = rest + i;
            break;
        }
    if (!slash) {
        fail(x, 404, "not_found", "expected /api/channels/NAME/history or .../presence", NULL);
        return;
    }
    size_t what_len = rn - (size_t)(slash + 1 - rest);
    bool history = what_len == 7 && memcmp(slash + 1, "history", 7) == 0;
    bool presence = what_len == 8 && memcmp(slash + 1, "presence", 8) == 0;
    if (!history && !presence) {
        fail(x, 404, "not_found", "expected /api/channels/NAME/history or .../presence", NULL);
        return;
    }
    if (!want_method(x, "GET"))
        return;
    char name[HR_CHANNEL_MAX + 1];
    long nl = pct_decode(rest, (size_t)(slash - rest), name, HR_CHANNEL_MAX);
    if (nl <= 0 || !hr_channel_name_valid(name, (size_t)nl)) {
        fail(x, 400, "bad_request", "invalid channel name", NULL);
        return;
    }
    char v[80], epoch[80] = "";
    uint64_t since = 0, limit = 100;
    bool has_since = query_get(x, "since", v, sizeof(v));
    if (has_since && (!parse_u64(v, UINT64_C(9007199254740991), &since) ||
                      !query_get(x, "epoch", epoch, sizeof(epoch)) || !epoch[0])) {
        fail(x, 400, "bad_request", "since needs a whole number and an epoch", NULL);
        return;
    }
    if (query_get(x, "limit", v, sizeof(v)) && (!parse_u64(v, 1000, &limit) || limit == 0)) {
        fail(x, 400, "bad_request", "limit must be 1..1000", NULL);
        return;
    }
    chan_op_t *o = hr_malloc(sizeof(*o) + (size_t)nl + 1);
    if (!o) {
        fail(x, 500, "internal", "out of memory", NULL);
        return;
    }
    o->since = has_since;
    o->name_len = (size_t)nl;
    memcpy(o->name, name, (size_t)nl + 1);
    hr_shard_t *sh = conn_shard(x->c);
    o->tok = hr_http_defer(x);
    int rc = history ? hr_channels_history(sh, name, (size_t)nl, has_since, since, epoch,
                                           (unsigned)limit, on_history, o)
                     : hr_channels_presence(sh, name, (size_t)nl, on_presence, o);
    if (rc) {
        fail_later(o->tok, 500, "internal", "out of memory");
        hr_free(o);
    }
}

/* ---------------------------------------------------------------- every thread */

typedef struct chan_count {
    char *name;
    size_t count;
} chan_count_t;

typedef struct gather {
    hr_http_token_t tok;
    hr_shard_t *origin;
    atomic_int pending;
    int kind; /* GATHER_* */
    uint64_t client;
    struct gather_slot {
        chan_count_t *chans;
        size_t n;
        hr_shard_stats_t stats;
        uint64_t conns, homes, disconnected;
        /* metrics: open connections by route and subprotocol (0: none, 1 + its index) */
        uint64_t route_conns[HR_MAX_ROUTES][HR_MAX_SUBPROTOCOLS + 1], stomp_sessions, queued_bytes;
    } slot[];
} gather_t;

enum { GATHER_CHANNELS, GATHER_STATS, GATHER_DISCONNECT, GATHER_METRICS };

static void count_topic(hr_topic_t *tp, void *ctx)
{
    gather_t *g = ((void **)ctx)[0];
    size_t i = (size_t)((void **)ctx)[1];
    size_t n = 0;
    for (hr_list_t *l = tp->subs.next; l != &tp->subs; l = l->next)
        n++;
    chan_count_t *grown = hr_realloc(g->slot[i].chans, (g->slot[i].n + 1) * sizeof(chan_count_t));
    if (!grown)
        return;
    g->slot[i].chans = grown;
    grown[g->slot[i].n].name = hr_strdup(tp->name);
    grown[g->slot[i].n].count = n;
    if (grown[g->slot[i].n].name)
        g->slot[i].n++;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const chan_count_t *)a)->name, ((const chan_count_t *)b)->name);
}

/* ---------------------------------------------------------------- /metrics */

/* Prometheus text format 0.0.4 (docs/operations.md lists the families). Every
 * family has HELP and TYPE lines; counters end in _total; units are seconds and bytes.
 * Per-thread families carry a thread label; labelled counters (reason, limit) and the
 * latency histogram are summed over the threads at gather time. */

static void family(hr_buf_t *out, const char *name, const char *type, const char *help)
{
    hr_buf_appendf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A family with one sample per thread of the uint64_t at offset off of each slot. */
static void metric(hr_buf_t *out, const gather_t *g, int nshards, const char *name,
                   const char *type, const char *help, size_t off)
{
    family(out, name, type, help);
    for (int i = 0; i < nshards; i++) {
        uint64_t v;
        memcpy(&v, (const char *)&g->slot[i] + off, sizeof(v));
        hr_buf_appendf(out, "%s{thread=\"%d\"} %llu\n", name, i, (unsigned long long)v);
    }
}

/* A label value: '\', '"' and newline escaped (text format 0.0.4). */
static void label_value(hr_buf_t *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            hr_buf_appendf(out, "\\%c", *s);
        else if (*s == '\n')
            hr_buf_append_str(out, "\\n");
        else
            hr_buf_append(out, s, 1);
    }
}

static uint64_t sum_slots(const gather_t *g, int nshards, size_t off)
{
    uint64_t total = 0;
    for (int i = 0; i < nshards; i++) {
        uint64_t v;
        memcpy(&v, (const char *)&g->slot[i] + off, sizeof(v));
        total += v;
    }
    return total;
}

static void write_labelled(hr_buf_t *out, const gather_t *g, int nshards, const char *name,
                           const char *label, const char *const *values, size_t nvalues,
                           size_t off0)
{
    for (size_t k = 0; k < nvalues; k++)
        hr_buf_appendf(out, "%s{%s=\"%s\"} %llu\n", name, label, values[k],
                       (unsigned long long)sum_slots(g, nshards, off0 + k * sizeof(uint64_t)));
}

static void write_latency(hr_buf_t *out, const gather_t *g, int nshards)
{
    const char *name = "herald_publish_latency_seconds";
    family(out, name, "histogram",
           "Time from a channel publish at its home thread until the message is queued to a "
           "subscriber's socket, one observation per subscriber.");
    uint64_t cum = 0, sum_ns = 0;
    for (int i = 0; i < nshards; i++)
        sum_ns += g->slot[i].stats.publish_latency_ns;
    for (int b = 0; b <= HR_LATENCY_BUCKETS; b++) {
        for (int i = 0; i < nshards; i++)
            cum += g->slot[i].stats.publish_latency[b];
        if (b < HR_LATENCY_BUCKETS)
            hr_buf_appendf(out, "%s_bucket{le=\"%g\"} %llu\n", name, hr_latency_bound_us(b) / 1e6,
                           (unsigned long long)cum);
        else
            hr_buf_appendf(out, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
    }
    hr_buf_appendf(out, "%s_sum %.9f\n%s_count %llu\n", name, sum_ns / 1e9, name,
                   (unsigned long long)cum);
}

/* The process_* families every Prometheus client library exports, from /proc (Linux). */
static void write_process(hr_buf_t *out)
{
    long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    unsigned long long utime = 0, stime = 0, start = 0, vsize = 0;
    long long rss = 0;
    bool have_stat = false;
    FILE *f = fopen("/proc/self/stat", "r");
    if (f) {
        char line[1024];
        /* The command name (field 2) may hold spaces and ')': skip past the last ')'. */
        char *rest = fgets(line, sizeof(line), f) ? strrchr(line, ')') : NULL;
        have_stat = rest && sscanf(rest + 2,
                                   "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d "
                                   "%*d %*d %*d %*d %*d %llu %llu %lld",
                                   &utime, &stime, &start, &vsize, &rss) == 5;
        fclose(f);
    }
    unsigned long long btime = 0;
    f = fopen("/proc/stat", "r");
    if (f) {
        char line[256];
        while (fgets(line, sizeof(line), f))
            if (sscanf(line, "btime %llu", &btime) == 1)
                break;
        fclose(f);
    }
    if (have_stat && tick > 0) {
        family(out, "process_cpu_seconds_total", "counter",
               "Total user and system CPU time spent in seconds.");
        hr_buf_appendf(out, "process_cpu_seconds_total %.2f\n", (double)(utime + stime) / tick);
        family(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
        hr_buf_appendf(out, "process_resident_memory_bytes %lld\n", rss * (long long)page);
        family(out, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
        hr_buf_appendf(out, "process_virtual_memory_bytes %llu\n", vsize);
        if (btime) {
            family(out, "process_start_time_seconds", "gauge",
                   "Start time of the process since unix epoch in seconds.");
            hr_buf_appendf(out, "process_start_time_seconds %.2f\n",
                           (double)btime + (double)start / tick);
        }
    }
    /* O(open descriptors) per scrape, as in every client library. */
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        long n = 0;
        for (struct dirent *e; (e = readdir(d));)
            if (e->d_name[0] != '.')
                n++;
        closedir(d);
        family(out, "process_open_fds", "gauge", "Number of open file descriptors.");
        hr_buf_appendf(out, "process_open_fds %ld\n", n - 1); /* not the directory's own */
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        family(out, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
        if (rl.rlim_cur == RLIM_INFINITY)
            hr_buf_append_str(out, "process_max_fds +Inf\n");
        else
            hr_buf_appendf(out, "process_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
    }
}

static void write_metrics(hr_buf_t *out, const gather_t *g, const hr_server_t *srv)
{
#define SLOT(f) offsetof(struct gather_slot, f)
    int n = srv->nshards;
    family(out, "herald_connections", "gauge",
           "Open WebSocket connections by endpoint (route path), subprotocol and thread.");
    for (int r = 0; r < srv->nroutes; r++)
        for (int i = 0; i < n; i++)
            for (size_t p = 0; p <= srv->routes[r].nsubprotocols; p++) {
                uint64_t k = g->slot[i].route_conns[r][p];
                if (p && !k)
                    continue; /* "none" always; a subprotocol while in use */
                hr_buf_append_str(out, "herald_connections{endpoint=\"");
                label_value(out, srv->routes[r].path);
                hr_buf_append_str(out, "\",protocol=\"");
                label_value(out, p ? srv->routes[r].subprotocols[p - 1] : "none");
                hr_buf_appendf(out, "\",thread=\"%d\"} %llu\n", i, (unsigned long long)k);
            }
    metric(out, g, n, "herald_connections_accepted_total", "counter", "TCP connections accepted.",
           SLOT(stats.accepted));
    metric(out, g, n, "herald_handshakes_accepted_total", "counter",
           "WebSocket handshakes completed.", SLOT(stats.handshakes_ok));
    static const char *const reasons[] = {
#define HR_NAME_(name, label) label,
        HR_REJECT_MAP(HR_NAME_)
#undef HR_NAME_
    };
    family(out, "herald_handshakes_rejected_total", "counter",
           "Upgrades and HTTP requests refused with an HTTP error, by reason.");
    write_labelled(out, g, n, "herald_handshakes_rejected_total", "reason", reasons,
                   HR_REJECT__COUNT, SLOT(stats.rejected));
    static const char *const limits[] = {
#define HR_NAME_(name, label) label,
        HR_LIMIT_MAP(HR_NAME_)
#undef HR_NAME_
    };
    family(out, "herald_limit_rejections_total", "counter",
           "Messages, requests or clients refused by a configured limit, by limit.");
    write_labelled(out, g, n, "herald_limit_rejections_total", "limit", limits, HR_LIMIT__COUNT,
                   SLOT(stats.limit_rejections));
    metric(out, g, n, "herald_messages_received_total", "counter", "WebSocket messages received.",
           SLOT(stats.messages_in));
    metric(out, g, n, "herald_messages_sent_total", "counter",
           "WebSocket messages queued to clients.", SLOT(stats.messages_out));
    metric(out, g, n, "herald_received_bytes_total", "counter",
           "WebSocket bytes received (frames with their headers, as on the wire).",
           SLOT(stats.bytes_in));
    metric(out, g, n, "herald_sent_bytes_total", "counter",
           "WebSocket bytes queued to clients (frames with their headers, compressed if so).",
           SLOT(stats.bytes_out));
    write_latency(out, g, n);
    metric(out, g, n, "herald_queued_output_bytes", "gauge",
           "Bytes waiting in connections' output queues.", SLOT(queued_bytes));
    metric(out, g, n, "herald_slow_consumer_closes_total", "counter",
           "Clients closed with 1008 because their backlog passed --max-backlog.",
           SLOT(stats.slow_consumer_closes));
    metric(out, g, n, "herald_dropped_messages_total", "counter",
           "Channel messages dropped for slow consumers (drop-newest/drop-oldest namespaces).",
           SLOT(stats.dropped_messages));
    metric(out, g, n, "herald_protocol_errors_total", "counter",
           "Connections failed for a WebSocket protocol error (1002/1007/1009).",
           SLOT(stats.protocol_errors));
    metric(out, g, n, "herald_channels", "gauge", "Channels whose home is this thread.",
           SLOT(homes));
    metric(out, g, n, "herald_stomp_sessions", "gauge",
           "Open WebSocket connections on STOMP endpoints.", SLOT(stomp_sessions));
    metric(out, g, n, "herald_sse_streams", "gauge", "Open Server-Sent Events streams (/sse).",
           SLOT(stats.sse_open));
    metric(out, g, n, "herald_long_polls_waiting", "gauge",
           "Long polls (/poll) waiting for a message.", SLOT(stats.poll_waiting));
    metric(out, g, n, "herald_sse_requests_total", "counter", "GET requests to /sse.",
           SLOT(stats.sse_requests));
    metric(out, g, n, "herald_poll_requests_total", "counter", "GET requests to /poll.",
           SLOT(stats.poll_requests));
    metric(out, g, n, "herald_stream_messages_sent_total", "counter",
           "Channel messages written to SSE streams (long polls answer with batches).",
           SLOT(stats.stream_messages_out));
#undef SLOT
    family(out, "herald_cluster_enabled", "gauge",
           "1 when channels are shared with other nodes through Redis (--redis), else 0.");
    hr_cluster_stats_t cs;
    hr_cluster_stats(srv, &cs);
    hr_buf_appendf(out, "herald_cluster_enabled %d\n", hr_cluster_enabled(srv) ? 1 : 0);
    if (hr_cluster_enabled(srv)) {
        family(out, "herald_redis_up", "gauge", "1 while both Redis connections are up.");
        hr_buf_appendf(out, "herald_redis_up %d\n", cs.up ? 1 : 0);
        family(out, "herald_redis_reconnects_total", "counter",
               "Reconnection attempts to Redis after a loss or a failed connect.");
        hr_buf_appendf(out, "herald_redis_reconnects_total %llu\n",
                       (unsigned long long)cs.reconnects);
        family(out, "herald_redis_messages_in_total", "counter",
               "Channel messages received from Redis (subscriptions).");
        hr_buf_appendf(out, "herald_redis_messages_in_total %llu\n",
                       (unsigned long long)cs.messages_in);
        family(out, "herald_redis_messages_out_total", "counter",
               "Messages published to Redis by this node.");
        hr_buf_appendf(out, "herald_redis_messages_out_total %llu\n",
                       (unsigned long long)cs.messages_out);
        family(out, "herald_redis_errors_total", "counter",
               "Redis error replies, timeouts and malformed messages from Redis.");
        hr_buf_appendf(out, "herald_redis_errors_total %llu\n", (unsigned long long)cs.errors);
    }
    family(out, "herald_build_info", "gauge", "Herald version.");
    hr_buf_append_str(out, "herald_build_info{version=\"");
    label_value(out, HR_VERSION_STRING);
    hr_buf_append_str(out, "\"} 1\n");
    write_process(out);
}

static void gather_finish(void *ctx, void *arg)
{
    gather_t *g = arg;
    hr_server_t *srv = g->origin->srv;
    hr_buf_t out;
    hr_buf_init(&out);
    if (g->kind == GATHER_CHANNELS) {
        size_t total = 0;
        for (int i = 0; i < srv->nshards; i++)
            total += g->slot[i].n;
        chan_count_t *all = hr_malloc((total ? total : 1) * sizeof(*all));
        size_t k = 0;
        for (int i = 0; all && i < srv->nshards; i++)
            for (size_t j = 0; j < g->slot[i].n; j++)
                all[k++] = g->slot[i].chans[j];
        if (all)
            qsort(all, k, sizeof(*all), by_name);
        hr_buf_append_str(&out, "{\"channels\":[");
        bool first = true;
        for (size_t i = 0; all && i < k;) {
            size_t sum = all[i].count, j = i + 1;
            while (j < k && strcmp(all[j].name, all[i].name) == 0)
                sum += all[j++].count;
            hr_buf_append_str(&out, first ? "{\"channel\":" : ",{\"channel\":");
            hr_jp_append_string(&out, all[i].name, strlen(all[i].name));
            hr_buf_appendf(&out, ",\"subscribers\":%zu}", sum);
            first = false;
            i = j;
        }
        hr_buf_append_str(&out, "]}");
        hr_free(all);
    } else if (g->kind == GATHER_METRICS) {
        write_metrics(&out, g, srv);
    } else if (g->kind == GATHER_STATS) {
        uint64_t conns = 0, in = 0, o = 0, slow = 0, dropped = 0;
        for (int i = 0; i < srv->nshards; i++) {
            conns += g->slot[i].conns;
            in += g->slot[i].stats.messages_in;
            o += g->slot[i].stats.messages_out;
            slow += g->slot[i].stats.slow_consumer_closes;
            dropped += g->slot[i].stats.dropped_messages;
        }
        hr_buf_appendf(&out,
                       "{\"connections\":%llu,\"threads\":%d,\"messages_in\":%llu,"
                       "\"messages_out\":%llu,\"slow_consumer_closes\":%llu,"
                       "\"dropped_messages\":%llu}",
                       (unsigned long long)conns, srv->nshards, (unsigned long long)in,
                       (unsigned long long)o, (unsigned long long)slow,
                       (unsigned long long)dropped);
    } else {
        uint64_t n = 0;
        for (int i = 0; i < srv->nshards; i++)
            n += g->slot[i].disconnected;
        hr_buf_appendf(&out, "{\"disconnected\":%llu}", (unsigned long long)n);
    }
    hr_http_reply_token(g->tok, 200,
                        g->kind == GATHER_METRICS ? "text/plain; version=0.0.4; charset=utf-8"
                                                  : JSON_TYPE,
                        out.data, out.len, NULL);
    hr_buf_deinit(&out);
    for (int i = 0; i < srv->nshards; i++) {
        for (size_t j = 0; j < g->slot[i].n; j++)
            hr_free(g->slot[i].chans[j].name);
        hr_free(g->slot[i].chans);
    }
    hr_free(g);
}

/* Runs on every shard: fills that shard's slot; the last one hands over to the origin. */
static void gather_here(void *ctx, void *arg)
{
    hr_shard_t *sh = ctx;
    gather_t *g = arg;
    int i = sh->index;
    if (g->kind == GATHER_CHANNELS) {
        void *pair[2] = {g, (void *)(size_t)i};
        hr_topics_foreach(&sh->chan_subs, count_topic, pair);
    } else {
        for (hr_list_t *l = sh->conns.next; l != &sh->conns;) {
            hr_conn_t *c = hr_list_entry(l, hr_conn_t, shard_link);
            l = l->next;
            g->slot[i].queued_bytes += hr_sock_queued(&c->sock);
            if (c->phase != HR_PHASE_OPEN)
                continue;
            g->slot[i].conns++;
            if (g->kind == GATHER_DISCONNECT && hr_conn_id(c) == g->client) {
                hr_conn_close(c, 4001, "disconnected by the server API");
                g->slot[i].disconnected++;
            }
        }
        g->slot[i].stats = sh->stats;
        g->slot[i].homes = sh->nhomes;
        const hr_server_t *srv = sh->srv;
        for (int r = 0; g->kind == GATHER_METRICS && r < srv->nroutes; r++) {
            uint64_t k = 0;
            const hr_list_t *head = &sh->route_conns[srv->routes[r].id];
            for (const hr_list_t *l = head->next; l != head; l = l->next, k++) {
                const hr_conn_t *c = hr_list_entry(l, hr_conn_t, route_link);
                g->slot[i].route_conns[r][c->protocol + 1]++;
            }
            if (srv->routes[r].cb.on_open == hr_stomp_route_cb.on_open)
                g->slot[i].stomp_sessions += k;
        }
    }
    if (atomic_fetch_sub(&g->pending, 1) == 1) {
        if (sh == g->origin)
            gather_finish(sh, g);
        else
            hr_server__post(g->origin, gather_finish, g);
    }
}

static void gather_all(hr_http_ctx_t *x, int kind, uint64_t client)
{
    hr_shard_t *sh = conn_shard(x->c);
    hr_server_t *srv = sh->srv;
    gather_t *g = hr_calloc(1, sizeof(*g) + (size_t)srv->nshards * sizeof(g->slot[0]));
    if (!g) {
        fail(x, 500, "internal", "out of memory", NULL);
        return;
    }
    g->origin = sh;
    g->kind = kind;
    g->client = client;
    atomic_init(&g->pending, srv->nshards);
    g->tok = hr_http_defer(x);
    for (int i = 0; i < srv->nshards; i++) {
        if (&srv->shards[i] == sh)
            gather_here(sh, g);
        else
            hr_server__post(&srv->shards[i], gather_here, g);
    }
}

static void api_disconnect(hr_http_ctx_t *x)
{
    if (!want_method(x, "POST"))
        return;
    json_t *root = parse_body(x);
    if (!root)
        return;
    json_t *client = json_object_get(root, "client");
    uint64_t id = 0;
    if (json_object_get(root, "user") && !client)
        fail(x, 400, "bad_request", "disconnect by user needs authentication (not enabled)", NULL);
    else if (!json_is_string(client) || !parse_u64(json_string_value(client), UINT64_MAX, &id))
        fail(x, 400, "bad_request", "client must be a connection id (a decimal string)", NULL);
    else
        gather_all(x, GATHER_DISCONNECT, id);
    json_decref(root);
}

/* ---------------------------------------------------------------- STOMP destinations */

static void on_stomp_sent(void *ctx, int err, const char *errmsg)
{
    hr_http_token_t *t = ctx;
    if (err == HR_ENOBUFS)
        fail_later(*t, 503, "limit_exceeded", errmsg);
    else if (err)
        fail_later(*t, 500, "internal", errmsg);
    else
        hr_http_reply_token(*t, 202, JSON_TYPE, "{\"ok\":true}", 11, NULL);
    hr_free(t);
}

/* POST /api/stomp/send {"destination", "body", "content-type", "headers"}: a backend's
 * convertAndSend / convertAndSendToUser (docs/stomp.md). */
static void api_stomp_send(hr_http_ctx_t *x)
{
    if (!want_method(x, "POST"))
        return;
    json_t *root = parse_body(x);
    if (!root)
        return;
    json_t *jd = json_object_get(root, "destination"), *jb = json_object_get(root, "body");
    json_t *jc = json_object_get(root, "content-type"), *jh = json_object_get(root, "headers");
    char *text = NULL;
    const char *body = "", *ctype = jc ? json_string_value(jc) : NULL;
    size_t blen = 0;
    if (!json_is_string(jd) || (jc && !json_is_string(jc)) || (jh && !json_is_object(jh))) {
        fail(x, 400, "bad_request",
             "destination (and content-type) must be strings, headers an object of strings", NULL);
        json_decref(root);
        return;
    }
    if (json_is_string(jb)) {
        body = json_string_value(jb);
        blen = json_string_length(jb);
    } else if (jb && !json_is_null(jb)) {
        text = json_dumps(jb, JSON_ENCODE_ANY | JSON_COMPACT);
        body = text ? text : "";
        blen = text ? strlen(text) : 0;
        if (!ctype)
            ctype = "application/json";
    }
    hr_stomp_header_t h[64];
    size_t n = hr_stomp_headers_from_json(jh, h, 64);
    hr_http_token_t *t = hr_malloc(sizeof(*t));
    const char *err = "out of memory";
    int rc = HR_ENOMEM;
    if (t) {
        *t = hr_http_defer(x);
        rc = hr_stomp_route(conn_shard(x->c), json_string_value(jd), json_string_length(jd), ctype,
                            ctype ? strlen(ctype) : 0, h, n, body, blen, NULL, on_stomp_sent, t,
                            &err);
    }
    if (rc) {
        if (t) {
            fail_later(*t, rc == HR_ENOMEM ? 500 : 400,
                       rc == HR_ENOMEM ? "internal" : "bad_request", err);
            hr_free(t);
        } else {
            fail(x, 500, "internal", err, NULL);
        }
    }
    free(text);
    json_decref(root);
}

/* ---------------------------------------------------------------- routing */

void hr_api_handle(hr_http_ctx_t *x, void *data)
{
    (void)data;
    const hr_server_t *srv = conn_shard(x->c)->srv;
    if (!authorized(x, srv->api_key)) {
        fail(x, 401, "unauthorized", "a valid API key is required", "WWW-Authenticate: Bearer\r\n");
        return;
    }
    const char *p = x->path + 5; /* after "/api/" */
    size_t n = x->path_len - 5;
#define IS(lit) (n == sizeof(lit) - 1 && memcmp(p, lit, n) == 0)
    if (IS("publish"))
        api_publish(x);
    else if (IS("broadcast"))
        api_broadcast(x);
    else if (IS("disconnect"))
        api_disconnect(x);
    else if (IS("stomp/send"))
        api_stomp_send(x);
    else if (IS("channels")) {
        if (want_method(x, "GET"))
            gather_all(x, GATHER_CHANNELS, 0);
    } else if (IS("stats")) {
        if (want_method(x, "GET"))
            gather_all(x, GATHER_STATS, 0);
    } else if (n > 9 && memcmp(p, "channels/", 9) == 0)
        api_channel(x, p + 9, n - 9);
    else
        fail(x, 404, "not_found", "no such API endpoint (see docs/api.md)", NULL);
#undef IS
}

void hr_api_metrics(hr_http_ctx_t *x, void *data)
{
    (void)data;
    if (want_method(x, "GET"))
        gather_all(x, GATHER_METRICS, 0);
}
