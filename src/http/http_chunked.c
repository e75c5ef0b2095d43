/* Chunked request bodies, RFC 9112 §7.1: a state machine fed any split of the input,
 * decoding in place (data only ever moves towards the front, so the caller needs no
 * second buffer and the body never takes more memory than its decoded size). Line ends
 * are strict CRLF: a bare LF accepted here but not by a proxy in front would let one
 * body hide a request in another (request smuggling). Chunk extensions and trailer
 * fields are checked for syntax and dropped; nothing here allocates. */
#include "http/http_chunked.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "herald/error.h"

enum {
    ST_SIZE0,   /* the first hex digit of a chunk-size */
    ST_SIZE,    /* more hex digits, or the end of the size */
    ST_EXT,     /* chunk extensions, up to CR */
    ST_SIZE_LF, /* LF of the size line */
    ST_DATA,    /* chunk data */
    ST_DATA_CR, /* CRLF after the data */
    ST_DATA_LF,
    ST_TRAILER,  /* start of a trailer line, or the final CR */
    ST_TR_NAME,  /* field name, up to ':' */
    ST_TR_VALUE, /* field value, up to CR */
    ST_TR_LF,    /* LF of a trailer line */
    ST_FINAL_LF, /* LF of the empty line that ends the body */
    ST_DONE,
    ST_ERROR
};

void hr_http_chunked_init(hr_http_chunked_t *d, size_t max_body)
{
    memset(d, 0, sizeof(*d));
    d->max_body = max_body;
    d->state = ST_SIZE0;
}

