/* Shared broadcast frames (see frame_cache.h). The deflated variant is published with a
 * compare-and-swap: two threads may both compress the first time, the loser frees its
 * copy; that rare double work is cheaper than a lock on the fan-out path. */
#include <string.h>

#include "base/alloc.h"
#include "herald/ws.h"
#include "proto/frame_cache.h"
#include "ws/ws_frame.h"

hr_refbuf_t *hr_frame_build(uint8_t opcode, bool rsv1, const void *data, size_t len)
{
    uint8_t hdr[HR_WS_FRAME_HEADER_MAX];
    size_t hl = hr_ws_frame_encode_header(hdr, true, rsv1 ? HR_WS_RSV1 : 0, opcode, len, NULL);
    hr_refbuf_t *rb = hr_refbuf_create(hl + len);
    if (!rb)
        return NULL;
    memcpy(rb->data, hdr, hl);
    if (len)
        memcpy(rb->data + hl, data, len);
    return rb;
}

hr_frame_t *hr_frame_create(const void *data, size_t len, bool binary)
{
    hr_frame_t *f = hr_malloc(sizeof(*f));
    if (!f)
        return NULL;
    f->plain = hr_frame_build(binary ? HR_WS_OP_BINARY : HR_WS_OP_TEXT, false, data, len);
    if (!f->plain) {
        hr_free(f);
        return NULL;
    }
    atomic_init(&f->refs, 1);
    f->binary = binary;
    f->payload_len = len;
    f->hdr_len = f->plain->len - len;
    atomic_init(&f->deflated, NULL);
    atomic_init(&f->deflate_failed, false);
    return f;
}

hr_frame_t *hr_frame_ref(hr_frame_t *f)
{
    atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    return f;
}

void hr_frame_unref(hr_frame_t *f)
{
    if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1)
        return;
    hr_refbuf_unref(f->plain);
    hr_refbuf_unref(atomic_load(&f->deflated));
    hr_free(f);
}

hr_refbuf_t *hr_frame_deflated(hr_frame_t *f, hr_deflate_stream_t *s,
                               const hr_deflate_config_t *cfg, hr_buf_t *scratch)
{
    hr_refbuf_t *rb = atomic_load_explicit(&f->deflated, memory_order_acquire);
    if (rb || atomic_load(&f->deflate_failed))
        return rb;
    scratch->len = 0;
    if (hr_deflate_compress(s, cfg, 15, true, f->plain->data + f->hdr_len, f->payload_len,
                            scratch) != 0 ||
        scratch->len >= f->payload_len) {
        /* Incompressible: recipients get the plain frame. */
        atomic_store(&f->deflate_failed, true);
        return NULL;
    }
    rb = hr_frame_build(f->binary ? HR_WS_OP_BINARY : HR_WS_OP_TEXT, true, scratch->data,
                        scratch->len);
    if (!rb)
        return NULL;
    hr_refbuf_t *expected = NULL;
    if (!atomic_compare_exchange_strong(&f->deflated, &expected, rb)) {
        hr_refbuf_unref(rb);
        rb = expected;
    }
    return rb;
}
