#ifndef HR_HTTP_PARSE_H
#define HR_HTTP_PARSE_H

/* Pure HTTP/1.x head parsers (request line or status line + headers, RFC 9110/9112), in
 * the manner of picohttpparser: they point into the caller's buffer and allocate nothing. */

#include <stddef.h>
#include <sys/types.h>

typedef struct hr_http_header {
    const char *name;
    size_t name_len;
    const char *value; /* leading and trailing spaces/tabs trimmed */
    size_t value_len;
} hr_http_header_t;

typedef struct hr_http_request {
    const char *method;
    size_t method_len;
    const char *target; /* request-target as sent (path and query) */
    size_t target_len;
    int version_major;
    int version_minor;
    hr_http_header_t *headers; /* caller's array */
    size_t num_headers;        /* in: capacity of headers[]; out: headers found */
} hr_http_request_t;

/*
 * Parses a request head from buf[0..len). Returns the number of bytes of the head
 * including the final CRLF CRLF (bytes after it are the caller's: pipelined data),
 * HR_EAGAIN if the head is incomplete, or a negative error with *status set to the HTTP
 * status to answer: 400 for a malformed request line, method, target, version or
 * header (bare LF is accepted as a line end; obs-fold, whitespace before the colon,
 * control characters and a missing colon are 400), 431 when the head exceeds max_bytes
 * (also returned while incomplete, as soon as len > max_bytes) or has more headers than
 * req->num_headers, 505 for an HTTP major version other than 1.
 */
ssize_t hr_http_parse_request(const char *buf, size_t len, size_t max_bytes, hr_http_request_t *req,
                              int *status);

typedef struct hr_http_response {
    int version_major;
    int version_minor;
    int status;         /* 100..999 */
    const char *reason; /* reason-phrase, possibly empty */
    size_t reason_len;
    size_t status_line_len;    /* the status line without its line end, from buf[0] */
    hr_http_header_t *headers; /* caller's array */
    size_t num_headers;        /* in: capacity of headers[]; out: headers found */
} hr_http_response_t;

/*
 * Parses a response head (the client side of an upgrade) from buf[0..len). Returns the
 * number of bytes of the head including the final CRLF CRLF (bytes after it belong to
 * the caller: for a 101, the first WebSocket frames), HR_EAGAIN if the head is
 * incomplete, HR_EPROTO for a malformed status line (anything but "HTTP/" DIGIT "."
 * DIGIT SP 3DIGIT [SP reason]) or header (same rules as requests), or HR_EMSGSIZE when
 * the head exceeds max_bytes (also while incomplete) or has more headers than
 * res->num_headers. The status line is checked while it is incomplete. RFC 9112 §4.
 */
ssize_t hr_http_parse_response(const char *buf, size_t len, size_t max_bytes,
                               hr_http_response_t *res);

/* Returns the first response header named name (case-insensitive), or NULL. */
const hr_http_header_t *hr_http_find_response_header(const hr_http_response_t *res,
                                                     const char *name);

/* Returns the first header named name (case-insensitive), or NULL. */
const hr_http_header_t *hr_http_find_header(const hr_http_request_t *req, const char *name);

/* Counts the headers named name (case-insensitive). */
size_t hr_http_count_header(const hr_http_request_t *req, const char *name);

/* True if the comma-separated list value[0..len) contains token (case-insensitive,
 * optional whitespace around elements), e.g. Connection: keep-alive, Upgrade. */
int hr_http_list_has_token(const char *value, size_t len, const char *token);

#endif
