/* WebSocket opening handshake, server side (RFC 6455 §4.2.1 reading the client's
 * request, §4.2.2 the accept key, §10.2 origin policy, §11.3.4 subprotocol choice).
 * Everything here is a pure function of a parsed request; the socket, the response
 * bytes (http_response.c) and extension negotiation (ws/deflate.c) live elsewhere.
 * It does not look at the request-target: routing is the router's job. */
#include <string.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "http/http_upgrade.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool equal_nocase(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen)
        return false;
    for (size_t i = 0; i < alen; i++)
        if (lower(a[i]) != lower(b[i]))
            return false;
    return true;
}

static int refuse(hr_http_upgrade_t *up, int status, const char *reason)
{
    up->status = status;
    up->reason = reason;
    return -1;
}

/* True if any header called name lists token: RFC 9110 §5.3 makes repeated list fields
 * equal to one comma-joined field, so "Connection: keep-alive" followed by
 * "Connection: Upgrade" is an upgrade. */
static bool any_has_token(const hr_http_request_t *req, const char *name, const char *token)
{
    size_t nlen = strlen(name);
    for (size_t i = 0; i < req->num_headers; i++) {
        const hr_http_header_t *h = &req->headers[i];
        if (equal_nocase(h->name, h->name_len, name, nlen) &&
            hr_http_list_has_token(h->value, h->value_len, token))
            return true;
    }
    return false;
}

static bool is_b64(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

/* RFC 6455 §4.1: the key is a base64-encoded 16-byte nonce, hence always 22 alphabet
 * characters and "==". Anything else is a client we would not interoperate with. */
static bool check_key(const char *k, size_t n)
{
    if (n != 24 || k[22] != '=' || k[23] != '=')
        return false;
    for (size_t i = 0; i < 22; i++)
        if (!is_b64(k[i]))
            return false;
    unsigned char raw[18];
    /* EVP_DecodeBlock ignores padding when counting, so 24 chars decode to 18 bytes of
     * which the last two are the padding's zeros. */
    return EVP_DecodeBlock(raw, (const unsigned char *)k, 24) == 18;
}

int hr_http_upgrade_check(const hr_http_request_t *req, hr_http_upgrade_t *up)
{
    memset(up, 0, sizeof(*up));

    if (req->method_len != 3 || memcmp(req->method, "GET", 3) != 0)
        return refuse(up, 405, "WebSocket upgrade requires GET");
    /* RFC 6455 §4.1 asks for HTTP/1.1 or higher; 1.x minors above 1 are 1.1 to us. */
    if (req->version_major != 1 || req->version_minor < 1)
        return refuse(up, 400, "WebSocket upgrade requires HTTP/1.1");

    const hr_http_header_t *host = hr_http_find_header(req, "Host");
    if (!host || hr_http_count_header(req, "Host") != 1)
        return refuse(up, 400, "missing or duplicate Host header");
    if (!any_has_token(req, "Upgrade", "websocket"))
        return refuse(up, 426, "missing Upgrade: websocket");
    if (!any_has_token(req, "Connection", "upgrade"))
        return refuse(up, 400, "missing Connection: Upgrade");

    /* RFC 6455 §4.4: a version we do not speak gets 426 and the list we do. */
    const hr_http_header_t *ver = hr_http_find_header(req, "Sec-WebSocket-Version");
    if (!ver || hr_http_count_header(req, "Sec-WebSocket-Version") != 1 || ver->value_len != 2 ||
        memcmp(ver->value, "13", 2) != 0)
        return refuse(up, 426, "unsupported Sec-WebSocket-Version (only 13)");

    const hr_http_header_t *key = hr_http_find_header(req, "Sec-WebSocket-Key");
    if (!key || hr_http_count_header(req, "Sec-WebSocket-Key") != 1 ||
        !check_key(key->value, key->value_len))
        return refuse(up, 400, "missing or invalid Sec-WebSocket-Key");

    const hr_http_header_t *origin = hr_http_find_header(req, "Origin");
    up->key = key->value;
    up->key_len = key->value_len;
    up->origin = origin ? origin->value : NULL;
    up->origin_len = origin ? origin->value_len : 0;
    up->host = host->value;
    up->host_len = host->value_len;
    return 0;
}

void hr_http_accept_key(const char *key, size_t key_len, char out[29])
{
    unsigned char digest[SHA_DIGEST_LENGTH];
    char joined[128];
    size_t glen = sizeof(WS_GUID) - 1;

    out[0] = '\0';
    if (key_len <= sizeof(joined) - glen) {
        memcpy(joined, key, key_len);
        memcpy(joined + key_len, WS_GUID, glen);
        SHA1((const unsigned char *)joined, key_len + glen, digest);
    } else {
        /* Only reachable with an unvalidated key; the streaming API costs an allocation,
         * and if that fails the empty accept makes the client refuse the handshake. */
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) &&
                 EVP_DigestUpdate(ctx, key, key_len) && EVP_DigestUpdate(ctx, WS_GUID, glen) &&
                 EVP_DigestFinal_ex(ctx, digest, NULL);
        EVP_MD_CTX_free(ctx);
        if (!ok)
            return;
    }
    EVP_EncodeBlock((unsigned char *)out, digest, SHA_DIGEST_LENGTH);
}

/* ---- origin policy ---- */

/* Case-insensitive glob where '*' matches any run, including an empty one. Greedy with
 * one backtrack point: O(len(p) * len(s)) at worst, and patterns are operator-written. */
