#ifndef HR_SERVER_HTTP_STREAM_H
#define HR_SERVER_HTTP_STREAM_H

/* The fallback transports for clients without WebSocket (docs/sse-poll.md): Server-Sent
 * Events and long-polling on the channels of channels.c, and publishing over plain HTTP
 * POST to the same paths. */

#include "server/channels.h"

/* Handlers for hr_server__add_http: GET streams (/sse) or polls (/poll), POST publishes,
 * OPTIONS answers a CORS preflight, anything else is 405. */
void hr_http_sse_handle(hr_http_ctx_t *x, void *data);
void hr_http_poll_handle(hr_http_ctx_t *x, void *data);

/* channels.c: a message (m->offset > 0) or a presence event (offset 0; f's payload is the
 * event) for an HR_SUB_HTTP subscription, on the subscription's shard. */
void hr_http_stream_deliver(hr_sub_t *sub, hr_frame_t *f, const hr_chan_msg_t *m);

#endif
