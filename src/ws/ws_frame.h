#ifndef HR_WS_FRAME_H
#define HR_WS_FRAME_H

/* Pure WebSocket frame codec (RFC 6455 §5.2): parses frame headers, unmasks payloads,
 * encodes headers. No allocation, no I/O, no pointers kept into caller buffers. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "herald/ws.h"

typedef struct hr_ws_frame_header {
    bool fin;
    bool rsv1, rsv2, rsv3;
    uint8_t opcode; /* HR_WS_OP_* */
    bool masked;
    uint8_t mask[4]; /* valid when masked */
    uint64_t payload_len;
    uint16_t close_code; /* set on HR_EPROTO: the close code the peer must receive */
} hr_ws_frame_header_t;

typedef enum hr_ws_role {
    HR_WS_ROLE_SERVER = 0, /* we are the server: frames from the peer must be masked */
    HR_WS_ROLE_CLIENT = 1, /* we are the client: frames from the peer must not be masked */
} hr_ws_role_t;

typedef struct hr_ws_frame_limits {
    hr_ws_role_t role;
    bool allow_rsv1;      /* permessage-deflate negotiated: RSV1 permitted on data frames */
    uint64_t max_payload; /* frames with a longer payload fail with 1009; 0 = no limit */
} hr_ws_frame_limits_t;

/*
 * Parses one frame header from buf[0..len).
 *
 * Returns the header length (2..14) and fills *hdr, HR_EAGAIN if more bytes are
 * needed, or HR_EPROTO with hdr->close_code set to the code the peer must receive:
 * 1002 for reserved opcodes (0x3-0x7, 0xB-0xF), RSV2/RSV3 set, RSV1 set when not
 * allowed or on a control frame, a control frame that is fragmented or longer than
 * 125 bytes, a 64-bit length with the high bit set, a mask missing from a client frame
 * (server role) or present in a server frame (client role); 1009 for a payload above
 * limits->max_payload. Does not check the fragmentation sequence (that needs message
 * state: see ws_conn). RFC 6455 §5.2, §5.5.
 */
ssize_t hr_ws_frame_parse_header(const uint8_t *buf, size_t len, const hr_ws_frame_limits_t *limits,
                                 hr_ws_frame_header_t *hdr);

/*
 * Encodes a frame header into out (at least HR_WS_FRAME_HEADER_MAX bytes) using the
 * minimal length encoding. rsv is a bitmask of HR_WS_RSV1/2/3. If mask is non-NULL the
 * MASK bit is set and the 4 key bytes are written. Returns the header length (2..14).
 */
size_t hr_ws_frame_encode_header(uint8_t *out, bool fin, unsigned rsv, uint8_t opcode,
                                 uint64_t payload_len, const uint8_t *mask);

/*
 * XORs data[0..len) in place with mask, starting at key position offset (mod 4), a
 * machine word at a time. Applying it twice restores the data. Returns the key position
 * after the last byte ((offset + len) & 3), so a payload can be unmasked in pieces.
 */
size_t hr_ws_mask(uint8_t *data, size_t len, const uint8_t mask[4], size_t offset);

/* Writes a Close frame payload into out: nothing for code 0 or 1005 (no status), else
 * the code in network order and up to 123 bytes of reason (RFC 6455 §5.5.1). Returns
 * the payload length (0..125). */
size_t hr_ws_close_payload(uint8_t out[125], uint16_t code, const char *reason, size_t len);

/* True if code may appear in a Close frame sent by a peer (RFC 6455 §7.4: 1000-1003,
 * 1007-1014, 3000-4999); 1004-1006, 1015, 1016-2999 and <1000 or >4999 are invalid. */
bool hr_ws_close_code_valid(uint16_t code);

#define HR_WS_FRAME_HEADER_MAX 14
#define HR_WS_RSV1 0x4u
#define HR_WS_RSV2 0x2u
#define HR_WS_RSV3 0x1u

#endif
