#ifndef HERALD_STOMP_H
#define HERALD_STOMP_H

/*
 * STOMP 1.0-1.2 over WebSocket for embedders (docs/stomp.md): a STOMP route on the
 * server's broker, where /topic/NAME is the channel NAME, /queue/NAME a queue and
 * /user/... Spring's user destinations. SENDs to /app/... go to the application's
 * callback, which answers by sending to destinations with hr_stomp_send.
 */

#include <stddef.h>
#include <stdint.h>

#include "herald.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A SEND to an /app/ destination, borrowed for the duration of the callback. */
typedef struct hr_stomp_app_message {
    const char *destination;  /* "/app/..." */
    const char *session;      /* the STOMP session id */
    const char *user;         /* NULL: anonymous */
    const char *content_type; /* NULL: none given */
    const uint8_t *body;
    size_t body_len;
} hr_stomp_app_message_t;

/* Runs on the connection's thread. Return 0, or a negative error with a message in
 * err[0..errlen): the client then gets an ERROR frame carrying it. */
typedef int (*hr_stomp_app_fn)(hr_conn_t *c, const hr_stomp_app_message_t *m, void *data, char *err,
                               size_t errlen);

/* Registers a STOMP route at path (e.g. "/stomp"); app may be NULL (SENDs to /app/ are
 * then refused). Before hr_server_start. The route id, or a negative error. */
HR_API int hr_stomp_add_route(hr_server_t *s, const char *path, hr_stomp_app_fn app, void *data);

/* Any thread: sends body to a /topic/, /queue/ or /user/USER/... destination, as a
 * backend would (no client permission checks). content_type may be NULL. 0, HR_EINVAL
 * (bad destination, or a /topic/ body that is not JSON or UTF-8 text), HR_ENOMEM. */
HR_API int hr_stomp_send(hr_server_t *s, const char *destination, const char *content_type,
                         const void *body, size_t len);

#ifdef __cplusplus
}
#endif

#endif
