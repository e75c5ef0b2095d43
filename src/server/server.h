#ifndef HR_SERVER_SERVER_H
#define HR_SERVER_SERVER_H

/* The server: shards (one worker thread, loop, listener and set of connections each),
 * routes, and the WebSocket connection (hr_conn) that joins http/, ws/ and the route
 * callbacks. The only module that includes everything. */

#include <pthread.h>
#include <stdatomic.h>

#include "auth/jwt.h"
#include "base/buf.h"
#include "base/pool.h"
#include "broker/history.h"
#include "broker/namespace.h"
#include "broker/presence.h"
#include "broker/topics.h"
#include "herald.h"
#include "herald/stomp.h"
#include "loop/loop.h"
#include "net/sock.h"
#include "proto/frame_cache.h"
#include "ws/deflate.h"
#include "http/http_parse.h"
#include "http/http_chunked.h"
#include "http/forwarded.h"
#include "ws/ws_conn.h"
#include "server/limits.h"

#define HR_MAX_ROUTES 32
#define HR_MAX_SUBPROTOCOLS 8

typedef struct hr_shard hr_shard_t;

enum { HR_AUTH_OFF = 0, HR_AUTH_OPTIONAL = 1, HR_AUTH_REQUIRED = 2 };
/* Close code of a connection whose token expired (docs/security.md). */
#define HR_WS_CLOSE_TOKEN_EXPIRED 4001

/* STOMP settings, server-wide (docs/stomp.md). */
typedef struct hr_stomp_config {
    uint32_t hb_send_ms, hb_recv_ms; /* --stomp-heartbeat SEND,RECV */
    double hb_grace;                 /* --stomp-heartbeat-grace: periods without a byte */
    char *app_webhook;               /* --app-webhook URL, or NULL */
    hr_stomp_app_fn app_fn;          /* embedder's /app handler, or NULL */
    void *app_data;
} hr_stomp_config_t;

typedef struct hr_route {
    char *path;
    hr_route_callbacks_t cb;
    char *subprotocols[HR_MAX_SUBPROTOCOLS + 1];
    size_t nsubprotocols;
    void *data;
    int id;
    /* NULL, or run before the upgrade: 0 lets it proceed, an HTTP status (401) refuses it;
     * a route with its own check is not subject to --auth (the admin feed's API key). */
    int (*check)(const hr_server_t *s, const hr_http_request_t *req);
} hr_route_t;

/* Plain HTTP requests (the API, health): a handler gets the request for the duration of
 * the call and either answers at once (hr_http_reply) or takes a token (hr_http_defer)
 * and answers later on the same thread (hr_http_reply_token). */
typedef struct hr_http_ctx {
    hr_conn_t *c;
    const hr_http_request_t *req;
    const char *path; /* target without the query */
    size_t path_len;
    const char *query; /* after '?', or NULL */
    size_t query_len;
    const uint8_t *body;
    size_t body_len;
    bool keep_alive;
    bool answered; /* replied or deferred */
} hr_http_ctx_t;

typedef struct hr_http_token {
    hr_conn_t *c;
    uint32_t seq; /* the connection's seq when deferred: a reused slot does not match */
} hr_http_token_t;

typedef void (*hr_http_handler_fn)(hr_http_ctx_t *x, void *data);

typedef struct hr_http_route {
    char *path;
    bool prefix; /* path is a prefix ("/api/") rather than an exact path */
    hr_http_handler_fn fn;
    void *data;
} hr_http_route_t;

#define HR_MAX_HTTP_ROUTES 16

typedef enum hr_conn_phase {
    HR_PHASE_HTTP = 0,  /* reading a request (head, then body) */
    HR_PHASE_HTTP_WAIT, /* a plain HTTP request is being answered asynchronously */
    HR_PHASE_OPEN,      /* WebSocket open */
    HR_PHASE_CLOSING,   /* close frame sent or connection failed: no more callbacks but on_close */
    HR_PHASE_HTTP_STREAM, /* a streamed HTTP answer is being written (hr_http_stream_start) */
} hr_conn_phase_t;

/* The state only some connections need, allocated on first need (an idle plain
 * connection pays one NULL pointer): permessage-deflate when negotiated (p is zero
 * otherwise), and authentication when the connection presented valid credentials. */
