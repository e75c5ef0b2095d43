#ifndef HR_BROKER_CHANNEL_H
#define HR_BROKER_CHANNEL_H

/* Channel names and subscription patterns. A name is 1..255 bytes of dot-separated,
 * non-empty segments over [A-Za-z0-9_-:@/=+~!]. A pattern is a name whose segments may
 * also be exactly "*" (any one segment) and whose last segment may be exactly ">" (one
 * or more remaining segments). Pure functions: no allocation, no state. */

#include <stdbool.h>
#include <stddef.h>

#define HR_CHANNEL_MAX 255

/* True when s[0..n) is a valid channel name (no wildcards). */
bool hr_channel_name_valid(const char *s, size_t n);
/* True when s[0..n) is a valid pattern; every valid name is also a valid pattern. */
bool hr_channel_pattern_valid(const char *s, size_t n);
/* True when s[0..n) is a valid pattern with at least one "*" or ">" segment. */
bool hr_channel_is_pattern(const char *s, size_t n);
/* True when name matches pat; both are expected valid, other input gives a memory-safe
 * but unspecified answer. */
bool hr_channel_match(const char *pat, size_t pn, const char *name, size_t nn);

#endif
