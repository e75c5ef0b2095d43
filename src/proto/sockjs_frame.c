/* SockJS 0.3 frame encoding and client payload decoding (sockjs-protocol-0.3.3, "Framing"
 * and "JSON Unicode Encoding"). Server frames carry messages as JSON strings inside
 * a[...]; a few code point ranges must travel as \u escapes, because some browsers drop
 * or rewrite them in XHR and EventSource bodies. Client payloads are JSON arrays of
 * strings. What it does not do: parse JSON beyond that shape (no numbers, objects). */
#include "proto/sockjs_frame.h"

#include <stdio.h>
#include <string.h>

#include "herald/error.h"

static const char hex[] = "0123456789abcdef";

static int put_u(hr_buf_t *out, uint32_t cp)
{
    char e[6] = {'\\',        'u', hex[(cp >> 12) & 15], hex[(cp >> 8) & 15], hex[(cp >> 4) & 15],
                 hex[cp & 15]};
    return hr_buf_append(out, e, 6);
}

/* The code points SockJS clients need escaped (the union of the protocol test suite's
 * escapable_by_server set and sockjs-node's, so no client version mangles them). */
static bool must_escape(uint32_t cp)
{
    return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0xad || (cp >= 0x600 && cp <= 0x604) ||
           cp == 0x70f || cp == 0x17b4 || cp == 0x17b5 || (cp >= 0x200c && cp <= 0x200f) ||
           (cp >= 0x2028 && cp <= 0x202f) || (cp >= 0x2060 && cp <= 0x206f) || cp == 0xfeff ||
           cp >= 0xfff0;
}

/* Length of the valid UTF-8 sequence at p (1..4) with its code point, or 0 if the bytes
 * there are not one (RFC 3629 §4: no overlongs, no surrogates, nothing above U+10FFFF). */
static size_t utf8_seq(const uint8_t *p, size_t n, uint32_t *cp)
{
    uint8_t b = p[0];
    size_t len;
    uint32_t min;
    if (b < 0x80) {
        *cp = b;
        return 1;
    }
    if (b >= 0xc2 && b <= 0xdf) {
        len = 2, min = 0x80, *cp = b & 0x1f;
    } else if (b >= 0xe0 && b <= 0xef) {
        len = 3, min = 0x800, *cp = b & 0x0f;
    } else if (b >= 0xf0 && b <= 0xf4) {
        len = 4, min = 0x10000, *cp = b & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        *cp = (*cp << 6) | (p[i] & 0x3f);
    }
    if (*cp < min || *cp > 0x10ffff || (*cp >= 0xd800 && *cp <= 0xdfff))
        return 0;
    return len;
}

int hr_sockjs_quote(hr_buf_t *out, const void *s, size_t len)
{
    const uint8_t *p = s, *end = p + len;
    /* Worst case is 6 output bytes per input byte; reserve for the common case. */
    if (hr_buf_reserve(out, len + len / 8 + 2) != 0 || hr_buf_append(out, "\"", 1) != 0)
        return HR_ENOMEM;
    while (p < end) {
        /* Copy the longest run that needs nothing. */
        const uint8_t *run = p;
        while (p < end && *p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\')
            p++;
        if (p > run && hr_buf_append(out, run, (size_t)(p - run)) != 0)
            return HR_ENOMEM;
        if (p == end)
            break;
        uint32_t cp;
        size_t n = utf8_seq(p, (size_t)(end - p), &cp);
        int rc;
        if (n == 0) {
            rc = put_u(out, *p); /* not UTF-8: the byte as a Latin-1 character */
            n = 1;
        } else if (cp == '"' || cp == '\\') {
            char e[2] = {'\\', (char)cp};
            rc = hr_buf_append(out, e, 2);
        } else if (cp == '\n' || cp == '\r' || cp == '\t') {
            char e[2] = {'\\', cp == '\n' ? 'n' : cp == '\r' ? 'r' : 't'};
            rc = hr_buf_append(out, e, 2);
        } else if (cp > 0xffff) {
            uint32_t v = cp - 0x10000;
            rc = put_u(out, 0xd800 | (v >> 10));
            if (rc == 0)
                rc = put_u(out, 0xdc00 | (v & 0x3ff));
        } else if (must_escape(cp)) {
            rc = put_u(out, cp);
        } else {
            rc = hr_buf_append(out, p, n);
        }
        if (rc != 0)
            return HR_ENOMEM;
        p += n;
    }
    return hr_buf_append(out, "\"", 1) != 0 ? HR_ENOMEM : 0;
}

int hr_sockjs_encode_array(hr_buf_t *out, const hr_slice_t *msgs, size_t n)
{
    if (hr_buf_append(out, "a[", 2) != 0)
        return HR_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if ((i && hr_buf_append(out, ",", 1) != 0) ||
            hr_sockjs_quote(out, msgs[i].ptr, msgs[i].len) != 0)
            return HR_ENOMEM;
    }
    return hr_buf_append(out, "]", 1) != 0 ? HR_ENOMEM : 0;
}

