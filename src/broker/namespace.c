/* Namespace options (see namespace.h). The parser reads command-line specs such as
 * "orders.*:history=50,ttl=600,publish=off,presence=on,slow=drop-oldest,access=private" and answers
 * a mistake with one line naming the key and the value. Numbers are parsed by hand, not with
 * strtod/strtoul: those accept signs, spaces, hex and locale-dependent decimal points, none of
 * which belongs in a spec. Lookup is a linear scan of at most 64 patterns, each match O(length);
 * the broker resolves a channel's namespace once, when the channel is created, not per message. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "broker/channel.h"
#include "broker/namespace.h"
#include "herald/error.h"

static const hr_namespace_t default_ns = {
    .pattern = ">",
    .history_size = 100,
    .history_ttl_ms = 300000,
    .client_publish = true,
    .presence = false,
    .slow = HR_SLOW_DISCONNECT,
    .access = HR_ACCESS_PUBLIC,
};

static const char *const slow_names[] = {
    [HR_SLOW_DISCONNECT] = "disconnect",
    [HR_SLOW_DROP_OLDEST] = "drop-oldest",
    [HR_SLOW_DROP_NEWEST] = "drop-newest",
};

static const char *const access_names[] = {
    [HR_ACCESS_PUBLIC] = "public",
    [HR_ACCESS_PRIVATE] = "private",
    [HR_ACCESS_SERVER] = "server",
};

/* Longest key or value quoted back in a message. */
#define QUOTE_MAX 64

typedef struct quote {
    char s[QUOTE_MAX + 4];
} quote_t;

/* s[0..n) made printable for a one-line message: control and non-ASCII bytes become
 * '?', and more than QUOTE_MAX bytes end in "...". */
static const char *quote(quote_t *q, const char *s, size_t n)
{
    size_t k = 0;
    for (; k < n && k < QUOTE_MAX; k++)
        q->s[k] = s[k] >= 0x20 && s[k] < 0x7f ? s[k] : '?';
    if (k < n)
        for (int i = 0; i < 3; i++)
            q->s[k++] = '.';
    q->s[k] = 0;
    return q->s;
}

void hr_namespace_default(hr_namespace_t *out)
{
    *out = default_ns;
}

const char *hr_slow_policy_name(hr_slow_policy_t slow)
{
    return (unsigned)slow < sizeof(slow_names) / sizeof(slow_names[0]) ? slow_names[slow] : "?";
}

const char *hr_ns_access_name(hr_ns_access_t access)
{
    return (unsigned)access < sizeof(access_names) / sizeof(access_names[0]) ? access_names[access]
                                                                             : "?";
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static bool eq(const char *s, size_t n, const char *lit)
{
    return strlen(lit) == n && memcmp(s, lit, n) == 0;
}

/* Decimal digits only, value <= max. */
static bool parse_uint(const char *s, size_t n, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
        if (v > max)
            return false;
    }
    *out = v;
    return true;
}

/* Seconds with an optional fraction ("600", "0.25", ".5", "2."), rounded to the nearest
 * millisecond; false when malformed, above max_s, or non-zero but below 1 ms. */
static bool parse_seconds(const char *s, size_t n, uint64_t max_s, uint64_t *ms)
{
    const char *dot = memchr(s, '.', n);
    size_t ilen = dot ? (size_t)(dot - s) : n;
    size_t flen = dot ? n - ilen - 1 : 0;
    uint64_t sec = 0, frac = 0;
    bool nonzero = false;
    if (ilen + flen == 0)
        return false;
    if (ilen && !parse_uint(s, ilen, max_s, &sec))
        return false;
    /* milliseconds from the first three fraction digits, then round on the fourth */
    for (size_t i = 0; i < flen; i++) {
        char c = dot[1 + i];
        if (c < '0' || c > '9')
            return false;
        if (c != '0')
            nonzero = true;
        if (i < 3)
            frac = frac * 10 + (uint64_t)(c - '0');
        else if (i == 3 && c >= '5')
            frac++;
    }
    for (size_t i = flen; i < 3; i++)
        frac *= 10;
    if (sec == max_s && nonzero)
        return false;
    *ms = sec * 1000 + frac;
    return *ms > 0 || (sec == 0 && !nonzero);
}

static bool parse_onoff(const char *s, size_t n, bool *out)
{
    if (eq(s, n, "on"))
        *out = true;
    else if (eq(s, n, "off"))
        *out = false;
    else
        return false;
    return true;
}