typedef struct hr_conn_deflate {
    hr_deflate_params_t p;
    hr_deflate_stream_t *own_inflate; /* only with client context takeover */
    hr_deflate_stream_t *own_deflate; /* only with server context takeover */
    hr_auth_grant_t *grant;           /* NULL: anonymous */
    hr_timer_t expiry;                /* armed while grant has an exp: closes with 4001 */
    hr_conn_t *conn;
    uint32_t user_limit; /* --max-connections-per-user handle (limits.h), 0: not counted */
    uint8_t user_redis;  /* the same count in Redis (cluster_limits.h HR_CLUSTER_USER_*) */
    char *close_reason;  /* set when the close starts, for on_close */
    /* A streamed HTTP answer (hr_http_stream_start); stream_close NULL: none owed. */
    void (*stream_close)(void *data);
    void *stream_data;
    bool stream_chunked; /* HTTP/1.1: chunked body; HTTP/1.0: raw body until close */
    bool stream_keep;    /* keep-alive after hr_http_stream_end */
    /* A chunked request body, decoded in place behind its head (session.c decode_chunked). */
    bool body_chunked;  /* chunked holds the state of the request at the buffer's front */
    size_t chunked_len; /* once complete: that request's bytes in the head buffer */
    hr_http_chunked_t chunked;
} hr_conn_deflate_t;

/* A WebSocket connection. Its size is the idle-memory budget (bench: RSS per idle
 * connection): everything a connection needs only sometimes hangs off a pointer. */
struct hr_conn {
    hr_sock_t sock; /* first: a sock pointer is a conn pointer; sock.ctx is its shard's */
    const hr_route_t *route;
    hr_list_t shard_link; /* all connections of the shard */
    hr_list_t route_link; /* connections of the route on this shard */
    hr_list_t subs;       /* hr_sub_t.owner_link */
    union {
        hr_buf_t head;     /* HTTP phase: partial request head */
        hr_ws_reader_t rd; /* open phase */
    } u;
    hr_conn_deflate_t *dfl; /* occasional state: deflate, auth, close reason; NULL: none */
    void *user;
    uint32_t seq;        /* per-shard connection number (hr_conn_id) */
    uint32_t last_rx_ms; /* loop ms, truncated to 32 bits */
    union {
        uint32_t last_ping_ms; /* open phase */
        uint32_t req_start_ms; /* HTTP phase: loop ms when the current request began */
    };
    uint8_t phase; /* hr_conn_phase_t */
    bool close_sent;
    bool close_known; /* close_code holds the code received, or sent if we started */
    bool opened;      /* on_open ran: on_close is owed */
    int8_t protocol;  /* index into route->subprotocols, -1 none */
    uint8_t close_reason_len;
    uint16_t close_code;
    union {                   /* in the padding above: hr_conn_t does not grow */
        uint32_t rate_tokens; /* opened: --max-message-rate bucket, refilled to last_rx_ms */
        uint32_t over_limit;  /* HTTP phase: accepted over --max-connections (not counted) */
    };
};

/* Why a request was refused before its handler or upgrade ({reason} of
 * herald_handshakes_rejected_total), from the status answered (session.c http_fail). */
#define HR_REJECT_MAP(X)                                                                           \
    X(BAD_REQUEST, "bad_request")           /* 400 malformed, bad handshake headers */             \
    X(ORIGIN, "origin")                     /* 403 Origin not allowed */                           \
    X(UNAUTHORIZED, "unauthorized")         /* 401 no valid token (--auth) */                      \
    X(NOT_FOUND, "not_found")               /* 404 no endpoint at the path */                      \
    X(METHOD, "method")                     /* 405 not GET */                                      \
    X(UPGRADE_REQUIRED, "upgrade_required") /* 426 no Upgrade: websocket, or not version 13 */     \
    X(TOO_LARGE, "too_large")               /* 413 body, 431 head over --max-header */             \
    X(VERSION, "version")                   /* 505 HTTP version */                                 \
    X(UNAVAILABLE, "unavailable")           /* 503 out of memory */                                \
    X(TIMEOUT, "timeout")                   /* request not complete in --handshake-timeout */      \
    X(OTHER, "other")
