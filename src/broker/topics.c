/* Topic table (see topics.h): chained hash table of FNV-1a hashes, doubled when the
 * load passes 1. A topic is freed with its last subscription, so the table holds only
 * topics somebody on this thread listens to. */
#include <string.h>

#include "base/alloc.h"
#include "base/hash.h"
#include "broker/topics.h"
#include "herald/error.h"

void hr_topics_init(hr_topics_t *t)
{
    t->buckets = NULL;
    t->nbuckets = 0;
    t->count = 0;
}

void hr_topics_deinit(hr_topics_t *t)
{
    for (size_t i = 0; i < t->nbuckets; i++) {
        while (t->buckets[i]) {
            hr_topic_t *tp = t->buckets[i];
            t->buckets[i] = tp->next;
            hr_free(tp);
        }
    }
    hr_free(t->buckets);
    hr_topics_init(t);
}

hr_topic_t *hr_topics_find(const hr_topics_t *t, const char *name, size_t len)
{
    if (!t->nbuckets)
        return NULL;
    uint64_t h = hr_hash_name(name, len);
    for (hr_topic_t *tp = t->buckets[h & (t->nbuckets - 1)]; tp; tp = tp->next)
        if (tp->hash == h && tp->name_len == len && memcmp(tp->name, name, len) == 0)
            return tp;
    return NULL;
}

static int grow(hr_topics_t *t)
{
    size_t n = t->nbuckets ? t->nbuckets * 2 : 16;
    hr_topic_t **b = hr_calloc(n, sizeof(*b));
    if (!b)
        return HR_ENOMEM;
    for (size_t i = 0; i < t->nbuckets; i++) {
        while (t->buckets[i]) {
            hr_topic_t *tp = t->buckets[i];
            t->buckets[i] = tp->next;
            tp->next = b[tp->hash & (n - 1)];
            b[tp->hash & (n - 1)] = tp;
        }
    }
    hr_free(t->buckets);
    t->buckets = b;
    t->nbuckets = n;
    return 0;
}

int hr_topics_subscribe(hr_topics_t *t, const char *name, size_t len, void *owner,
                        hr_list_t *owner_list)
{
    hr_topic_t *tp = hr_topics_find(t, name, len);
    if (tp) {
        for (hr_list_t *n = tp->subs.next; n != &tp->subs; n = n->next)
            if (hr_list_entry(n, hr_sub_t, topic_link)->owner == owner)
                return HR_EEXIST;
    }
    hr_sub_t *sub = hr_malloc(sizeof(*sub));
    if (!sub)
        return HR_ENOMEM;
    if (!tp) {
        if (t->count >= t->nbuckets && grow(t)) {
            hr_free(sub);
            return HR_ENOMEM;
        }
        tp = hr_malloc(sizeof(*tp) + len + 1);
        if (!tp) {
            hr_free(sub);
            return HR_ENOMEM;
        }
        tp->hash = hr_hash_name(name, len);
        tp->name_len = len;
        memcpy(tp->name, name, len);
        tp->name[len] = 0;
        hr_list_init(&tp->subs);
        tp->next = t->buckets[tp->hash & (t->nbuckets - 1)];
        t->buckets[tp->hash & (t->nbuckets - 1)] = tp;
        t->count++;
    }
    sub->topic = tp;
    sub->table = t;
    sub->owner = owner;
    sub->last_offset = 0;
    sub->state = 0;
    sub->kind = 0;
    hr_list_push_back(&tp->subs, &sub->topic_link);
    hr_list_push_back(owner_list, &sub->owner_link);
    return 0;
}

void hr_topics_remove(hr_topics_t *t, hr_sub_t *sub)
{
    hr_topic_t *tp = sub->topic;
    hr_list_remove(&sub->topic_link);
    hr_list_remove(&sub->owner_link);
    hr_free(sub);
    if (!hr_list_empty(&tp->subs))
        return;
    hr_topic_t **pp = &t->buckets[tp->hash & (t->nbuckets - 1)];
    while (*pp != tp)
        pp = &(*pp)->next;
    *pp = tp->next;
    t->count--;
    hr_free(tp);
}

int hr_topics_unsubscribe(hr_topics_t *t, const char *name, size_t len, void *owner)
{
    hr_topic_t *tp = hr_topics_find(t, name, len);
    if (!tp)
        return HR_ENOENT;
    for (hr_list_t *n = tp->subs.next; n != &tp->subs; n = n->next) {
        hr_sub_t *sub = hr_list_entry(n, hr_sub_t, topic_link);
        if (sub->owner == owner) {
            hr_topics_remove(t, sub);
            return 0;
        }
    }
    return HR_ENOENT;
}

void hr_topics_foreach(const hr_topics_t *t, void (*fn)(hr_topic_t *tp, void *ctx), void *ctx)
{
    for (size_t i = 0; i < t->nbuckets; i++)
        for (hr_topic_t *tp = t->buckets[i]; tp; tp = tp->next)
            fn(tp, ctx);
}