static bool glob(const char *p, size_t plen, const char *s, size_t slen)
{
    size_t pi = 0, si = 0, star = (size_t)-1, mark = 0;
    while (si < slen) {
        if (pi < plen && p[pi] == '*') {
            star = pi++;
            mark = si;
        } else if (pi < plen && lower(p[pi]) == lower(s[si])) {
            pi++;
            si++;
        } else if (star != (size_t)-1) {
            pi = star + 1;
            si = ++mark;
        } else {
            return false;
        }
    }
    while (pi < plen && p[pi] == '*')
        pi++;
    return pi == plen;
}

typedef struct origin_parts {
    const char *scheme;
    size_t scheme_len;
    const char *hostport; /* host[:port] */
    size_t hostport_len;
} origin_parts_t;

/* RFC 6454 §6.2 serialises an origin as scheme "://" host [":" port], nothing more.
 * A path, userinfo or empty host is refused rather than guessed at, so that
 * "https://good.example@evil.example" can never match a pattern for good.example. */
static bool split_origin(const char *o, size_t n, origin_parts_t *out)
{
    const char *sep = NULL;
    for (size_t i = 0; i + 3 <= n; i++)
        if (o[i] == ':' && o[i + 1] == '/' && o[i + 2] == '/') {
            sep = o + i;
            break;
        }
    if (!sep || sep == o)
        return false;
    out->scheme = o;
    out->scheme_len = (size_t)(sep - o);
    out->hostport = sep + 3;
    out->hostport_len = n - out->scheme_len - 3;
    if (out->hostport_len == 0)
        return false;
    for (size_t i = 0; i < out->hostport_len; i++) {
        char c = out->hostport[i];
        if (c == '/' || c == '@' || c == '?' || c == '#' || (unsigned char)c <= 0x20)
            return false;
    }
    return true;
}

/* Splits host[:port], minding IPv6 literals. Returns the port as a number, -1 when
 * absent, or -2 when malformed. */
static long split_port(const char *hp, size_t n, size_t *host_len)
{
    size_t colon = n;
    if (n > 0 && hp[0] == '[') {
        const char *rb = memchr(hp, ']', n);
        if (!rb)
            return -2;
        size_t after = (size_t)(rb - hp) + 1;
        if (after < n && hp[after] != ':')
            return -2;
        colon = after;
    } else {
        const char *c = memchr(hp, ':', n);
        if (c)
            colon = (size_t)(c - hp);
    }
    *host_len = colon;
    if (colon == n)
        return -1;
    if (colon + 1 == n || n - colon - 1 > 5)
        return -2;
    long port = 0;
    for (size_t i = colon + 1; i < n; i++) {
        if (hp[i] < '0' || hp[i] > '9')
            return -2;
        port = port * 10 + (hp[i] - '0');
    }
    return port;
}

static long default_port(const char *scheme, size_t n)
{
    if (equal_nocase(scheme, n, "http", 4) || equal_nocase(scheme, n, "ws", 2))
        return 80;
    if (equal_nocase(scheme, n, "https", 5) || equal_nocase(scheme, n, "wss", 3))
        return 443;
    return -1;
}

/* Default policy: same host, and the same port once defaults are filled in. The Host
 * header carries no scheme, so a Host without a port stands for the origin scheme's
 * default port: "http://a" matches "a" and "a:80", "https://a" matches "a" and "a:443". */
static bool same_host(const origin_parts_t *o, const char *host, size_t host_len)
{
    size_t oh, hh;
    long oport = split_port(o->hostport, o->hostport_len, &oh);
    long hport = split_port(host, host_len, &hh);
    if (oport == -2 || hport == -2 || oh == 0)
        return false;
    if (!equal_nocase(o->hostport, oh, host, hh))
        return false;
    long def = default_port(o->scheme, o->scheme_len);
    if (oport == -1)
        oport = def;
    if (hport == -1)
        hport = def;
    return oport == hport;
}

static bool has_scheme_sep(const char *p, size_t n)
{
    for (size_t i = 0; i + 3 <= n; i++)
        if (p[i] == ':' && p[i + 1] == '/' && p[i + 2] == '/')
            return true;
    return false;
}

bool hr_http_origin_allowed(const char *origin, size_t origin_len, const char *host,
                            size_t host_len, const char *const *patterns, size_t n)
{
    if (!origin)
        return true;
    origin_parts_t parts = {0};
    bool parsed = split_origin(origin, origin_len, &parts);

    if (n == 0)
        return parsed && host && same_host(&parts, host, host_len);

    /* RFC 6454 §7.3: "null" is sent by sandboxed frames and file: pages, and any of
     * them may claim it, so only an operator who names it (or allows all) accepts it. */
    bool is_null = equal_nocase(origin, origin_len, "null", 4);
    for (size_t i = 0; i < n; i++) {
        const char *p = patterns[i];
        size_t plen = strlen(p);
        if (plen == 1 && p[0] == '*')
            return true;
        if (is_null) {
            if (equal_nocase(p, plen, "null", 4))
                return true;
            continue;
        }
        if (!parsed)
            continue;
        if (has_scheme_sep(p, plen)) {
            if (glob(p, plen, origin, origin_len))
                return true;
        } else if (glob(p, plen, parts.hostport, parts.hostport_len)) {
            return true;
        }
    }
    return false;
}

/* ---- subprotocols ---- */

int hr_http_choose_subprotocol(const hr_http_request_t *req, const char *const *supported, size_t n)
{
    /* Server preference first: the client's order is a hint RFC 6455 §4.2.2 lets us
     * ignore, and operators list protocols in the order they want them used. */
    for (size_t i = 0; i < n; i++)
        if (any_has_token(req, "Sec-WebSocket-Protocol", supported[i]))
            return (int)i;
    return -1;
}
