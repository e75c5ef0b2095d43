/* Unit tests for JWT verification (src/auth/jwt.c) and grants (src/auth/grant.c). Every
 * token is made here with OpenSSL: HS256 with HMAC, RS256 and ES256 with keys generated
 * at start-up (ES256 signatures converted from DER to the JOSE r||s form). Covered: the
 * three algorithms, exp/nbf, bad signatures, "none", algorithm confusion (an HS256 token
 * whose secret is the public key PEM), malformed base64url and JSON, size, and the
 * channel permission rules (pattern cover and overlap, private/server namespaces). */
#include "test_util.h"

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <string.h>

#include "auth/jwt.h"
#include "herald/error.h"

#define NOW INT64_C(1700000000)
static const char secret[] = "test-secret-of-some-length-0123456789";

static EVP_PKEY *rsa_key, *ec_key;
static char rsa_pem[4096], ec_pem[1024];

/* ---------------------------------------------------------------- token making */

static size_t b64url(const uint8_t *in, size_t n, char *out)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = a[(acc >> bits) & 63];
        }
    }
    if (bits)
        out[o++] = a[(acc << (6 - bits)) & 63];
    out[o] = 0;
    return o;
}

static size_t sign(const char *alg, const char *in, size_t len, uint8_t *sig)
{
    if (strcmp(alg, "HS256") == 0) {
        unsigned n = 0;
        HMAC(EVP_sha256(), secret, (int)strlen(secret), (const uint8_t *)in, len, sig, &n);
        return n;
    }
    EVP_PKEY *k = strcmp(alg, "RS256") == 0 ? rsa_key : ec_key;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    uint8_t der[1024];
    size_t dl = sizeof(der);
    assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k), 1);
    assert_int_equal(EVP_DigestSign(md, der, &dl, (const uint8_t *)in, len), 1);
    EVP_MD_CTX_free(md);
    if (k == rsa_key) {
        memcpy(sig, der, dl);
        return dl;
    }
    const uint8_t *p = der;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)dl);
    assert_non_null(es);
    BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32);
    ECDSA_SIG_free(es);
    return 64;
}

/* header JSON and claims JSON -> a signed token (alg taken from the header). */
static char *make_with(const char *header, const char *claims, const char *alg)
{
    static char tok[16384];
    size_t n = b64url((const uint8_t *)header, strlen(header), tok);
    tok[n++] = '.';
    n += b64url((const uint8_t *)claims, strlen(claims), tok + n);
    uint8_t sig[512];
    size_t sl = alg ? sign(alg, tok, n, sig) : 0;
    tok[n++] = '.';
    n += b64url(sig, sl, tok + n);
    return tok;
}

static char *make(const char *alg, const char *claims)
{
    char h[64];
    snprintf(h, sizeof(h), "{\"alg\":\"%s\",\"typ\":\"JWT\"}", alg);
    return make_with(h, claims, alg);
}

static hr_jwt_keys_t keys_all(void)
{
    hr_jwt_keys_t k;
    char err[200];
    assert_int_equal(hr_jwt_keys_init(&k, secret, strlen(secret), NULL, 0, err, sizeof(err)), 0);
    return k;
}

static int verify_with(hr_jwt_keys_t *k, const char *tok, hr_auth_grant_t **g, const char **why)
{
    return hr_jwt_verify(tok, strlen(tok), k, NOW, g, why);
}

/* Verifies with the secret, or with pem as the public key. */
static int verify(const char *pem, const char *tok, hr_auth_grant_t **g, const char **why)
{
    hr_jwt_keys_t k;
    char err[200];
    if (pem)
        assert_int_equal(hr_jwt_keys_init(&k, NULL, 0, pem, strlen(pem), err, sizeof(err)), 0);
    else
        k = keys_all();
    int rc = verify_with(&k, tok, g, why);
    hr_jwt_keys_deinit(&k);
    return rc;
}

static void expect_ok(const char *pem, const char *tok, const char *user)
{
    hr_auth_grant_t *g = NULL;
    const char *why = "";
    int rc = verify(pem, tok, &g, &why);
    if (rc)
        fail_msg("refused: %s", why);
    assert_string_equal(g->user, user);
    hr_auth_grant_free(g);
}

static void expect_refused(const char *pem, const char *tok, int code, const char *why_part)
{
    hr_auth_grant_t *g = NULL;
    const char *why = "";
    assert_int_equal(verify(pem, tok, &g, &why), code);
    assert_null(g);
    if (!strstr(why, why_part))
        fail_msg("why \"%s\" lacks \"%s\"", why, why_part);
}

