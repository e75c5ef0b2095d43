#ifndef HR_HTTP_UPGRADE_H
#define HR_HTTP_UPGRADE_H

/* RFC 6455 §4.2: validation of a WebSocket opening handshake, the accept key, origin
 * policy and subprotocol choice; and the writers for the 101 and error responses. */

#include <stdbool.h>
#include <stddef.h>

#include "base/buf.h"
#include "http/http_parse.h"

typedef struct hr_http_upgrade {
    const char *key; /* Sec-WebSocket-Key value (24 base64 chars) */
    size_t key_len;
    const char *origin; /* NULL if absent */
    size_t origin_len;
    const char *host; /* Host value */
    size_t host_len;
    const char *reason; /* on failure: static text for the response body */
    int status;         /* on failure: 400, 403, 405, 426 */
} hr_http_upgrade_t;

/*
 * Validates req as a WebSocket upgrade: method GET (else 405), HTTP/1.1 (else 400), a
 * Host header (400), Upgrade containing the token "websocket" (else 426), Connection
 * containing "upgrade" (400), Sec-WebSocket-Version exactly "13" (else 426; the caller
 * answers with Sec-WebSocket-Version: 13), exactly one Sec-WebSocket-Key that is the
 * base64 of 16 bytes (400). Origin is checked separately (hr_http_origin_allowed).
 * Returns 0 and fills *up, or -1 with up->status and up->reason set.
 */
int hr_http_upgrade_check(const hr_http_request_t *req, hr_http_upgrade_t *up);

/* Writes base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")) and a NUL into out. */
void hr_http_accept_key(const char *key, size_t key_len, char out[29]);

/*
 * Origin policy. patterns[0..n) are from --allowed-origins; each is "*" (any origin),
 * or a glob where '*' matches any run of characters, matched case-insensitively
 * against the whole origin ("https://app-*.example.com") or, for a pattern without "://",
 * against the origin's host[:port] ("*.example.com", "localhost:3000").
 * With n == 0 the default applies: a request without Origin, and an Origin whose
 * host[:port] equals the Host header, are allowed; any other is not.
 * A request without Origin is always allowed (non-browser clients send none).
 */
bool hr_http_origin_allowed(const char *origin, size_t origin_len, const char *host,
                            size_t host_len, const char *const *patterns, size_t n);

/*
 * Chooses a subprotocol: the first of supported[0..n) (server preference) that appears
 * in the comma-separated Sec-WebSocket-Protocol values of req (all such headers).
 * Returns its index, or -1 if none matches or the request offers none.
 */
int hr_http_choose_subprotocol(const hr_http_request_t *req, const char *const *supported,
                               size_t n);

/* Appends "HTTP/1.1 101 Switching Protocols" with Upgrade, Connection, the accept key,
 * and Sec-WebSocket-Protocol / Sec-WebSocket-Extensions when non-NULL. 0 or HR_ENOMEM. */
int hr_http_write_101(hr_buf_t *out, const char accept[29], const char *protocol,
                      const char *extensions);

/* Appends a complete error response with a text/plain body of reason + "\n",
 * Content-Length, Connection: close, and extra_headers (each "Name: value\r\n", may be
 * NULL). 0 or HR_ENOMEM. */
int hr_http_write_error(hr_buf_t *out, int status, const char *reason, const char *extra_headers);

/* Appends a complete response: status line, Content-Type (text/plain when NULL),
 * Content-Length, Connection: keep-alive or close, extra_headers (each "Name: value\r\n",
 * may be NULL), then body[0..len). 0 or HR_ENOMEM (out unchanged). */
int hr_http_write_response(hr_buf_t *out, int status, const char *content_type, const void *body,
                           size_t len, bool keep_alive, const char *extra_headers);

/* Returns the reason phrase for status ("Bad Request"), or "Unknown". */
const char *hr_http_status_text(int status);

#endif
