/* herald bench: a WebSocket load generator on the client library (herald/client.h).
 *
 * Scenarios (the command-line contract is shared with bench/run.sh; see usage()):
 *   echo       CONNS connections each keep INFLIGHT messages outstanding; latency per echo.
 *   broadcast  SUBSCRIBERS connections, the first PUBLISHERS of them publish; fan-out
 *              deliveries, loss, order and send-to-receive latency.
 *   idle       CONNS idle connections; with --pid the server's RSS per connection.
 *   pubsub     SUBSCRIBERS /pubsub connections on one channel, one publisher (a /pubsub
 *              connection or POST /api/publish); deliveries, loss, offset order and
 *              publish-to-delivery latency (bench_pubsub.c).
 *   stomp      the same over STOMP 1.2 on /stomp: SUBSCRIBERS subscribe to /topic/CHANNEL,
 *              one publisher SENDs (or POST /api/publish); an ERROR frame stops the run
 *              (bench_stomp.c).
 *
 * --threads N runs N workers (bench_worker.c), each with its own loop and its share of the
 * connections; this thread only sequences the phases (connect, warm-up, measure, drain,
 * close), prints progress, and merges the workers' counters and histograms at the end.
 * Measurement is by timestamp: a message counts when its timestamp falls in the window
 * [start, end), so no worker has to be told exactly when the window opens. */
#include <errno.h>
#include <arpa/inet.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench/bench.h"
#include "cli/cli.h"

#define CONNECT_PHASE_MAX_S 60.0 /* give up waiting for connects after this */
#define DRAIN_MAX_S 5.0
#define MAX_THREADS 256
#define MAX_SOURCE_ADDRS 65536

static void usage(FILE *out)
{
    fputs("usage:\n"
          "  herald bench echo URL [-c CONNS] [-p INFLIGHT] [-s SIZE] [--binary] [-d SECONDS]\n"
          "                    [--warmup SECONDS] [--threads N] [--source-addrs A-B] [--quiet]\n"
          "  herald bench broadcast URL [-c SUBSCRIBERS] [--publishers N] [--rate MSGS_PER_S|0]\n"
          "                    [-s SIZE] [-d SECONDS] [--warmup SECONDS] [--threads N]\n"
          "                    [--source-addrs A-B] [--quiet]\n"
          "  herald bench idle URL [-c CONNS] [--pid PID] [--hold SECONDS] [--threads N]\n"
          "                    [--source-addrs A-B] [--quiet]\n"
          "  herald bench pubsub URL [-c SUBSCRIBERS] [--channel NAME] [--rate MSGS_PER_S|0]\n"
          "                    [--via ws|api] [--urls URL,URL,...] [-s SIZE] [-d SECONDS]\n"
          "                    [--warmup SECONDS] [--threads N] [--source-addrs A-B] [--quiet]\n"
          "  herald bench stomp URL [-c SUBSCRIBERS] [--channel NAME] [--rate MSGS_PER_S|0]\n"
          "                    [--via ws|api] [--urls URL,URL,...] [-s SIZE] [-d SECONDS]\n"
          "                    [--warmup SECONDS] [--threads N] [--source-addrs A-B] [--quiet]\n"
          "\n"
          "  echo       URL is an echo endpoint (herald: ws://127.0.0.1:PORT/ws). Every\n"
          "             connection keeps INFLIGHT messages of SIZE bytes (>= 8) outstanding.\n"
          "  broadcast  URL is a broadcast endpoint (herald: /broadcast). The first N\n"
          "             connections also publish: at --rate 0 as fast as possible with at most\n"
          "             16 unseen messages each, else RATE msgs/s together. SIZE >= 16.\n"
          "  idle       opens CONNS connections, holds them --hold seconds; with --pid reports\n"
          "             the RSS growth of that process per connection (measured from after one\n"
          "             warm-up connection: the marginal cost).\n"
          "  pubsub     URL is a /pubsub endpoint (herald: ws://127.0.0.1:PORT/pubsub). Every\n"
          "             connection subscribes to the channel (default bench.c); one publisher\n"
          "             publishes a JSON string of SIZE (>= 8) characters carrying the send\n"
          "             time, over one more /pubsub connection (--via ws, the default) or with\n"
          "             POST /api/publish on keep-alive HTTP/1.1 connections to the same\n"
          "             host:port (--via api, up to 16, one request outstanding on each).\n"
          "             At --rate 0 at most 16 messages not yet seen by the first subscriber.\n"
          "             --urls spreads the subscribers round-robin over other endpoints (the\n"
          "             nodes of a --redis cluster) while the publisher stays on URL: the\n"
          "             latency is then publish on one node to delivery on another.\n"
          "  stomp      pubsub over STOMP 1.2: URL is a STOMP endpoint (herald:\n"
          "             ws://127.0.0.1:PORT/stomp, subprotocol v12.stomp). Every connection\n"
          "             sends CONNECT (no heart-beats) and SUBSCRIBEs to /topic/CHANNEL with a\n"
          "             receipt; the publisher SENDs a text/plain body of SIZE characters over\n"
          "             one more STOMP connection (--via ws), or publishes it as a JSON string\n"
          "             with POST /api/publish (--via api). A server ERROR frame stops the run\n"
          "             (exit 1).\n"
          "\n"
          "defaults: -c 100, -p 1, -s 32, text, -d 10, --warmup 1, --threads 1,\n"
          "          --publishers 1, --rate 0, --hold 2, --channel bench.c, --via ws\n"
          "wss:// URLs: TLS, the server's certificate verified against the system store, or\n"
          "--cafile FILE, or not at all with --insecure (self-signed test certificates).\n"
          "--source-addrs 127.0.0.1-127.0.0.50 binds client sockets round-robin to those\n"
          "local addresses (past the ephemeral-port limit of one address).\n"
          "\n"
          "Progress on stderr every second (not with --quiet), a table on stdout, and as the\n"
          "last stdout line one 'RESULT key=value ...' line. Exit: 0 done (errors may be > 0),\n"
          "1 no connection could be made or the server answered a STOMP ERROR, 2 usage error.\n",
          out);
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("herald bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (see herald bench --help)\n", stderr);
    return 2;
}

