/* Counts of open connections by key, shared by the shards (limits.h).
 *
 * Each stripe is a chained hash table over an array of entries. Chains and the free
 * list are 32-bit indexes into that array, so growing it (realloc) moves no handle, and
 * the bucket array alone is rebuilt when the stripe outgrows it. Cost: one lock, one
 * hash and a short chain walk per handshake and per close; an entry (and its copy of
 * the key) exists only while its count is above 0.
 *
 * Not done: per-prefix keys (an IPv6 client owning a /64 is many addresses); the caller
 * chooses the key. */
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "herald/error.h"
#include "server/limits.h"

#define STRIPE_BITS 4 /* HR_LIMIT_STRIPES == 1 << STRIPE_BITS */
#define MAX_ENTS (UINT32_MAX >> STRIPE_BITS)

struct hr_limit_entry {
    uint8_t *key; /* NULL: unused entry */
    uint32_t len, count, hash;
    uint32_t next; /* index + 1 in the chain (or the free list); 0 ends it */
};

/* FNV-1a from a random basis, then a 64-bit finaliser (splitmix64). */
static uint64_t hash_key(uint64_t seed, const void *key, size_t len)
{
    const uint8_t *p = key;
    uint64_t h = 1469598103934665603ull ^ seed;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    return h ^ (h >> 31);
}

int hr_limit_table_init(hr_limit_table_t *t)
{
    memset(t, 0, sizeof(*t));
    if (RAND_bytes((unsigned char *)&t->seed, sizeof(t->seed)) != 1)
        t->seed = (uint64_t)(uintptr_t)t ^ 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < HR_LIMIT_STRIPES; i++)
        if (pthread_mutex_init(&t->s[i].mu, NULL) != 0) {
            while (i--)
                pthread_mutex_destroy(&t->s[i].mu);
            return HR_ENOMEM;
        }
    return 0;
}

void hr_limit_table_deinit(hr_limit_table_t *t)
{
    for (int i = 0; i < HR_LIMIT_STRIPES; i++) {
        hr_limit_stripe_t *s = &t->s[i];
        for (uint32_t e = 0; e < s->nents; e++)
            hr_free(s->ents[e].key);
        hr_free(s->ents);
        hr_free(s->heads);
        pthread_mutex_destroy(&s->mu);
    }
    memset(t, 0, sizeof(*t));
}

static hr_limit_entry_t *find(hr_limit_stripe_t *s, uint32_t hash, const void *key, size_t len,
                              uint32_t *idx)
{
    if (!s->nbuckets)
        return NULL;
    for (uint32_t i = s->heads[hash & (s->nbuckets - 1)]; i; i = s->ents[i - 1].next) {
        hr_limit_entry_t *e = &s->ents[i - 1];
        if (e->hash == hash && e->len == len && memcmp(e->key, key, len) == 0) {
            *idx = i - 1;
            return e;
        }
    }
    return NULL;
}

/* Doubles the bucket array (rechaining every live entry). 0 or HR_ENOMEM. */
static int grow_buckets(hr_limit_stripe_t *s)
{
    uint32_t nb = s->nbuckets ? s->nbuckets * 2 : 16;
    uint32_t *heads = hr_calloc(nb, sizeof(*heads));
    if (!heads)
        return HR_ENOMEM;
    for (uint32_t i = 0; i < s->nents; i++) {
        hr_limit_entry_t *e = &s->ents[i];
        if (!e->key)
            continue;
        e->next = heads[e->hash & (nb - 1)];
        heads[e->hash & (nb - 1)] = i + 1;
    }
    hr_free(s->heads);
    s->heads = heads;
    s->nbuckets = nb;
    return 0;
}

/* An unused entry's index, or -1 (out of memory or of indexes). */
static int64_t new_entry(hr_limit_stripe_t *s)
{
    if (s->free_head) {
        uint32_t i = s->free_head - 1;
        s->free_head = s->ents[i].next;
        return i;
    }
    if (s->nents == s->cap) {
        uint32_t cap = s->cap ? s->cap * 2 : 16;
        if (cap > MAX_ENTS || s->cap > MAX_ENTS / 2)
            return -1;
        hr_limit_entry_t *ents = hr_realloc(s->ents, (size_t)cap * sizeof(*ents));
        if (!ents)
            return -1;
        s->ents = ents;
        s->cap = cap;
    }
    return s->nents++;
}

