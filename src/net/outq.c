/* Out queue (see outq.h). A ring of item descriptors; writev takes up to 64 of them
 * per call, which is what makes a fan-out of many small frames cost one syscall per
 * recipient per loop iteration instead of one per frame. */
#include <errno.h>
#include <string.h>
#include <sys/uio.h>

#include "base/alloc.h"
#include "herald/error.h"
#include "net/outq.h"

#define OUTQ_IOV 64
/* Bytes of a private chunk: small frames are packed into one such block, so an echo of
 * many small messages costs no allocation per message and one iovec per chunk. The
 * size keeps the block (with the refbuf and malloc headers) within 4 KiB. */
#define OUTQ_CHUNK (4096 - 32)

void hr_outq_init(hr_outq_t *q)
{
    q->items = NULL;
    q->head = q->count = 0;
    q->cap_log2 = 0;
    q->bytes = 0;
    q->head_partial = false;
}

static hr_outq_item_t *at(hr_outq_t *q, uint32_t i)
{
    return &q->items[(q->head + i) & ((1u << q->cap_log2) - 1)];
}

static void release(hr_outq_t *q)
{
    hr_free(q->items);
    hr_outq_init(q);
}

void hr_outq_deinit(hr_outq_t *q)
{
    for (uint32_t i = 0; i < q->count; i++)
        hr_refbuf_unref(at(q, i)->rb);
    release(q);
}

static int grow(hr_outq_t *q)
{
    uint32_t cap = q->items ? 2u << q->cap_log2 : 8;
    hr_outq_item_t *items = hr_malloc(sizeof(*items) * cap);
    if (!items)
        return HR_ENOMEM;
    for (uint32_t i = 0; i < q->count; i++)
        items[i] = *at(q, i);
    hr_free(q->items);
    q->items = items;
    q->cap_log2 = (uint16_t)__builtin_ctz(cap);
    q->head = 0;
    return 0;
}

int hr_outq_push(hr_outq_t *q, hr_refbuf_t *rb, size_t off, size_t end)
{
    if (off >= end) { /* nothing to send: an empty item would stall writev */
        hr_refbuf_unref(rb);
        return 0;
    }
    if ((!q->items || q->count == 1u << q->cap_log2) && grow(q)) {
        hr_refbuf_unref(rb);
        return HR_ENOMEM;
    }
    hr_outq_item_t *it = at(q, q->count++);
    it->rb = rb;
    it->off = off;
    it->end = end;
    q->bytes += end - off;
    return 0;
}

int hr_outq_append(hr_outq_t *q, const void *a, size_t alen, const void *b, size_t blen)
{
    size_t n = alen + blen;
    if (q->count) {
        /* The last block takes more if it has room and nobody else holds it (a shared
         * frame is never written to: its range ends at its end, or others hold refs). */
        hr_outq_item_t *it = at(q, q->count - 1);
        hr_refbuf_t *rb = it->rb;
        if (rb->len - it->end >= n && atomic_load_explicit(&rb->refs, memory_order_relaxed) == 1) {
            if (alen)
                memcpy(rb->data + it->end, a, alen);
            if (blen)
                memcpy(rb->data + it->end + alen, b, blen);
            it->end += n;
            q->bytes += n;
            return 0;
        }
    }
    /* Into an empty queue a copy goes in a block of its own size (a lone reply, the
     * 101, costs no more than itself); behind queued data, small copies start a chunk
     * that the next ones share. */
    size_t cap = q->count && n < OUTQ_CHUNK ? OUTQ_CHUNK : n;
    hr_refbuf_t *rb = hr_refbuf_create(cap);
    if (!rb)
        return HR_ENOMEM;
    if (alen)
        memcpy(rb->data, a, alen);
    if (blen)
        memcpy(rb->data + alen, b, blen);
    return hr_outq_push(q, rb, 0, n);
}

int hr_outq_flush(hr_outq_t *q, int fd)
{
    while (q->count) {
        struct iovec iov[OUTQ_IOV];
        int n = 0;
        size_t want = 0;
        for (uint32_t i = 0; i < q->count && n < OUTQ_IOV; i++, n++) {
            hr_outq_item_t *it = at(q, i);
            iov[n].iov_base = it->rb->data + it->off;
            iov[n].iov_len = it->end - it->off;
            want += iov[n].iov_len;
        }
        ssize_t w;
        do {
            w = writev(fd, iov, n);
        } while (w < 0 && errno == EINTR);
        if (w < 0)
            return errno == EAGAIN ? HR_EAGAIN : -errno;
        size_t left = (size_t)w;
        q->bytes -= left;
        while (left) {
            hr_outq_item_t *it = at(q, 0);
            size_t len = it->end - it->off;
            if (left < len) {
                it->off += left;
                q->head_partial = true;
                break;
            }
            left -= len;
            q->head_partial = false;
            hr_refbuf_unref(it->rb);
            q->head = (q->head + 1) & ((1u << q->cap_log2) - 1);
            q->count--;
        }
        if ((size_t)w < want)
            return HR_EAGAIN; /* the socket took less than offered: it is full */
    }
    release(q);
    return 0;
}

void hr_outq_drop_unstarted(hr_outq_t *q)
{
    uint32_t keep = 0;
    if (q->count && q->head_partial)
        keep = 1;
    for (uint32_t i = keep; i < q->count; i++) {
        hr_outq_item_t *it = at(q, i);
        q->bytes -= it->end - it->off;
        hr_refbuf_unref(it->rb);
    }
    q->count = keep;
    if (!keep)
        release(q);
}
