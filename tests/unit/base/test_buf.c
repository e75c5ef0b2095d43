/* Unit tests for the byte buffer (src/base/buf.c): an empty buffer owns no memory,
 * append / append_str / appendf / consume, reserve growth, sizes that cannot be
 * allocated, and allocation failure leaving the buffer exactly as it was. */
#include "test_util.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <wchar.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "herald/error.h"

static void assert_content(const hr_buf_t *b, const char *s)
{
    assert_int_equal(b->len, strlen(s));
    assert_true(b->len <= b->cap);
    if (b->len)
        assert_memory_equal(b->data, s, b->len);
}

static void test_buf_empty_buffer_owns_no_memory(void **state)
{
    (void)state;
    hr_buf_t b;
    hr_buf_init(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    assert_int_equal(hr_buf_append(&b, NULL, 0), 0); /* nothing to add: no allocation */
    assert_null(b.data);
    assert_int_equal(hr_buf_reserve(&b, 0), 0);
    assert_null(b.data);
    hr_buf_consume(&b, 0);
    assert_int_equal(b.len, 0);
    hr_buf_deinit(&b);
    assert_null(b.data);
}

static void test_buf_append_and_append_str(void **state)
{
    (void)state;
    hr_buf_t b;
    hr_buf_init(&b);
    assert_int_equal(hr_buf_append(&b, "abc", 3), 0);
    assert_content(&b, "abc");
    assert_int_equal(hr_buf_append_str(&b, "def"), 0);
    assert_content(&b, "abcdef");
    assert_int_equal(hr_buf_append_str(&b, ""), 0);
    assert_content(&b, "abcdef");
    assert_int_equal(hr_buf_append(&b, "\0x", 2), 0); /* binary-safe */
    assert_int_equal(b.len, 8);
    assert_memory_equal(b.data + 6, "\0x", 2);
    hr_buf_deinit(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    /* reusable after deinit */
    assert_int_equal(hr_buf_append_str(&b, "again"), 0);
    assert_content(&b, "again");
    hr_buf_deinit(&b);
}

static void test_buf_growth_keeps_content(void **state)
{
    (void)state;
    hr_buf_t b;
    hr_buf_init(&b);
    uint8_t chunk[97];
    size_t total = 0;
    for (int round = 0; round < 200; round++) {
        for (size_t i = 0; i < sizeof(chunk); i++)
            chunk[i] = (uint8_t)(total + i);
        size_t cap_before = b.cap;
        assert_int_equal(hr_buf_append(&b, chunk, sizeof(chunk)), 0);
        total += sizeof(chunk);
        assert_int_equal(b.len, total);
        assert_true(b.cap >= b.len);
        if (b.cap != cap_before && cap_before)
            assert_true(b.cap >= 2 * cap_before); /* geometric growth */
    }
    for (size_t i = 0; i < total; i++)
        assert_int_equal(b.data[i], (uint8_t)i);
    hr_buf_deinit(&b);
}

static void test_buf_reserve_makes_room_without_changing_content(void **state)
{
    (void)state;
    hr_buf_t b;
    hr_buf_init(&b);
    assert_int_equal(hr_buf_reserve(&b, 1), 0);
    assert_non_null(b.data);
    assert_true(b.cap >= 1);
    assert_int_equal(b.len, 0);
    assert_int_equal(hr_buf_append_str(&b, "keep"), 0);
    assert_int_equal(hr_buf_reserve(&b, 5000), 0);
    assert_true(b.cap - b.len >= 5000);
    assert_content(&b, "keep");
    /* room already there: nothing moves */
    uint8_t *p = b.data;
    size_t cap = b.cap;
    assert_int_equal(hr_buf_reserve(&b, cap - b.len), 0);
    assert_ptr_equal(b.data, p);
    assert_int_equal(b.cap, cap);
    /* exactly one byte more than the room grows */
    assert_int_equal(hr_buf_reserve(&b, cap - b.len + 1), 0);
    assert_true(b.cap > cap);
    assert_content(&b, "keep");
    hr_buf_deinit(&b);
}

static void test_buf_reserve_impossible_size_is_enomem_and_unchanged(void **state)
{
    (void)state;
    hr_buf_t b;
    hr_buf_init(&b);
    assert_int_equal(hr_buf_reserve(&b, SIZE_MAX), HR_ENOMEM);
    assert_null(b.data);
    assert_int_equal(hr_buf_append_str(&b, "abc"), 0);
    uint8_t *p = b.data;
    size_t cap = b.cap;
    static const size_t huge[] = {SIZE_MAX, SIZE_MAX - 2, SIZE_MAX / 2, SIZE_MAX / 2 + 1};
    for (size_t i = 0; i < sizeof(huge) / sizeof(huge[0]); i++) {
        assert_int_equal(hr_buf_reserve(&b, huge[i]), HR_ENOMEM);
        assert_ptr_equal(b.data, p);
        assert_int_equal(b.cap, cap);
        assert_content(&b, "abc");
    }
    hr_buf_deinit(&b);
}

static void test_buf_appendf_formats_and_appends(void **state)
{
    (void)state;
    hr_buf_t b;
    hr_buf_init(&b);
    assert_int_equal(hr_buf_appendf(&b, "%d-%s", 42, "x"), 0);
    assert_content(&b, "42-x");
    assert_int_equal(hr_buf_appendf(&b, "|%05u|%c", 7u, 'z'), 0);
    assert_content(&b, "42-x|00007|z");
    assert_int_equal(hr_buf_appendf(&b, "%s", ""), 0);
    assert_content(&b, "42-x|00007|z");
    hr_buf_deinit(&b);

    /* output that crosses the current capacity, and output far larger than it */
    char fill[300];
    memset(fill, 'f', sizeof(fill));
    fill[250] = 0;
    assert_int_equal(hr_buf_append_str(&b, fill), 0);
    size_t cap = b.cap;
    assert_true(cap - b.len < 20);
    assert_int_equal(hr_buf_appendf(&b, "%s%d", "0123456789", 123456789), 0);
    assert_int_equal(b.len, 250 + 19);
    assert_memory_equal(b.data + 250, "0123456789123456789", 19);
    char big[3000];
    memset(big, 'b', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    assert_int_equal(hr_buf_appendf(&b, "[%s]", big), 0);
    assert_int_equal(b.len, 250 + 19 + 2 + sizeof(big) - 1);
    assert_int_equal(b.data[250 + 19], '[');
    assert_int_equal(b.data[b.len - 1], ']');
    hr_buf_deinit(&b);
}

static void test_buf_appendf_encoding_error_is_einval_and_unchanged(void **state)
{
    (void)state;
    hr_buf_t b;
    hr_buf_init(&b);
    assert_int_equal(hr_buf_append_str(&b, "ok"), 0);
    /* in the C locale a wide character above 0x7F cannot be converted: vsnprintf fails */
    static const wchar_t bad[] = {0x20AC, 0};
    assert_int_equal(hr_buf_appendf(&b, "%ls", bad), HR_EINVAL);
    assert_content(&b, "ok");
    hr_buf_deinit(&b);
}

static void test_buf_consume_removes_the_front(void **state)
{
    (void)state;
    hr_buf_t b;
    hr_buf_init(&b);
    assert_int_equal(hr_buf_append_str(&b, "abcdef"), 0);
    hr_buf_consume(&b, 0);
    assert_content(&b, "abcdef");
    hr_buf_consume(&b, 2);
    assert_content(&b, "cdef");
    hr_buf_consume(&b, 3);
    assert_content(&b, "f");
    assert_int_equal(hr_buf_append_str(&b, "gh"), 0);
    assert_content(&b, "fgh");
    hr_buf_consume(&b, 3);
    assert_int_equal(b.len, 0);
    assert_int_equal(hr_buf_append_str(&b, "new"), 0);
    assert_content(&b, "new");
    hr_buf_deinit(&b);
}

static void test_buf_alloc_failure_leaves_buffer_unchanged(void **state)
{
    (void)state;
    hr_buf_t b;
    hr_buf_init(&b);

    /* empty buffer: stays empty and owns nothing */
    hr_alloc_fail_at(1);
    assert_int_equal(hr_buf_append(&b, "x", 1), HR_ENOMEM);
    assert_int_equal(hr_buf_append_str(&b, "x"), HR_ENOMEM);
    assert_int_equal(hr_buf_appendf(&b, "%d", 1), HR_ENOMEM);
    assert_int_equal(hr_buf_reserve(&b, 1), HR_ENOMEM);
    hr_alloc_fail_at(0);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);

    /* non-empty buffer that must grow: same storage, same bytes */
    assert_int_equal(hr_buf_append_str(&b, "hello"), 0);
    uint8_t *p = b.data;
    size_t cap = b.cap;
    char big[600];
    memset(big, 'y', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    hr_alloc_fail_at(1);
    assert_int_equal(hr_buf_append(&b, big, sizeof(big)), HR_ENOMEM);
    assert_int_equal(hr_buf_append_str(&b, big), HR_ENOMEM);
    assert_int_equal(hr_buf_appendf(&b, "%s", big), HR_ENOMEM);
    assert_int_equal(hr_buf_reserve(&b, cap), HR_ENOMEM);
    /* what fits needs no allocation and still works */
    assert_int_equal(hr_buf_append_str(&b, " w"), 0);
    assert_int_equal(hr_buf_appendf(&b, "%s", "orld"), 0);
    assert_int_equal(hr_alloc_count(), 4);
    hr_alloc_fail_at(0);
    assert_ptr_equal(b.data, p);
    assert_int_equal(b.cap, cap);
    assert_content(&b, "hello world");
    hr_buf_deinit(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_empty_buffer_owns_no_memory),
        cmocka_unit_test(test_buf_append_and_append_str),
        cmocka_unit_test(test_buf_growth_keeps_content),
        cmocka_unit_test(test_buf_reserve_makes_room_without_changing_content),
        cmocka_unit_test(test_buf_reserve_impossible_size_is_enomem_and_unchanged),
        cmocka_unit_test(test_buf_appendf_formats_and_appends),
        cmocka_unit_test(test_buf_appendf_encoding_error_is_einval_and_unchanged),
        cmocka_unit_test(test_buf_consume_removes_the_front),
        cmocka_unit_test(test_buf_alloc_failure_leaves_buffer_unchanged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
