#ifndef HERALD_CLIENT_H
#define HERALD_CLIENT_H

/*
 * libherald's WebSocket client (RFC 6455 client role, RFC 7692 offers), non-blocking on an
 * hr_loop: one thread can hold thousands of clients. Frames are masked with a random key
 * per frame; the close handshake, pings and permessage-deflate follow the same codecs as
 * the server. ws:// and wss:// URLs (TLS 1.2+, SNI, the server's certificate verified
 * against the system store unless tls_insecure or tls_cafile say otherwise).
 *
 * Every callback runs on the loop's thread. Pointer arguments to callbacks are borrowed
 * for the duration of the call.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "herald/error.h"
#include "herald/loop.h"
#include "herald/ws.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hr_client hr_client_t;

typedef struct hr_client_options {
    const char *url;              /* "ws[s]://host[:port][/path][?query]"; required */
    const char *const *headers;   /* extra "Name: value" lines, NULL-terminated, or NULL */
    const char *const *protocols; /* subprotocols to offer, NULL-terminated, or NULL */
    const char *origin;           /* Origin header, or NULL for none */
    const char *source_addr;      /* local address to bind before connecting, or NULL */
    bool compress;                /* offer permessage-deflate (default false) */
    uint64_t max_message;         /* default 16 MiB; larger incoming: close 1009 */
    size_t max_backlog;           /* queued output cap, default 16 MiB: above it sends fail */
    uint32_t connect_timeout_ms;  /* TCP connect + handshake, default 10000 */
    uint32_t ping_interval_ms;    /* send a ping after this much silence; 0: never (default) */
    bool reconnect;               /* reconnect with back-off after a close or failure */
    uint32_t reconnect_min_ms;    /* first back-off, default 500 */
    uint32_t reconnect_max_ms;    /* back-off cap, default 30000 (doubling, with jitter) */
    bool tls_insecure;            /* wss://: do not verify the server's certificate (tests) */
    const char *tls_cafile;       /* wss://: trust these PEM CAs instead of the system store */
} hr_client_options_t;

typedef struct hr_client_callbacks {
    /* The handshake completed; the client can send. */
    void (*on_open)(hr_client_t *c);
    /* A complete text (valid UTF-8) or binary message. */
    void (*on_message)(hr_client_t *c, const uint8_t *data, size_t len, bool binary);
    /* A pong arrived (answer to hr_client_ping or to an automatic ping). */
    void (*on_pong)(hr_client_t *c, const uint8_t *data, size_t len);
    /* The connection ended. code is the peer's close code (1005 if its close frame had
     * none), or 1006 if the connection ended without a close frame (including a failed
     * connect or handshake: on_error came first). With reconnect on, a new attempt is
     * scheduled after this returns; otherwise the client stays closed until destroyed. */
    void (*on_close)(hr_client_t *c, uint16_t code, const char *reason, size_t reason_len);
    /* A failure with a one-line description: connect refused or timed out, handshake
     * rejected (msg holds the HTTP status line), protocol error from the server (err
     * HR_EPROTO, the client sends close 1002/1007/1009), socket error. on_close follows. */
    void (*on_error)(hr_client_t *c, int err, const char *msg);
} hr_client_callbacks_t;

/* Fills opts with the defaults above (url NULL). */
HR_API void hr_client_options_init(hr_client_options_t *opts);

/*
 * Creates a client and starts connecting. The options and callbacks are copied (strings
 * too). Returns NULL with a message in err for a bad URL or out of memory; the callbacks
 * are then never called. Otherwise on_open or on_error/on_close follow on the loop.
 */
HR_API hr_client_t *hr_client_connect(hr_loop_t *loop, const hr_client_options_t *opts,
                                      const hr_client_callbacks_t *cb, void *user, char *err,
                                      size_t errlen);

/* Sends a message (masked; compressed when negotiated and worthwhile). 0, HR_ESTATE
 * (not open), HR_ENOBUFS (backlog over max_backlog), HR_ENOMEM. */
HR_API int hr_client_send(hr_client_t *c, const void *data, size_t len, bool binary);
/* Sends one raw frame as given (no compression): for fragmentation and tests. opcode is
 * HR_WS_OP_*; the caller keeps the fragmentation rules. 0 or as hr_client_send. */
HR_API int hr_client_send_frame(hr_client_t *c, uint8_t opcode, bool fin, const void *data,
                                size_t len);
/* Sends a ping with up to 125 bytes of payload. 0, HR_EINVAL, HR_ESTATE. */
HR_API int hr_client_ping(hr_client_t *c, const void *data, size_t len);
/* Starts the close handshake (code 1000 or 3000-4999, reason ≤ 123 bytes); on_close
 * follows when the server answers or after a timeout. Turns reconnect off. */
HR_API void hr_client_close(hr_client_t *c, uint16_t code, const char *reason);
/* Closes the socket at once if open (no callbacks) and frees the client. Not from inside
 * this client's own callbacks: call it after they return (e.g. from a timer or after
 * hr_loop_run). */
HR_API void hr_client_destroy(hr_client_t *c);

HR_API void hr_client_set_data(hr_client_t *c, void *data);
HR_API void *hr_client_data(const hr_client_t *c);
/* True between on_open and on_close. */
HR_API bool hr_client_is_open(const hr_client_t *c);
/* The subprotocol the server chose, or NULL. */
HR_API const char *hr_client_protocol(const hr_client_t *c);
/* True if permessage-deflate was negotiated. */
HR_API bool hr_client_compressed(const hr_client_t *c);
/* Bytes queued and not yet written to the socket. */
HR_API size_t hr_client_queued(const hr_client_t *c);

#ifdef __cplusplus
}
#endif

#endif
