/* Receive-side WebSocket state machine (see ws_conn.h).
 *
 * Bytes are processed as they arrive: a frame's payload is unmasked and, for an
 * uncompressed text message, UTF-8-checked chunk by chunk, so an invalid byte fails
 * the connection (1007) without waiting for the rest of the frame (RFC 6455 §8.1 "fail
 * fast"). The common case, a whole unfragmented frame inside one read, is delivered
 * straight from the caller's buffer with no copy.
 *
 * The state of a frame or message in progress is kept in a stack copy during a feed
 * and moved to the heap only if the read ends in the middle of one; it is freed when
 * the frame/message completes. Compressed messages are gathered whole and inflated at
 * the end into a per-thread scratch buffer: inflating in one call lets connections
 * without context takeover share one zlib stream per thread.
 */
#include <string.h>

#include "base/alloc.h"
#include "herald/error.h"
#include "herald/ws.h"
#include "ws/ws_conn.h"

typedef struct hr_ws_partial {
    /* frame in progress */
    hr_ws_frame_header_t hdr;
    uint64_t remaining;
    size_t mask_pos;
    bool in_payload;
    uint8_t hlen;
    uint8_t ctrl_len;
    /* data message in progress (msg_op 0: none) */
    uint8_t msg_op;
    bool msg_deflated;
    uint64_t msg_len;
    hr_buf_t msg;
    hr_utf8_t utf8;
    uint8_t hbuf[HR_WS_FRAME_HEADER_MAX];
    uint8_t ctrl[125];
} hr_ws_partial_t;

typedef struct hr_ws_inflate {
    hr_deflate_stream_t *stream;
    hr_buf_t *scratch;
    uint64_t max_frame; /* compressed frames may exceed max_message by this much */
    uint8_t bits;
    bool reset;
} hr_ws_inflate_t;

/* One feed's view: the reader plus the partial state being worked on. */
typedef struct feed_ctx {
    hr_ws_reader_t *r;
    hr_ws_partial_t *p;
    hr_ws_frame_limits_t limits;
} feed_ctx_t;

void hr_ws_reader_init(hr_ws_reader_t *r, hr_ws_role_t role, uint64_t max_message)
{
    memset(r, 0, sizeof(*r));
    r->role = (uint8_t)role;
    r->max_message = max_message > UINT32_MAX ? UINT32_MAX : (uint32_t)max_message;
}

int hr_ws_reader_set_deflate(hr_ws_reader_t *r, hr_deflate_stream_t *inflater, hr_buf_t *scratch,
                             uint8_t peer_window_bits, bool peer_no_context_takeover)
{
    if (!r->inflate && !(r->inflate = hr_malloc(sizeof(*r->inflate))))
        return HR_ENOMEM;
    r->inflate->stream = inflater;
    r->inflate->scratch = scratch;
    r->inflate->bits = peer_window_bits;
    r->inflate->reset = peer_no_context_takeover;
    r->inflate->max_frame =
        r->max_message ? (uint64_t)r->max_message + r->max_message / 256 + 64 : 0;
    return 0;
}

static void free_partial(hr_ws_partial_t *p)
{
    if (p) {
        hr_buf_deinit(&p->msg);
        hr_free(p);
    }
}

void hr_ws_reader_deinit(hr_ws_reader_t *r)
{
    free_partial(r->p);
    r->p = NULL;
    hr_free(r->inflate);
    r->inflate = NULL;
}

static bool partial_busy(const hr_ws_partial_t *p)
{
    return p->msg_op != 0 || p->in_payload || p->hlen != 0;
}

bool hr_ws_reader_busy(const hr_ws_reader_t *r)
{
    return r->p && partial_busy(r->p);
}

static ssize_t fail(feed_ctx_t *f, int err, uint16_t code)
{
    f->r->close_code = code;
    return err;
}

/* Sequence rules that need message state (RFC 6455 §5.4); the header parser has
 * already checked everything that one header alone can show. */
static int start_frame(feed_ctx_t *f)
{
    hr_ws_partial_t *p = f->p;
    hr_ws_frame_header_t *h = &p->hdr;
    p->remaining = h->payload_len;
    p->mask_pos = 0;
    p->in_payload = true;
    p->ctrl_len = 0;
    if (h->opcode >= HR_WS_OP_CLOSE)
        return 0;
    if (h->opcode == HR_WS_OP_CONT) {
        if (p->msg_op == 0 || h->rsv1)
            return fail(f, HR_EPROTO, HR_WS_CLOSE_PROTOCOL_ERROR);
    } else {
        if (p->msg_op != 0)
            return fail(f, HR_EPROTO, HR_WS_CLOSE_PROTOCOL_ERROR);
        p->msg_op = h->opcode;
        p->msg_deflated = h->rsv1;
        p->msg_len = 0;
        hr_utf8_init(&p->utf8);
    }
    /* A compressed message is bounded by its inflated size (checked when inflating);
     * its compressed bytes may exceed that by deflate's worst-case expansion. */
    uint64_t limit = p->msg_deflated ? f->r->inflate->max_frame : f->r->max_message;
    if (limit && h->payload_len > limit - p->msg_len)
        return fail(f, HR_EMSGSIZE, HR_WS_CLOSE_TOO_BIG);
    p->msg_len += h->payload_len;
    return 0;
}

