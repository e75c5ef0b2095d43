/* Unit tests for src/base/pool.c: the fixed-size object pool connections come from. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "base/alloc.h"
#include "base/pool.h"

static void test_pool_rounds_item_size_to_8(void **state)
{
    hr_pool_t p;
    hr_pool_init(&p, 1);
    assert_int_equal(p.item_size, 8);
    hr_pool_init(&p, 248);
    assert_int_equal(p.item_size, 248);
    hr_pool_init(&p, 249);
    assert_int_equal(p.item_size, 256);
}

static void test_pool_objects_are_zeroed_distinct_and_aligned(void **state)
{
    hr_pool_t p;
    hr_pool_init(&p, 40);
    enum { N = 3 * HR_POOL_CHUNK_ITEMS + 5 }; /* spans several chunks */
    static uint8_t *objs[N];
    for (int i = 0; i < N; i++) {
        objs[i] = hr_pool_alloc(&p);
        assert_non_null(objs[i]);
        assert_int_equal((uintptr_t)objs[i] % 8, 0);
        for (int b = 0; b < 40; b++)
            assert_int_equal(objs[i][b], 0);
        memset(objs[i], 0xAB, 40); /* overlapping objects would corrupt each other */
    }
    for (int i = 0; i < N; i++)
        for (int b = 0; b < 40; b++)
            assert_int_equal(objs[i][b], 0xAB);
    assert_int_equal(p.live, N);
    hr_pool_deinit(&p);
}

static void test_pool_reuses_freed_objects_before_growing(void **state)
{
    hr_pool_t p;
    hr_pool_init(&p, 64);
    void *a = hr_pool_alloc(&p);
    void *b = hr_pool_alloc(&p);
    hr_pool_free(&p, a);
    void *c = hr_pool_alloc(&p);
    assert_ptr_equal(a, c);
    memset(c, 0x5A, 64);
    hr_pool_free(&p, c);
    void *d = hr_pool_alloc(&p);
    assert_ptr_equal(d, a);
    for (int i = 0; i < 64; i++)
        assert_int_equal(((uint8_t *)d)[i], 0); /* zeroed again */
    hr_pool_free(&p, b);
    hr_pool_free(&p, d);
    hr_pool_free(&p, NULL);
    assert_int_equal(p.live, 0);
    hr_pool_deinit(&p);
}

static void test_pool_out_of_memory_returns_null(void **state)
{
    hr_pool_t p;
    hr_pool_init(&p, 64);
    hr_alloc_fail_at(1);
    assert_null(hr_pool_alloc(&p));
    hr_alloc_fail_at(0);
    assert_non_null(hr_pool_alloc(&p));
    hr_pool_deinit(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_rounds_item_size_to_8),
        cmocka_unit_test(test_pool_objects_are_zeroed_distinct_and_aligned),
        cmocka_unit_test(test_pool_reuses_freed_objects_before_growing),
        cmocka_unit_test(test_pool_out_of_memory_returns_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
