/* Unit tests for the topic table (src/broker/topics.c): subscribe, unsubscribe and find;
 * HR_EEXIST for a duplicate, HR_ENOENT for what is not there; 10000 topics through
 * several table growths; a topic disappears with its last subscription; dropping every
 * subscription of an owner from a walk of its list; allocation failure changes nothing. */
#include "test_util.h"

#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "broker/topics.h"
#include "herald/error.h"

typedef struct owner {
    hr_list_t subs; /* hr_sub_t.owner_link */
    int id;
} owner_t;

static void owner_init(owner_t *o, int id)
{
    hr_list_init(&o->subs);
    o->id = id;
}

static size_t list_len(const hr_list_t *l)
{
    size_t n = 0;
    for (const hr_list_t *p = l->next; p != l; p = p->next)
        n++;
    return n;
}

static int sub(hr_topics_t *t, const char *name, owner_t *o)
{
    return hr_topics_subscribe(t, name, strlen(name), o, &o->subs);
}

static int unsub(hr_topics_t *t, const char *name, owner_t *o)
{
    return hr_topics_unsubscribe(t, name, strlen(name), o);
}

static hr_topic_t *find(const hr_topics_t *t, const char *name)
{
    return hr_topics_find(t, name, strlen(name));
}

/* Removes every subscription of o, the way a closing connection does. */
static void drop_owner(hr_topics_t *t, owner_t *o)
{
    for (hr_list_t *n = o->subs.next; n != &o->subs;) {
        hr_list_t *next = n->next;
        hr_topics_remove(t, hr_list_entry(n, hr_sub_t, owner_link));
        n = next;
    }
    assert_true(hr_list_empty(&o->subs));
}

static void test_topics_empty_table_finds_nothing(void **state)
{
    (void)state;
    hr_topics_t t;
    hr_topics_init(&t);
    assert_null(find(&t, "news"));
    assert_null(hr_topics_find(&t, "", 0));
    owner_t a;
    owner_init(&a, 1);
    assert_int_equal(unsub(&t, "news", &a), HR_ENOENT);
    hr_topics_deinit(&t);
    hr_topics_deinit(&t); /* twice: harmless */
}

static void test_topics_subscribe_find_unsubscribe(void **state)
{
    (void)state;
    hr_topics_t t;
    hr_topics_init(&t);
    owner_t a, b;
    owner_init(&a, 1);
    owner_init(&b, 2);
    assert_int_equal(sub(&t, "news", &a), 0);
    hr_topic_t *tp = find(&t, "news");
    assert_non_null(tp);
    assert_int_equal(tp->name_len, 4);
    assert_string_equal(tp->name, "news");
    assert_int_equal(list_len(&tp->subs), 1);
    assert_int_equal(list_len(&a.subs), 1);
    hr_sub_t *s = hr_list_entry(a.subs.next, hr_sub_t, owner_link);
    assert_ptr_equal(s->topic, tp);
    assert_ptr_equal(s->owner, &a);

    assert_int_equal(sub(&t, "news", &b), 0);
    assert_ptr_equal(find(&t, "news"), tp); /* same topic, two subscriptions */
    assert_int_equal(list_len(&tp->subs), 2);
    assert_int_equal(t.count, 1);
    assert_null(find(&t, "new"));
    assert_null(find(&t, "newsx"));

    assert_int_equal(unsub(&t, "news", &a), 0);
    assert_ptr_equal(find(&t, "news"), tp);
    assert_int_equal(list_len(&tp->subs), 1);
    assert_true(hr_list_empty(&a.subs));
    assert_int_equal(unsub(&t, "news", &b), 0);
    assert_null(find(&t, "news")); /* the last subscription took the topic with it */
    assert_int_equal(t.count, 0);
    assert_true(hr_list_empty(&b.subs));
    hr_topics_deinit(&t);
}

static void test_topics_duplicate_subscription_is_eexist(void **state)
{
    (void)state;
    hr_topics_t t;
    hr_topics_init(&t);
    owner_t a;
    owner_init(&a, 1);
    assert_int_equal(sub(&t, "x", &a), 0);
    assert_int_equal(sub(&t, "x", &a), HR_EEXIST);
    assert_int_equal(list_len(&a.subs), 1);
    assert_int_equal(list_len(&find(&t, "x")->subs), 1);
    drop_owner(&t, &a);
    assert_null(find(&t, "x"));
    hr_topics_deinit(&t);
}