/* Configured limits that refused something ({limit} of herald_limit_rejections_total). */
#define HR_LIMIT_MAP(X)                                                                            \
    X(MAX_MESSAGE, "max_message") /* message over --max-message: closed with 1009 */               \
    X(MAX_HEADER, "max_header")   /* request head over --max-header: 431 */                        \
    X(MAX_BODY, "max_body")       /* plain HTTP body too large: 413 */                             \
    X(MAX_BACKLOG, "max_backlog") /* output over --max-backlog: 1008 close or messages dropped */  \
    X(MAX_CONNECTIONS, "max_connections")            /* over --max-connections: 503 */             \
    X(MAX_CONN_PER_IP, "max_connections_per_ip")     /* 503 at the handshake */                    \
    X(MAX_CONN_PER_USER, "max_connections_per_user") /* 503, or STOMP ERROR + 1013 */              \
    X(MAX_MESSAGE_RATE, "max_message_rate")          /* over the bucket: closed with 1008 */       \
    X(MAX_SUBSCRIPTIONS, "max_subscriptions")        /* limit_exceeded / STOMP ERROR */            \
    X(HANDSHAKE_TIMEOUT, "handshake_timeout") /* request begun, not complete in time: 408 */       \
    X(IDLE_TIMEOUT, "idle_timeout")           /* silent past --idle-timeout: closed 1001 */
#define HR_ENUM_(name, label) HR_REJECT_##name,
enum { HR_REJECT_MAP(HR_ENUM_) HR_REJECT__COUNT };
#undef HR_ENUM_
#define HR_ENUM_(name, label) HR_LIMIT_##name,
enum { HR_LIMIT_MAP(HR_ENUM_) HR_LIMIT__COUNT };
#undef HR_ENUM_
/* herald_publish_latency_seconds: 13 buckets from 0.5 ms to 5 s, then +Inf. */
#define HR_LATENCY_BUCKETS 13

/* Counters of one shard, written only by its thread; /metrics copies them on that thread. */
typedef struct hr_shard_stats {
    uint64_t accepted, handshakes_ok, handshakes_failed, messages_in, messages_out;
    uint64_t slow_consumer_closes, protocol_errors, dropped_messages;
    uint64_t bytes_in, bytes_out; /* WebSocket frames received / queued, headers included */
    uint64_t rejected[HR_REJECT__COUNT];
    uint64_t limit_rejections[HR_LIMIT__COUNT];
    uint64_t publish_latency[HR_LATENCY_BUCKETS + 1]; /* per bucket, not cumulative */
    uint64_t publish_latency_ns;                      /* sum */
    /* Fallback transports (http_stream.c): open SSE streams and waiting long polls
     * (gauges), requests served, and messages written to them. */
    uint64_t sse_open, poll_waiting, sse_requests, poll_requests, stream_messages_out;
} hr_shard_stats_t;

struct hr_shard {
    hr_server_t *srv;
    int index;
    pthread_t thread;
    hr_loop_t loop;
    hr_sock_ctx_t sock;
    hr_io_t listen_io;
    hr_list_t conns;
    hr_pool_t conn_pool; /* hr_conn_t storage */
    uint32_t conn_seq;
    hr_list_t route_conns[HR_MAX_ROUTES];
    hr_topics_t topics;
    hr_deflate_stream_t inflate_shared, deflate_shared;
    hr_buf_t scratch;        /* inflated messages */
    hr_buf_t zscratch;       /* compressed output of shared frames; replies built by protocols */
    hr_buf_t dscratch;       /* compressed output of hr_conn_send */
    hr_refbuf_t *head_arena; /* per-subscriber frame heads (hr_session_deliver_parts) */
    size_t head_arena_used;
    struct hr_chan_home **homes; /* channels whose home is this shard (channels.c) */
    size_t nhome_buckets, nhomes;
    hr_topics_t chan_subs;     /* local channel subscriptions by exact name */
    hr_topics_t chan_patterns; /* local pattern subscriptions by pattern */
    hr_timer_t chan_timer;
    hr_http_ctx_t *http_current;        /* the plain HTTP request whose handler is running */
    const hr_http_request_t *upgrading; /* the request whose route on_open is running */
    struct hr_stomp_shard *stomp;       /* STOMP queues and user destinations (stomp_broker.c) */
    struct hr_sockjs_shard *sockjs;     /* SockJS sessions homed here (sockjs.c), NULL: none yet */
    hr_timer_t stop_timer;
    hr_list_t user_timers; /* hr_timer_handle_t, freed at deinit if still armed */
    bool stopping;
    atomic_bool exited; /* the worker left its loop: posts to it are no longer run */
    hr_shard_stats_t stats;
};

