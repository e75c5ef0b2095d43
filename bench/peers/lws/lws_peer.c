/*
 * Peer server for the Herald benchmark matrix, on libwebsockets (Debian 12: 4.1.6).
 *
 *   /ws         echo: every message back, text as text, binary as binary
 *   /broadcast  every message to every client of /broadcast, sender included
 *
 * Usage: lws-peer PORT
 *
 * One service thread, no extensions (no permessage-deflate), messages up to
 * 16 MiB. Every connection has a bounded queue of outgoing messages; sends
 * happen one lws_write() per LWS_CALLBACK_SERVER_WRITEABLE, requested with
 * lws_callback_on_writable(), as libwebsockets prescribes. Messages larger
 * than one chunk go out as several fragments over several WRITEABLE callbacks.
 * A broadcast message is received once, stored once (reference counted) and
 * queued for each subscriber. Echo connections stop being read
 * (lws_rx_flow_control) while their queue is long; a broadcast subscriber whose
 * queue is full loses the message (counted, printed at exit).
 */
#include <libwebsockets.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MESSAGE (16u * 1024u * 1024u)
#define TX_CHUNK 65536u      /* payload bytes per lws_write() */
#define RX_CHUNK 16384u      /* lws rx buffer per connection */
#define ECHO_PAUSE_AT 64u    /* echo: stop reading at this queue length */
#define ECHO_RESUME_AT 16u   /* ... and read again below this one */
#define CAST_QUEUE_MAX 4096u /* broadcast: per-subscriber queue bound */

struct msg {
    unsigned refs;
    int binary;
    size_t len;
    size_t cap;
    unsigned char data[]; /* LWS_PRE bytes of head room, then the payload */
};

struct conn {
    struct lws *wsi;
    struct conn *prev, *next; /* broadcast subscriber list */
    int is_cast;
    int rx_paused;
    /* outgoing queue: ring of message pointers, grown on demand */
    struct msg **q;
    unsigned qcap, qhead, qlen;
    size_t tx_off; /* bytes of the head message already written */
    /* message being received */
    struct msg *rx;
};

static volatile sig_atomic_t g_stop;
static struct lws_context *g_ctx;
static struct conn *g_subs; /* head of the /broadcast list */
static unsigned long long g_dropped;
static unsigned char g_scratch[LWS_PRE + TX_CHUNK];

static struct msg *msg_new(size_t cap)
{
    struct msg *m = malloc(sizeof(*m) + LWS_PRE + cap);
    if (!m)
        return NULL;
    m->refs = 1;
    m->binary = 0;
    m->len = 0;
    m->cap = cap;
    return m;
}

static void msg_unref(struct msg *m)
{
    if (m && --m->refs == 0)
        free(m);
}

/* Appends len bytes to the message, growing it; returns the (maybe moved) message. */
static struct msg *msg_append(struct msg *m, const void *src, size_t len)
{
    if (m->len + len > m->cap) {
        size_t cap = m->cap ? m->cap : 256;
        while (cap < m->len + len)
            cap *= 2;
        struct msg *n = realloc(m, sizeof(*m) + LWS_PRE + cap);
        if (!n)
            return NULL;
        m = n;
        m->cap = cap;
    }
    memcpy(m->data + LWS_PRE + m->len, src, len);
    m->len += len;
    return m;
}

static int queue_push(struct conn *c, struct msg *m, unsigned limit)
{
    if (c->qlen >= limit)
        return -1;
    if (c->qlen == c->qcap) {
        unsigned ncap = c->qcap ? c->qcap * 2 : 4;
        struct msg **nq = malloc(ncap * sizeof(*nq));
        if (!nq)
            return -1;
        for (unsigned i = 0; i < c->qlen; i++)
            nq[i] = c->q[(c->qhead + i) % c->qcap];
        free(c->q);
        c->q = nq;
        c->qcap = ncap;
        c->qhead = 0;
    }
    c->q[(c->qhead + c->qlen) % c->qcap] = m;
    c->qlen++;
    m->refs++;
    return 0;
}

static void queue_pop(struct conn *c)
{
    msg_unref(c->q[c->qhead]);
    c->qhead = (c->qhead + 1) % c->qcap;
    c->qlen--;
    c->tx_off = 0;
}

static void conn_release(struct conn *c)
{
    if (c->is_cast) {
        if (c->prev)
            c->prev->next = c->next;
        else if (g_subs == c)
            g_subs = c->next;
        if (c->next)
            c->next->prev = c->prev;
        c->prev = c->next = NULL;
    }
    while (c->qlen)
        queue_pop(c);
    free(c->q);
    c->q = NULL;
    c->qcap = 0;
    msg_unref(c->rx);
    c->rx = NULL;
}

