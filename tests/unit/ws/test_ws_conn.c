/* Unit tests for the receive-side state machine (src/ws/ws_conn.c): single and
 * fragmented messages with control frames interleaved, zero-length frames, the
 * fragmentation sequence rules (RFC 6455 §5.4), UTF-8 checked as bytes arrive (§8.1),
 * close frame payloads (§5.5.1, §7.4), max_message, permessage-deflate (RFC 7692 §6),
 * callbacks that stop the feed, and allocation failure. Every codec case is also fed
 * at every split point: the verdict and the delivered messages must not depend on it. */
#include "test_util.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "herald/error.h"
#include "herald/ws.h"
#include "ws/deflate.h"
#include "ws/ws_conn.h"
#include "ws/ws_frame.h"

/* ------------------------------------------------------------------------------------
 * Byte vectors owned by the test. Plain malloc, so hr_alloc_fail_at never hits them.
 * ---------------------------------------------------------------------------------- */

typedef struct bytes {
    uint8_t *p;
    size_t len, cap;
} bytes_t;

static void bytes_add(bytes_t *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *q = realloc(b->p, cap);
        assert_non_null(q);
        b->p = q;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void bytes_free(bytes_t *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* One event of the transcript: kind ('M' message, 'C' control), opcode, close code,
 * length, then the bytes. Comparing transcripts compares everything delivered. */
static void log_event(bytes_t *b, uint8_t kind, uint8_t op, uint16_t code, const uint8_t *data,
                      size_t len)
{
    const uint8_t h[8] = {kind,
                          op,
                          (uint8_t)(code >> 8),
                          (uint8_t)code,
                          (uint8_t)(len >> 24),
                          (uint8_t)(len >> 16),
                          (uint8_t)(len >> 8),
                          (uint8_t)len};
    bytes_add(b, h, sizeof(h));
    bytes_add(b, data, len);
}

static void want_msg(bytes_t *w, uint8_t op, const void *data, size_t len)
{
    log_event(w, 'M', op, 0, data, len);
}

static void want_ctrl(bytes_t *w, uint8_t op, uint16_t code, const void *data, size_t len)
{
    log_event(w, 'C', op, code, data, len);
}

/* ------------------------------------------------------------------------------------
 * Client frames (masked; a different key for every frame).
 * ---------------------------------------------------------------------------------- */

static unsigned key_turn;

static void add_frame(bytes_t *b, bool fin, unsigned rsv, uint8_t op, const void *payload,
                      size_t len)
{
    key_turn++;
    const uint8_t mask[4] = {(uint8_t)(0x37 + 13 * key_turn), (uint8_t)(0xFA ^ key_turn), 0x21,
                             (uint8_t)(0x3D + 7 * key_turn)};
    uint8_t hdr[HR_WS_FRAME_HEADER_MAX];
    size_t n = hr_ws_frame_encode_header(hdr, fin, rsv, op, len, mask);
    bytes_add(b, hdr, n);
    size_t at = b->len;
    bytes_add(b, payload, len);
    hr_ws_mask(b->p + at, len, mask, 0);
}

static void add_text(bytes_t *b, bool fin, uint8_t op, const char *s)
{
    add_frame(b, fin, 0, op, s, strlen(s));
}

static void add_unmasked(bytes_t *b, bool fin, uint8_t op, const void *payload, size_t len)
{
    uint8_t hdr[HR_WS_FRAME_HEADER_MAX];
    size_t n = hr_ws_frame_encode_header(hdr, fin, 0, op, len, NULL);
    bytes_add(b, hdr, n);
    bytes_add(b, payload, len);
}

static void add_close(bytes_t *b, uint16_t code, const void *reason, size_t len)
{
    uint8_t p[125];
    p[0] = (uint8_t)(code >> 8);
    p[1] = (uint8_t)code;
    if (len)
        memcpy(p + 2, reason, len);
    add_frame(b, true, 0, HR_WS_OP_CLOSE, p, len + 2);
}

/* ------------------------------------------------------------------------------------
 * A reader fed through feed_chunks, checked against an expected transcript.
 * ---------------------------------------------------------------------------------- */

enum { DEFLATE_OFF = 0, DEFLATE_NO_TAKEOVER = 1, DEFLATE_TAKEOVER = 2 };

typedef struct run {
    hr_ws_reader_t r;
    bool live;
    uint64_t max_message;
    int deflate;
    hr_deflate_stream_t inflater;
    hr_buf_t scratch;
    bytes_t got;
    int err;
    uint16_t code;
    int stop_every; /* callbacks return non-zero (tests that stop the feed) */
    int events;
    /* expectations */
    const bytes_t *want;
    int want_err;
    uint16_t want_code;
} run_t;

static int on_message(void *ud, uint8_t opcode, uint8_t *data, size_t len)
{
    run_t *x = ud;
    assert_non_null(data);
    log_event(&x->got, 'M', opcode, 0, data, len);
    x->events++;
    return x->stop_every;
}

static int on_control(void *ud, uint8_t opcode, uint16_t code, uint8_t *data, size_t len)
{
    run_t *x = ud;
    assert_true(len == 0 || data != NULL);
    log_event(&x->got, 'C', opcode, code, data, len);
    x->events++;
    return x->stop_every;
}

static const hr_ws_reader_cb_t cbs = {.on_message = on_message, .on_control = on_control};

static void run_start(run_t *x)
{
    hr_ws_reader_init(&x->r, HR_WS_ROLE_SERVER, x->max_message);
    if (x->deflate != DEFLATE_OFF)
        hr_ws_reader_set_deflate(&x->r, &x->inflater, &x->scratch, 15,
                                 x->deflate == DEFLATE_NO_TAKEOVER);
    x->live = true;
    x->got.len = 0;
    x->err = 0;
    x->code = 0;
    x->events = 0;
}

static void run_stop(run_t *x)
{
    if (x->live)
        hr_ws_reader_deinit(&x->r);
    x->live = false;
    hr_deflate_stream_deinit(&x->inflater);
    hr_buf_deinit(&x->scratch);
}

static void run_reset(void *ctx)
{
    run_t *x = ctx;
    run_stop(x);
    run_start(x);
}

/* The reader unmasks in place: every chunk goes in as a fresh copy of exactly its
 * length (ASan sees any read past it). After an error the reader takes no more. */
static void run_feed(void *ctx, const uint8_t *chunk, size_t len)
{
    run_t *x = ctx;
    if (x->err)
        return;
    uint8_t *copy = malloc(len);
    assert_non_null(copy);
    memcpy(copy, chunk, len);
    ssize_t n = hr_ws_reader_feed(&x->r, copy, len, &cbs, x);
    free(copy);
    if (n < 0) {
        x->err = (int)n;
        x->code = x->r.close_code;
        return;
    }
    assert_int_equal(n, len);
}

static void run_check(void *ctx)
{
    run_t *x = ctx;
    assert_int_equal(x->err, x->want_err);
    if (x->want_err)
        assert_int_equal(x->code, x->want_code);
    else
        assert_false(hr_ws_reader_busy(&x->r));
    assert_int_equal(x->got.len, x->want->len);
    if (x->want->len)
        assert_memory_equal(x->got.p, x->want->p, x->want->len);
}

/* Feeds in at every split point; each pass must end with want_err/want_code (0: no
 * error) and have delivered exactly the events in want. */
static void expect_feed_with(const bytes_t *in, const bytes_t *want, int want_err,
                             uint16_t want_code, uint64_t max_message, int deflate)
{
    run_t x;
    memset(&x, 0, sizeof(x));
    x.max_message = max_message;
    x.deflate = deflate;
    x.want = want;
    x.want_err = want_err;
    x.want_code = want_code;
    feed_chunks(&x, in->p, in->len, run_reset, run_feed, run_check);
    run_stop(&x);
    bytes_free(&x.got);
}

static void expect_feed(const bytes_t *in, const bytes_t *want, int want_err, uint16_t want_code)
{
    expect_feed_with(in, want, want_err, want_code, 0, DEFLATE_OFF);
}

static void expect_ok(const bytes_t *in, const bytes_t *want)
{
    expect_feed(in, want, 0, 0);
}

/* ------------------------------------------------------------------------------------
 * Single-frame messages.
 * ---------------------------------------------------------------------------------- */

static void test_ws_conn_single_frame_text_is_delivered(void **state)
{
    (void)state;
    bytes_t in = {0}, want = {0};
    const char *s = "Hello, w\xC3\xB6rld \xE2\x82\xAC \xF0\x9F\x98\x80";
    add_text(&in, true, HR_WS_OP_TEXT, s);
    want_msg(&want, HR_WS_OP_TEXT, s, strlen(s));
    expect_ok(&in, &want);
    bytes_free(&in);
    bytes_free(&want);
}

static void test_ws_conn_single_frame_binary_is_delivered_any_bytes(void **state)
{
    (void)state;
    bytes_t in = {0}, want = {0};
    uint8_t bin[300];
    for (size_t i = 0; i < sizeof(bin); i++)
        bin[i] = (uint8_t)(255 - i * 7);
    add_frame(&in, true, 0, HR_WS_OP_BINARY, bin, 7);           /* 7-bit length */
    add_frame(&in, true, 0, HR_WS_OP_BINARY, bin, sizeof(bin)); /* 16-bit length */
    want_msg(&want, HR_WS_OP_BINARY, bin, 7);
    want_msg(&want, HR_WS_OP_BINARY, bin, sizeof(bin));
    expect_ok(&in, &want);
    bytes_free(&in);
    bytes_free(&want);
}

static void test_ws_conn_consecutive_messages_in_one_read_each_delivered(void **state)
{
    (void)state;
    bytes_t in = {0}, want = {0};
    add_text(&in, true, HR_WS_OP_TEXT, "one");
    add_frame(&in, true, 0, HR_WS_OP_BINARY, "\x00\x01", 2);
    add_text(&in, true, HR_WS_OP_PING, "ping");
    add_text(&in, true, HR_WS_OP_TEXT, "three");
    want_msg(&want, HR_WS_OP_TEXT, "one", 3);
    want_msg(&want, HR_WS_OP_BINARY, "\x00\x01", 2);
    want_ctrl(&want, HR_WS_OP_PING, 0, "ping", 4);
    want_msg(&want, HR_WS_OP_TEXT, "three", 5);
    expect_ok(&in, &want);
    bytes_free(&in);
    bytes_free(&want);
}

/* ------------------------------------------------------------------------------------
 * Fragmentation (RFC 6455 §5.4).
 * ---------------------------------------------------------------------------------- */

static void test_ws_conn_fragmented_text_2_to_5_frames_with_pings_interleaved(void **state)
{
    (void)state;
    const char *msg = "The quick brown fox \xE2\x9C\x93 jumps over the lazy dog";
    size_t len = strlen(msg);
    for (size_t nfrag = 2; nfrag <= 5; nfrag++) {
        bytes_t in = {0}, want = {0};
        size_t at = 0;
        for (size_t i = 0; i < nfrag; i++) {
            size_t end = i + 1 == nfrag ? len : (i + 1) * len / nfrag;
            add_frame(&in, i + 1 == nfrag, 0, i == 0 ? HR_WS_OP_TEXT : HR_WS_OP_CONT, msg + at,
                      end - at);
            at = end;
            if (i + 1 < nfrag) {
                char p[8] = {'p', 'i', 'n', 'g', (char)('0' + i)};
                add_frame(&in, true, 0, HR_WS_OP_PING, p, 5);
                want_ctrl(&want, HR_WS_OP_PING, 0, p, 5);
                if (i == 0) {
                    add_text(&in, true, HR_WS_OP_PONG, "pong");
                    want_ctrl(&want, HR_WS_OP_PONG, 0, "pong", 4);
                }
            }
        }
        want_msg(&want, HR_WS_OP_TEXT, msg, len);
        expect_ok(&in, &want);
        bytes_free(&in);
        bytes_free(&want);
    }
}

static void test_ws_conn_fragmented_binary_then_single_text(void **state)
{
    (void)state;
    bytes_t in = {0}, want = {0};
    add_frame(&in, false, 0, HR_WS_OP_BINARY, "\xFF\x00", 2);
    add_frame(&in, false, 0, HR_WS_OP_CONT, "\x80", 1);
    add_frame(&in, true, 0, HR_WS_OP_CONT, "\xC0\xC1", 2);
    add_text(&in, true, HR_WS_OP_TEXT, "after");
    want_msg(&want, HR_WS_OP_BINARY, "\xFF\x00\x80\xC0\xC1", 5);
    want_msg(&want, HR_WS_OP_TEXT, "after", 5);
    expect_ok(&in, &want);
    bytes_free(&in);
    bytes_free(&want);
}

static void test_ws_conn_zero_length_frames_and_messages(void **state)
{
    (void)state;
    bytes_t in = {0}, want = {0};
    add_text(&in, true, HR_WS_OP_TEXT, "");
    add_frame(&in, true, 0, HR_WS_OP_BINARY, NULL, 0);
    add_text(&in, true, HR_WS_OP_PING, "");
    /* empty first and last fragments around a non-empty one */
    add_text(&in, false, HR_WS_OP_TEXT, "");
    add_text(&in, false, HR_WS_OP_CONT, "ab");
    add_text(&in, true, HR_WS_OP_PONG, "");
    add_text(&in, false, HR_WS_OP_CONT, "");
    add_text(&in, true, HR_WS_OP_CONT, "");
    /* a fragmented message with no bytes at all */
    add_frame(&in, false, 0, HR_WS_OP_BINARY, NULL, 0);
    add_frame(&in, true, 0, HR_WS_OP_CONT, NULL, 0);
    want_msg(&want, HR_WS_OP_TEXT, "", 0);
    want_msg(&want, HR_WS_OP_BINARY, "", 0);
    want_ctrl(&want, HR_WS_OP_PING, 0, "", 0);
    want_ctrl(&want, HR_WS_OP_PONG, 0, "", 0);
    want_msg(&want, HR_WS_OP_TEXT, "ab", 2);
    want_msg(&want, HR_WS_OP_BINARY, "", 0);
    expect_ok(&in, &want);
    bytes_free(&in);
    bytes_free(&want);
}

static void test_ws_conn_continuation_without_start_is_1002(void **state)
{
    (void)state;
    bytes_t in = {0}, want = {0};
    add_text(&in, true, HR_WS_OP_CONT, "abc");
    expect_feed(&in, &want, HR_EPROTO, HR_WS_CLOSE_PROTOCOL_ERROR);
    bytes_free(&in);

    /* after a complete fragmented message, a further continuation is also orphaned */
    add_text(&in, false, HR_WS_OP_TEXT, "a");
    add_text(&in, true, HR_WS_OP_CONT, "b");
    add_text(&in, false, HR_WS_OP_CONT, "c");
    want_msg(&want, HR_WS_OP_TEXT, "ab", 2);
    expect_feed(&in, &want, HR_EPROTO, HR_WS_CLOSE_PROTOCOL_ERROR);
    bytes_free(&in);
    bytes_free(&want);
}

static void test_ws_conn_new_data_frame_while_fragmented_is_1002(void **state)
{
    (void)state;
    static const uint8_t ops[] = {HR_WS_OP_TEXT, HR_WS_OP_BINARY};
    for (size_t i = 0; i < 2; i++) {
        for (size_t fin = 0; fin < 2; fin++) {
            bytes_t in = {0}, want = {0};
            add_text(&in, false, HR_WS_OP_TEXT, "part");
            add_text(&in, true, HR_WS_OP_PING, "x");
            add_text(&in, fin != 0, ops[i], "new");
            want_ctrl(&want, HR_WS_OP_PING, 0, "x", 1);
            expect_feed(&in, &want, HR_EPROTO, HR_WS_CLOSE_PROTOCOL_ERROR);
            bytes_free(&in);
            bytes_free(&want);
        }
    }
}

/* ------------------------------------------------------------------------------------
 * UTF-8 (RFC 6455 §8.1).
 * ---------------------------------------------------------------------------------- */

static void test_ws_conn_invalid_utf8_text_is_1007(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "ab\xFF"
        "cd",               /* never valid */
        "\xC0\xAF",         /* overlong */
        "x\xED\xA0\x80y",   /* surrogate */
        "\xF4\x90\x80\x80", /* above U+10FFFF */
        "ok \xE2\x82\x41",  /* bad continuation */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        bytes_t in = {0}, want = {0};
        add_text(&in, true, HR_WS_OP_TEXT, bad[i]);
        expect_feed(&in, &want, HR_EPROTO, HR_WS_CLOSE_INVALID_PAYLOAD);
        bytes_free(&in);

        /* the same bytes as the second fragment of a message */
        add_text(&in, false, HR_WS_OP_TEXT, "fine ");
        add_text(&in, true, HR_WS_OP_CONT, bad[i]);
        expect_feed(&in, &want, HR_EPROTO, HR_WS_CLOSE_INVALID_PAYLOAD);
        bytes_free(&in);
        bytes_free(&want);
    }
}

static void test_ws_conn_invalid_binary_bytes_are_not_checked(void **state)
{
    (void)state;
    bytes_t in = {0}, want = {0};
    add_frame(&in, true, 0, HR_WS_OP_BINARY, "\xFF\xED\xA0\x80", 4);
    want_msg(&want, HR_WS_OP_BINARY, "\xFF\xED\xA0\x80", 4);
    expect_ok(&in, &want);
    bytes_free(&in);
    bytes_free(&want);
}

/* Only the header and the payload up to and including the bad byte are fed: the reader
 * must fail by then, whatever the split, without waiting for the rest of the frame. */
static void test_ws_conn_invalid_utf8_fails_as_soon_as_the_bad_byte_is_fed(void **state)
{
    (void)state;
    char payload[100];
    memset(payload, 'a', sizeof(payload));
    static const struct {
        const char *bytes;
        size_t at; /* offset of the byte that makes it invalid */
    } cases[] = {
        {"hello \xFF", 6},
        {"hi \xED\xA0", 4}, /* surrogate: invalid at its second byte */
        {"\xF4\x90", 1},    /* above U+10FFFF: invalid at its second byte */
        {"\xE2\x82(", 2},   /* bad continuation */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = strlen(cases[i].bytes);
        memcpy(payload, cases[i].bytes, n);
        for (size_t frag = 0; frag < 2; frag++) {
            bytes_t in = {0}, want = {0};
            if (frag)
                add_text(&in, false, HR_WS_OP_TEXT, "first ");
            add_frame(&in, true, 0, frag ? HR_WS_OP_CONT : HR_WS_OP_TEXT, payload, sizeof(payload));
            size_t hdr = 2 + 4; /* 100 bytes: 7-bit length, then the key */
            in.len -= sizeof(payload) - (cases[i].at + 1);
            assert_true(in.len > hdr);
            expect_feed(&in, &want, HR_EPROTO, HR_WS_CLOSE_INVALID_PAYLOAD);
            bytes_free(&in);
            bytes_free(&want);
        }
    }
}

static void test_ws_conn_truncated_utf8_at_message_end_is_1007(void **state)
{
    (void)state;
    bytes_t in = {0}, want = {0};
    add_text(&in, true, HR_WS_OP_TEXT, "ab\xE2\x82");
    expect_feed(&in, &want, HR_EPROTO, HR_WS_CLOSE_INVALID_PAYLOAD);
    bytes_free(&in);

    add_text(&in, false, HR_WS_OP_TEXT, "ab");
    add_text(&in, true, HR_WS_OP_CONT, "\xF0\x9F\x98");
    expect_feed(&in, &want, HR_EPROTO, HR_WS_CLOSE_INVALID_PAYLOAD);
    bytes_free(&in);

    /* a lead byte in the last fragment, nothing after */
    add_text(&in, false, HR_WS_OP_TEXT, "ab");
    add_text(&in, true, HR_WS_OP_CONT, "\xC3");
    expect_feed(&in, &want, HR_EPROTO, HR_WS_CLOSE_INVALID_PAYLOAD);
    bytes_free(&in);
    bytes_free(&want);
}

static void test_ws_conn_code_point_split_across_fragments_is_valid(void **state)
{
    (void)state;
    bytes_t in = {0}, want = {0};
    /* U+20AC in three fragments */
    add_text(&in, false, HR_WS_OP_TEXT, "a\xE2");
    add_text(&in, false, HR_WS_OP_CONT, "\x82");
    add_text(&in, true, HR_WS_OP_CONT,
             "\xAC"
             "b");
    want_msg(&want, HR_WS_OP_TEXT,
             "a\xE2\x82\xAC"
             "b",
             5);
    /* U+1F600 one byte per fragment, with a ping in between */
    add_text(&in, false, HR_WS_OP_TEXT, "\xF0");
    add_text(&in, false, HR_WS_OP_CONT, "\x9F");
    add_text(&in, true, HR_WS_OP_PING, "\xF0");
    add_text(&in, false, HR_WS_OP_CONT, "\x98");
    add_text(&in, true, HR_WS_OP_CONT, "\x80");
    want_ctrl(&want, HR_WS_OP_PING, 0, "\xF0", 1); /* ping payloads are not UTF-8 */
    want_msg(&want, HR_WS_OP_TEXT, "\xF0\x9F\x98\x80", 4);
    expect_ok(&in, &want);
    bytes_free(&in);
    bytes_free(&want);
}

/* ------------------------------------------------------------------------------------
 * Close frames (RFC 6455 §5.5.1, §7.4).
 * ---------------------------------------------------------------------------------- */

static void test_ws_conn_close_empty_is_code_1005(void **state)
{
    (void)state;
    bytes_t in = {0}, want = {0};
    add_frame(&in, true, 0, HR_WS_OP_CLOSE, NULL, 0);
    want_ctrl(&want, HR_WS_OP_CLOSE, HR_WS_CLOSE_NO_STATUS, "", 0);
    expect_ok(&in, &want);
    bytes_free(&in);
    bytes_free(&want);
}

static void test_ws_conn_close_1000_with_reason(void **state)
{
    (void)state;
    bytes_t in = {0}, want = {0};
    const char *reason = "bye \xE2\x82\xAC";
    add_close(&in, 1000, reason, strlen(reason));
    want_ctrl(&want, HR_WS_OP_CLOSE, 1000, reason, strlen(reason));
    expect_ok(&in, &want);
    bytes_free(&in);
    bytes_free(&want);
}

static void test_ws_conn_close_valid_codes_without_reason_are_delivered(void **state)
{
    (void)state;
    static const uint16_t codes[] = {1000, 1001, 1002, 1003, 1007, 1008,
                                     1009, 1010, 1011, 1014, 3000, 4999};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        bytes_t in = {0}, want = {0};
        add_close(&in, codes[i], NULL, 0);
        want_ctrl(&want, HR_WS_OP_CLOSE, codes[i], "", 0);
        expect_ok(&in, &want);
        bytes_free(&in);
        bytes_free(&want);
    }
}

