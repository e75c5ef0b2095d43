/* permessage-deflate: negotiation table (server and client side), the RFC 7692 §7.2.3
 * examples, round trips, the inflate cap, corrupt input and allocation failures. */
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

#include "base/alloc.h"
#include "base/buf.h"
#include "herald/error.h"
#include "ws/deflate.h"

/* ---------------------------------------------------------------------------------------
 * Server-side negotiation
 * ------------------------------------------------------------------------------------- */

typedef struct nego_case {
    const char *offer;
    bool context_takeover;
    uint8_t max_bits;
    int rc;
    const char *resp; /* expected response when rc == 1 */
    uint8_t smwb;     /* expected params when rc == 1 */
    uint8_t cmwb;
} nego_case_t;

#define PMD "permessage-deflate"
#define SNCT "; server_no_context_takeover"
#define CNCT "; client_no_context_takeover"

static const nego_case_t nego_cases[] = {
    /* plain offer and each parameter */
    {PMD, true, 15, 1, PMD, 15, 15},
    {PMD SNCT, true, 15, 1, PMD SNCT, 15, 15},
    {PMD CNCT, true, 15, 1, PMD CNCT, 15, 15},
    {PMD SNCT CNCT, true, 15, 1, PMD SNCT CNCT, 15, 15},
    {PMD "; client_max_window_bits", true, 15, 1, PMD, 15, 15},
    {PMD "; client_max_window_bits=9", true, 15, 1, PMD "; client_max_window_bits=9", 15, 9},
    /* every legal window value */
    {PMD "; server_max_window_bits=8", true, 15, 1, PMD "; server_max_window_bits=8", 8, 15},
    {PMD "; server_max_window_bits=9", true, 15, 1, PMD "; server_max_window_bits=9", 9, 15},
    {PMD "; server_max_window_bits=10", true, 15, 1, PMD "; server_max_window_bits=10", 10, 15},
    {PMD "; server_max_window_bits=11", true, 15, 1, PMD "; server_max_window_bits=11", 11, 15},
    {PMD "; server_max_window_bits=12", true, 15, 1, PMD "; server_max_window_bits=12", 12, 15},
    {PMD "; server_max_window_bits=13", true, 15, 1, PMD "; server_max_window_bits=13", 13, 15},
    {PMD "; server_max_window_bits=14", true, 15, 1, PMD "; server_max_window_bits=14", 14, 15},
    {PMD "; server_max_window_bits=15", true, 15, 1, PMD "; server_max_window_bits=15", 15, 15},
    {PMD "; client_max_window_bits=8", true, 15, 1, PMD "; client_max_window_bits=8", 15, 8},
    {PMD "; client_max_window_bits=15", true, 15, 1, PMD, 15, 15},
    /* bad values decline the offer */
    {PMD "; server_max_window_bits=7", true, 15, 0, NULL, 0, 0},
    {PMD "; server_max_window_bits=16", true, 15, 0, NULL, 0, 0},
    {PMD "; server_max_window_bits=010", true, 15, 0, NULL, 0, 0},
    {PMD "; server_max_window_bits=08", true, 15, 0, NULL, 0, 0},
    {PMD "; server_max_window_bits=", true, 15, 0, NULL, 0, 0},
    {PMD "; server_max_window_bits", true, 15, 0, NULL, 0, 0},
    {PMD "; server_max_window_bits=\"\"", true, 15, 0, NULL, 0, 0},
    {PMD "; server_max_window_bits=1a", true, 15, 0, NULL, 0, 0},
    {PMD "; client_max_window_bits=7", true, 15, 0, NULL, 0, 0},
    {PMD "; client_max_window_bits=16", true, 15, 0, NULL, 0, 0},
    {PMD "; client_max_window_bits=010", true, 15, 0, NULL, 0, 0},
    {PMD "; client_max_window_bits=", true, 15, 0, NULL, 0, 0},
    {PMD "; server_no_context_takeover=1", true, 15, 0, NULL, 0, 0},
    {PMD "; client_no_context_takeover=\"x\"", true, 15, 0, NULL, 0, 0},
    /* quoted values: fine once unquoted they are tokens (§7.1) */
    {PMD "; client_max_window_bits=\"10\"", true, 15, 1, PMD "; client_max_window_bits=10", 15, 10},
    {PMD "; server_max_window_bits=\"12\"", true, 15, 1, PMD "; server_max_window_bits=12", 12, 15},
    {PMD "; server_max_window_bits=\"1\\2\"", true, 15, 1, PMD "; server_max_window_bits=12", 12,
     15},
    {PMD "; server_max_window_bits=\"1 2\"", true, 15, 0, NULL, 0, 0},
    {PMD "; server_max_window_bits=\"12", true, 15, 0, NULL, 0, 0},
    /* duplicates and unknown parameters */
    {PMD SNCT SNCT, true, 15, 0, NULL, 0, 0},
    {PMD CNCT CNCT, true, 15, 0, NULL, 0, 0},
    {PMD "; server_max_window_bits=10; server_max_window_bits=10", true, 15, 0, NULL, 0, 0},
    {PMD "; client_max_window_bits; client_max_window_bits=10", true, 15, 0, NULL, 0, 0},
    {PMD "; foo", true, 15, 0, NULL, 0, 0},
    {PMD "; foo=bar", true, 15, 0, NULL, 0, 0},
    {PMD "; a; b; c; d; e; f; g; h; i; j", true, 15, 0, NULL, 0, 0},
    /* several offers: the first acceptable one wins */
    {PMD "; foo, " PMD "; client_max_window_bits", true, 15, 1, PMD, 15, 15},
    {PMD "; server_max_window_bits=16, " PMD "; server_max_window_bits=12", true, 15, 1,
     PMD "; server_max_window_bits=12", 12, 15},
    {PMD ";; x, " PMD SNCT, true, 15, 1, PMD SNCT, 15, 15},
    {PMD "; x=\"a,b\" junk, " PMD, true, 15, 1, PMD, 15, 15},
    {PMD "; server_max_window_bits=10, " PMD, true, 15, 1, PMD "; server_max_window_bits=10", 10,
     15},
    /* other extensions are skipped */
    {"x-webkit-deflate-frame, " PMD, true, 15, 1, PMD, 15, 15},
    {"foo; bar=\"a, b;c\", " PMD CNCT, true, 15, 1, PMD CNCT, 15, 15},
    {"foo", true, 15, 0, NULL, 0, 0},
    {"permessage-deflatex", true, 15, 0, NULL, 0, 0},
    /* whitespace and empty list elements */
    {"  " PMD " ;\tserver_max_window_bits = 10 ,  ", true, 15, 1, PMD "; server_max_window_bits=10",
     10, 15},
    {PMD ";client_max_window_bits=11;server_no_context_takeover", true, 15, 1,
     PMD SNCT "; client_max_window_bits=11", 15, 11},
    {" , ," PMD, true, 15, 1, PMD, 15, 15},
    {"PerMessage-Deflate; Server_No_Context_Takeover", true, 15, 1, PMD SNCT, 15, 15},
    {"", true, 15, 0, NULL, 0, 0},
    {" , ", true, 15, 0, NULL, 0, 0},
    {PMD " x", true, 15, 0, NULL, 0, 0},
    /* our own window cap */
    {PMD, true, 10, 1, PMD, 10, 15},
    {PMD "; server_max_window_bits=12", true, 10, 1, PMD "; server_max_window_bits=10", 10, 15},
    {PMD "; server_max_window_bits=9", true, 10, 1, PMD "; server_max_window_bits=9", 9, 15},
    {PMD "; client_max_window_bits", true, 10, 1, PMD "; client_max_window_bits=10", 10, 10},
    {PMD "; client_max_window_bits=12", true, 12, 1, PMD "; client_max_window_bits=12", 12, 12},
    /* context_takeover off: both no_context_takeover parameters, always */
    {PMD, false, 15, 1, PMD SNCT CNCT, 15, 15},
    {PMD SNCT, false, 15, 1, PMD SNCT CNCT, 15, 15},
    {PMD "; client_max_window_bits=10", false, 15, 1, PMD SNCT CNCT "; client_max_window_bits=10",
     15, 10},
};

