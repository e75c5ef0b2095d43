#ifndef HR_WS_DEFLATE_H
#define HR_WS_DEFLATE_H

/* permessage-deflate (RFC 7692): extension negotiation (server and client side) and
 * whole-message compression / decompression with zlib. No I/O; output goes to a caller
 * hr_buf_t with a caller cap. zlib state is created lazily on first use. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

#include "base/buf.h"

/* What this endpoint is willing to do (server: from the command line). */
typedef struct hr_deflate_config {
    bool enabled;            /* accept / offer permessage-deflate at all */
    bool context_takeover;   /* false: always answer with server_ and client_no_context_takeover */
    uint8_t max_window_bits; /* our own compressor's cap, 9..15 (default 15) */
    int level;               /* zlib level, default 6 */
    int mem_level;           /* zlib memLevel, default 8 */
} hr_deflate_config_t;

/* The agreed parameters of one connection. */
typedef struct hr_deflate_params {
    bool server_no_context_takeover;
    bool client_no_context_takeover;
    uint8_t server_max_window_bits; /* 8..15; the server's compressor uses at most this */
    uint8_t client_max_window_bits; /* 8..15; the client's compressor uses at most this */
} hr_deflate_params_t;

/* Fills cfg with the defaults above (enabled, no context takeover, 15, 6, 8). */
void hr_deflate_config_default(hr_deflate_config_t *cfg);

/*
 * Server side of RFC 7692 §5-7: given the Sec-WebSocket-Extensions header value(s) of a
 * request (several headers joined with ", "), picks the first permessage-deflate offer
 * that is valid and acceptable, fills *params and writes the response extension value
 * (without CRLF, NUL-terminated) into resp[0..resp_cap).
 * An offer is declined (skipped) if it has an unknown parameter, a duplicate one, a value
 * where none is allowed, a missing or out-of-range (8..15, no leading zeros) value, or a
 * syntax error. server_max_window_bits=8 is accepted (zlib cannot compress with an
 * 8-bit window, so such a connection sends its own messages uncompressed, §6 allows it).
 * With cfg->context_takeover false the response always carries server_no_context_takeover
 * and client_no_context_takeover (§7.1.1 lets a server add both).
 * Returns 1 if an offer was accepted, 0 if none was (no extension; not an error), or
 * HR_EINVAL if resp_cap is too small.
 */
int hr_deflate_negotiate(const char *offers, size_t len, const hr_deflate_config_t *cfg,
                         hr_deflate_params_t *params, char *resp, size_t resp_cap);

/* Client side: writes the offer for cfg into out (NUL-terminated). Returns the length or
 * HR_EINVAL if cap is too small. */
int hr_deflate_offer(const hr_deflate_config_t *cfg, char *out, size_t cap);

/* Client side: validates the server's response value against what was offered; fills
 * *params. Returns 0, or HR_EPROTO if the response is invalid (the client must fail the
 * connection, RFC 7692 §5.1). */
int hr_deflate_accept_response(const char *resp, size_t len, const hr_deflate_config_t *cfg,
                               hr_deflate_params_t *params);

/* One direction's zlib stream. Zeroed memory is a valid, not-yet-allocated stream. */
typedef struct hr_deflate_stream {
    z_stream z;
    bool ready;      /* zlib state allocated */
    bool compress;   /* deflate (true) or inflate (false) */
    int window_bits; /* 9..15 as allocated */
} hr_deflate_stream_t;

/*
 * Decompresses one whole message (the concatenated payloads of its frames, without the
 * 00 00 FF FF tail, which this function appends) into out, appending. window_bits is the
 * peer's max window (8..15; inflate uses 15 if it is 8). If reset is true the stream's
 * context is dropped after the message (no context takeover).
 * Returns 0, HR_EMSGSIZE if the output would exceed max_out bytes in total (out->len
 * after the call), HR_EPROTO for corrupt data, or HR_ENOMEM.
 */
int hr_deflate_inflate(hr_deflate_stream_t *s, int window_bits, bool reset, const uint8_t *in,
                       size_t len, hr_buf_t *out, size_t max_out);

/*
 * Compresses one whole message into out (appending), ready to send as the payload of a
 * frame with RSV1 set: deflate with Z_SYNC_FLUSH, the trailing 00 00 FF FF removed
 * (RFC 7692 §7.2.1). window_bits 9..15; level/mem_level from cfg. If reset is true the
 * context is dropped after the message. Returns 0 or HR_ENOMEM.
 */
int hr_deflate_compress(hr_deflate_stream_t *s, const hr_deflate_config_t *cfg, int window_bits,
                        bool reset, const uint8_t *in, size_t len, hr_buf_t *out);

/* Frees the zlib state (the stream is reusable; it reallocates on next use). */
void hr_deflate_stream_deinit(hr_deflate_stream_t *s);

#endif
