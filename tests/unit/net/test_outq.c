/* Unit tests for the out queue (src/net/outq.c), flushed into a non-blocking
 * socketpair: bytes arrive in order and intact across partial writes, HR_EAGAIN when
 * the socket is full, hr_outq_backlog leaves out the head item, hr_outq_drop_unstarted
 * keeps a partly written head so the stream stays well-formed, and every reference is
 * released exactly once (ASan reports leaks and double frees). */
#include "test_util.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/refbuf.h"
#include "herald/error.h"
#include "net/outq.h"

typedef struct pair {
    int w, r; /* write end (small SO_SNDBUF), read end */
} pair_t;

static pair_t pair_open(int sndbuf)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    if (sndbuf > 0)
        assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)), 0);
    return (pair_t){.w = sv[0], .r = sv[1]};
}

static void pair_close(pair_t *p)
{
    if (p->w >= 0)
        close(p->w);
    if (p->r >= 0)
        close(p->r);
    p->w = p->r = -1;
}

/* Reads everything available now from the read end, appending to *got. */
static size_t drain_into(int fd, uint8_t *got, size_t cap, size_t *len)
{
    size_t before = *len;
    for (;;) {
        assert_true(*len <= cap);
        ssize_t n = read(fd, got + *len, cap - *len);
        if (n < 0) {
            assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
            break;
        }
        if (n == 0)
            break;
        *len += (size_t)n;
        if (*len == cap) {
            uint8_t extra;
            assert_int_equal(read(fd, &extra, 1), -1); /* nothing beyond what we expect */
            break;
        }
    }
    return *len - before;
}

/* A block whose byte i is the pattern value of stream offset base + i. */
static uint8_t pattern(size_t off)
{
    return (uint8_t)(off * 131 + (off >> 8) * 7 + 3);
}

static hr_refbuf_t *block(size_t base, size_t len)
{
    hr_refbuf_t *rb = hr_refbuf_create(len);
    assert_non_null(rb);
    for (size_t i = 0; i < len; i++)
        rb->data[i] = pattern(base + i);
    return rb;
}

static unsigned refs(hr_refbuf_t *rb)
{
    return atomic_load(&rb->refs);
}

static void test_outq_flush_writes_everything_in_order(void **state)
{
    (void)state;
    pair_t p = pair_open(0);
    hr_outq_t q;
    hr_outq_init(&q);
    assert_int_equal(hr_outq_flush(&q, p.w), 0); /* empty */
    size_t total = 0;
    for (size_t i = 0; i < 100; i++) { /* more than one writev of 64 */
        size_t len = 1 + i % 37;
        /* a sub-range [3, 3 + len) of a larger block */
        hr_refbuf_t *rb = hr_refbuf_create(len + 6);
        assert_non_null(rb);
        for (size_t k = 0; k < len; k++)
            rb->data[3 + k] = pattern(total + k);
        assert_int_equal(hr_outq_push(&q, rb, 3, 3 + len), 0);
        total += len;
    }
    assert_int_equal(q.bytes, total);
    assert_int_equal(hr_outq_flush(&q, p.w), 0);
    assert_int_equal(q.count, 0);
    assert_int_equal(q.bytes, 0);
    assert_null(q.items); /* the array is freed once empty */
    uint8_t *got = malloc(total);
    size_t len = 0;
    drain_into(p.r, got, total, &len);
    assert_int_equal(len, total);
    for (size_t i = 0; i < total; i++)
        assert_int_equal(got[i], pattern(i));
    free(got);
    hr_outq_deinit(&q);
    pair_close(&p);
}

static void test_outq_backlog_excludes_the_head_item(void **state)
{
    (void)state;
    hr_outq_t q;
    hr_outq_init(&q);
    assert_int_equal(hr_outq_backlog(&q), 0);
    assert_int_equal(hr_outq_push(&q, block(0, 10), 0, 10), 0);
    assert_int_equal(hr_outq_backlog(&q), 0);
    assert_int_equal(hr_outq_push(&q, block(10, 20), 0, 20), 0);
    assert_int_equal(hr_outq_push(&q, block(30, 30), 5, 30), 0);
    assert_int_equal(hr_outq_backlog(&q), 45);
    assert_int_equal(q.bytes, 55);
    hr_outq_deinit(&q);
    assert_int_equal(q.count, 0);
    assert_null(q.items);
}

/* Fills a small socket buffer: HR_EAGAIN, then read and flush again until 0. Items are
 * pushed between flushes too, so the ring wraps and grows while partly sent. */
