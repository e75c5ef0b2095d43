/* STOMP frame codec: STOMP 1.2 "STOMP Frames", "Value Encoding", "Repeated Header
 * Entries" and "Size Limits" (https://stomp.github.io/stomp-specification-1.2.html), with
 * the 1.1 escapes (no \r) and 1.0 (no escapes at all). The parser works in one pass over
 * the header section, line by line with memchr, and keeps no state between calls: a
 * caller that got NEED_MORE calls again with more bytes and the header section is read
 * again. need_hint lets a caller waiting for a content-length body skip those re-reads,
 * and max_header_bytes bounds them. Values are sliced out of the input; only those with
 * an escape are copied, unescaped, into the caller's scratch buffer, which is reserved
 * once per frame for all of them so that its slices never move. The encoder escapes with
 * one counting pass and one writing pass per value. This file knows nothing of sessions,
 * destinations or heart-beat timing. */
#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "herald/error.h"
#include "proto/stomp_frame.h"

static const char *const cmd_names[] = {
    [HR_STOMP_CONNECT] = "CONNECT",
    [HR_STOMP_STOMP] = "STOMP",
    [HR_STOMP_SEND] = "SEND",
    [HR_STOMP_SUBSCRIBE] = "SUBSCRIBE",
    [HR_STOMP_UNSUBSCRIBE] = "UNSUBSCRIBE",
    [HR_STOMP_ACK] = "ACK",
    [HR_STOMP_NACK] = "NACK",
    [HR_STOMP_BEGIN] = "BEGIN",
    [HR_STOMP_COMMIT] = "COMMIT",
    [HR_STOMP_ABORT] = "ABORT",
    [HR_STOMP_DISCONNECT] = "DISCONNECT",
    [HR_STOMP_CONNECTED] = "CONNECTED",
    [HR_STOMP_MESSAGE] = "MESSAGE",
    [HR_STOMP_RECEIPT] = "RECEIPT",
    [HR_STOMP_ERROR] = "ERROR",
};

#define NCMDS (sizeof cmd_names / sizeof cmd_names[0])
#define CONTENT_LENGTH "content-length"
#define CONTENT_LENGTH_LEN (sizeof CONTENT_LENGTH - 1)

void hr_stomp_limits_default(hr_stomp_limits_t *l)
{
    l->max_headers = 64;
    l->max_header_bytes = 16 * 1024;
    l->max_body = 16 * 1024 * 1024;
}

const char *hr_stomp_cmd_name(hr_stomp_cmd_t cmd)
{
    if ((unsigned)cmd >= NCMDS)
        return NULL;
    return cmd_names[cmd];
}

const hr_slice_t *hr_stomp_header_get(const hr_stomp_frame_t *f, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < f->nheaders; i++) {
        const hr_slice_t *s = &f->headers[i].name;
        if (s->len == n && memcmp(s->ptr, name, n) == 0)
            return &f->headers[i].value;
    }
    return NULL;
}

/* 1.2 "Value Encoding": CONNECT and CONNECTED frames are never escaped (STOMP is CONNECT
 * under another name), and 1.0 has no escapes. */
static bool escapes(hr_stomp_version_t v, hr_stomp_cmd_t cmd)
{
    return v != HR_STOMP_10 && cmd != HR_STOMP_CONNECT && cmd != HR_STOMP_STOMP &&
           cmd != HR_STOMP_CONNECTED;
}

static bool is_content_length(hr_slice_t name)
{
    return name.len == CONTENT_LENGTH_LEN && memcmp(name.ptr, CONTENT_LENGTH, name.len) == 0;
}

/* ------------------------------------------------------------------------------------
 * Parsing. Step functions return HR_STOMP_FRAME for "done, go on", or the result the
 * whole call ends with (NEED_MORE or an error, with p->errmsg set).
 * ---------------------------------------------------------------------------------- */

typedef struct parser {
    const uint8_t *data;
    hr_stomp_version_t v;
    bool escaped;  /* this frame's header lines carry escapes */
    size_t wend;   /* end of the bytes at hand that the header section may occupy */
    bool win_full; /* wend is max_header_bytes past the frame start: more input cannot help */
    hr_buf_t *scratch;
    bool reserved; /* scratch holds room for every unescaped byte up to wend */
    const char *errmsg;
} parser_t;

static hr_stomp_result_t fail(parser_t *p, hr_stomp_result_t r, const char *msg)
{
    p->errmsg = msg;
    return r;
}

