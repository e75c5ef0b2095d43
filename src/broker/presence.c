/* Presence table (see presence.h). Open addressing with linear probing over slots of 24
 * bytes, at most 3/4 full, doubled when that is crossed and halved when it falls under
 * 1/8 (a channel that had a crowd should not keep its table). Removal shifts later
 * entries of the probe run back instead of leaving tombstones, so lookups never degrade
 * after churn. User ids are copied only when non-empty: anonymous subscribers, the
 * common case on big channels, cost one slot and no allocation. */
#include <stdbool.h>
#include <string.h>

#include "base/alloc.h"
#include "broker/presence.h"
#include "herald/error.h"

#define MIN_CAP 8

/* splitmix64 finaliser: client ids are often sequential, this spreads them. */
static size_t hash_client(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return (size_t)x;
}

void hr_presence_init(hr_presence_t *p)
{
    p->slots = NULL;
    p->cap = 0;
    p->count = 0;
}

void hr_presence_deinit(hr_presence_t *p)
{
    for (size_t i = 0; i < p->cap; i++)
        if (p->slots[i].count)
            hr_free(p->slots[i].user);
    hr_free(p->slots);
    hr_presence_init(p);
}

/* The slot holding client, or the empty slot where it would go; cap must be non-zero. */
static hr_presence_slot_t *probe(hr_presence_slot_t *slots, size_t cap, uint64_t client)
{
    size_t i = hash_client(client) & (cap - 1);
    while (slots[i].count && slots[i].client != client)
        i = (i + 1) & (cap - 1);
    return &slots[i];
}

static int resize(hr_presence_t *p, size_t cap)
{
    hr_presence_slot_t *slots = hr_calloc(cap, sizeof(*slots));
    if (!slots)
        return HR_ENOMEM;
    for (size_t i = 0; i < p->cap; i++)
        if (p->slots[i].count)
            *probe(slots, cap, p->slots[i].client) = p->slots[i];
    hr_free(p->slots);
    p->slots = slots;
    p->cap = cap;
    return 0;
}

static hr_presence_slot_t *find(const hr_presence_t *p, uint64_t client)
{
    if (!p->cap)
        return NULL;
    hr_presence_slot_t *s = probe(p->slots, p->cap, client);
    return s->count ? s : NULL;
}

int hr_presence_add(hr_presence_t *p, uint64_t client, const char *user)
{
    hr_presence_slot_t *s = find(p, client);
    if (s) {
        if (s->count == UINT32_MAX)
            return HR_EINVAL;
        s->count++;
        return 0;
    }
    size_t ulen = user ? strlen(user) : 0;
    if (ulen > HR_PRESENCE_USER_MAX)
        return HR_EINVAL;
    char *copy = NULL;
    if (ulen) {
        copy = hr_malloc(ulen + 1);
        if (!copy)
            return HR_ENOMEM;
        memcpy(copy, user, ulen + 1);
    }
    if ((p->count + 1) * 4 > p->cap * 3 && resize(p, p->cap ? p->cap * 2 : MIN_CAP)) {
        hr_free(copy);
        return HR_ENOMEM;
    }
    s = probe(p->slots, p->cap, client);
    *s = (hr_presence_slot_t){.client = client, .user = copy, .count = 1};
    p->count++;
    return 1;
}

/* Empties slot i and moves back the entries after it whose probe run passes through i
 * (Knuth 6.4, algorithm R), so that every entry stays reachable from its home slot. */
static void delete_at(hr_presence_t *p, size_t i)
{
    size_t mask = p->cap - 1;
    for (size_t j = (i + 1) & mask; p->slots[j].count; j = (j + 1) & mask) {
        size_t home = hash_client(p->slots[j].client) & mask;
        /* j's entry may move to i unless home lies cyclically in (i, j] */
        bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (!stays) {
            p->slots[i] = p->slots[j];
            i = j;
        }
    }
    p->slots[i] = (hr_presence_slot_t){0};
}

int hr_presence_remove(hr_presence_t *p, uint64_t client)
{
    hr_presence_slot_t *s = find(p, client);
    if (!s)
        return HR_ENOENT;
    if (--s->count)
        return 0;
    hr_free(s->user);
    delete_at(p, (size_t)(s - p->slots));
    p->count--;
    /* shrinking is an optimisation: if it fails the larger table stays valid */
    if (p->count == 0) {
        hr_free(p->slots);
        hr_presence_init(p);
    } else if (p->cap > MIN_CAP && p->count * 8 < p->cap) {
        (void)resize(p, p->cap / 2);
    }
    return 1;
}

size_t hr_presence_count(const hr_presence_t *p)
{
    return p->count;
}

const char *hr_presence_user(const hr_presence_t *p, uint64_t client)
{
    const hr_presence_slot_t *s = find(p, client);
    if (!s)
        return NULL;
    return s->user ? s->user : "";
}

int hr_presence_foreach(const hr_presence_t *p, hr_presence_cb cb, void *ctx)
{
    for (size_t i = 0; i < p->cap; i++) {
        const hr_presence_slot_t *s = &p->slots[i];
        if (!s->count)
            continue;
        int rc = cb(ctx, s->client, s->user ? s->user : "", s->count);
        if (rc)
            return rc;
    }
    return 0;
}
