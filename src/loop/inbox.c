/* Bounded MPSC ring in the style of Vyukov's bounded queue: each cell carries a
 * sequence number that says whether it is free for the producer of that turn or full
 * for the consumer, so producers claim slots with one CAS and never take a lock.
 * The eventfd is written only on the 0 -> 1 edge of `signaled`, so a burst of posts
 * costs one wake-up syscall, not one per post. */
#include <errno.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "base/alloc.h"
#include "herald/error.h"
#include "loop/inbox.h"

int hr_inbox_init(hr_inbox_t *q, size_t capacity)
{
    size_t n = 2;
    while (n < capacity)
        n *= 2;
    q->cells = hr_calloc(n, sizeof(*q->cells));
    if (!q->cells)
        return HR_ENOMEM;
    for (size_t i = 0; i < n; i++)
        atomic_init(&q->cells[i].seq, i);
    q->mask = n - 1;
    atomic_init(&q->head, 0);
    q->tail = 0;
    atomic_init(&q->signaled, 0);
    q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (q->efd < 0) {
        int err = -errno;
        hr_free(q->cells);
        return err;
    }
    return 0;
}

void hr_inbox_deinit(hr_inbox_t *q)
{
    if (q->efd >= 0)
        close(q->efd);
    hr_free(q->cells);
    q->cells = NULL;
    q->efd = -1;
}

int hr_inbox_push(hr_inbox_t *q, hr_inbox_fn fn, void *ctx, void *arg)
{
    size_t pos = atomic_load_explicit(&q->head, memory_order_relaxed);
    hr_inbox_cell_t *c;
    for (;;) {
        c = &q->cells[pos & q->mask];
        size_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
        intptr_t dif = (intptr_t)seq - (intptr_t)pos;
        if (dif == 0) {
            if (atomic_compare_exchange_weak_explicit(&q->head, &pos, pos + 1, memory_order_relaxed,
                                                      memory_order_relaxed))
                break;
        } else if (dif < 0) {
            return HR_ENOBUFS;
        } else {
            pos = atomic_load_explicit(&q->head, memory_order_relaxed);
        }
    }
    c->fn = fn;
    c->ctx = ctx;
    c->arg = arg;
    atomic_store_explicit(&c->seq, pos + 1, memory_order_release);
    if (atomic_exchange(&q->signaled, 1) == 0) {
        uint64_t one = 1;
        ssize_t w;
        do {
            w = write(q->efd, &one, sizeof(one));
        } while (w < 0 && errno == EINTR);
    }
    return 0;
}

size_t hr_inbox_drain(hr_inbox_t *q)
{
    uint64_t v;
    ssize_t r;
    do {
        r = read(q->efd, &v, sizeof(v));
    } while (r < 0 && errno == EINTR);
    atomic_store(&q->signaled, 0);
    size_t ran = 0;
    for (;;) {
        hr_inbox_cell_t *c = &q->cells[q->tail & q->mask];
        size_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
        if (seq != q->tail + 1)
            break;
        hr_inbox_fn fn = c->fn;
        void *ctx = c->ctx, *arg = c->arg;
        atomic_store_explicit(&c->seq, q->tail + q->mask + 1, memory_order_release);
        q->tail++;
        fn(ctx, arg);
        ran++;
    }
    return ran;
}
