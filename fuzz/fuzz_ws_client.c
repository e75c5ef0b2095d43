/* Fuzz target for the client role of the WebSocket receive state machine
 * (src/ws/ws_conn.c as src/client/ws_client.c sets it up: HR_WS_ROLE_CLIENT, unmasked
 * frames from the server, permessage-deflate with the server's window bits and
 * context-takeover choice), the part of `herald client`, `herald pubsub` and `herald
 * bench` that reads every byte a server sends.
 *
 * Input layout: byte 0 picks the options (bit 0: max_message 64 KiB or 300; bit 1:
 * permessage-deflate; bit 2: server_no_context_takeover; bits 3-5: server_max_window_bits
 * 8..15), byte 1 the chunk size; the rest is the server's byte stream. It is read twice
 * by fresh readers: in chunks of that size (a new buffer each time, as the receive buffer
 * is reused) and in one piece. Invariants: a text message is valid UTF-8, no message
 * exceeds max_message, a control payload is at most 125 bytes, a close code is one a
 * peer may send; a stream that starts with a masked frame fails before delivering
 * anything (a server must not mask, RFC 6455 §5.1); an error reports a close code of
 * 1002, 1007, 1009 or 1011; and both reads agree exactly (the same messages and control
 * frames, the same ending, the same close code). Aborts on any violation. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "herald/error.h"
#include "herald/ws.h"
#include "ws/utf8.h"
#include "ws/ws_conn.h"
#include "ws/ws_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef enum ending { END_DATA, END_CLOSE, END_ERROR } ending_t;

/* What one read of the stream produced: every event folded into a hash. */
typedef struct outcome {
    uint64_t max_message;
    uint64_t hash;
    size_t events;
    ending_t end;
    ssize_t err;
    uint16_t close_code; /* after an error */
    bool busy;           /* END_DATA: the reader holds a partial frame or message */
    bool closed;         /* a close frame was delivered */
} outcome_t;

static void mix(outcome_t *o, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        o->hash ^= b[i];
        o->hash *= 0x100000001b3ull; /* FNV-1a 64 */
    }
}

static void record(outcome_t *o, uint8_t opcode, uint16_t code, const uint8_t *payload, size_t len)
{
    uint64_t n = len;
    mix(o, &opcode, 1);
    mix(o, &code, sizeof(code));
    mix(o, &n, sizeof(n));
    mix(o, payload, len);
    o->events++;
}

static int on_message(void *ud, uint8_t opcode, uint8_t *msg, size_t len)
{
    outcome_t *o = ud;
    if (opcode != HR_WS_OP_TEXT && opcode != HR_WS_OP_BINARY)
        abort();
    if (len > o->max_message)
        abort();
    if (opcode == HR_WS_OP_TEXT && !hr_utf8_valid(msg, len))
        abort();
    record(o, opcode, 0, msg, len);
    return 0;
}

static int on_control(void *ud, uint8_t opcode, uint16_t code, uint8_t *payload, size_t len)
{
    outcome_t *o = ud;
    if (len > 125)
        abort();
    if (opcode == HR_WS_OP_CLOSE) {
        if (code != HR_WS_CLOSE_NO_STATUS && !hr_ws_close_code_valid(code))
            abort();
        if (!hr_utf8_valid(payload, len))
            abort();
        record(o, opcode, code, payload, len);
        o->closed = true;
        return 1; /* as the client: answer the close and stop reading */
    }
    if (opcode != HR_WS_OP_PING && opcode != HR_WS_OP_PONG)
        abort();
    record(o, opcode, 0, payload, len);
    return 0;
}

static const hr_ws_reader_cb_t reader_cb = {on_message, on_control};

/* Reads stream[0..size) with a fresh client-role reader, chunk bytes at a time. */
static void read_stream(uint8_t opts, const uint8_t *stream, size_t size, size_t chunk,
                        outcome_t *o)
{
    memset(o, 0, sizeof(*o));
    o->max_message = (opts & 1) ? 64 * 1024 : 300;
    o->hash = 0xcbf29ce484222325ull;
    hr_ws_reader_t r;
    hr_ws_reader_init(&r, HR_WS_ROLE_CLIENT, o->max_message);
    hr_deflate_stream_t inflater;
    memset(&inflater, 0, sizeof(inflater));
    hr_buf_t scratch;
    hr_buf_init(&scratch);
    if ((opts & 2) &&
        hr_ws_reader_set_deflate(&r, &inflater, &scratch, (uint8_t)(8 + ((opts >> 3) & 7)),
                                 (opts & 4) != 0) != 0)
        abort();

    o->end = END_DATA;
    for (size_t off = 0; off < size;) {
        size_t n = size - off < chunk ? size - off : chunk;
        uint8_t *buf = malloc(n);
        if (!buf)
            abort();
        memcpy(buf, stream + off, n);
        ssize_t rc = hr_ws_reader_feed(&r, buf, n, &reader_cb, o);
        free(buf);
        if (rc < 0) {
            uint16_t c = r.close_code;
            if (c != 1002 && c != 1007 && c != 1009 && c != 1011)
                abort();
            if ((rc == HR_EMSGSIZE) != (c == 1009))
                abort();
            o->end = END_ERROR;
            o->err = rc;
            o->close_code = c;
            break;
        }
        if ((size_t)rc > n || ((size_t)rc < n && !o->closed))
            abort(); /* only a close stops the reader early */
        if (o->closed) {
            o->end = END_CLOSE; /* the close may also have been the chunk's last byte */
            break;
        }
        off += n;
    }
    if (o->end == END_DATA)
        o->busy = hr_ws_reader_busy(&r);
    hr_ws_reader_deinit(&r);
    hr_deflate_stream_deinit(&inflater);
    hr_buf_deinit(&scratch);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t opts = data[0];
    size_t chunk = (size_t)data[1] + 1;
    data += 2;
    size -= 2;

    outcome_t pieces, whole;
    read_stream(opts, data, size, chunk, &pieces);
    read_stream(opts, data, size, size ? size : 1, &whole);
    if (pieces.events != whole.events || pieces.hash != whole.hash || pieces.end != whole.end ||
        pieces.err != whole.err || pieces.close_code != whole.close_code ||
        pieces.busy != whole.busy)
        abort();
    if (pieces.end == END_CLOSE && pieces.events == 0)
        abort();

    /* A first frame with the MASK bit (a header a server-role parser accepts as masked)
     * must fail the client before anything is delivered. */
    hr_ws_frame_limits_t l = {.role = HR_WS_ROLE_SERVER, .allow_rsv1 = true};
    hr_ws_frame_header_t h;
    if (hr_ws_frame_parse_header(data, size, &l, &h) > 0 && h.masked &&
        (whole.end != END_ERROR || whole.events != 0))
        abort();
    return 0;
}
