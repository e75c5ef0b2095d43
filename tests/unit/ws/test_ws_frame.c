/* Unit tests for the frame codec (src/ws/ws_frame.c): RFC 6455 §5.2 length encodings
 * at their boundaries, masking rules per role, reserved bits and opcodes refused on
 * the first byte, control frame limits, max_payload, encode/parse round trips, the
 * word-at-a-time unmasking against a byte loop, and the close code table. */
#include "test_util.h"

#include <stdbool.h>
#include <string.h>

#include "herald/error.h"
#include "ws/ws_frame.h"

static const uint8_t key[4] = {0x37, 0xFA, 0x21, 0x3D};

static hr_ws_frame_limits_t server_limits(void)
{
    hr_ws_frame_limits_t l = {.role = HR_WS_ROLE_SERVER, .allow_rsv1 = false, .max_payload = 0};
    return l;
}

static hr_ws_frame_limits_t client_limits(void)
{
    hr_ws_frame_limits_t l = {.role = HR_WS_ROLE_CLIENT, .allow_rsv1 = false, .max_payload = 0};
    return l;
}

/* Every strict prefix of a complete header needs more input; the whole parses. */
static void expect_header(const uint8_t *buf, size_t n, const hr_ws_frame_limits_t *l,
                          hr_ws_frame_header_t *hdr)
{
    for (size_t i = 0; i < n; i++) {
        hr_ws_frame_header_t h;
        assert_int_equal(hr_ws_frame_parse_header(buf, i, l, &h), HR_EAGAIN);
    }
    assert_int_equal(hr_ws_frame_parse_header(buf, n, l, hdr), (ssize_t)n);
    assert_int_equal(hdr->close_code, 0);
}

/* Prefixes shorter than first_bad + 1 need more input; from the byte at first_bad on,
 * the parser fails with close_code, whatever follows. */
static void expect_error(const uint8_t *buf, size_t n, const hr_ws_frame_limits_t *l,
                         size_t first_bad, uint16_t close_code)
{
    for (size_t i = 0; i <= n; i++) {
        hr_ws_frame_header_t h;
        memset(&h, 0, sizeof(h));
        ssize_t rc = hr_ws_frame_parse_header(buf, i, l, &h);
        if (i <= first_bad) {
            assert_int_equal(rc, HR_EAGAIN);
        } else {
            assert_int_equal(rc, HR_EPROTO);
            assert_int_equal(h.close_code, close_code);
        }
    }
}

/* ------------------------------------------------------------------------------------
 * Lengths.
 * ---------------------------------------------------------------------------------- */

static void test_ws_frame_parse_len7_zero_and_125(void **state)
{
    (void)state;
    hr_ws_frame_limits_t l = server_limits();
    hr_ws_frame_header_t h;
    const uint8_t zero[] = {0x81, 0x80, 1, 2, 3, 4};
    expect_header(zero, sizeof(zero), &l, &h);
    assert_true(h.fin);
    assert_int_equal(h.opcode, HR_WS_OP_TEXT);
    assert_true(h.masked);
    assert_int_equal(h.payload_len, 0);
    assert_memory_equal(h.mask, zero + 2, 4);
    const uint8_t max7[] = {0x82, 0x80 | 125, 1, 2, 3, 4};
    expect_header(max7, sizeof(max7), &l, &h);
    assert_int_equal(h.payload_len, 125);
    assert_int_equal(h.opcode, HR_WS_OP_BINARY);
}

static void test_ws_frame_parse_ext16_minimum(void **state)
{
    (void)state;
    hr_ws_frame_limits_t l = server_limits();
    hr_ws_frame_header_t h;
    const uint8_t b[] = {0x82, 0x80 | 126, 0x00, 126, 9, 9, 9, 9};
    expect_header(b, sizeof(b), &l, &h);
    assert_int_equal(h.payload_len, 126);
}

static void test_ws_frame_parse_ext16_maximum(void **state)
{
    (void)state;
    hr_ws_frame_limits_t l = server_limits();
    hr_ws_frame_header_t h;
    const uint8_t b[] = {0x82, 0x80 | 126, 0xFF, 0xFF, 9, 9, 9, 9};
    expect_header(b, sizeof(b), &l, &h);
    assert_int_equal(h.payload_len, 65535);
}

