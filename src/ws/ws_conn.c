/* Receive-side WebSocket state machine (see ws_conn.h).
 *
 * Bytes are processed as they arrive: a frame's payload is unmasked and, for an
 * uncompressed text message, UTF-8-checked chunk by chunk, so an invalid byte fails
 * the connection (1007) without waiting for the rest of the frame (RFC 6455 §8.1 "fail
 * fast"). The common case, a whole unfragmented frame inside one read, is delivered
 * straight from the caller's buffer with no copy. Fragmented or split messages are
 * gathered in r->msg, which is freed as soon as the message is delivered, so an idle
 * connection holds no buffer. Compressed messages are gathered whole and inflated at
 * the end into a per-thread scratch buffer: inflating in one call lets connections
 * without context takeover share one zlib stream per thread.
 */
#include <string.h>

#include "herald/error.h"
#include "herald/ws.h"
#include "ws/ws_conn.h"

void hr_ws_reader_init(hr_ws_reader_t *r, hr_ws_role_t role, uint64_t max_message)
{
    memset(r, 0, offsetof(hr_ws_reader_t, ctrl));
    r->limits.role = role;
    r->limits.max_payload = max_message;
    r->max_message = max_message;
    hr_buf_init(&r->msg);
}

void hr_ws_reader_set_deflate(hr_ws_reader_t *r, hr_deflate_stream_t *inflater, hr_buf_t *scratch,
                              uint8_t peer_window_bits, bool peer_no_context_takeover)
{
    r->limits.allow_rsv1 = true;
    if (r->max_message)
        r->limits.max_payload = r->max_message + r->max_message / 256 + 64;
    r->inflater = inflater;
    r->scratch = scratch;
    r->inflate_bits = peer_window_bits;
    r->inflate_reset = peer_no_context_takeover;
}

void hr_ws_reader_deinit(hr_ws_reader_t *r)
{
    hr_buf_deinit(&r->msg);
}

bool hr_ws_reader_busy(const hr_ws_reader_t *r)
{
    return r->msg_op != 0 || r->in_payload || r->hlen != 0;
}

static ssize_t fail(hr_ws_reader_t *r, int err, uint16_t code)
{
    r->close_code = code;
    return err;
}

/* Sequence rules that need message state (RFC 6455 §5.4); the header parser has
 * already checked everything that one header alone can show. */
static int start_frame(hr_ws_reader_t *r)
{
    hr_ws_frame_header_t *h = &r->hdr;
    r->remaining = h->payload_len;
    r->mask_pos = 0;
    r->in_payload = true;
    r->ctrl_len = 0;
    if (h->opcode >= HR_WS_OP_CLOSE)
        return 0;
    if (h->opcode == HR_WS_OP_CONT) {
        if (r->msg_op == 0 || h->rsv1)
            return fail(r, HR_EPROTO, HR_WS_CLOSE_PROTOCOL_ERROR);
    } else {
        if (r->msg_op != 0)
            return fail(r, HR_EPROTO, HR_WS_CLOSE_PROTOCOL_ERROR);
        r->msg_op = h->opcode;
        r->msg_deflated = h->rsv1;
        r->msg_len = 0;
        hr_utf8_init(&r->utf8);
    }
    /* A compressed message is bounded by its inflated size (checked when inflating);
     * its compressed bytes may exceed that by deflate's worst-case expansion. */
    uint64_t limit = r->msg_deflated ? r->limits.max_payload : r->max_message;
    if (limit && h->payload_len > limit - r->msg_len)
        return fail(r, HR_EMSGSIZE, HR_WS_CLOSE_TOO_BIG);
    r->msg_len += h->payload_len;
    return 0;
}

static int inflate_msg(hr_ws_reader_t *r, const uint8_t *in, size_t len)
{
    r->scratch->len = 0;
    int rc = hr_deflate_inflate(r->inflater, r->inflate_bits, r->inflate_reset, in, len, r->scratch,
                                r->max_message ? r->max_message : SIZE_MAX);
    if (rc == HR_EMSGSIZE)
        return fail(r, rc, HR_WS_CLOSE_TOO_BIG);
    if (rc == HR_ENOMEM)
        return fail(r, rc, HR_WS_CLOSE_INTERNAL_ERROR);
    if (rc)
        return fail(r, HR_EPROTO, HR_WS_CLOSE_INVALID_PAYLOAD);
    return 0;
}

/* A whole message is in data[0..len): inflate if needed, check UTF-8, deliver. */
static int deliver(hr_ws_reader_t *r, uint8_t *data, size_t len, bool utf8_checked,
                   const hr_ws_reader_cb_t *cb, void *ud)
{
    uint8_t op = r->msg_op;
    if (r->msg_deflated) {
        int rc = inflate_msg(r, data, len);
        if (rc)
            return rc;
        data = r->scratch->data;
        len = r->scratch->len;
        utf8_checked = false;
    }
    if (op == HR_WS_OP_TEXT && !utf8_checked && !hr_utf8_valid(data, len))
        return fail(r, HR_EPROTO, HR_WS_CLOSE_INVALID_PAYLOAD);
    r->msg_op = 0;
    return cb->on_message(ud, op, data ? data : (uint8_t *)"", len) ? 1 : 0;
}

