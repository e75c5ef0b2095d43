/* WebSocket frame codec (RFC 6455 §5.2 framing, §5.3 masking, §5.5 control frames,
 * §7.4 close codes). The parser validates each header byte as soon as it is available,
 * so a peer sending a reserved opcode or bad RSV bit is refused on its first byte rather
 * than after we have buffered a whole header. It is pure: no allocation, no I/O, no
 * pointers kept into the caller's buffer. It does not track message state
 * (continuation order, UTF-8, close payloads): that is ws_conn's job. */
#include <string.h>

#include "herald/error.h"
#include "ws/ws_frame.h"

static bool is_control(uint8_t opcode)
{
    return (opcode & 0x8) != 0;
}

static bool is_known_opcode(uint8_t opcode)
{
    switch (opcode) {
    case HR_WS_OP_CONT:
    case HR_WS_OP_TEXT:
    case HR_WS_OP_BINARY:
    case HR_WS_OP_CLOSE:
    case HR_WS_OP_PING:
    case HR_WS_OP_PONG:
        return true;
    default:
        return false;
    }
}

static ssize_t fail(hr_ws_frame_header_t *hdr, uint16_t close_code)
{
    hdr->close_code = close_code;
    return HR_EPROTO;
}

/* RFC 6455 §5.2: byte 0 is FIN, RSV1-3 and the opcode. */
static bool check_byte0(uint8_t b, const hr_ws_frame_limits_t *limits, hr_ws_frame_header_t *hdr)
{
    hdr->fin = (b & 0x80) != 0;
    hdr->rsv1 = (b & 0x40) != 0;
    hdr->rsv2 = (b & 0x20) != 0;
    hdr->rsv3 = (b & 0x10) != 0;
    hdr->opcode = b & 0x0F;
    if (!is_known_opcode(hdr->opcode))
        return false;
    /* RSV2/RSV3 belong to no extension we negotiate; RSV1 only to permessage-deflate,
     * which RFC 7692 §6 applies to data frames only. */
    if (hdr->rsv2 || hdr->rsv3)
        return false;
    if (hdr->rsv1 && (!limits->allow_rsv1 || is_control(hdr->opcode)))
        return false;
    /* RFC 6455 §5.5: control frames are never fragmented. */
    if (is_control(hdr->opcode) && !hdr->fin)
        return false;
    return true;
}

static uint64_t read_be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

ssize_t hr_ws_frame_parse_header(const uint8_t *buf, size_t len, const hr_ws_frame_limits_t *limits,
                                 hr_ws_frame_header_t *hdr)
{
    hdr->close_code = 0;
    if (len < 1)
        return HR_EAGAIN;
    if (!check_byte0(buf[0], limits, hdr))
        return fail(hdr, HR_WS_CLOSE_PROTOCOL_ERROR);
    if (len < 2)
        return HR_EAGAIN;

    hdr->masked = (buf[1] & 0x80) != 0;
    /* RFC 6455 §5.1: clients always mask, servers never do. */
    bool want_mask = limits->role == HR_WS_ROLE_SERVER;
    if (hdr->masked != want_mask)
        return fail(hdr, HR_WS_CLOSE_PROTOCOL_ERROR);
    uint8_t len7 = buf[1] & 0x7F;
    /* RFC 6455 §5.5: control payloads are at most 125 bytes, so a 126/127 marker is
     * already an error without reading the extended length. */
    if (is_control(hdr->opcode) && len7 > 125)
        return fail(hdr, HR_WS_CLOSE_PROTOCOL_ERROR);

    size_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
    size_t need = 2 + ext;
    if (len < need)
        return HR_EAGAIN;
    uint64_t plen = ext ? read_be(buf + 2, ext) : len7;
    /* RFC 6455 §5.2: the most significant bit of a 64-bit length must be 0. Longer
     * than minimal encodings are not rejected: the RFC says "must" of the sender, and
     * refusing them buys nothing. */
    if (plen >> 63)
        return fail(hdr, HR_WS_CLOSE_PROTOCOL_ERROR);
    hdr->payload_len = plen;
    if (limits->max_payload && plen > limits->max_payload)
        return fail(hdr, HR_WS_CLOSE_TOO_BIG);

    if (hdr->masked) {
        if (len < need + 4)
            return HR_EAGAIN;
        memcpy(hdr->mask, buf + need, 4);
        need += 4;
    } else {
        memset(hdr->mask, 0, 4);
    }
    return (ssize_t)need;
}

size_t hr_ws_frame_encode_header(uint8_t *out, bool fin, unsigned rsv, uint8_t opcode,
                                 uint64_t payload_len, const uint8_t *mask)
{
    out[0] = (uint8_t)((fin ? 0x80u : 0u) | ((rsv & 0x7u) << 4) | (opcode & 0x0Fu));
    uint8_t mbit = mask ? 0x80 : 0;
    size_t n;
    if (payload_len <= 125) {
        out[1] = (uint8_t)(mbit | payload_len);
        n = 2;
    } else if (payload_len <= 0xFFFF) {
        out[1] = mbit | 126;
        out[2] = (uint8_t)(payload_len >> 8);
        out[3] = (uint8_t)payload_len;
        n = 4;
    } else {
        out[1] = mbit | 127;
        for (int i = 0; i < 8; i++)
            out[2 + i] = (uint8_t)(payload_len >> (56 - 8 * i));
        n = 10;
    }
    if (mask) {
        memcpy(out + n, mask, 4);
        n += 4;
    }
    return n;
}

size_t hr_ws_mask(uint8_t *data, size_t len, const uint8_t mask[4], size_t offset)
{
    size_t k = offset & 3;
    size_t i = 0;
    /* Byte-wise until the data pointer is 8-aligned, so the word loop below does
     * aligned loads and stores even though memcpy would not require it. */
    while (i < len && ((uintptr_t)(data + i) & 7) != 0) {
        data[i++] ^= mask[k];
        k = (k + 1) & 3;
    }
    if (len - i >= 8) {
        /* The key laid out in memory order starting at position k: endian-neutral, and
         * since 8 is a multiple of 4 the key position is unchanged after each word. */
        uint8_t key[8];
        for (size_t j = 0; j < 8; j++)
            key[j] = mask[(k + j) & 3];
        uint64_t kw;
        memcpy(&kw, key, 8);
        for (; len - i >= 8; i += 8) {
            uint64_t w;
            memcpy(&w, data + i, 8);
            w ^= kw;
            memcpy(data + i, &w, 8);
        }
    }
    for (; i < len; i++) {
        data[i] ^= mask[k];
        k = (k + 1) & 3;
    }
    return k;
}

bool hr_ws_close_code_valid(uint16_t code)
{
    /* RFC 6455 §7.4.1-§7.4.2; 1004-1006 and 1015 are reserved for local use, 1012-1014
     * are registered with IANA and sent by real servers. */
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

size_t hr_ws_close_payload(uint8_t out[125], uint16_t code, const char *reason, size_t len)
{
    if (code == 0 || code == HR_WS_CLOSE_NO_STATUS)
        return 0;
    out[0] = (uint8_t)(code >> 8);
    out[1] = (uint8_t)code;
    if (len > 123)
        len = 123;
    if (len)
        memcpy(out + 2, reason, len);
    return 2 + len;
}
