/* Client address behind trusted proxies (forwarded.h has the rules). The list is read
 * left to right in one pass that keeps only what a right-to-left walk would end on: the
 * first element of the current run of usable elements and the last untrusted one in it
 * (a bad element starts a new run). The result equals nginx realip's recursive walk
 * without an element array or a hop limit. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "base/alloc.h"
#include "herald/error.h"
#include "http/forwarded.h"

/* Longer node names are not addresses: "[" + 45 characters of IPv6 + "]:" + port. */
#define NODE_MAX 64

static const uint8_t v4_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alnum(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_tchar(char c)
{
    return is_alnum(c) || (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static void set_v4(hr_ip_t *ip, const uint8_t a[4])
{
    ip->family = 4;
    memcpy(ip->b, v4_prefix, 12);
    memcpy(ip->b + 12, a, 4);
}

/* ---------------------------------------------------------------- addresses */

int hr_ip_parse(const char *s, size_t len, hr_ip_t *ip)
{
    char tmp[HR_IP_STRLEN];
    if (len == 0 || len >= sizeof(tmp) || memchr(s, 0, len))
        return -1;
    memcpy(tmp, s, len);
    tmp[len] = 0;
    uint8_t a[16];
    if (!memchr(s, ':', len)) {
        /* inet_pton takes exactly a dotted quad of decimal numbers, no leading zeros. */
        if (inet_pton(AF_INET, tmp, a) != 1)
            return -1;
        set_v4(ip, a);
        return 0;
    }
    if (inet_pton(AF_INET6, tmp, a) != 1)
        return -1;
    if (memcmp(a, v4_prefix, 12) == 0) {
        set_v4(ip, a + 12);
        return 0;
    }
    ip->family = 6;
    memcpy(ip->b, a, 16);
    return 0;
}

int hr_ip_from_sockaddr(const struct sockaddr *sa, hr_ip_t *ip)
{
    memset(ip, 0, sizeof(*ip));
    if (sa && sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        set_v4(ip, (const uint8_t *)&in->sin_addr);
        return 0;
    }
    if (sa && sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        const uint8_t *a = in6->sin6_addr.s6_addr;
        if (memcmp(a, v4_prefix, 12) == 0) {
            set_v4(ip, a + 12);
        } else {
            ip->family = 6;
            memcpy(ip->b, a, 16);
        }
        return 0;
    }
    return -1;
}

size_t hr_ip_format(const hr_ip_t *ip, char out[HR_IP_STRLEN])
{
    const char *r = NULL;
    if (ip->family == 4)
        r = inet_ntop(AF_INET, ip->b + 12, out, HR_IP_STRLEN);
    else if (ip->family == 6)
        r = inet_ntop(AF_INET6, ip->b, out, HR_IP_STRLEN);
    if (!r)
        memcpy(out, "unknown", 8);
    return strlen(out);
}

/* ---------------------------------------------------------------- trusted networks */

static bool net_match(const hr_ip_net_t *n, const hr_ip_t *ip)
{
    if (n->addr.family != ip->family || ip->family == 0)
        return false;
    size_t whole = n->bits / 8;
    if (memcmp(n->addr.b, ip->b, whole) != 0)
        return false;
    unsigned rest = n->bits % 8;
    if (!rest)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (n->addr.b[whole] & mask) == (ip->b[whole] & mask);
}

bool hr_forwarded_trusted(const hr_forwarded_trust_t *t, const hr_ip_t *ip)
{
    for (size_t i = 0; i < t->count; i++)
        if (net_match(&t->nets[i], ip))
            return true;
    return false;
}

/* Parses "ADDR" or "ADDR/BITS" from s[0..len) into *n; a message in why on failure. */
static int parse_net(const char *s, size_t len, hr_ip_net_t *n, const char **why)
{
    const char *slash = memchr(s, '/', len);
    size_t alen = slash ? (size_t)(slash - s) : len;
    *why = "not an IP address or CIDR";
    if (hr_ip_parse(s, alen, &n->addr) != 0)
        return -1;
    bool v4_text = !memchr(s, ':', alen);
    unsigned bits = 128;
    if (slash) {
        const char *b = slash + 1;
        size_t blen = len - alen - 1;
        *why = "bad prefix length";
        if (blen == 0 || blen > 3)
            return -1;
        bits = 0;
        for (size_t i = 0; i < blen; i++) {
            if (!is_digit(b[i]))
                return -1;
            bits = bits * 10 + (unsigned)(b[i] - '0');
        }
        if (blen > 1 && b[0] == '0')
            return -1;
        if (v4_text) {
            if (bits > 32)
                return -1;
            bits += 96;
        } else if (bits > 128) {
            return -1;
        } else if (n->addr.family == 4 && bits < 96) {
            *why = "an IPv4-mapped network needs a prefix of at least /96";
            return -1;
        }
    }
    n->bits = (uint8_t)bits;
    for (unsigned i = bits; i < 128; i++)
        n->addr.b[i / 8] &= (uint8_t) ~(0x80u >> (i % 8));
    return 0;
}

int hr_forwarded_trust_parse(hr_forwarded_trust_t *t, const char *list, char *err, size_t errlen)
{
    t->nets = NULL;
    t->count = 0;
    if (!list || !*list || strcmp(list, "none") == 0)
        return 0;
    size_t cap = 1;
    for (const char *p = list; *p; p++)
        cap += *p == ',';
    hr_ip_net_t *nets = hr_calloc(cap, sizeof(*nets));
    if (!nets)
        return HR_ENOMEM;
    size_t count = 0;
    const char *p = list;
    for (;;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        while (len && is_ows(*p))
            p++, len--;
        while (len && is_ows(p[len - 1]))
            len--;
        const char *why;
        if (len && parse_net(p, len, &nets[count], &why) != 0) {
            if (err && errlen)
                snprintf(err, errlen, "'%.*s': %s (expected e.g. 10.0.0.0/8, 127.0.0.1, ::1)",
                         len > 80 ? 80 : (int)len, p, why);
            hr_free(nets);
            return HR_EINVAL;
        }
        count += len != 0;
        if (!e)
            break;
        p = e + 1;
    }
    t->nets = nets;
    t->count = count;
    return 0;
}

void hr_forwarded_trust_deinit(hr_forwarded_trust_t *t)
{
    hr_free(t->nets);
    t->nets = NULL;
    t->count = 0;
}

/* ---------------------------------------------------------------- the walk */

typedef struct walk {
    const hr_forwarded_trust_t *t;
    bool in_run; /* first holds the leftmost element of the current run of good ones */
    bool have_untrusted;
    hr_ip_t first, untrusted;
} walk_t;

static void walk_bad(walk_t *w)
{
    w->in_run = false;
    w->have_untrusted = false;
}

static void walk_good(walk_t *w, const hr_ip_t *ip)
{
    if (!w->in_run) {
        w->in_run = true;
        w->first = *ip;
    }
    if (!hr_forwarded_trusted(w->t, ip)) {
        w->have_untrusted = true;
        w->untrusted = *ip;
    }
}

static bool port_ok(const char *s, size_t len, bool obfuscated_ok)
{
    if (len == 0)
        return false;
    if (s[0] == '_') {
        if (!obfuscated_ok || len < 2)
            return false;
        for (size_t i = 1; i < len; i++)
            if (!is_alnum(s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
                return false;
        return true;
    }
    if (len > 5)
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!is_digit(s[i]))
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    return v <= 65535;
}

/*
 * Parses a node: "192.0.2.1", "192.0.2.1:PORT", "[2001:db8::1]", "[2001:db8::1]:PORT",
 * and, with bare_v6, "2001:db8::1" (X-Forwarded-For). forwarded: obfuscated ports
 * allowed. 0 or -1.
 */
static int parse_node(const char *s, size_t len, bool bare_v6, bool forwarded, hr_ip_t *ip)
{
    if (len && s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (!close)
            return -1;
        size_t alen = (size_t)(close - s - 1);
        size_t rest = len - alen - 2;
        const char *r = close + 1;
        if (rest && (r[0] != ':' || !port_ok(r + 1, rest - 1, forwarded)))
            return -1;
        hr_ip_t a;
        /* Brackets hold IPv6 only: [192.0.2.1] is not a node. */
        if (!memchr(s + 1, ':', alen) || hr_ip_parse(s + 1, alen, &a) != 0)
            return -1;
        *ip = a;
        return 0;
    }
    const char *colon = memchr(s, ':', len);
    if (colon && bare_v6 && memchr(colon + 1, ':', len - (size_t)(colon - s) - 1))
        return hr_ip_parse(s, len, ip); /* two colons: a bare IPv6 address */
    size_t alen = colon ? (size_t)(colon - s) : len;
    if (colon && !port_ok(colon + 1, len - alen - 1, forwarded))
        return -1;
    return hr_ip_parse(s, alen, ip);
}

static void trim(const char **s, size_t *len)
{
    while (*len && is_ows(**s))
        (*s)++, (*len)--;
    while (*len && is_ows((*s)[*len - 1]))
        (*len)--;
}

static void walk_xff(walk_t *w, const char *v, size_t len)
{
    size_t i = 0;
    while (i <= len) {
        const char *start = v + i;
        const char *comma = memchr(start, ',', len - i);
        size_t elen = comma ? (size_t)(comma - start) : len - i;
        const char *e = start;
        trim(&e, &elen);
        if (elen) {
            hr_ip_t ip;
            if (parse_node(e, elen, true, false, &ip) == 0)
                walk_good(w, &ip);
            else
                walk_bad(w);
        }
        if (!comma)
            break;
        i = (size_t)(comma - v) + 1;
    }
}

/* Forwarded: the end of a quoted-string that opens at s[0] == '"', or NULL when it does
 * not close before end. Unescapes into out (up to cap bytes, *olen; *olen = cap + 1 on
 * overflow) when out is not NULL. */
static const char *quoted_end(const char *s, const char *end, char *out, size_t cap, size_t *olen)
{
    size_t n = 0;
    for (const char *p = s + 1; p < end; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"') {
            if (olen)
                *olen = n;
            return p + 1;
        }
        if (c == '\\') {
            if (++p == end)
                return NULL;
            c = (unsigned char)*p;
            if (c != '\t' && (c < 0x20 || c == 0x7f))
                return NULL;
        } else if (c != '\t' && (c < 0x20 || c == 0x7f)) {
            return NULL;
        }
        if (out) {
            if (n < cap)
                out[n] = (char)c;
            n = n < cap ? n + 1 : cap + 1;
        }
    }
    return NULL;
}

/* One Forwarded element s[0..len) (no unquoted comma inside): its for= address. */
static int forwarded_element(const char *s, size_t len, hr_ip_t *ip)
{
    const char *p = s, *end = s + len;
    bool have_for = false;
    hr_ip_t a = {0};
    for (;;) {
        while (p < end && is_ows(*p))
            p++;
        if (p < end && *p != ';') {
            const char *name = p;
            while (p < end && is_tchar(*p))
                p++;
            size_t nlen = (size_t)(p - name);
            if (nlen == 0 || p == end || *p != '=')
                return -1;
            p++;
            bool is_for = nlen == 3 && strncasecmp(name, "for", 3) == 0;
            char node[NODE_MAX];
            size_t node_len = 0;
            const char *val = p;
            if (p < end && *p == '"') {
                p = quoted_end(p, end, is_for ? node : NULL, sizeof(node), &node_len);
                if (!p)
                    return -1;
            } else {
                while (p < end && is_tchar(*p))
                    p++;
                if (p == val)
                    return -1;
                node_len = (size_t)(p - val);
                if (is_for && node_len <= sizeof(node))
                    memcpy(node, val, node_len);
            }
            if (is_for) {
                if (have_for || node_len > sizeof(node))
                    return -1;
                have_for = true;
                /* "unknown" and obfuscated identifiers ("_x") are not addresses. */
                if (parse_node(node, node_len, false, true, &a) != 0)
                    return -1;
            }
            while (p < end && is_ows(*p))
                p++;
        }
        if (p == end)
            break;
        if (*p != ';')
            return -1;
        p++;
    }
    if (!have_for)
        return -1;
    *ip = a;
    return 0;
}

static void walk_forwarded(walk_t *w, const char *v, size_t len)
{
    const char *p = v, *end = v + len;
    while (p <= end) {
        /* The element runs to the next comma outside a quoted-string. */
        const char *start = p;
        bool broken = false;
        while (p < end && *p != ',') {
            if (*p == '"') {
                const char *q = quoted_end(p, end, NULL, 0, NULL);
                if (!q) {
                    broken = true; /* unterminated: the rest of the line is this element */
                    p = end;
                    break;
                }
                p = q;
            } else {
                p++;
            }
        }
        const char *e = start;
        size_t elen = (size_t)(p - start);
        trim(&e, &elen);
        if (elen) {
            hr_ip_t ip;
            if (!broken && forwarded_element(e, elen, &ip) == 0)
                walk_good(w, &ip);
            else
                walk_bad(w);
        }
        if (p == end)
            break;
        p++; /* the comma */
    }
}

static bool header_is(const hr_http_header_t *h, const char *name, size_t len)
{
    return h->name_len == len && strncasecmp(h->name, name, len) == 0;
}

hr_forwarded_source_t hr_forwarded_client(const hr_forwarded_trust_t *t, const hr_ip_t *peer,
                                          const hr_http_request_t *req, hr_ip_t *client)
{
    *client = *peer;
    if (!t->count || !hr_forwarded_trusted(t, peer))
        return HR_FORWARDED_PEER;
    bool fwd = false;
    for (size_t i = 0; i < req->num_headers && !fwd; i++)
        fwd = header_is(&req->headers[i], "Forwarded", 9);
    walk_t w = {.t = t};
    bool any = false;
    for (size_t i = 0; i < req->num_headers; i++) {
        const hr_http_header_t *h = &req->headers[i];
        if (fwd && header_is(h, "Forwarded", 9))
            walk_forwarded(&w, h->value, h->value_len);
        else if (!fwd && header_is(h, "X-Forwarded-For", 15))
            walk_xff(&w, h->value, h->value_len);
        else
            continue;
        any = true;
    }
    if (!any || (!w.have_untrusted && !w.in_run))
        return HR_FORWARDED_PEER;
    *client = w.have_untrusted ? w.untrusted : w.first;
    return fwd ? HR_FORWARDED_FORWARDED : HR_FORWARDED_XFF;
}