static int hex_value(uint8_t ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch |= 0x20;
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

/* RFC 9110 §5.6.2 tchar. */
static bool is_tchar(uint8_t ch)
{
    if ((ch >= '0' && ch <= '9') || ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'z'))
        return true;
    return ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

/* Field values and extensions: visible characters, SP, HTAB and obs-text. */
static bool is_text(uint8_t ch)
{
    return ch == '\t' || (ch >= 0x20 && ch != 0x7f);
}

/* The data decoded before the error is still reported (*out_len), for consistency. */
static ssize_t fail(hr_http_chunked_t *d, int status, size_t out, size_t *out_len)
{
    *out_len = out;
    d->state = ST_ERROR;
    d->status = (uint16_t)status;
    return status == 413 ? HR_EMSGSIZE : HR_EPROTO;
}

ssize_t hr_http_chunked_feed(hr_http_chunked_t *d, uint8_t *buf, size_t len, size_t *out_len)
{
    size_t in = 0, out = 0;
    *out_len = 0;
    if (d->state == ST_ERROR)
        return d->status == 413 ? HR_EMSGSIZE : HR_EPROTO;
    while (in < len) {
        uint8_t ch = buf[in];
        switch (d->state) {
        case ST_SIZE0:
        case ST_SIZE: {
            int v = hex_value(ch);
            if (v >= 0) {
                /* Over the limit is 413 at once: the data need not arrive to be refused,
                 * and the size cannot overflow. */
                size_t room = d->max_body - d->body_len;
                if ((size_t)v > room || d->remaining > (room - (size_t)v) / 16)
                    return fail(d, 413, out, out_len);
                d->remaining = d->remaining * 16 + (size_t)v;
                d->state = ST_SIZE;
            } else if (d->state == ST_SIZE0) {
                return fail(d, 400, out, out_len);
            } else if (ch == '\r') {
                d->state = ST_SIZE_LF;
            } else if (ch == ';' || ch == ' ' || ch == '\t') {
                d->state = ST_EXT;
            } else {
                return fail(d, 400, out, out_len);
            }
            break;
        }
        case ST_EXT:
            if (ch == '\r')
                d->state = ST_SIZE_LF;
            else if (!is_text(ch))
                return fail(d, 400, out, out_len);
            break;
        case ST_SIZE_LF:
            if (ch != '\n')
                return fail(d, 400, out, out_len);
            d->line = 0;
            d->state = d->remaining ? ST_DATA : ST_TRAILER;
            in++;
            continue;
        case ST_DATA: {
            size_t n = len - in < d->remaining ? len - in : d->remaining;
            memmove(buf + out, buf + in, n);
            out += n;
            in += n;
            d->body_len += n;
            d->remaining -= n;
            if (!d->remaining)
                d->state = ST_DATA_CR;
            continue;
        }
        case ST_DATA_CR:
            if (ch != '\r')
                return fail(d, 400, out, out_len);
            d->state = ST_DATA_LF;
            break;
        case ST_DATA_LF:
            if (ch != '\n')
                return fail(d, 400, out, out_len);
            d->state = ST_SIZE0;
            in++;
            continue;
        case ST_TRAILER:
            if (ch == '\r')
                d->state = ST_FINAL_LF;
            else if (is_tchar(ch))
                d->state = ST_TR_NAME;
            else
                return fail(d, 400, out, out_len);
            break;
        case ST_TR_NAME:
            if (ch == ':')
                d->state = ST_TR_VALUE;
            else if (!is_tchar(ch))
                return fail(d, 400, out, out_len);
            break;
        case ST_TR_VALUE:
            if (ch == '\r')
                d->state = ST_TR_LF;
            else if (!is_text(ch))
                return fail(d, 400, out, out_len);
            break;
        case ST_TR_LF:
            if (ch != '\n')
                return fail(d, 400, out, out_len);
            d->state = ST_TRAILER;
            break;
        case ST_FINAL_LF:
            if (ch != '\n')
                return fail(d, 400, out, out_len);
            if (++d->line > HR_HTTP_CHUNKED_MAX_TRAILER)
                return fail(d, 431, out, out_len);
            d->state = ST_DONE;
            *out_len = out;
            return (ssize_t)(in + 1);
        case ST_DONE:
            *out_len = out;
            return (ssize_t)in;
        }
        in++;
        /* The size line counts from its first digit to its CR; the trailer section is
         * every byte after the last chunk's CRLF. Both are bounded so that an endless line
         * cannot hold the connection's time. */
        if (d->state <= ST_SIZE_LF && d->state != ST_SIZE0 && ++d->line > HR_HTTP_CHUNKED_MAX_LINE)
            return fail(d, 400, out, out_len);
        if (d->state >= ST_TRAILER && ++d->line > HR_HTTP_CHUNKED_MAX_TRAILER)
            return fail(d, 431, out, out_len);
    }
    *out_len = out;
    return d->state == ST_DONE ? 0 : HR_EAGAIN;
}

/* ---------------------------------------------------------------- framing */

/* The transfer codings of all Transfer-Encoding fields, in order. */
typedef struct coding_scan {
    size_t count;         /* codings seen */
    bool chunked;         /* chunked seen before the last one */
    bool last_is_chunked; /* the last one seen is exactly "chunked" */
    bool bad;             /* an element that is not a coding */
} coding_scan_t;

static void scan_coding(coding_scan_t *s, const char *p, size_t n)
{
    if (s->last_is_chunked)
        s->chunked = true; /* chunked is not the last after all */
    s->count++;
    s->last_is_chunked = n == 7 && strncasecmp(p, "chunked", 7) == 0;
    /* A coding is a token, optionally followed by parameters (not checked: any coding
     * but a bare chunked is refused anyway). */
    size_t i = 0;
    while (i < n && is_tchar((uint8_t)p[i]))
        i++;
    if (i == 0 || (i < n && p[i] != ';' && p[i] != ' ' && p[i] != '\t'))
        s->bad = true;
}

/* Scans each element of the comma-separated list v[0..len), OWS trimmed, empty elements
 * skipped (RFC 9110 §5.6.1). */
static void scan_list(coding_scan_t *s, const char *v, size_t len)
{
    size_t i = 0;
    while (i <= len) {
        size_t start = i;
        while (i < len && v[i] != ',')
            i++;
        size_t a = start, b = i;
        while (a < b && (v[a] == ' ' || v[a] == '\t'))
            a++;
        while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t'))
            b--;
        if (b > a)
            scan_coding(s, v + a, b - a);
        i++;
    }
}

int hr_http_chunked_framing(const hr_http_request_t *req)
{
    coding_scan_t s = {0};
    bool present = false;
    for (size_t i = 0; i < req->num_headers; i++) {
        const hr_http_header_t *h = &req->headers[i];
        if (h->name_len == 17 && strncasecmp(h->name, "Transfer-Encoding", 17) == 0) {
            present = true;
            scan_list(&s, h->value, h->value_len);
        }
    }
    if (!present)
        return 0;
    /* §6.1: with Content-Length too it is a smuggling attempt or a broken client; an
     * HTTP/1.0 message with Transfer-Encoding has faulty framing. */
    if (hr_http_find_header(req, "Content-Length") || req->version_minor == 0)
        return 400;
    if (s.bad || !s.count || !s.last_is_chunked || s.chunked)
        return 400; /* §6.3: the length cannot be determined */
    return s.count > 1 ? 501 : 1;
}
