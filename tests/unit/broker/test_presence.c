/* Unit tests for channel presence (src/broker/presence.c): join on the first
 * subscription and leave on the last, user ids kept from the first add, anonymous
 * clients, the 128-byte user limit, HR_ENOENT for strangers, 10000 clients through
 * growth and shrinking with removals in a different order than adds (backward-shift
 * deletion), iteration with early stop, and allocation failure changing nothing. */
#include "test_util.h"

#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "broker/presence.h"
#include "herald/error.h"

static void test_presence_first_add_joins_and_last_remove_leaves(void **state)
{
    (void)state;
    hr_presence_t p;
    hr_presence_init(&p);
    assert_int_equal(hr_presence_count(&p), 0);
    assert_int_equal(hr_presence_add(&p, 7, "alice"), 1);
    assert_int_equal(hr_presence_add(&p, 7, "alice"), 0);
    assert_int_equal(hr_presence_add(&p, 7, NULL), 0);
    assert_int_equal(hr_presence_count(&p), 1);
    assert_int_equal(hr_presence_remove(&p, 7), 0);
    assert_int_equal(hr_presence_remove(&p, 7), 0);
    assert_int_equal(hr_presence_count(&p), 1);
    assert_int_equal(hr_presence_remove(&p, 7), 1);
    assert_int_equal(hr_presence_count(&p), 0);
    assert_null(hr_presence_user(&p, 7));
    assert_int_equal(hr_presence_remove(&p, 7), HR_ENOENT);
    hr_presence_deinit(&p);
}

static void test_presence_remove_of_unknown_client_is_enoent(void **state)
{
    (void)state;
    hr_presence_t p;
    hr_presence_init(&p);
    assert_int_equal(hr_presence_remove(&p, 1), HR_ENOENT);
    assert_int_equal(hr_presence_add(&p, 1, NULL), 1);
    assert_int_equal(hr_presence_remove(&p, 2), HR_ENOENT);
    assert_int_equal(hr_presence_count(&p), 1);
    hr_presence_deinit(&p);
}

static void test_presence_keeps_user_of_first_add(void **state)
{
    (void)state;
    hr_presence_t p;
    hr_presence_init(&p);
    assert_int_equal(hr_presence_add(&p, 1, "alice"), 1);
    assert_int_equal(hr_presence_add(&p, 1, "mallory"), 0);
    assert_string_equal(hr_presence_user(&p, 1), "alice");
    assert_int_equal(hr_presence_add(&p, 2, ""), 1);
    assert_string_equal(hr_presence_user(&p, 2), "");
    assert_int_equal(hr_presence_add(&p, 3, NULL), 1);
    assert_string_equal(hr_presence_user(&p, 3), "");
    assert_null(hr_presence_user(&p, 4));
    hr_presence_deinit(&p);
}

static void test_presence_client_id_0_and_max_are_ordinary(void **state)
{
    (void)state;
    hr_presence_t p;
    hr_presence_init(&p);
    assert_int_equal(hr_presence_add(&p, 0, "zero"), 1);
    assert_int_equal(hr_presence_add(&p, UINT64_MAX, "max"), 1);
    assert_string_equal(hr_presence_user(&p, 0), "zero");
    assert_string_equal(hr_presence_user(&p, UINT64_MAX), "max");
    assert_int_equal(hr_presence_remove(&p, 0), 1);
    assert_int_equal(hr_presence_remove(&p, UINT64_MAX), 1);
    hr_presence_deinit(&p);
}

static void test_presence_user_up_to_128_bytes(void **state)
{
    (void)state;
    hr_presence_t p;
    hr_presence_init(&p);
    char user[HR_PRESENCE_USER_MAX + 2];
    memset(user, 'u', sizeof(user));
    user[HR_PRESENCE_USER_MAX] = 0;
    assert_int_equal(hr_presence_add(&p, 1, user), 1);
    assert_string_equal(hr_presence_user(&p, 1), user);
    user[HR_PRESENCE_USER_MAX] = 'u';
    user[HR_PRESENCE_USER_MAX + 1] = 0;
    assert_int_equal(hr_presence_add(&p, 2, user), HR_EINVAL);
    assert_int_equal(hr_presence_count(&p), 1);
    /* an existing client's further subscription does not look at the user again */
    assert_int_equal(hr_presence_add(&p, 1, user), 0);
    hr_presence_deinit(&p);
}

static void test_presence_many_clients_grow_and_shrink(void **state)
{
    (void)state;
    enum { N = 10000 };
    hr_presence_t p;
    hr_presence_init(&p);
    char user[32];
    for (uint64_t c = 0; c < N; c++) {
        snprintf(user, sizeof(user), "user%llu", (unsigned long long)(c % 100));
        assert_int_equal(hr_presence_add(&p, c * 4096, c % 3 ? user : NULL), 1);
        if (c % 5 == 0)
            assert_int_equal(hr_presence_add(&p, c * 4096, NULL), 0);
    }
    assert_int_equal(hr_presence_count(&p), N);
    assert_true(p.count * 4 <= p.cap * 3);
    size_t big = p.cap;
    /* remove in a stride order different from insertion, checking the rest stay found */
    for (uint64_t k = 0; k < N; k++) {
        uint64_t c = (k * 7919) % N;
        if (c % 5 == 0)
            assert_int_equal(hr_presence_remove(&p, c * 4096), 0);
        assert_int_equal(hr_presence_remove(&p, c * 4096), 1);
        if (k % 997 == 0) {
            for (uint64_t j = k + 1; j < N; j += 13) {
                uint64_t d = (j * 7919) % N;
                assert_non_null(hr_presence_user(&p, d * 4096));
            }
        }
    }
    assert_int_equal(hr_presence_count(&p), 0);
    assert_true(p.cap < big);
    hr_presence_deinit(&p);
}