static void test_outq_partial_writes_arrive_in_order_and_intact(void **state)
{
    (void)state;
    pair_t p = pair_open(4096);
    hr_outq_t q;
    hr_outq_init(&q);
    enum { TOTAL = 600 * 1000 };
    uint8_t *got = malloc(TOTAL);
    assert_non_null(got);
    size_t pushed = 0, len = 0;
    int eagain = 0, rounds = 0;
    while (len < TOTAL) {
        assert_true(++rounds < 1000000);
        /* push a few items of varying size */
        for (int i = 0; i < 5 && pushed < TOTAL; i++) {
            size_t n = 1 + (pushed * 7 + (size_t)rounds * 13) % 3000;
            if (n > TOTAL - pushed)
                n = TOTAL - pushed;
            assert_int_equal(hr_outq_push(&q, block(pushed, n), 0, n), 0);
            pushed += n;
        }
        size_t before = q.bytes;
        int rc = hr_outq_flush(&q, p.w);
        if (rc == HR_EAGAIN) {
            eagain++;
            assert_true(q.count > 0);
            assert_true(q.bytes > 0);
            assert_true(q.bytes <= before);
            /* the backlog is everything but what is left of the head */
            const hr_outq_item_t *h = &q.items[q.head];
            assert_int_equal(hr_outq_backlog(&q), q.bytes - (h->end - h->off));
        } else {
            assert_int_equal(rc, 0);
            assert_int_equal(q.bytes, 0);
            assert_int_equal(q.count, 0);
        }
        drain_into(p.r, got, TOTAL, &len);
    }
    assert_true(eagain > 0); /* the socket really filled up */
    assert_int_equal(hr_outq_flush(&q, p.w), 0);
    for (size_t i = 0; i < TOTAL; i++)
        if (got[i] != pattern(i))
            fail_msg("byte %zu differs", i);
    free(got);
    hr_outq_deinit(&q);
    pair_close(&p);
}

static void test_outq_drop_unstarted_keeps_partly_written_head(void **state)
{
    (void)state;
    pair_t p = pair_open(4096);
    hr_outq_t q;
    hr_outq_init(&q);
    enum { BIG = 1 << 20 };
    hr_refbuf_t *a = block(0, BIG); /* far more than the socket takes */
    hr_refbuf_t *b = block(BIG, 100);
    hr_refbuf_t *c = block(BIG + 100, 100);
    hr_refbuf_ref(b); /* our own references, to watch the queue's go */
    hr_refbuf_ref(c);
    assert_int_equal(hr_outq_push(&q, a, 0, BIG), 0);
    assert_int_equal(hr_outq_push(&q, b, 0, 100), 0);
    assert_int_equal(hr_outq_push(&q, c, 0, 100), 0);
    assert_int_equal(hr_outq_flush(&q, p.w), HR_EAGAIN);
    assert_true(q.head_partial);
    assert_int_equal(q.count, 3);
    assert_int_equal(hr_outq_backlog(&q), 200);
    size_t left = q.bytes - 200;
    assert_true(left > 0 && left < BIG);

    hr_outq_drop_unstarted(&q);
    assert_int_equal(q.count, 1);
    assert_int_equal(q.bytes, left);
    assert_int_equal(hr_outq_backlog(&q), 0);
    assert_int_equal(refs(b), 1);
    assert_int_equal(refs(c), 1);

    /* the head goes out whole; nothing of b or c does */
    uint8_t *got = malloc(BIG);
    assert_non_null(got);
    size_t len = 0;
    int rc;
    do {
        drain_into(p.r, got, BIG, &len);
        rc = hr_outq_flush(&q, p.w);
        assert_true(rc == 0 || rc == HR_EAGAIN);
    } while (rc != 0);
    drain_into(p.r, got, BIG, &len);
    assert_int_equal(len, BIG);
    for (size_t i = 0; i < BIG; i++)
        if (got[i] != pattern(i))
            fail_msg("byte %zu differs", i);
    uint8_t extra;
    assert_int_equal(read(p.r, &extra, 1), -1);
    free(got);
    hr_refbuf_unref(b);
    hr_refbuf_unref(c);
    hr_outq_deinit(&q);
    pair_close(&p);
}