int hr_sockjs_encode_close(hr_buf_t *out, unsigned code, const char *reason)
{
    char num[16];
    int k = snprintf(num, sizeof(num), "c[%u,", code);
    if (hr_buf_append(out, num, (size_t)k) != 0 ||
        hr_sockjs_quote(out, reason, strlen(reason)) != 0 || hr_buf_append(out, "]", 1) != 0)
        return HR_ENOMEM;
    return 0;
}

int hr_sockjs_encode_event(hr_buf_t *out, const void *frame, size_t len)
{
    const uint8_t *p = frame, *end = p + len;
    if (hr_buf_reserve(out, len + 10) != 0 || hr_buf_append(out, "data: ", 6) != 0)
        return HR_ENOMEM;
    while (p < end) {
        const uint8_t *run = p;
        while (p < end && *p != '%' && *p != '\r' && *p != '\n' && *p != 0)
            p++;
        if (p > run && hr_buf_append(out, run, (size_t)(p - run)) != 0)
            return HR_ENOMEM;
        if (p == end)
            break;
        char e[3] = {'%', hex[*p >> 4], hex[*p & 15]}; /* %25 %0d %0a %00 */
        if (hr_buf_append(out, e, 3) != 0)
            return HR_ENOMEM;
        p++;
    }
    return hr_buf_append(out, "\r\n\r\n", 4) != 0 ? HR_ENOMEM : 0;
}

/* ---------------------------------------------------------------- decoding */

static const uint8_t *skip_ws(const uint8_t *p, const uint8_t *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

static int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Four hex digits at p (p + 4 <= end checked by the caller), or -1. */
static int32_t hex4(const uint8_t *p)
{
    int32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(p[i]);
        if (h < 0)
            return -1;
        v = v << 4 | h;
    }
    return v;
}

static int put_utf8(hr_buf_t *out, uint32_t cp)
{
    uint8_t b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (uint8_t)cp, n = 1;
    } else if (cp < 0x800) {
        b[0] = (uint8_t)(0xc0 | cp >> 6), b[1] = (uint8_t)(0x80 | (cp & 0x3f)), n = 2;
    } else if (cp < 0x10000) {
        b[0] = (uint8_t)(0xe0 | cp >> 12), b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        b[2] = (uint8_t)(0x80 | (cp & 0x3f)), n = 3;
    } else {
        b[0] = (uint8_t)(0xf0 | cp >> 18), b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
        b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f)), b[3] = (uint8_t)(0x80 | (cp & 0x3f)), n = 4;
    }
    return hr_buf_append(out, b, n);
}

/* One JSON string starting at *pp (at its opening quote) as a record in out. 0,
 * HR_EPROTO or HR_ENOMEM. */
