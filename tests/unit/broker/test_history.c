/* Unit tests for the history ring (src/broker/history.c): offsets from 1, wrap-around,
 * capacity 0 and 1, recovery at top, top-1, older than the oldest entry, from 0 with
 * full and with overwritten history, a client ahead of top, epoch mismatch, TTL expiry
 * and its boundary, the last-N helper, and that every item is released exactly once
 * whichever way it leaves (overwritten, expired, deinit). */
#include "test_util.h"

#include <string.h>

#include "base/alloc.h"
#include "broker/history.h"
#include "herald/error.h"

#define EPOCH "abcd1234"
#define NITEMS 64

/* Items are slots of this array; releasing one counts against its slot. */
static int items[NITEMS];
static int released[NITEMS];

static int setup(void **state)
{
    (void)state;
    memset(released, 0, sizeof(released));
    return 0;
}

static void release_item(void *item)
{
    int *p = item;
    assert_true(p >= items && p < items + NITEMS);
    released[p - items]++;
}

static void *item(int i)
{
    return &items[i];
}

static int index_of(const hr_history_entry_t *e)
{
    return (int)((int *)e->item - items);
}

static int total_released(void)
{
    int n = 0;
    for (int i = 0; i < NITEMS; i++) {
        assert_in_range(released[i], 0, 1);
        n += released[i];
    }
    return n;
}

/* Appends items from..to-1 at time t each; item i gets offset i when the channel starts
 * at item 1. */
static void append_range(hr_history_t *h, int from, int to, uint64_t t)
{
    for (int i = from; i < to; i++)
        assert_int_equal(hr_history_append(h, item(i), t), (uint64_t)i);
}

static void assert_range(const hr_history_t *h, const hr_history_range_t *r, uint64_t first_off,
                         size_t count)
{
    assert_int_equal(r->count, count);
    for (size_t k = 0; k < count; k++) {
        const hr_history_entry_t *e = hr_history_at(h, r->first + k);
        assert_non_null(e);
        assert_int_equal(e->offset, first_off + k);
        assert_int_equal(index_of(e), (int)(first_off + k));
    }
}

static void test_history_offsets_start_at_1_and_top_is_0_before(void **state)
{
    (void)state;
    hr_history_t h;
    assert_int_equal(hr_history_init(&h, 4, 0, EPOCH, release_item), 0);
    assert_int_equal(hr_history_top(&h), 0);
    assert_int_equal(hr_history_count(&h), 0);
    assert_null(hr_history_at(&h, 0));
    assert_int_equal(hr_history_append(&h, item(1), 10), 1);
    assert_int_equal(hr_history_append(&h, item(2), 11), 2);
    assert_int_equal(hr_history_top(&h), 2);
    assert_int_equal(hr_history_count(&h), 2);
    assert_int_equal(hr_history_at(&h, 0)->offset, 1);
    assert_int_equal(hr_history_at(&h, 0)->time_ms, 10);
    assert_int_equal(hr_history_at(&h, 1)->offset, 2);
    assert_null(hr_history_at(&h, 2));
    assert_int_equal(total_released(), 0);
    hr_history_deinit(&h);
    assert_int_equal(total_released(), 2);
}

static void test_history_wraps_around_keeping_the_newest(void **state)
{
    (void)state;
    hr_history_t h;
    assert_int_equal(hr_history_init(&h, 4, 0, EPOCH, release_item), 0);
    append_range(&h, 1, 12, 0);
    assert_int_equal(hr_history_count(&h), 4);
    assert_int_equal(hr_history_top(&h), 11);
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(hr_history_at(&h, i)->offset, 8 + i);
    for (int i = 1; i < 8; i++)
        assert_int_equal(released[i], 1);
    assert_int_equal(total_released(), 7);
    hr_history_deinit(&h);
    assert_int_equal(total_released(), 11);
}

static void test_history_capacity_1_keeps_only_the_last(void **state)
{
    (void)state;
    hr_history_t h;
    hr_history_range_t r;
    assert_int_equal(hr_history_init(&h, 1, 0, EPOCH, release_item), 0);
    append_range(&h, 1, 4, 0);
    assert_int_equal(hr_history_count(&h), 1);
    assert_int_equal(hr_history_at(&h, 0)->offset, 3);
    assert_int_equal(hr_history_since(&h, 2, EPOCH, &r), HR_HISTORY_RECOVERED);
    assert_range(&h, &r, 3, 1);
    assert_int_equal(hr_history_since(&h, 3, EPOCH, &r), HR_HISTORY_RECOVERED);
    assert_int_equal(r.count, 0);
    assert_int_equal(hr_history_since(&h, 1, EPOCH, &r), HR_HISTORY_GAP);
    assert_int_equal(total_released(), 2);
    hr_history_deinit(&h);
    assert_int_equal(total_released(), 3);
}