static void config(hr_deflate_config_t *cfg, bool ctx, uint8_t bits)
{
    hr_deflate_config_default(cfg);
    cfg->context_takeover = ctx;
    cfg->max_window_bits = bits;
}

static void test_negotiate_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(nego_cases) / sizeof(nego_cases[0]); i++) {
        const nego_case_t *tc = &nego_cases[i];
        hr_deflate_config_t cfg;
        hr_deflate_params_t p;
        char resp[256];
        config(&cfg, tc->context_takeover, tc->max_bits);
        memset(&p, 0xaa, sizeof(p));
        int rc = hr_deflate_negotiate(tc->offer, strlen(tc->offer), &cfg, &p, resp, sizeof(resp));
        if (rc != tc->rc)
            print_error("case %zu: \"%s\" rc %d\n", i, tc->offer, rc);
        assert_int_equal(rc, tc->rc);
        if (rc != 1)
            continue;
        if (strcmp(resp, tc->resp) != 0)
            print_error("case %zu: \"%s\" -> \"%s\"\n", i, tc->offer, resp);
        assert_string_equal(resp, tc->resp);
        assert_int_equal(p.server_max_window_bits, tc->smwb);
        assert_int_equal(p.client_max_window_bits, tc->cmwb);
        assert_int_equal(p.server_no_context_takeover, strstr(resp, SNCT) != NULL);
        assert_int_equal(p.client_no_context_takeover, strstr(resp, CNCT) != NULL);
    }
}

