#ifndef HERALD_H
#define HERALD_H

/*
 * libherald: a WebSocket server library. An embedder creates a server, registers
 * routes (a path and callbacks with the life-cycle open / message / close / error),
 * and runs it. Each worker thread owns its connections: every callback for a
 * connection runs on that connection's thread, and the hr_conn_* calls must be made
 * from it (inside a callback or a timer of that thread). hr_server_broadcast,
 * hr_server_publish and hr_server_stop may be called from any thread.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "herald/error.h"
#include "herald/version.h"
#include "herald/ws.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hr_server hr_server_t;
typedef struct hr_conn hr_conn_t;
typedef struct hr_timer_handle hr_timer_handle_t;

/* Server options; fill with hr_server_options_init() and change what you need. */
typedef struct hr_server_options {
    const char *host;              /* listen address, default "127.0.0.1" */
    uint16_t port;                 /* default 8080; 0 picks a free port (hr_server_port) */
    int threads;                   /* worker threads, default: number of CPUs */
    uint64_t max_message;          /* bytes, default 16 MiB; above it: close 1009 */
    size_t max_backlog;            /* queued output bytes per connection, default 1 MiB;
                                      above it the client is closed with 1008 */
    size_t max_header;             /* bytes of an HTTP request head, default 8192 (431) */
    uint32_t ping_interval_ms;     /* default 25000; 0 disables pings */
    uint32_t idle_timeout_ms;      /* default 60000; 0 disables */
    uint32_t handshake_timeout_ms; /* default 10000 */
    uint32_t shutdown_timeout_ms;  /* default 5000: bound on draining at stop */
    const char *allowed_origins;   /* comma-separated patterns; NULL: default policy */
    bool compression;              /* permessage-deflate, default true */
    bool deflate_context_takeover; /* default false: no zlib state kept per connection */
    bool handle_signals;           /* hr_server_run stops on SIGINT/SIGTERM; default false */
} hr_server_options_t;

/* Callbacks of a route. Every pointer argument is borrowed for the duration of the
 * call. Any callback may be NULL. */
typedef struct hr_route_callbacks {
    /* The handshake completed; the connection can send. */
    void (*on_open)(hr_conn_t *c);
    /* A complete message: text (valid UTF-8) or binary. data is not NUL-terminated. */
    void (*on_message)(hr_conn_t *c, const uint8_t *data, size_t len, bool binary);
    /* The connection is closed (code 1006 if it ended without a close frame). After
     * this returns the hr_conn_t is gone. */
    void (*on_close)(hr_conn_t *c, uint16_t code, const char *reason, size_t reason_len);
    /* Something went wrong on the connection (err: HR_EPROTO, HR_EMSGSIZE, HR_ENOBUFS
     * for a slow consumer, -errno for a socket error); on_close follows. */
    void (*on_error)(hr_conn_t *c, int err);
} hr_route_callbacks_t;

/* Fills opts with the defaults. */
HR_API void hr_server_options_init(hr_server_options_t *opts);

/* Creates a server (no socket is opened yet). Returns NULL with a message in
 * err[0..errlen) on invalid options or out of memory. */
HR_API hr_server_t *hr_server_create(const hr_server_options_t *opts, char *err, size_t errlen);

/*
 * Registers a WebSocket route at path (exact match, e.g. "/ws"). subprotocols is a
 * NULL-terminated list in preference order, or NULL. route_data is returned by
 * hr_conn_route_data(). Must be called before hr_server_start/run. Returns the route
 * id (>= 0), HR_EEXIST for a duplicate path, HR_EINVAL, or HR_ENOMEM.
 */
HR_API int hr_server_add_route(hr_server_t *s, const char *path, const hr_route_callbacks_t *cb,
                               const char *const *subprotocols, void *route_data);

/* Binds the listeners and starts the worker threads; returns at once. 0 or a negative
 * error with a message in err. */
HR_API int hr_server_start(hr_server_t *s, char *err, size_t errlen);
/* The port the server listens on (after start). */
HR_API uint16_t hr_server_port(const hr_server_t *s);
/* Any thread: starts a graceful stop (close 1001 to every client, bounded drain). */
HR_API void hr_server_stop(hr_server_t *s);
/* Waits until the workers have stopped. 0 on a clean stop. */
HR_API int hr_server_wait(hr_server_t *s);
/* hr_server_start (unless already started) + hr_server_wait, stopping on SIGINT/SIGTERM
 * when handle_signals is set. */
HR_API int hr_server_run(hr_server_t *s, char *err, size_t errlen);
/* Frees a stopped (or never started) server. */
HR_API void hr_server_destroy(hr_server_t *s);

/*
 * Any thread: sends one message to every connection on route route_id, on every
 * worker thread. The frame is built once and shared by reference. Returns 0,
 * HR_EINVAL, HR_EMSGSIZE (above max_message) or HR_ENOMEM.
 */
HR_API int hr_server_broadcast(hr_server_t *s, int route_id, const void *data, size_t len,
                               bool binary);

/*
 * Any thread: sends one message to every connection subscribed to topic (see
 * hr_conn_subscribe), on every worker thread, frame built once. Returns as
 * hr_server_broadcast.
 */
HR_API int hr_server_publish(hr_server_t *s, const char *topic, const void *data, size_t len,
                             bool binary);

/* Connection calls: only on the connection's own thread. */

/* Queues a message. 0, HR_ECLOSED (closing), HR_ENOMEM, or HR_ENOBUFS when the
 * connection's backlog is over max_backlog (it is then closed with 1008). */
HR_API int hr_conn_send(hr_conn_t *c, const void *data, size_t len, bool binary);
/* Starts the close handshake with code (1000, or 3000-4999 for applications) and a
 * reason of at most 123 bytes. */
HR_API void hr_conn_close(hr_conn_t *c, uint16_t code, const char *reason);
HR_API void hr_conn_set_data(hr_conn_t *c, void *data);
HR_API void *hr_conn_data(const hr_conn_t *c);
HR_API void *hr_conn_route_data(const hr_conn_t *c);
/* The id of the connection's route (as returned by hr_server_add_route). */
HR_API int hr_conn_route(const hr_conn_t *c);
HR_API hr_server_t *hr_conn_server(const hr_conn_t *c);
/* The negotiated subprotocol, or NULL. */
HR_API const char *hr_conn_protocol(const hr_conn_t *c);
/* A server-unique id of the connection. */
HR_API uint64_t hr_conn_id(const hr_conn_t *c);
/* The worker thread index of the connection (0..threads-1). */
HR_API int hr_conn_thread(const hr_conn_t *c);
/* Subscribes the connection to topic (copied). 0, HR_EEXIST, HR_ENOMEM, HR_EINVAL. */
HR_API int hr_conn_subscribe(hr_conn_t *c, const char *topic);
/* 0 or HR_ENOENT. */
HR_API int hr_conn_unsubscribe(hr_conn_t *c, const char *topic);

/*
 * Timers run on a worker thread's loop. hr_timer_start may be called on a worker thread
 * (the timer runs there) or, before hr_server_start, from any thread (it then runs on
 * thread 0). repeat_ms 0 fires once (the handle is freed after the callback). Returns
 * NULL on out of memory.
 */
HR_API hr_timer_handle_t *hr_timer_start(hr_server_t *s, uint64_t after_ms, uint64_t repeat_ms,
                                         void (*cb)(hr_timer_handle_t *t, void *data), void *data);
/* Stops and frees a timer; on its own thread only (e.g. inside its callback). */
HR_API void hr_timer_stop(hr_timer_handle_t *t);

#ifdef __cplusplus
}
#endif

#endif