static int setup(void **state)
{
    (void)state;
    rsa_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    ec_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (!rsa_key || !ec_key)
        return -1;
    char *bufs[2] = {rsa_pem, ec_pem};
    EVP_PKEY *ks[2] = {rsa_key, ec_key};
    size_t caps[2] = {sizeof(rsa_pem), sizeof(ec_pem)};
    for (int i = 0; i < 2; i++) {
        BIO *b = BIO_new(BIO_s_mem());
        PEM_write_bio_PUBKEY(b, ks[i]);
        int n = BIO_read(b, bufs[i], (int)caps[i] - 1);
        bufs[i][n > 0 ? n : 0] = 0;
        BIO_free(b);
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(rsa_key);
    EVP_PKEY_free(ec_key);
    return 0;
}

/* ---------------------------------------------------------------- algorithms */

static void test_jwt_hs256_valid(void **state)
{
    (void)state;
    expect_ok(NULL, make("HS256", "{\"sub\":\"alice\",\"exp\":1700000100}"), "alice");
}

static void test_jwt_rs256_valid(void **state)
{
    (void)state;
    expect_ok(rsa_pem, make("RS256", "{\"sub\":\"bob\",\"exp\":1700000100}"), "bob");
}

static void test_jwt_es256_valid(void **state)
{
    (void)state;
    expect_ok(ec_pem, make("ES256", "{\"sub\":\"carol\"}"), "carol");
}

static void test_jwt_bad_signature_each_alg(void **state)
{
    (void)state;
    const char *algs[] = {"HS256", "RS256", "ES256"};
    const char *pems[] = {NULL, rsa_pem, ec_pem};
    for (int i = 0; i < 3; i++) {
        char *t = make(algs[i], "{\"sub\":\"alice\"}");
        size_t n = strlen(t);
        /* flip a bit in the middle of the signature (not the last char: its low bits) */
        char *sig = strrchr(t, '.') + 1;
        size_t mid = (size_t)(t + n - sig) / 2;
        sig[mid] = sig[mid] == 'A' ? 'B' : 'A';
        expect_refused(pems[i], t, HR_EINVAL, "signature");
    }
    /* a claim changed after signing */
    char good[4096];
    snprintf(good, sizeof(good), "%s", make("HS256", "{\"sub\":\"alice\"}"));
    char *other = make("HS256", "{\"sub\":\"admin\"}");
    char forged[4096];
    const char *gd = strchr(good, '.'), *gs = strrchr(good, '.');
    const char *od = strchr(other, '.'), *os = strrchr(other, '.');
    snprintf(forged, sizeof(forged), "%.*s%.*s%s", (int)(gd - good), good, (int)(os - od), od, gs);
    expect_refused(NULL, forged, HR_EINVAL, "signature");
}

static void test_jwt_rs256_with_ec_key_refused(void **state)
{
    (void)state;
    expect_refused(ec_pem, make("RS256", "{\"sub\":\"a\"}"), HR_EINVAL, "RS256");
    expect_refused(rsa_pem, make("ES256", "{\"sub\":\"a\"}"), HR_EINVAL, "ES256");
}

static void test_jwt_alg_none_refused(void **state)
{
    (void)state;
    expect_refused(NULL, make_with("{\"alg\":\"none\"}", "{\"sub\":\"a\"}", NULL), HR_EINVAL,
                   "malformed"); /* no signature part at all */
    char t[512];
    snprintf(t, sizeof(t), "%sAAAA", make_with("{\"alg\":\"none\"}", "{\"sub\":\"a\"}", NULL));
    expect_refused(NULL, t, HR_EINVAL, "alg");
    expect_refused(NULL, make_with("{\"alg\":\"HS512\"}", "{\"sub\":\"a\"}", "HS256"), HR_EINVAL,
                   "alg");
    expect_refused(NULL, make_with("{\"typ\":\"JWT\"}", "{\"sub\":\"a\"}", "HS256"), HR_EINVAL,
                   "alg");
    expect_refused(NULL,
                   make_with("{\"alg\":\"HS256\",\"crit\":[\"b64\"]}", "{\"sub\":\"a\"}", "HS256"),
                   HR_EINVAL, "crit");
}

/* RFC 8725 §2.1: an attacker signs HS256 with the (public) key PEM as the HMAC secret. */
static void test_jwt_alg_confusion_refused(void **state)
{
    (void)state;
    const char *claims = "{\"sub\":\"mallory\"}";
    char h[] = "{\"alg\":\"HS256\"}";
    char tok[8192];
    size_t n = b64url((const uint8_t *)h, strlen(h), tok);
    tok[n++] = '.';
    n += b64url((const uint8_t *)claims, strlen(claims), tok + n);
    uint8_t mac[32];
    unsigned ml = 0;
    HMAC(EVP_sha256(), rsa_pem, (int)strlen(rsa_pem), (const uint8_t *)tok, n, mac, &ml);
    tok[n++] = '.';
    b64url(mac, ml, tok + n);
    expect_refused(rsa_pem, tok, HR_EINVAL, "HS256 tokens are not accepted");
}

/* ---------------------------------------------------------------- claims */

static void test_jwt_expired_refused(void **state)
{
    (void)state;
    expect_refused(NULL, make("HS256", "{\"sub\":\"a\",\"exp\":1699999999}"), HR_ESTATE, "expired");
    /* from exp on: exp == now is expired */
    expect_refused(NULL, make("HS256", "{\"sub\":\"a\",\"exp\":1700000000}"), HR_ESTATE, "expired");
    expect_refused(NULL, make("HS256", "{\"sub\":\"a\",\"exp\":\"soon\"}"), HR_EINVAL, "exp");
}

static void test_jwt_nbf_with_leeway(void **state)
{
    (void)state;
    expect_ok(NULL, make("HS256", "{\"sub\":\"a\",\"nbf\":1700000030}"), "a");
    expect_refused(NULL, make("HS256", "{\"sub\":\"a\",\"nbf\":1700000031}"), HR_ESTATE,
                   "not yet valid");
}

static void test_jwt_sub_required_and_bounded(void **state)
{
    (void)state;
    expect_refused(NULL, make("HS256", "{\"exp\":1700000100}"), HR_EINVAL, "sub");
    expect_refused(NULL, make("HS256", "{\"sub\":\"\"}"), HR_EINVAL, "sub");
    expect_refused(NULL, make("HS256", "{\"sub\":42}"), HR_EINVAL, "sub");
    expect_refused(NULL, make("HS256", "{\"sub\":\"a\\nb\"}"), HR_EINVAL, "sub");
    char claims[600], user[256];
    memset(user, 'u', 255);
    user[255] = 0;
    snprintf(claims, sizeof(claims), "{\"sub\":\"%s\"}", user);
    expect_ok(NULL, make("HS256", claims), user);
    snprintf(claims, sizeof(claims), "{\"sub\":\"%su\"}", user);
    expect_refused(NULL, make("HS256", claims), HR_EINVAL, "sub");
}

static void test_jwt_channels_claim(void **state)
{
    (void)state;
    hr_auth_grant_t *g = NULL;
    const char *why = "";
    assert_int_equal(
        verify(NULL,
               make("HS256", "{\"sub\":\"a\",\"channels\":{\"subscribe\":[\"orders.*\",\"chat.>\"],"
                             "\"publish\":[\"chat.>\"]}}"),
               &g, &why),
        0);
    assert_true(g->has_channels);
    assert_int_equal(g->nsubscribe, 2);
    assert_int_equal(g->npublish, 1);
    assert_string_equal(g->subscribe[0], "orders.*");
    assert_string_equal(g->subscribe[1], "chat.>");
    assert_string_equal(g->publish[0], "chat.>");
    hr_auth_grant_free(g);
    expect_refused(NULL, make("HS256", "{\"sub\":\"a\",\"channels\":{\"subscribe\":[\"a..b\"]}}"),
                   HR_EINVAL, "channels");
    expect_refused(NULL, make("HS256", "{\"sub\":\"a\",\"channels\":[\"x\"]}"), HR_EINVAL,
                   "channels");
    expect_refused(NULL, make("HS256", "{\"sub\":\"a\",\"channels\":{\"publish\":\"x\"}}"),
                   HR_EINVAL, "channels");
}

/* ---------------------------------------------------------------- structure */

static void test_jwt_malformed_refused(void **state)
{
    (void)state;
    char good[4096];
    snprintf(good, sizeof(good), "%s", make("HS256", "{\"sub\":\"a\"}"));
    expect_ok(NULL, good, "a");
    char t[4200];
    const char *bad[] = {"", ".", "..", "a.b", "a.b.c.d", "a..c", ".b.c", "a.b."};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_refused(NULL, bad[i], HR_EINVAL, "malformed");
    snprintf(t, sizeof(t), "%s.x", good); /* four parts */
    expect_refused(NULL, t, HR_EINVAL, "malformed");
    snprintf(t, sizeof(t), "%s=", good); /* padding */
    expect_refused(NULL, t, HR_EINVAL, "base64url");
    snprintf(t, sizeof(t), "%s", good); /* standard base64 alphabet */
    t[2] = '+';
    expect_refused(NULL, t, HR_EINVAL, "base64url");
    /* header not JSON, payload not JSON, duplicate keys */
    expect_refused(NULL, make_with("{alg:HS256}", "{\"sub\":\"a\"}", "HS256"), HR_EINVAL, "header");
    expect_refused(NULL, make_with("{\"alg\":\"HS256\"}", "sub=a", "HS256"), HR_EINVAL, "payload");
    expect_refused(NULL, make_with("{\"alg\":\"HS256\"}", "[1]", "HS256"), HR_EINVAL, "payload");
    expect_refused(NULL, make_with("{\"alg\":\"HS256\"}", "{\"sub\":\"a\",\"sub\":\"b\"}", "HS256"),
                   HR_EINVAL, "payload");
    expect_refused(NULL, make_with("{\"alg\":\"HS256\",\"alg\":\"none\"}", "{}", "HS256"),
                   HR_EINVAL, "header");
    expect_refused(NULL, make_with("{\"alg\":\"HS256\",\"typ\":1}", "{\"sub\":\"a\"}", "HS256"),
                   HR_EINVAL, "typ");
}

static void test_jwt_oversized_refused(void **state)
{
    (void)state;
    static char claims[9000], t[HR_JWT_MAX + 100];
    memset(t, 'A', sizeof(t) - 1);
    t[sizeof(t) - 1] = 0;
    t[10] = t[20] = '.';
    expect_refused(NULL, t, HR_EINVAL, "too large");
    /* a signed token just over the limit */
    snprintf(claims, sizeof(claims), "{\"sub\":\"a\",\"pad\":\"%06500d\"}", 0);
    char *big = make("HS256", claims);
    assert_true(strlen(big) > HR_JWT_MAX);
    expect_refused(NULL, big, HR_EINVAL, "too large");
}

static void test_jwt_b64url_strict(void **state)
{
    (void)state;
    uint8_t out[16];
    assert_int_equal(hr_jwt_b64url_decode("YQ", 2, out), 1);
    assert_int_equal(out[0], 'a');
    assert_int_equal(hr_jwt_b64url_decode("YR", 2, out), -1); /* non-zero unused bits */
    assert_int_equal(hr_jwt_b64url_decode("Y", 1, out), -1);
    assert_int_equal(hr_jwt_b64url_decode("YQ==", 4, out), -1);
    assert_int_equal(hr_jwt_b64url_decode("-_8", 3, out), 2);
    assert_int_equal(out[0], 0xfb);
    assert_int_equal(out[1], 0xff);
}

static void test_jwt_keys_reject_bad_pem(void **state)
{
    (void)state;
    hr_jwt_keys_t k;
    char err[200];
    assert_int_equal(hr_jwt_keys_init(&k, NULL, 0, "not a key", 9, err, sizeof(err)), HR_EINVAL);
    assert_non_null(strstr(err, "PEM"));
    assert_int_equal(hr_jwt_keys_load(&k, NULL, "/nonexistent/key.pem", err, sizeof(err)),
                     HR_EINVAL);
    assert_non_null(strstr(err, "cannot open"));
}

/* ---------------------------------------------------------------- permissions */

static bool covers(const char *g, const char *r)
{
    return hr_auth_pattern_covers(g, strlen(g), r, strlen(r));
}

static bool overlap(const char *a, const char *b)
{
    return hr_auth_patterns_overlap(a, strlen(a), b, strlen(b)) &&
           hr_auth_patterns_overlap(b, strlen(b), a, strlen(a));
}

static void test_auth_pattern_covers(void **state)
{
    (void)state;
    assert_true(covers("orders.*", "orders.7"));
    assert_true(covers("orders.*", "orders.*"));
    assert_false(covers("orders.*", "orders.>"));
    assert_false(covers("orders.*", "orders.7.x"));
    assert_false(covers("orders.*", "orders"));
    assert_true(covers("chat.>", "chat.a"));
    assert_true(covers("chat.>", "chat.*.b"));
    assert_true(covers("chat.>", "chat.>"));
    assert_false(covers("chat.>", "chat"));
    assert_false(covers("chat.>", ">"));
    assert_true(covers(">", ">"));
    assert_true(covers(">", "a.*"));
    assert_false(covers("a.b", "a.*"));
    assert_true(covers("a.b", "a.b"));
    assert_false(covers("a.b", "a.bc"));
    assert_false(covers("*.b", "a.>"));
    assert_true(covers("*.b", "*.b"));
}

static void test_auth_patterns_overlap(void **state)
{
    (void)state;
    assert_true(overlap("orders.*", "orders.7"));
    assert_true(overlap("orders.*", "*.7"));
    assert_true(overlap(">", "a"));
    assert_true(overlap("a.>", "*.b.c"));
    assert_false(overlap("a.>", "a"));
    assert_false(overlap("a.*", "b.*"));
    assert_false(overlap("a.*", "a.*.c"));
    assert_true(overlap("a.*.c", "a.>"));
}

static hr_auth_grant_t *grant(const char *json)
{
    hr_auth_grant_t *g = NULL;
    const char *why = "";
    assert_int_equal(hr_auth_grant_parse(json, strlen(json), "user", &g, &why), 0);
    return g;
}

static void test_auth_permissions(void **state)
{
    (void)state;
    hr_namespaces_t nss;
    hr_namespaces_init(&nss);
    hr_namespace_t ns;
    char err[200];
    assert_int_equal(hr_namespace_parse("secret.*:access=private", &ns, err, sizeof(err)), 0);
    assert_int_equal(hr_namespaces_add(&nss, &ns), 0);
    assert_int_equal(hr_namespace_parse("news.*:access=server", &ns, err, sizeof(err)), 0);
    assert_int_equal(hr_namespaces_add(&nss, &ns), 0);
    const hr_namespace_t *priv = hr_namespaces_lookup(&nss, "secret.1", 8);
    const hr_namespace_t *srvns = hr_namespaces_lookup(&nss, "news.1", 6);
    const hr_namespace_t *pub = hr_namespaces_lookup(&nss, "chat.1", 6);

    hr_auth_grant_t *plain = grant("{\"user\":\"u\"}");
    hr_auth_grant_t *claim = grant("{\"user\":\"u\",\"channels\":{\"subscribe\":[\"secret.*\","
                                   "\"chat.>\"],\"publish\":[\"secret.1\"]}}");
#define SUB(g, s) hr_auth_may_subscribe(g, &nss, s, strlen(s))
#define PUB(g, n, s) hr_auth_may_publish(g, n, s, strlen(s))
    /* private: only with a covering claim */
    assert_false(SUB(NULL, "secret.1"));
    assert_false(SUB(plain, "secret.1"));
    assert_true(SUB(claim, "secret.1"));
    assert_true(SUB(claim, "secret.*"));
    assert_false(PUB(plain, priv, "secret.1"));
    assert_true(PUB(claim, priv, "secret.1"));
    assert_false(PUB(claim, priv, "secret.2"));
    /* patterns reaching a private namespace need a claim */
    assert_false(SUB(NULL, ">"));
    assert_false(SUB(plain, "*.1"));
    assert_true(SUB(NULL, "chat.>"));
    assert_false(SUB(claim, ">"));
    /* public: anyone, unless a claim limits */
    assert_true(SUB(NULL, "chat.1"));
    assert_true(PUB(NULL, pub, "chat.1"));
    assert_true(PUB(plain, pub, "chat.1"));
    assert_true(SUB(claim, "chat.1"));
    assert_false(PUB(claim, pub, "chat.1"));
    assert_false(SUB(claim, "other"));
    /* server: subscribe yes, publish never */
    assert_true(SUB(NULL, "news.1"));
    assert_false(PUB(NULL, srvns, "news.1"));
    assert_false(PUB(claim, srvns, "news.1"));
#undef SUB
#undef PUB
    hr_auth_grant_free(plain);
    hr_auth_grant_free(claim);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jwt_hs256_valid),
        cmocka_unit_test(test_jwt_rs256_valid),
        cmocka_unit_test(test_jwt_es256_valid),
        cmocka_unit_test(test_jwt_bad_signature_each_alg),
        cmocka_unit_test(test_jwt_rs256_with_ec_key_refused),
        cmocka_unit_test(test_jwt_alg_none_refused),
        cmocka_unit_test(test_jwt_alg_confusion_refused),
        cmocka_unit_test(test_jwt_expired_refused),
        cmocka_unit_test(test_jwt_nbf_with_leeway),
        cmocka_unit_test(test_jwt_sub_required_and_bounded),
        cmocka_unit_test(test_jwt_channels_claim),
        cmocka_unit_test(test_jwt_malformed_refused),
        cmocka_unit_test(test_jwt_oversized_refused),
        cmocka_unit_test(test_jwt_b64url_strict),
        cmocka_unit_test(test_jwt_keys_reject_bad_pem),
        cmocka_unit_test(test_auth_pattern_covers),
        cmocka_unit_test(test_auth_patterns_overlap),
        cmocka_unit_test(test_auth_permissions),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
