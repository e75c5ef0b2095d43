/* Fuzz target for the WebSocket receive state machine (src/ws/ws_conn.c), the part of
 * the server that sees every byte a client sends after the handshake.
 *
 * Input layout: byte 0 picks the options (permessage-deflate on/off and its context
 * mode, a small or large max_message), byte 1 the chunk size; the rest is the client's
 * byte stream, fed in chunks of that size (a new buffer each time, as the receive
 * buffer is reused). Invariants: a text message is valid UTF-8, no message exceeds
 * max_message, a control payload is at most 125 bytes, a close code is one a peer may
 * send, and after an error the reader reports a close code of 1002, 1007, 1009 or
 * 1011. Aborts on any violation. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "herald/error.h"
#include "herald/ws.h"
#include "ws/utf8.h"
#include "ws/ws_conn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct fuzz_state {
    uint64_t max_message;
    size_t messages;
} fuzz_state_t;

static int on_message(void *ud, uint8_t opcode, uint8_t *msg, size_t len)
{
    fuzz_state_t *st = ud;
    if (opcode != HR_WS_OP_TEXT && opcode != HR_WS_OP_BINARY)
        abort();
    if (len > st->max_message)
        abort();
    if (opcode == HR_WS_OP_TEXT && !hr_utf8_valid(msg, len))
        abort();
    st->messages++;
    return 0;
}

static int on_control(void *ud, uint8_t opcode, uint16_t code, uint8_t *payload, size_t len)
{
    if (len > 125)
        abort();
    if (opcode == HR_WS_OP_CLOSE) {
        if (code != HR_WS_CLOSE_NO_STATUS && !hr_ws_close_code_valid(code))
            abort();
        if (!hr_utf8_valid(payload, len))
            abort();
        return 1; /* the connection stops reading after a close */
    }
    if (opcode != HR_WS_OP_PING && opcode != HR_WS_OP_PONG)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t opts = data[0];
    size_t chunk = (size_t)data[1] + 1;
    data += 2;
    size -= 2;

    fuzz_state_t st = {.max_message = (opts & 1) ? 64 * 1024 : 300};
    hr_ws_reader_t r;
    hr_ws_reader_init(&r, HR_WS_ROLE_SERVER, st.max_message);
    hr_deflate_stream_t inflater;
    memset(&inflater, 0, sizeof(inflater));
    hr_buf_t scratch;
    hr_buf_init(&scratch);
    if (opts & 2)
        hr_ws_reader_set_deflate(&r, &inflater, &scratch, 15, (opts & 4) != 0);

    static const hr_ws_reader_cb_t cb = {on_message, on_control};
    for (size_t off = 0; off < size;) {
        size_t n = size - off < chunk ? size - off : chunk;
        uint8_t *buf = malloc(n);
        memcpy(buf, data + off, n);
        ssize_t rc = hr_ws_reader_feed(&r, buf, n, &cb, &st);
        free(buf);
        if (rc < 0) {
            uint16_t c = r.close_code;
            if (c != 1002 && c != 1007 && c != 1009 && c != 1011)
                abort();
            if ((rc == HR_EMSGSIZE) != (c == 1009))
                abort();
            break;
        }
        if ((size_t)rc < n)
            break; /* a close frame ended the stream */
        off += n;
    }
    hr_ws_reader_deinit(&r);
    hr_deflate_stream_deinit(&inflater);
    hr_buf_deinit(&scratch);
    return 0;
}
