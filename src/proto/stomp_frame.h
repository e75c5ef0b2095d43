#ifndef HR_PROTO_STOMP_FRAME_H
#define HR_PROTO_STOMP_FRAME_H

/* STOMP 1.0 / 1.1 / 1.2 frames (https://stomp.github.io): a pure codec. The parser
 * takes bytes (a WebSocket message, or the buffered tail of earlier ones) and returns
 * one frame at a time, or "need more", or an error with a message fit for an ERROR
 * frame. It never allocates: header values that need unescaping are written into the
 * caller's scratch buffer, every other slice points into the input. The encoder appends
 * a frame to a caller buffer, escaping header values as the version requires. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/slice.h"

typedef enum hr_stomp_version {
    HR_STOMP_10 = 10,
    HR_STOMP_11 = 11,
    HR_STOMP_12 = 12,
} hr_stomp_version_t;

typedef enum hr_stomp_cmd {
    HR_STOMP_UNKNOWN = 0,
    /* client frames */
    HR_STOMP_CONNECT,
    HR_STOMP_STOMP,
    HR_STOMP_SEND,
    HR_STOMP_SUBSCRIBE,
    HR_STOMP_UNSUBSCRIBE,
    HR_STOMP_ACK,
    HR_STOMP_NACK,
    HR_STOMP_BEGIN,
    HR_STOMP_COMMIT,
    HR_STOMP_ABORT,
    HR_STOMP_DISCONNECT,
    /* server frames */
    HR_STOMP_CONNECTED,
    HR_STOMP_MESSAGE,
    HR_STOMP_RECEIPT,
    HR_STOMP_ERROR,
} hr_stomp_cmd_t;

#define HR_STOMP_MAX_HEADERS_CAP 256 /* hard upper bound of hr_stomp_limits_t.max_headers */

typedef struct hr_stomp_header {
    hr_slice_t name;  /* unescaped */
    hr_slice_t value; /* unescaped */
} hr_stomp_header_t;

typedef struct hr_stomp_limits {
    size_t max_headers;      /* header lines per frame (<= HR_STOMP_MAX_HEADERS_CAP) */
    size_t max_header_bytes; /* command line + header lines, escaped, with EOLs */
    size_t max_body;         /* body bytes */
} hr_stomp_limits_t;

/* Defaults: 64 headers, 16 KiB of command and headers, 16 MiB of body. */
void hr_stomp_limits_default(hr_stomp_limits_t *l);

/* A parsed frame. Every header line is kept in order, repeats included (STOMP: the
 * first occurrence of a name wins; hr_stomp_header_get returns that one). */
typedef struct hr_stomp_frame {
    hr_stomp_cmd_t cmd;
    hr_slice_t cmd_text; /* the command as received */
    size_t nheaders;
    hr_stomp_header_t headers[HR_STOMP_MAX_HEADERS_CAP];
    hr_slice_t body; /* may contain NUL bytes when content-length was given */
    bool has_content_length;
} hr_stomp_frame_t;

typedef enum hr_stomp_result {
    HR_STOMP_FRAME = 0,    /* *out holds a frame; *used bytes were consumed */
    HR_STOMP_NEED_MORE,    /* no complete frame yet: keep the bytes, call again with more */
    HR_STOMP_HEARTBEAT,    /* only EOLs (heart-beats) were consumed (*used > 0), no frame */
    HR_STOMP_ERR_SYNTAX,   /* malformed: *errmsg says what */
    HR_STOMP_ERR_TOO_LARGE /* a limit was exceeded: *errmsg says which */
} hr_stomp_result_t;

/*
 * Parses at most one frame from data[0..len).
 *
 * EOLs (LF or CRLF) before a frame are heart-beats. They are skipped, and a FRAME's
 * *used counts them, the frame, and its NUL (not the EOLs that may follow the NUL: the
 * next call skips those). When EOLs were skipped but no frame is complete after them,
 * the result is HR_STOMP_HEARTBEAT with *used = the EOL bytes: drop them and call again
 * with the rest. With no EOL to skip and no complete frame, the result is
 * HR_STOMP_NEED_MORE and *used = 0.
 *
 * Lines end with LF or CRLF in every version (1.2 says so; 1.0/1.1 peers in the field
 * send CRLF too). A header line is split at its first ':'; a line without one, an empty
 * name and a NUL before the blank line are syntax errors; values are not trimmed.
 * Header names and values are unescaped per version: 1.0 none; 1.1 \n \c \\; 1.2 also
 * \r (an undefined escape is a syntax error); CONNECT, STOMP and CONNECTED frames are
 * never unescaped. A CR that does not end a line is kept as data in 1.0/1.1 and is a
 * syntax error in 1.2 (which escapes it). Commands are case-sensitive; an unknown one is a
 * syntax error. With content-length (the first one wins; digits only) the body is
 * exactly that many bytes followed by NUL; without, it ends at the first NUL.
 *
 * Limits (max_headers is capped at HR_STOMP_MAX_HEADERS_CAP) give HR_STOMP_ERR_TOO_LARGE
 * as soon as the bytes at hand prove them exceeded, even if the frame is incomplete, so a
 * caller never buffers more than about max_header_bytes + max_body per frame. The frames
 * and errors a caller gets never depend on how the bytes were split across calls.
 *
 * scratch receives unescaped values (its len is reset by the call; slices into it stay
 * valid until the next call that uses it); it grows only for frames with escapes, and if
 * it cannot grow the result is HR_STOMP_ERR_TOO_LARGE with *errmsg "out of memory".
 * Other slices point into data. *out is meaningful only on HR_STOMP_FRAME.
 * On NEED_MORE, *need_hint is a lower bound on the total bytes the frame needs (set once
 * the headers are complete and carry a content-length: body offset + length + 1), or 0
 * if unknown; it is 0 for every other result.
 * *errmsg is a short static string, fit for an ERROR frame's message header, on errors.
 */
hr_stomp_result_t hr_stomp_parse(const uint8_t *data, size_t len, hr_stomp_version_t v,
                                 const hr_stomp_limits_t *lim, hr_stomp_frame_t *out,
                                 hr_buf_t *scratch, size_t *used, size_t *need_hint,
                                 const char **errmsg);

/* The first header called name, or NULL. */
const hr_slice_t *hr_stomp_header_get(const hr_stomp_frame_t *f, const char *name);

/* The command's wire name ("MESSAGE"), or NULL for HR_STOMP_UNKNOWN. */
const char *hr_stomp_cmd_name(hr_stomp_cmd_t cmd);

/* Appends to b the escaped form of s[0..n) for a header value of version v in a frame
 * of command cmd (CONNECTED: never escaped). 0 or HR_ENOMEM. */
int hr_stomp_escape(hr_buf_t *b, hr_stomp_version_t v, hr_stomp_cmd_t cmd, const void *s, size_t n);

/* Appends a whole frame: command, headers (escaped per v and cmd), "content-length"
 * when with_length (always when the body contains a NUL), blank line, body, NUL.
 * The encoder owns content-length: headers named so in headers[] are skipped. Where
 * nothing is escaped (1.0; CONNECT, STOMP, CONNECTED) names must not hold ':' and
 * nothing may hold CR or LF; in 1.1 a value must not end with CR (read as CRLF).
 * 0 or HR_ENOMEM (b is then left as it was). */
int hr_stomp_encode(hr_buf_t *b, hr_stomp_version_t v, hr_stomp_cmd_t cmd,
                    const hr_stomp_header_t *headers, size_t nheaders, const void *body,
                    size_t body_len, bool with_length);

#endif
