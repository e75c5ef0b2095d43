/* Unit tests for the connection limits (src/server/limits.c): counts by key up to a
 * maximum, release by handle, entries reused after release, many keys across stripes,
 * from several threads at once; the message-rate token bucket; and the idle-memory
 * budget: the bucket and the per-address handle live in padding, so hr_conn_t keeps its
 * size. */
#include "test_util.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "herald/error.h"
#include "server/limits.h"
#include "server/server.h"

static void test_limits_count_up_to_max_then_refuse(void **state)
{
    (void)state;
    hr_limit_table_t t;
    assert_int_equal(hr_limit_table_init(&t), 0);
    uint32_t h[3] = {0};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(hr_limit_acquire(&t, "alice", 5, 3, &h[i]), 0);
        assert_true(h[i] != 0);
    }
    uint32_t over = 0;
    assert_int_equal(hr_limit_acquire(&t, "alice", 5, 3, &over), HR_ENOBUFS);
    assert_int_equal(hr_limit_count(&t, "alice", 5), 3);
    assert_int_equal(hr_limit_acquire(&t, "bob", 3, 3, &over), 0); /* another key */
    hr_limit_release(&t, h[0]);
    assert_int_equal(hr_limit_count(&t, "alice", 5), 2);
    assert_int_equal(hr_limit_acquire(&t, "alice", 5, 3, &h[0]), 0);
    for (int i = 0; i < 3; i++)
        hr_limit_release(&t, h[i]);
    hr_limit_release(&t, over);
    hr_limit_release(&t, 0); /* nothing */
    assert_int_equal(hr_limit_count(&t, "alice", 5), 0);
    assert_int_equal(hr_limit_count(&t, "bob", 3), 0);
    hr_limit_table_deinit(&t);
}

static void test_limits_zero_max_is_no_limit(void **state)
{
    (void)state;
    hr_limit_table_t t;
    assert_int_equal(hr_limit_table_init(&t), 0);
    uint32_t h;
    for (int i = 0; i < 1000; i++)
        assert_int_equal(hr_limit_acquire(&t, "k", 1, 0, &h), 0);
    assert_int_equal(hr_limit_count(&t, "k", 1), 1000);
    hr_limit_table_deinit(&t); /* frees what is still counted */
}

static void test_limits_many_keys_released_and_reused(void **state)
{
    (void)state;
    hr_limit_table_t t;
    assert_int_equal(hr_limit_table_init(&t), 0);
    enum { N = 5000 };
    static uint32_t h[N];
    char key[16];
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < N; i++) {
            int n = snprintf(key, sizeof(key), "u%d", i);
            assert_int_equal(hr_limit_acquire(&t, key, (size_t)n, 1, &h[i]), 0);
        }
        for (int i = 0; i < N; i++) {
            int n = snprintf(key, sizeof(key), "u%d", i);
            uint32_t x;
            assert_int_equal(hr_limit_acquire(&t, key, (size_t)n, 1, &x), HR_ENOBUFS);
            assert_int_equal(hr_limit_count(&t, key, (size_t)n), 1);
        }
        for (int i = N - 1; i >= 0; i--)
            hr_limit_release(&t, h[i]);
        for (int i = 0; i < N; i++) {
            int n = snprintf(key, sizeof(key), "u%d", i);
            assert_int_equal(hr_limit_count(&t, key, (size_t)n), 0);
        }
    }
    hr_limit_table_deinit(&t);
}

typedef struct worker {
    hr_limit_table_t *t;
    int id;
} worker_t;

static void *hammer(void *arg)
{
    worker_t *w = arg;
    uint8_t key[16] = {0};
    for (int i = 0; i < 20000; i++) {
        key[15] = (uint8_t)(i % 7);
        key[0] = (uint8_t)w->id;
        uint32_t h;
        if (hr_limit_acquire(w->t, key, sizeof(key), 0, &h) == 0)
            hr_limit_release(w->t, h);
    }
    return NULL;
}

static void test_limits_threads_balance_to_zero(void **state)
{
    (void)state;
    hr_limit_table_t t;
    assert_int_equal(hr_limit_table_init(&t), 0);
    pthread_t th[4];
    worker_t w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker_t){&t, i % 2};
        assert_int_equal(pthread_create(&th[i], NULL, hammer, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    uint8_t key[16] = {0};
    for (int id = 0; id < 2; id++)
        for (int k = 0; k < 7; k++) {
            key[0] = (uint8_t)id;
            key[15] = (uint8_t)k;
            assert_int_equal(hr_limit_count(&t, key, sizeof(key)), 0);
        }
    hr_limit_table_deinit(&t);
}

static void test_rate_bucket_burst_then_refill(void **state)
{
    (void)state;
    uint32_t tok = hr_rate_full(5);
    for (int i = 0; i < 5; i++)
        assert_true(hr_rate_take(&tok));
    assert_false(hr_rate_take(&tok));
    tok = hr_rate_refill(tok, 99, 10, 5); /* 0.99 of a message at 10/s */
    assert_false(hr_rate_take(&tok));
    tok = hr_rate_refill(tok, 1, 10, 5);
    assert_true(hr_rate_take(&tok));
    tok = hr_rate_refill(tok, 60000, 10, 5); /* capped at the burst */
    assert_int_equal(tok, hr_rate_full(5));
    tok = hr_rate_refill(0, UINT32_MAX, 1e9, 10); /* no overflow */
    assert_int_equal(tok, hr_rate_full(10));
    /* A slow rate still accrues over many short gaps: each refill loses under 1/4096
     * of a message, so 2.1 s at 0.5/s in 1 ms steps is one message. */
    tok = 0;
    for (int i = 0; i < 2100; i++)
        tok = hr_rate_refill(tok, 1, 0.5, 5);
    assert_true(hr_rate_take(&tok));
    assert_int_equal(hr_rate_full(0), HR_RATE_ONE);
    assert_int_equal(hr_rate_full(2000000000), (uint32_t)HR_RATE_MAX_BURST * HR_RATE_ONE);
}

static void test_conn_size_is_the_idle_budget(void **state)
{
    (void)state;
    /* The budget measured by bench's idle rows: 248 bytes before the TLS pointer in
     * hr_sock_t, 256 with it. The limits add nothing (they use padding). */
    printf("sizeof(hr_conn_t) = %zu\n", sizeof(hr_conn_t));
    assert_true(sizeof(hr_conn_t) <= 248); /* the idle budget: bench idle-10k, RSS per connection */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limits_count_up_to_max_then_refuse),
        cmocka_unit_test(test_limits_zero_max_is_no_limit),
        cmocka_unit_test(test_limits_many_keys_released_and_reused),
        cmocka_unit_test(test_limits_threads_balance_to_zero),
        cmocka_unit_test(test_rate_bucket_burst_then_refill),
        cmocka_unit_test(test_conn_size_is_the_idle_budget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
