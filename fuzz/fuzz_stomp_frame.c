/* Fuzz target for the STOMP frame codec (src/proto/stomp_frame.c). The first byte picks
 * the version (bits 0-1: 1.0, 1.1, 1.2, 1.2), small limits (bit 2) and a chunk size
 * (bits 3-7, plus one); the rest is a byte stream parsed like a connection would: frames,
 * heart-beats, then need-more or an error. Checked, aborting on any disagreement:
 * - every frame respects the limits, its body holds no NUL unless content-length was
 *   given, and the first content-length equals the body length;
 * - the stream fed in chunks (the caller keeping unconsumed bytes and waiting for
 *   need_hint) gives the same frames and the same final error as the whole stream;
 * - re-encoding a frame and parsing it back gives the same command, headers and body,
 *   wherever the encoding can carry them: always, except a value ending with CR in 1.0
 *   or 1.1 (no \r escape there, so the CR reads back as half of a CRLF; 1.2 refuses a
 *   raw CR, and escapes it where escapes exist). Content-length headers are compared apart: the
 * encoder writes its own, once, after the others. Re-encoding that parse gives the same bytes
 * again. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "proto/stomp_frame.h"

static void check(bool ok)
{
    if (!ok)
        abort();
}

static bool slice_eq(hr_slice_t a, hr_slice_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static bool is_content_length(hr_slice_t name)
{
    return name.len == 14 && memcmp(name.ptr, "content-length", 14) == 0;
}

/* Frames are large (256 headers); one of each role, not on the stack. */
static hr_stomp_frame_t whole_frame, chunk_frame, rt_frame, rt2_frame;

static void digest(hr_buf_t *log, const hr_stomp_frame_t *f)
{
    check(hr_buf_appendf(log, "%d %zu %d %zu|", (int)f->cmd, f->nheaders, f->has_content_length,
                         f->body.len) == 0);
    for (size_t i = 0; i < f->nheaders; i++) {
        const hr_stomp_header_t *h = &f->headers[i];
        check(hr_buf_appendf(log, "%zu,%zu|", h->name.len, h->value.len) == 0);
        check(hr_buf_append(log, h->name.ptr, h->name.len) == 0);
        check(hr_buf_append(log, h->value.ptr, h->value.len) == 0);
    }
    check(hr_buf_append(log, f->body.ptr, f->body.len) == 0);
}

static void check_frame(const hr_stomp_frame_t *f, const hr_stomp_limits_t *lim)
{
    check(f->cmd != HR_STOMP_UNKNOWN);
    const char *name = hr_stomp_cmd_name(f->cmd);
    check(hr_slice_eq_str(f->cmd_text, name));
    check(f->nheaders <= lim->max_headers && f->nheaders <= HR_STOMP_MAX_HEADERS_CAP);
    check(f->body.len <= lim->max_body);
    for (size_t i = 0; i < f->nheaders; i++)
        check(f->headers[i].name.len > 0);
    const hr_slice_t *cl = hr_stomp_header_get(f, "content-length");
    check(f->has_content_length == (cl != NULL));
    if (cl) {
        size_t n = 0;
        const uint8_t *p = cl->ptr;
        for (size_t i = 0; i < cl->len; i++) {
            check(p[i] >= '0' && p[i] <= '9');
            check(n <= (SIZE_MAX - 9) / 10);
            n = n * 10 + (size_t)(p[i] - '0');
        }
        check(n == f->body.len);
    } else {
        check(f->body.len == 0 || memchr(f->body.ptr, '\0', f->body.len) == NULL);
    }
}

/* Encodes f into out (emptied first). */
static void encode(hr_buf_t *out, hr_stomp_version_t v, const hr_stomp_frame_t *f)
{
    out->len = 0;
    check(hr_stomp_encode(out, v, f->cmd, f->headers, f->nheaders, f->body.ptr, f->body.len,
                          f->has_content_length) == 0);
}

static void round_trip(hr_stomp_version_t v, const hr_stomp_frame_t *f)
{
    for (size_t i = 0; i < f->nheaders && v != HR_STOMP_12; i++) {
        hr_slice_t val = f->headers[i].value;
        if (val.len && ((const uint8_t *)val.ptr)[val.len - 1] == '\r')
            return;
    }
    hr_stomp_limits_t open = {HR_STOMP_MAX_HEADERS_CAP, SIZE_MAX, SIZE_MAX};
    hr_buf_t e1, e2, sc1, sc2;
    hr_buf_init(&e1);
    hr_buf_init(&e2);
    hr_buf_init(&sc1);
    hr_buf_init(&sc2);
    size_t used, hint;
    const char *err;

    encode(&e1, v, f);
    hr_stomp_result_t r =
        hr_stomp_parse(e1.data, e1.len, v, &open, &rt_frame, &sc1, &used, &hint, &err);
    check(r == HR_STOMP_FRAME && used == e1.len);
    const hr_stomp_frame_t *g = &rt_frame;
    check(g->cmd == f->cmd && g->has_content_length == f->has_content_length);
    check(slice_eq(g->body, f->body));
    size_t j = 0;
    for (size_t i = 0; i < f->nheaders; i++) {
        if (is_content_length(f->headers[i].name))
            continue;
        check(j < g->nheaders);
        check(slice_eq(g->headers[j].name, f->headers[i].name));
        check(slice_eq(g->headers[j].value, f->headers[i].value));
        j++;
    }
    check(g->nheaders == j + (f->has_content_length ? 1 : 0));
    if (f->has_content_length)
        check(is_content_length(g->headers[j].name));

    encode(&e2, v, g);
    check(e2.len == e1.len && memcmp(e2.data, e1.data, e1.len) == 0);
    r = hr_stomp_parse(e2.data, e2.len, v, &open, &rt2_frame, &sc2, &used, &hint, &err);
    check(r == HR_STOMP_FRAME && used == e2.len);

    hr_buf_deinit(&e1);
    hr_buf_deinit(&e2);
    hr_buf_deinit(&sc1);
    hr_buf_deinit(&sc2);
}