typedef struct walk {
    size_t seen;
    uint64_t sum;
    uint32_t subs;
    size_t stop_after;
    int named;
} walk_t;

static int walk_cb(void *ctx, uint64_t client, const char *user, uint32_t subs)
{
    walk_t *w = ctx;
    assert_non_null(user);
    w->seen++;
    w->sum += client;
    w->subs += subs;
    if (user[0])
        w->named++;
    return w->seen == w->stop_after ? 42 : 0;
}

static void test_presence_foreach_visits_every_client_once(void **state)
{
    (void)state;
    hr_presence_t p;
    hr_presence_init(&p);
    walk_t w = {0};
    assert_int_equal(hr_presence_foreach(&p, walk_cb, &w), 0);
    assert_int_equal(w.seen, 0);
    for (uint64_t c = 1; c <= 20; c++)
        assert_int_equal(hr_presence_add(&p, c, c % 2 ? "odd" : NULL), 1);
    assert_int_equal(hr_presence_add(&p, 5, NULL), 0);
    assert_int_equal(hr_presence_foreach(&p, walk_cb, &w), 0);
    assert_int_equal(w.seen, 20);
    assert_int_equal(w.sum, 210);
    assert_int_equal(w.subs, 21);
    assert_int_equal(w.named, 10);
    walk_t stop = {.stop_after = 3};
    assert_int_equal(hr_presence_foreach(&p, walk_cb, &stop), 42);
    assert_int_equal(stop.seen, 3);
    hr_presence_deinit(&p);
}

static void test_presence_add_alloc_failure_changes_nothing(void **state)
{
    (void)state;
    hr_presence_t p;
    hr_presence_init(&p);
    /* fill to just below the growth point with named clients */
    uint64_t c = 0;
    for (;;) {
        assert_int_equal(hr_presence_add(&p, c++, "u"), 1);
        if ((p.count + 1) * 4 > p.cap * 3)
            break;
    }
    size_t count = p.count, cap = p.cap;
    for (long nth = 1;; nth++) {
        hr_alloc_fail_at(nth);
        int rc = hr_presence_add(&p, 1000, "named");
        long used = hr_alloc_count();
        hr_alloc_fail_at(0);
        if (rc == 1) {
            assert_true(used < nth);
            assert_true(p.cap > cap);
            break;
        }
        assert_int_equal(rc, HR_ENOMEM);
        assert_int_equal(p.count, count);
        assert_int_equal(p.cap, cap);
        assert_null(hr_presence_user(&p, 1000));
        for (uint64_t k = 0; k < c; k++)
            assert_string_equal(hr_presence_user(&p, k), "u");
    }
    assert_string_equal(hr_presence_user(&p, 1000), "named");
    /* a further subscription of a present client never allocates */
    hr_alloc_fail_at(1);
    assert_int_equal(hr_presence_add(&p, 1000, NULL), 0);
    hr_alloc_fail_at(0);
    hr_presence_deinit(&p);
}

static void test_presence_remove_survives_failed_shrink(void **state)
{
    (void)state;
    hr_presence_t p;
    hr_presence_init(&p);
    for (uint64_t c = 0; c < 100; c++)
        assert_int_equal(hr_presence_add(&p, c, NULL), 1);
    size_t cap = p.cap;
    hr_alloc_fail_at(1);
    for (uint64_t c = 0; c < 99; c++)
        assert_int_equal(hr_presence_remove(&p, c), 1);
    hr_alloc_fail_at(0);
    assert_int_equal(p.cap, cap);
    assert_int_equal(hr_presence_count(&p), 1);
    assert_non_null(hr_presence_user(&p, 99));
    assert_int_equal(hr_presence_remove(&p, 99), 1);
    assert_int_equal(p.cap, 0);
    hr_presence_deinit(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_presence_first_add_joins_and_last_remove_leaves),
        cmocka_unit_test(test_presence_remove_of_unknown_client_is_enoent),
        cmocka_unit_test(test_presence_keeps_user_of_first_add),
        cmocka_unit_test(test_presence_client_id_0_and_max_are_ordinary),
        cmocka_unit_test(test_presence_user_up_to_128_bytes),
        cmocka_unit_test(test_presence_many_clients_grow_and_shrink),
        cmocka_unit_test(test_presence_foreach_visits_every_client_once),
        cmocka_unit_test(test_presence_add_alloc_failure_changes_nothing),
        cmocka_unit_test(test_presence_remove_survives_failed_shrink),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