static void test_ws_conn_close_one_byte_payload_is_1002(void **state)
{
    (void)state;
    bytes_t in = {0}, want = {0};
    add_frame(&in, true, 0, HR_WS_OP_CLOSE, "\x03", 1);
    expect_feed(&in, &want, HR_EPROTO, HR_WS_CLOSE_PROTOCOL_ERROR);
    bytes_free(&in);
    bytes_free(&want);
}

static void test_ws_conn_close_invalid_code_is_1002(void **state)
{
    (void)state;
    static const uint16_t codes[] = {0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        bytes_t in = {0}, want = {0};
        add_close(&in, codes[i], "why", 3);
        expect_feed(&in, &want, HR_EPROTO, HR_WS_CLOSE_PROTOCOL_ERROR);
        bytes_free(&in);
        bytes_free(&want);
    }
}

static void test_ws_conn_close_invalid_utf8_reason_is_1007(void **state)
{
    (void)state;
    bytes_t in = {0}, want = {0};
    add_close(&in, 1000, "bad \xFF", 5);
    expect_feed(&in, &want, HR_EPROTO, HR_WS_CLOSE_INVALID_PAYLOAD);
    bytes_free(&in);
    add_close(&in, 1001, "cut \xE2\x82", 6);
    expect_feed(&in, &want, HR_EPROTO, HR_WS_CLOSE_INVALID_PAYLOAD);
    bytes_free(&in);
    bytes_free(&want);
}

