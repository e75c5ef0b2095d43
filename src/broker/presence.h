#ifndef HR_BROKER_PRESENCE_H
#define HR_BROKER_PRESENCE_H

/* Presence of one channel: which clients are subscribed, under which user id, and how
 * many subscriptions each holds (a client may subscribe through several patterns or
 * protocols; it is present until the last one goes). An open-addressing hash table keyed
 * by client id: O(1) average add, remove and lookup. */

#include <stddef.h>
#include <stdint.h>

#define HR_PRESENCE_USER_MAX 128

typedef struct hr_presence_slot {
    uint64_t client;
    char *user;     /* NULL for an anonymous client */
    uint32_t count; /* subscriptions; 0 marks an empty slot */
} hr_presence_slot_t;

typedef struct hr_presence {
    hr_presence_slot_t *slots; /* NULL until the first add */
    size_t cap;                /* power of two, or 0 */
    size_t count;              /* clients present */
} hr_presence_t;

/* Called for each present client; user is "" for an anonymous one, borrowed for the call.
 * A non-zero return stops the walk. The callback must not change the table. */
typedef int (*hr_presence_cb)(void *ctx, uint64_t client, const char *user, uint32_t subs);

/* An empty table; allocates nothing. */
void hr_presence_init(hr_presence_t *p);
/* Frees everything; p may then be initialised again. */
void hr_presence_deinit(hr_presence_t *p);
/* One more subscription of client: 1 joined, 0 already present, HR_EINVAL (user over 128
 * bytes, or 2^32-1 subscriptions), HR_ENOMEM; user (NULL or "" for none) is kept from the
 * first subscription. */
int hr_presence_add(hr_presence_t *p, uint64_t client, const char *user);
/* One subscription fewer: 1 left (last one), 0 still present, HR_ENOENT. */
int hr_presence_remove(hr_presence_t *p, uint64_t client);
/* Clients present. */
size_t hr_presence_count(const hr_presence_t *p);
/* The client's user id ("" when anonymous), or NULL when the client is not present. */
const char *hr_presence_user(const hr_presence_t *p, uint64_t client);
/* Calls cb for every client in table order; returns the first non-zero cb result, or 0. */
int hr_presence_foreach(const hr_presence_t *p, hr_presence_cb cb, void *ctx);

#endif