static int inflate_msg(feed_ctx_t *f, const uint8_t *in, size_t len)
{
    hr_ws_inflate_t *inf = f->r->inflate;
    inf->scratch->len = 0;
    int rc = hr_deflate_inflate(inf->stream, inf->bits, inf->reset, in, len, inf->scratch,
                                f->r->max_message ? f->r->max_message : SIZE_MAX);
    if (rc == HR_EMSGSIZE)
        return fail(f, rc, HR_WS_CLOSE_TOO_BIG);
    if (rc == HR_ENOMEM)
        return fail(f, rc, HR_WS_CLOSE_INTERNAL_ERROR);
    if (rc)
        return fail(f, HR_EPROTO, HR_WS_CLOSE_INVALID_PAYLOAD);
    return 0;
}

/* A whole message is in data[0..len): inflate if needed, check UTF-8, deliver. */
static int deliver(feed_ctx_t *f, uint8_t *data, size_t len, bool utf8_checked,
                   const hr_ws_reader_cb_t *cb, void *ud)
{
    hr_ws_partial_t *p = f->p;
    uint8_t op = p->msg_op;
    if (p->msg_deflated) {
        int rc = inflate_msg(f, data, len);
        if (rc)
            return rc;
        data = f->r->inflate->scratch->data;
        len = f->r->inflate->scratch->len;
        utf8_checked = false;
    }
    if (op == HR_WS_OP_TEXT && !utf8_checked && !hr_utf8_valid(data, len))
        return fail(f, HR_EPROTO, HR_WS_CLOSE_INVALID_PAYLOAD);
    p->msg_op = 0;
    return cb->on_message(ud, op, data ? data : (uint8_t *)"", len) ? 1 : 0;
}

static int finish_control(feed_ctx_t *f, const hr_ws_reader_cb_t *cb, void *ud)
{
    hr_ws_partial_t *pp = f->p;
    uint8_t *p = pp->ctrl;
    size_t n = pp->ctrl_len;
    uint16_t code = 0;
    if (pp->hdr.opcode == HR_WS_OP_CLOSE) {
        /* RFC 6455 §5.5.1: empty, or a 2-byte code then UTF-8 reason. */
        code = HR_WS_CLOSE_NO_STATUS;
        if (n == 1)
            return fail(f, HR_EPROTO, HR_WS_CLOSE_PROTOCOL_ERROR);
        if (n >= 2) {
            code = (uint16_t)(p[0] << 8 | p[1]);
            if (!hr_ws_close_code_valid(code))
                return fail(f, HR_EPROTO, HR_WS_CLOSE_PROTOCOL_ERROR);
            if (!hr_utf8_valid(p + 2, n - 2))
                return fail(f, HR_EPROTO, HR_WS_CLOSE_INVALID_PAYLOAD);
            p += 2;
            n -= 2;
        }
    }
    return cb->on_control(ud, pp->hdr.opcode, code, p, n) ? 1 : 0;
}

/* The header parser reports every violation as HR_EPROTO with its close code; a
 * payload above the limit is this module's HR_EMSGSIZE. */
static ssize_t header_error(feed_ctx_t *f, ssize_t n)
{
    uint16_t code = f->p->hdr.close_code;
    return fail(f, code == HR_WS_CLOSE_TOO_BIG ? HR_EMSGSIZE : (int)n, code);
}

/* Consumes header bytes; returns bytes used, 0 if more are needed (all were taken), or
 * a negative error. */
static ssize_t take_header(feed_ctx_t *f, const uint8_t *buf, size_t len)
{
    hr_ws_partial_t *p = f->p;
    ssize_t n;
    if (p->hlen == 0) {
        n = hr_ws_frame_parse_header(buf, len, &f->limits, &p->hdr);
        if (n > 0)
            return n;
        if (n != HR_EAGAIN)
            return header_error(f, n);
        memcpy(p->hbuf, buf, len);
        p->hlen = (uint8_t)len;
        return 0;
    }
    size_t take = sizeof(p->hbuf) - p->hlen;
    if (take > len)
        take = len;
    memcpy(p->hbuf + p->hlen, buf, take);
    size_t had = p->hlen;
    n = hr_ws_frame_parse_header(p->hbuf, had + take, &f->limits, &p->hdr);
    if (n == HR_EAGAIN) {
        p->hlen = (uint8_t)(had + take);
        return 0;
    }
    if (n < 0)
        return header_error(f, n);
    p->hlen = 0;
    return n - (ssize_t)had;
}

