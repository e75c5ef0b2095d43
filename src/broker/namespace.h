#ifndef HR_BROKER_NAMESPACE_H
#define HR_BROKER_NAMESPACE_H

/* Per-namespace channel options: a pattern (or exact name) and what channels matching
 * it get: history size and TTL, whether clients may publish, presence, and what to do
 * with a subscriber that cannot keep up. Namespaces are tried in the order they were
 * added; the first match wins, and a channel no namespace matches gets the defaults. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HR_NAMESPACES_MAX 64
#define HR_NAMESPACE_HISTORY_MAX 100000u
#define HR_NAMESPACE_TTL_MAX_S 604800u

typedef enum hr_slow_policy {
    HR_SLOW_DISCONNECT,  /* close the slow client with 1008 */
    HR_SLOW_DROP_OLDEST, /* drop its oldest queued pub/sub messages */
    HR_SLOW_DROP_NEWEST, /* drop the message that does not fit */
} hr_slow_policy_t;

typedef enum hr_ns_access {
    HR_ACCESS_PUBLIC,  /* anyone may subscribe (and publish, with publish=on) */
    HR_ACCESS_PRIVATE, /* a token whose channels claim covers the channel */
    HR_ACCESS_SERVER,  /* anyone may subscribe; only the server (API) publishes */
} hr_ns_access_t;

typedef struct hr_namespace {
    char pattern[256];
    uint32_t history_size;
    uint64_t history_ttl_ms;
    bool client_publish;
    bool presence;
    hr_slow_policy_t slow;
    hr_ns_access_t access;
} hr_namespace_t;

typedef struct hr_namespaces {
    hr_namespace_t items[HR_NAMESPACES_MAX];
    size_t count;
} hr_namespaces_t;

/* Fills *out with the defaults (history 100, ttl 300 s, publish on, presence off,
 * slow disconnect, access public) and the pattern ">" (every channel). */
void hr_namespace_default(hr_namespace_t *out);
/* Parses "pattern[:key=value,...]"; 0, or -1 with a one-line message in err. */
int hr_namespace_parse(const char *spec, hr_namespace_t *out, char *err, size_t errlen);
/* The name of a slow-consumer policy as the parser spells it ("drop-oldest"). */
const char *hr_slow_policy_name(hr_slow_policy_t slow);
/* The name of an access mode as the parser spells it ("private"). */
const char *hr_ns_access_name(hr_ns_access_t access);

/* Empties the list. */
void hr_namespaces_init(hr_namespaces_t *list);
/* Appends a copy of *ns: 0, HR_EINVAL (bad pattern), HR_EEXIST (same pattern), HR_ENOBUFS. */
int hr_namespaces_add(hr_namespaces_t *list, const hr_namespace_t *ns);
/* The first added namespace whose pattern matches the channel, else the static default. */
const hr_namespace_t *hr_namespaces_lookup(const hr_namespaces_t *list, const char *channel,
                                           size_t n);

#endif
