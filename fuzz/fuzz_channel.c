/* Fuzz target for channel names, patterns and namespace specs (src/broker/channel.c,
 * src/broker/namespace.c). The input is split at its first '\n' into a pattern and a
 * name (without one, both are the whole input). Checks that validation and matching
 * agree with a slow segment-list reference matcher, that every valid name is a valid
 * pattern without wildcards and matches itself, and that hr_namespace_parse on the
 * input as a string never crashes and, when it succeeds, yields values within range and
 * a one-line-clean state. Aborts on any disagreement. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker/channel.h"
#include "broker/namespace.h"

#define MAX_SEGS 256

typedef struct segs {
    const char *p[MAX_SEGS];
    size_t n[MAX_SEGS];
    size_t count;
} segs_t;

/* Splits s[0..n) at every '.'; n <= 255 guarantees at most 128 segments of a valid one. */
static void split(const char *s, size_t n, segs_t *out)
{
    size_t start = 0;
    out->count = 0;
    for (size_t i = 0; i <= n && out->count < MAX_SEGS; i++) {
        if (i == n || s[i] == '.') {
            out->p[out->count] = s + start;
            out->n[out->count] = i - start;
            out->count++;
            start = i + 1;
        }
    }
}

static bool seg_is(const segs_t *s, size_t i, char c)
{
    return s->n[i] == 1 && s->p[i][0] == c;
}

/* The matching rule written the obvious way: recursion over segment lists. */
static bool ref_match(const segs_t *pat, size_t pi, const segs_t *name, size_t ni)
{
    if (pi == pat->count)
        return ni == name->count;
    if (pi + 1 == pat->count && seg_is(pat, pi, '>'))
        return ni < name->count;
    if (ni == name->count)
        return false;
    if (!seg_is(pat, pi, '*') &&
        (pat->n[pi] != name->n[ni] || memcmp(pat->p[pi], name->p[ni], pat->n[pi]) != 0))
        return false;
    return ref_match(pat, pi + 1, name, ni + 1);
}

static void check_pair(const char *pat, size_t pn, const char *name, size_t nn)
{
    bool pv = hr_channel_pattern_valid(pat, pn);
    bool nv = hr_channel_name_valid(name, nn);
    bool m = hr_channel_match(pat, pn, name, nn);
    if (hr_channel_is_pattern(pat, pn) && !pv)
        abort();
    if (nv) {
        if (!hr_channel_pattern_valid(name, nn) || hr_channel_is_pattern(name, nn))
            abort();
        if (!hr_channel_match(name, nn, name, nn))
            abort();
    }
    if (pv && nv) {
        static segs_t ps, ns;
        split(pat, pn, &ps);
        split(name, nn, &ns);
        if (m != ref_match(&ps, 0, &ns, 0))
            abort();
        if (!hr_channel_is_pattern(pat, pn) && m != (pn == nn && memcmp(pat, name, pn) == 0))
            abort();
    }
}

static void check_namespace(const uint8_t *data, size_t size)
{
    char *spec = malloc(size + 1);
    if (!spec)
        return;
    memcpy(spec, data, size);
    spec[size] = 0;
    hr_namespace_t ns;
    char err[160];
    memset(err, 0x7f, sizeof(err));
    int rc = hr_namespace_parse(spec, &ns, err, sizeof(err));
    if (memchr(err, 0, sizeof(err)) == NULL)
        abort();
    if (rc == 0) {
        size_t n = strlen(ns.pattern);
        if (err[0] || !hr_channel_pattern_valid(ns.pattern, n) ||
            strncmp(ns.pattern, spec, n) != 0 || (spec[n] != 0 && spec[n] != ':'))
            abort();
        if (ns.history_size > HR_NAMESPACE_HISTORY_MAX ||
            ns.history_ttl_ms > HR_NAMESPACE_TTL_MAX_S * 1000ull ||
            (unsigned)ns.slow > HR_SLOW_DROP_NEWEST)
            abort();
        static hr_namespaces_t list;
        hr_namespaces_init(&list);
        if (hr_namespaces_add(&list, &ns) != 0 || hr_namespaces_lookup(&list, "x", 1) == NULL)
            abort();
    } else if (rc != -1 || !err[0] || strchr(err, '\n')) {
        abort();
    }
    free(spec);
}

/* libFuzzer's entry point; declared here to satisfy -Wmissing-prototypes. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    const char *nl = memchr(s, '\n', size);
    if (nl) {
        size_t pn = (size_t)(nl - s);
        check_pair(s, pn, nl + 1, size - pn - 1);
        check_pair(nl + 1, size - pn - 1, s, pn);
    } else {
        check_pair(s, size, s, size);
    }
    check_namespace(data, size);
    return 0;
}
