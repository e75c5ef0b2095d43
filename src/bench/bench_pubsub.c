/* herald bench pubsub: SUBSCRIBERS /pubsub connections subscribe to one channel; worker
 * 0 also publishes to it, either over one more /pubsub connection (--via ws) or with
 * POST /api/publish over up to HR_BENCH_HTTP_CONNS keep-alive HTTP/1.1 connections
 * (--via api), one request outstanding on each.
 *
 * The published data is a JSON string of SIZE characters whose first 8 carry the send
 * time (6 bits per character from a JSON-safe alphabet); a subscriber reads it back from
 * the "data" member, and checks that the channel offsets it sees go up by exactly one.
 * At --rate 0 the publisher keeps at most HR_BENCH_PUB_WINDOW messages that the pacing
 * subscriber (the first subscribed connection of worker 0, on the same thread) has not
 * seen yet; at --rate R it sends R msgs/s from the tick.
 *
 * The HTTP client is the least that does: status line, Content-Length, Connection:
 * close; no pipelining, no chunked bodies (the API does not send them).
 *
 * The stomp scenario runs on this same engine (publishing, pacing, counting); only the
 * wire format differs: bench_stomp.c connects and subscribes over STOMP, reads MESSAGE
 * frames and hands each to hr_bench_pubsub_delivered, and the --via ws publisher sends
 * STOMP SEND frames of a text/plain body instead of /pubsub publish frames. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench/bench.h"

#define HTTP_IN_MAX 4096
/* The server closes a keep-alive connection after 10 s without a request (its handshake
 * timeout): one idle for longer than this is replaced before it is used. */
#define HTTP_STALE_MS 5000

typedef struct hr_bench_http {
    hr_io_t io; /* fd -1: closed */
    hr_bench_worker_t *w;
    bool connected; /* the TCP connect finished */
    bool busy;      /* a request is written or being written, its response not yet read */
    uint64_t idle_since_ms;
    uint8_t *out; /* the request being written (w->frame_len bytes) */
    size_t out_len, out_off;
    size_t in_len;
    uint8_t in[HTTP_IN_MAX];
} hr_bench_http_t;

static inline uint64_t now_rel(const hr_bench_worker_t *w)
{
    return hr_bench_clock_ns() - w->o->t0_ns;
}

static inline bool in_window(const hr_bench_opts_t *o, uint64_t t)
{
    return t >= o->t_start_ns && t < o->t_end_ns;
}

/* ------------------------------------------------------------------------------------
 * The timestamp in the data: 8 characters, 6 bits each, none of them needing a JSON
 * escape (the echo/broadcast prefix alphabet contains a backslash). */

static const char ts_alphabet[] =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_";

static void put_ts(uint8_t *p, uint64_t v)
{
    for (unsigned i = HR_BENCH_TS_LEN; i-- > 0;) {
        p[i] = (uint8_t)ts_alphabet[v & 63];
        v >>= 6;
    }
}

static inline int ts_digit(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'Z')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 36;
    return c == '-' ? 62 : c == '_' ? 63 : -1;
}

static bool get_ts(const uint8_t *p, size_t avail, uint64_t *out)
{
    if (avail < HR_BENCH_TS_LEN)
        return false;
    uint64_t v = 0;
    for (unsigned i = 0; i < HR_BENCH_TS_LEN; i++) {
        int d = ts_digit(p[i]);
        if (d < 0)
            return false;
        v = (v << 6) | (uint64_t)d;
    }
    *out = v;
    return true;
}

/* ------------------------------------------------------------------------------------
 * Reading server frames. Member order is not relied on: members are found by name (no
 * value the server sends here can contain the quoted names: the data has no quotes). */

enum { FRAME_OTHER, FRAME_MESSAGE, FRAME_OK, FRAME_ERROR };

static int frame_type(const uint8_t *d, size_t len)
{
    const uint8_t *t = memmem(d, len, "\"type\":\"", 8);
    if (!t)
        return FRAME_OTHER;
    t += 8;
    size_t rest = len - (size_t)(t - d);
    if (rest >= 8 && memcmp(t, "message\"", 8) == 0)
        return FRAME_MESSAGE;
    if (rest >= 3 && memcmp(t, "ok\"", 3) == 0)
        return FRAME_OK;
    if (rest >= 6 && memcmp(t, "error\"", 6) == 0)
        return FRAME_ERROR;
    return FRAME_OTHER;
}