static void test_negotiate_edges(void **state)
{
    (void)state;
    hr_deflate_config_t cfg;
    hr_deflate_params_t p;
    char resp[128];
    hr_deflate_config_default(&cfg);
    /* No header at all. */
    assert_int_equal(hr_deflate_negotiate(NULL, 0, &cfg, &p, resp, sizeof(resp)), 0);
    /* Disabled: never accepted. */
    cfg.enabled = false;
    assert_int_equal(hr_deflate_negotiate(PMD, strlen(PMD), &cfg, &p, resp, sizeof(resp)), 0);
    cfg.enabled = true;
    /* The default answer, and a buffer one byte too small for it. */
    assert_int_equal(hr_deflate_negotiate(PMD, strlen(PMD), &cfg, &p, resp, sizeof(resp)), 1);
    assert_string_equal(resp, PMD SNCT CNCT);
    size_t need = strlen(resp) + 1;
    assert_int_equal(hr_deflate_negotiate(PMD, strlen(PMD), &cfg, &p, resp, need - 1), HR_EINVAL);
    assert_int_equal(hr_deflate_negotiate(PMD, strlen(PMD), &cfg, &p, resp, need), 1);
    /* The length bounds the header: the text after it is not read. */
    const char *two = PMD "; foo";
    assert_int_equal(hr_deflate_negotiate(two, strlen(PMD), &cfg, &p, resp, sizeof(resp)), 1);
}

/* ---------------------------------------------------------------------------------------
 * Client side
 * ------------------------------------------------------------------------------------- */

static void test_offer(void **state)
{
    (void)state;
    hr_deflate_config_t cfg;
    char out[256];
    hr_deflate_config_default(&cfg);
    int n = hr_deflate_offer(&cfg, out, sizeof(out));
    assert_string_equal(out, PMD "; client_max_window_bits" SNCT CNCT);
    assert_int_equal(n, (int)strlen(out));

    config(&cfg, true, 15);
    hr_deflate_offer(&cfg, out, sizeof(out));
    assert_string_equal(out, PMD "; client_max_window_bits");

    config(&cfg, true, 10);
    hr_deflate_offer(&cfg, out, sizeof(out));
    assert_string_equal(out, PMD "; client_max_window_bits=10; server_max_window_bits=10");

    assert_int_equal(hr_deflate_offer(&cfg, out, 10), HR_EINVAL);
    assert_string_equal(out, "");
    cfg.enabled = false;
    assert_int_equal(hr_deflate_offer(&cfg, out, sizeof(out)), 0);
    assert_string_equal(out, "");
}

typedef struct resp_case {
    const char *resp;
    bool context_takeover;
    uint8_t max_bits;
    int rc;
    uint8_t smwb;
    uint8_t cmwb;
} resp_case_t;