static void test_outq_drop_unstarted_with_nothing_sent_drops_all(void **state)
{
    (void)state;
    hr_outq_t q;
    hr_outq_init(&q);
    hr_outq_drop_unstarted(&q); /* empty: harmless */
    hr_refbuf_t *a = block(0, 10);
    hr_refbuf_ref(a);
    assert_int_equal(hr_outq_push(&q, a, 0, 10), 0);
    assert_int_equal(hr_outq_push(&q, block(10, 10), 0, 10), 0);
    hr_outq_drop_unstarted(&q);
    assert_int_equal(q.count, 0);
    assert_int_equal(q.bytes, 0);
    assert_int_equal(hr_outq_backlog(&q), 0);
    assert_null(q.items);
    assert_int_equal(refs(a), 1);
    hr_refbuf_unref(a);
    /* usable again */
    assert_int_equal(hr_outq_push(&q, block(0, 4), 0, 4), 0);
    hr_outq_deinit(&q);
}

static void test_outq_refbuf_queued_twice_freed_once_both_flushed(void **state)
{
    (void)state;
    pair_t p = pair_open(0);
    hr_outq_t q1, q2;
    hr_outq_init(&q1);
    hr_outq_init(&q2);
    hr_refbuf_t *rb = block(0, 64);
    hr_refbuf_ref(rb); /* 2: one per push */
    hr_refbuf_ref(rb); /* 3: ours, to watch */
    assert_int_equal(hr_outq_push(&q1, rb, 0, 64), 0);
    assert_int_equal(hr_outq_push(&q1, hr_refbuf_ref(rb), 0, 32), 0);
    assert_int_equal(hr_outq_push(&q2, rb, 32, 64), 0);
    assert_int_equal(refs(rb), 4);
    assert_int_equal(hr_outq_flush(&q1, p.w), 0);
    assert_int_equal(refs(rb), 2);
    assert_int_equal(hr_outq_flush(&q2, p.w), 0);
    assert_int_equal(refs(rb), 1);
    uint8_t got[128];
    size_t len = 0;
    drain_into(p.r, got, sizeof(got), &len);
    assert_int_equal(len, 64 + 32 + 32);
    assert_memory_equal(got, rb->data, 64);
    assert_memory_equal(got + 64, rb->data, 32);
    assert_memory_equal(got + 96, rb->data + 32, 32);
    hr_refbuf_unref(rb); /* freed here; ASan would see a double free or a leak */
    hr_outq_deinit(&q1);
    hr_outq_deinit(&q2);
    pair_close(&p);
}

static void test_outq_deinit_releases_queued_references(void **state)
{
    (void)state;
    hr_outq_t q;
    hr_outq_init(&q);
    hr_refbuf_t *rb = block(0, 16);
    hr_refbuf_ref(rb);
    for (int i = 0; i < 20; i++)
        assert_int_equal(hr_outq_push(&q, hr_refbuf_ref(rb), 0, 16), 0);
    assert_int_equal(refs(rb), 22);
    hr_outq_deinit(&q);
    assert_int_equal(refs(rb), 2);
    hr_refbuf_unref(rb);
    hr_refbuf_unref(rb);
}

static void test_outq_push_alloc_failure_is_enomem_and_releases_reference(void **state)
{
    (void)state;
    hr_outq_t q;
    hr_outq_init(&q);
    hr_refbuf_t *rb = block(0, 8);
    hr_refbuf_ref(rb);
    hr_alloc_fail_at(1);
    assert_int_equal(hr_outq_push(&q, rb, 0, 8), HR_ENOMEM);
    hr_alloc_fail_at(0);
    assert_int_equal(refs(rb), 1);
    assert_int_equal(q.count, 0);
    assert_int_equal(q.bytes, 0);
    /* growing past the first array fails: the queue keeps what it had */
    for (int i = 0; i < 8; i++)
        assert_int_equal(hr_outq_push(&q, hr_refbuf_ref(rb), 0, 8), 0);
    hr_alloc_fail_at(1);
    assert_int_equal(hr_outq_push(&q, hr_refbuf_ref(rb), 0, 8), HR_ENOMEM);
    hr_alloc_fail_at(0);
    assert_int_equal(q.count, 8);
    assert_int_equal(q.bytes, 64);
    assert_int_equal(refs(rb), 9);
    hr_outq_deinit(&q);
    assert_int_equal(refs(rb), 1);
    hr_refbuf_unref(rb);
}

