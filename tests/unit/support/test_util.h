#ifndef HR_TEST_UTIL_H
#define HR_TEST_UTIL_H

/* Shared helpers for the cmocka unit tests. */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

/*
 * Feeds data[0..len) to fn in chunks: first the whole input, then every split into two
 * pieces at each byte boundary, then one byte at a time. feed receives (ctx, chunk,
 * chunk_len); reset is called before each full pass so the test can
 * start its state over; after each pass check is called to assert the result.
 * A test written with it checks that a codec's verdict does not depend on how the bytes
 * arrived (wslay's scripted_data_feed).
 */
typedef void (*test_chunk_reset_fn)(void *ctx);
typedef void (*test_chunk_feed_fn)(void *ctx, const uint8_t *chunk, size_t len);
typedef void (*test_chunk_check_fn)(void *ctx);

static inline void feed_one_pass(void *ctx, const uint8_t *data, size_t len, const size_t *cuts,
                                 size_t ncuts, test_chunk_reset_fn reset, test_chunk_feed_fn feed,
                                 test_chunk_check_fn check)
{
    reset(ctx);
    size_t at = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        if (end > at)
            feed(ctx, data + at, end - at);
        at = end;
    }
    check(ctx);
}

static inline void feed_chunks(void *ctx, const uint8_t *data, size_t len,
                               test_chunk_reset_fn reset, test_chunk_feed_fn feed,
                               test_chunk_check_fn check)
{
    feed_one_pass(ctx, data, len, NULL, 0, reset, feed, check);
    for (size_t cut = 1; cut < len; cut++)
        feed_one_pass(ctx, data, len, &cut, 1, reset, feed, check);
    reset(ctx);
    for (size_t i = 0; i < len; i++)
        feed(ctx, data + i, 1);
    check(ctx);
}

#endif