struct hr_server {
    hr_server_options_t opt;
    char *host;
    char **origins;
    size_t norigins;
    hr_deflate_config_t deflate;
    hr_route_t routes[HR_MAX_ROUTES];
    int nroutes;
    hr_http_route_t http_routes[HR_MAX_HTTP_ROUTES];
    int n_http_routes;
    size_t max_body; /* plain HTTP request bodies (413 above) */
    hr_namespaces_t namespaces;
    char *api_key; /* NULL: the API is open (loopback deployments, tests) */
    hr_stomp_config_t stomp;
    char *trusted_proxies; /* --trusted-proxies LIST, or NULL (proxy headers ignored) */
    /* Security (docs/security.md): set by herald serve before start. */
    struct {
        char *tls_cert, *tls_key; /* NULL: plain ws:// */
        int auth;                 /* HR_AUTH_OFF / OPTIONAL / REQUIRED */
        char *jwt_secret;         /* HS256, or NULL */
        char *jwt_public_key;     /* RS256/ES256 PEM file, or NULL */
        char *auth_webhook;       /* or NULL */
        hr_jwt_keys_t jwt;        /* loaded by hr_server_start (hr_session_auth_start) */
        int max_connections, max_connections_per_ip, max_connections_per_user; /* 0: none */
        double max_message_rate; /* messages/s per connection; 0: none */
        int message_burst;
        int max_subscriptions;
    } sec;
    /* Connection counts for the limits above (limits.h): open connections in total
     * (accepted, not yet freed; over-limit ones excluded), by client address, by user. */
    atomic_int nconns;
    hr_limit_table_t per_ip, per_user;
    bool access_log;                               /* --access-log */
    hr_forwarded_trust_t trust;                    /* trusted_proxies parsed by hr_server_start */
    void (*reload_fn)(hr_server_t *s, void *data); /* SIGHUP, on hr_server_run's thread */
    void *reload_data;
    int nshards;
    hr_shard_t *shards;
    uint16_t port;
    bool started;
    atomic_bool stop_requested;
    int listen_fds_unused;
    /* Graceful restart (handoff.c): while frozen, channel publishes fail with HR_EAGAIN
     * (the state is being handed to a new process); shutdown_reason is the close reason
     * clients get at stop (NULL: "server shutting down, reconnect"). */
    atomic_bool frozen;
    const char *shutdown_reason;
    struct hr_handoff *handoff;
    /* TLS (net/tls.h): built from sec.tls_cert/tls_key by hr_server_start, NULL: plain.
     * Workers read it only when accepting; hr_tls_reload swaps it with the world stopped. */
    struct ssl_ctx_st *tls_ctx;
    /* Several nodes (src/cluster/, docs/cluster.md): set by herald serve before start. */
    struct {
        char *url;             /* --redis, NULL: one node */
        char *prefix;          /* --redis-prefix */
        struct hr_cluster *cl; /* the bridge, while running with --redis */
        atomic_uint lim_inc;   /* cluster_limits.c: heartbeat incarnation, 0: not begun */
        atomic_bool lim_stale; /* cluster_limits.c: a beat failed, resync on the next */
    } redis;
    /* Browser-facing extras (issue 8): set by herald serve before start. */
    char *web_dir; /* --web-dir, NULL: the embedded pages */
    bool web;      /* --web */
    bool sockjs;   /* --sockjs */
};

/* Upper bound in microseconds of publish latency bucket b < HR_LATENCY_BUCKETS. */
static inline uint32_t hr_latency_bound_us(int b)
{
    static const uint32_t us[HR_LATENCY_BUCKETS] = {500,     1000,    2500,   5000,   10000,
                                                    25000,   50000,   100000, 250000, 500000,
                                                    1000000, 2500000, 5000000};
    return us[b];
}

/* The shard of a connection: its sock context is embedded in the shard. */
static inline hr_shard_t *conn_shard(const hr_conn_t *c)
{
    return (hr_shard_t *)((char *)c->sock.ctx - offsetof(hr_shard_t, sock));
}

/* session.c: plain HTTP answers. hr_http_reply: during the handler call (x->c's thread).
 * hr_http_defer: take a token to answer later with hr_http_reply_token on the same thread;
 * if the connection is gone by then, the answer is dropped. */
void hr_http_reply(hr_http_ctx_t *x, int status, const char *content_type, const void *body,
                   size_t len, const char *extra_headers);
hr_http_token_t hr_http_defer(hr_http_ctx_t *x);
void hr_http_reply_token(hr_http_token_t t, int status, const char *content_type, const void *body,
                         size_t len, const char *extra_headers);