static void test_history_capacity_0_counts_offsets_and_releases_at_once(void **state)
{
    (void)state;
    hr_history_t h;
    hr_history_range_t r;
    long before = hr_alloc_count();
    assert_int_equal(hr_history_init(&h, 0, 0, EPOCH, release_item), 0);
    assert_int_equal(hr_alloc_count(), before);
    assert_int_equal(hr_history_append(&h, item(1), 0), 1);
    assert_int_equal(released[1], 1);
    assert_int_equal(hr_history_append(&h, item(2), 0), 2);
    assert_int_equal(released[2], 1);
    assert_int_equal(hr_history_top(&h), 2);
    assert_int_equal(hr_history_count(&h), 0);
    assert_null(hr_history_at(&h, 0));
    /* up to date is still a recovery; anything missed is a gap */
    assert_int_equal(hr_history_since(&h, 2, EPOCH, &r), HR_HISTORY_RECOVERED);
    assert_int_equal(r.count, 0);
    assert_int_equal(hr_history_since(&h, 1, EPOCH, &r), HR_HISTORY_GAP);
    hr_history_last(&h, 10, &r);
    assert_int_equal(r.count, 0);
    hr_history_deinit(&h);
    assert_int_equal(total_released(), 2);
}

static void test_history_since_top_recovers_nothing(void **state)
{
    (void)state;
    hr_history_t h;
    hr_history_range_t r;
    assert_int_equal(hr_history_init(&h, 4, 0, EPOCH, release_item), 0);
    append_range(&h, 1, 10, 0);
    assert_int_equal(hr_history_since(&h, 9, EPOCH, &r), HR_HISTORY_RECOVERED);
    assert_int_equal(r.count, 0);
    assert_null(hr_history_at(&h, r.first));
    hr_history_deinit(&h);
}

static void test_history_since_top_minus_1_recovers_one(void **state)
{
    (void)state;
    hr_history_t h;
    hr_history_range_t r;
    assert_int_equal(hr_history_init(&h, 4, 0, EPOCH, release_item), 0);
    append_range(&h, 1, 10, 0);
    assert_int_equal(hr_history_since(&h, 8, EPOCH, &r), HR_HISTORY_RECOVERED);
    assert_range(&h, &r, 9, 1);
    hr_history_deinit(&h);
}

static void test_history_since_just_before_oldest_recovers_all_stored(void **state)
{
    (void)state;
    hr_history_t h;
    hr_history_range_t r;
    assert_int_equal(hr_history_init(&h, 4, 0, EPOCH, release_item), 0);
    append_range(&h, 1, 10, 0); /* stored: 6..9 */
    assert_int_equal(hr_history_since(&h, 5, EPOCH, &r), HR_HISTORY_RECOVERED);
    assert_range(&h, &r, 6, 4);
    assert_int_equal(r.first, 0);
    hr_history_deinit(&h);
}

static void test_history_since_older_than_oldest_is_gap(void **state)
{
    (void)state;
    hr_history_t h;
    hr_history_range_t r;
    assert_int_equal(hr_history_init(&h, 4, 0, EPOCH, release_item), 0);
    append_range(&h, 1, 10, 0); /* stored: 6..9, offset 5 overwritten */
    assert_int_equal(hr_history_since(&h, 4, EPOCH, &r), HR_HISTORY_GAP);
    assert_int_equal(r.count, 0);
    assert_int_equal(hr_history_since(&h, 1, EPOCH, &r), HR_HISTORY_GAP);
    hr_history_deinit(&h);
}

