/* JWT verification (see jwt.h): RFC 7515 compact JWS, RFC 7518 §3.2-3.4 algorithms,
 * RFC 7519 claims. The order is the safe one: structure and size first, then the
 * header, then the signature over the exact bytes received, and only then the payload
 * is parsed: claims of an unsigned or wrongly signed token are never looked at.
 *
 * Algorithm confusion (RFC 8725 §2.1, §3.1) is ruled out by tying each algorithm to its
 * key: HS256 needs the configured secret, RS256 an RSA public key, ES256 an EC P-256
 * public key; a public key is never used as an HMAC secret. Not supported, on purpose:
 * "none", JWE (five parts), unencoded payloads and any "crit" header extension. */
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <string.h>

#include "auth/jwt.h"
#include "base/alloc.h"
#include "herald/error.h"

enum { ALG_HS256 = 1, ALG_RS256, ALG_ES256 };

/* ---------------------------------------------------------------- keys */

static int key_err(char *err, size_t errlen, const char *msg)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", msg);
    return HR_EINVAL;
}

/* Only keys an algorithm here can use: RSA of 2048 bits or more, or EC P-256. */
static int check_pub(EVP_PKEY *k, char *err, size_t errlen)
{
    if (EVP_PKEY_is_a(k, "RSA")) {
        if (EVP_PKEY_get_bits(k) < 2048)
            return key_err(err, errlen, "--jwt-public-key: RSA keys must have 2048 bits or more");
        return 0;
    }
    char group[64];
    size_t glen = 0;
    if (EVP_PKEY_is_a(k, "EC") &&
        EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                       &glen) &&
        strcmp(group, "prime256v1") == 0)
        return 0;
    return key_err(err, errlen,
                   "--jwt-public-key: the key must be RSA (RS256) or EC P-256 (ES256)");
}

int hr_jwt_keys_init(hr_jwt_keys_t *k, const void *secret, size_t secret_len, const char *pem,
                     size_t pem_len, char *err, size_t errlen)
{
    memset(k, 0, sizeof(*k));
    if (err && errlen)
        err[0] = 0;
    if (secret) {
        if (secret_len == 0)
            return key_err(err, errlen, "--jwt-secret: empty secret");
        k->secret = hr_malloc(secret_len);
        if (!k->secret) {
            key_err(err, errlen, "out of memory");
            return HR_ENOMEM;
        }
        memcpy(k->secret, secret, secret_len);
        k->secret_len = secret_len;
    }
    if (pem) {
        BIO *bio = BIO_new_mem_buf(pem, (int)pem_len);
        EVP_PKEY *pk = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
        BIO_free(bio);
        int rc =
            pk ? check_pub(pk, err, errlen)
               : key_err(err, errlen, "--jwt-public-key: not a PEM public key (BEGIN PUBLIC KEY)");
        if (rc) {
            EVP_PKEY_free(pk);
            hr_jwt_keys_deinit(k);
            return rc;
        }
        k->pub = pk;
    }
    return 0;
}

int hr_jwt_keys_load(hr_jwt_keys_t *k, const char *secret, const char *pem_file, char *err,
                     size_t errlen)
{
    if (!pem_file)
        return hr_jwt_keys_init(k, secret, secret ? strlen(secret) : 0, NULL, 0, err, errlen);
    memset(k, 0, sizeof(*k));
    FILE *f = fopen(pem_file, "rb");
    if (!f) {
        if (err && errlen)
            snprintf(err, errlen, "--jwt-public-key: cannot open %s", pem_file);
        return HR_EINVAL;
    }
    char buf[16384];
    size_t n = fread(buf, 1, sizeof(buf), f);
    bool big = !feof(f);
    fclose(f);
    if (big)
        return key_err(err, errlen, "--jwt-public-key: file larger than 16 KiB");
    return hr_jwt_keys_init(k, secret, secret ? strlen(secret) : 0, buf, n, err, errlen);
}