/* Counts the EOLs (LF or CRLF) at data[0..len). A CR at the very end is left alone: it
 * may be half of a CRLF, and the frame parser will wait for the byte after it. */
static size_t skip_eols(const uint8_t *data, size_t len)
{
    size_t i = 0;
    while (i < len) {
        if (data[i] == '\n')
            i++;
        else if (data[i] == '\r' && i + 1 < len && data[i + 1] == '\n')
            i += 2;
        else
            break;
    }
    return i;
}

/* Finds the line that starts at `at` inside the header window: its content ends at
 * *end (a CR before the LF is not content) and the next line starts at *next. A NUL
 * is refused wherever it shows up, complete line or not, so the verdict does not depend
 * on whether the LF has arrived yet. */
static hr_stomp_result_t read_line(parser_t *p, size_t at, size_t *end, size_t *next)
{
    const uint8_t *s = p->data + at;
    size_t n = p->wend - at;
    const uint8_t *lf = n ? memchr(s, '\n', n) : NULL;
    size_t scan = lf ? (size_t)(lf - s) : n;
    if (scan && memchr(s, '\0', scan))
        return fail(p, HR_STOMP_ERR_SYNTAX, "NUL in frame headers");
    if (!lf)
        return p->win_full ? fail(p, HR_STOMP_ERR_TOO_LARGE, "headers too large")
                           : HR_STOMP_NEED_MORE;
    size_t e = at + scan;
    *next = e + 1;
    if (e > at && p->data[e - 1] == '\r')
        e--;
    *end = e;
    return HR_STOMP_FRAME;
}

static hr_stomp_cmd_t lookup_cmd(const uint8_t *s, size_t n)
{
    for (size_t i = 1; i < NCMDS; i++) {
        if (strlen(cmd_names[i]) == n && memcmp(cmd_names[i], s, n) == 0)
            return (hr_stomp_cmd_t)i;
    }
    return HR_STOMP_UNKNOWN;
}

/* Rewrites *s (which holds a backslash) into scratch, decoding \n \c \\ and, in 1.2, \r.
 * The first call of a frame reserves room for everything from s to the end of the
 * window: unescaping only shrinks, so later values fit and earlier slices stay put. */
static hr_stomp_result_t unescape(parser_t *p, hr_slice_t *s)
{
    const uint8_t *q = s->ptr, *qe = q + s->len;
    hr_buf_t *sc = p->scratch;
    if (!p->reserved) {
        if (hr_buf_reserve(sc, p->wend - (size_t)(q - p->data)) != 0)
            return fail(p, HR_STOMP_ERR_TOO_LARGE, "out of memory");
        p->reserved = true;
    }
    uint8_t *d0 = sc->data + sc->len, *d = d0;
    while (q < qe) {
        const uint8_t *bs = memchr(q, '\\', (size_t)(qe - q));
        size_t run = bs ? (size_t)(bs - q) : (size_t)(qe - q);
        memcpy(d, q, run);
        d += run;
        q += run;
        if (!bs)
            break;
        if (q + 1 == qe)
            return fail(p, HR_STOMP_ERR_SYNTAX, "invalid escape sequence in header");
        switch (q[1]) {
        case 'n':
            *d++ = '\n';
            break;
        case 'c':
            *d++ = ':';
            break;
        case '\\':
            *d++ = '\\';
            break;
        case 'r':
            if (p->v != HR_STOMP_12) /* 1.1 has no \r */
                return fail(p, HR_STOMP_ERR_SYNTAX, "invalid escape sequence in header");
            *d++ = '\r';
            break;
        default:
            return fail(p, HR_STOMP_ERR_SYNTAX, "invalid escape sequence in header");
        }
        q += 2;
    }
    *s = hr_slice(d0, (size_t)(d - d0));
    sc->len += (size_t)(d - d0);
    return HR_STOMP_FRAME;
}

/* One "name:value" line, data[at..end) without its EOL. */
static hr_stomp_result_t read_header(parser_t *p, size_t at, size_t end, hr_stomp_header_t *h)
{
    const uint8_t *s = p->data + at;
    size_t n = end - at;
    if (p->v == HR_STOMP_12 && memchr(s, '\r', n))
        return fail(p, HR_STOMP_ERR_SYNTAX, "carriage return in header");
    const uint8_t *colon = memchr(s, ':', n);
    if (!colon)
        return fail(p, HR_STOMP_ERR_SYNTAX, "header line without ':'");
    size_t name_len = (size_t)(colon - s);
    if (name_len == 0)
        return fail(p, HR_STOMP_ERR_SYNTAX, "empty header name");
    h->name = hr_slice(s, name_len);
    h->value = hr_slice(colon + 1, n - name_len - 1);
    if (!p->escaped || !memchr(s, '\\', n))
        return HR_STOMP_FRAME;
    hr_stomp_result_t r = HR_STOMP_FRAME;
    if (memchr(h->name.ptr, '\\', h->name.len))
        r = unescape(p, &h->name);
    if (r == HR_STOMP_FRAME && memchr(h->value.ptr, '\\', h->value.len))
        r = unescape(p, &h->value);
    return r;
}

