/* Fuzz target for JWT verification (src/auth/jwt.c) and grants (src/auth/grant.c).
 * The first byte picks the mode: even, the rest is a token verified as received
 * against a fixed HS256 secret (structure, base64url, header, signature checks); odd,
 * the rest is "header.payload" (base64url) that is signed here with the secret first, so
 * that the claims parser (exp, nbf, sub, channels) is reached too. Checks: a token over
 * the size limit is always refused, an accepted grant has a user of 1..255 bytes and
 * only valid patterns, each of which covers itself. Never crashes, never leaks. */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/jwt.h"
#include "broker/channel.h"

static const char secret[] = "fuzz-secret";

static void check_grant(const hr_auth_grant_t *g)
{
    size_t ul = strlen(g->user);
    if (ul == 0 || ul > HR_AUTH_USER_MAX)
        abort();
    for (int l = 0; l < 2; l++) {
        char *const *v = l ? g->publish : g->subscribe;
        size_t n = l ? g->npublish : g->nsubscribe;
        for (size_t i = 0; i < n; i++) {
            size_t len = strlen(v[i]);
            if (!hr_channel_pattern_valid(v[i], len) ||
                !hr_auth_pattern_covers(v[i], len, v[i], len))
                abort();
        }
    }
}

static void b64url(const uint8_t *in, size_t n, char *out, size_t *o)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[(*o)++] = a[(acc >> bits) & 63];
        }
    }
    if (bits)
        out[(*o)++] = a[(acc << (6 - bits)) & 63];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static hr_jwt_keys_t keys;
    static int ready;
    if (!ready) {
        char err[128];
        if (hr_jwt_keys_init(&keys, secret, strlen(secret), NULL, 0, err, sizeof(err)) != 0)
            abort();
        ready = 1;
    }
    if (size < 1 || size > 3 * HR_JWT_MAX)
        return 0;
    bool sign = data[0] & 1;
    data++;
    size--;
    char *tok = malloc(size + 64);
    if (!tok)
        return 0;
    memcpy(tok, data, size);
    size_t len = size;
    if (sign) {
        uint8_t mac[EVP_MAX_MD_SIZE];
        unsigned ml = 0;
        HMAC(EVP_sha256(), secret, (int)strlen(secret), (const uint8_t *)tok, len, mac, &ml);
        tok[len++] = '.';
        b64url(mac, ml, tok, &len);
    }
    hr_auth_grant_t *g = NULL;
    const char *why = NULL;
    int rc = hr_jwt_verify(tok, len, &keys, INT64_C(1700000000), &g, &why);
    if (rc == 0) {
        if (!g || len > HR_JWT_MAX)
            abort();
        check_grant(g);
        hr_auth_grant_free(g);
    } else if (g || !why) {
        abort();
    }
    free(tok);
    return 0;
}