static void test_ws_conn_close_between_fragments_is_delivered(void **state)
{
    (void)state;
    bytes_t in = {0}, want = {0};
    add_text(&in, false, HR_WS_OP_TEXT, "half");
    add_close(&in, 1001, "going", 5);
    want_ctrl(&want, HR_WS_OP_CLOSE, 1001, "going", 5);
    /* the reader is mid-message, so it must report busy at the end: checked by hand */
    run_t x;
    memset(&x, 0, sizeof(x));
    x.want = &want;
    run_start(&x);
    run_feed(&x, in.p, in.len);
    assert_int_equal(x.err, 0);
    assert_int_equal(x.got.len, want.len);
    assert_memory_equal(x.got.p, want.p, want.len);
    assert_true(hr_ws_reader_busy(&x.r));
    run_stop(&x);
    bytes_free(&x.got);
    bytes_free(&in);
    bytes_free(&want);
}

/* ------------------------------------------------------------------------------------
 * Frame rules the header shows.
 * ---------------------------------------------------------------------------------- */

static void test_ws_conn_unmasked_client_frame_is_1002(void **state)
{
    (void)state;
    bytes_t in = {0}, want = {0};
    add_unmasked(&in, true, HR_WS_OP_TEXT, "plain", 5);
    expect_feed(&in, &want, HR_EPROTO, HR_WS_CLOSE_PROTOCOL_ERROR);
    bytes_free(&in);

    add_text(&in, true, HR_WS_OP_TEXT, "ok");
    add_unmasked(&in, true, HR_WS_OP_PING, "", 0);
    want_msg(&want, HR_WS_OP_TEXT, "ok", 2);
    expect_feed(&in, &want, HR_EPROTO, HR_WS_CLOSE_PROTOCOL_ERROR);
    bytes_free(&in);
    bytes_free(&want);
}