static void test_history_since_0_with_full_history_recovers_from_1(void **state)
{
    (void)state;
    hr_history_t h;
    hr_history_range_t r;
    assert_int_equal(hr_history_init(&h, 4, 0, EPOCH, release_item), 0);
    assert_int_equal(hr_history_since(&h, 0, EPOCH, &r), HR_HISTORY_RECOVERED);
    assert_int_equal(r.count, 0);
    append_range(&h, 1, 5, 0); /* exactly full, nothing overwritten */
    assert_int_equal(hr_history_since(&h, 0, EPOCH, &r), HR_HISTORY_RECOVERED);
    assert_range(&h, &r, 1, 4);
    hr_history_deinit(&h);
}

static void test_history_since_0_after_overwrite_is_gap(void **state)
{
    (void)state;
    hr_history_t h;
    hr_history_range_t r;
    assert_int_equal(hr_history_init(&h, 4, 0, EPOCH, release_item), 0);
    append_range(&h, 1, 6, 0); /* offset 1 overwritten */
    assert_int_equal(hr_history_since(&h, 0, EPOCH, &r), HR_HISTORY_GAP);
    assert_int_equal(hr_history_since(&h, 1, EPOCH, &r), HR_HISTORY_RECOVERED);
    assert_range(&h, &r, 2, 4);
    hr_history_deinit(&h);
}

static void test_history_since_ahead_of_top_is_gap(void **state)
{
    (void)state;
    hr_history_t h;
    hr_history_range_t r;
    assert_int_equal(hr_history_init(&h, 4, 0, EPOCH, release_item), 0);
    assert_int_equal(hr_history_since(&h, 1, EPOCH, &r), HR_HISTORY_GAP);
    append_range(&h, 1, 3, 0);
    assert_int_equal(hr_history_since(&h, 3, EPOCH, &r), HR_HISTORY_GAP);
    assert_int_equal(hr_history_since(&h, UINT64_MAX, EPOCH, &r), HR_HISTORY_GAP);
    hr_history_deinit(&h);
}

static void test_history_since_other_epoch_is_gap(void **state)
{
    (void)state;
    hr_history_t h;
    hr_history_range_t r;
    assert_int_equal(hr_history_init(&h, 4, 0, EPOCH, release_item), 0);
    append_range(&h, 1, 3, 0);
    assert_int_equal(hr_history_since(&h, 2, "abcd1235", &r), HR_HISTORY_GAP);
    assert_int_equal(hr_history_since(&h, 2, "abcd123", &r), HR_HISTORY_GAP);
    assert_int_equal(hr_history_since(&h, 2, "abcd12345", &r), HR_HISTORY_GAP);
    assert_int_equal(hr_history_since(&h, 2, "", &r), HR_HISTORY_GAP);
    assert_int_equal(hr_history_since(&h, 2, NULL, &r), HR_HISTORY_GAP);
    assert_int_equal(hr_history_since(&h, 2, EPOCH, &r), HR_HISTORY_RECOVERED);
    hr_history_deinit(&h);
}

static void test_history_expire_drops_entries_at_ttl_age(void **state)
{
    (void)state;
    hr_history_t h;
    assert_int_equal(hr_history_init(&h, 8, 1000, EPOCH, release_item), 0);
    assert_int_equal(hr_history_append(&h, item(1), 100), 1);
    assert_int_equal(hr_history_append(&h, item(2), 200), 2);
    assert_int_equal(hr_history_append(&h, item(3), 300), 3);
    hr_history_expire(&h, 1099); /* age 999: kept */
    assert_int_equal(hr_history_count(&h), 3);
    hr_history_expire(&h, 1100); /* age 1000: gone */
    assert_int_equal(hr_history_count(&h), 2);
    assert_int_equal(released[1], 1);
    hr_history_expire(&h, 50); /* a clock that stepped back expires nothing */
    assert_int_equal(hr_history_count(&h), 2);
    hr_history_expire(&h, 5000);
    assert_int_equal(hr_history_count(&h), 0);
    assert_int_equal(hr_history_top(&h), 3);
    assert_int_equal(total_released(), 3);
    /* offsets go on after everything expired */
    assert_int_equal(hr_history_append(&h, item(4), 5000), 4);
    assert_int_equal(hr_history_at(&h, 0)->offset, 4);
    hr_history_deinit(&h);
    assert_int_equal(total_released(), 4);
}

static void test_history_ttl_0_never_expires(void **state)
{
    (void)state;
    hr_history_t h;
    assert_int_equal(hr_history_init(&h, 2, 0, EPOCH, release_item), 0);
    append_range(&h, 1, 3, 0);
    hr_history_expire(&h, UINT64_MAX);
    assert_int_equal(hr_history_count(&h), 2);
    hr_history_deinit(&h);
    assert_int_equal(total_released(), 2);
}