/* The unsigned integer value of member "name" (given with its quotes and colon). */
static bool find_uint(const uint8_t *d, size_t len, const char *name, uint64_t *out)
{
    size_t nl = strlen(name);
    const uint8_t *p = memmem(d, len, name, nl);
    if (!p)
        return false;
    p += nl;
    const uint8_t *end = d + len;
    uint64_t v = 0;
    const uint8_t *start = p;
    while (p < end && *p >= '0' && *p <= '9' && p - start < 19)
        v = v * 10 + (uint64_t)(*p++ - '0');
    if (p == start)
        return false;
    *out = v;
    return true;
}

/* ------------------------------------------------------------------------------------
 * HTTP publishing */

static void publish_more(hr_bench_worker_t *w, uint64_t now);

static void http_close(hr_bench_http_t *h)
{
    if (h->io.fd >= 0) {
        hr_loop_io_stop(h->w->loop, &h->io);
        close(h->io.fd);
    }
    h->io.fd = -1;
    h->connected = h->busy = false;
    h->in_len = h->out_len = h->out_off = 0;
}

/* A request finished: ok, or failed (the message was most likely not published). */
static void request_done(hr_bench_worker_t *w, bool ok)
{
    if ((w->pacer < 0 || !ok) && w->pub_inflight > 0)
        w->pub_inflight--;
    publish_more(w, now_rel(w));
}

static void http_fail(hr_bench_http_t *h, const char *what, int err)
{
    hr_bench_worker_t *w = h->w;
    bool was_busy = h->busy;
    http_close(h);
    if (err)
        hr_bench_worker_error(w, "POST /api/publish: %s: %s", what, strerror(err));
    else
        hr_bench_worker_error(w, "POST /api/publish: %s", what);
    if (was_busy)
        request_done(w, false);
}

/* Writes what is left of the request. 0, or -1 if the connection failed (closed). */
static int http_flush(hr_bench_http_t *h)
{
    while (h->out_off < h->out_len) {
        ssize_t n = send(h->io.fd, h->out + h->out_off, h->out_len - h->out_off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                hr_loop_io_update(h->w->loop, &h->io, EPOLLIN | EPOLLOUT);
                return 0;
            }
            http_fail(h, "write", errno);
            return -1;
        }
        h->out_off += (size_t)n;
    }
    hr_loop_io_update(h->w->loop, &h->io, EPOLLIN);
    return 0;
}

/* A complete response in h->in: 1 with its status, total length and Connection: close;
 * 0 if incomplete; -1 if malformed. */
static int http_parse(const hr_bench_http_t *h, int *status, size_t *total, bool *close_after)
{
    const uint8_t *in = h->in;
    const uint8_t *eoh = memmem(in, h->in_len, "\r\n\r\n", 4);
    if (!eoh)
        return 0;
    size_t head = (size_t)(eoh - in) + 4;
    if (head < 12 || memcmp(in, "HTTP/1.", 7) != 0 || in[8] != ' ')
        return -1;
    int st = 0;
    for (int i = 9; i < 12; i++) {
        if (in[i] < '0' || in[i] > '9')
            return -1;
        st = st * 10 + (in[i] - '0');
    }
    bool have_len = false;
    uint64_t clen = 0;
    *close_after = in[7] == '0'; /* HTTP/1.0 closes unless told otherwise */
    const uint8_t *line = memmem(in, head, "\r\n", 2) + 2;
    while (line < eoh) {
        const uint8_t *nl = memmem(line, (size_t)(eoh + 2 - line), "\r\n", 2);
        size_t ll = (size_t)(nl - line);
        const uint8_t *colon = memchr(line, ':', ll);
        if (colon) {
            size_t nlen = (size_t)(colon - line);
            const uint8_t *v = colon + 1;
            while (v < nl && (*v == ' ' || *v == '\t'))
                v++;
            size_t vl = (size_t)(nl - v);
            if (nlen == 14 && strncasecmp((const char *)line, "Content-Length", 14) == 0) {
                clen = 0;
                if (vl == 0 || vl > 12)
                    return -1;
                for (size_t i = 0; i < vl; i++) {
                    if (v[i] < '0' || v[i] > '9')
                        break;
                    clen = clen * 10 + (uint64_t)(v[i] - '0');
                }
                have_len = true;
            } else if (nlen == 10 && strncasecmp((const char *)line, "Connection", 10) == 0) {
                if (memmem(v, vl, "close", 5) || memmem(v, vl, "Close", 5))
                    *close_after = true;
                else if (memmem(v, vl, "keep-alive", 10))
                    *close_after = false;
            }
        }
        line = nl + 2;
    }
    if (!have_len)
        return -1; /* the API always sends one; a body up to close is not supported */
    if (head + clen > HTTP_IN_MAX)
        return -1;
    if (h->in_len < head + clen)
        return 0;
    *status = st;
    *total = head + (size_t)clen;
    return 1;
}