static const resp_case_t resp_cases[] = {
    {PMD, true, 15, 0, 15, 15},
    {PMD SNCT CNCT, false, 15, 0, 15, 15},
    {PMD SNCT, true, 15, 0, 15, 15}, /* §7.1.1.1: a server may add it unasked */
    {PMD "; server_max_window_bits=12", true, 15, 0, 12, 15},
    {PMD "; client_max_window_bits=9", true, 15, 0, 15, 9},
    {PMD "; client_max_window_bits=\"11\"", true, 15, 0, 15, 11},
    {" " PMD " ; server_max_window_bits = 8 ", true, 15, 0, 8, 15},
    {PMD "; server_max_window_bits=10", true, 10, 0, 10, 15},
    {PMD "; server_max_window_bits=9", true, 10, 0, 9, 15},
    {PMD, true, 10, 0, 15, 15}, /* window request ignored: we inflate with 15 */
    {PMD "; server_max_window_bits=11", true, 10, HR_EPROTO, 0, 0},
    {PMD "; client_max_window_bits", true, 15, HR_EPROTO, 0, 0}, /* value required */
    {PMD "; client_max_window_bits=16", true, 15, HR_EPROTO, 0, 0},
    {PMD "; server_max_window_bits=7", true, 15, HR_EPROTO, 0, 0},
    {PMD "; server_max_window_bits=010", true, 15, HR_EPROTO, 0, 0},
    {PMD "; server_max_window_bits", true, 15, HR_EPROTO, 0, 0},
    {PMD SNCT SNCT, true, 15, HR_EPROTO, 0, 0},
    {PMD "; foo", true, 15, HR_EPROTO, 0, 0},
    {PMD SNCT "=1", true, 15, HR_EPROTO, 0, 0},
    {"x-foo", true, 15, HR_EPROTO, 0, 0},
    {PMD ", " PMD, true, 15, HR_EPROTO, 0, 0},
    {PMD ", x-foo", true, 15, HR_EPROTO, 0, 0},
    {PMD ";", true, 15, HR_EPROTO, 0, 0},
    {"", true, 15, HR_EPROTO, 0, 0},
};

static void test_accept_response(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(resp_cases) / sizeof(resp_cases[0]); i++) {
        const resp_case_t *tc = &resp_cases[i];
        hr_deflate_config_t cfg;
        hr_deflate_params_t p;
        config(&cfg, tc->context_takeover, tc->max_bits);
        int rc = hr_deflate_accept_response(tc->resp, strlen(tc->resp), &cfg, &p);
        if (rc != tc->rc)
            print_error("case %zu: \"%s\" rc %d\n", i, tc->resp, rc);
        assert_int_equal(rc, tc->rc);
        if (rc)
            continue;
        assert_int_equal(p.server_max_window_bits, tc->smwb);
        assert_int_equal(p.client_max_window_bits, tc->cmwb);
        assert_int_equal(p.server_no_context_takeover, strstr(tc->resp, SNCT) != NULL);
        assert_int_equal(p.client_no_context_takeover, strstr(tc->resp, CNCT) != NULL);
    }
    hr_deflate_config_t off;
    hr_deflate_params_t p;
    hr_deflate_config_default(&off);
    off.enabled = false;
    assert_int_equal(hr_deflate_accept_response(PMD, strlen(PMD), &off, &p), HR_EPROTO);
}

/* Whatever our server answers to our own client's offer, the client accepts. */
static void test_offer_answer_roundtrip(void **state)
{
    (void)state;
    for (int ctx = 0; ctx < 2; ctx++) {
        for (uint8_t bits = 9; bits <= 15; bits++) {
            hr_deflate_config_t cfg;
            hr_deflate_params_t sp, cp;
            char offer[256], resp[256];
            config(&cfg, ctx != 0, bits);
            assert_true(hr_deflate_offer(&cfg, offer, sizeof(offer)) > 0);
            assert_int_equal(
                hr_deflate_negotiate(offer, strlen(offer), &cfg, &sp, resp, sizeof(resp)), 1);
            assert_int_equal(hr_deflate_accept_response(resp, strlen(resp), &cfg, &cp), 0);
            assert_memory_equal(&sp, &cp, sizeof(sp));
            assert_int_equal(sp.server_max_window_bits, bits);
            assert_int_equal(sp.client_max_window_bits, bits);
            assert_int_equal(sp.server_no_context_takeover, ctx == 0);
        }
    }
}

/* ---------------------------------------------------------------------------------------
 * Streams
 * ------------------------------------------------------------------------------------- */

static const uint8_t hello_rfc[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};

static void expect_inflate(hr_deflate_stream_t *s, bool reset, const uint8_t *in, size_t len,
                           const char *want)
{
    hr_buf_t out;
    hr_buf_init(&out);
    assert_int_equal(hr_deflate_inflate(s, 15, reset, in, len, &out, 1 << 20), 0);
    assert_int_equal(out.len, strlen(want));
    if (out.len)
        assert_memory_equal(out.data, want, out.len);
    hr_buf_deinit(&out);
}

