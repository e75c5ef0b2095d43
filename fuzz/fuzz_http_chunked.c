/* Fuzzes the chunked request-body decoder (src/http/http_chunked.c). The input's first
 * byte picks a body limit and a split point; the rest is decoded whole, then in two
 * pieces at the split, then one byte at a time.
 *
 * Invariants beyond "no crash": the three runs agree on the verdict, the status, the
 * decoded bytes and where the body ended; the data never grows (decoding is in place)
 * nor passes the limit; a decoded body, framed again as one chunk, decodes to itself.
 * The same bytes as a Transfer-Encoding value get 1, 400 or 501 and nothing else. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald/error.h"
#include "http/http_chunked.h"

/* libFuzzer's entry point; declared here because no header of ours owns it. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct run {
    ssize_t verdict; /* 0 complete, HR_EAGAIN, or the error */
    int status;
    size_t end; /* input bytes up to the end of the body (when complete) */
    uint8_t *body;
    size_t body_len;
} run_t;

/* Feeds in[0..len) in pieces of at most step bytes (or split at cut, when step is 0). */
static void decode(const uint8_t *in, size_t len, size_t max, size_t cut, size_t step, run_t *r)
{
    hr_http_chunked_t d;
    hr_http_chunked_init(&d, max);
    uint8_t *buf = malloc(len ? len : 1);
    r->body = malloc(len ? len : 1);
    if (!buf || !r->body)
        abort();
    memcpy(buf, in, len);
    r->verdict = HR_EAGAIN;
    r->body_len = r->end = 0;
    size_t at = 0;
    while (at < len) {
        size_t n = step ? step : (at < cut ? cut - at : len - at);
        if (n > len - at)
            n = len - at;
        size_t out = SIZE_MAX;
        ssize_t v = hr_http_chunked_feed(&d, buf + at, n, &out);
        if (out > n)
            abort();
        memcpy(r->body + r->body_len, buf + at, out);
        r->body_len += out;
        if (v < 0 && v != HR_EAGAIN) {
            r->verdict = v;
            break;
        }
        if (v >= 0) {
            if ((size_t)v > n)
                abort();
            r->verdict = 0;
            r->end = at + (size_t)v;
            break;
        }
        at += n;
    }
    r->status = hr_http_chunked_status(&d);
    if (r->body_len > max || r->body_len != d.body_len)
        abort();
    if ((r->verdict == 0 || r->verdict == HR_EAGAIN) != (r->status == 0))
        abort();
    free(buf);
}

static void same(const run_t *a, const run_t *b)
{
    if (a->verdict != b->verdict || a->status != b->status)
        abort();
    if (a->verdict == 0 && (a->end != b->end || a->body_len != b->body_len ||
                            memcmp(a->body, b->body, a->body_len) != 0))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t max = (size_t)(data[0] & 0x0f) * 16;
    if (data[0] & 0x10)
        max = SIZE_MAX;
    data++;
    size--;
    /* The same bytes as a Transfer-Encoding value: a verdict, never anything else. */
    hr_http_header_t te = {"Transfer-Encoding", 17, (const char *)data, size};
    hr_http_request_t req = {
        .version_major = 1, .version_minor = 1, .headers = &te, .num_headers = 1};
    int framing = hr_http_chunked_framing(&req);
    if (framing != 1 && framing != 400 && framing != 501)
        abort();
    size_t cut = size ? (size_t)(data[0] >> 5) * size / 8 : 0;
    run_t whole, two, bytes;
    decode(data, size, max, size, 0, &whole);
    decode(data, size, max, cut, 0, &two);
    decode(data, size, max, 0, 1, &bytes);
    same(&whole, &two);
    same(&whole, &bytes);
    if (whole.verdict == 0 && whole.body_len) {
        /* Framed again as one chunk: the same body, completing right at the end. */
        size_t n = whole.body_len;
        uint8_t *again = malloc(n + 32);
        if (!again)
            abort();
        int h = snprintf((char *)again, 32, "%zx\r\n", n);
        memcpy(again + h, whole.body, n);
        memcpy(again + h + n, "\r\n0\r\n\r\n", 7);
        run_t r;
        decode(again, (size_t)h + n + 7, n, SIZE_MAX, 0, &r);
        if (r.verdict != 0 || r.end != (size_t)h + n + 7 || r.body_len != n ||
            memcmp(r.body, whole.body, n) != 0)
            abort();
        free(r.body);
        free(again);
    }
    free(whole.body);
    free(two.body);
    free(bytes.body);
    return 0;
}
