#ifndef HR_SERVER_SOCKJS_H
#define HR_SERVER_SOCKJS_H

/* The SockJS server protocol on the STOMP endpoint (docs/stomp.md, "SockJS"). */

#include "server/server.h"

/* Registers SockJS under prefix (the STOMP route's path): plain HTTP at prefix/ (info,
 * the HTTP transports), the raw WebSocket prefix/websocket (plain STOMP) and the SockJS
 * WebSocket prefix/<server>/<session>/websocket. Before start. 0 or a negative error. */
int hr_sockjs_add_routes(hr_server_t *s, const char *prefix);

/* The callbacks of the SockJS WebSocket route (a token may come in CONNECT, as on /stomp). */
extern const hr_route_callbacks_t hr_sockjs_route_cb;

/* Frees what is left of the shard's sessions once its worker has stopped (server.c). */
void hr_sockjs_shard_deinit(hr_shard_t *sh);

#endif