static void test_ws_conn_client_role_takes_unmasked_and_refuses_masked(void **state)
{
    (void)state;
    bytes_t in = {0};
    add_unmasked(&in, true, HR_WS_OP_TEXT, "srv", 3);
    add_text(&in, true, HR_WS_OP_TEXT, "masked");
    hr_ws_reader_t r;
    hr_ws_reader_init(&r, HR_WS_ROLE_CLIENT, 0);
    run_t x;
    memset(&x, 0, sizeof(x));
    ssize_t n = hr_ws_reader_feed(&r, in.p, in.len, &cbs, &x);
    assert_int_equal(n, HR_EPROTO);
    assert_int_equal(r.close_code, HR_WS_CLOSE_PROTOCOL_ERROR);
    bytes_t want = {0};
    want_msg(&want, HR_WS_OP_TEXT, "srv", 3);
    assert_int_equal(x.got.len, want.len);
    assert_memory_equal(x.got.p, want.p, want.len);
    hr_ws_reader_deinit(&r);
    bytes_free(&x.got);
    bytes_free(&in);
    bytes_free(&want);
}

static void test_ws_conn_rsv1_without_deflate_is_1002(void **state)
{
    (void)state;
    bytes_t in = {0}, want = {0};
    add_frame(&in, true, HR_WS_RSV1, HR_WS_OP_TEXT, "x", 1);
    expect_feed(&in, &want, HR_EPROTO, HR_WS_CLOSE_PROTOCOL_ERROR);
    bytes_free(&in);
    add_frame(&in, true, HR_WS_RSV2, HR_WS_OP_BINARY, "x", 1);
    expect_feed(&in, &want, HR_EPROTO, HR_WS_CLOSE_PROTOCOL_ERROR);
    bytes_free(&in);
    bytes_free(&want);
}

