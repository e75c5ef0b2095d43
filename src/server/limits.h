#ifndef HR_SERVER_LIMITS_H
#define HR_SERVER_LIMITS_H

/* Connection limits (docs/security.md): counts of open connections by key (a client
 * address, a user name) shared by every shard, and the per-connection message-rate
 * token bucket.
 *
 * A count changes at a handshake and at a close, never per message, so each table is a
 * few mutex-protected stripes chosen by the key's hash. A counted connection keeps a
 * 32-bit handle (stripe and entry), which is all its release needs: the key itself is
 * not kept per connection. The bucket is one uint32 per connection: the refill time is
 * the connection's last receive time, which it keeps anyway (session.c). */

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HR_LIMIT_STRIPES 16

typedef struct hr_limit_entry hr_limit_entry_t;

typedef struct hr_limit_stripe {
    pthread_mutex_t mu;
    hr_limit_entry_t *ents; /* by index; handles point here, so entries never move index */
    uint32_t nents, cap;    /* used, allocated */
    uint32_t free_head;     /* index + 1 of the first unused entry, chained by next; 0 none */
    uint32_t *heads;        /* nbuckets hash chains: index + 1 of the first entry; 0 empty */
    uint32_t nbuckets, live;
} hr_limit_stripe_t;

typedef struct hr_limit_table {
    hr_limit_stripe_t s[HR_LIMIT_STRIPES];
    uint64_t seed; /* keyed hash: chains cannot be lengthened at will by chosen keys */
} hr_limit_table_t;

/* 0 or HR_ENOMEM. */
int hr_limit_table_init(hr_limit_table_t *t);
/* Frees every entry (counted or not). */
void hr_limit_table_deinit(hr_limit_table_t *t);
/* Counts one more connection for key[0..len) unless max (> 0; 0: no limit) are counted
 * already. 0 with *handle set (nonzero; for hr_limit_release), HR_ENOBUFS when over the
 * limit (nothing counted), HR_ENOMEM. Any thread. */
int hr_limit_acquire(hr_limit_table_t *t, const void *key, size_t len, int max, uint32_t *handle);
/* Releases what the handle counted; the entry goes when its count reaches 0. Handle 0:
 * nothing. Any thread. */
void hr_limit_release(hr_limit_table_t *t, uint32_t handle);
/* The count for key[0..len) (tests). */
uint32_t hr_limit_count(hr_limit_table_t *t, const void *key, size_t len);
/* Calls fn(key, len, count, arg) for every counted key, a stripe's lock held: fn must
 * not call back into t (cluster_limits.c copies what it needs). Any thread. */
void hr_limit_foreach(hr_limit_table_t *t,
                      void (*fn)(const void *key, size_t len, uint32_t count, void *arg),
                      void *arg);

/* ---- message rate: a token bucket of HR_RATE_ONE units per message, in a uint32. */
#define HR_RATE_ONE 4096u
/* Bursts above this many messages count as this many (the bucket is 32 bits). */
#define HR_RATE_MAX_BURST 1000000

/* A full bucket for burst messages. */
static inline uint32_t hr_rate_full(int burst);
/* tokens after elapsed_ms at rate messages/s, at most a full bucket. */
static inline uint32_t hr_rate_refill(uint32_t tokens, uint32_t elapsed_ms, double rate, int burst);
/* Takes one message's worth: false (nothing taken) if the bucket holds less. */
static inline bool hr_rate_take(uint32_t *tokens);

/* inline definitions */

static inline uint32_t hr_rate_full(int burst)
{
    if (burst < 1)
        burst = 1;
    if (burst > HR_RATE_MAX_BURST)
        burst = HR_RATE_MAX_BURST;
    return (uint32_t)burst * HR_RATE_ONE;
}

static inline uint32_t hr_rate_refill(uint32_t tokens, uint32_t elapsed_ms, double rate, int burst)
{
    uint32_t full = hr_rate_full(burst);
    /* Rounded to the nearest unit: each refill errs by at most half a unit. */
    double t = (double)tokens + (double)elapsed_ms * rate * (HR_RATE_ONE / 1000.0) + 0.5;
    return t >= (double)full ? full : (uint32_t)t;
}

static inline bool hr_rate_take(uint32_t *tokens)
{
    if (*tokens < HR_RATE_ONE)
        return false;
    *tokens -= HR_RATE_ONE;
    return true;
}

#endif