static bool parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < min || v > max)
        return false;
    *out = (uint32_t)v;
    return true;
}

static bool parse_secs(const char *s, double min, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < min || v > 1e7)
        return false;
    *out = v;
    return true;
}

/* "A-B" or "A" (IPv4): fills o->source_addrs with every address from A to B. */
static bool parse_source_addrs(const char *s, hr_bench_opts_t *o)
{
    char a[64], b[64];
    const char *dash = strchr(s, '-');
    size_t alen = dash ? (size_t)(dash - s) : strlen(s);
    if (alen >= sizeof(a) || (dash && strlen(dash + 1) >= sizeof(b)))
        return false;
    memcpy(a, s, alen);
    a[alen] = 0;
    snprintf(b, sizeof(b), "%s", dash ? dash + 1 : a);
    struct in_addr ia, ib;
    if (inet_pton(AF_INET, a, &ia) != 1 || inet_pton(AF_INET, b, &ib) != 1)
        return false;
    uint32_t lo = ntohl(ia.s_addr), hi = ntohl(ib.s_addr);
    if (hi < lo || hi - lo >= MAX_SOURCE_ADDRS)
        return false;
    o->n_source_addrs = hi - lo + 1;
    o->source_addrs = calloc(o->n_source_addrs, sizeof(char *));
    if (!o->source_addrs)
        return false;
    for (uint32_t i = 0; i < o->n_source_addrs; i++) {
        struct in_addr x = {.s_addr = htonl(lo + i)};
        char buf[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &x, buf, sizeof(buf));
        o->source_addrs[i] = strdup(buf);
        if (!o->source_addrs[i])
            return false;
    }
    return true;
}

/* --urls "ws://a/pubsub,ws://b/pubsub": fills o->urls (at most MAX_URLS). */
#define MAX_URLS 64
static bool parse_urls(const char *s, hr_bench_opts_t *o)
{
    o->urls = calloc(MAX_URLS, sizeof(char *));
    if (!o->urls)
        return false;
    for (const char *p = s; *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (o->n_urls == MAX_URLS || len == 0)
            return false;
        char *u = strndup(p, len);
        if (!u)
            return false;
        o->urls[o->n_urls++] = u;
        if (strncmp(u, "ws://", 5) != 0 && strncmp(u, "wss://", 6) != 0)
            return false;
        p += len + (comma ? 1 : 0);
        if (comma && !*p)
            return false;
    }
    return o->n_urls > 0;
}

static void free_urls(hr_bench_opts_t *o)
{
    for (uint32_t i = 0; i < o->n_urls; i++)
        free(o->urls[i]);
    free(o->urls);
    o->urls = NULL;
    o->n_urls = 0;
}

static void free_source_addrs(hr_bench_opts_t *o)
{
    for (uint32_t i = 0; i < o->n_source_addrs; i++)
        free(o->source_addrs[i]);
    free(o->source_addrs);
    o->source_addrs = NULL;
    o->n_source_addrs = 0;
}

/* --via api: host, port and Host header of http://host:port/api/publish from the ws://
 * URL (the API is served on the same listener as /pubsub). */