static void test_history_append_expires_old_entries_first(void **state)
{
    (void)state;
    hr_history_t h;
    assert_int_equal(hr_history_init(&h, 8, 1000, EPOCH, release_item), 0);
    assert_int_equal(hr_history_append(&h, item(1), 0), 1);
    assert_int_equal(hr_history_append(&h, item(2), 500), 2);
    assert_int_equal(hr_history_append(&h, item(3), 1000), 3);
    assert_int_equal(hr_history_count(&h), 2);
    assert_int_equal(hr_history_at(&h, 0)->offset, 2);
    assert_int_equal(released[1], 1);
    hr_history_deinit(&h);
    assert_int_equal(total_released(), 3);
}

static void test_history_since_after_ttl_expiry_is_gap(void **state)
{
    (void)state;
    hr_history_t h;
    hr_history_range_t r;
    assert_int_equal(hr_history_init(&h, 8, 1000, EPOCH, release_item), 0);
    assert_int_equal(hr_history_append(&h, item(1), 0), 1);
    assert_int_equal(hr_history_append(&h, item(2), 600), 2);
    assert_int_equal(hr_history_append(&h, item(3), 700), 3);
    hr_history_expire(&h, 1200); /* offset 1 expired */
    assert_int_equal(hr_history_since(&h, 0, EPOCH, &r), HR_HISTORY_GAP);
    assert_int_equal(hr_history_since(&h, 1, EPOCH, &r), HR_HISTORY_RECOVERED);
    assert_range(&h, &r, 2, 2);
    hr_history_expire(&h, 5000); /* everything expired */
    assert_int_equal(hr_history_since(&h, 1, EPOCH, &r), HR_HISTORY_GAP);
    assert_int_equal(hr_history_since(&h, 2, EPOCH, &r), HR_HISTORY_GAP);
    assert_int_equal(hr_history_since(&h, 3, EPOCH, &r), HR_HISTORY_RECOVERED);
    assert_int_equal(r.count, 0);
    hr_history_deinit(&h);
    assert_int_equal(total_released(), 3);
}

static void test_history_last_returns_newest_n_oldest_first(void **state)
{
    (void)state;
    hr_history_t h;
    hr_history_range_t r;
    assert_int_equal(hr_history_init(&h, 4, 0, EPOCH, release_item), 0);
    hr_history_last(&h, 3, &r);
    assert_int_equal(r.count, 0);
    append_range(&h, 1, 7, 0); /* stored: 3..6, wrapped */
    hr_history_last(&h, 2, &r);
    assert_range(&h, &r, 5, 2);
    hr_history_last(&h, 4, &r);
    assert_range(&h, &r, 3, 4);
    hr_history_last(&h, 100, &r);
    assert_range(&h, &r, 3, 4);
    hr_history_last(&h, SIZE_MAX, &r);
    assert_range(&h, &r, 3, 4);
    hr_history_last(&h, 0, &r);
    assert_int_equal(r.count, 0);
    hr_history_deinit(&h);
}

static void test_history_releases_each_item_exactly_once(void **state)
{
    (void)state;
    hr_history_t h;
    assert_int_equal(hr_history_init(&h, 5, 100, EPOCH, release_item), 0);
    /* overwrite, expire and deinit each take some; times grow by 30 ms per item */
    for (int i = 1; i < NITEMS; i++) {
        assert_int_equal(hr_history_append(&h, item(i), (uint64_t)i * 30), (uint64_t)i);
        if (i % 7 == 0)
            hr_history_expire(&h, (uint64_t)i * 30 + 50);
    }
    hr_history_deinit(&h);
    assert_int_equal(released[0], 0);
    for (int i = 1; i < NITEMS; i++)
        assert_int_equal(released[i], 1);
    /* deinit leaves an empty history that can be deinitialised again */
    hr_history_deinit(&h);
    assert_int_equal(total_released(), NITEMS - 1);
}

static void test_history_null_release_is_allowed(void **state)
{
    (void)state;
    hr_history_t h;
    assert_int_equal(hr_history_init(&h, 2, 10, EPOCH, NULL), 0);
    append_range(&h, 1, 5, 0);
    hr_history_expire(&h, 100);
    append_range(&h, 5, 7, 100);
    hr_history_deinit(&h);
    assert_int_equal(hr_history_init(&h, 0, 0, EPOCH, NULL), 0);
    assert_int_equal(hr_history_append(&h, item(1), 0), 1);
    hr_history_deinit(&h);
    assert_int_equal(total_released(), 0);
}

