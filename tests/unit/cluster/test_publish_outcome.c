/* Unit tests for hr_cluster_publish_outcome (src/cluster/reply.c): how a publish
 * script's answer is read. Only a well-formed {offset, epoch, time} is "done"; no answer
 * after sending ("unknown") and any answer the script never gives must not be taken as
 * "not run" (the node would deliver the message itself and subscribers get it twice);
 * "not sent" and Redis error answers are "not run". */
#include "test_util.h"

#include <string.h>

#include "cluster/cluster.h"

static hr_cluster_reply_t str(int type, const char *s)
{
    return (hr_cluster_reply_t){.type = type, .str = (char *)s, .len = strlen(s)};
}

static hr_cluster_reply_t num(long long i)
{
    return (hr_cluster_reply_t){.type = HR_CLUSTER_REPLY_INTEGER, .integer = i};
}

static hr_cluster_reply_t arr(hr_cluster_reply_t **elem, size_t n)
{
    return (hr_cluster_reply_t){.type = HR_CLUSTER_REPLY_ARRAY, .elem = elem, .n = n};
}

static void test_outcome_done(void **state)
{
    (void)state;
    hr_cluster_reply_t off = num(42), epoch = str(HR_CLUSTER_REPLY_STRING, "abc123def456"),
                       ms = str(HR_CLUSTER_REPLY_STRING, "1700000000000");
    hr_cluster_reply_t *el[3] = {&off, &epoch, &ms};
    hr_cluster_reply_t x = arr(el, 3);
    uint64_t offset = 0;
    const char *e = NULL;
    assert_int_equal(hr_cluster_publish_outcome(&x, &offset, &e), HR_CLUSTER_PUB_DONE);
    assert_int_equal(offset, 42);
    assert_string_equal(e, "abc123def456");
}

static void test_outcome_not_run(void **state)
{
    (void)state;
    uint64_t offset = 7;
    const char *e = "keep";
    /* Never sent: Redis was known down. */
    assert_int_equal(hr_cluster_publish_outcome(NULL, &offset, &e), HR_CLUSTER_PUB_NOT_RUN);
    /* Refused before the script's PUBLISH (its last call). */
    hr_cluster_reply_t oom = str(HR_CLUSTER_REPLY_ERROR, "OOM command not allowed");
    assert_int_equal(hr_cluster_publish_outcome(&oom, &offset, &e), HR_CLUSTER_PUB_NOT_RUN);
    assert_int_equal(offset, 7);
    assert_string_equal(e, "keep");
}

static void test_outcome_unknown(void **state)
{
    (void)state;
    uint64_t offset = 7;
    const char *e = "keep";
    hr_cluster_reply_t lost = {.type = HR_CLUSTER_REPLY_UNKNOWN};
    assert_int_equal(hr_cluster_publish_outcome(&lost, &offset, &e), HR_CLUSTER_PUB_UNKNOWN);
    /* Answers the script never gives: it ran, so it may have published. */
    hr_cluster_reply_t nil = {.type = HR_CLUSTER_REPLY_NIL},
                       ok = str(HR_CLUSTER_REPLY_STATUS, "OK");
    assert_int_equal(hr_cluster_publish_outcome(&nil, &offset, &e), HR_CLUSTER_PUB_UNKNOWN);
    assert_int_equal(hr_cluster_publish_outcome(&ok, &offset, &e), HR_CLUSTER_PUB_UNKNOWN);
    hr_cluster_reply_t zero = num(0), neg = num(-1), one = num(1),
                       epoch = str(HR_CLUSTER_REPLY_STRING, "e");
    hr_cluster_reply_t *short_el[1] = {&one};
    hr_cluster_reply_t *zero_el[2] = {&zero, &epoch};
    hr_cluster_reply_t *neg_el[2] = {&neg, &epoch};
    hr_cluster_reply_t *swapped_el[2] = {&epoch, &one};
    hr_cluster_reply_t *int_epoch_el[2] = {&one, &one};
    hr_cluster_reply_t bad[] = {arr(NULL, 0),   arr(short_el, 1),   arr(zero_el, 2),
                                arr(neg_el, 2), arr(swapped_el, 2), arr(int_epoch_el, 2)};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(hr_cluster_publish_outcome(&bad[i], &offset, &e), HR_CLUSTER_PUB_UNKNOWN);
    assert_int_equal(offset, 7);
    assert_string_equal(e, "keep");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_outcome_done),
        cmocka_unit_test(test_outcome_not_run),
        cmocka_unit_test(test_outcome_unknown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
