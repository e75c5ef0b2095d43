#ifndef HR_BROKER_TOPICS_H
#define HR_BROKER_TOPICS_H

/* One thread's topic table: topic name -> the subscriptions on this thread. Each
 * subscription is linked into its topic's list and its owner's list (intrusive), so
 * subscribe, unsubscribe and dropping every subscription of a closing owner are O(1)
 * per subscription. Knows nothing of connections or wire formats. */

#include <stddef.h>
#include <stdint.h>

#include "base/list.h"

typedef struct hr_topic {
    struct hr_topic *next; /* hash chain */
    uint64_t hash;
    hr_list_t subs;
    size_t name_len;
    char name[];
} hr_topic_t;

struct hr_topics;

typedef struct hr_sub {
    hr_list_t topic_link;
    hr_list_t owner_link;
    hr_topic_t *topic;
    struct hr_topics *table; /* the table the subscription is in */
    void *owner;
    uint64_t last_offset; /* channels: the last offset delivered to this subscriber */
    uint8_t state;        /* channels: the user's (e.g. pending until recovery answers) */
    uint8_t kind;         /* what owner is: the user's to set (0 after subscribe) */
} hr_sub_t;

typedef struct hr_topics {
    hr_topic_t **buckets;
    size_t nbuckets;
    size_t count;
} hr_topics_t;

void hr_topics_init(hr_topics_t *t);
/* Frees every topic; there must be no subscriptions left. */
void hr_topics_deinit(hr_topics_t *t);
/* Subscribes owner (whose list of subscriptions is owner_list). 0, HR_EEXIST, HR_ENOMEM. */
int hr_topics_subscribe(hr_topics_t *t, const char *name, size_t len, void *owner,
                        hr_list_t *owner_list);
/* 0 or HR_ENOENT. */
int hr_topics_unsubscribe(hr_topics_t *t, const char *name, size_t len, void *owner);
/* Removes one subscription (from an owner's list walk) and frees it. */
void hr_topics_remove(hr_topics_t *t, hr_sub_t *sub);
/* The subscription hr_topics_subscribe just added for an owner (the last of its list). */
static inline hr_sub_t *hr_topics_last_of(hr_list_t *owner_list)
{
    return hr_list_entry(owner_list->prev, hr_sub_t, owner_link);
}
/* Calls fn for every topic; fn must not add or remove topics. */
void hr_topics_foreach(const hr_topics_t *t, void (*fn)(hr_topic_t *tp, void *ctx), void *ctx);
/* The topic, or NULL when nobody on this thread is subscribed. */
hr_topic_t *hr_topics_find(const hr_topics_t *t, const char *name, size_t len);

#endif