static void test_history_init_rejects_bad_epoch(void **state)
{
    (void)state;
    hr_history_t h;
    const char *bad[] = {NULL,
                         "",
                         "abcdefg",
                         "abcdefgh1234567890",
                         "ABCDEFGH",
                         "abcd-123",
                         "abcd 123",
                         "abcd\xc3\xa9"
                         "fgh"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(hr_history_init(&h, 4, 0, bad[i], release_item), HR_EINVAL);
        hr_history_deinit(&h);
    }
    assert_true(hr_history_epoch_valid("abcdefgh"));
    assert_true(hr_history_epoch_valid("0123456789abcdef"));
    assert_false(hr_history_epoch_valid("0123456789abcdefg"));
    assert_int_equal(hr_history_init(&h, 4, 0, "0123456789abcdef", release_item), 0);
    assert_string_equal(h.epoch, "0123456789abcdef");
    hr_history_deinit(&h);
}

static void test_history_init_alloc_failure_is_enomem(void **state)
{
    (void)state;
    hr_history_t h;
    for (long nth = 1;; nth++) {
        hr_alloc_fail_at(nth);
        int rc = hr_history_init(&h, 16, 0, EPOCH, release_item);
        long used = hr_alloc_count();
        hr_alloc_fail_at(0);
        if (rc == 0) {
            assert_true(used < nth);
            break;
        }
        assert_int_equal(rc, HR_ENOMEM);
        /* a failed init leaves something deinit accepts */
        hr_history_deinit(&h);
    }
    append_range(&h, 1, 3, 0);
    hr_history_deinit(&h);
    assert_int_equal(total_released(), 2);
    /* appending never allocates */
    assert_int_equal(hr_history_init(&h, 2, 0, EPOCH, release_item), 0);
    hr_alloc_fail_at(1);
    for (int i = 10; i < 15; i++)
        assert_int_equal(hr_history_append(&h, item(i), 0), (uint64_t)(i - 9));
    assert_int_equal(hr_alloc_count(), 0);
    hr_alloc_fail_at(0);
    hr_history_deinit(&h);
    assert_int_equal(total_released(), 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_history_offsets_start_at_1_and_top_is_0_before, setup),
        cmocka_unit_test_setup(test_history_wraps_around_keeping_the_newest, setup),
        cmocka_unit_test_setup(test_history_capacity_1_keeps_only_the_last, setup),
        cmocka_unit_test_setup(test_history_capacity_0_counts_offsets_and_releases_at_once, setup),
        cmocka_unit_test_setup(test_history_since_top_recovers_nothing, setup),
        cmocka_unit_test_setup(test_history_since_top_minus_1_recovers_one, setup),
        cmocka_unit_test_setup(test_history_since_just_before_oldest_recovers_all_stored, setup),
        cmocka_unit_test_setup(test_history_since_older_than_oldest_is_gap, setup),
        cmocka_unit_test_setup(test_history_since_0_with_full_history_recovers_from_1, setup),
        cmocka_unit_test_setup(test_history_since_0_after_overwrite_is_gap, setup),
        cmocka_unit_test_setup(test_history_since_ahead_of_top_is_gap, setup),
        cmocka_unit_test_setup(test_history_since_other_epoch_is_gap, setup),
        cmocka_unit_test_setup(test_history_expire_drops_entries_at_ttl_age, setup),
        cmocka_unit_test_setup(test_history_ttl_0_never_expires, setup),
        cmocka_unit_test_setup(test_history_append_expires_old_entries_first, setup),
        cmocka_unit_test_setup(test_history_since_after_ttl_expiry_is_gap, setup),
        cmocka_unit_test_setup(test_history_last_returns_newest_n_oldest_first, setup),
        cmocka_unit_test_setup(test_history_releases_each_item_exactly_once, setup),
        cmocka_unit_test_setup(test_history_null_release_is_allowed, setup),
        cmocka_unit_test_setup(test_history_init_rejects_bad_epoch, setup),
        cmocka_unit_test_setup(test_history_init_alloc_failure_is_enomem, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
