/* Unit tests for the inbox (src/loop/inbox.c): posts run in FIFO order, a full queue
 * refuses with HR_ENOBUFS and loses nothing, the eventfd is readable exactly while
 * posts are pending, and 4 producer threads x 100000 posts reach one consumer thread
 * (woken by poll() on the eventfd) exactly once each, in per-producer order. */
#include "test_util.h"

#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <string.h>

#include "herald/error.h"
#include "loop/inbox.h"

typedef struct seen {
    uintptr_t v[256];
    size_t n;
} seen_t;

static void record(void *ctx, void *arg)
{
    seen_t *s = ctx;
    assert_true(s->n < 256);
    s->v[s->n++] = (uintptr_t)arg;
}

static bool efd_readable(const hr_inbox_t *q)
{
    struct pollfd p = {.fd = q->efd, .events = POLLIN};
    return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

static void test_inbox_runs_posts_in_fifo_order(void **state)
{
    (void)state;
    hr_inbox_t q;
    assert_int_equal(hr_inbox_init(&q, 64), 0);
    seen_t s = {0};
    assert_int_equal(hr_inbox_drain(&q), 0);
    for (uintptr_t i = 0; i < 40; i++)
        assert_int_equal(hr_inbox_push(&q, record, &s, (void *)i), 0);
    assert_int_equal(hr_inbox_drain(&q), 40);
    assert_int_equal(s.n, 40);
    for (size_t i = 0; i < 40; i++)
        assert_int_equal(s.v[i], i);
    assert_int_equal(hr_inbox_drain(&q), 0);
    hr_inbox_deinit(&q);
}

static void test_inbox_full_queue_is_enobufs_and_nothing_lost(void **state)
{
    (void)state;
    hr_inbox_t q;
    assert_int_equal(hr_inbox_init(&q, 5), 0); /* rounded up to 8 */
    seen_t s = {0};
    uintptr_t next = 0;
    for (int round = 0; round < 50; round++) {
        size_t queued = 0;
        while (hr_inbox_push(&q, record, &s, (void *)next) == 0) {
            next++;
            queued++;
            assert_true(queued <= 8);
        }
        assert_int_equal(queued, 8);
        assert_int_equal(hr_inbox_push(&q, record, &s, (void *)9999), HR_ENOBUFS);
        s.n = 0;
        assert_int_equal(hr_inbox_drain(&q), 8);
        for (size_t i = 0; i < 8; i++)
            assert_int_equal(s.v[i], next - 8 + i);
        s.n = 0;
        /* partly drained ring: wraps around */
        for (int i = 0; i < 3; i++)
            assert_int_equal(hr_inbox_push(&q, record, &s, (void *)next++), 0);
        assert_int_equal(hr_inbox_drain(&q), 3);
        assert_int_equal(s.v[0], next - 3);
        assert_int_equal(s.v[2], next - 1);
        s.n = 0;
    }
    hr_inbox_deinit(&q);
}

static void test_inbox_tiny_capacity_refuses_when_full_and_loses_nothing(void **state)
{
    (void)state;
    hr_inbox_t q;
    assert_int_equal(hr_inbox_init(&q, 1), 0);
    seen_t s = {0};
    uintptr_t n = 0;
    while (hr_inbox_push(&q, record, &s, (void *)n) == 0)
        n++;
    assert_true(n >= 1 && n <= 2);
    assert_int_equal(hr_inbox_push(&q, record, &s, (void *)99), HR_ENOBUFS);
    assert_int_equal(hr_inbox_drain(&q), n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(s.v[i], i);
    hr_inbox_deinit(&q);
}

static void test_inbox_eventfd_readable_while_posts_pending(void **state)
{
    (void)state;
    hr_inbox_t q;
    assert_int_equal(hr_inbox_init(&q, 16), 0);
    seen_t s = {0};
    assert_false(efd_readable(&q));
    assert_int_equal(hr_inbox_push(&q, record, &s, (void *)1), 0);
    assert_true(efd_readable(&q));
    assert_int_equal(hr_inbox_push(&q, record, &s, (void *)2), 0);
    assert_int_equal(hr_inbox_drain(&q), 2);
    assert_false(efd_readable(&q));
    /* the next post after a drain wakes again */
    assert_int_equal(hr_inbox_push(&q, record, &s, (void *)3), 0);
    assert_true(efd_readable(&q));
    assert_int_equal(hr_inbox_drain(&q), 1);
    assert_false(efd_readable(&q));
    hr_inbox_deinit(&q);
}

/* A post that posts again from inside drain: it is queued, not lost, and the eventfd
 * says so. */
typedef struct repost {
    hr_inbox_t *q;
    int runs;
} repost_t;

static void repost_fn(void *ctx, void *arg)
{
    repost_t *r = ctx;
    (void)arg;
    if (r->runs++ == 0)
        assert_int_equal(hr_inbox_push(r->q, repost_fn, r, NULL), 0);
}

static void test_inbox_post_from_inside_drain_is_kept(void **state)
{
    (void)state;
    hr_inbox_t q;
    assert_int_equal(hr_inbox_init(&q, 16), 0);
    repost_t r = {.q = &q};
    assert_int_equal(hr_inbox_push(&q, repost_fn, &r, NULL), 0);
    size_t ran = hr_inbox_drain(&q);
    if (ran == 1) {
        assert_true(efd_readable(&q));
        assert_int_equal(hr_inbox_drain(&q), 1);
    }
    assert_int_equal(r.runs, 2);
    hr_inbox_deinit(&q);
}

/* ------------------------------------------------------------------------------------
 * Many producers, one consumer.
 * ---------------------------------------------------------------------------------- */

enum { PRODUCERS = 4, POSTS = 100000 };

typedef struct mpsc {
    hr_inbox_t q;
    size_t next[PRODUCERS]; /* consumer side: the next sequence number expected */
    size_t total;
    size_t out_of_order;
    size_t lost_wakeups; /* poll timed out while posts were pending */
    size_t enobufs;      /* producer side, summed after join */
} mpsc_t;

typedef struct producer {
    mpsc_t *m;
    uintptr_t id;
    size_t enobufs;
} producer_t;

static void consume_one(void *ctx, void *arg)
{
    mpsc_t *m = ctx;
    uintptr_t v = (uintptr_t)arg;
    size_t id = (size_t)(v >> 24), seq = (size_t)(v & 0xFFFFFF);
    if (id >= PRODUCERS || m->next[id] != seq)
        m->out_of_order++;
    else
        m->next[id]++;
    m->total++;
}

static void *producer_main(void *p)
{
    producer_t *pr = p;
    for (uintptr_t i = 0; i < POSTS; i++) {
        while (hr_inbox_push(&pr->m->q, consume_one, pr->m, (void *)(pr->id << 24 | i)) ==
               HR_ENOBUFS) {
            pr->enobufs++;
            sched_yield();
        }
    }
    return NULL;
}

static void *consumer_main(void *p)
{
    mpsc_t *m = p;
    while (m->total < (size_t)PRODUCERS * POSTS) {
        struct pollfd pfd = {.fd = m->q.efd, .events = POLLIN};
        int rc = poll(&pfd, 1, 1000);
        size_t ran = hr_inbox_drain(&m->q);
        if (rc == 0 && ran > 0)
            m->lost_wakeups++;
    }
    return NULL;
}

static void test_inbox_four_producers_one_consumer_every_post_once_in_order(void **state)
{
    (void)state;
    static mpsc_t m;
    memset(&m, 0, sizeof(m));
    assert_int_equal(hr_inbox_init(&m.q, 1024), 0);
    pthread_t consumer, producers[PRODUCERS];
    producer_t pr[PRODUCERS];
    assert_int_equal(pthread_create(&consumer, NULL, consumer_main, &m), 0);
    for (int i = 0; i < PRODUCERS; i++) {
        pr[i] = (producer_t){.m = &m, .id = (uintptr_t)i};
        assert_int_equal(pthread_create(&producers[i], NULL, producer_main, &pr[i]), 0);
    }
    for (int i = 0; i < PRODUCERS; i++) {
        pthread_join(producers[i], NULL);
        m.enobufs += pr[i].enobufs;
    }
    pthread_join(consumer, NULL);
    assert_int_equal(m.out_of_order, 0);
    assert_int_equal(m.total, (size_t)PRODUCERS * POSTS);
    for (int i = 0; i < PRODUCERS; i++)
        assert_int_equal(m.next[i], POSTS);
    assert_int_equal(m.lost_wakeups, 0);
    assert_int_equal(hr_inbox_drain(&m.q), 0);
    hr_inbox_deinit(&m.q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inbox_runs_posts_in_fifo_order),
        cmocka_unit_test(test_inbox_full_queue_is_enobufs_and_nothing_lost),
        cmocka_unit_test(test_inbox_tiny_capacity_refuses_when_full_and_loses_nothing),
        cmocka_unit_test(test_inbox_eventfd_readable_while_posts_pending),
        cmocka_unit_test(test_inbox_post_from_inside_drain_is_kept),
        cmocka_unit_test(test_inbox_four_producers_one_consumer_every_post_once_in_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
