#ifndef HR_AUTH_JWT_H
#define HR_AUTH_JWT_H

/* JSON Web Tokens (RFC 7519) in the compact JWS serialisation (RFC 7515 §7.1): three
 * base64url parts without padding, header.payload.signature. Accepted algorithms are
 * HS256 (HMAC-SHA256 with the configured secret), RS256 (RSA PKCS#1 v1.5 SHA-256) and
 * ES256 (ECDSA P-256 SHA-256, RFC 7518 §3.4 raw r||s) with the configured public key;
 * "none" and everything else are refused, and an algorithm is only accepted for the key
 * that belongs to it (an HS256 token is never checked against the public key). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/grant.h"

#define HR_JWT_MAX 8192        /* bytes of a token */
#define HR_JWT_NBF_LEEWAY_S 30 /* nbf may be this far ahead of our clock (issuer skew) */

struct evp_pkey_st;

typedef struct hr_jwt_keys {
    uint8_t *secret; /* HS256, or NULL */
    size_t secret_len;
    struct evp_pkey_st *pub; /* RSA (RS256) or EC P-256 (ES256) public key, or NULL */
} hr_jwt_keys_t;

/* Loads the verification keys: the HS256 secret (NULL: none) and a PEM public key file
 * (NULL: none). 0, or HR_EINVAL / HR_ENOMEM with a one-line message in err. */
int hr_jwt_keys_load(hr_jwt_keys_t *k, const char *secret, const char *pem_file, char *err,
                     size_t errlen);
/* As hr_jwt_keys_load, with the public key as PEM text (tests). */
int hr_jwt_keys_init(hr_jwt_keys_t *k, const void *secret, size_t secret_len, const char *pem,
                     size_t pem_len, char *err, size_t errlen);
void hr_jwt_keys_deinit(hr_jwt_keys_t *k);

/*
 * Verifies tok[0..len) against keys at time now (seconds since the epoch): structure,
 * algorithm, signature, then the claims: exp (refused from exp on: no leeway, so the
 * connection can be closed exactly then), nbf (HR_JWT_NBF_LEEWAY_S), sub (1..255 bytes
 * of text, required) and the optional channels claim. Returns 0 with *out (free it with
 * hr_auth_grant_free), HR_EINVAL (malformed, unsupported, bad signature, invalid
 * claims), HR_ESTATE (expired or not yet valid) or HR_ENOMEM; *why says which, as a
 * static string fit for a 401 body or an ERROR frame.
 */
int hr_jwt_verify(const char *tok, size_t len, const hr_jwt_keys_t *keys, int64_t now,
                  hr_auth_grant_t **out, const char **why);

/* Decodes base64url without padding (RFC 4648 §5, RFC 7515 §2): strict, the unused bits
 * of the last character must be zero. dst holds at least len * 3 / 4 bytes. Returns the
 * decoded length, or -1. */
long hr_jwt_b64url_decode(const char *src, size_t len, uint8_t *dst);

#endif