void hr_jwt_keys_deinit(hr_jwt_keys_t *k)
{
    if (k->secret) {
        OPENSSL_cleanse(k->secret, k->secret_len);
        hr_free(k->secret);
    }
    EVP_PKEY_free(k->pub);
    memset(k, 0, sizeof(*k));
}

/* ---------------------------------------------------------------- base64url */

static const int8_t b64[256] = {
    ['A'] = 1,  ['B'] = 2,  ['C'] = 3,  ['D'] = 4,  ['E'] = 5,  ['F'] = 6,  ['G'] = 7,  ['H'] = 8,
    ['I'] = 9,  ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16,
    ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,
    ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32,
    ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36, ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40,
    ['o'] = 41, ['p'] = 42, ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48,
    ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56,
    ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['-'] = 63, ['_'] = 64,
}; /* value + 1; 0: not in the alphabet */

long hr_jwt_b64url_decode(const char *src, size_t len, uint8_t *dst)
{
    if (len % 4 == 1)
        return -1;
    uint32_t acc = 0;
    int bits = 0;
    long n = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64[(unsigned char)src[i]];
        if (!v)
            return -1;
        acc = (acc << 6) | (uint32_t)(v - 1);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            dst[n++] = (uint8_t)(acc >> bits);
        }
    }
    if (acc & ((1u << bits) - 1)) /* non-canonical: leftover bits must be zero */
        return -1;
    return n;
}

/* ---------------------------------------------------------------- signatures */

static bool verify_hs256(const hr_jwt_keys_t *k, const char *in, size_t len, const uint8_t *sig,
                         size_t slen)
{
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned mlen = 0;
    if (slen != 32 ||
        !HMAC(EVP_sha256(), k->secret, (int)k->secret_len, (const uint8_t *)in, len, mac, &mlen) ||
        mlen != 32)
        return false;
    return CRYPTO_memcmp(mac, sig, 32) == 0;
}

static bool verify_digest(EVP_PKEY *pub, const char *in, size_t len, const uint8_t *sig,
                          size_t slen)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bool ok = md && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pub) == 1 &&
              EVP_DigestVerify(md, sig, slen, (const uint8_t *)in, len) == 1;
    EVP_MD_CTX_free(md);
    return ok;
}

/* RFC 7518 §3.4: the JWS signature is r || s, 32 bytes each; OpenSSL wants DER. */
static bool verify_es256(EVP_PKEY *pub, const char *in, size_t len, const uint8_t *sig, size_t slen)
{
    if (slen != 64)
        return false;
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, 32, NULL), *s = BN_bin2bn(sig + 32, 32, NULL);
    if (!es || !r || !s || !ECDSA_SIG_set0(es, r, s)) {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(es);
        return false;
    }
    uint8_t *der = NULL;
    int dlen = i2d_ECDSA_SIG(es, &der);
    ECDSA_SIG_free(es);
    bool ok = dlen > 0 && verify_digest(pub, in, len, der, (size_t)dlen);
    OPENSSL_free(der);
    return ok;
}

/* ---------------------------------------------------------------- tokens */

static int parse_alg(const uint8_t *h, size_t hlen, const char **why)
{
    json_error_t e;
    json_t *o = json_loadb((const char *)h, hlen, JSON_REJECT_DUPLICATES, &e);
    int alg = 0;
    *why = "malformed token: header is not a JSON object";
    if (json_is_object(o)) {
        json_t *a = json_object_get(o, "alg"), *t = json_object_get(o, "typ");
        *why = "unsupported token: alg must be HS256, RS256 or ES256";
        if (t && !json_is_string(t))
            *why = "malformed token: typ must be a string";
        else if (json_object_get(o, "crit"))
            *why = "unsupported token: crit header extensions";
        else if (json_is_string(a) && strcmp(json_string_value(a), "HS256") == 0)
            alg = ALG_HS256;
        else if (json_is_string(a) && strcmp(json_string_value(a), "RS256") == 0)
            alg = ALG_RS256;
        else if (json_is_string(a) && strcmp(json_string_value(a), "ES256") == 0)
            alg = ALG_ES256;
    }
    json_decref(o);
    return alg;
}

