#ifndef HR_BENCH_BENCH_H
#define HR_BENCH_BENCH_H

/* herald bench: the load engine shared by bench.c (options, orchestration, report) and
 * bench_worker.c (one loop per thread driving its share of the connections). The main
 * thread talks to a worker only through hr_loop_post and reads its progress through
 * relaxed atomic snapshots; final numbers are read after pthread_join. */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "bench/hist.h"
#include "herald/client.h"
#include "loop/loop.h"

typedef enum hr_bench_mode {
    HR_BENCH_ECHO,
    HR_BENCH_BROADCAST,
    HR_BENCH_IDLE,
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

typedef struct hr_bench_opts {
    hr_bench_mode_t mode;
    const char *url;
    uint32_t conns, inflight, size, threads, publishers;
    bool binary, quiet;
    double duration_s, warmup_s, hold_s, rate;
    long pid;            /* 0: no --pid */
    char **source_addrs; /* NULL or n_source_addrs strings */
    uint32_t n_source_addrs;
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
} hr_bench_stats_t;

struct hr_bench_conn;

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

#endif
