#ifndef HR_PROTO_POSITION_H
#define HR_PROTO_POSITION_H

/* Position strings and query strings of the fallback transports (/sse, /poll;
 * docs/sse-poll.md). A position lists every subscribed channel's position as entries
 * "<channel>:<offset>:<epoch>" joined by ','. Pure: parses in place, allocates nothing. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/buf.h"
#include "base/slice.h"

#define HR_POSITION_EPOCH_MAX 64 /* bytes, as the JSON protocol's since.epoch */

typedef struct hr_position_entry {
    hr_slice_t channel; /* into the parsed text; never empty, may contain ':' */
    uint64_t offset;
    hr_slice_t epoch; /* [a-z0-9]{1,HR_POSITION_EPOCH_MAX} */
} hr_position_entry_t;

/* Parses s[0..len) into out[0..max). Each entry is read from the right (the channel may
 * contain ':'). An empty string has no entries. Returns the number of entries, HR_EINVAL
 * (an empty entry, a missing part, an offset that is not decimal digits or is over
 * 2^53 - 1, an epoch not [a-z0-9]+ or too long) or HR_ENOBUFS (more than max entries). */
int hr_position_parse(const char *s, size_t len, hr_position_entry_t *out, size_t max);

/* Appends one entry to b, preceded by ',' when b holds more than its first `from` bytes
 * (the position string starts at b->data + from). 0 or HR_ENOMEM (b unchanged). */
int hr_position_append(hr_buf_t *b, size_t from, hr_slice_t channel, uint64_t offset,
                       hr_slice_t epoch);

/* The next "name=value" (or bare "name") parameter of query q[0..len) from *pos, which
 * it advances; empty parameters ("a=1&&b=2") are skipped. false at the end. Name and
 * value point into q, still percent-encoded. */
bool hr_query_next(const char *q, size_t len, size_t *pos, hr_slice_t *name, hr_slice_t *value);

/* Percent-decodes s[0..len) into dst[0..cap) ('+' is a space, as forms send it). The
 * decoded length, or HR_EINVAL (a '%' not followed by two hex digits, a NUL raw or decoded)
 * or HR_ENOBUFS (more than cap bytes). dst is not NUL-terminated. */
ssize_t hr_query_decode(const char *s, size_t len, char *dst, size_t cap);

#endif
