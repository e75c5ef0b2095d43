/* Fuzz target for the frame codec (src/ws/ws_frame.c). The first byte picks the limits
 * (RSV1 allowed, max_payload); the rest is parsed as a stream of frames, once per role.
 * For each header parsed it checks the RFC 6455 §5.2/§5.5 invariants, that every
 * shorter prefix asks for more input, that re-encoding and re-parsing gives the same
 * fields, and that unmasking in two pieces and masking again restores the payload and
 * agrees with a byte-at-a-time XOR. Aborts on any violation. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "herald/error.h"
#include "ws/ws_frame.h"

static bool is_control(uint8_t op)
{
    return (op & 0x8) != 0;
}

static void check_header(const hr_ws_frame_header_t *h, const hr_ws_frame_limits_t *l)
{
    bool known = h->opcode <= 2 || (h->opcode >= 8 && h->opcode <= 0xA);
    if (!known || h->rsv2 || h->rsv3)
        abort();
    if (h->rsv1 && (!l->allow_rsv1 || is_control(h->opcode)))
        abort();
    if (is_control(h->opcode) && (!h->fin || h->payload_len > 125))
        abort();
    if (h->masked != (l->role == HR_WS_ROLE_SERVER))
        abort();
    if (h->payload_len >> 63)
        abort();
    if (l->max_payload && h->payload_len > l->max_payload)
        abort();
    if (h->close_code != 0)
        abort();
}

static void check_reencode(const hr_ws_frame_header_t *h, const hr_ws_frame_limits_t *l,
                           size_t used)
{
    uint8_t out[HR_WS_FRAME_HEADER_MAX];
    unsigned rsv =
        (h->rsv1 ? HR_WS_RSV1 : 0) | (h->rsv2 ? HR_WS_RSV2 : 0) | (h->rsv3 ? HR_WS_RSV3 : 0);
    size_t n = hr_ws_frame_encode_header(out, h->fin, rsv, h->opcode, h->payload_len,
                                         h->masked ? h->mask : NULL);
    /* Minimal encoding is never longer than what the peer sent. */
    if (n < 2 || n > HR_WS_FRAME_HEADER_MAX || n > used)
        abort();
    hr_ws_frame_header_t again;
    if (hr_ws_frame_parse_header(out, n, l, &again) != (ssize_t)n)
        abort();
    if (again.fin != h->fin || again.rsv1 != h->rsv1 || again.opcode != h->opcode ||
        again.masked != h->masked || again.payload_len != h->payload_len)
        abort();
    if (h->masked && memcmp(again.mask, h->mask, 4) != 0)
        abort();
}

static void check_mask(const uint8_t *payload, size_t n, const uint8_t mask[4], size_t split)
{
    if (n == 0)
        return;
    uint8_t *buf = malloc(n), *ref = malloc(n);
    if (!buf || !ref)
        abort();
    memcpy(buf, payload, n);
    for (size_t i = 0; i < n; i++)
        ref[i] = payload[i] ^ mask[i & 3];
    split %= n + 1;
    size_t k = hr_ws_mask(buf, split, mask, 0);
    if (k != (split & 3))
        abort();
    if (hr_ws_mask(buf + split, n - split, mask, k) != (n & 3))
        abort();
    if (memcmp(buf, ref, n) != 0)
        abort();
    hr_ws_mask(buf, n, mask, 0);
    if (memcmp(buf, payload, n) != 0)
        abort();
    free(buf);
    free(ref);
}

static void run(const uint8_t *data, size_t size, const hr_ws_frame_limits_t *l)
{
    size_t pos = 0;
    while (pos < size) {
        const uint8_t *p = data + pos;
        size_t avail = size - pos;
        hr_ws_frame_header_t h;
        ssize_t rc = hr_ws_frame_parse_header(p, avail, l, &h);
        if (rc == HR_EAGAIN) {
            if (avail >= HR_WS_FRAME_HEADER_MAX)
                abort();
            return;
        }
        if (rc == HR_EPROTO) {
            if (h.close_code != HR_WS_CLOSE_PROTOCOL_ERROR && h.close_code != HR_WS_CLOSE_TOO_BIG)
                abort();
            pos++; /* resynchronise one byte on, to reach more headers */
            continue;
        }
        if (rc < 2 || rc > HR_WS_FRAME_HEADER_MAX || (size_t)rc > avail)
            abort();
        check_header(&h, l);
        for (size_t i = 0; i < (size_t)rc; i++) {
            hr_ws_frame_header_t part;
            if (hr_ws_frame_parse_header(p, i, l, &part) != HR_EAGAIN)
                abort();
        }
        check_reencode(&h, l, (size_t)rc);
        size_t body = avail - (size_t)rc;
        if (h.payload_len < body)
            body = (size_t)h.payload_len;
        if (h.masked)
            check_mask(p + rc, body, h.mask, p[rc - 1]);
        pos += (size_t)rc + body;
    }
}

/* libFuzzer's entry point; declared here to satisfy -Wmissing-prototypes. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const uint64_t caps[4] = {0, 125, 1009, 65536};
    hr_ws_frame_limits_t l = {
        .allow_rsv1 = (data[0] & 1) != 0,
        .max_payload = caps[(data[0] >> 1) & 3],
    };
    l.role = HR_WS_ROLE_SERVER;
    run(data + 1, size - 1, &l);
    l.role = HR_WS_ROLE_CLIENT;
    run(data + 1, size - 1, &l);
    return 0;
}