static void test_rfc_examples(void **state)
{
    (void)state;
    hr_deflate_stream_t s;
    memset(&s, 0, sizeof(s));
    /* §7.2.3.1: "Hello" in one compressed message. */
    expect_inflate(&s, true, hello_rfc, sizeof(hello_rfc), "Hello");
    /* §7.2.3.1, split into two fragments: the caller concatenates payloads. */
    /* §7.2.3.2: a second "Hello" with context takeover is shorter. */
    static const uint8_t hello2[] = {0xf2, 0x00, 0x11, 0x00, 0x00};
    expect_inflate(&s, false, hello_rfc, sizeof(hello_rfc), "Hello");
    expect_inflate(&s, false, hello2, sizeof(hello2), "Hello");
    hr_deflate_stream_deinit(&s);
    /* §7.2.3.3: a DEFLATE block with no compression. */
    static const uint8_t stored[] = {0x00, 0x05, 0x00, 0xfa, 0xff, 0x48,
                                     0x65, 0x6c, 0x6c, 0x6f, 0x00};
    expect_inflate(&s, true, stored, sizeof(stored), "Hello");
    /* §7.2.3.4: a block with BFINAL set; the next message starts a new stream. */
    static const uint8_t final[] = {0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00};
    expect_inflate(&s, false, final, sizeof(final), "Hello");
    expect_inflate(&s, false, hello_rfc, sizeof(hello_rfc), "Hello");
    /* §7.2.3.6: an empty message is the single byte 0x00; an empty payload (which some
     * senders produce) is taken as an empty message too. */
    static const uint8_t empty[] = {0x00};
    expect_inflate(&s, false, empty, sizeof(empty), "");
    expect_inflate(&s, false, NULL, 0, "");
    hr_deflate_stream_deinit(&s);
}

static void test_rfc_compress_bytes(void **state)
{
    (void)state;
    hr_deflate_config_t cfg;
    hr_deflate_stream_t s;
    hr_buf_t out;
    hr_deflate_config_default(&cfg);
    memset(&s, 0, sizeof(s));
    hr_buf_init(&out);
    assert_int_equal(hr_deflate_compress(&s, &cfg, 15, false, (const uint8_t *)"Hello", 5, &out),
                     0);
    assert_int_equal(out.len, sizeof(hello_rfc));
    assert_memory_equal(out.data, hello_rfc, sizeof(hello_rfc));
    /* With context, the second copy is a back-reference and shorter. */
    size_t first = out.len;
    assert_int_equal(hr_deflate_compress(&s, &cfg, 15, false, (const uint8_t *)"Hello", 5, &out),
                     0);
    assert_true(out.len - first < first);
    /* An empty message, whether first in the stream or after another sync flush. */
    size_t mark = out.len;
    assert_int_equal(hr_deflate_compress(&s, &cfg, 15, false, NULL, 0, &out), 0);
    assert_int_equal(out.len - mark, 1);
    assert_int_equal(out.data[mark], 0x00);
    hr_deflate_stream_deinit(&s);
    hr_buf_deinit(&out);
}

static uint8_t *make_data(size_t n, bool random, unsigned seed)
{
    uint8_t *p = malloc(n ? n : 1);
    assert_non_null(p);
    srand(seed);
    static const char words[] = "the quick brown fox jumps over the lazy dog {\"id\":42} ";
    for (size_t i = 0; i < n; i++)
        p[i] = random ? (uint8_t)rand() : (uint8_t)words[i % (sizeof(words) - 1)];
    return p;
}

static void roundtrip(hr_deflate_stream_t *tx, hr_deflate_stream_t *rx, int bits, bool reset,
                      const uint8_t *data, size_t n)
{
    hr_deflate_config_t cfg;
    hr_buf_t z, back;
    hr_deflate_config_default(&cfg);
    hr_buf_init(&z);
    hr_buf_init(&back);
    assert_int_equal(hr_deflate_compress(tx, &cfg, bits, reset, data, n, &z), 0);
    assert_true(z.len > 0);
    assert_int_equal(hr_deflate_inflate(rx, bits, reset, z.data, z.len, &back, n), 0);
    assert_int_equal(back.len, n);
    if (n)
        assert_memory_equal(back.data, data, n);
    hr_buf_deinit(&z);
    hr_buf_deinit(&back);
}

