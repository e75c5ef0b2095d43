#ifndef HR_AUTH_GRANT_H
#define HR_AUTH_GRANT_H

/* What an authenticated connection may do: its user, when its credentials expire, and
 * (optionally) the channel patterns it may subscribe and publish to. A grant comes from
 * a verified JWT's claims (jwt.h) or from the auth webhook's answer; the checks below
 * combine it with the channel's namespace (broker/namespace.h, access=public|private|
 * server). Pure: no I/O, no clock. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/namespace.h"

#define HR_AUTH_USER_MAX 255
#define HR_AUTH_PATTERNS_MAX 64 /* per list */

typedef struct hr_auth_grant {
    char *user;        /* the token's sub: 1..255 bytes of text, NUL-terminated */
    int64_t exp;       /* seconds since the epoch; 0: never expires */
    bool has_channels; /* a "channels" claim was given: only its patterns are allowed */
    size_t nsubscribe, npublish;
    char **subscribe, **publish; /* valid patterns (broker/channel.h) */
} hr_auth_grant_t;

/* Builds a grant from a JSON object (jansson json_t *): user_key names the user member
 * ("sub" for JWT claims, "user" for the webhook's answer), "channels" is optional
 * ({"subscribe": [...], "publish": [...]}, each a list of at most 64 valid patterns).
 * exp is copied as given. One allocation, freed by hr_auth_grant_free. 0, HR_EINVAL
 * with *why (a static string), or HR_ENOMEM. */
int hr_auth_grant_from_json(const void *obj, const char *user_key, int64_t exp,
                            hr_auth_grant_t **out, const char **why);
/* Parses text[0..len) as a JSON object and builds the grant from it (the webhook). */
int hr_auth_grant_parse(const char *text, size_t len, const char *user_key, hr_auth_grant_t **out,
                        const char **why);
void hr_auth_grant_free(hr_auth_grant_t *g);

/* True when every channel name that pattern req matches is also matched by pattern
 * granted: segment by segment, a granted "*" covers a literal or "*", a granted final
 * ">" covers whatever remains (one segment or more), a literal covers itself only. */
bool hr_auth_pattern_covers(const char *granted, size_t gn, const char *req, size_t rn);
/* True when some channel name matches both patterns. */
bool hr_auth_patterns_overlap(const char *a, size_t an, const char *b, size_t bn);

/* Whether g (NULL: anonymous) may subscribe to chan[0..n), a name or a pattern, given
 * the namespaces: private namespaces need a channels claim that covers it; a channels
 * claim limits every subscription to its patterns. A pattern without a claim is refused
 * when it overlaps any private namespace. Also governs history and presence reads. */
bool hr_auth_may_subscribe(const hr_auth_grant_t *g, const hr_namespaces_t *nss, const char *chan,
                           size_t n);
/* Whether g (NULL: anonymous) may publish to the channel name[0..n) of namespace ns:
 * never to access=server or publish=off; private needs a covering channels claim; a
 * channels claim limits publishing to its patterns. */
bool hr_auth_may_publish(const hr_auth_grant_t *g, const hr_namespace_t *ns, const char *name,
                         size_t n);

#endif