/* The whole stream in one buffer, like a caller that got it in one read. */
static void parse_whole(const uint8_t *data, size_t size, hr_stomp_version_t v,
                        const hr_stomp_limits_t *lim, hr_buf_t *log)
{
    hr_buf_t scratch;
    hr_buf_init(&scratch);
    size_t at = 0;
    for (;;) {
        size_t used, hint;
        const char *err;
        hr_stomp_result_t r = hr_stomp_parse(data + at, size - at, v, lim, &whole_frame, &scratch,
                                             &used, &hint, &err);
        check(used <= size - at);
        if (r == HR_STOMP_FRAME) {
            check(used > 0 && err == NULL && hint == 0);
            check_frame(&whole_frame, lim);
            digest(log, &whole_frame);
            round_trip(v, &whole_frame);
        } else if (r == HR_STOMP_HEARTBEAT) {
            check(used > 0 && err == NULL && hint == 0);
            for (size_t i = 0; i < used; i++)
                check(data[at + i] == '\n' || data[at + i] == '\r');
        } else if (r == HR_STOMP_NEED_MORE) {
            check(used == 0 && err == NULL && (hint == 0 || hint > size - at));
            break;
        } else {
            check(r == HR_STOMP_ERR_SYNTAX || r == HR_STOMP_ERR_TOO_LARGE);
            check(err != NULL && err[0] != '\0' && used == 0);
            check(hr_buf_appendf(log, "error %d %s", (int)r, err) == 0);
            break;
        }
        at += used;
    }
    hr_buf_deinit(&scratch);
}

/* The same stream arriving chunk bytes at a time. */
static void parse_chunked(const uint8_t *data, size_t size, size_t chunk, hr_stomp_version_t v,
                          const hr_stomp_limits_t *lim, hr_buf_t *log)
{
    hr_buf_t pending, scratch;
    hr_buf_init(&pending);
    hr_buf_init(&scratch);
    size_t wait_for = 0;
    bool stopped = false;
    for (size_t at = 0; at < size && !stopped; at += chunk) {
        size_t n = size - at < chunk ? size - at : chunk;
        check(hr_buf_append(&pending, data + at, n) == 0);
        while (!stopped && pending.len >= wait_for) {
            size_t used, hint;
            const char *err;
            hr_stomp_result_t r = hr_stomp_parse(pending.data, pending.len, v, lim, &chunk_frame,
                                                 &scratch, &used, &hint, &err);
            wait_for = 0;
            if (r == HR_STOMP_FRAME) {
                digest(log, &chunk_frame);
            } else if (r == HR_STOMP_NEED_MORE) {
                wait_for = hint;
                break;
            } else if (r != HR_STOMP_HEARTBEAT) {
                check(hr_buf_appendf(log, "error %d %s", (int)r, err) == 0);
                stopped = true;
            }
            hr_buf_consume(&pending, used);
        }
    }
    hr_buf_deinit(&pending);
    hr_buf_deinit(&scratch);
}

/* libFuzzer's entry point; declared here to satisfy -Wmissing-prototypes. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const hr_stomp_version_t versions[] = {HR_STOMP_10, HR_STOMP_11, HR_STOMP_12,
                                                  HR_STOMP_12};
    if (size == 0)
        return 0;
    uint8_t sel = data[0];
    data++;
    size--;
    hr_stomp_version_t v = versions[sel & 3];
    hr_stomp_limits_t lim;
    hr_stomp_limits_default(&lim);
    if (sel & 4) {
        lim.max_headers = 3;
        lim.max_header_bytes = 48;
        lim.max_body = 16;
    }
    size_t chunk = (size_t)(sel >> 3) + 1;

    hr_buf_t whole, chunked;
    hr_buf_init(&whole);
    hr_buf_init(&chunked);
    parse_whole(data, size, v, &lim, &whole);
    /* Re-reading the header section on every chunk is quadratic: keep it to small inputs. */
    if (size / chunk <= 512) {
        parse_chunked(data, size, chunk, v, &lim, &chunked);
        check(chunked.len == whole.len &&
              (whole.len == 0 || memcmp(chunked.data, whole.data, whole.len) == 0));
    }
    hr_buf_deinit(&whole);
    hr_buf_deinit(&chunked);
    return 0;
}
