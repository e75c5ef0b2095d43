/* Fuzzes the web pages' path resolver (hr_web_resolve) and the admin feed's key check
 * (hr_admin_check_key). Input: byte 0 picks what is fuzzed (even: the path; odd: the
 * handshake, the rest split at '\n' into the key, the request target and a
 * Sec-WebSocket-Protocol value), raw bytes with NULs and control bytes included.
 *
 * Invariants beyond "no crash": a resolved name is one segment below web/ (or below
 * vendor/) with no "..", no '/' elsewhere, no leading dot, and it fits the buffer; the
 * check answers 0 or 401 only, always 0 without a key, and 0 when the key is appended
 * to the protocol list as herald-key.<key> (for a key of token characters). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/web.h"
#include "herald/error.h"
#include "http/http_parse.h"

/* libFuzzer's entry point; declared here because no header of ours owns it. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_path(const char *p, size_t n)
{
    char out[128];
    memset(out, 'x', sizeof(out));
    int rc = hr_web_resolve(p, n, out, sizeof(out));
    if (rc != 0 && rc != HR_ENOENT && rc != HR_EINVAL)
        abort();
    if (rc != 0)
        return;
    size_t len = strnlen(out, sizeof(out));
    if (len == sizeof(out) || len == 0)
        abort();
    const char *name = strncmp(out, "vendor/", 7) == 0 ? out + 7 : out;
    if (name[0] == '.' || strchr(name, '/') || strstr(out, "..") || strchr(out, '\\'))
        abort();
}

static bool token_chars(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '.' || s[i] == '_'))
            return false;
    return true;
}

static void fuzz_check(const char *p, size_t n)
{
    const char *parts[3] = {"", "", ""};
    size_t lens[3] = {0, 0, 0};
    for (int i = 0; i < 3; i++) {
        const char *nl = i < 2 ? memchr(p, '\n', n) : NULL;
        parts[i] = p;
        lens[i] = nl ? (size_t)(nl - p) : n;
        if (!nl) {
            for (int j = i + 1; j < 3; j++)
                parts[j] = p + n;
            break;
        }
        n -= lens[i] + 1;
        p = nl + 1;
    }
    char *key = strndup(parts[0], lens[0]);
    if (!key)
        return;
    hr_http_header_t h = {"Sec-WebSocket-Protocol", 22, parts[2], lens[2]};
    hr_http_request_t req = {.method = "GET",
                             .method_len = 3,
                             .target = parts[1],
                             .target_len = lens[1],
                             .headers = &h,
                             .num_headers = 1};
    int rc = hr_admin_check_key(key, &req);
    if (rc != 0 && rc != 401)
        abort();
    if (!*key && rc != 0)
        abort();
    size_t kl = strlen(key);
    if (kl && kl == lens[0] && kl < 200 && token_chars(key, kl)) {
        char proto[512];
        size_t pl = lens[2] < 250 ? lens[2] : 0;
        memcpy(proto, parts[2], pl);
        memcpy(proto + pl, ", herald-key.", 13);
        memcpy(proto + pl + 13, key, kl);
        h.value = proto;
        h.value_len = pl + 13 + kl;
        if (hr_admin_check_key(key, &req) != 0)
            abort();
    }
    free(key);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] & 1)
        fuzz_check((const char *)data + 1, size - 1);
    else
        fuzz_path((const char *)data + 1, size - 1);
    return 0;
}