/* content-length: decimal digits only (no sign, no blanks), at most max_body. Every byte
 * is checked before overflow is reported, so "99…9x" is a syntax error either way. */
static hr_stomp_result_t read_length(parser_t *p, hr_slice_t v, size_t max_body, size_t *out)
{
    const uint8_t *s = v.ptr;
    size_t n = 0;
    bool over = false;
    if (v.len == 0)
        return fail(p, HR_STOMP_ERR_SYNTAX, "invalid content-length");
    for (size_t i = 0; i < v.len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return fail(p, HR_STOMP_ERR_SYNTAX, "invalid content-length");
        size_t d = (size_t)(s[i] - '0');
        if (n > (SIZE_MAX - d) / 10)
            over = true;
        else
            n = n * 10 + d;
    }
    if (over || n > max_body)
        return fail(p, HR_STOMP_ERR_TOO_LARGE, "body too large");
    *out = n;
    return HR_STOMP_FRAME;
}

/* The frame that starts at data[start] (not an EOL). On HR_STOMP_FRAME, *end is the
 * offset just past its NUL. */
static hr_stomp_result_t parse_frame(parser_t *p, size_t start, size_t len,
                                     const hr_stomp_limits_t *lim, hr_stomp_frame_t *out,
                                     size_t *end, size_t *need_hint)
{
    const uint8_t *data = p->data;
    size_t avail = len - start;
    p->win_full = avail >= lim->max_header_bytes;
    p->wend = start + (p->win_full ? lim->max_header_bytes : avail);
    size_t max_headers =
        lim->max_headers < HR_STOMP_MAX_HEADERS_CAP ? lim->max_headers : HR_STOMP_MAX_HEADERS_CAP;

    size_t line_end, next;
    hr_stomp_result_t r = read_line(p, start, &line_end, &next);
    if (r != HR_STOMP_FRAME)
        return r;
    out->cmd = lookup_cmd(data + start, line_end - start);
    if (out->cmd == HR_STOMP_UNKNOWN)
        return fail(p, HR_STOMP_ERR_SYNTAX, "unknown command");
    out->cmd_text = hr_slice(data + start, line_end - start);
    p->escaped = escapes(p->v, out->cmd);
    out->nheaders = 0;
    out->has_content_length = false;

    size_t clen = 0;
    for (;;) {
        size_t at = next;
        r = read_line(p, at, &line_end, &next);
        if (r != HR_STOMP_FRAME)
            return r;
        if (line_end == at)
            break; /* the blank line */
        if (out->nheaders == max_headers)
            return fail(p, HR_STOMP_ERR_TOO_LARGE, "too many headers");
        hr_stomp_header_t *h = &out->headers[out->nheaders];
        r = read_header(p, at, line_end, h);
        if (r != HR_STOMP_FRAME)
            return r;
        out->nheaders++;
        /* 1.2 "Repeated Header Entries": only the first occurrence counts. */
        if (!out->has_content_length && is_content_length(h->name)) {
            r = read_length(p, h->value, lim->max_body, &clen);
            if (r != HR_STOMP_FRAME)
                return r;
            out->has_content_length = true;
        }
    }

    size_t body = next;
    size_t rem = len - body;
    if (out->has_content_length) {
        if (clen >= rem) {
            *need_hint = clen <= SIZE_MAX - body - 1 ? body + clen + 1 : SIZE_MAX;
            return HR_STOMP_NEED_MORE;
        }
        if (data[body + clen] != '\0')
            return fail(p, HR_STOMP_ERR_SYNTAX, "missing NUL after body");
        out->body = hr_slice(data + body, clen);
        *end = body + clen + 1;
        return HR_STOMP_FRAME;
    }
    /* Without content-length, look at max_body + 1 bytes at most: that many without a NUL
     * is a body too large whatever follows, so there is no need to wait for more. */
    size_t scan = rem;
    if (lim->max_body < scan)
        scan = lim->max_body + 1;
    const uint8_t *nul = scan ? memchr(data + body, '\0', scan) : NULL;
    if (!nul)
        return rem > lim->max_body ? fail(p, HR_STOMP_ERR_TOO_LARGE, "body too large")
                                   : HR_STOMP_NEED_MORE;
    out->body = hr_slice(data + body, (size_t)(nul - (data + body)));
    *end = (size_t)(nul - data) + 1;
    return HR_STOMP_FRAME;
}