/* A whole message has arrived on c: echo it or fan it out. */
static void deliver(struct conn *c, struct msg *m)
{
    if (!c->is_cast) {
        if (queue_push(c, m, ~0u) == 0)
            lws_callback_on_writable(c->wsi);
        if (c->qlen >= ECHO_PAUSE_AT && !c->rx_paused) {
            c->rx_paused = 1;
            lws_rx_flow_control(c->wsi, 0);
        }
        return;
    }
    for (struct conn *s = g_subs; s; s = s->next) {
        if (queue_push(s, m, CAST_QUEUE_MAX) == 0)
            lws_callback_on_writable(s->wsi);
        else
            g_dropped++;
    }
}

static int on_receive(struct conn *c, struct lws *wsi, const void *in, size_t len)
{
    if (lws_is_first_fragment(wsi) || !c->rx) {
        msg_unref(c->rx);
        size_t hint = len + lws_remaining_packet_payload(wsi);
        c->rx = msg_new(hint > MAX_MESSAGE ? MAX_MESSAGE : hint);
        if (!c->rx)
            return -1;
        c->rx->binary = lws_frame_is_binary(wsi);
    }
    if (c->rx->len + len > MAX_MESSAGE) {
        lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, NULL, 0);
        return -1;
    }
    struct msg *m = msg_append(c->rx, in, len);
    if (!m)
        return -1;
    c->rx = m;
    if (lws_is_final_fragment(wsi)) {
        c->rx = NULL;
        deliver(c, m);
        msg_unref(m);
    }
    return 0;
}

static int on_writeable(struct conn *c, struct lws *wsi)
{
    if (!c->qlen)
        return 0;
    struct msg *m = c->q[c->qhead];
    size_t rem = m->len - c->tx_off;
    size_t n = rem > TX_CHUNK ? TX_CHUNK : rem;
    int first = c->tx_off == 0;
    int last = c->tx_off + n == m->len;
    unsigned char *p;
    if (first) {
        p = m->data + LWS_PRE;
    } else {
        /* lws writes the frame header in front of the payload: use a
         * scratch copy so a shared message is never overwritten. */
        memcpy(g_scratch + LWS_PRE, m->data + LWS_PRE + c->tx_off, n);
        p = g_scratch + LWS_PRE;
    }
    int flags = lws_write_ws_flags(m->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT, first, last);
    if (lws_write(wsi, p, n, (enum lws_write_protocol)flags) < (int)n)
        return -1;
    if (last)
        queue_pop(c);
    else
        c->tx_off += n;
    if (c->qlen)
        lws_callback_on_writable(wsi);
    if (c->rx_paused && c->qlen < ECHO_RESUME_AT) {
        c->rx_paused = 0;
        lws_rx_flow_control(wsi, 1);
    }
    return 0;
}

static int path_of(struct lws *wsi)
{
    char uri[64];
    if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) <= 0)
        return -1;
    if (!strcmp(uri, "/ws"))
        return 0;
    if (!strcmp(uri, "/broadcast"))
        return 1;
    return -1;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    struct conn *c = user;

    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        return path_of(wsi) < 0 ? 1 : 0;
    case LWS_CALLBACK_ESTABLISHED: {
        memset(c, 0, sizeof(*c));
        c->wsi = wsi;
        int path = path_of(wsi);
        if (path < 0)
            return -1;
        if (path == 1) {
            c->is_cast = 1;
            c->next = g_subs;
            if (g_subs)
                g_subs->prev = c;
            g_subs = c;
        }
        return 0;
    }
    case LWS_CALLBACK_RECEIVE:
        return on_receive(c, wsi, in, len);
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return on_writeable(c, wsi);
    case LWS_CALLBACK_CLOSED:
        conn_release(c);
        return 0;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols protocols[] = {
    /* first protocol: taken for upgrades that name no subprotocol */
    {"herald-bench-peer", callback, sizeof(struct conn), RX_CHUNK, 0, NULL, TX_CHUNK + LWS_PRE},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
    if (g_ctx)
        lws_cancel_service(g_ctx);
}

int main(int argc, char **argv)
{
    if (argc != 2 || atoi(argv[1]) <= 0 || atoi(argv[1]) > 65535) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]);

    lws_set_log_level(LLL_ERR | LLL_WARN, NULL);

    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.port = port;
    info.iface = "127.0.0.1";
    info.protocols = protocols;
    info.count_threads = 1;
    info.timeout_secs = 30;
    info.pt_serv_buf_size = 65536;
    info.options = LWS_SERVER_OPTION_DISABLE_IPV6;

    g_ctx = lws_create_context(&info);
    if (!g_ctx) {
        fprintf(stderr, "lws-peer: cannot create the context (port %d)\n", port);
        return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);

    printf("listening on 127.0.0.1:%d\n", port);
    fflush(stdout);

    while (!g_stop && lws_service(g_ctx, 0) >= 0)
        ;
    lws_context_destroy(g_ctx);
    if (g_dropped)
        fprintf(stderr, "lws-peer: %llu broadcast deliveries dropped (subscriber queue full)\n",
                g_dropped);
    return 0;
}
