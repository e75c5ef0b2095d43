/* Position strings and query parameters of the fallback transports (position.h).
 *
 * An entry is split from the right: the last ':' ends the offset, the one before it ends
 * the channel, so channel names with ':' need no escaping; ',' never occurs in a channel
 * name (broker/channel.c), so it separates entries. What this does not do: check that
 * a channel name is valid (the caller does, as for any subscribe). */
#include "proto/position.h"

#include <string.h>

#include "herald/error.h"

/* 2^53 - 1: an offset exact in every JSON peer (json_proto.h). */
#define OFFSET_MAX UINT64_C(9007199254740991)

static int parse_entry(const char *s, size_t len, hr_position_entry_t *e)
{
    const char *end = s + len, *p = end;
    while (p > s && p[-1] != ':')
        p--;
    size_t elen = (size_t)(end - p);
    if (p == s || elen == 0 || elen > HR_POSITION_EPOCH_MAX)
        return HR_EINVAL;
    for (const char *q = p; q < end; q++)
        if (!((*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9')))
            return HR_EINVAL;
    e->epoch = hr_slice(p, elen);
    const char *oend = p - 1, *o = oend;
    while (o > s && o[-1] >= '0' && o[-1] <= '9')
        o--;
    /* The offset's digits must be preceded by the ':' that ends a non-empty channel. */
    if (o == oend || o == s || o[-1] != ':' || o - 1 == s)
        return HR_EINVAL;
    uint64_t v = 0;
    for (const char *q = o; q < oend; q++) {
        v = v * 10 + (uint64_t)(*q - '0');
        if (v > OFFSET_MAX)
            return HR_EINVAL;
    }
    e->offset = v;
    e->channel = hr_slice(s, (size_t)(o - 1 - s));
    return 0;
}

int hr_position_parse(const char *s, size_t len, hr_position_entry_t *out, size_t max)
{
    size_t n = 0, i = 0;
    if (len == 0)
        return 0;
    for (;;) {
        const char *comma = memchr(s + i, ',', len - i);
        size_t elen = comma ? (size_t)(comma - (s + i)) : len - i;
        if (n == max)
            return HR_ENOBUFS;
        if (elen == 0 || parse_entry(s + i, elen, &out[n]) != 0)
            return HR_EINVAL;
        n++;
        if (!comma)
            return (int)n;
        i += elen + 1;
    }
}

int hr_position_append(hr_buf_t *b, size_t from, hr_slice_t channel, uint64_t offset,
                       hr_slice_t epoch)
{
    size_t mark = b->len;
    int rc = b->len > from ? hr_buf_append(b, ",", 1) : 0;
    if (rc == 0)
        rc = hr_buf_append(b, channel.ptr, channel.len);
    if (rc == 0)
        rc = hr_buf_appendf(b, ":%llu:", (unsigned long long)offset);
    if (rc == 0)
        rc = hr_buf_append(b, epoch.ptr, epoch.len);
    if (rc)
        b->len = mark;
    return rc;
}

bool hr_query_next(const char *q, size_t len, size_t *pos, hr_slice_t *name, hr_slice_t *value)
{
    while (*pos < len) {
        const char *p = q + *pos;
        const char *amp = memchr(p, '&', len - *pos);
        size_t plen = amp ? (size_t)(amp - p) : len - *pos;
        *pos += plen + (amp ? 1 : 0);
        if (!plen)
            continue;
        const char *eq = memchr(p, '=', plen);
        *name = hr_slice(p, eq ? (size_t)(eq - p) : plen);
        *value = eq ? hr_slice(eq + 1, plen - (size_t)(eq - p) - 1) : hr_slice(p + plen, 0);
        return true;
    }
    return false;
}

static int hex(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

ssize_t hr_query_decode(const char *s, size_t len, char *dst, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == 0) {
            return HR_EINVAL;
        } else if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            int h = i + 2 < len ? hex(s[i + 1]) : -1, l = h >= 0 ? hex(s[i + 2]) : -1;
            if (h < 0 || l < 0 || (h == 0 && l == 0))
                return HR_EINVAL;
            c = (char)(h << 4 | l);
            i += 2;
        }
        if (n == cap)
            return HR_ENOBUFS;
        dst[n++] = c;
    }
    return (ssize_t)n;
}