/* ------------------------------------------------------------------------------------
 * max_message.
 * ---------------------------------------------------------------------------------- */

static void test_ws_conn_message_at_max_message_is_accepted(void **state)
{
    (void)state;
    bytes_t in = {0}, want = {0};
    add_text(&in, true, HR_WS_OP_TEXT, "0123456789");
    add_text(&in, false, HR_WS_OP_TEXT, "01234");
    add_text(&in, true, HR_WS_OP_CONT, "56789");
    want_msg(&want, HR_WS_OP_TEXT, "0123456789", 10);
    want_msg(&want, HR_WS_OP_TEXT, "0123456789", 10);
    expect_feed_with(&in, &want, 0, 0, 10, DEFLATE_OFF);
    bytes_free(&in);
    bytes_free(&want);
}

/* ws_conn.h: a frame above max_message fails with HR_EMSGSIZE (1009), on its header. */
static void test_ws_conn_single_frame_above_max_message_is_emsgsize_1009_on_header(void **state)
{
    (void)state;
    bytes_t in = {0}, want = {0};
    add_text(&in, true, HR_WS_OP_TEXT, "0123456789A");
    in.len = 2 + 4; /* the header only */
    expect_feed_with(&in, &want, HR_EMSGSIZE, HR_WS_CLOSE_TOO_BIG, 10, DEFLATE_OFF);
    bytes_free(&in);

    /* a 16-bit length above max_message */
    char big[200];
    memset(big, 'z', sizeof(big));
    add_frame(&in, true, 0, HR_WS_OP_BINARY, big, sizeof(big));
    in.len = 4 + 4;
    expect_feed_with(&in, &want, HR_EMSGSIZE, HR_WS_CLOSE_TOO_BIG, 199, DEFLATE_OFF);
    bytes_free(&in);
    bytes_free(&want);
}

static void test_ws_conn_fragments_adding_up_above_max_message_are_1009(void **state)
{
    (void)state;
    bytes_t in = {0}, want = {0};
    add_text(&in, false, HR_WS_OP_TEXT, "012345");
    add_text(&in, true, HR_WS_OP_PING, "p");
    add_text(&in, true, HR_WS_OP_CONT, "67890");
    want_ctrl(&want, HR_WS_OP_PING, 0, "p", 1);
    expect_feed_with(&in, &want, HR_EMSGSIZE, HR_WS_CLOSE_TOO_BIG, 10, DEFLATE_OFF);
    bytes_free(&in);
    bytes_free(&want);
}

/* ------------------------------------------------------------------------------------
 * Callbacks that stop the feed.
 * ---------------------------------------------------------------------------------- */

/* Every callback returns non-zero. Whatever the chunks, each feed returns the bytes
 * up to the end of the frame that produced the event; feeding the rest goes on. */
static void test_ws_conn_callback_nonzero_stops_feed_at_frame_end(void **state)
{
    (void)state;
    bytes_t in = {0}, want = {0};
    size_t ends[8], nends = 0;
    add_text(&in, true, HR_WS_OP_TEXT, "one");
    ends[nends++] = in.len;
    add_text(&in, true, HR_WS_OP_PING, "p");
    ends[nends++] = in.len;
    add_text(&in, false, HR_WS_OP_TEXT, "tw");
    add_text(&in, true, HR_WS_OP_PONG, "q");
    ends[nends++] = in.len;
    add_text(&in, true, HR_WS_OP_CONT, "o");
    ends[nends++] = in.len;
    add_close(&in, 1000, "", 0);
    ends[nends++] = in.len;
    want_msg(&want, HR_WS_OP_TEXT, "one", 3);
    want_ctrl(&want, HR_WS_OP_PING, 0, "p", 1);
    want_ctrl(&want, HR_WS_OP_PONG, 0, "q", 1);
    want_msg(&want, HR_WS_OP_TEXT, "two", 3);
    want_ctrl(&want, HR_WS_OP_CLOSE, 1000, "", 0);

    for (size_t cut = 0; cut <= in.len; cut++) {
        /* two chunks [0, cut) and [cut, len); cut 0 is a single chunk */
        run_t x;
        memset(&x, 0, sizeof(x));
        x.stop_every = 1;
        run_start(&x);
        uint8_t *copy = malloc(in.len);
        assert_non_null(copy);
        memcpy(copy, in.p, in.len);
        size_t chunk_ends[2] = {cut ? cut : in.len, in.len};
        size_t pos = 0, next_end = 0;
        for (size_t c = 0; c < 2; c++) {
            while (pos < chunk_ends[c]) {
                int before = x.events;
                ssize_t n = hr_ws_reader_feed(&x.r, copy + pos, chunk_ends[c] - pos, &cbs, &x);
                assert_true(n >= 0);
                pos += (size_t)n;
                if (x.events > before) {
                    assert_int_equal(x.events, before + 1);
                    assert_int_equal(pos, ends[next_end]);
                    next_end++;
                } else {
                    assert_int_equal(pos, chunk_ends[c]);
                }
            }
        }
        assert_int_equal(next_end, nends);
        assert_int_equal(x.got.len, want.len);
        assert_memory_equal(x.got.p, want.p, want.len);
        assert_false(hr_ws_reader_busy(&x.r));
        free(copy);
        run_stop(&x);
        bytes_free(&x.got);
    }
    bytes_free(&in);
    bytes_free(&want);
}

