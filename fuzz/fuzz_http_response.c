/* Fuzzes hr_http_parse_response (the client's view of a handshake answer) with a small
 * header array and several size limits. Invariants beyond "no crash": the result never
 * claims more bytes than it was given or than the limit, the status is three digits,
 * the status line, reason and fields point inside the head, field names are tokens, and
 * a head re-parsed on its own (without the frames behind it) gives the same answer. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "herald/error.h"
#include "http/http_parse.h"

#define MAX_HEADERS 8

/* libFuzzer's entry point; declared here because no header of ours owns it. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int is_tchar(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static void check_within(const char *base, size_t size, const char *p, size_t n)
{
    if (p < base || n > size || p + n > base + size)
        abort();
}

static ssize_t parse_once(const char *buf, size_t size, size_t max_bytes, hr_http_response_t *res,
                          hr_http_header_t *headers)
{
    memset(res, 0, sizeof(*res));
    res->headers = headers;
    res->num_headers = MAX_HEADERS;
    return hr_http_parse_response(buf, size, max_bytes, res);
}

static void run(const char *buf, size_t size, size_t max_bytes)
{
    hr_http_header_t headers[MAX_HEADERS], again_headers[MAX_HEADERS];
    hr_http_response_t res, again;

    ssize_t rc = parse_once(buf, size, max_bytes, &res, headers);
    if (rc == HR_EAGAIN)
        return;
    if (rc < 0) {
        if (rc != HR_EPROTO && rc != HR_EMSGSIZE)
            abort();
        return;
    }
    if ((size_t)rc > size || (size_t)rc > max_bytes || res.num_headers > MAX_HEADERS)
        abort();
    if (res.status < 100 || res.status > 999 || res.version_major != 1)
        abort();
    if (res.status_line_len < 12 || res.status_line_len >= (size_t)rc)
        abort();
    check_within(buf, res.status_line_len, res.reason, res.reason_len);
    for (size_t i = 0; i < res.num_headers; i++) {
        const hr_http_header_t *h = &res.headers[i];
        check_within(buf, (size_t)rc, h->name, h->name_len);
        check_within(buf, (size_t)rc, h->value, h->value_len);
        if (h->name_len == 0)
            abort();
        for (size_t k = 0; k < h->name_len; k++)
            if (!is_tchar(h->name[k]))
                abort();
        if (hr_http_find_response_header(&res, "Upgrade") == NULL && h->name_len == 7 &&
            strncmp(h->name, "Upgrade", 7) == 0)
            abort();
    }

    if (parse_once(buf, (size_t)rc, max_bytes, &again, again_headers) != rc ||
        again.num_headers != res.num_headers || again.status != res.status ||
        again.reason_len != res.reason_len || again.status_line_len != res.status_line_len)
        abort();
    for (size_t i = 0; i < res.num_headers; i++)
        if (again.headers[i].name != res.headers[i].name ||
            again.headers[i].value_len != res.headers[i].value_len)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    static const size_t limits[] = {16, 64, 256, 16384};
    for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++)
        run(buf, size, limits[i]);
    return 0;
}