static int http_connect(hr_bench_http_t *h);

/* Replaces a connection the server closed, so that the next request finds one open
 * (Herald answers some requests with Connection: close). */
static void http_reopen(hr_bench_http_t *h)
{
    hr_bench_worker_t *w = h->w;
    http_close(h);
    if (w->started && !w->stopped_sending && !w->closing)
        http_connect(h);
}

static void http_read(hr_bench_http_t *h)
{
    hr_bench_worker_t *w = h->w;
    bool eof = false;
    for (;;) {
        if (h->in_len == HTTP_IN_MAX) {
            http_fail(h, "response too large", 0);
            return;
        }
        ssize_t n = recv(h->io.fd, h->in + h->in_len, HTTP_IN_MAX - h->in_len, 0);
        if (n == 0) {
            eof = true;
            break;
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            http_fail(h, "read", errno);
            return;
        }
        h->in_len += (size_t)n;
    }
    if (!h->busy) {
        h->in_len = 0; /* nothing was asked: not a response to anything */
        if (eof)
            http_close(h); /* an idle keep-alive connection timed out */
        return;
    }
    int status = 0;
    size_t total = 0;
    bool close_after = false;
    int rc = http_parse(h, &status, &total, &close_after);
    if (rc == 0) {
        if (eof)
            http_fail(h, "connection closed by the server before the response", 0);
        return;
    }
    if (rc < 0) {
        http_fail(h, "malformed response", 0);
        return;
    }
    if (status != 200) {
        size_t body = total;
        const uint8_t *eoh = memmem(h->in, h->in_len, "\r\n\r\n", 4);
        if (eoh)
            body = total - (size_t)(eoh + 4 - h->in);
        hr_bench_worker_error(w, "POST /api/publish: HTTP %d %.*s", status,
                              (int)(body > 200 ? 200 : body), (const char *)h->in + (total - body));
    }
    h->busy = false;
    h->idle_since_ms = hr_loop_now(w->loop);
    memmove(h->in, h->in + total, h->in_len - total);
    h->in_len -= total;
    if (close_after || eof)
        http_reopen(h);
    request_done(w, status == 200);
}

