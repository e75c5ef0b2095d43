/* herald bench, one worker: a loop on its own thread driving its share of the
 * connections through the client library (include/herald/client.h).
 *
 * Hot path (echo): on every echo read the clock once, decode the 8-character send
 * timestamp, record the latency in the thread's histogram, stamp the preallocated
 * payload and send it again. No allocation per message in here: hr_client_send copies
 * the payload into its frame. Connects are started in batches (at most
 * HR_BENCH_MAX_PENDING in flight over all threads) so a large idle run does not flood
 * the listen backlog. */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "bench/bench.h"

#define TICK_MS 10
#define CLOSE_GRACE_MS 2000
#define MAX_PRINTED_ERRORS 3

uint64_t hr_bench_clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t now_rel(const hr_bench_worker_t *w)
{
    return hr_bench_clock_ns() - w->o->t0_ns;
}

/* ------------------------------------------------------------------------------------
 * Payload prefix: fixed-width numbers, 6 bits per character from '0' (0x30..0x6f), so
 * the prefix is valid in a text message. 8 characters hold 48 bits: 78 hours of ns. */

static inline void put_num(uint8_t *p, unsigned nchars, uint64_t v)
{
    for (unsigned i = nchars; i-- > 0;) {
        p[i] = (uint8_t)('0' + (v & 63));
        v >>= 6;
    }
}

static inline uint64_t get_num(const uint8_t *p, unsigned nchars)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < nchars; i++)
        v = (v << 6) | (uint64_t)((p[i] - '0') & 63);
    return v;
}

/* ------------------------------------------------------------------------------------
 * Snapshot for the main thread */

#define SNAP_FIELDS(X)                                                                             \
    X(opened)                                                                                      \
    X(failed)                                                                                      \
    X(unexpected_closes)                                                                           \
    X(open_now)                                                                                    \
    X(msgs)                                                                                        \
    X(bytes)                                                                                       \
    X(sent)                                                                                        \
    X(deliveries)                                                                                  \
    X(out_of_order)                                                                                \
    X(send_failures)                                                                               \
    X(ready)                                                                                       \
    X(pub_ready)                                                                                   \
    X(proto_errors)                                                                                \
    X(fatal)

static void publish_snapshot(hr_bench_worker_t *w)
{
#define STORE_(f) __atomic_store_n(&w->snap.f, w->st.f, __ATOMIC_RELAXED);
    SNAP_FIELDS(STORE_)
#undef STORE_
}

void hr_bench_worker_snapshot(const hr_bench_worker_t *w, hr_bench_stats_t *out)
{
#define LOAD_(f) out->f = __atomic_load_n(&w->snap.f, __ATOMIC_RELAXED);
    SNAP_FIELDS(LOAD_)
#undef LOAD_
}

void hr_bench_worker_error(hr_bench_worker_t *w, const char *fmt, ...)
{
    w->st.proto_errors++;
    if (w->closing || w->errors_printed >= MAX_PRINTED_ERRORS)
        return;
    w->errors_printed++;
    va_list ap;
    va_start(ap, fmt);
    fputs("bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(w->errors_printed == MAX_PRINTED_ERRORS ? " (further errors of this thread not shown)\n"
                                                  : "\n",
          stderr);
}

/* ------------------------------------------------------------------------------------
 * Sending */

static void send_echo(hr_bench_conn_t *bc, uint64_t now)
{
    hr_bench_worker_t *w = bc->w;
    put_num(w->payload, HR_BENCH_TS_LEN, now);
    if (hr_client_send(bc->c, w->payload, w->o->size, w->o->binary) != 0)
        w->st.send_failures++;
}

static bool in_window(const hr_bench_opts_t *o, uint64_t t)
{
    return t >= o->t_start_ns && t < o->t_end_ns;
}

static void send_publish(hr_bench_conn_t *bc, uint64_t now)
{
    hr_bench_worker_t *w = bc->w;
    uint8_t *p = w->payload;
    put_num(p, HR_BENCH_TS_LEN, now);
    put_num(p + HR_BENCH_TS_LEN, 3, bc->gidx);
    put_num(p + HR_BENCH_TS_LEN + 3, 5, bc->seq);
    if (hr_client_send(bc->c, p, w->o->size, w->o->binary) != 0) {
        w->st.send_failures++;
        return;
    }
    bc->seq++;
    bc->inflight++;
    if (in_window(w->o, now))
        w->st.sent++;
}

static bool is_publisher(const hr_bench_conn_t *bc)
{
    return bc->w->o->mode == HR_BENCH_BROADCAST && bc->gidx < bc->w->o->publishers;
}