static void test_roundtrip_sizes(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, 125, 64 * 1024, 1024 * 1024};
    for (int reset = 0; reset < 2; reset++) {
        for (int random = 0; random < 2; random++) {
            hr_deflate_stream_t tx, rx;
            memset(&tx, 0, sizeof(tx));
            memset(&rx, 0, sizeof(rx));
            /* One pair of streams for the whole sequence: with reset false this is
             * several messages in a row with context takeover. */
            for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
                uint8_t *d = make_data(sizes[i], random != 0, (unsigned)i + 1);
                roundtrip(&tx, &rx, 15, reset != 0, d, sizes[i]);
                roundtrip(&tx, &rx, 15, reset != 0, d, sizes[i]);
                free(d);
            }
            hr_deflate_stream_deinit(&tx);
            hr_deflate_stream_deinit(&rx);
        }
    }
}

static void test_roundtrip_windows(void **state)
{
    (void)state;
    uint8_t *d = make_data(200000, false, 7);
    for (int bits = 9; bits <= 15; bits++) {
        hr_deflate_stream_t tx, rx;
        memset(&tx, 0, sizeof(tx));
        memset(&rx, 0, sizeof(rx));
        for (int k = 0; k < 3; k++)
            roundtrip(&tx, &rx, bits, false, d + k * 1000, 5000);
        hr_deflate_stream_deinit(&tx);
        hr_deflate_stream_deinit(&rx);
    }
    /* A peer limited to 8 bits is inflated with a 15-bit window. */
    hr_deflate_stream_t rx;
    memset(&rx, 0, sizeof(rx));
    hr_buf_t out;
    hr_buf_init(&out);
    assert_int_equal(hr_deflate_inflate(&rx, 8, true, hello_rfc, sizeof(hello_rfc), &out, 100), 0);
    assert_int_equal(out.len, 5);
    assert_int_equal(hr_deflate_inflate(&rx, 7, true, hello_rfc, sizeof(hello_rfc), &out, 100),
                     HR_EINVAL);
    hr_deflate_config_t cfg;
    hr_deflate_config_default(&cfg);
    hr_deflate_stream_t tx;
    memset(&tx, 0, sizeof(tx));
    assert_int_equal(hr_deflate_compress(&tx, &cfg, 8, true, d, 10, &out), HR_EINVAL);
    hr_buf_deinit(&out);
    hr_deflate_stream_deinit(&rx);
    free(d);
}

static void test_inflate_cap(void **state)
{
    (void)state;
    const size_t big = 10u << 20, cap = 1u << 20;
    uint8_t *zeros = calloc(big, 1);
    assert_non_null(zeros);
    hr_deflate_config_t cfg;
    hr_deflate_stream_t tx, rx;
    hr_buf_t z, out;
    hr_deflate_config_default(&cfg);
    memset(&tx, 0, sizeof(tx));
    memset(&rx, 0, sizeof(rx));
    hr_buf_init(&z);
    hr_buf_init(&out);
    assert_int_equal(hr_deflate_compress(&tx, &cfg, 15, true, zeros, big, &z), 0);
    assert_true(z.len < big / 100);
    assert_int_equal(hr_deflate_inflate(&rx, 15, true, z.data, z.len, &out, cap), HR_EMSGSIZE);
    assert_int_equal(out.len, 0);
    /* The buffer never grew far past the cap: bounded memory against zip bombs. */
    assert_true(out.cap <= 2 * cap);
    /* The stream is usable again, and a message of exactly the cap fits. */
    hr_buf_t z2;
    hr_buf_init(&z2);
    assert_int_equal(hr_deflate_compress(&tx, &cfg, 15, true, zeros, cap, &z2), 0);
    assert_int_equal(hr_deflate_inflate(&rx, 15, true, z2.data, z2.len, &out, cap), 0);
    assert_int_equal(out.len, cap);
    /* max_out counts what out already holds. */
    assert_int_equal(hr_deflate_inflate(&rx, 15, true, hello_rfc, sizeof(hello_rfc), &out, cap),
                     HR_EMSGSIZE);
    assert_int_equal(out.len, cap);
    hr_deflate_stream_deinit(&tx);
    hr_deflate_stream_deinit(&rx);
    hr_buf_deinit(&z);
    hr_buf_deinit(&z2);
    hr_buf_deinit(&out);
    free(zeros);
}

