#ifndef HR_HTTP_CHUNKED_H
#define HR_HTTP_CHUNKED_H

/* Pure incremental decoder of the chunked transfer coding of request bodies (RFC 9112
 * §7.1), and the Transfer-Encoding framing rules of requests (§6.1, §6.3). */

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "http/http_parse.h"

/* A size line (chunk-size and chunk extensions) longer than this is a 400. */
#define HR_HTTP_CHUNKED_MAX_LINE 4096
/* A trailer section longer than this is a 431. */
#define HR_HTTP_CHUNKED_MAX_TRAILER 8192

typedef struct hr_http_chunked {
    size_t max_body;  /* decoded bytes allowed */
    size_t body_len;  /* decoded bytes so far */
    size_t remaining; /* data bytes left in the current chunk, or the size being read */
    uint32_t line;    /* bytes of the current size line, or of the trailer section */
    uint8_t state;
    uint16_t status; /* after an error: 400, 413 or 431 */
} hr_http_chunked_t;

/* Starts decoding a body of at most max_body decoded bytes. */
void hr_http_chunked_init(hr_http_chunked_t *d, size_t max_body);

/*
 * Decodes buf[0..len) in place: the chunk data found is moved to buf[0..*out_len) (it
 * follows the data of earlier calls, which the caller keeps). Returns the number of
 * input bytes that completed the body, last CRLF of the trailer section included (the
 * bytes after it are the caller's: a pipelined request), HR_EAGAIN when all len bytes
 * were consumed and the body is not complete, HR_EMSGSIZE (status 413) as soon as a
 * chunk-size takes the body past max_body, or HR_EPROTO with status 400 for a malformed
 * chunk (size not hex, missing CRLF, bare LF, control character, size line over
 * HR_HTTP_CHUNKED_MAX_LINE) or 431 for a trailer section over
 * HR_HTTP_CHUNKED_MAX_TRAILER. Chunk extensions and trailer fields are ignored. Errors
 * are terminal: later calls return the same error. A complete decoder returns 0.
 */
ssize_t hr_http_chunked_feed(hr_http_chunked_t *d, uint8_t *buf, size_t len, size_t *out_len);

/* The status to answer after an error (400, 413, 431), 0 before. */
static inline int hr_http_chunked_status(const hr_http_chunked_t *d)
{
    return d->status;
}

/*
 * How a request's body is framed (RFC 9112 §6.1, §6.3): 0 without Transfer-Encoding (the
 * body is Content-Length bytes, or none), 1 when it is chunked, or the status to refuse
 * it with, after which the connection must close: 400 when Transfer-Encoding comes with
 * Content-Length, in an HTTP/1.0 request, is empty or malformed, applies chunked twice,
 * or its final coding is not chunked (the length cannot be determined); 501 when chunked
 * is final but other codings precede it (none is implemented).
 */
int hr_http_chunked_framing(const hr_http_request_t *req);

#endif
