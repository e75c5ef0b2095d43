/* Unit tests for the copy of hiredis replies (src/cluster/reply.c): every reply type,
 * nested arrays, binary strings with NUL bytes, and a clean NULL (nothing leaked) when
 * any one allocation fails. */
#include "test_util.h"

#include <hiredis/hiredis.h>
#include <string.h>

#include "base/alloc.h"
#include "cluster/cluster.h"

static redisReply leaf(int type, const char *s, size_t len, long long i)
{
    redisReply r = {.type = type, .integer = i, .len = len, .str = (char *)s};
    return r;
}

/* {1, "ab\0c", {nil, "OK"}, ERR x} */
typedef struct tree {
    redisReply top, n1, s1, inner, nil, ok, err;
    redisReply *top_el[4], *inner_el[2];
} tree_t;

static void build(tree_t *t)
{
    t->n1 = leaf(REDIS_REPLY_INTEGER, NULL, 0, 1);
    t->s1 = leaf(REDIS_REPLY_STRING, "ab\0c", 4, 0);
    t->nil = leaf(REDIS_REPLY_NIL, NULL, 0, 0);
    t->ok = leaf(REDIS_REPLY_STATUS, "OK", 2, 0);
    t->err = leaf(REDIS_REPLY_ERROR, "ERR x", 5, 0);
    t->inner_el[0] = &t->nil;
    t->inner_el[1] = &t->ok;
    t->inner = (redisReply){.type = REDIS_REPLY_ARRAY, .elements = 2, .element = t->inner_el};
    t->top_el[0] = &t->n1;
    t->top_el[1] = &t->s1;
    t->top_el[2] = &t->inner;
    t->top_el[3] = &t->err;
    t->top = (redisReply){.type = REDIS_REPLY_ARRAY, .elements = 4, .element = t->top_el};
}

static void test_reply_copy_tree(void **state)
{
    (void)state;
    tree_t t;
    build(&t);
    hr_cluster_reply_t *r = hr_cluster__reply_copy(&t.top);
    assert_non_null(r);
    assert_int_equal(r->type, HR_CLUSTER_REPLY_ARRAY);
    assert_int_equal(r->n, 4);
    assert_int_equal(r->elem[0]->type, HR_CLUSTER_REPLY_INTEGER);
    assert_int_equal(r->elem[0]->integer, 1);
    assert_int_equal(r->elem[1]->type, HR_CLUSTER_REPLY_STRING);
    assert_int_equal(r->elem[1]->len, 4);
    assert_memory_equal(r->elem[1]->str, "ab\0c", 5); /* and NUL-terminated */
    assert_ptr_not_equal(r->elem[1]->str, t.s1.str);
    assert_int_equal(r->elem[2]->type, HR_CLUSTER_REPLY_ARRAY);
    assert_int_equal(r->elem[2]->n, 2);
    assert_int_equal(r->elem[2]->elem[0]->type, HR_CLUSTER_REPLY_NIL);
    assert_null(r->elem[2]->elem[0]->str);
    assert_int_equal(r->elem[2]->elem[1]->type, HR_CLUSTER_REPLY_STATUS);
    assert_string_equal(r->elem[2]->elem[1]->str, "OK");
    assert_int_equal(r->elem[3]->type, HR_CLUSTER_REPLY_ERROR);
    assert_string_equal(r->elem[3]->str, "ERR x");
    hr_cluster__reply_free(r);
}

static void test_reply_copy_empty_array(void **state)
{
    (void)state;
    redisReply a = {.type = REDIS_REPLY_ARRAY, .elements = 0};
    hr_cluster_reply_t *r = hr_cluster__reply_copy(&a);
    assert_non_null(r);
    assert_int_equal(r->n, 0);
    assert_null(r->elem);
    hr_cluster__reply_free(r);
    hr_cluster__reply_free(NULL);
}

/* The tree takes 12 allocations: failing any one of them gives NULL, and the sanitizer
 * build checks that the partial copy was freed. */
static void test_reply_copy_out_of_memory(void **state)
{
    (void)state;
    tree_t t;
    build(&t);
    hr_alloc_fail_at(0);
    hr_cluster_reply_t *r = hr_cluster__reply_copy(&t.top);
    long total = hr_alloc_count();
    hr_cluster__reply_free(r);
    assert_int_equal(total, 12);
    for (long nth = 1; nth <= total; nth++) {
        hr_alloc_fail_at(nth);
        assert_null(hr_cluster__reply_copy(&t.top));
    }
    hr_alloc_fail_at(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reply_copy_tree),
        cmocka_unit_test(test_reply_copy_empty_array),
        cmocka_unit_test(test_reply_copy_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
