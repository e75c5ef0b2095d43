#ifndef HR_NET_HTTP_CLIENT_H
#define HR_NET_HTTP_CLIENT_H

/* hr_http_client: outbound HTTP POSTs (webhooks to application backends) on a loop,
 * through libcurl's multi-socket API. One client per loop; requests to the same host
 * reuse kept-alive connections. Everything runs on the loop's thread: no call may come
 * from another thread. */

#include <stddef.h>
#include <stdint.h>

#include "loop/loop.h"

typedef struct hr_http_client hr_http_client_t;

/* The outcome of one request. Every pointer is borrowed: valid during the done
 * callback only; copy what you keep. */
typedef struct hr_http_result {
    /* 0 when a response arrived (whatever its status), else a negative code:
     *   -ETIMEDOUT       the whole request took longer than timeout_ms;
     *   -ECONNREFUSED, -ECONNRESET, ... (-errno) a connection or socket failure;
     *   HR_ENOENT        the host name did not resolve;
     *   HR_EINVAL        a malformed URL or a scheme other than http and https;
     *   HR_EMSGSIZE      the response body exceeded max_response;
     *   HR_ENOMEM        out of memory;
     *   HR_ECLOSED       cancelled by hr_http_client_destroy;
     *   HR_EPROTO        anything else (a malformed response, a TLS failure, ...). */
    int err;
    const char *errmsg;       /* why, when err != 0 (curl's text or ours), else "" */
    int status;               /* the HTTP status when err == 0, else 0 */
    const char *content_type; /* the response's Content-Type, or NULL */
    const uint8_t *body;      /* the response body (never NULL; empty when none) */
    size_t body_len;
} hr_http_result_t;

/* Called once per request with its outcome; r and everything it points to are borrowed
 * for the duration of the call. It may post new requests; it must not destroy the
 * client. */
typedef void (*hr_http_done_fn)(void *ctx, const hr_http_result_t *r);

/* A client on loop, or NULL (out of memory, or libcurl failed to initialise). The
 * first call in the process initialises libcurl (thread-safe). */
hr_http_client_t *hr_http_client_create(hr_loop_t *loop);

/* Cancels every request in flight (each done runs now, with err HR_ECLOSED), closes
 * the kept-alive connections and frees the client. Call it from outside the loop's I/O
 * callbacks (after hr_loop_run returns, or from a timer), never from a done callback,
 * and before destroying the loop. NULL is a no-op. */
void hr_http_client_destroy(hr_http_client_t *hc);

/* POSTs body[0..len) as content_type (e.g. "application/json") to url (http or https;
 * no redirects are followed). extra_headers is NULL or a NULL-terminated list of
 * "Name: value" lines. Everything is copied: the caller's buffers may go at return.
 * Backends are reached directly: proxy settings in the environment are ignored.
 * timeout_ms (> 0) bounds the whole request, connecting at most min(timeout_ms, 5 s);
 * a response body longer than max_response fails with HR_EMSGSIZE.
 *
 * Returns 0, and done(ctx, result) runs exactly once, later, on the loop's thread
 * (never from inside this call), or returns HR_EINVAL (a NULL url, content_type or
 * done, body NULL with len > 0, timeout_ms 0, a CR or LF in content_type or a header,
 * a header without ':'), HR_ENOMEM, or HR_ECLOSED (called while the client is being
 * destroyed); then done is never called. */
int hr_http_client_post(hr_http_client_t *hc, const char *url, const char *content_type,
                        const void *body, size_t len, const char *const *extra_headers,
                        uint32_t timeout_ms, size_t max_response, hr_http_done_fn done, void *ctx);

/* Requests in flight: posted, and whose done has not run yet. */
size_t hr_http_client_pending(const hr_http_client_t *hc);

#endif
