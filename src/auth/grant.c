/* Grants and channel permissions (see grant.h). A grant is one allocation: the struct,
 * the two pointer arrays and every string after it, so freeing it is one call and an
 * authenticated connection costs one block. Pattern checks walk segments once, without
 * recursion: "*" stands for exactly one segment and ">" only ends a pattern, so no
 * segment has two ways to match (the same argument as broker/channel.c). */
#include <jansson.h>
#include <string.h>

#include "auth/grant.h"
#include "base/alloc.h"
#include "broker/channel.h"
#include "herald/error.h"
#include "ws/utf8.h"

/* ---------------------------------------------------------------- building */

static bool user_valid(const char *s, size_t n)
{
    if (n == 0 || n > HR_AUTH_USER_MAX || !hr_utf8_valid((const uint8_t *)s, n))
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

/* Checks one list of patterns; adds its string bytes to *bytes. */
static bool list_valid(const json_t *a, size_t *count, size_t *bytes)
{
    *count = 0;
    if (!a)
        return true;
    if (!json_is_array(a) || json_array_size(a) > HR_AUTH_PATTERNS_MAX)
        return false;
    size_t i;
    const json_t *v;
    json_array_foreach(a, i, v)
    {
        if (!json_is_string(v) ||
            !hr_channel_pattern_valid(json_string_value(v), json_string_length(v)))
            return false;
        *bytes += json_string_length(v) + 1;
    }
    *count = json_array_size(a);
    return true;
}

static char *copy_list(const json_t *a, char **dst, char *p)
{
    size_t i;
    const json_t *v;
    json_array_foreach(a, i, v)
    {
        size_t n = json_string_length(v);
        memcpy(p, json_string_value(v), n);
        p[n] = 0;
        dst[i] = p;
        p += n + 1;
    }
    return p;
}

int hr_auth_grant_from_json(const void *obj, const char *user_key, int64_t exp,
                            hr_auth_grant_t **out, const char **why)
{
    const json_t *o = obj;
    *out = NULL;
    if (!json_is_object(o)) {
        *why = "claims must be a JSON object";
        return HR_EINVAL;
    }
    const json_t *u = json_object_get(o, user_key);
    if (!json_is_string(u) || !user_valid(json_string_value(u), json_string_length(u))) {
        *why = strcmp(user_key, "sub") == 0 ? "sub must be 1 to 255 bytes of text"
                                            : "user must be 1 to 255 bytes of text";
        return HR_EINVAL;
    }
    const json_t *ch = json_object_get(o, "channels");
    const json_t *sa = NULL, *pa = NULL;
    size_t ns = 0, np = 0, bytes = json_string_length(u) + 1;
    if (ch) {
        sa = json_object_get(ch, "subscribe");
        pa = json_object_get(ch, "publish");
        if (!json_is_object(ch) || !list_valid(sa, &ns, &bytes) || !list_valid(pa, &np, &bytes)) {
            *why = "channels must be {\"subscribe\": [patterns], \"publish\": [patterns]} with at "
                   "most 64 valid patterns each";
            return HR_EINVAL;
        }
    }
    hr_auth_grant_t *g = hr_malloc(sizeof(*g) + (ns + np) * sizeof(char *) + bytes);
    if (!g) {
        *why = "out of memory";
        return HR_ENOMEM;
    }
    g->exp = exp;
    g->has_channels = ch != NULL;
    g->nsubscribe = ns;
    g->npublish = np;
    g->subscribe = (char **)(g + 1);
    g->publish = g->subscribe + ns;
    char *p = (char *)(g->publish + np);
    size_t ul = json_string_length(u);
    memcpy(p, json_string_value(u), ul);
    p[ul] = 0;
    g->user = p;
    p += ul + 1;
    if (sa)
        p = copy_list(sa, g->subscribe, p);
    if (pa)
        copy_list(pa, g->publish, p);
    *out = g;
    return 0;
}

int hr_auth_grant_parse(const char *text, size_t len, const char *user_key, hr_auth_grant_t **out,
                        const char **why)
{
    json_error_t e;
    json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &e);
    *out = NULL;
    if (!o) {
        *why = "not JSON";
        return HR_EINVAL;
    }
    int rc = hr_auth_grant_from_json(o, user_key, 0, out, why);
    json_decref(o);
    return rc;
}