static void http_io(hr_io_t *io, uint32_t events)
{
    hr_bench_http_t *h = (hr_bench_http_t *)((char *)io - offsetof(hr_bench_http_t, io));
    if (h->io.fd < 0)
        return;
    if (!h->connected) {
        int err = 0;
        socklen_t elen = sizeof(err);
        if (getsockopt(h->io.fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0)
            err = errno;
        if (err || (events & (EPOLLERR | EPOLLHUP))) {
            http_fail(h, "connect", err ? err : ECONNREFUSED);
            return;
        }
        h->connected = true;
        h->idle_since_ms = hr_loop_now(h->w->loop);
        if (h->busy)
            http_flush(h);
        else
            hr_loop_io_update(h->w->loop, &h->io, EPOLLIN);
        return;
    }
    if ((events & EPOLLOUT) && h->out_off < h->out_len && http_flush(h) != 0)
        return;
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
        http_read(h);
}

static int http_connect(hr_bench_http_t *h)
{
    hr_bench_worker_t *w = h->w;
    const struct addrinfo *ai = w->api_addr;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
        hr_bench_worker_error(w, "POST /api/publish: socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
        hr_bench_worker_error(w, "POST /api/publish: connect: %s", strerror(errno));
        close(fd);
        return -1;
    }
    w->st.http_connects++;
    h->io.fd = fd;
    h->connected = h->busy = false;
    h->in_len = h->out_len = h->out_off = 0;
    if (hr_loop_io_start(w->loop, &h->io, EPOLLOUT) != 0) {
        hr_bench_worker_error(w, "%s", "POST /api/publish: cannot watch the socket");
        close(fd);
        h->io.fd = -1;
        return -1;
    }
    return 0;
}

/* A connection that can take a request now (open and idle, else one still connecting,
 * else a new one), or NULL. */
static hr_bench_http_t *http_acquire(hr_bench_worker_t *w)
{
    uint64_t now_ms = hr_loop_now(w->loop);
    for (uint32_t i = 0; i < HR_BENCH_HTTP_CONNS; i++) {
        hr_bench_http_t *h = &w->http[i];
        if (h->io.fd < 0 || !h->connected || h->busy)
            continue;
        if (now_ms - h->idle_since_ms > HTTP_STALE_MS) {
            http_close(h);
            continue;
        }
        return h;
    }
    for (uint32_t i = 0; i < HR_BENCH_HTTP_CONNS; i++) {
        hr_bench_http_t *h = &w->http[i];
        if (h->io.fd >= 0 && !h->connected && !h->busy)
            return h;
    }
    for (uint32_t i = 0; i < HR_BENCH_HTTP_CONNS; i++) {
        hr_bench_http_t *h = &w->http[i];
        if (h->io.fd < 0)
            return http_connect(h) == 0 ? h : NULL;
    }
    return NULL;
}

/* ------------------------------------------------------------------------------------
 * Publishing */

/* Publishes one message stamped now. False if it could not be sent now. */
static bool publish_one(hr_bench_worker_t *w, uint64_t now)
{
    put_ts(w->frame + w->ts_at, now);
    if (w->o->via_api) {
        hr_bench_http_t *h = http_acquire(w);
        if (!h)
            return false;
        memcpy(h->out, w->frame, w->frame_len);
        h->out_len = w->frame_len;
        h->out_off = 0;
        h->busy = true;
        /* counted before the write: a failing write counts the message as lost */
        w->pub_inflight++;
        w->pub_count++;
        if (in_window(w->o, now))
            w->st.sent++;
        if (h->connected)
            http_flush(h);
        return h->busy || h->io.fd >= 0;
    }
    hr_bench_conn_t *pc = w->pub;
    if (!pc || pc->state != HR_BENCH_CONN_OPEN || !w->st.pub_ready)
        return false;
    if (hr_client_send(pc->c, w->frame, w->frame_len, false) != 0) {
        w->st.send_failures++;
        return false;
    }
    w->pub_inflight++;
    w->pub_count++;
    if (in_window(w->o, now))
        w->st.sent++;
    return true;
}

/* --rate 0: fills the window. */
static void publish_more(hr_bench_worker_t *w, uint64_t now)
{
    const hr_bench_opts_t *o = w->o;
    if (w->publishing || !w->has_pub || o->rate > 0 || !w->started || w->stopped_sending ||
        w->closing || now >= o->t_end_ns)
        return;
    w->publishing = true; /* a failing request calls back in here */
    while (w->pub_inflight < HR_BENCH_PUB_WINDOW && publish_one(w, now)) {
    }
    w->publishing = false;
}

void hr_bench_pubsub_pub_ready(hr_bench_worker_t *w)
{
    w->st.pub_ready = 1;
    publish_more(w, now_rel(w)); /* ready after the start */
}

/* The first subscribed, open subscriber of this worker, or -1. */
static int64_t pick_pacer(const hr_bench_worker_t *w)
{
    for (uint32_t i = 0; i < w->n_conns; i++) {
        const hr_bench_conn_t *bc = &w->conns[i];
        if (!bc->is_pub && bc->subscribed && bc->state == HR_BENCH_CONN_OPEN)
            return i;
    }
    return -1;
}

void hr_bench_pubsub_tick(hr_bench_worker_t *w, uint64_t now)
{
    const hr_bench_opts_t *o = w->o;
    if (w->pacer >= 0 && w->conns[w->pacer].state != HR_BENCH_CONN_OPEN) {
        /* The pacing subscriber is gone: pace by another one, else by the publisher's
         * replies (a STOMP publisher gets none: it then stops at a full window). */
        w->pacer = pick_pacer(w);
        w->pub_inflight = 0;
    }
    if (o->rate == 0) {
        publish_more(w, now);
        return;
    }
    if (w->publishing)
        return;
    uint64_t target = (uint64_t)(o->rate * (double)(now - w->pub_t0_ns) / 1e9);
    w->publishing = true;
    while (w->pub_count < target && publish_one(w, now)) {
    }
    w->publishing = false;
}

void hr_bench_pubsub_start(hr_bench_worker_t *w, uint64_t now)
{
    if (!w->has_pub)
        return;
    w->pacer = pick_pacer(w);
    if (w->o->via_api) {
        /* open the connections now rather than on the first requests */
        uint32_t n = w->o->rate == 0 ? HR_BENCH_HTTP_CONNS : 1;
        for (uint32_t i = 0; i < n; i++)
            if (w->http[i].io.fd < 0)
                http_connect(&w->http[i]);
    }
    publish_more(w, now);
}

void hr_bench_pubsub_close_all(hr_bench_worker_t *w)
{
    if (w->http)
        for (uint32_t i = 0; i < HR_BENCH_HTTP_CONNS; i++)
            http_close(&w->http[i]);
}

/* ------------------------------------------------------------------------------------
 * Connection events */

void hr_bench_pubsub_on_open(hr_bench_conn_t *bc)
{
    hr_bench_worker_t *w = bc->w;
    if (bc->is_pub) {
        hr_bench_pubsub_pub_ready(w); /* opened after the start */
        return;
    }
    char req[320];
    int n = snprintf(req, sizeof(req), "{\"type\":\"subscribe\",\"id\":1,\"channel\":\"%s\"}",
                     w->o->channel);
    if (hr_client_send(bc->c, req, (size_t)n, false) != 0)
        hr_bench_worker_error(w, "connection %u: cannot send the subscribe", bc->gidx);
}

static void on_error_frame(hr_bench_conn_t *bc, const uint8_t *data, size_t len)
{
    hr_bench_worker_error(bc->w, "connection %u: %.*s", bc->gidx, (int)(len > 300 ? 300 : len),
                          (const char *)data);
}

void hr_bench_pubsub_delivered(hr_bench_conn_t *bc, uint64_t off, const uint8_t *data, size_t len)
{
    hr_bench_worker_t *w = bc->w;
    const hr_bench_opts_t *o = w->o;
    if (off) {
        if (bc->next_off && off != bc->next_off)
            w->st.out_of_order++;
        if (off >= bc->next_off)
            bc->next_off = off + 1;
    }
    uint64_t ts;
    if (!data || !get_ts(data, len, &ts))
        return;
    uint64_t now = now_rel(w);
    if (in_window(o, ts)) {
        w->st.deliveries++;
        hr_bench_hist_record(&w->hist, now > ts ? (now - ts) / 1000 : 0);
    }
    if (w->has_pub && (int64_t)bc->local == w->pacer && w->pub_inflight > 0) {
        w->pub_inflight--;
        publish_more(w, now);
    }
}

void hr_bench_pubsub_on_message(hr_bench_conn_t *bc, const uint8_t *data, size_t len)
{
    hr_bench_worker_t *w = bc->w;
    int type = frame_type(data, len);
    if (bc->is_pub) {
        if (type == FRAME_ERROR)
            on_error_frame(bc, data, len);
        if ((type == FRAME_OK || type == FRAME_ERROR) && w->pacer < 0 && w->pub_inflight > 0) {
            w->pub_inflight--;
            publish_more(w, now_rel(w));
        }
        return;
    }
    if (type == FRAME_MESSAGE) {
        uint64_t off;
        if (!find_uint(data, len, "\"offset\":", &off)) {
            on_error_frame(bc, data, len);
            return;
        }
        const uint8_t *d = memmem(data, len, "\"data\":\"", 8);
        if (d)
            d += 8; /* else not published by this bench: only the offset counts */
        hr_bench_pubsub_delivered(bc, off, d, d ? len - (size_t)(d - data) : 0);
    } else if (type == FRAME_OK) {
        if (bc->subscribed)
            return;
        bc->subscribed = true;
        w->st.ready++;
        uint64_t top;
        if (!bc->next_off && find_uint(data, len, "\"offset\":", &top))
            bc->next_off = top + 1;
    } else if (type == FRAME_ERROR) {
        on_error_frame(bc, data, len);
    }
}

/* ------------------------------------------------------------------------------------
 * Lifetime */

/* The message template: a /pubsub publish frame, a STOMP SEND frame, or a whole HTTP
 * request. */
static int build_frame(hr_bench_worker_t *w)
{
    const hr_bench_opts_t *o = w->o;
    char body_head[320], head[640];
    const char *tail = "\"}";
    size_t tail_len = 2;
    int bh;
    if (o->mode == HR_BENCH_STOMP && !o->via_api) {
        bh = hr_bench_stomp_send_head(o, body_head, sizeof(body_head));
        tail = ""; /* the frame's NUL */
        tail_len = 1;
    } else {
        bh = snprintf(body_head, sizeof(body_head),
                      o->via_api ? "{\"channel\":\"%s\",\"data\":\""
                                 : "{\"type\":\"publish\",\"channel\":\"%s\",\"data\":\"",
                      o->channel);
    }
    if (bh < 0 || (size_t)bh >= sizeof(body_head))
        return HR_EINVAL;
    size_t body_len = (size_t)bh + o->size + tail_len;
    int hl = 0;
    if (o->via_api)
        hl = snprintf(head, sizeof(head),
                      "POST /api/publish HTTP/1.1\r\nHost: %s\r\nContent-Type: "
                      "application/json\r\nContent-Length: %zu\r\n\r\n",
                      o->api_host_header, body_len);
    w->frame_len = (size_t)hl + body_len;
    w->frame = malloc(w->frame_len);
    if (!w->frame)
        return HR_ENOMEM;
    uint8_t *p = w->frame;
    memcpy(p, head, (size_t)hl);
    p += hl;
    memcpy(p, body_head, (size_t)bh);
    p += bh;
    w->ts_at = (size_t)(p - w->frame);
    memset(p, 'x', o->size);
    put_ts(p, 0);
    p += o->size;
    memcpy(p, tail, tail_len);
    return 0;
}

int hr_bench_pubsub_init(hr_bench_worker_t *w)
{
    const hr_bench_opts_t *o = w->o;
    w->pacer = -1;
    if (w->id != 0)
        return 0;
    w->has_pub = true;
    if (!o->via_api)
        w->pub = &w->conns[w->n_conns - 1];
    int rc = build_frame(w);
    if (rc != 0)
        return rc;
    if (!o->via_api)
        return 0;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    rc = getaddrinfo(o->api_host, o->api_port, &hints, &ai);
    if (rc != 0 || !ai) {
        fprintf(stderr, "bench: cannot resolve %s: %s\n", o->api_host, gai_strerror(rc));
        return HR_EINVAL;
    }
    w->api_addr = ai;
    w->http = calloc(HR_BENCH_HTTP_CONNS, sizeof(*w->http));
    if (!w->http)
        return HR_ENOMEM;
    for (uint32_t i = 0; i < HR_BENCH_HTTP_CONNS; i++) {
        hr_bench_http_t *h = &w->http[i];
        h->w = w;
        h->io.fd = -1;
        h->io.cb = http_io;
        h->out = malloc(w->frame_len);
        if (!h->out)
            return HR_ENOMEM;
    }
    return 0;
}

void hr_bench_pubsub_deinit(hr_bench_worker_t *w)
{
    if (w->http) {
        for (uint32_t i = 0; i < HR_BENCH_HTTP_CONNS; i++) {
            if (w->http[i].io.fd >= 0)
                close(w->http[i].io.fd);
            free(w->http[i].out);
        }
        free(w->http);
        w->http = NULL;
    }
    if (w->api_addr)
        freeaddrinfo(w->api_addr);
    w->api_addr = NULL;
    free(w->frame);
    w->frame = NULL;
}