/* session.c: streamed answers (SSE, long polls, SockJS streaming transports).
 * hr_http_stream_start, during the handler call: sends the status line and headers (the
 * body chunked, or until close for HTTP/1.0) and returns a token for writes on the same
 * thread; on_close(data) runs once when the connection goes (client left, server stop,
 * slow consumer), never after hr_http_stream_end, and never inside a write (it runs when
 * the connection is freed). Over --max-connections-per-ip (a stream holds a connection
 * as a WebSocket does) or out of memory: the request is answered 503, the token's c is
 * NULL and on_close never runs. hr_http_stream_write queues bytes: 0, or HR_ECLOSED when
 * the connection is gone or closing, or HR_EAGAIN past --max-backlog (the connection is
 * then closed as a slow consumer). hr_http_stream_end ends the body; the connection then
 * serves its next request (keep-alive) or closes. A stream is exempt from the handshake
 * and idle timeouts (its client is silent by design): its owner writes keep-alives. */
/* session.c: the client's address: the peer's, or the one trusted proxies' headers in req
 * name (req may be NULL). */
hr_ip_t hr_session_client_ip(const hr_conn_t *c, const hr_http_request_t *req);

typedef void (*hr_http_stream_close_fn)(void *data);
hr_http_token_t hr_http_stream_start(hr_http_ctx_t *x, int status, const char *content_type,
                                     const char *extra_headers, hr_http_stream_close_fn on_close,
                                     void *data);
int hr_http_stream_write(hr_http_token_t t, const void *p, size_t n);
/* As hr_http_stream_write, for a private head (copied), a shared tail (tail->data[off..
 * end), referenced, not copied; tail may be NULL) and a private trailer: one event of a
 * fan-out, whose payload is queued by reference. */
int hr_http_stream_write_shared(hr_http_token_t t, const void *head, size_t hlen, hr_refbuf_t *tail,
                                size_t off, size_t end, const void *trail, size_t tlen);
void hr_http_stream_end(hr_http_token_t t);

/* server.c: registers a plain HTTP handler for path (exact, or prefix if prefix). Before
 * start. 0, HR_ENOBUFS, HR_ENOMEM. */
int hr_server__add_http(hr_server_t *s, const char *path, bool prefix, hr_http_handler_fn fn,
                        void *data);

/* server.c: runs fn(to, arg) on shard to's thread (waits while its inbox is full; the
 * post is dropped if that worker has already stopped). */
void hr_server__post(hr_shard_t *to, hr_inbox_fn fn, void *arg);

/* server.c: runs fn(to, arg) on shard to: directly when to is self, else through its
 * inbox. */
void hr_server__run_on(hr_shard_t *self, hr_shard_t *to, hr_inbox_fn fn, void *arg);
/* The shard that owns a name (a channel's or a queue's home). */
hr_shard_t *hr_server__home(hr_server_t *srv, const char *name, size_t len);

/* server.c: from a thread that is not a worker (hr_server_run's, on SIGHUP), runs
 * fn(s, data) while every worker is parked between two inbox posts, so fn may change
 * what the workers read without locks (options, namespaces, origins). HR_ESTATE when
 * the server is not running or is stopping. */
int hr_server__stop_the_world(hr_server_t *s, void (*fn)(hr_server_t *s, void *data), void *data);
/* server.c: opens every shard's listener now (hr_server_start opens those not yet
 * open), so that a process taking over (handoff.c) is bound before it says so. Before
 * start only. 0 or a negative error with a message in err. */
int hr_server__listen(hr_server_t *s, char *err, size_t errlen);
/* server.c: from a thread that is not a worker, every shard closes its listener
 * (stop accepting: another process bound to the same port with SO_REUSEPORT gets the
 * new connections), or opens it again after a handoff that failed. Asynchronous: a
 * later post from the same thread (hr_server__stop_the_world) runs after it. */
void hr_server__stop_accepting(hr_server_t *s);
void hr_server__resume_accepting(hr_server_t *s);
/* server.c: SIGHUP: builds a new TLS context from sec.tls_cert/tls_key and swaps it in
 * (connections keep the old one, freed with the last of them). Logs the outcome; on an
 * error the running certificate stays. 0 or a negative error. */
