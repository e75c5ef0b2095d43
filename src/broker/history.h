#ifndef HR_BROKER_HISTORY_H
#define HR_BROKER_HISTORY_H

/* Per-channel history: a ring of the last `capacity` messages, each with its offset
 * (1, 2, 3 ... per channel) and the time it was appended, under an epoch string that
 * changes whenever history is lost (restart, channel re-created). A client that
 * remembers (offset, epoch) asks hr_history_since() on reconnect whether everything it
 * missed is still here. Items are opaque to the ring: it stores the pointer and calls
 * `release` exactly once when the entry leaves (overwritten, expired or at deinit). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HR_HISTORY_EPOCH_MIN 8
#define HR_HISTORY_EPOCH_MAX 16

/* Results of hr_history_since(). */
enum {
    HR_HISTORY_RECOVERED = 0, /* every missed entry is in the range (possibly none) */
    HR_HISTORY_GAP = 1,       /* the client missed something the ring no longer has */
};

typedef struct hr_history_entry {
    uint64_t offset;
    uint64_t time_ms;
    void *item;
} hr_history_entry_t;

/* Entries hr_history_at(h, first) .. hr_history_at(h, first + count - 1); consecutive
 * offsets, oldest first. */
typedef struct hr_history_range {
    size_t first;
    size_t count;
} hr_history_range_t;

typedef struct hr_history {
    hr_history_entry_t *ring; /* NULL when capacity is 0 */
    uint32_t capacity;
    uint32_t head;  /* index of the oldest entry */
    uint32_t count; /* entries stored */
    uint64_t ttl_ms;
    uint64_t next_offset; /* offset the next append gets; starts at 1 */
    void (*release)(void *item);
    char epoch[HR_HISTORY_EPOCH_MAX + 1];
} hr_history_t;

/* 8..16 characters of [a-z0-9]. */
bool hr_history_epoch_valid(const char *epoch);
/* 0, HR_EINVAL for a bad epoch, HR_ENOMEM; capacity 0 keeps none, ttl 0 never expires;
 * release may be NULL when items are not owned. */
int hr_history_init(hr_history_t *h, uint32_t capacity, uint64_t ttl_ms, const char *epoch,
                    void (*release)(void *item));
/* Releases every stored item and frees the ring; h may then be initialised again. */
void hr_history_deinit(hr_history_t *h);
/* Stores item (taking over its reference) after expiring old entries; returns its offset. */
uint64_t hr_history_append(hr_history_t *h, void *item, uint64_t now_ms);
/* Releases the entries whose age (now_ms - time_ms) is ttl_ms or more, oldest first. */
void hr_history_expire(hr_history_t *h, uint64_t now_ms);
/* The last offset given out, 0 before the first append. */
uint64_t hr_history_top(const hr_history_t *h);
/* Number of entries stored. */
size_t hr_history_count(const hr_history_t *h);
/* The i-th stored entry (0 is the oldest), or NULL when i >= count. */
const hr_history_entry_t *hr_history_at(const hr_history_t *h, size_t i);
/* Recovery after (offset, epoch): HR_HISTORY_RECOVERED with *out the entries above
 * offset, or HR_HISTORY_GAP (epoch differs, offset > top, or missed entries are gone). */
int hr_history_since(const hr_history_t *h, uint64_t offset, const char *epoch,
                     hr_history_range_t *out);
/* The last min(limit, count) entries in *out (SIZE_MAX for all). */
void hr_history_last(const hr_history_t *h, size_t limit, hr_history_range_t *out);

#endif