void hr_auth_grant_free(hr_auth_grant_t *g)
{
    hr_free(g);
}

/* ---------------------------------------------------------------- patterns */

/* End (index of the '.' or n) of the segment that starts at i. */
static size_t seg_end(const char *s, size_t n, size_t i)
{
    const char *dot = i < n ? memchr(s + i, '.', n - i) : NULL;
    return dot ? (size_t)(dot - s) : n;
}

static bool is(const char *s, size_t i, size_t e, char w)
{
    return e - i == 1 && s[i] == w;
}

bool hr_auth_pattern_covers(const char *g, size_t gn, const char *r, size_t rn)
{
    if (!g || !r || !gn || !rn)
        return false;
    size_t gi = 0, ri = 0;
    for (;;) {
        size_t ge = seg_end(g, gn, gi), re = seg_end(r, rn, ri);
        if (ge == gn && is(g, gi, ge, '>'))
            return true; /* r has at least this segment left */
        if (re == rn && is(r, ri, re, '>'))
            return false; /* only a granted '>' covers one-or-more segments */
        if (is(g, gi, ge, '*')) {
            /* covers a literal or '*' */
        } else if (is(r, ri, re, '*') || ge - gi != re - ri || memcmp(g + gi, r + ri, ge - gi)) {
            return false;
        }
        bool gend = ge == gn, rend = re == rn;
        if (gend || rend)
            return gend && rend;
        gi = ge + 1;
        ri = re + 1;
    }
}

bool hr_auth_patterns_overlap(const char *a, size_t an, const char *b, size_t bn)
{
    if (!a || !b || !an || !bn)
        return false;
    size_t ai = 0, bi = 0;
    for (;;) {
        size_t ae = seg_end(a, an, ai), be = seg_end(b, bn, bi);
        if ((ae == an && is(a, ai, ae, '>')) || (be == bn && is(b, bi, be, '>')))
            return true; /* both have a segment here; '>' takes it and the rest */
        if (!is(a, ai, ae, '*') && !is(b, bi, be, '*') &&
            (ae - ai != be - bi || memcmp(a + ai, b + bi, ae - ai)))
            return false;
        bool aend = ae == an, bend = be == bn;
        if (aend || bend)
            return aend && bend;
        ai = ae + 1;
        bi = be + 1;
    }
}

static bool covered(char *const *list, size_t n, const char *s, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (hr_auth_pattern_covers(list[i], strlen(list[i]), s, len))
            return true;
    return false;
}

/* ---------------------------------------------------------------- permissions */

bool hr_auth_may_subscribe(const hr_auth_grant_t *g, const hr_namespaces_t *nss, const char *chan,
                           size_t n)
{
    if (g && g->has_channels)
        return covered(g->subscribe, g->nsubscribe, chan, n);
    if (!hr_channel_is_pattern(chan, n))
        return hr_namespaces_lookup(nss, chan, n)->access != HR_ACCESS_PRIVATE;
    /* A pattern may reach channels of several namespaces: none of them may be private. */
    for (size_t i = 0; i < nss->count; i++) {
        const hr_namespace_t *ns = &nss->items[i];
        if (ns->access == HR_ACCESS_PRIVATE &&
            hr_auth_patterns_overlap(ns->pattern, strlen(ns->pattern), chan, n))
            return false;
    }
    return true;
}

bool hr_auth_may_publish(const hr_auth_grant_t *g, const hr_namespace_t *ns, const char *name,
                         size_t n)
{
    if (ns->access == HR_ACCESS_SERVER || !ns->client_publish)
        return false;
    if (g && g->has_channels)
        return covered(g->publish, g->npublish, name, n);
    return ns->access != HR_ACCESS_PRIVATE;
}