/* Starts traffic on one open connection (at the start command, or when it opens later). */
static void start_conn(hr_bench_conn_t *bc, uint64_t now)
{
    const hr_bench_opts_t *o = bc->w->o;
    if (o->mode == HR_BENCH_ECHO) {
        for (uint32_t i = 0; i < o->inflight; i++)
            send_echo(bc, now);
    } else if (is_publisher(bc) && o->rate == 0) {
        while (bc->inflight < HR_BENCH_PUB_WINDOW && hr_client_is_open(bc->c))
            send_publish(bc, now);
    }
}

/* Fixed-rate publishing, called from the tick: each publisher catches up with
 * rate/publishers messages per second since publishing began (bursts of one tick). */
static void publish_at_rate(hr_bench_worker_t *w, uint64_t now)
{
    const hr_bench_opts_t *o = w->o;
    double per_pub = o->rate / (double)o->publishers;
    uint64_t target = (uint64_t)(per_pub * (double)(now - w->pub_t0_ns) / 1e9);
    for (uint32_t i = 0; i < w->n_conns; i++) {
        hr_bench_conn_t *bc = &w->conns[i];
        if (!is_publisher(bc))
            break; /* publishers come first in every worker's table */
        if (bc->state != HR_BENCH_CONN_OPEN)
            continue;
        while (bc->pub_sent < target) {
            bc->pub_sent++;
            send_publish(bc, now);
        }
    }
}

/* ------------------------------------------------------------------------------------
 * Client callbacks */

static void connect_more(hr_bench_worker_t *w);

static void on_open(hr_client_t *c)
{
    hr_bench_conn_t *bc = hr_client_data(c);
    hr_bench_worker_t *w = bc->w;
    bc->state = HR_BENCH_CONN_OPEN;
    w->pending--;
    w->st.opened++;
    w->st.open_now++;
    if (w->closing) {
        hr_client_close(c, HR_WS_CLOSE_NORMAL, NULL);
        return;
    }
    if (w->o->mode == HR_BENCH_PUBSUB)
        hr_bench_pubsub_on_open(bc);
    else if (w->o->mode == HR_BENCH_STOMP)
        hr_bench_stomp_on_open(bc);
    else if (w->started && !w->stopped_sending)
        start_conn(bc, now_rel(w));
    connect_more(w);
}

static void on_message(hr_client_t *c, const uint8_t *data, size_t len, bool binary)
{
    hr_bench_conn_t *bc = hr_client_data(c);
    hr_bench_worker_t *w = bc->w;
    const hr_bench_opts_t *o = w->o;
    (void)binary;
    if (o->mode == HR_BENCH_PUBSUB) {
        hr_bench_pubsub_on_message(bc, data, len);
        return;
    }
    if (o->mode == HR_BENCH_STOMP) {
        hr_bench_stomp_on_message(bc, data, len);
        return;
    }
    if (o->mode == HR_BENCH_ECHO) {
        if (len < HR_BENCH_TS_LEN)
            return;
        uint64_t now = now_rel(w);
        uint64_t ts = get_num(data, HR_BENCH_TS_LEN);
        if (in_window(o, now)) {
            hr_bench_hist_record(&w->hist, (now - ts) / 1000);
            w->st.msgs++;
            w->st.bytes += len;
        }
        if (w->stopped_sending || w->closing)
            return;
        if (now >= o->t_end_ns) {
            w->stopped_sending = true;
            return;
        }
        send_echo(bc, now);
        return;
    }
    if (o->mode != HR_BENCH_BROADCAST || len < HR_BENCH_BCAST_HDR)
        return;
    uint64_t now = now_rel(w);
    uint64_t ts = get_num(data, HR_BENCH_TS_LEN);
    uint32_t pub = (uint32_t)get_num(data + HR_BENCH_TS_LEN, 3);
    uint32_t seq = (uint32_t)get_num(data + HR_BENCH_TS_LEN + 3, 5);
    if (pub >= o->publishers)
        return;
    uint32_t *next = &w->next_seq[(size_t)bc->local * o->publishers + pub];
    if (seq < *next)
        w->st.out_of_order++;
    else
        *next = seq + 1;
    if (in_window(o, ts)) {
        w->st.deliveries++;
        hr_bench_hist_record(&w->hist, (now - ts) / 1000);
    }
    if (pub == bc->gidx && bc->inflight > 0) {
        bc->inflight--;
        if (o->rate == 0 && !w->stopped_sending && !w->closing && now < o->t_end_ns) {
            while (bc->inflight < HR_BENCH_PUB_WINDOW && hr_client_is_open(c))
                send_publish(bc, now);
        }
    }
}