/* One key=value; 0 or -1 with err filled. seen has one bit per key, against repeats. */
static int parse_option(const char *pat, const char *item, size_t len, hr_namespace_t *out,
                        unsigned *seen, char *err, size_t errlen)
{
    static const char *const keys[] = {"history", "ttl", "publish", "presence", "slow", "access"};
    const char *eqs = memchr(item, '=', len);
    size_t klen = eqs ? (size_t)(eqs - item) : len;
    const char *val = eqs ? eqs + 1 : item + len;
    size_t vlen = eqs ? len - klen - 1 : 0;
    quote_t q;
    unsigned k = 0;
    while (k < sizeof(keys) / sizeof(keys[0]) && !eq(item, klen, keys[k]))
        k++;

    if (len == 0)
        return fail(err, errlen, "namespace \"%s\": empty option", pat);
    if (k == sizeof(keys) / sizeof(keys[0]))
        return fail(err, errlen,
                    "namespace \"%s\": unknown option \"%s\" (history, ttl, publish, "
                    "presence, slow, access)",
                    pat, quote(&q, item, klen));
    if (!eqs)
        return fail(err, errlen, "namespace \"%s\": option \"%s\" needs a value (%s=...)", pat,
                    keys[k], keys[k]);
    if (*seen & (1u << k))
        return fail(err, errlen, "namespace \"%s\": option \"%s\" given twice", pat, keys[k]);
    *seen |= 1u << k;

    uint64_t v;
    bool ok;
    const char *expect;
    switch (k) {
    case 0:
        ok = parse_uint(val, vlen, HR_NAMESPACE_HISTORY_MAX, &v);
        if (ok)
            out->history_size = (uint32_t)v;
        expect = "an integer from 0 to 100000";
        break;
    case 1:
        ok = parse_seconds(val, vlen, HR_NAMESPACE_TTL_MAX_S, &v);
        if (ok)
            out->history_ttl_ms = v;
        expect = "seconds from 0 (no expiry) or 0.001 to 604800";
        break;
    case 2:
        ok = parse_onoff(val, vlen, &out->client_publish);
        expect = "on or off";
        break;
    case 3:
        ok = parse_onoff(val, vlen, &out->presence);
        expect = "on or off";
        break;
    case 5:
        ok = false;
        for (unsigned a = 0; a < sizeof(access_names) / sizeof(access_names[0]); a++) {
            if (eq(val, vlen, access_names[a])) {
                out->access = (hr_ns_access_t)a;
                ok = true;
            }
        }
        expect = "public, private or server";
        break;
    default:
        ok = false;
        for (unsigned s = 0; s < sizeof(slow_names) / sizeof(slow_names[0]); s++) {
            if (eq(val, vlen, slow_names[s])) {
                out->slow = (hr_slow_policy_t)s;
                ok = true;
            }
        }
        expect = "disconnect, drop-oldest or drop-newest";
        break;
    }
    if (!ok)
        return fail(err, errlen, "namespace \"%s\": %s=%s: expected %s", pat, keys[k],
                    quote(&q, val, vlen), expect);
    return 0;
}

int hr_namespace_parse(const char *spec, hr_namespace_t *out, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = 0;
    if (!spec)
        return fail(err, errlen, "namespace: empty spec");
    const char *colon = strchr(spec, ':');
    size_t plen = colon ? (size_t)(colon - spec) : strlen(spec);
    if (!hr_channel_pattern_valid(spec, plen)) {
        quote_t q;
        return fail(err, errlen,
                    "namespace \"%s\": not a valid channel pattern (1..255 bytes; segments of "
                    "letters, digits and _ - @ / = + ~ ! separated by '.'; '*' for one "
                    "segment, a final '>' for the rest)",
                    quote(&q, spec, plen));
    }

    hr_namespace_t ns = default_ns;
    memcpy(ns.pattern, spec, plen);
    ns.pattern[plen] = 0;
    unsigned seen = 0;
    if (colon) {
        const char *p = colon + 1;
        for (;;) {
            const char *comma = strchr(p, ',');
            size_t len = comma ? (size_t)(comma - p) : strlen(p);
            if (parse_option(ns.pattern, p, len, &ns, &seen, err, errlen))
                return -1;
            if (!comma)
                break;
            p = comma + 1;
        }
    }
    *out = ns;
    return 0;
}

void hr_namespaces_init(hr_namespaces_t *list)
{
    list->count = 0;
}

int hr_namespaces_add(hr_namespaces_t *list, const hr_namespace_t *ns)
{
    const char *nul = memchr(ns->pattern, 0, sizeof(ns->pattern));
    if (!nul || !hr_channel_pattern_valid(ns->pattern, (size_t)(nul - ns->pattern)))
        return HR_EINVAL;
    for (size_t i = 0; i < list->count; i++)
        if (strcmp(list->items[i].pattern, ns->pattern) == 0)
            return HR_EEXIST;
    if (list->count == HR_NAMESPACES_MAX)
        return HR_ENOBUFS;
    list->items[list->count++] = *ns;
    return 0;
}

const hr_namespace_t *hr_namespaces_lookup(const hr_namespaces_t *list, const char *channel,
                                           size_t n)
{
    for (size_t i = 0; i < list->count; i++) {
        const hr_namespace_t *ns = &list->items[i];
        if (hr_channel_match(ns->pattern, strlen(ns->pattern), channel, n))
            return ns;
    }
    return &default_ns;
}