/* ------------------------------------------------------------------------------------
 * hr_ws_reader_busy.
 * ---------------------------------------------------------------------------------- */

static void test_ws_conn_busy_mid_header_mid_frame_mid_message_only(void **state)
{
    (void)state;
    bytes_t in = {0};
    add_text(&in, false, HR_WS_OP_TEXT, "abcd");
    size_t first = in.len;
    add_text(&in, true, HR_WS_OP_CONT, "ef");
    run_t x;
    memset(&x, 0, sizeof(x));
    run_start(&x);
    assert_false(hr_ws_reader_busy(&x.r));
    for (size_t i = 0; i < in.len; i++) {
        run_feed(&x, in.p + i, 1);
        assert_int_equal(x.err, 0);
        if (i + 1 < in.len)
            assert_true(hr_ws_reader_busy(&x.r));
        if (i + 1 == first)
            assert_int_equal(x.events, 0);
    }
    assert_int_equal(x.events, 1);
    assert_false(hr_ws_reader_busy(&x.r));

    /* a lone control frame: busy while its header or payload is partial */
    bytes_free(&in);
    add_text(&in, true, HR_WS_OP_PING, "pp");
    for (size_t i = 0; i < in.len; i++) {
        run_feed(&x, in.p + i, 1);
        assert_true(hr_ws_reader_busy(&x.r) == (i + 1 < in.len));
    }
    assert_int_equal(x.events, 2);
    run_stop(&x);
    bytes_free(&x.got);
    bytes_free(&in);
}

/* ------------------------------------------------------------------------------------
 * permessage-deflate (RFC 7692).
 * ---------------------------------------------------------------------------------- */

/* Compresses one message with the given compressor stream (reset: no context
 * takeover); appends the payload to out. */
static void compress_msg(hr_deflate_stream_t *s, bool reset, const void *in, size_t len,
                         bytes_t *out)
{
    hr_deflate_config_t cfg;
    hr_deflate_config_default(&cfg);
    hr_buf_t b;
    hr_buf_init(&b);
    assert_int_equal(hr_deflate_compress(s, &cfg, 15, reset, in, len, &b), 0);
    bytes_add(out, b.data, b.len);
    hr_buf_deinit(&b);
}

/* Adds a compressed message in nfrag frames, RSV1 on the first only. */
static void add_compressed(bytes_t *in, hr_deflate_stream_t *s, bool reset, uint8_t op,
                           const void *msg, size_t len, size_t nfrag, bool rsv1_on_cont)
{
    bytes_t z = {0};
    compress_msg(s, reset, msg, len, &z);
    size_t at = 0;
    for (size_t i = 0; i < nfrag; i++) {
        size_t end = i + 1 == nfrag ? z.len : (i + 1) * z.len / nfrag;
        unsigned rsv = i == 0 || rsv1_on_cont ? HR_WS_RSV1 : 0;
        add_frame(in, i + 1 == nfrag, rsv, i == 0 ? op : HR_WS_OP_CONT, z.p + at, end - at);
        at = end;
    }
    bytes_free(&z);
}

static void test_ws_conn_deflate_single_frame_messages_are_inflated(void **state)
{
    (void)state;
    hr_deflate_stream_t s;
    memset(&s, 0, sizeof(s));
    bytes_t in = {0}, want = {0};
    const char *text = "compress me compress me compress me \xE2\x82\xAC";
    uint8_t bin[200];
    for (size_t i = 0; i < sizeof(bin); i++)
        bin[i] = (uint8_t)(i % 17);
    add_compressed(&in, &s, true, HR_WS_OP_TEXT, text, strlen(text), 1, false);
    add_compressed(&in, &s, true, HR_WS_OP_BINARY, bin, sizeof(bin), 1, false);
    add_text(&in, true, HR_WS_OP_TEXT, "not compressed");
    add_compressed(&in, &s, true, HR_WS_OP_TEXT, "", 0, 1, false);
    want_msg(&want, HR_WS_OP_TEXT, text, strlen(text));
    want_msg(&want, HR_WS_OP_BINARY, bin, sizeof(bin));
    want_msg(&want, HR_WS_OP_TEXT, "not compressed", 14);
    want_msg(&want, HR_WS_OP_TEXT, "", 0);
    expect_feed_with(&in, &want, 0, 0, 0, DEFLATE_NO_TAKEOVER);
    hr_deflate_stream_deinit(&s);
    bytes_free(&in);
    bytes_free(&want);
}

static void test_ws_conn_deflate_fragmented_messages_are_inflated(void **state)
{
    (void)state;
    char msg[300];
    for (size_t i = 0; i < sizeof(msg); i++)
        msg[i] = "abcabcabd xyz"[i % 13];
    for (size_t nfrag = 2; nfrag <= 4; nfrag++) {
        hr_deflate_stream_t s;
        memset(&s, 0, sizeof(s));
        bytes_t in = {0}, want = {0}, z = {0};
        compress_msg(&s, true, msg, sizeof(msg), &z);
        /* frames by hand, with a ping after the first */
        size_t at = 0;
        for (size_t i = 0; i < nfrag; i++) {
            size_t end = i + 1 == nfrag ? z.len : (i + 1) * z.len / nfrag;
            add_frame(&in, i + 1 == nfrag, i == 0 ? HR_WS_RSV1 : 0,
                      i == 0 ? HR_WS_OP_TEXT : HR_WS_OP_CONT, z.p + at, end - at);
            at = end;
            if (i == 0)
                add_text(&in, true, HR_WS_OP_PING, "mid");
        }
        want_ctrl(&want, HR_WS_OP_PING, 0, "mid", 3);
        want_msg(&want, HR_WS_OP_TEXT, msg, sizeof(msg));
        expect_feed_with(&in, &want, 0, 0, 0, DEFLATE_NO_TAKEOVER);
        hr_deflate_stream_deinit(&s);
        bytes_free(&z);
        bytes_free(&in);
        bytes_free(&want);
    }
}