int hr_tls_reload(hr_server_t *s);
/* server.c: what hr_server_run does on SIGHUP (with handle_signals). */
void hr_server__set_reload(hr_server_t *s, void (*fn)(hr_server_t *s, void *data), void *data);
/* server.c: replaces the allowed origins with a comma-separated list (NULL: the default
 * policy), as hr_server_create parses them. Before start or inside stop_the_world. 0, or
 * HR_ENOMEM with the old list kept. */
int hr_server__replace_origins(hr_server_t *s, const char *list);

/* server.c */
hr_shard_t *hr_server__current_shard(void);
/* session.c: a new accepted connection on shard sh. */
void hr_session_accept(hr_shard_t *sh, int fd);
/* session.c: as hr_session_accept for one end of a local socketpair (never TLS): a
 * SockJS session's STOMP connection (sockjs.c). */
void hr_session_accept_local(hr_shard_t *sh, int fd);
/* session.c: queue a shared frame for c (chooses the plain or deflated variant). */
void hr_session_send_frame(hr_conn_t *c, hr_frame_t *f);
/* session.c: queue a shared frame under a slow-consumer policy: past max_backlog the
 * client is closed with 1008 (disconnect), or this frame (drop-newest) or the queued
 * backlog (drop-oldest) is dropped and counted. */
void hr_session_deliver(hr_conn_t *c, hr_frame_t *f, hr_slow_policy_t policy);
/* session.c: as hr_session_deliver, for a frame of a private head (copied) and a shared
 * tail (referenced), sent uncompressed: a STOMP MESSAGE whose subscription header is the
 * subscriber's own. */
void hr_session_deliver_parts(hr_conn_t *c, bool binary, const void *head, size_t hlen,
                              hr_refbuf_t *tail, hr_slow_policy_t policy);
/* session.c: graceful shutdown of one connection (close 1001). */
void hr_session_shutdown(hr_conn_t *c);

/* session.c: authentication (docs/security.md). hr_session_auth_start loads the JWT
 * keys before the workers start (0, or an error with a message); _stop frees them. */
int hr_session_auth_start(hr_server_t *s, char *err, size_t errlen);
void hr_session_auth_stop(hr_server_t *s);
/* The connection's authenticated user (the token's sub or the auth webhook's user), or
 * NULL when anonymous. Valid while the connection is. */
const char *hr_conn_user(const hr_conn_t *c);
/* Its grant (user, expiry, channel patterns), or NULL when anonymous. */
const hr_auth_grant_t *hr_conn_grant(const hr_conn_t *c);
/* Authenticates an open, still anonymous connection with a JWT (STOMP CONNECT): 0, or
 * HR_EINVAL / HR_ESTATE (bad or expired token) / HR_ENOMEM with *why. */
int hr_conn_authenticate(hr_conn_t *c, const char *tok, size_t len, const char **why);
/* session.c: --max-connections-per-user: counts c under its authenticated user
 * (hr_conn_user; a merely claimed STOMP login is never counted) until it is freed; once
 * per connection. 0 (counted, or nothing to count), HR_ENOBUFS over the limit (counted in
 * herald_limit_rejections_total; the caller refuses: 503 at the handshake, STOMP ERROR
 * and 1013 at CONNECT), HR_ENOMEM. */
int hr_session_count_user(hr_conn_t *c);
/* session.c: the auth webhook's verdict: status 0 and g (the callee's to keep or free),
 * or the status to refuse with (401, 403; 503 when the backend is unreachable or its
 * answer unusable) and why (a static string), g NULL. */
typedef void (*hr_session_auth_cb)(void *ctx, int status, hr_auth_grant_t *g, const char *why);
/* session.c: asks --auth-webhook about request req of c, bearing token tok[0..tok_len)
 * (the body docs/security.md describes; path: req's path). 0: cb(ctx, ...) runs later on
 * c's thread, always once, even if c is gone by then; else a negative code, cb never runs. */
int hr_session_ask_webhook(hr_conn_t *c, const hr_http_request_t *req, const char *tok,
                           size_t tok_len, hr_session_auth_cb cb, void *ctx);
/* session.c: runs fn(x, data) again for a request deferred with hr_http_defer (the
 * request is still at the front of the connection's buffer), as if it had just come:
 * fn answers, defers again or starts a stream, and pipelined requests follow. 0, or
 * HR_ECLOSED when the connection is gone (fn does not run). */
int hr_http_resume(hr_http_token_t t, hr_http_handler_fn fn, void *data);

#endif
