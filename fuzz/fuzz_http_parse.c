/* Fuzzes hr_http_parse_request with a small header array and several size limits, and
 * sends every head it accepts through the upgrade check, the origin policy, the
 * subprotocol choice and the accept key. Invariants beyond "no crash": the result never
 * claims more bytes than it was given, accepted fields point inside the input with
 * non-empty token names, and a head re-parsed on its own gives the same answer. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "herald/error.h"
#include "http/http_parse.h"
#include "http/http_upgrade.h"

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

static void exercise(const hr_http_request_t *req)
{
    static const char *const none[1] = {NULL};
    static const char *const pats[] = {"*.example.com", "https://*.test", "null"};
    static const char *const protos[] = {"chat", "stomp", "json"};
    hr_http_upgrade_t up;

    if (hr_http_upgrade_check(req, &up) == 0) {
        char accept[29];
        hr_http_accept_key(up.key, up.key_len, accept);
        if (strlen(accept) != 28)
            abort();
        hr_http_origin_allowed(up.origin, up.origin_len, up.host, up.host_len, none, 0);
        hr_http_origin_allowed(up.origin, up.origin_len, up.host, up.host_len, pats, 3);
    } else if (up.status == 0 || up.reason == NULL) {
        abort();
    }
    /* The origin code must survive any value, not only the validated ones. */
    const hr_http_header_t *o = hr_http_find_header(req, "Origin");
    const hr_http_header_t *h = hr_http_find_header(req, "Host");
    if (o)
        hr_http_origin_allowed(o->value, o->value_len, h ? h->value : "", h ? h->value_len : 0,
                               pats, 3);
    int sp = hr_http_choose_subprotocol(req, protos, 3);
    if (sp < -1 || sp > 2)
        abort();
}

static ssize_t parse_once(const char *buf, size_t size, size_t max_bytes, hr_http_request_t *req,
                          hr_http_header_t *headers, int *status)
{
    memset(req, 0, sizeof(*req));
    req->headers = headers;
    req->num_headers = MAX_HEADERS;
    return hr_http_parse_request(buf, size, max_bytes, req, status);
}

static void run(const char *buf, size_t size, size_t max_bytes)
{
    hr_http_header_t headers[MAX_HEADERS], again_headers[MAX_HEADERS];
    hr_http_request_t req, again;
    int status = 0, again_status = 0;

    ssize_t rc = parse_once(buf, size, max_bytes, &req, headers, &status);
    if (rc == HR_EAGAIN)
        return;
    if (rc < 0) {
        if (status != 400 && status != 431 && status != 505)
            abort();
        return;
    }
    if ((size_t)rc > size || (size_t)rc > max_bytes || req.num_headers > MAX_HEADERS)
        abort();
    check_within(buf, (size_t)rc, req.method, req.method_len);
    check_within(buf, (size_t)rc, req.target, req.target_len);
    for (size_t i = 0; i < req.num_headers; i++) {
        const hr_http_header_t *h = &req.headers[i];
        check_within(buf, (size_t)rc, h->name, h->name_len);
        check_within(buf, (size_t)rc, h->value, h->value_len);
        if (h->name_len == 0)
            abort();
        for (size_t k = 0; k < h->name_len; k++)
            if (!is_tchar(h->name[k]))
                abort();
    }

    /* Stateless parsing means the head alone must parse exactly as it did with
     * pipelined bytes behind it. */
    if (parse_once(buf, (size_t)rc, max_bytes, &again, again_headers, &again_status) != rc ||
        again.num_headers != req.num_headers || again.method_len != req.method_len ||
        again.target_len != req.target_len || again.version_minor != req.version_minor)
        abort();
    for (size_t i = 0; i < req.num_headers; i++)
        if (again.headers[i].name != req.headers[i].name ||
            again.headers[i].value_len != req.headers[i].value_len)
            abort();

    exercise(&req);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    static const size_t limits[] = {16, 64, 256, 8192};
    for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++)
        run(buf, size, limits[i]);
    return 0;
}
