#ifndef HR_BENCH_BENCH_H
#define HR_BENCH_BENCH_H

/* herald bench: the load engine shared by bench.c (options, orchestration, report) and
 * bench_worker.c (one loop per thread driving its share of the connections). The main
 * thread talks to a worker only through hr_loop_post and reads its progress through
 * relaxed atomic snapshots; final numbers are read after pthread_join. */

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bench/hist.h"
#include "herald/client.h"
#include "loop/loop.h"

typedef enum hr_bench_mode {
    HR_BENCH_ECHO,
    HR_BENCH_BROADCAST,
    HR_BENCH_IDLE,
    HR_BENCH_PUBSUB,
    HR_BENCH_STOMP, /* the pubsub engine over STOMP 1.2 on /stomp (bench_stomp.c) */
} hr_bench_mode_t;

/* Broadcast: at --rate 0 each publisher keeps at most this many of its own messages
 * not yet seen back. */
#define HR_BENCH_PUB_WINDOW 16
/* At most this many connects pending at once over all threads. */
#define HR_BENCH_MAX_PENDING 500
/* Echo payload prefix: the send timestamp, 8 characters of 6 bits each (text-safe). */
#define HR_BENCH_TS_LEN 8
/* Broadcast payload prefix: timestamp, publisher id (3 chars), sequence (5 chars). */
#define HR_BENCH_BCAST_HDR 16
/* Pub/sub: at most this many HTTP/1.1 keep-alive connections for --via api (one request
 * outstanding on each); the --rate 0 window is HR_BENCH_PUB_WINDOW as for broadcast. */
#define HR_BENCH_HTTP_CONNS 16

typedef struct hr_bench_opts {
    hr_bench_mode_t mode;
    const char *url;
    uint32_t conns, inflight, size, threads, publishers;
    bool binary, quiet;
    bool tls_insecure;      /* wss://: --insecure (no certificate verification) */
    const char *tls_cafile; /* wss://: --cafile FILE, or NULL (system store) */
    double duration_s, warmup_s, hold_s, rate;
    long pid;            /* 0: no --pid */
    char **source_addrs; /* NULL or n_source_addrs strings */
    uint32_t n_source_addrs;
    /* pubsub and stomp */
    const char *channel; /* default "bench.c"; stomp: the destination /topic/CHANNEL */
    char **urls;         /* --urls: subscribers round-robin over these (NULL: URL) */
    uint32_t n_urls;
    bool via_api;       /* publish through POST /api/publish instead of a /pubsub connection */
    char api_host[256]; /* from the URL, for --via api: host (no brackets), port, Host header */
    char api_port[8];
    char api_host_header[272];
    /* set by the main thread before it posts the start (read-only afterwards) */
    uint64_t t0_ns;      /* CLOCK_MONOTONIC at startup: timestamps are relative to it */
    uint64_t t_start_ns; /* measurement window [t_start, t_end), relative to t0 */
    uint64_t t_end_ns;
} hr_bench_opts_t;

/* Counters a worker owns; the main thread sees copies (hr_bench_worker.snap). */
typedef struct hr_bench_stats {
    uint64_t opened, failed, unexpected_closes, open_now;
    uint64_t msgs, bytes;                    /* echo: echoes received in the window */
    uint64_t sent, deliveries, out_of_order; /* broadcast: messages sent in the window */
    uint64_t send_failures;                  /* hr_client_send refused (backlog full) */
    uint64_t ready;                          /* pubsub: subscriptions confirmed */
    uint64_t pub_ready;     /* pubsub --via ws: the publishing connection is open (0/1) */
    uint64_t proto_errors;  /* pubsub: error replies, failed or refused HTTP publishes */
    uint64_t http_connects; /* pubsub --via api: HTTP connections opened */
    uint64_t fatal;         /* stomp: the server answered ERROR (the run stops early) */
} hr_bench_stats_t;

/* One WebSocket connection of a worker. */
typedef struct hr_bench_conn {
    hr_client_t *c;
    struct hr_bench_worker *w;
    uint32_t gidx;     /* global index: publisher id when < publishers */
    uint32_t local;    /* index in w->conns */
    uint32_t inflight; /* publisher: own messages not yet seen back */
    uint32_t seq;      /* publisher: next sequence number */
    uint64_t pub_sent; /* publisher at a fixed rate: messages sent since publishing began */
    uint64_t next_off; /* pubsub/stomp subscriber: the channel offset expected next (0: not
                        * known) */
    uint8_t state;
    bool is_pub;     /* pubsub/stomp: the publishing connection (not a subscriber) */
    bool subscribed; /* pubsub/stomp subscriber: the subscribe was confirmed */
} hr_bench_conn_t;

enum { HR_BENCH_CONN_IDLE, HR_BENCH_CONN_CONNECTING, HR_BENCH_CONN_OPEN, HR_BENCH_CONN_CLOSED };

struct hr_bench_http;

