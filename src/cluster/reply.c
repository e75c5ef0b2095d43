/* Copies of hiredis replies (see cluster.h): hiredis frees its reply when the callback
 * returns, while the answer travels to another thread. No I/O. */
#include <hiredis/hiredis.h>
#include <string.h>

#include "base/alloc.h"
#include "cluster/cluster.h"

void hr_cluster__reply_free(hr_cluster_reply_t *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++)
        hr_cluster__reply_free(r->elem[i]);
    hr_free(r->elem);
    hr_free(r->str);
    hr_free(r);
}

hr_cluster_pub_outcome_t hr_cluster_publish_outcome(const hr_cluster_reply_t *x, uint64_t *offset,
                                                    const char **epoch)
{
    if (!x || x->type == HR_CLUSTER_REPLY_ERROR)
        return HR_CLUSTER_PUB_NOT_RUN;
    /* {offset, epoch, time_ms} (scripts.c) */
    if (x->type != HR_CLUSTER_REPLY_ARRAY || x->n < 2 ||
        x->elem[0]->type != HR_CLUSTER_REPLY_INTEGER || x->elem[0]->integer <= 0 ||
        x->elem[1]->type != HR_CLUSTER_REPLY_STRING)
        return HR_CLUSTER_PUB_UNKNOWN;
    *offset = (uint64_t)x->elem[0]->integer;
    *epoch = x->elem[1]->str;
    return HR_CLUSTER_PUB_DONE;
}

hr_cluster_reply_t *hr_cluster__reply_copy(const struct redisReply *x)
{
    hr_cluster_reply_t *r = hr_calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->type = x->type;
    r->integer = x->integer;
    if (x->str) {
        r->str = hr_malloc(x->len + 1);
        if (!r->str)
            goto fail;
        memcpy(r->str, x->str, x->len);
        r->str[x->len] = 0;
        r->len = x->len;
    }
    if (x->type == REDIS_REPLY_ARRAY && x->elements) {
        r->elem = hr_calloc(x->elements, sizeof(*r->elem));
        if (!r->elem)
            goto fail;
        for (size_t i = 0; i < x->elements; i++) {
            r->elem[i] = hr_cluster__reply_copy(x->element[i]);
            r->n = i + 1;
            if (!r->elem[i])
                goto fail;
        }
    }
    return r;
fail:
    hr_cluster__reply_free(r);
    return NULL;
}