static void test_topics_unsubscribe_unknown_is_enoent(void **state)
{
    (void)state;
    hr_topics_t t;
    hr_topics_init(&t);
    owner_t a, b;
    owner_init(&a, 1);
    owner_init(&b, 2);
    assert_int_equal(sub(&t, "x", &a), 0);
    assert_int_equal(unsub(&t, "y", &a), HR_ENOENT); /* no such topic */
    assert_int_equal(unsub(&t, "x", &b), HR_ENOENT); /* topic, but not b's */
    assert_non_null(find(&t, "x"));
    assert_int_equal(unsub(&t, "x", &a), 0);
    assert_int_equal(unsub(&t, "x", &a), HR_ENOENT); /* already gone */
    hr_topics_deinit(&t);
}

static void test_topics_names_compare_by_length_and_bytes(void **state)
{
    (void)state;
    hr_topics_t t;
    hr_topics_init(&t);
    owner_t a;
    owner_init(&a, 1);
    static const char nul_name[] = {'a', 0, 'b'};
    assert_int_equal(hr_topics_subscribe(&t, "a", 1, &a, &a.subs), 0);
    assert_int_equal(hr_topics_subscribe(&t, nul_name, 3, &a, &a.subs), 0);
    assert_int_equal(hr_topics_subscribe(&t, "", 0, &a, &a.subs), 0);
    assert_int_equal(t.count, 3);
    hr_topic_t *one = hr_topics_find(&t, "a", 1);
    hr_topic_t *three = hr_topics_find(&t, nul_name, 3);
    hr_topic_t *empty = hr_topics_find(&t, "", 0);
    assert_non_null(one);
    assert_non_null(three);
    assert_non_null(empty);
    assert_true(one != three && one != empty && three != empty);
    assert_int_equal(three->name_len, 3);
    assert_memory_equal(three->name, nul_name, 3);
    assert_null(hr_topics_find(&t, "a\0c", 3));
    assert_null(hr_topics_find(&t, "A", 1));
    drop_owner(&t, &a);
    assert_int_equal(t.count, 0);
    hr_topics_deinit(&t);
}

static void test_topics_ten_thousand_topics_force_growth(void **state)
{
    (void)state;
    enum { N = 10000 };
    hr_topics_t t;
    hr_topics_init(&t);
    owner_t a, b;
    owner_init(&a, 1);
    owner_init(&b, 2);
    char name[32];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "topic/%d", i);
        assert_int_equal(sub(&t, name, &a), 0);
        if (i % 3 == 0)
            assert_int_equal(sub(&t, name, &b), 0);
    }
    assert_int_equal(t.count, N);
    assert_true(t.nbuckets >= N); /* load at most 1 */
    assert_int_equal(t.nbuckets & (t.nbuckets - 1), 0);
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "topic/%d", i);
        hr_topic_t *tp = find(&t, name);
        assert_non_null(tp);
        assert_string_equal(tp->name, name);
        assert_int_equal(list_len(&tp->subs), i % 3 == 0 ? 2 : 1);
        assert_int_equal(sub(&t, name, &a), HR_EEXIST);
    }
    snprintf(name, sizeof(name), "topic/%d", N);
    assert_null(find(&t, name));

    /* unsubscribe every other one by name */
    for (int i = 0; i < N; i += 2) {
        snprintf(name, sizeof(name), "topic/%d", i);
        assert_int_equal(unsub(&t, name, &a), 0);
        assert_true((find(&t, name) != NULL) == (i % 3 == 0));
    }
    /* b leaves: its topics that a also left are gone */
    drop_owner(&t, &b);
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "topic/%d", i);
        assert_true((find(&t, name) != NULL) == (i % 2 == 1));
    }
    assert_int_equal(t.count, N / 2);
    drop_owner(&t, &a);
    assert_int_equal(t.count, 0);
    hr_topics_deinit(&t);
}