static void test_ws_conn_deflate_context_takeover_across_messages(void **state)
{
    (void)state;
    hr_deflate_stream_t s;
    memset(&s, 0, sizeof(s));
    bytes_t in = {0}, want = {0};
    const char *m = "the same words again, the same words again";
    add_compressed(&in, &s, false, HR_WS_OP_TEXT, m, strlen(m), 1, false);
    add_compressed(&in, &s, false, HR_WS_OP_TEXT, m, strlen(m), 2, false);
    add_compressed(&in, &s, false, HR_WS_OP_BINARY, m, strlen(m), 3, false);
    want_msg(&want, HR_WS_OP_TEXT, m, strlen(m));
    want_msg(&want, HR_WS_OP_TEXT, m, strlen(m));
    want_msg(&want, HR_WS_OP_BINARY, m, strlen(m));
    expect_feed_with(&in, &want, 0, 0, 0, DEFLATE_TAKEOVER);
    hr_deflate_stream_deinit(&s);
    bytes_free(&in);
    bytes_free(&want);
}

static void test_ws_conn_deflate_rsv1_on_continuation_is_1002(void **state)
{
    (void)state;
    hr_deflate_stream_t s;
    memset(&s, 0, sizeof(s));
    bytes_t in = {0}, want = {0};
    add_compressed(&in, &s, true, HR_WS_OP_TEXT, "hello hello hello", 17, 2, true);
    expect_feed_with(&in, &want, HR_EPROTO, HR_WS_CLOSE_PROTOCOL_ERROR, 0, DEFLATE_NO_TAKEOVER);
    bytes_free(&in);
    /* RSV1 on a continuation of an uncompressed message */
    add_text(&in, false, HR_WS_OP_TEXT, "a");
    add_frame(&in, true, HR_WS_RSV1, HR_WS_OP_CONT, "b", 1);
    expect_feed_with(&in, &want, HR_EPROTO, HR_WS_CLOSE_PROTOCOL_ERROR, 0, DEFLATE_NO_TAKEOVER);
    bytes_free(&in);
    /* RSV1 on a control frame */
    add_frame(&in, true, HR_WS_RSV1, HR_WS_OP_PING, "", 0);
    expect_feed_with(&in, &want, HR_EPROTO, HR_WS_CLOSE_PROTOCOL_ERROR, 0, DEFLATE_NO_TAKEOVER);
    hr_deflate_stream_deinit(&s);
    bytes_free(&in);
    bytes_free(&want);
}

static void test_ws_conn_deflate_corrupt_data_is_1007(void **state)
{
    (void)state;
    bytes_t in = {0}, want = {0};
    /* BFINAL=1, BTYPE=11: a reserved block type */
    add_frame(&in, true, HR_WS_RSV1, HR_WS_OP_BINARY, "\xFF\xFF\xFF\xFF", 4);
    expect_feed_with(&in, &want, HR_EPROTO, HR_WS_CLOSE_INVALID_PAYLOAD, 0, DEFLATE_NO_TAKEOVER);
    bytes_free(&in);
    add_frame(&in, false, HR_WS_RSV1, HR_WS_OP_TEXT, "\xFF", 1);
    add_frame(&in, true, 0, HR_WS_OP_CONT, "\xFF\x00", 2);
    expect_feed_with(&in, &want, HR_EPROTO, HR_WS_CLOSE_INVALID_PAYLOAD, 0, DEFLATE_NO_TAKEOVER);
    bytes_free(&in);
    bytes_free(&want);
}

static void test_ws_conn_deflate_invalid_utf8_after_inflate_is_1007(void **state)
{
    (void)state;
    hr_deflate_stream_t s;
    memset(&s, 0, sizeof(s));
    bytes_t in = {0}, want = {0};
    add_compressed(&in, &s, true, HR_WS_OP_TEXT, "bad \xFF byte", 10, 1, false);
    expect_feed_with(&in, &want, HR_EPROTO, HR_WS_CLOSE_INVALID_PAYLOAD, 0, DEFLATE_NO_TAKEOVER);
    bytes_free(&in);
    add_compressed(&in, &s, true, HR_WS_OP_TEXT, "cut \xE2\x82", 6, 2, false);
    expect_feed_with(&in, &want, HR_EPROTO, HR_WS_CLOSE_INVALID_PAYLOAD, 0, DEFLATE_NO_TAKEOVER);
    hr_deflate_stream_deinit(&s);
    bytes_free(&in);
    bytes_free(&want);
}

static void test_ws_conn_deflate_inflated_above_max_message_is_1009(void **state)
{
    (void)state;
    hr_deflate_stream_t s;
    memset(&s, 0, sizeof(s));
    bytes_t in = {0}, want = {0};
    char msg[1000];
    memset(msg, 'a', sizeof(msg));
    add_compressed(&in, &s, true, HR_WS_OP_TEXT, msg, 100, 1, false); /* fits */
    add_compressed(&in, &s, true, HR_WS_OP_BINARY, msg, sizeof(msg), 1, false);
    assert_true(in.len < 100);
    want_msg(&want, HR_WS_OP_TEXT, msg, 100);
    expect_feed_with(&in, &want, HR_EMSGSIZE, HR_WS_CLOSE_TOO_BIG, 100, DEFLATE_NO_TAKEOVER);
    bytes_free(&in);
    add_compressed(&in, &s, true, HR_WS_OP_BINARY, msg, sizeof(msg), 3, false);
    bytes_free(&want);
    expect_feed_with(&in, &want, HR_EMSGSIZE, HR_WS_CLOSE_TOO_BIG, 100, DEFLATE_NO_TAKEOVER);
    hr_deflate_stream_deinit(&s);
    bytes_free(&in);
    bytes_free(&want);
}

/* ------------------------------------------------------------------------------------
 * Allocation failure.
 * ---------------------------------------------------------------------------------- */

/* Fails the 1st, 2nd, ... allocation while a fragmented message goes in (whole, or a
 * byte at a time): each run either delivers everything or fails with HR_ENOMEM and
 * close code 1011; ASan reports any leak. */
