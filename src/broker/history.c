/* History ring (see history.h). One array of `capacity` entries allocated at init,
 * nothing allocated per message: append overwrites the oldest slot when full, so the
 * cost per publish is O(1) plus the entries it expires. Offsets are consecutive from
 * the oldest stored entry to top, which makes a recovery query arithmetic, O(1), with
 * no search. TTL expiry only ever drops from the oldest end: entries are appended in
 * time order, and a clock that steps back only delays expiry, it never reorders.
 * Deliberately not here: persistence, locking (one shard owns a channel's history) and
 * any knowledge of what an item is. */
#include <assert.h>
#include <string.h>

#include "base/alloc.h"
#include "broker/history.h"
#include "herald/error.h"

bool hr_history_epoch_valid(const char *epoch)
{
    if (!epoch)
        return false;
    size_t n = 0;
    for (; epoch[n] && n <= HR_HISTORY_EPOCH_MAX; n++) {
        char c = epoch[n];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
            return false;
    }
    return n >= HR_HISTORY_EPOCH_MIN && n <= HR_HISTORY_EPOCH_MAX;
}

int hr_history_init(hr_history_t *h, uint32_t capacity, uint64_t ttl_ms, const char *epoch,
                    void (*release)(void *item))
{
    memset(h, 0, sizeof(*h));
    if (!hr_history_epoch_valid(epoch))
        return HR_EINVAL;
    if (capacity) {
        h->ring = hr_calloc(capacity, sizeof(*h->ring));
        if (!h->ring)
            return HR_ENOMEM;
    }
    h->capacity = capacity;
    h->ttl_ms = ttl_ms;
    h->next_offset = 1;
    h->release = release;
    strcpy(h->epoch, epoch);
    return 0;
}

/* Drops the oldest entry. */
static void drop_oldest(hr_history_t *h)
{
    hr_history_entry_t *e = &h->ring[h->head];
    void *item = e->item;
    e->item = NULL;
    h->head = h->head + 1 == h->capacity ? 0 : h->head + 1;
    h->count--;
    if (h->release)
        h->release(item);
}

void hr_history_deinit(hr_history_t *h)
{
    while (h->count)
        drop_oldest(h);
    hr_free(h->ring);
    memset(h, 0, sizeof(*h));
}

void hr_history_expire(hr_history_t *h, uint64_t now_ms)
{
    if (!h->ttl_ms)
        return;
    while (h->count) {
        uint64_t t = h->ring[h->head].time_ms;
        if (now_ms < t || now_ms - t < h->ttl_ms)
            break;
        drop_oldest(h);
    }
}

uint64_t hr_history_append(hr_history_t *h, void *item, uint64_t now_ms)
{
    uint64_t offset = h->next_offset++;
    if (!h->capacity) {
        if (h->release)
            h->release(item);
        return offset;
    }
    hr_history_expire(h, now_ms);
    if (h->count == h->capacity)
        drop_oldest(h);
    uint32_t at = h->head + h->count;
    if (at >= h->capacity)
        at -= h->capacity;
    h->ring[at] = (hr_history_entry_t){.offset = offset, .time_ms = now_ms, .item = item};
    h->count++;
    return offset;
}

uint64_t hr_history_top(const hr_history_t *h)
{
    return h->next_offset ? h->next_offset - 1 : 0;
}

size_t hr_history_count(const hr_history_t *h)
{
    return h->count;
}

const hr_history_entry_t *hr_history_at(const hr_history_t *h, size_t i)
{
    if (i >= h->count)
        return NULL;
    size_t at = h->head + i;
    if (at >= h->capacity)
        at -= h->capacity;
    return &h->ring[at];
}

int hr_history_since(const hr_history_t *h, uint64_t offset, const char *epoch,
                     hr_history_range_t *out)
{
    uint64_t top = hr_history_top(h);
    out->first = h->count;
    out->count = 0;
    if (!epoch || strcmp(epoch, h->epoch) != 0 || offset > top)
        return HR_HISTORY_GAP;
    uint64_t missed = top - offset;
    if (missed > h->count)
        return HR_HISTORY_GAP;
    out->first = h->count - (size_t)missed;
    out->count = (size_t)missed;
    assert(!missed || hr_history_at(h, out->first)->offset == offset + 1);
    return HR_HISTORY_RECOVERED;
}

void hr_history_last(const hr_history_t *h, size_t limit, hr_history_range_t *out)
{
    size_t n = limit < h->count ? limit : h->count;
    out->first = h->count - n;
    out->count = n;
}