static void test_topics_remove_from_owner_walk_leaves_other_owners(void **state)
{
    (void)state;
    hr_topics_t t;
    hr_topics_init(&t);
    owner_t o[3];
    char name[32];
    for (int k = 0; k < 3; k++)
        owner_init(&o[k], k);
    for (int i = 0; i < 50; i++) {
        snprintf(name, sizeof(name), "t%d", i);
        assert_int_equal(sub(&t, name, &o[0]), 0);
        if (i % 2 == 0)
            assert_int_equal(sub(&t, name, &o[1]), 0);
        if (i % 5 == 0)
            assert_int_equal(sub(&t, name, &o[2]), 0);
    }
    assert_int_equal(list_len(&o[0].subs), 50);
    drop_owner(&t, &o[0]);
    for (int i = 0; i < 50; i++) {
        snprintf(name, sizeof(name), "t%d", i);
        hr_topic_t *tp = find(&t, name);
        size_t want = (i % 2 == 0) + (i % 5 == 0);
        if (!want) {
            assert_null(tp);
            continue;
        }
        assert_non_null(tp);
        assert_int_equal(list_len(&tp->subs), want);
        for (hr_list_t *n = tp->subs.next; n != &tp->subs; n = n->next)
            assert_ptr_not_equal(hr_list_entry(n, hr_sub_t, topic_link)->owner, &o[0]);
    }
    assert_int_equal(list_len(&o[1].subs), 25);
    assert_int_equal(list_len(&o[2].subs), 10);
    /* o[0] can subscribe again */
    assert_int_equal(sub(&t, "t1", &o[0]), 0);
    drop_owner(&t, &o[0]);
    drop_owner(&t, &o[1]);
    drop_owner(&t, &o[2]);
    assert_int_equal(t.count, 0);
    hr_topics_deinit(&t);
}

static void test_topics_subscribe_alloc_failure_changes_nothing(void **state)
{
    (void)state;
    hr_topics_t t;
    hr_topics_init(&t);
    owner_t a, b;
    owner_init(&a, 1);
    owner_init(&b, 2);
    char name[32];
    /* the first subscribe needs the sub, the table and the topic */
    for (long nth = 1;; nth++) {
        hr_alloc_fail_at(nth);
        int rc = sub(&t, "first", &a);
        long used = hr_alloc_count();
        hr_alloc_fail_at(0);
        if (rc == 0) {
            assert_true(used < nth);
            break;
        }
        assert_int_equal(rc, HR_ENOMEM);
        assert_null(find(&t, "first"));
        assert_true(hr_list_empty(&a.subs));
        assert_int_equal(t.count, 0);
    }
    /* fill to the growth point, then fail each allocation of the growing subscribe */
    int i = 0;
    while (t.count < t.nbuckets) {
        snprintf(name, sizeof(name), "fill%d", i++);
        assert_int_equal(sub(&t, name, &a), 0);
    }
    size_t nb = t.nbuckets, count = t.count, subs = list_len(&a.subs);
    for (long nth = 1;; nth++) {
        hr_alloc_fail_at(nth);
        int rc = sub(&t, "grow", &b);
        long used = hr_alloc_count();
        hr_alloc_fail_at(0);
        if (rc == 0) {
            assert_true(used < nth);
            assert_true(t.nbuckets > nb);
            break;
        }
        assert_int_equal(rc, HR_ENOMEM);
        assert_null(find(&t, "grow"));
        assert_int_equal(t.count, count);
        assert_true(hr_list_empty(&b.subs));
        assert_int_equal(list_len(&a.subs), subs);
    }
    /* a second subscriber of an existing topic only needs the sub */
    hr_alloc_fail_at(1);
    assert_int_equal(sub(&t, "grow", &a), HR_ENOMEM);
    hr_alloc_fail_at(0);
    assert_int_equal(list_len(&find(&t, "grow")->subs), 1);
    drop_owner(&t, &a);
    drop_owner(&t, &b);
    assert_int_equal(t.count, 0);
    hr_topics_deinit(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topics_empty_table_finds_nothing),
        cmocka_unit_test(test_topics_subscribe_find_unsubscribe),
        cmocka_unit_test(test_topics_duplicate_subscription_is_eexist),
        cmocka_unit_test(test_topics_unsubscribe_unknown_is_enoent),
        cmocka_unit_test(test_topics_names_compare_by_length_and_bytes),
        cmocka_unit_test(test_topics_ten_thousand_topics_force_growth),
        cmocka_unit_test(test_topics_remove_from_owner_walk_leaves_other_owners),
        cmocka_unit_test(test_topics_subscribe_alloc_failure_changes_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