static void test_ws_frame_parse_ext64_minimum(void **state)
{
    (void)state;
    hr_ws_frame_limits_t l = server_limits();
    hr_ws_frame_header_t h;
    const uint8_t b[] = {0x82, 0x80 | 127, 0, 0, 0, 0, 0, 1, 0, 0, 9, 9, 9, 9};
    expect_header(b, sizeof(b), &l, &h);
    assert_int_equal(h.payload_len, 65536);
}

static void test_ws_frame_parse_ext64_largest_legal(void **state)
{
    (void)state;
    hr_ws_frame_limits_t l = client_limits();
    hr_ws_frame_header_t h;
    const uint8_t b[] = {0x02, 127, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
    expect_header(b, sizeof(b), &l, &h);
    assert_false(h.fin);
    assert_false(h.masked);
    assert_true(h.payload_len == UINT64_C(0x7FFFFFFFFFFFFFFF));
}

static void test_ws_frame_parse_ext64_msb_set_is_1002(void **state)
{
    (void)state;
    hr_ws_frame_limits_t l = server_limits();
    const uint8_t b[] = {0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 0, 9, 9, 9, 9};
    expect_error(b, sizeof(b), &l, 9, HR_WS_CLOSE_PROTOCOL_ERROR);
    const uint8_t all[] = {0x82, 0x80 | 127, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
    expect_error(all, sizeof(all), &l, 9, HR_WS_CLOSE_PROTOCOL_ERROR);
}

static void test_ws_frame_parse_non_minimal_lengths_are_accepted(void **state)
{
    (void)state;
    hr_ws_frame_limits_t l = client_limits();
    hr_ws_frame_header_t h;
    const uint8_t five16[] = {0x82, 126, 0, 5};
    expect_header(five16, sizeof(five16), &l, &h);
    assert_int_equal(h.payload_len, 5);
    const uint8_t zero64[] = {0x82, 127, 0, 0, 0, 0, 0, 0, 0, 0};
    expect_header(zero64, sizeof(zero64), &l, &h);
    assert_int_equal(h.payload_len, 0);
    const uint8_t k1_64[] = {0x82, 127, 0, 0, 0, 0, 0, 0, 0x04, 0x00};
    expect_header(k1_64, sizeof(k1_64), &l, &h);
    assert_int_equal(h.payload_len, 1024);
}

/* ------------------------------------------------------------------------------------
 * Masking rules per role (RFC 6455 §5.1).
 * ---------------------------------------------------------------------------------- */

static void test_ws_frame_parse_server_role_requires_mask_1002(void **state)
{
    (void)state;
    hr_ws_frame_limits_t l = server_limits();
    const uint8_t b[] = {0x81, 0x05, 'H', 'e', 'l', 'l', 'o'};
    expect_error(b, 2, &l, 1, HR_WS_CLOSE_PROTOCOL_ERROR);
}

static void test_ws_frame_parse_client_role_rejects_mask_1002(void **state)
{
    (void)state;
    hr_ws_frame_limits_t l = client_limits();
    const uint8_t b[] = {0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D};
    expect_error(b, sizeof(b), &l, 1, HR_WS_CLOSE_PROTOCOL_ERROR);
}

static void test_ws_frame_parse_client_role_unmasked_ok(void **state)
{
    (void)state;
    hr_ws_frame_limits_t l = client_limits();
    hr_ws_frame_header_t h;
    const uint8_t b[] = {0x81, 0x05}; /* RFC 6455 §5.7 "Hello", unmasked */
    expect_header(b, sizeof(b), &l, &h);
    assert_false(h.masked);
    assert_int_equal(h.payload_len, 5);
}

/* ------------------------------------------------------------------------------------
 * Reserved opcodes and bits: refused as soon as byte 0 is seen.
 * ---------------------------------------------------------------------------------- */

static void test_ws_frame_parse_every_reserved_opcode_is_1002_on_first_byte(void **state)
{
    (void)state;
    static const uint8_t reserved[] = {0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF};
    for (size_t i = 0; i < sizeof(reserved); i++) {
        for (int fin = 0; fin <= 1; fin++) {
            uint8_t b[] = {(uint8_t)((fin ? 0x80 : 0) | reserved[i]), 0x80, 1, 2, 3, 4};
            hr_ws_frame_limits_t s = server_limits(), c = client_limits();
            expect_error(b, sizeof(b), &s, 0, HR_WS_CLOSE_PROTOCOL_ERROR);
            expect_error(b, sizeof(b), &c, 0, HR_WS_CLOSE_PROTOCOL_ERROR);
        }
    }
}

static void test_ws_frame_parse_every_known_opcode_is_accepted(void **state)
{
    (void)state;
    static const uint8_t ops[] = {HR_WS_OP_CONT,  HR_WS_OP_TEXT, HR_WS_OP_BINARY,
                                  HR_WS_OP_CLOSE, HR_WS_OP_PING, HR_WS_OP_PONG};
    hr_ws_frame_limits_t l = server_limits();
    for (size_t i = 0; i < sizeof(ops); i++) {
        uint8_t b[] = {(uint8_t)(0x80 | ops[i]), 0x80 | 3, 1, 2, 3, 4};
        hr_ws_frame_header_t h;
        expect_header(b, sizeof(b), &l, &h);
        assert_int_equal(h.opcode, ops[i]);
    }
}

static void test_ws_frame_parse_rsv2_and_rsv3_are_always_1002(void **state)
{
    (void)state;
    hr_ws_frame_limits_t l = server_limits();
    l.allow_rsv1 = true;
    const uint8_t rsv2[] = {0x80 | 0x20 | HR_WS_OP_TEXT, 0x80, 1, 2, 3, 4};
    const uint8_t rsv3[] = {0x80 | 0x10 | HR_WS_OP_BINARY, 0x80, 1, 2, 3, 4};
    const uint8_t all[] = {0xF0 | HR_WS_OP_TEXT, 0x80, 1, 2, 3, 4};
    expect_error(rsv2, sizeof(rsv2), &l, 0, HR_WS_CLOSE_PROTOCOL_ERROR);
    expect_error(rsv3, sizeof(rsv3), &l, 0, HR_WS_CLOSE_PROTOCOL_ERROR);
    expect_error(all, sizeof(all), &l, 0, HR_WS_CLOSE_PROTOCOL_ERROR);
}

static void test_ws_frame_parse_rsv1_without_deflate_is_1002(void **state)
{
    (void)state;
    hr_ws_frame_limits_t l = server_limits();
    const uint8_t b[] = {0x80 | 0x40 | HR_WS_OP_TEXT, 0x80, 1, 2, 3, 4};
    expect_error(b, sizeof(b), &l, 0, HR_WS_CLOSE_PROTOCOL_ERROR);
}

static void test_ws_frame_parse_rsv1_with_deflate_on_data_frame_ok(void **state)
{
    (void)state;
    hr_ws_frame_limits_t l = server_limits();
    l.allow_rsv1 = true;
    hr_ws_frame_header_t h;
    const uint8_t b[] = {0x40 | HR_WS_OP_BINARY, 0x80 | 10, 1, 2, 3, 4};
    expect_header(b, sizeof(b), &l, &h);
    assert_true(h.rsv1);
    assert_false(h.rsv2);
    assert_false(h.rsv3);
    assert_false(h.fin);
}

static void test_ws_frame_parse_rsv1_on_control_frame_is_1002_even_with_deflate(void **state)
{
    (void)state;
    hr_ws_frame_limits_t l = server_limits();
    l.allow_rsv1 = true;
    static const uint8_t ctrl[] = {HR_WS_OP_CLOSE, HR_WS_OP_PING, HR_WS_OP_PONG};
    for (size_t i = 0; i < sizeof(ctrl); i++) {
        const uint8_t b[] = {(uint8_t)(0x80 | 0x40 | ctrl[i]), 0x80, 1, 2, 3, 4};
        expect_error(b, sizeof(b), &l, 0, HR_WS_CLOSE_PROTOCOL_ERROR);
    }
}

/* ------------------------------------------------------------------------------------
 * Control frames (RFC 6455 §5.5).
 * ---------------------------------------------------------------------------------- */

static void test_ws_frame_parse_fragmented_control_frame_is_1002(void **state)
{
    (void)state;
    hr_ws_frame_limits_t l = server_limits();
    static const uint8_t ctrl[] = {HR_WS_OP_CLOSE, HR_WS_OP_PING, HR_WS_OP_PONG};
    for (size_t i = 0; i < sizeof(ctrl); i++) {
        const uint8_t b[] = {ctrl[i], 0x80, 1, 2, 3, 4};
        expect_error(b, sizeof(b), &l, 0, HR_WS_CLOSE_PROTOCOL_ERROR);
    }
}

static void test_ws_frame_parse_ctrl_125_is_ok(void **state)
{
    (void)state;
    hr_ws_frame_limits_t l = server_limits();
    hr_ws_frame_header_t h;
    const uint8_t b[] = {0x80 | HR_WS_OP_PING, 0x80 | 125, 1, 2, 3, 4};
    expect_header(b, sizeof(b), &l, &h);
    assert_int_equal(h.payload_len, 125);
}

static void test_ws_frame_parse_ctrl_over_125_is_1002(void **state)
{
    (void)state;
    hr_ws_frame_limits_t l = server_limits();
    /* A 126 or 127 length marker on a control frame fails at byte 1, before the
     * extended length arrives. */
    const uint8_t b16[] = {0x80 | HR_WS_OP_CLOSE, 0x80 | 126, 0x00, 126, 1, 2, 3, 4};
    expect_error(b16, sizeof(b16), &l, 1, HR_WS_CLOSE_PROTOCOL_ERROR);
    const uint8_t b64[] = {0x80 | HR_WS_OP_PONG, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0, 126, 1, 2, 3, 4};
    expect_error(b64, sizeof(b64), &l, 1, HR_WS_CLOSE_PROTOCOL_ERROR);
    /* Even a non-minimal encoding of a small length is refused on a control frame. */
    const uint8_t small16[] = {0x80 | HR_WS_OP_PING, 0x80 | 126, 0x00, 5, 1, 2, 3, 4};
    expect_error(small16, sizeof(small16), &l, 1, HR_WS_CLOSE_PROTOCOL_ERROR);
}

/* ------------------------------------------------------------------------------------
 * max_payload.
 * ---------------------------------------------------------------------------------- */

static void test_ws_frame_parse_over_max_payload_is_1009(void **state)
{
    (void)state;
    hr_ws_frame_limits_t l = server_limits();
    l.max_payload = 1000;
    hr_ws_frame_header_t h;
    const uint8_t at[] = {0x82, 0x80 | 126, 0x03, 0xE8, 1, 2, 3, 4};
    expect_header(at, sizeof(at), &l, &h);
    assert_int_equal(h.payload_len, 1000);
    /* Refused once the length is known, without waiting for the mask key. */
    const uint8_t over[] = {0x82, 0x80 | 126, 0x03, 0xE9, 1, 2, 3, 4};
    expect_error(over, sizeof(over), &l, 3, HR_WS_CLOSE_TOO_BIG);
    const uint8_t huge[] = {0x82, 0x80 | 127, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4};
    expect_error(huge, sizeof(huge), &l, 9, HR_WS_CLOSE_TOO_BIG);
    l.max_payload = 100;
    const uint8_t seven[] = {0x81, 0x80 | 101, 1, 2, 3, 4};
    expect_error(seven, sizeof(seven), &l, 1, HR_WS_CLOSE_TOO_BIG);
}

static void test_ws_frame_parse_max_payload_zero_means_no_limit(void **state)
{
    (void)state;
    hr_ws_frame_limits_t l = client_limits();
    hr_ws_frame_header_t h;
    const uint8_t b[] = {0x82, 127, 0x40, 0, 0, 0, 0, 0, 0, 0};
    expect_header(b, sizeof(b), &l, &h);
    assert_true(h.payload_len == UINT64_C(1) << 62);
}

static void test_ws_frame_parse_max_payload_applies_to_control_frames(void **state)
{
    (void)state;
    hr_ws_frame_limits_t l = server_limits();
    l.max_payload = 10;
    const uint8_t b[] = {0x89, 0x80 | 11, 1, 2, 3, 4};
    expect_error(b, sizeof(b), &l, 1, HR_WS_CLOSE_TOO_BIG);
}

/* ------------------------------------------------------------------------------------
 * Encoding.
 * ---------------------------------------------------------------------------------- */

static void test_ws_frame_encode_matches_rfc_examples(void **state)
{
    (void)state;
    uint8_t out[HR_WS_FRAME_HEADER_MAX];
    /* RFC 6455 §5.7: single-frame unmasked and masked text "Hello". */
    assert_int_equal(hr_ws_frame_encode_header(out, true, 0, HR_WS_OP_TEXT, 5, NULL), 2);
    assert_memory_equal(out, "\x81\x05", 2);
    assert_int_equal(hr_ws_frame_encode_header(out, true, 0, HR_WS_OP_TEXT, 5, key), 6);
    assert_memory_equal(out, "\x81\x85\x37\xFA\x21\x3D", 6);
    /* First fragment of a fragmented text message, then its continuation. */
    assert_int_equal(hr_ws_frame_encode_header(out, false, 0, HR_WS_OP_TEXT, 3, NULL), 2);
    assert_memory_equal(out, "\x01\x03", 2);
    assert_int_equal(hr_ws_frame_encode_header(out, true, 0, HR_WS_OP_CONT, 2, NULL), 2);
    assert_memory_equal(out, "\x80\x02", 2);
    /* 256 bytes and 64 KiB binary messages. */
    assert_int_equal(hr_ws_frame_encode_header(out, true, 0, HR_WS_OP_BINARY, 256, NULL), 4);
    assert_memory_equal(out, "\x82\x7E\x01\x00", 4);
    assert_int_equal(hr_ws_frame_encode_header(out, true, 0, HR_WS_OP_BINARY, 65536, NULL), 10);
    assert_memory_equal(out, "\x82\x7F\x00\x00\x00\x00\x00\x01\x00\x00", 10);
}

static void test_ws_frame_encode_sets_rsv_bits(void **state)
{
    (void)state;
    uint8_t out[HR_WS_FRAME_HEADER_MAX];
    hr_ws_frame_encode_header(out, true, HR_WS_RSV1, HR_WS_OP_TEXT, 0, NULL);
    assert_int_equal(out[0], 0xC1);
    hr_ws_frame_encode_header(out, false, HR_WS_RSV2 | HR_WS_RSV3, HR_WS_OP_BINARY, 0, NULL);
    assert_int_equal(out[0], 0x32);
}

static void test_ws_frame_encode_uses_minimal_length_encoding(void **state)
{
    (void)state;
    uint8_t out[HR_WS_FRAME_HEADER_MAX];
    static const struct {
        uint64_t len;
        size_t size;
    } cases[] = {{0, 2},
                 {125, 2},
                 {126, 4},
                 {65535, 4},
                 {65536, 10},
                 {UINT32_MAX, 10},
                 {UINT64_C(1) << 63 >> 1, 10}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(hr_ws_frame_encode_header(out, true, 0, 2, cases[i].len, NULL),
                         cases[i].size);
        assert_int_equal(hr_ws_frame_encode_header(out, true, 0, 2, cases[i].len, key),
                         cases[i].size + 4);
        assert_memory_equal(out + cases[i].size, key, 4);
    }
}

static void round_trip(uint64_t len, uint8_t opcode, bool fin, bool rsv1, bool masked)
{
    uint8_t out[HR_WS_FRAME_HEADER_MAX];
    size_t n = hr_ws_frame_encode_header(out, fin, rsv1 ? HR_WS_RSV1 : 0, opcode, len,
                                         masked ? key : NULL);
    hr_ws_frame_limits_t l = masked ? server_limits() : client_limits();
    l.allow_rsv1 = true;
    hr_ws_frame_header_t h;
    expect_header(out, n, &l, &h);
    assert_int_equal(h.fin, fin);
    assert_int_equal(h.rsv1, rsv1);
    assert_false(h.rsv2 || h.rsv3);
    assert_int_equal(h.opcode, opcode);
    assert_int_equal(h.masked, masked);
    assert_true(h.payload_len == len);
    if (masked)
        assert_memory_equal(h.mask, key, 4);
}

static void test_ws_frame_encode_parse_round_trip_many_lengths(void **state)
{
    (void)state;
    static const uint64_t big[] = {65534,
                                   65535,
                                   65536,
                                   65537,
                                   1u << 20,
                                   UINT32_MAX,
                                   UINT64_C(1) << 32,
                                   UINT64_MAX >> 1,
                                   (UINT64_MAX >> 1) - 1};
    for (int masked = 0; masked <= 1; masked++) {
        for (uint64_t len = 0; len <= 300; len++) {
            round_trip(len, HR_WS_OP_TEXT, true, false, masked);
            round_trip(len, HR_WS_OP_BINARY, len & 1, (len & 2) != 0, masked);
            round_trip(len, HR_WS_OP_CONT, false, false, masked);
            if (len <= 125) {
                round_trip(len, HR_WS_OP_PING, true, false, masked);
                round_trip(len, HR_WS_OP_PONG, true, false, masked);
                round_trip(len, HR_WS_OP_CLOSE, true, false, masked);
            }
        }
        for (size_t i = 0; i < sizeof(big) / sizeof(big[0]); i++)
            round_trip(big[i], HR_WS_OP_BINARY, true, true, masked);
    }
}

/* ------------------------------------------------------------------------------------
 * Masking (RFC 6455 §5.3).
 * ---------------------------------------------------------------------------------- */

static void test_ws_mask_hello_matches_rfc_example(void **state)
{
    (void)state;
    uint8_t p[] = {'H', 'e', 'l', 'l', 'o'};
    assert_int_equal(hr_ws_mask(p, sizeof(p), key, 0), 1);
    assert_memory_equal(p, "\x7F\x9F\x4D\x51\x58", 5);
}

static void test_ws_mask_matches_byte_reference_every_offset_length_alignment(void **state)
{
    (void)state;
    const uint8_t m[4] = {0xA1, 0x5B, 0x00, 0xFF};
    uint64_t storage_a[8], storage_b[8];
    for (size_t align = 0; align < 8; align++) {
        for (size_t offset = 0; offset < 8; offset++) {
            for (size_t len = 0; len <= 40; len++) {
                uint8_t *a = (uint8_t *)storage_a + align;
                uint8_t *b = (uint8_t *)storage_b + align;
                for (size_t i = 0; i < len; i++)
                    a[i] = b[i] = (uint8_t)(i * 37 + 11);
                for (size_t i = 0; i < len; i++)
                    b[i] ^= m[(offset + i) & 3];
                size_t k = hr_ws_mask(a, len, m, offset);
                assert_int_equal(k, (offset + len) & 3);
                assert_memory_equal(a, b, len);
            }
        }
    }
}

static void test_ws_mask_in_pieces_equals_mask_whole(void **state)
{
    (void)state;
    uint8_t whole[200], pieces[200];
    for (size_t i = 0; i < sizeof(whole); i++)
        whole[i] = pieces[i] = (uint8_t)(i ^ 0x5A);
    hr_ws_mask(whole, sizeof(whole), key, 0);
    for (size_t cut = 0; cut <= sizeof(pieces); cut += 7) {
        uint8_t tmp[200];
        memcpy(tmp, pieces, sizeof(tmp));
        size_t k = hr_ws_mask(tmp, cut, key, 0);
        hr_ws_mask(tmp + cut, sizeof(tmp) - cut, key, k);
        assert_memory_equal(tmp, whole, sizeof(tmp));
    }
}

static void test_ws_mask_twice_restores_data(void **state)
{
    (void)state;
    uint8_t orig[100], p[100];
    for (size_t i = 0; i < sizeof(orig); i++)
        orig[i] = (uint8_t)(255 - i);
    memcpy(p, orig, sizeof(p));
    hr_ws_mask(p + 3, 90, key, 2);
    assert_memory_not_equal(p, orig, sizeof(p));
    hr_ws_mask(p + 3, 90, key, 2);
    assert_memory_equal(p, orig, sizeof(p));
}

/* ------------------------------------------------------------------------------------
 * Close codes (RFC 6455 §7.4).
 * ---------------------------------------------------------------------------------- */

static void test_ws_close_code_valid_table(void **state)
{
    (void)state;
    static const struct {
        uint16_t code;
        bool valid;
    } table[] = {
        {0, false},    {999, false},   {1000, true},  {1001, true}, {1002, true}, {1003, true},
        {1004, false}, {1005, false},  {1006, false}, {1007, true}, {1008, true}, {1009, true},
        {1010, true},  {1011, true},   {1012, true},  {1013, true}, {1014, true}, {1015, false},
        {1016, false}, {2999, false},  {3000, true},  {3999, true}, {4000, true}, {4999, true},
        {5000, false}, {65535, false},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (hr_ws_close_code_valid(table[i].code) != table[i].valid)
            fail_msg("close code %u: expected %s", table[i].code,
                     table[i].valid ? "valid" : "invalid");
    }
    for (unsigned c = 0; c <= 65535; c++) {
        bool want =
            (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
        assert_int_equal(hr_ws_close_code_valid((uint16_t)c), want);
    }
}

static void test_ws_close_payload_code_reason_and_limits(void **state)
{
    (void)state;
    uint8_t out[125];
    assert_int_equal(hr_ws_close_payload(out, 0, "x", 1), 0);
    assert_int_equal(hr_ws_close_payload(out, HR_WS_CLOSE_NO_STATUS, "x", 1), 0);
    assert_int_equal(hr_ws_close_payload(out, 1000, NULL, 0), 2);
    assert_int_equal(out[0], 0x03);
    assert_int_equal(out[1], 0xE8);
    assert_int_equal(hr_ws_close_payload(out, 4001, "bye", 3), 5);
    assert_int_equal(out[0] << 8 | out[1], 4001);
    assert_memory_equal(out + 2, "bye", 3);
    char longer[200];
    memset(longer, 'r', sizeof(longer));
    assert_int_equal(hr_ws_close_payload(out, 1001, longer, sizeof(longer)), 125); /* 2 + 123 */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ws_close_payload_code_reason_and_limits),
        cmocka_unit_test(test_ws_frame_parse_len7_zero_and_125),
        cmocka_unit_test(test_ws_frame_parse_ext16_minimum),
        cmocka_unit_test(test_ws_frame_parse_ext16_maximum),
        cmocka_unit_test(test_ws_frame_parse_ext64_minimum),
        cmocka_unit_test(test_ws_frame_parse_ext64_largest_legal),
        cmocka_unit_test(test_ws_frame_parse_ext64_msb_set_is_1002),
        cmocka_unit_test(test_ws_frame_parse_non_minimal_lengths_are_accepted),
        cmocka_unit_test(test_ws_frame_parse_server_role_requires_mask_1002),
        cmocka_unit_test(test_ws_frame_parse_client_role_rejects_mask_1002),
        cmocka_unit_test(test_ws_frame_parse_client_role_unmasked_ok),
        cmocka_unit_test(test_ws_frame_parse_every_reserved_opcode_is_1002_on_first_byte),
        cmocka_unit_test(test_ws_frame_parse_every_known_opcode_is_accepted),
        cmocka_unit_test(test_ws_frame_parse_rsv2_and_rsv3_are_always_1002),
        cmocka_unit_test(test_ws_frame_parse_rsv1_without_deflate_is_1002),
        cmocka_unit_test(test_ws_frame_parse_rsv1_with_deflate_on_data_frame_ok),
        cmocka_unit_test(test_ws_frame_parse_rsv1_on_control_frame_is_1002_even_with_deflate),
        cmocka_unit_test(test_ws_frame_parse_fragmented_control_frame_is_1002),
        cmocka_unit_test(test_ws_frame_parse_ctrl_125_is_ok),
        cmocka_unit_test(test_ws_frame_parse_ctrl_over_125_is_1002),
        cmocka_unit_test(test_ws_frame_parse_over_max_payload_is_1009),
        cmocka_unit_test(test_ws_frame_parse_max_payload_zero_means_no_limit),
        cmocka_unit_test(test_ws_frame_parse_max_payload_applies_to_control_frames),
        cmocka_unit_test(test_ws_frame_encode_matches_rfc_examples),
        cmocka_unit_test(test_ws_frame_encode_sets_rsv_bits),
        cmocka_unit_test(test_ws_frame_encode_uses_minimal_length_encoding),
        cmocka_unit_test(test_ws_frame_encode_parse_round_trip_many_lengths),
        cmocka_unit_test(test_ws_mask_hello_matches_rfc_example),
        cmocka_unit_test(test_ws_mask_matches_byte_reference_every_offset_length_alignment),
        cmocka_unit_test(test_ws_mask_in_pieces_equals_mask_whole),
        cmocka_unit_test(test_ws_mask_twice_restores_data),
        cmocka_unit_test(test_ws_close_code_valid_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
