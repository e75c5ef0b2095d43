#ifndef HR_PROTO_SOCKJS_FRAME_H
#define HR_PROTO_SOCKJS_FRAME_H

/* SockJS 0.3 framing as a pure codec: message strings in and out of the JSON the
 * transports carry. No I/O; output goes to a caller's buffer. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/buf.h"
#include "base/slice.h"

/* Appends s[0..len) to out as a JSON string, quotes included, escaped as SockJS
 * requires: the JSON specials, C0 controls, the ranges browsers mangle (U+007F-U+009F,
 * U+00AD, U+0600-0604, U+070F, U+17B4-17B5, U+200C-200F, U+2028-202F, U+2060-206F,
 * U+FEFF, U+FFF0-FFFF) and every code point above U+FFFF as a \u surrogate pair. A byte
 * that is not part of valid UTF-8 becomes \u00XX (the byte as a Latin-1 character).
 * 0 or HR_ENOMEM. */
int hr_sockjs_quote(hr_buf_t *out, const void *s, size_t len);

/* Appends a message frame a["m1","m2",...] for n messages. 0 or HR_ENOMEM. */
int hr_sockjs_encode_array(hr_buf_t *out, const hr_slice_t *msgs, size_t n);

/* Appends a close frame c[code,"reason"]. 0 or HR_ENOMEM. */
int hr_sockjs_encode_close(hr_buf_t *out, unsigned code, const char *reason);

/* Appends a frame as an EventSource event: "data: " FRAME "\r\n\r\n", with '%', CR, LF
 * and NUL percent-encoded (sockjs-client passes the data through decodeURI, so a bare
 * '%' would break it; the others would break the event). 0 or HR_ENOMEM. */
int hr_sockjs_encode_event(hr_buf_t *out, const void *frame, size_t len);

/* Decodes what a client sends (xhr_send body, a SockJS WebSocket message): a JSON array
 * of strings, or with allow_string also a lone JSON string, whitespace around tokens
 * allowed. Each string is decoded to UTF-8 (a lone surrogate escape becomes U+FFFD) and
 * appended to out as a record: its length as a native uint32_t, then its bytes (read
 * them back with hr_sockjs_next). Returns the number of strings, HR_EAGAIN for an empty
 * payload (SockJS: "Payload expected."), or HR_EPROTO for anything else that is not
 * such JSON, raw bytes that are not UTF-8 included ("Broken JSON encoding."); out may
 * then hold a part. HR_ENOMEM. */
ssize_t hr_sockjs_decode(const uint8_t *in, size_t len, bool allow_string, hr_buf_t *out);

/* The record at *off of a buffer filled by hr_sockjs_decode: true with *msg pointing
 * into buf and *off advanced, false at the end. */
bool hr_sockjs_next(const hr_buf_t *buf, size_t *off, hr_slice_t *msg);

#endif
