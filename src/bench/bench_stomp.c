/* herald bench stomp: the pubsub scenario (bench_pubsub.c) over STOMP 1.2 on /stomp
 * (docs/stomp.md). Every connection offers the subprotocol v12.stomp and sends CONNECT
 * without heart-beats; a subscriber then SUBSCRIBEs to /topic/CHANNEL with a receipt and
 * counts as ready on the RECEIPT, the publisher (--via ws) is ready on CONNECTED and sends
 * SEND frames with a text/plain body (the JSON-safe timestamp and filler of pubsub), which
 * Herald publishes on the channel as a JSON string and hands back to STOMP subscribers as
 * the same text. --via api publishes that string with POST /api/publish instead.
 *
 * Reading is the least that is correct for what Herald sends: one WebSocket message holds
 * one frame, possibly after heart-beat EOLs; the body ends at content-length, else at the
 * first NUL. Header values are not unescaped: the only ones read (message-id, receipt-id,
 * content-length) never contain escapes, and ERROR's message is printed as sent. An ERROR
 * frame stops the run: the server closes that session, so the figures would be wrong. */
#include <stdio.h>
#include <string.h>

#include "bench/bench.h"

#define SUB_RECEIPT "bench-sub"

/* One frame received: command, header lines (each ending in LF) and body. */
typedef struct in_frame {
    const uint8_t *cmd, *head, *body;
    size_t cmd_len, head_len, body_len;
} in_frame_t;

static inline bool cmd_is(const in_frame_t *f, const char *cmd, size_t len)
{
    return f->cmd_len == len && memcmp(f->cmd, cmd, len) == 0;
}

/* Length of the line at p (up to LF, the LF not counted, nor a CR before it). */
static inline size_t line_len(const uint8_t *p, const uint8_t *lf)
{
    size_t n = (size_t)(lf - p);
    return n && p[n - 1] == '\r' ? n - 1 : n;
}

/* The value of the first header `name` (STOMP 1.2 §Repeated Header Entries). */
static bool header(const in_frame_t *f, const char *name, size_t nlen, const uint8_t **v,
                   size_t *vlen)
{
    const uint8_t *p = f->head, *end = f->head + f->head_len;
    while (p < end) {
        const uint8_t *lf = memchr(p, '\n', (size_t)(end - p));
        size_t ll = line_len(p, lf);
        if (ll > nlen && p[nlen] == ':' && memcmp(p, name, nlen) == 0) {
            *v = p + nlen + 1;
            *vlen = ll - nlen - 1;
            return true;
        }
        p = lf + 1;
    }
    return false;
}

/* Decimal digits only; false for none, others, or more than 19. */
static bool parse_dec(const uint8_t *p, size_t n, uint64_t *out)
{
    if (n == 0 || n > 19)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    *out = v;
    return true;
}

/* 1 with *f filled, 0 for heart-beat EOLs only, -1 if malformed or truncated. */
static int frame_parse(const uint8_t *d, size_t len, in_frame_t *f)
{
    const uint8_t *p = d, *end = d + len;
    while (p < end && (*p == '\n' || *p == '\r'))
        p++;
    if (p == end)
        return 0;
    const uint8_t *lf = memchr(p, '\n', (size_t)(end - p));
    if (!lf)
        return -1;
    f->cmd = p;
    f->cmd_len = line_len(p, lf);
    f->head = lf + 1;
    for (p = f->head;; p = lf + 1) {
        lf = p < end ? memchr(p, '\n', (size_t)(end - p)) : NULL;
        if (!lf)
            return -1;
        if (line_len(p, lf) == 0)
            break;
    }
    f->head_len = (size_t)(p - f->head);
    f->body = lf + 1;
    size_t rest = (size_t)(end - f->body);
    const uint8_t *v;
    size_t vl;
    uint64_t clen;
    if (header(f, "content-length", 14, &v, &vl)) {
        if (!parse_dec(v, vl, &clen) || clen >= rest || f->body[clen] != 0)
            return -1;
        f->body_len = (size_t)clen;
    } else {
        const uint8_t *nul = memchr(f->body, 0, rest);
        if (!nul)
            return -1;
        f->body_len = (size_t)(nul - f->body);
    }
    return 1;
}