static bool api_target(hr_bench_opts_t *o)
{
    const char *a = o->url + 5;
    size_t alen = strcspn(a, "/?#");
    const char *host = a, *after;
    size_t hlen;
    if (a[0] == '[') {
        const char *close = memchr(a, ']', alen);
        if (!close)
            return false;
        host = a + 1;
        hlen = (size_t)(close - host);
        after = close + 1;
    } else {
        const char *colon = memchr(a, ':', alen);
        hlen = colon ? (size_t)(colon - a) : alen;
        after = a + hlen;
    }
    uint32_t port = 80;
    if (after < a + alen) {
        char pb[8];
        size_t pl = (size_t)(a + alen - after - 1);
        if (*after != ':' || pl == 0 || pl >= sizeof(pb))
            return false;
        memcpy(pb, after + 1, pl);
        pb[pl] = 0;
        if (!parse_u32(pb, 1, 65535, &port))
            return false;
    }
    if (hlen == 0 || hlen >= sizeof(o->api_host))
        return false;
    memcpy(o->api_host, host, hlen);
    o->api_host[hlen] = 0;
    snprintf(o->api_port, sizeof(o->api_port), "%u", port);
    snprintf(o->api_host_header, sizeof(o->api_host_header), "%.*s", (int)alen, a);
    return true;
}