static ssize_t run(feed_ctx_t *f, uint8_t *buf, size_t len, const hr_ws_reader_cb_t *cb, void *ud)
{
    hr_ws_partial_t *p = f->p;
    size_t pos = 0;
    while (pos < len) {
        if (!p->in_payload) {
            ssize_t n = take_header(f, buf + pos, len - pos);
            if (n < 0)
                return n;
            if (n == 0)
                return (ssize_t)len;
            pos += (size_t)n;
            int rc = start_frame(f);
            if (rc)
                return rc;
        }
        hr_ws_frame_header_t *h = &p->hdr;
        size_t avail = len - pos;
        if (avail > p->remaining)
            avail = (size_t)p->remaining;
        uint8_t *d = buf + pos;
        bool whole = p->mask_pos == 0 && avail == h->payload_len;
        if (h->masked)
            p->mask_pos = hr_ws_mask(d, avail, h->mask, p->mask_pos);
        pos += avail;
        p->remaining -= avail;
        int rc = 0;
        if (h->opcode >= HR_WS_OP_CLOSE) {
            memcpy(p->ctrl + p->ctrl_len, d, avail);
            p->ctrl_len += (uint8_t)avail;
            if (p->remaining == 0) {
                p->in_payload = false;
                rc = finish_control(f, cb, ud);
            }
        } else if (whole && h->fin && p->msg.len == 0 && h->opcode != HR_WS_OP_CONT) {
            /* Fast path: a whole single-frame message in this read, no copy. */
            p->in_payload = false;
            rc = deliver(f, d, avail, false, cb, ud);
        } else {
            if (p->msg_op == HR_WS_OP_TEXT && !p->msg_deflated &&
                hr_utf8_feed(&p->utf8, d, avail) != 0)
                return fail(f, HR_EPROTO, HR_WS_CLOSE_INVALID_PAYLOAD);
            /* Size the buffer for the whole frame at once (up to 1 MiB ahead of the bytes,
             * so a peer announcing a huge frame cannot make us commit memory early). */
            if (p->msg.cap - p->msg.len < p->remaining + avail) {
                uint64_t want = p->remaining + avail;
                if (want > (1u << 20))
                    want = avail > (1u << 20) ? avail : (1u << 20);
                if (hr_buf_reserve(&p->msg, (size_t)want))
                    return fail(f, HR_ENOMEM, HR_WS_CLOSE_INTERNAL_ERROR);
            }
            if (hr_buf_append(&p->msg, d, avail))
                return fail(f, HR_ENOMEM, HR_WS_CLOSE_INTERNAL_ERROR);
            if (p->remaining == 0) {
                p->in_payload = false;
                if (h->fin) {
                    if (p->msg_op == HR_WS_OP_TEXT && !p->msg_deflated &&
                        !hr_utf8_complete(&p->utf8))
                        return fail(f, HR_EPROTO, HR_WS_CLOSE_INVALID_PAYLOAD);
                    rc = deliver(f, p->msg.data, p->msg.len, true, cb, ud);
                    if (rc >= 0)
                        hr_buf_deinit(&p->msg);
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

ssize_t hr_ws_reader_feed(hr_ws_reader_t *r, uint8_t *buf, size_t len, const hr_ws_reader_cb_t *cb,
                          void *ud)
{
    hr_ws_partial_t local;
    feed_ctx_t f = {.r = r, .p = r->p};
    f.limits.role = (hr_ws_role_t)r->role;
    f.limits.allow_rsv1 = r->inflate != NULL;
    f.limits.max_payload = r->inflate ? r->inflate->max_frame : r->max_message;
    if (!f.p) {
        /* Between messages: work on the stack; most reads end on a frame boundary. */
        memset(&local, 0, offsetof(hr_ws_partial_t, hbuf));
        f.p = &local;
    }
    ssize_t rc = run(&f, buf, len, cb, ud);
    if (rc < 0 || !partial_busy(f.p)) {
        if (f.p == r->p) {
            free_partial(r->p);
            r->p = NULL;
        } else {
            hr_buf_deinit(&local.msg);
        }
        return rc;
    }
    if (f.p == &local) {
        /* The read ended mid-frame or mid-message: keep the state. */
        r->p = hr_malloc(sizeof(*r->p));
        if (!r->p) {
            hr_buf_deinit(&local.msg);
            r->close_code = HR_WS_CLOSE_INTERNAL_ERROR;
            return HR_ENOMEM;
        }
        memcpy(r->p, &local, sizeof(local));
    }
    return rc;
}
