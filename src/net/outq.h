#ifndef HR_NET_OUTQ_H
#define HR_NET_OUTQ_H

/* A connection's queue of outgoing byte ranges, each holding a reference to the
 * refcounted block it points into (a shared broadcast frame or a private one). Flushed
 * with writev; the item array exists only while something is queued. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/refbuf.h"

typedef struct hr_outq_item {
    hr_refbuf_t *rb;
    size_t off; /* next byte to send within rb->data */
    size_t end;
} hr_outq_item_t;

typedef struct hr_outq {
    hr_outq_item_t *items;
    size_t bytes; /* unsent bytes in total */
    uint32_t head, count;
    uint16_t cap_log2; /* capacity is 1 << cap_log2 items when items != NULL */
    bool head_partial; /* the first item is partly written */
} hr_outq_t;

void hr_outq_init(hr_outq_t *q);
/* Drops every item (unrefs) and frees the array. */
void hr_outq_deinit(hr_outq_t *q);
/* Queues rb->data[off..end), taking over the caller's reference. 0 or HR_ENOMEM (the
 * reference is then released). */
int hr_outq_push(hr_outq_t *q, hr_refbuf_t *rb, size_t off, size_t end);
/* Queues a private copy of a[0..alen) followed by b[0..blen) (a frame header and its
 * payload). Small copies are packed into the queue's last block when it is a private
 * chunk with room (no allocation per small frame); others get a block of their own.
 * 0 or HR_ENOMEM. */
int hr_outq_append(hr_outq_t *q, const void *a, size_t alen, const void *b, size_t blen);
/* Writes as much as the socket takes. Returns 0 when the queue is empty, HR_EAGAIN when
 * the socket is full, or -errno. */
int hr_outq_flush(hr_outq_t *q, int fd);
/* Unsent bytes behind the first item (the one being written or next to be written). */
static inline size_t hr_outq_backlog(const hr_outq_t *q)
{
    if (!q->count)
        return 0;
    const hr_outq_item_t *head = &q->items[q->head];
    return q->bytes - (head->end - head->off);
}
/* Drops every item that has not started to go out (a partly written one stays, so the
 * byte stream stays well-formed). */
void hr_outq_drop_unstarted(hr_outq_t *q);

#endif