/* Returns 0, 2 for a usage error, or -1 for --help (exit 0). */
static int parse_args(int argc, char **argv, hr_bench_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->conns = 100;
    o->inflight = 1;
    o->size = 32;
    o->duration_s = 10;
    o->warmup_s = 1;
    o->threads = 1;
    o->publishers = 1;
    o->hold_s = 2;
    o->channel = "bench.c";
    const char *mode = NULL;
    bool size_set = false, seen_echo_opt = false, seen_bcast_opt = false, seen_idle_opt = false;
    bool seen_traffic_opt = false, seen_rate = false, seen_pubsub_opt = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return -1;
        }
        if (a[0] != '-' || a[1] == 0) {
            if (!mode)
                mode = a;
            else if (!o->url)
                o->url = a;
            else
                return usage_error("unexpected argument '%s'", a);
            continue;
        }
        /* boolean flags */
        if (strcmp(a, "--binary") == 0) {
            o->binary = true;
            seen_echo_opt = true;
            continue;
        }
        if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
            o->quiet = true;
            continue;
        }
        if (strcmp(a, "--insecure") == 0) {
            o->tls_insecure = true;
            continue;
        }
        if (strncmp(a, "--cafile", 8) == 0 && (a[8] == 0 || a[8] == '=')) {
            if (a[8] == '=')
                o->tls_cafile = a + 9;
            else if (i + 1 < argc)
                o->tls_cafile = argv[++i];
            else
                return usage_error("option '%s' needs a value", a);
            continue;
        }
        /* options with a value: "-c 10", "--conns 10", "--conns=10" */
        char name[32];
        const char *val = NULL;
        const char *eq = strncmp(a, "--", 2) == 0 ? strchr(a, '=') : NULL;
        size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
        if (nlen >= sizeof(name))
            return usage_error("unknown option '%s'", a);
        memcpy(name, a, nlen);
        name[nlen] = 0;
        static const char *const known[] = {"-c",
                                            "--conns",
                                            "-p",
                                            "--inflight",
                                            "-s",
                                            "--size",
                                            "-d",
                                            "--duration",
                                            "--warmup",
                                            "--threads",
                                            "--source-addrs",
                                            "--publishers",
                                            "--rate",
                                            "--pid",
                                            "--hold",
                                            "--channel",
                                            "--via",
                                            "--urls",
                                            NULL};
        bool ok = false;
        for (int k = 0; known[k]; k++)
            ok = ok || strcmp(known[k], name) == 0;
        if (!ok)
            return usage_error("unknown option '%s'", a);
        if (eq)
            val = eq + 1;
        else if (i + 1 < argc)
            val = argv[++i];
        else
            return usage_error("option '%s' needs a value", name);
        bool good;
        if (!strcmp(name, "-c") || !strcmp(name, "--conns")) {
            good = parse_u32(val, 1, 10000000, &o->conns);
        } else if (!strcmp(name, "-p") || !strcmp(name, "--inflight")) {
            good = parse_u32(val, 1, 1000000, &o->inflight);
            seen_echo_opt = true;
        } else if (!strcmp(name, "-s") || !strcmp(name, "--size")) {
            good = parse_u32(val, 1, 64u << 20, &o->size);
            size_set = true;
            seen_traffic_opt = true;
        } else if (!strcmp(name, "-d") || !strcmp(name, "--duration")) {
            good = parse_secs(val, 0.001, &o->duration_s);
            seen_traffic_opt = true;
        } else if (!strcmp(name, "--warmup")) {
            good = parse_secs(val, 0, &o->warmup_s);
            seen_traffic_opt = true;
        } else if (!strcmp(name, "--threads")) {
            good = parse_u32(val, 1, MAX_THREADS, &o->threads);
        } else if (!strcmp(name, "--source-addrs")) {
            free_source_addrs(o);
            good = parse_source_addrs(val, o);
        } else if (!strcmp(name, "--publishers")) {
            good = parse_u32(val, 1, 262143, &o->publishers);
            seen_bcast_opt = true;
        } else if (!strcmp(name, "--rate")) {
            good = parse_secs(val, 0, &o->rate);
            seen_rate = true;
        } else if (!strcmp(name, "--channel")) {
            size_t cl = strlen(val);
            good = cl >= 1 && cl <= 255;
            for (size_t k = 0; k < cl; k++) /* used verbatim inside a JSON string */
                good = good && (unsigned char)val[k] >= 0x20 && val[k] != '"' && val[k] != '\\';
            o->channel = val;
            seen_pubsub_opt = true;
        } else if (!strcmp(name, "--urls")) {
            free_urls(o);
            good = parse_urls(val, o);
            seen_pubsub_opt = true;
        } else if (!strcmp(name, "--via")) {
            good = !strcmp(val, "ws") || !strcmp(val, "api");
            o->via_api = !strcmp(val, "api");
            seen_pubsub_opt = true;
        } else if (!strcmp(name, "--pid")) {
            uint32_t pid;
            good = parse_u32(val, 1, 0x7fffffff, &pid);
            o->pid = (long)pid;
            seen_idle_opt = true;
        } else {
            good = parse_secs(val, 0, &o->hold_s);
            seen_idle_opt = true;
        }
        if (!good)
            return usage_error("bad value for %s", name);
    }
    if (!mode)
        return usage_error("%s", "missing scenario (echo, broadcast, idle, pubsub or stomp)");
    if (strcmp(mode, "echo") == 0)
        o->mode = HR_BENCH_ECHO;
    else if (strcmp(mode, "broadcast") == 0)
        o->mode = HR_BENCH_BROADCAST;
    else if (strcmp(mode, "idle") == 0)
        o->mode = HR_BENCH_IDLE;
    else if (strcmp(mode, "pubsub") == 0)
        o->mode = HR_BENCH_PUBSUB;
    else if (strcmp(mode, "stomp") == 0)
        o->mode = HR_BENCH_STOMP;
    else
        return usage_error("unknown scenario '%s' (echo, broadcast, idle, pubsub or stomp)", mode);
    if (!o->url)
        return usage_error("%s", "missing URL");
    if (strncmp(o->url, "ws://", 5) != 0 && strncmp(o->url, "wss://", 6) != 0)
        return usage_error("URL must start with ws:// or wss:// (got '%s')", o->url);
    if (o->via_api && o->url[2] == 's')
        return usage_error("%s", "--via api needs a ws:// URL (the API client speaks plain HTTP)");
    if (o->mode != HR_BENCH_ECHO && seen_echo_opt)
        return usage_error("-p and --binary are for echo (scenario '%s')", mode);
    if (o->mode != HR_BENCH_BROADCAST && seen_bcast_opt)
        return usage_error("--publishers is for broadcast (scenario '%s')", mode);
    if (o->mode != HR_BENCH_BROADCAST && !hr_bench_is_channel(o) && seen_rate)
        return usage_error("--rate is for broadcast, pubsub and stomp (scenario '%s')", mode);
    if (!hr_bench_is_channel(o) && seen_pubsub_opt)
        return usage_error("--channel, --via and --urls are for pubsub and stomp (scenario '%s')",
                           mode);
    if (o->mode != HR_BENCH_IDLE && seen_idle_opt)
        return usage_error("--pid and --hold are for idle (scenario '%s')", mode);
    if (o->mode == HR_BENCH_IDLE && seen_traffic_opt)
        return usage_error("%s", "-s, -d and --warmup are not for idle");
    if (o->mode == HR_BENCH_ECHO && o->size < HR_BENCH_TS_LEN)
        return usage_error("%s", "echo needs -s >= 8 (the send timestamp)");
    if (o->mode == HR_BENCH_BROADCAST) {
        if (!size_set && o->size < HR_BENCH_BCAST_HDR)
            o->size = HR_BENCH_BCAST_HDR;
        if (o->size < HR_BENCH_BCAST_HDR)
            return usage_error("%s", "broadcast needs -s >= 16 (timestamp, publisher, sequence)");
        if (o->publishers > o->conns)
            return usage_error("%s", "--publishers cannot exceed -c");
    }
    if (hr_bench_is_channel(o)) {
        if (o->size < HR_BENCH_TS_LEN)
            return usage_error("%s needs -s >= 8 (the send timestamp)", mode);
        /* STOMP 1.2 would need ':' escaped in the destination header */
        if (o->mode == HR_BENCH_STOMP && strchr(o->channel, ':'))
            return usage_error("%s", "stomp: --channel cannot contain ':'");
        if (!api_target(o))
            return usage_error("cannot derive the /api/publish address from '%s'", o->url);
    }
    if (o->threads > o->conns)
        o->threads = o->conns;
    return 0;
}

