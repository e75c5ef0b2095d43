#ifndef HR_WS_CONN_H
#define HR_WS_CONN_H

/* The receive side of a WebSocket connection as a pure state machine: bytes in,
 * messages and control frames out through callbacks. Reassembles fragments, enforces
 * the frame sequence rules, validates UTF-8 as bytes arrive (fail fast), checks close
 * frames, and inflates permessage-deflate messages. No I/O. RFC 6455 §5.4-5.6, §7.4,
 * §8.1; RFC 7692 §6.
 *
 * Memory: an idle reader is 24 bytes. The state of a partly received frame or message
 * lives in a block allocated when a read ends mid-frame or mid-message and freed when
 * it completes, so only connections that are in the middle of something pay for it. */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/buf.h"
#include "ws/deflate.h"
#include "ws/utf8.h"
#include "ws/ws_frame.h"

/*
 * Callbacks; data is unmasked, mutable, and borrowed for the duration of the call.
 * A callback returns 0 to go on, or non-zero to make hr_ws_reader_feed return at once
 * (for example because the connection was closed).
 */
typedef struct hr_ws_reader_cb {
    /* A complete text (valid UTF-8) or binary message. */
    int (*on_message)(void *ud, uint8_t opcode, uint8_t *data, size_t len);
    /* A ping or pong (payload ≤ 125 bytes), or a valid close: for a close, data/len is
     * the reason and code is the status (1005 when the frame had no payload). */
    int (*on_control)(void *ud, uint8_t opcode, uint16_t code, uint8_t *data, size_t len);
} hr_ws_reader_cb_t;

struct hr_ws_partial;
struct hr_ws_inflate;

typedef struct hr_ws_reader {
    struct hr_ws_partial *p;       /* NULL while between frames and messages */
    struct hr_ws_inflate *inflate; /* NULL unless permessage-deflate is on */
    uint32_t max_message;          /* 0: no limit; larger limits are capped at 4 GiB - 1 */
    uint16_t close_code;           /* after an error: the code to send */
    uint8_t role;                  /* hr_ws_role_t */
} hr_ws_reader_t;

/* role: whose frames we parse; max_message bounds a message (and a frame). */
void hr_ws_reader_init(hr_ws_reader_t *r, hr_ws_role_t role, uint64_t max_message);
/* Enables RSV1 / inflation with the agreed parameters (we are role's side). A compressed
 * message is limited by its inflated size; its frames may exceed max_message by deflate's
 * worst-case expansion (max_message / 256 + 64). inflater and scratch (where inflated
 * messages go) must outlive the reader. Returns 0 or HR_ENOMEM. */
int hr_ws_reader_set_deflate(hr_ws_reader_t *r, hr_deflate_stream_t *inflater, hr_buf_t *scratch,
                             uint8_t peer_window_bits, bool peer_no_context_takeover);
/* Frees the partial state and the deflate settings. */
void hr_ws_reader_deinit(hr_ws_reader_t *r);

/*
 * Feeds buf[0..len), which is unmasked in place. Returns the number of bytes consumed
 * (len, or less if a callback returned non-zero), or a negative error with
 * r->close_code set to the close code to send: HR_EPROTO (1002, or 1007 for invalid
 * UTF-8 or corrupt compressed data), HR_EMSGSIZE (1009), HR_ENOMEM (1011). After an
 * error the only valid call is hr_ws_reader_deinit.
 */
ssize_t hr_ws_reader_feed(hr_ws_reader_t *r, uint8_t *buf, size_t len, const hr_ws_reader_cb_t *cb,
                          void *ud);

/* True while a message or frame is partly received (the reader holds memory). */
bool hr_ws_reader_busy(const hr_ws_reader_t *r);

#endif