static int decode_string(const uint8_t **pp, const uint8_t *end, hr_buf_t *out)
{
    const uint8_t *p = *pp + 1;
    size_t at = out->len;
    uint32_t len = 0;
    if (hr_buf_append(out, &len, sizeof(len)) != 0)
        return HR_ENOMEM;
    for (;;) {
        const uint8_t *run = p;
        while (p < end && *p != '"' && *p != '\\' && *p >= 0x20 && *p < 0x80)
            p++;
        if (p > run && hr_buf_append(out, run, (size_t)(p - run)) != 0)
            return HR_ENOMEM;
        if (p == end || *p < 0x20)
            return HR_EPROTO; /* unterminated, or a raw control character */
        if (*p == '"')
            break;
        int rc;
        if (*p >= 0x80) {
            uint32_t cp;
            size_t n = utf8_seq(p, (size_t)(end - p), &cp);
            if (n == 0)
                return HR_EPROTO;
            rc = hr_buf_append(out, p, n);
            p += n;
        } else {
            if (end - p < 2)
                return HR_EPROTO;
            uint8_t e = p[1];
            p += 2;
            char c = e == '"' || e == '\\' || e == '/' ? (char)e
                     : e == 'b'                        ? '\b'
                     : e == 'f'                        ? '\f'
                     : e == 'n'                        ? '\n'
                     : e == 'r'                        ? '\r'
                     : e == 't'                        ? '\t'
                                                       : 0;
            if (c) {
                rc = hr_buf_append(out, &c, 1);
            } else if (e == 'u') {
                int32_t cp = end - p >= 4 ? hex4(p) : -1;
                if (cp < 0)
                    return HR_EPROTO;
                p += 4;
                if (cp >= 0xd800 && cp <= 0xdbff && end - p >= 6 && p[0] == '\\' && p[1] == 'u') {
                    int32_t lo = hex4(p + 2);
                    if (lo >= 0xdc00 && lo <= 0xdfff) {
                        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                        p += 6;
                    }
                }
                if (cp >= 0xd800 && cp <= 0xdfff)
                    cp = 0xfffd; /* a lone surrogate has no UTF-8 form */
                rc = put_utf8(out, (uint32_t)cp);
            } else {
                return HR_EPROTO;
            }
        }
        if (rc != 0)
            return HR_ENOMEM;
    }
    size_t n = out->len - at - sizeof(len);
    if (n > UINT32_MAX)
        return HR_EPROTO;
    len = (uint32_t)n;
    memcpy(out->data + at, &len, sizeof(len));
    *pp = p + 1;
    return 0;
}

ssize_t hr_sockjs_decode(const uint8_t *in, size_t len, bool allow_string, hr_buf_t *out)
{
    const uint8_t *p = skip_ws(in, in + len), *end = in + len;
    if (p == end)
        return HR_EAGAIN;
    ssize_t count = 0;
    int rc;
    if (*p == '"' && allow_string) {
        if ((rc = decode_string(&p, end, out)) != 0)
            return rc;
        count = 1;
    } else {
        if (*p != '[')
            return HR_EPROTO;
        p = skip_ws(p + 1, end);
        if (p < end && *p == ']') {
            p++;
        } else {
            for (;;) {
                if (p == end || *p != '"')
                    return HR_EPROTO;
                if ((rc = decode_string(&p, end, out)) != 0)
                    return rc;
                count++;
                p = skip_ws(p, end);
                if (p < end && *p == ',') {
                    p = skip_ws(p + 1, end);
                    continue;
                }
                if (p < end && *p == ']') {
                    p++;
                    break;
                }
                return HR_EPROTO;
            }
        }
    }
    return skip_ws(p, end) == end ? count : HR_EPROTO;
}

bool hr_sockjs_next(const hr_buf_t *buf, size_t *off, hr_slice_t *msg)
{
    uint32_t n;
    if (*off + sizeof(n) > buf->len)
        return false;
    memcpy(&n, buf->data + *off, sizeof(n));
    *msg = hr_slice(buf->data + *off + sizeof(n), n);
    *off += sizeof(n) + n;
    return true;
}