static void test_outq_flush_to_closed_peer_is_negative_errno(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    pair_t p = pair_open(0);
    close(p.r);
    p.r = -1;
    hr_outq_t q;
    hr_outq_init(&q);
    assert_int_equal(hr_outq_push(&q, block(0, 10), 0, 10), 0);
    assert_int_equal(hr_outq_flush(&q, p.w), -EPIPE);
    assert_int_equal(q.count, 1);
    assert_int_equal(q.bytes, 10);
    hr_outq_deinit(&q);
    pair_close(&p);
}

/* outq.h allows any range rb->data[off..end), including an empty one. An empty item
 * must not stop the queue from draining. Run in a child with an alarm, because the
 * failure mode is an endless loop in hr_outq_flush. */
static void test_outq_empty_range_item_does_not_hang_flush(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(2);
        pair_t p = pair_open(0);
        hr_outq_t q;
        hr_outq_init(&q);
        int ok = hr_outq_push(&q, block(0, 5), 0, 5) == 0 &&
                 hr_outq_push(&q, block(5, 5), 2, 2) == 0; /* empty */
        ok = ok && hr_outq_flush(&q, p.w) == 0 && q.count == 0;
        hr_outq_deinit(&q);
        pair_close(&p);
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status))
        fail_msg("hr_outq_flush did not return (killed by signal %d)", WTERMSIG(status));
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* Small appended frames are packed into one private chunk (one item), interleave
 * correctly with shared blocks (which are never written into), and survive partial
 * writes: the byte stream is exactly the appends and pushes in order. */
static void test_outq_append_packs_small_copies_and_keeps_order(void **state)
{
    (void)state;
    pair_t p = pair_open(4096);
    hr_outq_t q;
    hr_outq_init(&q);
    enum { TOTAL = 200000 };
    static uint8_t want[TOTAL], got[TOTAL];
    size_t wlen = 0, glen = 0;
    uint8_t piece[300];
    hr_refbuf_t *shared = block(0, 50);
    hr_refbuf_ref(shared); /* another holder: this block must never be appended to */
    for (unsigned i = 0; wlen + 400 < TOTAL; i++) {
        size_t a = i % 7, b = (i * 37) % 250;
        for (size_t k = 0; k < a + b; k++)
            piece[k] = (uint8_t)(i + k * 3);
        assert_int_equal(hr_outq_append(&q, piece, a, piece + a, b), 0);
        memcpy(want + wlen, piece, a + b);
        wlen += a + b;
        if (i == 4)
            assert_int_equal(q.count, 2); /* the first has its own block, the next share one */
        if (i % 50 == 49) {
            assert_int_equal(hr_outq_push(&q, hr_refbuf_ref(shared), 0, 50), 0);
            memcpy(want + wlen, shared->data, 50);
            wlen += 50;
        }
        if (i % 13 == 0) { /* flush part-way now and then: appends go behind partly sent data */
            int rc = hr_outq_flush(&q, p.w);
            assert_true(rc == 0 || rc == HR_EAGAIN);
            drain_into(p.r, got, TOTAL, &glen);
        }
    }
    while (hr_outq_flush(&q, p.w) == HR_EAGAIN)
        drain_into(p.r, got, TOTAL, &glen);
    drain_into(p.r, got, TOTAL, &glen);
    assert_int_equal(glen, wlen);
    assert_memory_equal(got, want, wlen);
    for (size_t k = 0; k < 50; k++)
        assert_int_equal(shared->data[k], pattern(k)); /* untouched */
    assert_int_equal(refs(shared), 2);
    hr_refbuf_unref(shared);
    hr_refbuf_unref(shared);
    hr_outq_deinit(&q);
    pair_close(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_outq_flush_writes_everything_in_order),
        cmocka_unit_test(test_outq_backlog_excludes_the_head_item),
        cmocka_unit_test(test_outq_partial_writes_arrive_in_order_and_intact),
        cmocka_unit_test(test_outq_drop_unstarted_keeps_partly_written_head),
        cmocka_unit_test(test_outq_drop_unstarted_with_nothing_sent_drops_all),
        cmocka_unit_test(test_outq_refbuf_queued_twice_freed_once_both_flushed),
        cmocka_unit_test(test_outq_deinit_releases_queued_references),
        cmocka_unit_test(test_outq_push_alloc_failure_is_enomem_and_releases_reference),
        cmocka_unit_test(test_outq_flush_to_closed_peer_is_negative_errno),
        cmocka_unit_test(test_outq_empty_range_item_does_not_hang_flush),
        cmocka_unit_test(test_outq_append_packs_small_copies_and_keeps_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
