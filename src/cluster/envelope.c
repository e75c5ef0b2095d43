/* The Redis envelope and channel/glob names (see envelope.h). */
#include <string.h>

#include "broker/history.h"
#include "cluster/envelope.h"
#include "herald/error.h"

static bool node_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

/* The token at *p up to the next sep (or end): its slice; *p moves past sep. */
static bool token(const char **p, const char *end, char sep, hr_slice_t *out)
{
    const char *s = *p, *e = memchr(s, sep, (size_t)(end - s));
    if (!e || e == s)
        return false;
    *out = hr_slice(s, (size_t)(e - s));
    *p = e + 1;
    return true;
}

static bool parse_u64(hr_slice_t t, uint64_t *v)
{
    if (t.len == 0 || t.len > 19 || (t.len > 1 && *(const char *)t.ptr == '0'))
        return false; /* canonical: no leading zeros; 19 digits always fit in 63 bits */
    uint64_t x = 0;
    for (size_t i = 0; i < t.len; i++) {
        char c = ((const char *)t.ptr)[i];
        if (c < '0' || c > '9')
            return false;
        x = x * 10 + (uint64_t)(c - '0');
    }
    *v = x;
    return true;
}

static bool node_ok(hr_slice_t node)
{
    if (node.len > HR_CLUSTER_NODE_MAX)
        return false;
    for (size_t i = 0; i < node.len; i++)
        if (!node_char(((const char *)node.ptr)[i]))
            return false;
    return true;
}

static int parse_presence(const char *s, const char *end, hr_cluster_env_t *out)
{
    hr_slice_t kind, client;
    if (!token(&s, end, ' ', &out->node) || !node_ok(out->node) || !token(&s, end, ' ', &kind) ||
        !token(&s, end, '\n', &client) || !parse_u64(client, &out->client))
        return HR_EINVAL;
    if (hr_slice_eq_str(kind, "join"))
        out->join = true;
    else if (!hr_slice_eq_str(kind, "leave"))
        return HR_EINVAL;
    out->data = hr_slice(s, (size_t)(end - s));
    if (out->data.len > HR_CLUSTER_USER_MAX)
        return HR_EINVAL;
    out->presence = true;
    return 0;
}

int hr_cluster_env_parse(const char *p, size_t n, hr_cluster_env_t *out)
{
    memset(out, 0, sizeof(*out));
    if (n >= 3 && memcmp(p, "P1 ", 3) == 0)
        return parse_presence(p + 3, p + n, out);
    if (n < 3 || memcmp(p, "H1 ", 3) != 0) {
        out->data = hr_slice(p, n);
        return 0;
    }
    const char *s = p + 3, *end = p + n;
    hr_slice_t off, t;
    if (!token(&s, end, ' ', &out->node) || !node_ok(out->node) || !token(&s, end, ' ', &off) ||
        !token(&s, end, ' ', &out->epoch) || !token(&s, end, '\n', &t))
        return HR_EINVAL;
    char epoch[HR_HISTORY_EPOCH_MAX + 1];
    if (out->epoch.len > HR_HISTORY_EPOCH_MAX || memchr(out->epoch.ptr, 0, out->epoch.len))
        return HR_EINVAL; /* a NUL would end the epoch early once it is a C string */
    memcpy(epoch, out->epoch.ptr, out->epoch.len);
    epoch[out->epoch.len] = 0;
    if (!hr_history_epoch_valid(epoch) || !parse_u64(off, &out->offset) || out->offset == 0 ||
        !parse_u64(t, &out->time_ms))
        return HR_EINVAL;
    out->herald = true;
    out->data = hr_slice(s, (size_t)(end - s));
    return 0;
}

int hr_cluster_env_encode(hr_buf_t *out, hr_slice_t node, uint64_t offset, hr_slice_t epoch,
                          uint64_t time_ms, hr_slice_t data)
{
    if (hr_buf_appendf(out, "H1 %.*s %llu %.*s %llu\n", (int)node.len, (const char *)node.ptr,
                       (unsigned long long)offset, (int)epoch.len, (const char *)epoch.ptr,
                       (unsigned long long)time_ms) != 0)
        return HR_ENOMEM;
    return hr_buf_append(out, data.ptr, data.len) == 0 ? 0 : HR_ENOMEM;
}

static int append_escaped(hr_buf_t *out, const char *s, size_t n, bool escape)
{
    for (size_t i = 0; i < n; i++) {
        if (escape && s[i] && strchr("*?[]\\", s[i]) && hr_buf_append(out, "\\", 1) != 0)
            return HR_ENOMEM;
        if (hr_buf_append(out, &s[i], 1) != 0)
            return HR_ENOMEM;
    }
    return 0;
}

int hr_cluster_redis_channel(hr_buf_t *out, hr_slice_t prefix, hr_slice_t name, bool pattern)
{
    if (append_escaped(out, prefix.ptr, prefix.len, pattern) != 0 ||
        hr_buf_append(out, ":ch:", 4) != 0)
        return HR_ENOMEM;
    if (!pattern)
        return hr_buf_append(out, name.ptr, name.len) == 0 ? 0 : HR_ENOMEM;
    const char *s = name.ptr, *end = s + name.len;
    while (s < end) {
        const char *dot = memchr(s, '.', (size_t)(end - s));
        size_t seg = dot ? (size_t)(dot - s) : (size_t)(end - s);
        int rc = (seg == 1 && (*s == '*' || *s == '>'))
                     ? (hr_buf_append(out, "*", 1) ? HR_ENOMEM : 0)
                     : append_escaped(out, s, seg, true);
        if (rc)
            return rc;
        if (dot && hr_buf_append(out, ".", 1) != 0)
            return HR_ENOMEM;
        s = dot ? dot + 1 : end;
    }
    return 0;
}