static void on_error(hr_client_t *c, int err, const char *msg)
{
    hr_bench_conn_t *bc = hr_client_data(c);
    hr_bench_worker_t *w = bc->w;
    if (w->closing)
        return;
    if (w->errors_printed < MAX_PRINTED_ERRORS) {
        w->errors_printed++;
        fprintf(stderr, "bench: connection %u: %s (%s)%s\n", bc->gidx, msg, hr_err_name(err),
                w->errors_printed == MAX_PRINTED_ERRORS ? " (further errors of this thread "
                                                          "not shown)"
                                                        : "");
    }
}

static void on_close(hr_client_t *c, uint16_t code, const char *reason, size_t reason_len)
{
    hr_bench_conn_t *bc = hr_client_data(c);
    hr_bench_worker_t *w = bc->w;
    uint8_t was = bc->state;
    bc->state = HR_BENCH_CONN_CLOSED;
    if (was == HR_BENCH_CONN_CONNECTING) {
        w->pending--;
        w->st.failed++;
        if (!w->closing)
            connect_more(w);
    } else if (was == HR_BENCH_CONN_OPEN) {
        w->st.open_now--;
        if (!w->closing) {
            w->st.unexpected_closes++;
            if (w->errors_printed < MAX_PRINTED_ERRORS) {
                w->errors_printed++;
                fprintf(stderr, "bench: connection %u closed by the server: %u %.*s\n", bc->gidx,
                        code, (int)reason_len, reason);
            }
        }
    }
    if (w->closing && w->closes_left > 0 && --w->closes_left == 0)
        hr_loop_stop(w->loop);
}

static const hr_client_callbacks_t callbacks = {
    .on_open = on_open,
    .on_message = on_message,
    .on_close = on_close,
    .on_error = on_error,
};

/* Starts connects until max_pending are in flight or every connection was started. */
static void connect_more(hr_bench_worker_t *w)
{
    static const char *const stomp_protocols[] = {"v12.stomp", NULL};
    const hr_bench_opts_t *o = w->o;
    while (w->pending < w->max_pending && w->next_connect < w->n_conns) {
        hr_bench_conn_t *bc = &w->conns[w->next_connect++];
        hr_client_options_t opts;
        hr_client_options_init(&opts);
        opts.url = o->url;
        if (o->n_urls && bc != w->pub) /* --urls: subscribers spread, the publisher on URL */
            opts.url = o->urls[bc->gidx % o->n_urls];
        opts.tls_insecure = o->tls_insecure;
        opts.tls_cafile = o->tls_cafile;
        if (o->mode == HR_BENCH_STOMP)
            opts.protocols = stomp_protocols;
        if (o->n_source_addrs)
            opts.source_addr = o->source_addrs[bc->gidx % o->n_source_addrs];
        char err[256];
        bc->state = HR_BENCH_CONN_CONNECTING;
        bc->c = hr_client_connect(w->loop, &opts, &callbacks, bc, err, sizeof(err));
        if (!bc->c) {
            bc->state = HR_BENCH_CONN_CLOSED;
            w->st.failed++;
            if (w->errors_printed < MAX_PRINTED_ERRORS) {
                w->errors_printed++;
                fprintf(stderr, "bench: connect: %s\n", err);
            }
            continue;
        }
        w->pending++;
    }
}

/* ------------------------------------------------------------------------------------
 * Tick and commands */

static void on_tick(hr_timer_t *t)
{
    hr_bench_worker_t *w = (hr_bench_worker_t *)((char *)t - offsetof(hr_bench_worker_t, tick));
    const hr_bench_opts_t *o = w->o;
    if (w->started && !w->stopped_sending && !w->closing) {
        uint64_t now = now_rel(w);
        if (now >= o->t_end_ns)
            w->stopped_sending = true;
        else if (o->mode == HR_BENCH_BROADCAST && o->rate > 0)
            publish_at_rate(w, now);
        else if (hr_bench_is_channel(o) && w->has_pub)
            hr_bench_pubsub_tick(w, now);
    }
    publish_snapshot(w);
    if (w->closing && hr_loop_now(w->loop) >= w->close_deadline_ms) {
        hr_loop_stop(w->loop);
        return;
    }
    hr_loop_timer_start(w->loop, &w->tick, TICK_MS);
}

void hr_bench_worker_on_start(void *ctx, void *arg)
{
    hr_bench_worker_t *w = ctx;
    (void)arg;
    w->started = true;
    uint64_t now = now_rel(w);
    w->pub_t0_ns = now;
    if (hr_bench_is_channel(w->o)) {
        hr_bench_pubsub_start(w, now);
        return;
    }
    for (uint32_t i = 0; i < w->n_conns; i++) {
        hr_bench_conn_t *bc = &w->conns[i];
        if (bc->state == HR_BENCH_CONN_OPEN)
            start_conn(bc, now);
    }
}