/* A NumericDate claim (RFC 7519 §2): absent (0, true), or a number, truncated. */
static bool numeric_date(const json_t *o, const char *name, int64_t *out)
{
    const json_t *v = json_object_get(o, name);
    *out = 0;
    if (!v)
        return true;
    if (!json_is_number(v))
        return false;
    double d = json_number_value(v);
    if (!(d >= 1 && d < 1e15)) /* also NaN */
        return false;
    *out = (int64_t)d;
    return true;
}

int hr_jwt_verify(const char *tok, size_t len, const hr_jwt_keys_t *keys, int64_t now,
                  hr_auth_grant_t **out, const char **why)
{
    *out = NULL;
    if (len > HR_JWT_MAX) {
        *why = "token too large";
        return HR_EINVAL;
    }
    const char *d1 = tok ? memchr(tok, '.', len) : NULL;
    const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok)) : NULL;
    if (!d1 || !d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - tok)) || d1 == tok ||
        d2 == d1 + 1 || d2 + 1 == tok + len) {
        *why = "malformed token: expected three non-empty base64url parts";
        return HR_EINVAL;
    }
    size_t hlen = (size_t)(d1 - tok), plen = (size_t)(d2 - d1 - 1),
           slen = len - (size_t)(d2 + 1 - tok);
    uint8_t buf[HR_JWT_MAX];
    long hn = hr_jwt_b64url_decode(tok, hlen, buf);
    if (hn < 0) {
        *why = "malformed token: header is not base64url";
        return HR_EINVAL;
    }
    int alg = parse_alg(buf, (size_t)hn, why);
    if (!alg)
        return HR_EINVAL;
    uint8_t sig[HR_JWT_MAX * 3 / 4 + 1];
    long sn = hr_jwt_b64url_decode(d2 + 1, slen, sig);
    if (sn < 0) {
        *why = "malformed token: signature is not base64url";
        return HR_EINVAL;
    }
    size_t signed_len = (size_t)(d2 - tok);
    bool ok;
    switch (alg) {
    case ALG_HS256:
        *why = "HS256 tokens are not accepted (no --jwt-secret)";
        if (!keys->secret)
            return HR_EINVAL;
        ok = verify_hs256(keys, tok, signed_len, sig, (size_t)sn);
        break;
    case ALG_RS256:
        *why = "RS256 tokens are not accepted (no RSA --jwt-public-key)";
        if (!keys->pub || !EVP_PKEY_is_a(keys->pub, "RSA"))
            return HR_EINVAL;
        ok = verify_digest(keys->pub, tok, signed_len, sig, (size_t)sn);
        break;
    default:
        *why = "ES256 tokens are not accepted (no EC P-256 --jwt-public-key)";
        if (!keys->pub || !EVP_PKEY_is_a(keys->pub, "EC"))
            return HR_EINVAL;
        ok = verify_es256(keys->pub, tok, signed_len, sig, (size_t)sn);
        break;
    }
    if (!ok) {
        *why = "invalid token signature";
        return HR_EINVAL;
    }
    long pn = hr_jwt_b64url_decode(d1 + 1, plen, buf);
    json_error_t e;
    json_t *claims =
        pn < 0 ? NULL : json_loadb((const char *)buf, (size_t)pn, JSON_REJECT_DUPLICATES, &e);
    int64_t exp, nbf;
    int rc = HR_EINVAL;
    if (!json_is_object(claims)) {
        *why = "malformed token: payload is not a JSON object";
    } else if (!numeric_date(claims, "exp", &exp) || !numeric_date(claims, "nbf", &nbf)) {
        *why = "invalid token: exp and nbf must be numeric dates";
    } else if (exp && now >= exp) {
        *why = "token expired";
        rc = HR_ESTATE;
    } else if (nbf && now + HR_JWT_NBF_LEEWAY_S < nbf) {
        *why = "token not yet valid";
        rc = HR_ESTATE;
    } else {
        rc = hr_auth_grant_from_json(claims, "sub", exp, out, why);
    }
    json_decref(claims);
    return rc;
}
