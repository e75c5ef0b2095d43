#ifndef HR_CLIENT_WS_CLIENT_H
#define HR_CLIENT_WS_CLIENT_H

/* The layout of hr_client_t (include/herald/client.h): one allocation per client that
 * outlives its connections; the sock is embedded and restarted for each attempt. */

#include <stdbool.h>
#include <stdint.h>

#include "base/buf.h"
#include "herald/client.h"
#include "net/sock.h"
#include "ws/deflate.h"
#include "ws/ws_conn.h"

struct addrinfo;
struct ssl_ctx_st;
typedef struct hr_client_loop hr_client_loop_t;

typedef enum hr_client_state {
    HR_CLIENT_IDLE = 0,   /* no connection: before an attempt, waiting to reconnect, or done */
    HR_CLIENT_CONNECTING, /* TCP connect in progress */
    HR_CLIENT_HANDSHAKE,  /* upgrade request sent, reading the response head */
    HR_CLIENT_OPEN,       /* WebSocket open */
    HR_CLIENT_CLOSING     /* close frame sent or received; the sock is going away */
} hr_client_state_t;

struct hr_client {
    hr_sock_t sock; /* first: the sock callbacks cast back to the client */
    hr_loop_t *loop;
    hr_client_loop_t *shared; /* per-loop zlib streams and scratch buffers, or NULL */
    hr_client_options_t opt;  /* strings below are owned copies */
    hr_client_callbacks_t cb;
    void *user;
    /* parsed URL */
    char *host;        /* for getaddrinfo (IPv6 without brackets) */
    char *port;        /* decimal */
    char *host_header; /* Host header value */
    char *target;      /* path and query */
    char **headers, **protocols;
    char *origin, *source_addr;
    struct ssl_ctx_st *tls_ctx; /* wss://: a reference to the loop's context, else NULL */
    /* life cycle */
    hr_client_state_t state;
    bool sock_live;   /* the sock is started and its on_free has not finished */
    bool destroyed;   /* hr_client_destroy was called: free when the sock is gone */
    bool user_closed; /* hr_client_close: no reconnect */
    bool opened;      /* on_open was called for this connection */
    bool next_addr;   /* the connect failed: try the next address when the sock is freed */
    bool dispatching; /* inside on_free or the client timer: destroy only marks */
    hr_timer_t timer; /* reconnect back-off, or delivery of a failure that had no sock */
    int pending_err;  /* failure to deliver from the timer (0: none) */
    char errmsg[256];
    struct addrinfo *ai_list, *ai_cur;
    uint32_t backoff_ms;
    uint64_t opened_ms, last_rx_ms, last_ping_ms;
    uint64_t prng;
    /* handshake */
    char key[25];
    hr_buf_t head;
    hr_deflate_config_t dcfg;
    /* open */
    hr_ws_reader_t rd;
    bool rd_live;
    bool deflate;
    hr_deflate_params_t dfl;
    hr_deflate_stream_t *own_deflate, *own_inflate;
    char *protocol; /* chosen subprotocol */
    bool close_sent, close_received;
    uint16_t close_code;
    uint8_t close_reason_len;
    char close_reason[123];
};

#endif