typedef struct hr_bench_worker {
    const hr_bench_opts_t *o;
    uint32_t id;
    pthread_t thread;
    hr_loop_t *loop;
    struct hr_bench_conn *conns;
    uint32_t n_conns;
    uint32_t next_connect; /* index of the next connection to start */
    uint32_t pending;      /* connects in progress */
    uint32_t max_pending;
    uint32_t *next_seq; /* broadcast: [conn][publisher] next sequence expected */
    uint8_t *payload;   /* one preallocated message: hr_client_send copies it */
    hr_timer_t tick;
    bool started, stopped_sending, closing;
    uint64_t pub_t0_ns; /* broadcast at a fixed rate: when publishing began */
    uint32_t closes_left;
    uint64_t close_deadline_ms;
    unsigned errors_printed;
    /* pubsub/stomp, worker 0 only: the publisher (a /pubsub or STOMP connection, or HTTP
     * connections) */
    bool has_pub;
    bool publishing;            /* inside the publishing loop (failures call back into it) */
    hr_bench_conn_t *pub;       /* --via ws: the publishing connection (in conns) */
    struct hr_bench_http *http; /* --via api: HR_BENCH_HTTP_CONNS connections */
    uint32_t pub_inflight;      /* --rate 0: messages not yet seen by the pacer */
    uint64_t pub_count;         /* messages published since publishing began */
    int64_t pacer;              /* local index of the pacing subscriber, or -1: pace by acks */
    uint8_t *frame;             /* the publish frame or HTTP request, stamped per message */
    size_t frame_len, ts_at;    /* its length and where the timestamp goes */
    void *api_addr;             /* --via api: resolved address (struct addrinfo list) */
    hr_bench_hist_t hist;
    hr_bench_stats_t st;
    hr_bench_stats_t snap; /* written with relaxed atomic stores, read by the main thread */
} hr_bench_worker_t;

/* Monotonic nanoseconds. */
uint64_t hr_bench_clock_ns(void);
/* Creates w's loop and connection table for global connections id, id + threads, ...
 * 0 or a negative error. */
int hr_bench_worker_init(hr_bench_worker_t *w, const hr_bench_opts_t *o, uint32_t id);
/* Frees what hr_bench_worker_init made (after the thread was joined). */
void hr_bench_worker_deinit(hr_bench_worker_t *w);
/* The thread body: connects, runs the loop until the close command has finished. */
void *hr_bench_worker_main(void *arg);
/* Commands posted from the main thread (hr_loop_post(w->loop, fn, w, NULL)). */
void hr_bench_worker_on_start(void *ctx, void *arg);
void hr_bench_worker_on_close_all(void *ctx, void *arg);
/* Reads w's snapshot (main thread). */
void hr_bench_worker_snapshot(const hr_bench_worker_t *w, hr_bench_stats_t *out);
/* Counts and prints (a few) errors of a worker. */
void hr_bench_worker_error(hr_bench_worker_t *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Pub/sub scenario (bench_pubsub.c), on the worker's thread; also the engine of the stomp
 * scenario, which only brings its own wire format (hr_bench_stomp_*). */
int hr_bench_pubsub_init(hr_bench_worker_t *w);
void hr_bench_pubsub_deinit(hr_bench_worker_t *w);
void hr_bench_pubsub_on_open(hr_bench_conn_t *bc);
void hr_bench_pubsub_on_message(hr_bench_conn_t *bc, const uint8_t *data, size_t len);
/* The start command (publishing begins) and every tick while sending. */
void hr_bench_pubsub_start(hr_bench_worker_t *w, uint64_t now);
void hr_bench_pubsub_tick(hr_bench_worker_t *w, uint64_t now);
/* Closes the HTTP connections (close command). */
void hr_bench_pubsub_close_all(hr_bench_worker_t *w);
/* The publishing connection became ready (stomp: CONNECTED): publishing may begin. */
void hr_bench_pubsub_pub_ready(hr_bench_worker_t *w);
/* A subscriber received one channel message: off is its channel offset (0: unknown), data
 * the published string (its first HR_BENCH_TS_LEN characters the send time). Counts the
 * delivery and its latency, checks the order, paces a --rate 0 publisher. */
void hr_bench_pubsub_delivered(hr_bench_conn_t *bc, uint64_t off, const uint8_t *data, size_t len);

/* STOMP wire format of the stomp scenario (bench_stomp.c), on the worker's thread. */
void hr_bench_stomp_on_open(hr_bench_conn_t *bc);
void hr_bench_stomp_on_message(hr_bench_conn_t *bc, const uint8_t *data, size_t len);
/* The SEND frame's head for the publisher (the payload and a NUL follow it). */
int hr_bench_stomp_send_head(const hr_bench_opts_t *o, char *buf, size_t cap);

/* True for the scenarios driven by bench_pubsub.c: subscribers of one channel. */
static inline bool hr_bench_is_channel(const hr_bench_opts_t *o);

/* inline definitions */

static inline bool hr_bench_is_channel(const hr_bench_opts_t *o)
{
    return o->mode == HR_BENCH_PUBSUB || o->mode == HR_BENCH_STOMP;
}

#endif
