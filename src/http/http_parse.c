/* HTTP/1.x request-head parser: request line and header fields (RFC 9112 §2-§5,
 * field syntax from RFC 9110 §5), pointing into the caller's buffer. It is stateless:
 * the caller keeps the bytes and calls again when more arrive, so each call rescans
 * from the start. That costs O(head) per call, bounded by max_bytes, and buys a parser
 * with no state to corrupt. The request line is checked on every call, even while
 * incomplete, so garbage (a TLS ClientHello on the plain port, a binary probe) gets its
 * 400 after the first bytes instead of after max_bytes.
 *
 * Deliberately strict where RFC 9112 allows leniency: no leading empty lines (§2.2),
 * exactly one SP between request-line parts (§3), no obs-fold (§5.2), no whitespace
 * before the colon (§5.1), no CTL other than HTAB in values. It does not read bodies,
 * decode percent-escapes, or merge repeated fields: that is for the caller. */
#include <string.h>

#include "http/http_parse.h"
#include "herald/error.h"

/* RFC 9110 §5.6.2 tchar: "!#$%&'*+-.^_`|~", DIGIT, ALPHA. A table keeps the hot loop
 * to one load per byte. */
static const unsigned char tchar_map[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
    ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1,  ['~'] = 1, ['0'] = 1,
    ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1,  ['7'] = 1, ['8'] = 1,
    ['9'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1,  ['F'] = 1, ['G'] = 1,
    ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1,  ['N'] = 1, ['O'] = 1,
    ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1,  ['V'] = 1, ['W'] = 1,
    ['X'] = 1, ['Y'] = 1, ['Z'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1,  ['d'] = 1, ['e'] = 1,
    ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1,  ['l'] = 1, ['m'] = 1,
    ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1,  ['t'] = 1, ['u'] = 1,
    ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

static int is_tchar(char c)
{
    return tchar_map[(unsigned char)c];
}

/* Visible ASCII: the only bytes a request-target may hold (RFC 3986 has no raw
 * non-ASCII, and RFC 9112 §3.2 no whitespace). */
static int is_vchar(char c)
{
    return c > 0x20 && c < 0x7f;
}

/* RFC 9110 §5.5 field-vchar / obs-text / SP / HTAB; CR, LF, NUL and the other CTLs and
 * DEL are refused because they are how response splitting and smuggling start. */
static int is_value_char(char c)
{
    unsigned char u = (unsigned char)c;
    return u == '\t' || (u >= 0x20 && u != 0x7f);
}

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static int equal_nocase(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (lower(a[i]) != lower(b[i]))
            return 0;
    return 1;
}

static ssize_t fail(int *status, int code)
{
    *status = code;
    return HR_EPROTO;
}

/* RFC 9112 §3.2: origin-form, asterisk-form, or absolute-form (a proxy-style request
 * a server must still accept). authority-form belongs to CONNECT, which we refuse. */
static int check_target(const char *t, size_t n)
{
    if (t[0] == '/')
        return 1;
    if (n == 1 && t[0] == '*')
        return 1;
    if (n > 7 && equal_nocase(t, "http://", 7))
        return 1;
    if (n > 8 && equal_nocase(t, "https://", 8))
        return 1;
    return 0;
}

/*
 * Parses the request line from buf[0..len), which may stop anywhere inside it. Returns
 * its length including the line end, HR_EAGAIN if every byte so far could still begin
 * a valid line, or HR_EPROTO with *status 400 or 505.
 */
static ssize_t parse_request_line(const char *buf, size_t len, hr_http_request_t *req, int *status)
{
    static const char proto[] = "HTTP/";
    size_t i = 0;

    while (i < len && is_tchar(buf[i]))
        i++;
    if (i == len)
        return HR_EAGAIN;
    if (i == 0 || buf[i] != ' ')
        return fail(status, 400);
    req->method = buf;
    req->method_len = i;

    size_t t = ++i;
    while (i < len && is_vchar(buf[i]))
        i++;
    if (i == len)
        return HR_EAGAIN;
    if (i == t || buf[i] != ' ' || !check_target(buf + t, i - t))
        return fail(status, 400);
    req->target = buf + t;
    req->target_len = i - t;

    /* HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive (RFC 9112 §2.3). */
    i++;
    for (size_t k = 0; k < 8; k++, i++) {
        if (i == len)
            return HR_EAGAIN;
        char c = buf[i];
        int ok = k < 5 ? c == proto[k] : k == 6 ? c == '.' : c >= '0' && c <= '9';
        if (!ok)
            return fail(status, 400);
    }
    req->version_major = buf[i - 3] - '0';
    req->version_minor = buf[i - 1] - '0';

    if (i < len && buf[i] == '\r')
        i++;
    if (i == len)
        return HR_EAGAIN;
    if (buf[i] != '\n')
        return fail(status, 400);
    /* RFC 9110 §2.5: any other major version is a different protocol; a higher 1.x minor
     * is answered as 1.1, so it is accepted and reported as sent. */
    if (req->version_major != 1)
        return fail(status, 505);
    return (ssize_t)(i + 1);
}

/* Finds the empty line that ends the head, scanning lines from buf[from]. Returns the
 * head length, or 0 if it is not there yet. A lone CR at the start of a line cannot
 * end the head; it is left for the field parser to refuse. */
static size_t find_head_end(const char *buf, size_t len, size_t from)
{
    size_t p = from;
    while (p < len) {
        if (buf[p] == '\n')
            return p + 1;
        if (buf[p] == '\r' && p + 1 < len && buf[p + 1] == '\n')
            return p + 2;
        const char *nl = memchr(buf + p, '\n', len - p);
        if (!nl)
            return 0;
        p = (size_t)(nl - buf) + 1;
    }
    return 0;
}

/* Parses one field line buf[0..n), n excluding the LF (a CR before it is stripped
 * here). Returns 0 or -1 for a malformed line. */
static int parse_field(const char *buf, size_t n, hr_http_header_t *h)
{
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    size_t i = 0;
    /* Leading whitespace here is obs-fold or a line that smuggles a field past a proxy
     * that folds differently (RFC 9112 §5.2): refused, as is an empty name. */
    while (i < n && is_tchar(buf[i]))
        i++;
    /* RFC 9112 §5.1: whitespace between name and colon MUST be answered with 400. */
    if (i == 0 || i == n || buf[i] != ':')
        return -1;
    h->name = buf;
    h->name_len = i;
    i++;
    while (i < n && is_ows(buf[i]))
        i++;
    size_t v = i;
    for (; i < n; i++)
        if (!is_value_char(buf[i]))
            return -1;
    while (n > v && is_ows(buf[n - 1]))
        n--;
    h->value = buf + v;
    h->value_len = n - v;
    return 0;
}

ssize_t hr_http_parse_request(const char *buf, size_t len, size_t max_bytes, hr_http_request_t *req,
                              int *status)
{
    size_t cap = req->num_headers;
    req->num_headers = 0;
    *status = 0;

    ssize_t line = parse_request_line(buf, len, req, status);
    if (line == HR_EAGAIN)
        return len > max_bytes ? fail(status, 431) : HR_EAGAIN;
    if (line < 0)
        return line;

    size_t end = find_head_end(buf, len, (size_t)line);
    if (end == 0)
        return len > max_bytes ? fail(status, 431) : HR_EAGAIN;
    if (end > max_bytes)
        return fail(status, 431);

    size_t p = (size_t)line, n = 0;
    for (;;) {
        const char *nl = memchr(buf + p, '\n', end - p);
        size_t llen = (size_t)(nl - (buf + p));
        if (llen == 0 || (llen == 1 && buf[p] == '\r'))
            break;
        if (n == cap)
            return fail(status, 431);
        if (parse_field(buf + p, llen, &req->headers[n]) != 0)
            return fail(status, 400);
        req->num_headers = ++n;
        p += llen + 1;
    }
    return (ssize_t)end;
}

/* Parses the header lines of a head whose first line is buf[0..from) and which ends at
 * buf[end]. Returns the number of fields, -1 for a malformed one, -2 for too many. */
static long parse_fields(const char *buf, size_t from, size_t end, hr_http_header_t *headers,
                         size_t cap)
{
    size_t p = from, n = 0;
    for (;;) {
        const char *nl = memchr(buf + p, '\n', end - p);
        size_t llen = (size_t)(nl - (buf + p));
        if (llen == 0 || (llen == 1 && buf[p] == '\r'))
            return (long)n;
        if (n == cap)
            return -2;
        if (parse_field(buf + p, llen, &headers[n]) != 0)
            return -1;
        n++;
        p += llen + 1;
    }
}

/* ---------------------------------------------------------------- responses */

/*
 * Parses the status line from buf[0..len), which may stop anywhere inside it. Returns its
 * length including the line end, HR_EAGAIN if every byte so far could still begin a
 * valid line, or HR_EPROTO. The reason-phrase is optional and so, leniently, is the SP
 * before an empty one (RFC 9112 §4 requires it; servers omit it).
 */
static ssize_t parse_status_line(const char *buf, size_t len, hr_http_response_t *res)
{
    static const char proto[] = "HTTP/";
    size_t i = 0;
    /* "HTTP/" DIGIT "." DIGIT SP 3DIGIT: 12 fixed-shape bytes. */
    for (; i < 12; i++) {
        if (i == len)
            return HR_EAGAIN;
        char c = buf[i];
        int ok = i < 5    ? c == proto[i]
                 : i == 6 ? c == '.'
                 : i == 8 ? c == ' '
                          : c >= '0' && c <= '9';
        if (!ok)
            return HR_EPROTO;
    }
    res->version_major = buf[5] - '0';
    res->version_minor = buf[7] - '0';
    res->status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
    if (res->status < 100)
        return HR_EPROTO;
    if (i == len)
        return HR_EAGAIN;
    size_t r = i;
    if (buf[i] == ' ') {
        r = ++i;
        while (i < len && is_value_char(buf[i]))
            i++;
    }
    size_t e = i;
    if (i < len && buf[i] == '\r')
        i++;
    if (i == len)
        return HR_EAGAIN;
    if (buf[i] != '\n')
        return HR_EPROTO;
    if (res->version_major != 1)
        return HR_EPROTO;
    res->reason = buf + r;
    res->reason_len = e - r;
    res->status_line_len = e;
    return (ssize_t)(i + 1);
}

ssize_t hr_http_parse_response(const char *buf, size_t len, size_t max_bytes,
                               hr_http_response_t *res)
{
    size_t cap = res->num_headers;
    res->num_headers = 0;

    ssize_t line = parse_status_line(buf, len, res);
    if (line == HR_EAGAIN)
        return len > max_bytes ? HR_EMSGSIZE : HR_EAGAIN;
    if (line < 0)
        return line;

    size_t end = find_head_end(buf, len, (size_t)line);
    if (end == 0)
        return len > max_bytes ? HR_EMSGSIZE : HR_EAGAIN;
    if (end > max_bytes)
        return HR_EMSGSIZE;
    long n = parse_fields(buf, (size_t)line, end, res->headers, cap);
    if (n < 0)
        return n == -2 ? HR_EMSGSIZE : HR_EPROTO;
    res->num_headers = (size_t)n;
    return (ssize_t)end;
}

static const hr_http_header_t *find_in(const hr_http_header_t *headers, size_t count,
                                       const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < count; i++) {
        const hr_http_header_t *h = &headers[i];
        if (h->name_len == n && equal_nocase(h->name, name, n))
            return h;
    }
    return NULL;
}

const hr_http_header_t *hr_http_find_response_header(const hr_http_response_t *res,
                                                     const char *name)
{
    return find_in(res->headers, res->num_headers, name);
}

/* ---------------------------------------------------------------- helpers */

const hr_http_header_t *hr_http_find_header(const hr_http_request_t *req, const char *name)
{
    return find_in(req->headers, req->num_headers, name);
}

size_t hr_http_count_header(const hr_http_request_t *req, const char *name)
{
    size_t n = strlen(name), count = 0;
    for (size_t i = 0; i < req->num_headers; i++) {
        const hr_http_header_t *h = &req->headers[i];
        if (h->name_len == n && equal_nocase(h->name, name, n))
            count++;
    }
    return count;
}

int hr_http_list_has_token(const char *value, size_t len, const char *token)
{
    size_t tlen = strlen(token);
    size_t i = 0;
    while (i < len) {
        while (i < len && (is_ows(value[i]) || value[i] == ','))
            i++;
        size_t s = i;
        while (i < len && value[i] != ',')
            i++;
        size_t e = i;
        while (e > s && is_ows(value[e - 1]))
            e--;
        if (e - s == tlen && tlen > 0 && equal_nocase(value + s, token, tlen))
            return 1;
    }
    return 0;
}