hr_stomp_result_t hr_stomp_parse(const uint8_t *data, size_t len, hr_stomp_version_t v,
                                 const hr_stomp_limits_t *lim, hr_stomp_frame_t *out,
                                 hr_buf_t *scratch, size_t *used, size_t *need_hint,
                                 const char **errmsg)
{
    *used = 0;
    *need_hint = 0;
    *errmsg = NULL;
    scratch->len = 0;

    size_t skip = skip_eols(data, len);
    hr_stomp_result_t r = HR_STOMP_NEED_MORE;
    size_t end = 0;
    parser_t p = {.data = data, .v = v, .scratch = scratch};
    if (skip < len)
        r = parse_frame(&p, skip, len, lim, out, &end, need_hint);

    switch (r) {
    case HR_STOMP_FRAME:
        *used = end;
        break;
    case HR_STOMP_NEED_MORE:
        if (skip > 0) {
            *need_hint = 0;
            *used = skip;
            r = HR_STOMP_HEARTBEAT;
        }
        break;
    default:
        *errmsg = p.errmsg;
        break;
    }
    return r;
}

/* ------------------------------------------------------------------------------------
 * Encoding
 * ---------------------------------------------------------------------------------- */

static bool needs_escape(hr_stomp_version_t v, uint8_t c)
{
    return c == '\\' || c == '\n' || c == ':' || (c == '\r' && v == HR_STOMP_12);
}

int hr_stomp_escape(hr_buf_t *b, hr_stomp_version_t v, hr_stomp_cmd_t cmd, const void *s, size_t n)
{
    const uint8_t *p = s;
    if (!escapes(v, cmd))
        return hr_buf_append(b, s, n);
    size_t extra = 0;
    for (size_t i = 0; i < n; i++)
        extra += needs_escape(v, p[i]);
    if (extra == 0)
        return hr_buf_append(b, s, n);
    int rc = hr_buf_reserve(b, n + extra); /* extra <= n: cannot overflow */
    if (rc)
        return rc;
    uint8_t *d = b->data + b->len;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (!needs_escape(v, c)) {
            *d++ = c;
            continue;
        }
        *d++ = '\\';
        *d++ = c == '\n' ? 'n' : c == '\r' ? 'r' : c == ':' ? 'c' : '\\';
    }
    b->len += n + extra;
    return 0;
}

int hr_stomp_encode(hr_buf_t *b, hr_stomp_version_t v, hr_stomp_cmd_t cmd,
                    const hr_stomp_header_t *headers, size_t nheaders, const void *body,
                    size_t body_len, bool with_length)
{
    const char *name = hr_stomp_cmd_name(cmd);
    assert(name != NULL); /* a known command: a caller bug otherwise */
    size_t start = b->len;
    int rc;
    if ((rc = hr_buf_append_str(b, name)) || (rc = hr_buf_append(b, "\n", 1)))
        goto fail;
    for (size_t i = 0; i < nheaders; i++) {
        const hr_stomp_header_t *h = &headers[i];
        if (is_content_length(h->name))
            continue;
        if ((rc = hr_stomp_escape(b, v, cmd, h->name.ptr, h->name.len)) ||
            (rc = hr_buf_append(b, ":", 1)) ||
            (rc = hr_stomp_escape(b, v, cmd, h->value.ptr, h->value.len)) ||
            (rc = hr_buf_append(b, "\n", 1)))
            goto fail;
    }
    if (with_length || (body_len && memchr(body, '\0', body_len))) {
        char tmp[sizeof CONTENT_LENGTH + 24];
        int n = snprintf(tmp, sizeof tmp, CONTENT_LENGTH ":%zu\n", body_len);
        if ((rc = hr_buf_append(b, tmp, (size_t)n)))
            goto fail;
    }
    if ((rc = hr_buf_append(b, "\n", 1)) || (rc = hr_buf_append(b, body, body_len)) ||
        (rc = hr_buf_append(b, "", 1)))
        goto fail;
    return 0;
fail:
    b->len = start;
    return rc;
}