static void alloc_fail_runs(const bytes_t *in, const bytes_t *want, int deflate, bool bytewise)
{
    for (long nth = 1;; nth++) {
        assert_true(nth < 1000);
        run_t x;
        memset(&x, 0, sizeof(x));
        x.deflate = deflate;
        run_start(&x);
        hr_alloc_fail_at(nth);
        if (bytewise) {
            for (size_t i = 0; i < in->len; i++)
                run_feed(&x, in->p + i, 1);
        } else {
            run_feed(&x, in->p, in->len);
        }
        long used = hr_alloc_count();
        hr_alloc_fail_at(0);
        if (x.err) {
            assert_int_equal(x.err, HR_ENOMEM);
            assert_int_equal(x.code, HR_WS_CLOSE_INTERNAL_ERROR);
            assert_true(x.got.len <= want->len);
            if (x.got.len)
                assert_memory_equal(x.got.p, want->p, x.got.len);
        } else {
            assert_int_equal(x.got.len, want->len);
            assert_memory_equal(x.got.p, want->p, want->len);
        }
        run_stop(&x);
        bytes_free(&x.got);
        if (used < nth) {
            assert_int_equal(x.err, 0); /* nothing failed, so nothing may fail */
            break;
        }
    }
}

static void test_ws_conn_alloc_failure_is_enomem_1011_without_leak(void **state)
{
    (void)state;
    bytes_t in = {0}, want = {0};
    char big[700];
    memset(big, 'q', sizeof(big)); /* past the first 256-byte buffer */
    add_text(&in, false, HR_WS_OP_TEXT, "frag ");
    add_text(&in, true, HR_WS_OP_PING, "p");
    add_frame(&in, false, 0, HR_WS_OP_CONT, big, sizeof(big));
    add_text(&in, true, HR_WS_OP_CONT, " end");
    add_text(&in, true, HR_WS_OP_TEXT, "single");
    want_ctrl(&want, HR_WS_OP_PING, 0, "p", 1);
    bytes_t msg = {0};
    bytes_add(&msg, "frag ", 5);
    bytes_add(&msg, big, sizeof(big));
    bytes_add(&msg, " end", 4);
    want_msg(&want, HR_WS_OP_TEXT, msg.p, msg.len);
    want_msg(&want, HR_WS_OP_TEXT, "single", 6);
    alloc_fail_runs(&in, &want, DEFLATE_OFF, false);
    alloc_fail_runs(&in, &want, DEFLATE_OFF, true);
    bytes_free(&msg);
    bytes_free(&in);
    bytes_free(&want);
}

static void test_ws_conn_deflate_alloc_failure_is_enomem_1011_without_leak(void **state)
{
    (void)state;
    hr_deflate_stream_t s;
    memset(&s, 0, sizeof(s));
    bytes_t in = {0}, want = {0};
    char msg[2000];
    for (size_t i = 0; i < sizeof(msg); i++)
        msg[i] = (char)('a' + i % 23);
    add_compressed(&in, &s, true, HR_WS_OP_TEXT, msg, sizeof(msg), 3, false);
    add_compressed(&in, &s, true, HR_WS_OP_BINARY, msg, 10, 1, false);
    want_msg(&want, HR_WS_OP_TEXT, msg, sizeof(msg));
    want_msg(&want, HR_WS_OP_BINARY, msg, 10);
    alloc_fail_runs(&in, &want, DEFLATE_NO_TAKEOVER, false);
    hr_deflate_stream_deinit(&s);
    bytes_free(&in);
    bytes_free(&want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ws_conn_single_frame_text_is_delivered),
        cmocka_unit_test(test_ws_conn_single_frame_binary_is_delivered_any_bytes),
        cmocka_unit_test(test_ws_conn_consecutive_messages_in_one_read_each_delivered),
        cmocka_unit_test(test_ws_conn_fragmented_text_2_to_5_frames_with_pings_interleaved),
        cmocka_unit_test(test_ws_conn_fragmented_binary_then_single_text),
        cmocka_unit_test(test_ws_conn_zero_length_frames_and_messages),
        cmocka_unit_test(test_ws_conn_continuation_without_start_is_1002),
        cmocka_unit_test(test_ws_conn_new_data_frame_while_fragmented_is_1002),
        cmocka_unit_test(test_ws_conn_invalid_utf8_text_is_1007),
        cmocka_unit_test(test_ws_conn_invalid_binary_bytes_are_not_checked),
        cmocka_unit_test(test_ws_conn_invalid_utf8_fails_as_soon_as_the_bad_byte_is_fed),
        cmocka_unit_test(test_ws_conn_truncated_utf8_at_message_end_is_1007),
        cmocka_unit_test(test_ws_conn_code_point_split_across_fragments_is_valid),
        cmocka_unit_test(test_ws_conn_close_empty_is_code_1005),
        cmocka_unit_test(test_ws_conn_close_1000_with_reason),
        cmocka_unit_test(test_ws_conn_close_valid_codes_without_reason_are_delivered),
        cmocka_unit_test(test_ws_conn_close_one_byte_payload_is_1002),
        cmocka_unit_test(test_ws_conn_close_invalid_code_is_1002),
        cmocka_unit_test(test_ws_conn_close_invalid_utf8_reason_is_1007),
        cmocka_unit_test(test_ws_conn_close_between_fragments_is_delivered),
        cmocka_unit_test(test_ws_conn_unmasked_client_frame_is_1002),
        cmocka_unit_test(test_ws_conn_client_role_takes_unmasked_and_refuses_masked),
        cmocka_unit_test(test_ws_conn_rsv1_without_deflate_is_1002),
        cmocka_unit_test(test_ws_conn_message_at_max_message_is_accepted),
        cmocka_unit_test(test_ws_conn_single_frame_above_max_message_is_emsgsize_1009_on_header),
        cmocka_unit_test(test_ws_conn_fragments_adding_up_above_max_message_are_1009),
        cmocka_unit_test(test_ws_conn_callback_nonzero_stops_feed_at_frame_end),
        cmocka_unit_test(test_ws_conn_busy_mid_header_mid_frame_mid_message_only),
        cmocka_unit_test(test_ws_conn_deflate_single_frame_messages_are_inflated),
        cmocka_unit_test(test_ws_conn_deflate_fragmented_messages_are_inflated),
        cmocka_unit_test(test_ws_conn_deflate_context_takeover_across_messages),
        cmocka_unit_test(test_ws_conn_deflate_rsv1_on_continuation_is_1002),
        cmocka_unit_test(test_ws_conn_deflate_corrupt_data_is_1007),
        cmocka_unit_test(test_ws_conn_deflate_invalid_utf8_after_inflate_is_1007),
        cmocka_unit_test(test_ws_conn_deflate_inflated_above_max_message_is_1009),
        cmocka_unit_test(test_ws_conn_alloc_failure_is_enomem_1011_without_leak),
        cmocka_unit_test(test_ws_conn_deflate_alloc_failure_is_enomem_1011_without_leak),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