void hr_bench_worker_on_close_all(void *ctx, void *arg)
{
    hr_bench_worker_t *w = ctx;
    (void)arg;
    w->closing = true;
    w->stopped_sending = true;
    w->close_deadline_ms = hr_loop_now(w->loop) + CLOSE_GRACE_MS;
    if (hr_bench_is_channel(w->o))
        hr_bench_pubsub_close_all(w);
    w->closes_left = 0;
    for (uint32_t i = 0; i < w->n_conns; i++) {
        hr_bench_conn_t *bc = &w->conns[i];
        if (bc->state == HR_BENCH_CONN_OPEN || bc->state == HR_BENCH_CONN_CONNECTING)
            w->closes_left++;
    }
    if (w->closes_left == 0) {
        hr_loop_stop(w->loop);
        return;
    }
    for (uint32_t i = 0; i < w->n_conns; i++) {
        hr_bench_conn_t *bc = &w->conns[i];
        if (bc->state == HR_BENCH_CONN_OPEN)
            hr_client_close(bc->c, HR_WS_CLOSE_NORMAL, NULL);
        /* a connect in progress either fails (on_close) or opens and is closed there */
    }
}

/* ------------------------------------------------------------------------------------
 * Lifetime */

int hr_bench_worker_init(hr_bench_worker_t *w, const hr_bench_opts_t *o, uint32_t id)
{
    memset(w, 0, sizeof(*w));
    w->o = o;
    w->id = id;
    w->n_conns = o->conns / o->threads + (id < o->conns % o->threads ? 1 : 0);
    /* pubsub/stomp --via ws: worker 0 also drives the publishing connection, last in its
     * table */
    bool ws_pub = hr_bench_is_channel(o) && !o->via_api && id == 0;
    uint32_t n_subs = w->n_conns;
    if (ws_pub)
        w->n_conns++;
    w->max_pending = HR_BENCH_MAX_PENDING / o->threads;
    if (w->max_pending < 1)
        w->max_pending = 1;
    hr_bench_hist_init(&w->hist);
    w->loop = hr_loop_create();
    w->conns = calloc(w->n_conns ? w->n_conns : 1, sizeof(*w->conns));
    w->payload = malloc(o->size ? o->size : 1);
    if (o->mode == HR_BENCH_BROADCAST)
        w->next_seq =
            calloc((size_t)(w->n_conns ? w->n_conns : 1) * o->publishers, sizeof(*w->next_seq));
    if (!w->loop || !w->conns || !w->payload || (o->mode == HR_BENCH_BROADCAST && !w->next_seq)) {
        hr_bench_worker_deinit(w);
        return HR_ENOMEM;
    }
    /* Text-safe filler; the prefix is overwritten per message. */
    memset(w->payload, 'x', o->size);
    for (uint32_t i = 0; i < w->n_conns; i++) {
        hr_bench_conn_t *bc = &w->conns[i];
        bc->w = w;
        bc->local = i;
        bc->gidx = id + i * o->threads; /* ascending: publishers (gidx < P) come first */
    }
    if (ws_pub) {
        hr_bench_conn_t *pc = &w->conns[n_subs];
        pc->gidx = o->conns;
        pc->is_pub = true;
    }
    if (hr_bench_is_channel(o) && hr_bench_pubsub_init(w) != 0) {
        hr_bench_worker_deinit(w);
        return HR_ENOMEM;
    }
    hr_timer_init(&w->tick, on_tick);
    return 0;
}

void hr_bench_worker_deinit(hr_bench_worker_t *w)
{
    hr_bench_pubsub_deinit(w);
    if (w->loop)
        hr_loop_destroy(w->loop);
    free(w->conns);
    free(w->payload);
    free(w->next_seq);
    w->loop = NULL;
    w->conns = NULL;
    w->payload = NULL;
    w->next_seq = NULL;
}

void *hr_bench_worker_main(void *arg)
{
    hr_bench_worker_t *w = arg;
    hr_loop_update_time(w->loop);
    hr_loop_timer_start(w->loop, &w->tick, TICK_MS);
    connect_more(w);
    hr_loop_run(w->loop);
    hr_loop_timer_stop(w->loop, &w->tick);
    for (uint32_t i = 0; i < w->n_conns; i++) {
        if (w->conns[i].c) {
            hr_client_destroy(w->conns[i].c);
            w->conns[i].c = NULL;
        }
    }
    /* Let the loop free what the destroyed clients left for its end-of-iteration pass. */
    hr_loop_run_once(w->loop, 0);
    publish_snapshot(w);
    return NULL;
}