/* ------------------------------------------------------------------------------------
 * Helpers */

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* VmRSS of pid in KiB, or -1. */
static long read_rss_kb(long pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kb = -1;
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Idle mode: one connection opened (and kept) before the "before" RSS is read, so the
 * figure is the marginal cost of a connection. The server's first connection also pays
 * one-off costs (its thread's allocator arena, the TLS library's pages faulted in by the
 * first handshake) that no later connection pays. */
typedef struct warm_conn {
    hr_loop_t *loop;
    hr_client_t *c;
    bool done;
} warm_conn_t;

static void warm_on_open(hr_client_t *c)
{
    ((warm_conn_t *)hr_client_data(c))->done = true;
}

static void warm_on_close(hr_client_t *c, uint16_t code, const char *reason, size_t len)
{
    ((warm_conn_t *)hr_client_data(c))->done = true;
}

static void warm_open(warm_conn_t *wc, const hr_bench_opts_t *o)
{
    static const hr_client_callbacks_t cb = {.on_open = warm_on_open, .on_close = warm_on_close};
    hr_client_options_t opts;
    hr_client_options_init(&opts);
    opts.url = o->url;
    opts.tls_insecure = o->tls_insecure;
    opts.tls_cafile = o->tls_cafile;
    char err[256];
    wc->loop = hr_loop_create();
    wc->c = wc->loop ? hr_client_connect(wc->loop, &opts, &cb, wc, err, sizeof(err)) : NULL;
    for (int i = 0; wc->c && !wc->done && i < 500; i++)
        hr_loop_run_once(wc->loop, 10);
    sleep_ms(100); /* let the server finish its side of the handshake */
}

static void warm_close(warm_conn_t *wc)
{
    if (wc->c)
        hr_client_destroy(wc->c);
    if (wc->loop) {
        hr_loop_run_once(wc->loop, 0);
        hr_loop_destroy(wc->loop);
    }
}

typedef struct bench_run {
    hr_bench_opts_t *o;
    hr_bench_worker_t *w;
    uint32_t nw;
    uint64_t last_progress_ns;
    hr_bench_stats_t last; /* totals at the last progress line */
} bench_run_t;

static void sum_snapshots(const bench_run_t *r, hr_bench_stats_t *t)
{
    memset(t, 0, sizeof(*t));
    for (uint32_t i = 0; i < r->nw; i++) {
        hr_bench_stats_t s;
        hr_bench_worker_snapshot(&r->w[i], &s);
        t->opened += s.opened;
        t->failed += s.failed;
        t->unexpected_closes += s.unexpected_closes;
        t->open_now += s.open_now;
        t->msgs += s.msgs;
        t->bytes += s.bytes;
        t->sent += s.sent;
        t->deliveries += s.deliveries;
        t->out_of_order += s.out_of_order;
        t->send_failures += s.send_failures;
        t->ready += s.ready;
        t->pub_ready += s.pub_ready;
        t->proto_errors += s.proto_errors;
        t->fatal += s.fatal;
    }
}

static const char *mode_name(hr_bench_mode_t m)
{
    return m == HR_BENCH_ECHO        ? "echo"
           : m == HR_BENCH_BROADCAST ? "broadcast"
           : m == HR_BENCH_PUBSUB    ? "pubsub"
           : m == HR_BENCH_STOMP     ? "stomp"
                                     : "idle";
}

/* Prints a progress line on stderr once a second (not with --quiet). */
static void progress(bench_run_t *r, const char *phase)
{
    uint64_t now = hr_bench_clock_ns();
    if (r->o->quiet || now - r->last_progress_ns < 1000000000ull)
        return;
    double dt = (double)(now - r->last_progress_ns) / 1e9;
    hr_bench_stats_t t;
    sum_snapshots(r, &t);
    double el = (double)(now - r->o->t0_ns) / 1e9;
    fprintf(stderr, "bench %s [%6.1fs] %-8s open=%" PRIu64 "/%u errors=%" PRIu64,
            mode_name(r->o->mode), el, phase, t.open_now, r->o->conns,
            t.failed + t.unexpected_closes + t.proto_errors);
    if (hr_bench_is_channel(r->o))
        fprintf(stderr, " subscribed=%" PRIu64, t.ready);
    if (r->o->mode == HR_BENCH_ECHO)
        fprintf(stderr, " msgs/s=%.0f", (double)(t.msgs - r->last.msgs) / dt);
    else if (r->o->mode == HR_BENCH_BROADCAST || hr_bench_is_channel(r->o))
        fprintf(stderr, " sent/s=%.0f deliveries/s=%.0f", (double)(t.sent - r->last.sent) / dt,
                (double)(t.deliveries - r->last.deliveries) / dt);
    fputc('\n', stderr);
    r->last = t;
    r->last_progress_ns = now;
}

static uint64_t rel_now(const hr_bench_opts_t *o)
{
    return hr_bench_clock_ns() - o->t0_ns;
}

/* Waits until every connection opened or failed (bounded); pubsub/stomp: until every
 * subscription is confirmed (or refused) and the publishing connection is ready, or (stomp)
 * the server answered ERROR. */
static void wait_connected(bench_run_t *r)
{
    const hr_bench_opts_t *o = r->o;
    uint64_t deadline = rel_now(o) + (uint64_t)(CONNECT_PHASE_MAX_S * 1e9);
    for (;;) {
        hr_bench_stats_t t;
        sum_snapshots(r, &t);
        bool done = hr_bench_is_channel(o)
                        ? t.ready + t.pub_ready + t.failed + t.unexpected_closes + t.proto_errors >=
                              (uint64_t)o->conns + !o->via_api
                        : t.opened + t.failed >= o->conns;
        done = done || t.fatal;
        if (done || rel_now(o) >= deadline)
            return;
        progress(r, "connect");
        sleep_ms(5);
    }
}

/* True once a worker saw a STOMP ERROR: the run stops early. */
static bool fatal_seen(const bench_run_t *r)
{
    hr_bench_stats_t t;
    sum_snapshots(r, &t);
    return t.fatal > 0;
}

static void post_all(bench_run_t *r, hr_inbox_fn fn)
{
    for (uint32_t i = 0; i < r->nw; i++) {
        while (hr_loop_post(r->w[i].loop, fn, &r->w[i], NULL) != 0)
            sleep_ms(1);
    }
}

/* ------------------------------------------------------------------------------------
 * Report */

static void report(const bench_run_t *r, long rss_before, long rss_after)
{
    const hr_bench_opts_t *o = r->o;
    hr_bench_stats_t t;
    memset(&t, 0, sizeof(t));
    static hr_bench_hist_t h;
    hr_bench_hist_init(&h);
    for (uint32_t i = 0; i < r->nw; i++) {
        const hr_bench_stats_t *s = &r->w[i].st;
        t.opened += s->opened;
        t.failed += s->failed;
        t.unexpected_closes += s->unexpected_closes;
        t.msgs += s->msgs;
        t.bytes += s->bytes;
        t.sent += s->sent;
        t.deliveries += s->deliveries;
        t.out_of_order += s->out_of_order;
        t.send_failures += s->send_failures;
        t.ready += s->ready;
        t.proto_errors += s->proto_errors;
        t.http_connects += s->http_connects;
        t.fatal += s->fatal;
        hr_bench_hist_merge(&h, &r->w[i].hist);
    }
    uint64_t errors = t.failed + t.unexpected_closes + t.proto_errors;
    double d = o->duration_s;
    uint64_t p50 = hr_bench_hist_quantile(&h, 0.50), p99 = hr_bench_hist_quantile(&h, 0.99),
             p999 = hr_bench_hist_quantile(&h, 0.999);
    printf("\nherald bench %s  %s\n", mode_name(o->mode), o->url);
    if (hr_bench_is_channel(o))
        printf("  connections    %u subscribers%s (opened %" PRIu64 ", failed %" PRIu64
               ", closed by server %" PRIu64 "), threads %u\n",
               o->conns, o->via_api ? "" : " + 1 publisher", t.opened, t.failed,
               t.unexpected_closes, o->threads);
    else
        printf("  connections    %u (opened %" PRIu64 ", failed %" PRIu64
               ", closed by server %" PRIu64 "), threads %u\n",
               o->conns, t.opened, t.failed, t.unexpected_closes, o->threads);
    if (hr_bench_is_channel(o)) {
        bool stomp = o->mode == HR_BENCH_STOMP;
        int64_t lost = (int64_t)(t.sent * o->conns) - (int64_t)t.deliveries;
        double dps = (double)t.deliveries / d;
        char rate[32];
        if (o->rate > 0)
            snprintf(rate, sizeof(rate), "%.0f msgs/s", o->rate);
        else
            snprintf(rate, sizeof(rate), "max (window %d)", HR_BENCH_PUB_WINDOW);
        printf("  %s %s%s, publishing via %s, rate %s, %u-character %s\n",
               stomp ? "destination   " : "channel       ", stomp ? "/topic/" : "", o->channel,
               o->via_api ? "POST /api/publish"
               : stomp    ? "SEND on a STOMP connection"
                          : "a /pubsub connection",
               rate, o->size, stomp && !o->via_api ? "text/plain body" : "string");
        for (uint32_t i = 0; i < o->n_urls; i++)
            printf("  subscribers    %s%s\n", o->urls[i], i ? "" : " (round-robin over --urls)");
        if (o->via_api)
            printf("  HTTP           %s:%s, %" PRIu64 " connections opened (%u at most at once; "
                   "more: the server closed some)\n",
                   o->api_host, o->api_port, t.http_connects, HR_BENCH_HTTP_CONNS);
        printf("  window         %.2f s after %.2f s warm-up\n", d, o->warmup_s);
        printf("  sent           %" PRIu64 "  (%.0f msgs/s)\n", t.sent, (double)t.sent / d);
        printf("  deliveries     %" PRIu64 "  (%.0f /s), lost %" PRId64 ", out of order %" PRIu64
               "\n",
               t.deliveries, dps, lost, t.out_of_order);
        printf("  publish-to-delivery latency (us)  p50 %" PRIu64 "  p99 %" PRIu64
               "  p99.9 %" PRIu64 "  max %" PRIu64 "\n",
               p50, p99, p999, h.max_us);
        if (t.proto_errors)
            printf("  protocol errors %" PRIu64 " (error replies, failed HTTP publishes)\n",
                   t.proto_errors);
        if (t.fatal)
            printf("  stopped early  the server answered ERROR (see stderr)\n");
        if (t.send_failures)
            printf("  send failures  %" PRIu64 " (backlog full)\n", t.send_failures);
        printf("RESULT mode=%s subs=%u via=%s rate=%.0f size=%u duration_s=%.2f sent=%" PRIu64
               " deliveries=%" PRIu64 " deliveries_per_s=%.0f lost=%" PRId64
               " out_of_order=%" PRIu64 " p50_us=%" PRIu64 " p99_us=%" PRIu64 " errors=%" PRIu64
               "\n",
               mode_name(o->mode), o->conns, o->via_api ? "api" : "ws", o->rate, o->size, d, t.sent,
               t.deliveries, dps, lost, t.out_of_order, p50, p99, errors);
    } else if (o->mode == HR_BENCH_ECHO) {
        double mps = (double)t.msgs / d, mbps = (double)t.bytes / d / 1e6;
        printf("  messages       %u in flight per connection, %u bytes %s\n", o->inflight, o->size,
               o->binary ? "binary" : "text");
        printf("  window         %.2f s after %.2f s warm-up\n", d, o->warmup_s);
        printf("  echoes         %" PRIu64 "  (%.0f msgs/s, %.2f MB/s payload)\n", t.msgs, mps,
               mbps);
        printf("  latency (us)   p50 %" PRIu64 "  p99 %" PRIu64 "  p99.9 %" PRIu64 "  max %" PRIu64
               "\n",
               p50, p99, p999, h.max_us);
        if (t.send_failures)
            printf("  send failures  %" PRIu64 " (backlog full)\n", t.send_failures);
        printf("RESULT mode=echo conns=%u inflight=%u size=%u duration_s=%.2f msgs=%" PRIu64
               " msgs_per_s=%.0f mb_per_s=%.2f p50_us=%" PRIu64 " p99_us=%" PRIu64
               " p999_us=%" PRIu64 " errors=%" PRIu64 "\n",
               o->conns, o->inflight, o->size, d, t.msgs, mps, mbps, p50, p99, p999, errors);
    } else if (o->mode == HR_BENCH_BROADCAST) {
        int64_t lost = (int64_t)(t.sent * o->conns) - (int64_t)t.deliveries;
        double dps = (double)t.deliveries / d;
        char rate[32];
        if (o->rate > 0)
            snprintf(rate, sizeof(rate), "%.0f msgs/s", o->rate);
        else
            snprintf(rate, sizeof(rate), "max (window %d)", HR_BENCH_PUB_WINDOW);
        printf("  publishers     %u, rate %s, %u bytes %s\n", o->publishers, rate, o->size,
               o->binary ? "binary" : "text");
        printf("  window         %.2f s after %.2f s warm-up\n", d, o->warmup_s);
        printf("  sent           %" PRIu64 "  (%.0f msgs/s)\n", t.sent, (double)t.sent / d);
        printf("  deliveries     %" PRIu64 "  (%.0f /s), lost %" PRId64 ", out of order %" PRIu64
               "\n",
               t.deliveries, dps, lost, t.out_of_order);
        printf("  fan-out latency (us)  p50 %" PRIu64 "  p99 %" PRIu64 "  p99.9 %" PRIu64
               "  max %" PRIu64 "\n",
               p50, p99, p999, h.max_us);
        if (t.send_failures)
            printf("  send failures  %" PRIu64 " (backlog full)\n", t.send_failures);
        printf("RESULT mode=broadcast subs=%u publishers=%u rate=%.0f size=%u duration_s=%.2f "
               "sent=%" PRIu64 " deliveries=%" PRIu64 " deliveries_per_s=%.0f lost=%" PRId64
               " out_of_order=%" PRIu64 " p50_us=%" PRIu64 " p99_us=%" PRIu64 " errors=%" PRIu64
               "\n",
               o->conns, o->publishers, o->rate, o->size, d, t.sent, t.deliveries, dps, lost,
               t.out_of_order, p50, p99, errors);
    } else {
        char before[32] = "-", after[32] = "-", per[32] = "-";
        if (o->pid && rss_before >= 0 && rss_after >= 0) {
            snprintf(before, sizeof(before), "%ld", rss_before);
            snprintf(after, sizeof(after), "%ld", rss_after);
            snprintf(per, sizeof(per), "%.0f",
                     (double)(rss_after - rss_before) * 1024.0 / (double)o->conns);
        }
        printf("  held           %.2f s\n", o->hold_s);
        if (o->pid)
            printf("  server RSS     %s KiB -> %s KiB: %s bytes per connection (pid %ld)\n", before,
                   after, per, o->pid);
        printf("RESULT mode=idle conns=%u rss_before_kb=%s rss_after_kb=%s rss_per_conn_bytes=%s "
               "errors=%" PRIu64 "\n",
               o->conns, before, after, per, errors);
    }
    fflush(stdout);
}

/* ------------------------------------------------------------------------------------
 * The command */

int hr_cmd_bench(int argc, char **argv)
{
    hr_bench_opts_t o;
    int rc = parse_args(argc, argv, &o);
    if (rc != 0) {
        free_source_addrs(&o);
        free_urls(&o);
        return rc < 0 ? 0 : rc;
    }
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    o.t0_ns = hr_bench_clock_ns();
    o.t_start_ns = UINT64_MAX; /* nothing counts before the start */
    o.t_end_ns = UINT64_MAX;

    bench_run_t r = {.o = &o, .nw = o.threads, .last_progress_ns = o.t0_ns};
    r.w = calloc(o.threads, sizeof(*r.w));
    if (!r.w) {
        fprintf(stderr, "herald bench: out of memory\n");
        free_source_addrs(&o);
        free_urls(&o);
        return 1;
    }
    long rss_before = -1, rss_after = -1;
    warm_conn_t warm = {0};
    if (o.mode == HR_BENCH_IDLE && o.pid) {
        warm_open(&warm, &o);
        rss_before = read_rss_kb(o.pid);
        if (rss_before < 0)
            fprintf(stderr, "herald bench: cannot read /proc/%ld/status\n", o.pid);
    }
    uint32_t started = 0;
    for (; started < o.threads; started++) {
        hr_bench_worker_t *w = &r.w[started];
        if (hr_bench_worker_init(w, &o, started) != 0) {
            fprintf(stderr, "herald bench: cannot set up worker %u\n", started);
            break;
        }
        if (pthread_create(&w->thread, NULL, hr_bench_worker_main, w) != 0) {
            fprintf(stderr, "herald bench: cannot start thread %u\n", started);
            hr_bench_worker_deinit(w);
            break;
        }
    }
    r.nw = started;
    if (started == o.threads) {
        wait_connected(&r);
        hr_bench_stats_t t;
        sum_snapshots(&r, &t);
        if (t.fatal) {
            /* stomp: the server refused the session or the subscription; nothing to run */
        } else if (t.opened > 0 && o.mode != HR_BENCH_IDLE) {
            uint64_t now = rel_now(&o);
            o.t_start_ns = now + (uint64_t)(o.warmup_s * 1e9);
            o.t_end_ns = o.t_start_ns + (uint64_t)(o.duration_s * 1e9);
            post_all(&r, hr_bench_worker_on_start);
            while (rel_now(&o) < o.t_end_ns && !fatal_seen(&r)) {
                progress(&r, rel_now(&o) < o.t_start_ns ? "warmup" : "run");
                sleep_ms(5);
            }
            if ((o.mode == HR_BENCH_BROADCAST || hr_bench_is_channel(&o)) && !fatal_seen(&r)) {
                /* Workers stop publishing at t_end (by their tick, within ~20 ms); then
                 * wait for every subscriber to see every message sent in the window. */
                sleep_ms(50);
                uint64_t deadline = rel_now(&o) + (uint64_t)(DRAIN_MAX_S * 1e9);
                for (;;) {
                    sum_snapshots(&r, &t);
                    if (t.deliveries >= t.sent * o.conns || t.fatal || rel_now(&o) >= deadline)
                        break;
                    progress(&r, "drain");
                    sleep_ms(5);
                }
            }
        } else if (t.opened > 0) {
            uint64_t until = rel_now(&o) + (uint64_t)(o.hold_s * 1e9);
            while (rel_now(&o) < until) {
                progress(&r, "hold");
                sleep_ms(5);
            }
            if (o.pid)
                rss_after = read_rss_kb(o.pid);
        }
    }
    warm_close(&warm);
    post_all(&r, hr_bench_worker_on_close_all);
    for (uint32_t i = 0; i < r.nw; i++)
        pthread_join(r.w[i].thread, NULL);
    uint64_t opened = 0, fatal = 0;
    for (uint32_t i = 0; i < r.nw; i++) {
        opened += r.w[i].st.opened;
        fatal += r.w[i].st.fatal;
    }
    if (r.nw == o.threads)
        report(&r, rss_before, rss_after);
    for (uint32_t i = 0; i < r.nw; i++)
        hr_bench_worker_deinit(&r.w[i]);
    bool setup_failed = r.nw != o.threads;
    free(r.w);
    free_source_addrs(&o);
    free_urls(&o);
    if (setup_failed)
        return 1;
    if (opened == 0) {
        fprintf(stderr, "herald bench: no connection could be made to %s\n", o.url);
        return 1;
    }
    if (fatal) {
        fprintf(stderr, "herald bench: stopped: the server answered a STOMP ERROR frame\n");
        return 1;
    }
    return 0;
}