static int finish_control(hr_ws_reader_t *r, const hr_ws_reader_cb_t *cb, void *ud)
{
    uint8_t *p = r->ctrl;
    size_t n = r->ctrl_len;
    uint16_t code = 0;
    if (r->hdr.opcode == HR_WS_OP_CLOSE) {
        /* RFC 6455 §5.5.1: empty, or a 2-byte code then UTF-8 reason. */
        code = HR_WS_CLOSE_NO_STATUS;
        if (n == 1)
            return fail(r, HR_EPROTO, HR_WS_CLOSE_PROTOCOL_ERROR);
        if (n >= 2) {
            code = (uint16_t)(p[0] << 8 | p[1]);
            if (!hr_ws_close_code_valid(code))
                return fail(r, HR_EPROTO, HR_WS_CLOSE_PROTOCOL_ERROR);
            if (!hr_utf8_valid(p + 2, n - 2))
                return fail(r, HR_EPROTO, HR_WS_CLOSE_INVALID_PAYLOAD);
            p += 2;
            n -= 2;
        }
    }
    return cb->on_control(ud, r->hdr.opcode, code, p, n) ? 1 : 0;
}

/* The header parser reports every violation as HR_EPROTO with its close code; a
 * payload above the limit is this module's HR_EMSGSIZE. */
static ssize_t header_error(hr_ws_reader_t *r, ssize_t n)
{
    uint16_t code = r->hdr.close_code;
    return fail(r, code == HR_WS_CLOSE_TOO_BIG ? HR_EMSGSIZE : (int)n, code);
}

/* Consumes header bytes; returns bytes used, 0 if more are needed (all were taken), or
 * a negative error. */
static ssize_t take_header(hr_ws_reader_t *r, const uint8_t *buf, size_t len)
{
    ssize_t n;
    if (r->hlen == 0) {
        n = hr_ws_frame_parse_header(buf, len, &r->limits, &r->hdr);
        if (n > 0)
            return n;
        if (n != HR_EAGAIN)
            return header_error(r, n);
        memcpy(r->hbuf, buf, len);
        r->hlen = (uint8_t)len;
        return 0;
    }
    size_t take = sizeof(r->hbuf) - r->hlen;
    if (take > len)
        take = len;
    memcpy(r->hbuf + r->hlen, buf, take);
    size_t had = r->hlen;
    n = hr_ws_frame_parse_header(r->hbuf, had + take, &r->limits, &r->hdr);
    if (n == HR_EAGAIN) {
        r->hlen = (uint8_t)(had + take);
        return 0;
    }
    if (n < 0)
        return header_error(r, n);
    r->hlen = 0;
    return n - (ssize_t)had;
}

ssize_t hr_ws_reader_feed(hr_ws_reader_t *r, uint8_t *buf, size_t len, const hr_ws_reader_cb_t *cb,
                          void *ud)
{
    size_t pos = 0;
    while (pos < len) {
        if (!r->in_payload) {
            ssize_t n = take_header(r, buf + pos, len - pos);
            if (n < 0)
                return n;
            if (n == 0)
                return (ssize_t)len;
            pos += (size_t)n;
            int rc = start_frame(r);
            if (rc)
                return rc;
        }
        hr_ws_frame_header_t *h = &r->hdr;
        size_t avail = len - pos;
        if (avail > r->remaining)
            avail = (size_t)r->remaining;
        uint8_t *p = buf + pos;
        bool whole = r->mask_pos == 0 && avail == h->payload_len;
        if (h->masked)
            r->mask_pos = hr_ws_mask(p, avail, h->mask, r->mask_pos);
        pos += avail;
        r->remaining -= avail;
        int rc = 0;
        if (h->opcode >= HR_WS_OP_CLOSE) {
            memcpy(r->ctrl + r->ctrl_len, p, avail);
            r->ctrl_len += (uint8_t)avail;
            if (r->remaining == 0) {
                r->in_payload = false;
                rc = finish_control(r, cb, ud);
            }
        } else if (whole && h->fin && r->msg.len == 0 && h->opcode != HR_WS_OP_CONT) {
            /* Fast path: a whole single-frame message in this read, no copy. */
            r->in_payload = false;
            rc = deliver(r, p, avail, false, cb, ud);
        } else {
            if (r->msg_op == HR_WS_OP_TEXT && !r->msg_deflated &&
                hr_utf8_feed(&r->utf8, p, avail) != 0)
                return fail(r, HR_EPROTO, HR_WS_CLOSE_INVALID_PAYLOAD);
            if (hr_buf_append(&r->msg, p, avail))
                return fail(r, HR_ENOMEM, HR_WS_CLOSE_INTERNAL_ERROR);
            if (r->remaining == 0) {
                r->in_payload = false;
                if (h->fin) {
                    if (r->msg_op == HR_WS_OP_TEXT && !r->msg_deflated &&
                        !hr_utf8_complete(&r->utf8))
                        return fail(r, HR_EPROTO, HR_WS_CLOSE_INVALID_PAYLOAD);
                    rc = deliver(r, r->msg.data, r->msg.len, true, cb, ud);
                    if (rc >= 0)
                        hr_buf_deinit(&r->msg);
                }
            }
        }
        if (rc < 0)
            return rc;
        if (rc > 0)
            return (ssize_t)pos;
    }
    return (ssize_t)pos;
}
