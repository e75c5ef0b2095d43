/* Unit tests for hr_limit_foreach (src/server/limits.c): what the cluster per-user limit
 * (src/cluster/cluster_limits.c) rewrites into Redis after an outage is exactly the
 * counted keys with their counts, released keys excluded. */
#include "test_util.h"

#include <stdio.h>
#include <string.h>

#include "server/limits.h"

typedef struct seen {
    char keys[64][16];
    uint32_t counts[64];
    int n;
} seen_t;

static void collect(const void *key, size_t len, uint32_t count, void *arg)
{
    seen_t *s = arg;
    assert_true(s->n < 64 && len < sizeof(s->keys[0]));
    memcpy(s->keys[s->n], key, len);
    s->keys[s->n][len] = 0;
    s->counts[s->n++] = count;
}

static uint32_t count_of(const seen_t *s, const char *key)
{
    uint32_t total = 0;
    int hits = 0;
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->keys[i], key) == 0) {
            total += s->counts[i];
            hits++;
        }
    assert_true(hits <= 1); /* each key once */
    return total;
}

static void test_limits_foreach_lists_counted_keys_once(void **state)
{
    (void)state;
    hr_limit_table_t t;
    assert_int_equal(hr_limit_table_init(&t), 0);
    seen_t s = {.n = 0};
    hr_limit_foreach(&t, collect, &s);
    assert_int_equal(s.n, 0); /* empty table */

    uint32_t h[40] = {0};
    char key[16];
    for (int i = 0; i < 40; i++) { /* user0..user19, two connections each */
        snprintf(key, sizeof(key), "user%d", i / 2);
        assert_int_equal(hr_limit_acquire(&t, key, strlen(key), 0, &h[i]), 0);
    }
    hr_limit_release(&t, h[0]); /* user0: 1 left */
    hr_limit_release(&t, h[2]); /* user1: none left */
    hr_limit_release(&t, h[3]);
    hr_limit_foreach(&t, collect, &s);
    assert_int_equal(s.n, 19);
    assert_int_equal(count_of(&s, "user0"), 1);
    assert_int_equal(count_of(&s, "user1"), 0);
    for (int u = 2; u < 20; u++) {
        snprintf(key, sizeof(key), "user%d", u);
        assert_int_equal(count_of(&s, key), 2);
    }
    for (int i = 0; i < 40; i++)
        if (i != 0 && i != 2 && i != 3)
            hr_limit_release(&t, h[i]);
    s.n = 0;
    hr_limit_foreach(&t, collect, &s);
    assert_int_equal(s.n, 0); /* everything released: nothing listed */
    hr_limit_table_deinit(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limits_foreach_lists_counted_keys_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