/* The channel offset in message-id EPOCH-OFFSET (docs/stomp.md), or 0. */
static uint64_t message_offset(const in_frame_t *f)
{
    const uint8_t *v;
    size_t vl;
    uint64_t off;
    if (!header(f, "message-id", 10, &v, &vl))
        return 0;
    const uint8_t *dash = v + vl;
    while (dash > v && dash[-1] != '-')
        dash--;
    if (dash == v || !parse_dec(dash, (size_t)(v + vl - dash), &off))
        return 0;
    return off;
}

static void send_frame(hr_bench_conn_t *bc, const char *frame, size_t len, const char *what)
{
    /* The length includes the frame's terminating NUL. */
    if (hr_client_send(bc->c, frame, len, false) != 0)
        hr_bench_worker_error(bc->w, "connection %u: cannot send the %s", bc->gidx, what);
}

/* The server refused something: say what it said and stop the run (bench.c). */
static void on_error_frame(hr_bench_conn_t *bc, const in_frame_t *f)
{
    hr_bench_worker_t *w = bc->w;
    const uint8_t *msg = NULL;
    size_t ml = 0;
    header(f, "message", 7, &msg, &ml);
    if (!w->st.fatal && !w->closing)
        fprintf(
            stderr,
            "herald bench: the server answered ERROR on connection %u (%s): message:%.*s%s%.*s\n",
            bc->gidx, bc->is_pub ? "publisher" : "subscriber", (int)(ml > 300 ? 300 : ml),
            msg ? (const char *)msg : "(none)", f->body_len ? " :: " : "",
            (int)(f->body_len > 300 ? 300 : f->body_len), (const char *)f->body);
    w->st.fatal = 1;
    w->st.proto_errors++;
}

void hr_bench_stomp_on_open(hr_bench_conn_t *bc)
{
    static const char connect[] = "CONNECT\naccept-version:1.2\nhost:bench\nheart-beat:0,0\n\n";
    send_frame(bc, connect, sizeof(connect), "CONNECT");
}

int hr_bench_stomp_send_head(const hr_bench_opts_t *o, char *buf, size_t cap)
{
    return snprintf(buf, cap, "SEND\ndestination:/topic/%s\ncontent-type:text/plain\n\n",
                    o->channel);
}

void hr_bench_stomp_on_message(hr_bench_conn_t *bc, const uint8_t *data, size_t len)
{
    hr_bench_worker_t *w = bc->w;
    in_frame_t f;
    int rc = frame_parse(data, len, &f);
    if (rc == 0)
        return; /* heart-beat */
    if (rc < 0) {
        hr_bench_worker_error(w, "connection %u: malformed STOMP frame: %.*s", bc->gidx,
                              (int)(len > 200 ? 200 : len), (const char *)data);
        return;
    }
    if (cmd_is(&f, "MESSAGE", 7)) {
        if (!bc->is_pub)
            hr_bench_pubsub_delivered(bc, message_offset(&f), f.body, f.body_len);
    } else if (cmd_is(&f, "RECEIPT", 7)) {
        const uint8_t *v;
        size_t vl;
        if (!bc->is_pub && !bc->subscribed && header(&f, "receipt-id", 10, &v, &vl) &&
            vl == sizeof(SUB_RECEIPT) - 1 && memcmp(v, SUB_RECEIPT, vl) == 0) {
            bc->subscribed = true;
            w->st.ready++;
        }
    } else if (cmd_is(&f, "CONNECTED", 9)) {
        if (bc->is_pub) {
            hr_bench_pubsub_pub_ready(w);
            return;
        }
        char sub[320];
        int n = snprintf(sub, sizeof(sub),
                         "SUBSCRIBE\nid:0\ndestination:/topic/%s\nreceipt:" SUB_RECEIPT "\n\n",
                         w->o->channel);
        if (n > 0 && (size_t)n < sizeof(sub))
            send_frame(bc, sub, (size_t)n + 1, "SUBSCRIBE");
    } else if (cmd_is(&f, "ERROR", 5)) {
        on_error_frame(bc, &f);
    }
}
