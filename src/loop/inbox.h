#ifndef HR_LOOP_INBOX_H
#define HR_LOOP_INBOX_H

/* Bounded multi-producer, single-consumer queue of (fn, ctx, arg) posts, plus an
 * eventfd that wakes the consumer's loop. Any thread may push; only the owning loop
 * thread drains. Fixed capacity, so a burst can never grow memory without bound. */

#include <stdatomic.h>
#include <stddef.h>

typedef void (*hr_inbox_fn)(void *ctx, void *arg);

typedef struct hr_inbox_cell {
    atomic_size_t seq;
    hr_inbox_fn fn;
    void *ctx;
    void *arg;
} hr_inbox_cell_t;

typedef struct hr_inbox {
    hr_inbox_cell_t *cells;
    size_t mask;
    _Alignas(64) atomic_size_t head; /* next slot producers claim */
    _Alignas(64) size_t tail;        /* next slot the consumer reads */
    atomic_int signaled;
    int efd;
} hr_inbox_t;

/* capacity is rounded up to a power of two. Returns 0, HR_ENOMEM or -errno. */
int hr_inbox_init(hr_inbox_t *q, size_t capacity);
void hr_inbox_deinit(hr_inbox_t *q);
/* Any thread. Returns 0, or HR_ENOBUFS when the queue is full (nothing was queued). */
int hr_inbox_push(hr_inbox_t *q, hr_inbox_fn fn, void *ctx, void *arg);
/* Owner thread: clears the eventfd and runs every queued post in order. Returns the
 * number run. */
size_t hr_inbox_drain(hr_inbox_t *q);

#endif