static void test_corrupt(void **state)
{
    (void)state;
    hr_deflate_stream_t rx;
    hr_buf_t out;
    memset(&rx, 0, sizeof(rx));
    hr_buf_init(&out);
    /* BTYPE 11 is reserved. */
    static const uint8_t bad_type[] = {0xff, 0xff, 0xff};
    assert_int_equal(hr_deflate_inflate(&rx, 15, false, bad_type, sizeof(bad_type), &out, 1000),
                     HR_EPROTO);
    assert_int_equal(out.len, 0);
    /* Stored block whose NLEN does not match LEN. */
    static const uint8_t bad_len[] = {0x00, 0x05, 0x00, 0x00, 0x00, 'H'};
    assert_int_equal(hr_deflate_inflate(&rx, 15, false, bad_len, sizeof(bad_len), &out, 1000),
                     HR_EPROTO);
    /* A message cut inside a block. */
    assert_int_equal(hr_deflate_inflate(&rx, 15, false, hello_rfc, 3, &out, 1000), HR_EPROTO);
    /* Back-reference before the start of the window (no history). */
    static const uint8_t far_ref[] = {0xf2, 0x00, 0x11, 0x00, 0x00};
    assert_int_equal(hr_deflate_inflate(&rx, 15, true, far_ref, sizeof(far_ref), &out, 1000),
                     HR_EPROTO);
    /* After an error the stream starts over cleanly. */
    expect_inflate(&rx, true, hello_rfc, sizeof(hello_rfc), "Hello");
    hr_deflate_stream_deinit(&rx);
    hr_buf_deinit(&out);
}

static void test_alloc_failures(void **state)
{
    (void)state;
    hr_deflate_config_t cfg;
    hr_deflate_config_default(&cfg);
    uint8_t *d = make_data(300000, false, 3);
    hr_buf_t z;
    hr_buf_init(&z);
    bool done = false;
    for (long n = 1; !done; n++) {
        hr_deflate_stream_t tx;
        memset(&tx, 0, sizeof(tx));
        hr_buf_init(&z);
        hr_alloc_fail_at(n);
        int rc = hr_deflate_compress(&tx, &cfg, 15, false, d, 300000, &z);
        hr_alloc_fail_at(0);
        assert_true(rc == 0 || rc == HR_ENOMEM);
        done = rc == 0;
        if (!done) {
            assert_false(tx.ready);
            hr_buf_deinit(&z);
        }
        hr_deflate_stream_deinit(&tx);
        assert_true(n < 100);
    }
    done = false;
    for (long n = 1; !done; n++) {
        hr_deflate_stream_t rx;
        hr_buf_t out;
        memset(&rx, 0, sizeof(rx));
        hr_buf_init(&out);
        hr_alloc_fail_at(n);
        int rc = hr_deflate_inflate(&rx, 15, false, z.data, z.len, &out, 1 << 20);
        hr_alloc_fail_at(0);
        assert_true(rc == 0 || rc == HR_ENOMEM);
        done = rc == 0;
        if (done) {
            assert_int_equal(out.len, 300000);
            assert_memory_equal(out.data, d, 300000);
        } else {
            assert_int_equal(out.len, 0);
        }
        hr_deflate_stream_deinit(&rx);
        hr_buf_deinit(&out);
        assert_true(n < 100);
    }
    /* Negotiation allocates nothing. */
    hr_deflate_params_t p;
    char resp[128];
    hr_alloc_fail_at(1);
    assert_int_equal(hr_deflate_negotiate(PMD, strlen(PMD), &cfg, &p, resp, sizeof(resp)), 1);
    hr_alloc_fail_at(0);
    hr_buf_deinit(&z);
    free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_negotiate_table),
        cmocka_unit_test(test_negotiate_edges),
        cmocka_unit_test(test_offer),
        cmocka_unit_test(test_accept_response),
        cmocka_unit_test(test_offer_answer_roundtrip),
        cmocka_unit_test(test_rfc_examples),
        cmocka_unit_test(test_rfc_compress_bytes),
        cmocka_unit_test(test_roundtrip_sizes),
        cmocka_unit_test(test_roundtrip_windows),
        cmocka_unit_test(test_inflate_cap),
        cmocka_unit_test(test_corrupt),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