int hr_limit_acquire(hr_limit_table_t *t, const void *key, size_t len, int max, uint32_t *handle)
{
    uint64_t h64 = hash_key(t->seed, key, len);
    uint32_t stripe = (uint32_t)(h64 >> 60), hash = (uint32_t)h64;
    hr_limit_stripe_t *s = &t->s[stripe];
    int rc = 0;
    uint32_t idx = 0;
    pthread_mutex_lock(&s->mu);
    hr_limit_entry_t *e = find(s, hash, key, len, &idx);
    if (e) {
        if (max > 0 && e->count >= (uint32_t)max)
            rc = HR_ENOBUFS;
        else
            e->count++;
        goto out;
    }
    if (s->live >= s->nbuckets && grow_buckets(s) != 0) {
        rc = HR_ENOMEM;
        goto out;
    }
    int64_t i = new_entry(s);
    uint8_t *copy = i >= 0 ? hr_malloc(len ? len : 1) : NULL;
    if (!copy) {
        if (i >= 0) {
            s->ents[i].key = NULL;
            s->ents[i].next = s->free_head;
            s->free_head = (uint32_t)i + 1;
        }
        rc = HR_ENOMEM;
        goto out;
    }
    memcpy(copy, key, len);
    idx = (uint32_t)i;
    e = &s->ents[idx];
    e->key = copy;
    e->len = (uint32_t)len;
    e->count = 1;
    e->hash = hash;
    e->next = s->heads[hash & (s->nbuckets - 1)];
    s->heads[hash & (s->nbuckets - 1)] = idx + 1;
    s->live++;
out:
    pthread_mutex_unlock(&s->mu);
    if (rc == 0)
        *handle = ((idx << STRIPE_BITS) | stripe) + 1;
    return rc;
}

void hr_limit_release(hr_limit_table_t *t, uint32_t handle)
{
    if (!handle)
        return;
    handle--;
    hr_limit_stripe_t *s = &t->s[handle & (HR_LIMIT_STRIPES - 1)];
    uint32_t idx = handle >> STRIPE_BITS;
    pthread_mutex_lock(&s->mu);
    if (idx < s->nents && s->ents[idx].key && s->ents[idx].count && --s->ents[idx].count == 0) {
        hr_limit_entry_t *e = &s->ents[idx];
        uint32_t *link = &s->heads[e->hash & (s->nbuckets - 1)];
        while (*link && *link != idx + 1)
            link = &s->ents[*link - 1].next;
        if (*link)
            *link = e->next;
        hr_free(e->key);
        e->key = NULL;
        e->next = s->free_head;
        s->free_head = idx + 1;
        s->live--;
    }
    pthread_mutex_unlock(&s->mu);
}

uint32_t hr_limit_count(hr_limit_table_t *t, const void *key, size_t len)
{
    uint64_t h64 = hash_key(t->seed, key, len);
    hr_limit_stripe_t *s = &t->s[h64 >> 60];
    uint32_t idx, n = 0;
    pthread_mutex_lock(&s->mu);
    hr_limit_entry_t *e = find(s, (uint32_t)h64, key, len, &idx);
    if (e)
        n = e->count;
    pthread_mutex_unlock(&s->mu);
    return n;
}

void hr_limit_foreach(hr_limit_table_t *t,
                      void (*fn)(const void *key, size_t len, uint32_t count, void *arg), void *arg)
{
    for (int i = 0; i < HR_LIMIT_STRIPES; i++) {
        hr_limit_stripe_t *s = &t->s[i];
        pthread_mutex_lock(&s->mu);
        for (uint32_t e = 0; e < s->nents; e++)
            if (s->ents[e].key && s->ents[e].count)
                fn(s->ents[e].key, s->ents[e].len, s->ents[e].count, arg);
        pthread_mutex_unlock(&s->mu);
    }
}
