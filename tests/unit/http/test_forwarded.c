/* Client address behind trusted proxies: address and CIDR parsing, the trusted list,
 * and the realip-style walk over X-Forwarded-For and Forwarded (RFC 7239). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "test_util.h"

#include "base/alloc.h"
#include "herald/error.h"
#include "http/forwarded.h"

#define MAX_HEADERS 16

/* ---------------------------------------------------------------- helpers */

static hr_ip_t ip_of(const char *s)
{
    hr_ip_t ip;
    if (hr_ip_parse(s, strlen(s), &ip) != 0)
        fail_msg("setup: '%s' is not an address", s);
    return ip;
}

static void assert_ip(const hr_ip_t *ip, const char *want)
{
    char got[HR_IP_STRLEN];
    hr_ip_format(ip, got);
    assert_string_equal(got, want);
}

typedef struct fixture {
    hr_forwarded_trust_t trust;
} fixture_t;

static void trust(hr_forwarded_trust_t *t, const char *list)
{
    char err[256] = "";
    if (hr_forwarded_trust_parse(t, list, err, sizeof(err)) != 0)
        fail_msg("setup: trusted list '%s': %s", list, err);
}

/*
 * The client of a request with the given header lines ("Name: value\r\n"...), from peer,
 * with the trusted list; asserts the address and, when src >= 0, the source.
 */
static void assert_client(const char *list, const char *peer, const char *headers, const char *want,
                          int src)
{
    char buf[4096];
    snprintf(buf, sizeof(buf), "GET /ws HTTP/1.1\r\nHost: h\r\n%s\r\n", headers);
    hr_http_header_t hs[MAX_HEADERS];
    hr_http_request_t req = {.headers = hs, .num_headers = MAX_HEADERS};
    int status = 0;
    ssize_t n = hr_http_parse_request(buf, strlen(buf), sizeof(buf), &req, &status);
    if (n != (ssize_t)strlen(buf))
        fail_msg("setup: request did not parse (%zd, %d):\n%s", n, status, buf);
    hr_forwarded_trust_t t;
    trust(&t, list);
    hr_ip_t p = ip_of(peer), client;
    hr_forwarded_source_t s = hr_forwarded_client(&t, &p, &req, &client);
    char got[HR_IP_STRLEN];
    hr_ip_format(&client, got);
    if (strcmp(got, want) != 0 || (src >= 0 && (int)s != src))
        fail_msg("trusted '%s', peer %s, headers:\n%sgot %s (source %d), want %s (source %d)", list,
                 peer, headers, got, (int)s, want, src);
    hr_forwarded_trust_deinit(&t);
}

#define PEER HR_FORWARDED_PEER
#define FWD HR_FORWARDED_FORWARDED
#define XFF HR_FORWARDED_XFF

/* ---------------------------------------------------------------- addresses */

static void test_forwarded_ip_parse_ipv4_and_ipv6(void **state)
{
    hr_ip_t ip;
    assert_int_equal(hr_ip_parse("192.0.2.1", 9, &ip), 0);
    assert_int_equal(ip.family, 4);
    assert_ip(&ip, "192.0.2.1");
    assert_int_equal(hr_ip_parse("2001:DB8:0:0::1", 15, &ip), 0);
    assert_int_equal(ip.family, 6);
    assert_ip(&ip, "2001:db8::1");
    assert_int_equal(hr_ip_parse("::1", 3, &ip), 0);
    assert_ip(&ip, "::1");
    /* only the given length is read */
    assert_int_equal(hr_ip_parse("10.0.0.1xyz", 8, &ip), 0);
    assert_ip(&ip, "10.0.0.1");
}

static void test_forwarded_ip_parse_mapped_ipv6_is_ipv4(void **state)
{
    hr_ip_t a = ip_of("::ffff:192.0.2.7"), b = ip_of("192.0.2.7");
    assert_int_equal(a.family, 4);
    assert_memory_equal(&a, &b, sizeof(a));
    assert_ip(&a, "192.0.2.7");
}

static void test_forwarded_ip_parse_rejects_everything_else(void **state)
{
    static const char *const bad[] = {"",          "1.2.3",
                                      "1.2.3.4.5", "256.1.1.1",
                                      "01.2.3.4",  "1.2.3.4 ",
                                      " 1.2.3.4",  "1.2.3.4:80",
                                      "[::1]",     "fe80::1%eth0",
                                      "localhost", "unknown",
                                      "_hidden",   ":::",
                                      "1::2::3",   "0x7f.0.0.1",
                                      "12345::1",  "1.2.3.-4",
                                      "::1/128",   "2001:db8::g",
                                      "1.2.3.4\n", "1111:2222:3333:4444:5555:6666:7777:8888:9999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        hr_ip_t ip = {.family = 99};
        if (hr_ip_parse(bad[i], strlen(bad[i]), &ip) != -1 || ip.family != 99)
            fail_msg("'%s' was accepted", bad[i]);
    }
    hr_ip_t ip;
    assert_int_equal(hr_ip_parse("1.2\0.3.4", 8, &ip), -1);
    char longs[100];
    memset(longs, '1', sizeof(longs));
    assert_int_equal(hr_ip_parse(longs, sizeof(longs), &ip), -1);
}

static void test_forwarded_ip_format_unknown_family(void **state)
{
    hr_ip_t ip = {0};
    char s[HR_IP_STRLEN];
    assert_int_equal(hr_ip_format(&ip, s), 7);
    assert_string_equal(s, "unknown");
    ip = ip_of("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
    assert_int_equal(hr_ip_format(&ip, s), 39);
}

static void test_forwarded_ip_from_sockaddr(void **state)
{
    hr_ip_t ip;
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(80)};
    inet_pton(AF_INET, "127.0.0.2", &in.sin_addr);
    assert_int_equal(hr_ip_from_sockaddr((struct sockaddr *)&in, &ip), 0);
    assert_ip(&ip, "127.0.0.2");
    assert_int_equal(ip.family, 4);

    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6};
    inet_pton(AF_INET6, "2001:db8::5", &in6.sin6_addr);
    assert_int_equal(hr_ip_from_sockaddr((struct sockaddr *)&in6, &ip), 0);
    assert_ip(&ip, "2001:db8::5");
    assert_int_equal(ip.family, 6);

    inet_pton(AF_INET6, "::ffff:10.1.2.3", &in6.sin6_addr);
    assert_int_equal(hr_ip_from_sockaddr((struct sockaddr *)&in6, &ip), 0);
    assert_int_equal(ip.family, 4);
    assert_ip(&ip, "10.1.2.3");

    struct sockaddr_un un = {.sun_family = AF_UNIX};
    assert_int_equal(hr_ip_from_sockaddr((struct sockaddr *)&un, &ip), -1);
    assert_int_equal(ip.family, 0);
    assert_int_equal(hr_ip_from_sockaddr(NULL, &ip), -1);
}

/* ---------------------------------------------------------------- trusted list */

static void test_forwarded_trust_parse_mixed_list(void **state)
{
    hr_forwarded_trust_t t;
    char err[128];
    assert_int_equal(
        hr_forwarded_trust_parse(&t, " 127.0.0.1 ,10.0.0.0/8,\t::1, fd00::/8 ", err, sizeof(err)),
        0);
    assert_int_equal(t.count, 4);
    assert_int_equal(t.nets[0].bits, 128);
    assert_int_equal(t.nets[1].bits, 104);
    assert_int_equal(t.nets[2].bits, 128);
    assert_int_equal(t.nets[3].bits, 8);
    hr_ip_t in[] = {ip_of("127.0.0.1"), ip_of("10.255.255.255"), ip_of("10.0.0.0"),
                    ip_of("::1"),       ip_of("fdff::9"),        ip_of("::ffff:127.0.0.1")};
    hr_ip_t out[] = {ip_of("127.0.0.2"), ip_of("11.0.0.0"), ip_of("9.255.255.255"),
                     ip_of("::2"),       ip_of("fe00::"),   ip_of("2001:db8::1")};
    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++)
        assert_true(hr_forwarded_trusted(&t, &in[i]));
    for (size_t i = 0; i < sizeof(out) / sizeof(out[0]); i++)
        assert_false(hr_forwarded_trusted(&t, &out[i]));
    hr_ip_t unknown = {0};
    assert_false(hr_forwarded_trusted(&t, &unknown));
    hr_forwarded_trust_deinit(&t);
    assert_int_equal(t.count, 0);
    assert_null(t.nets);
}

static void test_forwarded_trust_parse_empty_none_and_blank_elements(void **state)
{
    hr_forwarded_trust_t t;
    const char *empty[] = {NULL, "", "none", ",", " , ,"};
    for (size_t i = 0; i < sizeof(empty) / sizeof(empty[0]); i++) {
        assert_int_equal(hr_forwarded_trust_parse(&t, empty[i], NULL, 0), 0);
        assert_int_equal(t.count, 0);
        hr_ip_t ip = ip_of("127.0.0.1");
        assert_false(hr_forwarded_trusted(&t, &ip));
        hr_forwarded_trust_deinit(&t);
    }
    assert_int_equal(hr_forwarded_trust_parse(&t, "1.2.3.4,,5.6.7.8,", NULL, 0), 0);
    assert_int_equal(t.count, 2);
    hr_forwarded_trust_deinit(&t);
}

static void test_forwarded_trust_parse_masks_host_bits(void **state)
{
    hr_forwarded_trust_t t;
    trust(&t, "10.1.2.3/8,2001:db8::ff/120,192.168.1.129/25");
    assert_ip(&t.nets[0].addr, "10.0.0.0");
    assert_ip(&t.nets[1].addr, "2001:db8::");
    assert_ip(&t.nets[2].addr, "192.168.1.128");
    hr_ip_t a = ip_of("192.168.1.128"), b = ip_of("192.168.1.127"), c = ip_of("2001:db8::1");
    assert_true(hr_forwarded_trusted(&t, &a));
    assert_false(hr_forwarded_trusted(&t, &b));
    assert_true(hr_forwarded_trusted(&t, &c));
    hr_forwarded_trust_deinit(&t);
}

static void test_forwarded_trust_zero_prefixes_stay_in_their_family(void **state)
{
    hr_forwarded_trust_t t;
    hr_ip_t v4 = ip_of("203.0.113.9"), v6 = ip_of("2001:db8::1");
    trust(&t, "0.0.0.0/0");
    assert_true(hr_forwarded_trusted(&t, &v4));
    assert_false(hr_forwarded_trusted(&t, &v6));
    hr_forwarded_trust_deinit(&t);
    trust(&t, "::/0");
    assert_false(hr_forwarded_trusted(&t, &v4));
    assert_true(hr_forwarded_trusted(&t, &v6));
    hr_forwarded_trust_deinit(&t);
    /* an IPv4-mapped network is an IPv4 network */
    trust(&t, "::ffff:203.0.113.0/120");
    assert_int_equal(t.nets[0].addr.family, 4);
    assert_true(hr_forwarded_trusted(&t, &v4));
    hr_forwarded_trust_deinit(&t);
}

static void test_forwarded_trust_parse_rejects_bad_elements(void **state)
{
    static const char *const bad[] = {
        "localhost",       "127.0.0.1,foo", "10.0.0.0/33",   "::/129",
        "10.0.0.0/",       "10.0.0.0/x",    "10.0.0.0/08",   "10.0.0.0/-1",
        "10.0.0.0/8/",     "1.2.3.4:80",    "[::1]",         "10.0.0.0 /8",
        "1.2.3.4 5.6.7.8", "::ffff:0:0/64", "10.0.0.0/1234", "*"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        hr_forwarded_trust_t t = {0};
        char err[256] = "";
        if (hr_forwarded_trust_parse(&t, bad[i], err, sizeof(err)) != HR_EINVAL)
            fail_msg("'%s' was accepted", bad[i]);
        assert_null(t.nets);
        assert_int_equal(t.count, 0);
        assert_non_null(strstr(err, "expected e.g."));
    }
    char err[256];
    hr_forwarded_trust_t t;
    assert_int_equal(hr_forwarded_trust_parse(&t, "127.0.0.1, proxy.local ,::1", err, sizeof(err)),
                     HR_EINVAL);
    assert_non_null(strstr(err, "'proxy.local': not an IP address or CIDR"));
    assert_int_equal(hr_forwarded_trust_parse(&t, "10.0.0.0/40", err, sizeof(err)), HR_EINVAL);
    assert_non_null(strstr(err, "'10.0.0.0/40': bad prefix length"));
    assert_int_equal(hr_forwarded_trust_parse(&t, "::ffff:0:0/80", err, sizeof(err)), HR_EINVAL);
    assert_non_null(strstr(err, "at least /96"));
    /* no room for a message is fine */
    assert_int_equal(hr_forwarded_trust_parse(&t, "x", NULL, 0), HR_EINVAL);
}

static void test_forwarded_trust_parse_out_of_memory(void **state)
{
    hr_forwarded_trust_t t = {0};
    hr_alloc_fail_at(1);
    assert_int_equal(hr_forwarded_trust_parse(&t, "127.0.0.1", NULL, 0), HR_ENOMEM);
    hr_alloc_fail_at(0);
    assert_null(t.nets);
    assert_int_equal(t.count, 0);
}

/* ---------------------------------------------------------------- who is trusted */

static void test_forwarded_without_trusted_list_headers_are_ignored(void **state)
{
    assert_client("", "127.0.0.1", "X-Forwarded-For: 203.0.113.5\r\n", "127.0.0.1", PEER);
    assert_client("none", "127.0.0.1", "Forwarded: for=203.0.113.5\r\n", "127.0.0.1", PEER);
}

static void test_forwarded_untrusted_peer_headers_are_ignored(void **state)
{
    /* a client that talks to us directly cannot choose its address */
    assert_client("10.0.0.0/8", "198.51.100.7", "X-Forwarded-For: 10.0.0.1\r\n", "198.51.100.7",
                  PEER);
    assert_client("10.0.0.0/8", "198.51.100.7", "Forwarded: for=1.1.1.1\r\n", "198.51.100.7", PEER);
}

static void test_forwarded_trusted_peer_without_headers_is_the_client(void **state)
{
    assert_client("127.0.0.1", "127.0.0.1", "", "127.0.0.1", PEER);
    assert_client("127.0.0.1", "127.0.0.1", "X-Real-IP: 1.2.3.4\r\n", "127.0.0.1", PEER);
}

/* ---------------------------------------------------------------- X-Forwarded-For */

static void test_forwarded_xff_single_address(void **state)
{
    assert_client("127.0.0.1", "127.0.0.1", "X-Forwarded-For: 127.0.0.2\r\n", "127.0.0.2", XFF);
}

static void test_forwarded_xff_skips_trusted_proxies_from_the_right(void **state)
{
    assert_client("127.0.0.1,10.0.0.0/8", "127.0.0.1",
                  "X-Forwarded-For: 203.0.113.5, 10.0.0.7, 10.1.1.1\r\n", "203.0.113.5", XFF);
}

static void test_forwarded_xff_spoofed_entries_left_of_the_client_are_ignored(void **state)
{
    /* the client sent "X-Forwarded-For: 6.6.6.6, 10.0.0.9"; our proxy appended its peer */
    assert_client("127.0.0.1,10.0.0.0/8", "127.0.0.1",
                  "X-Forwarded-For: 6.6.6.6, 10.0.0.9, 198.51.100.20\r\n", "198.51.100.20", XFF);
}

static void test_forwarded_xff_all_trusted_gives_the_leftmost(void **state)
{
    assert_client("10.0.0.0/8,127.0.0.1", "127.0.0.1", "X-Forwarded-For: 10.0.0.1, 10.0.0.2\r\n",
                  "10.0.0.1", XFF);
}

static void test_forwarded_xff_malformed_rightmost_keeps_the_peer(void **state)
{
    assert_client("127.0.0.1", "127.0.0.1", "X-Forwarded-For: 203.0.113.5, garbage\r\n",
                  "127.0.0.1", PEER);
    assert_client("127.0.0.1", "127.0.0.1", "X-Forwarded-For: unknown\r\n", "127.0.0.1", PEER);
}

static void test_forwarded_xff_malformed_entry_stops_the_walk(void **state)
{
    /* walk: 10.0.0.3 trusted, 10.0.0.2 trusted, "x" stops: the last good one */
    assert_client("127.0.0.1,10.0.0.0/8", "127.0.0.1",
                  "X-Forwarded-For: 203.0.113.5, x, 10.0.0.2, 10.0.0.3\r\n", "10.0.0.2", XFF);
    /* an untrusted address before the bad entry (from the right) ends the walk first */
    assert_client("127.0.0.1,10.0.0.0/8", "127.0.0.1",
                  "X-Forwarded-For: 1.1.1.1, 1.2.3.4.5, 203.0.113.5, 10.0.0.3\r\n", "203.0.113.5",
                  XFF);
}

static void test_forwarded_xff_empty_elements_are_skipped(void **state)
{
    assert_client("127.0.0.1", "127.0.0.1", "X-Forwarded-For: , 203.0.113.5 ,, \r\n", "203.0.113.5",
                  XFF);
    assert_client("127.0.0.1", "127.0.0.1", "X-Forwarded-For: ,\r\n", "127.0.0.1", PEER);
    assert_client("127.0.0.1", "127.0.0.1", "X-Forwarded-For:\r\n", "127.0.0.1", PEER);
}

static void test_forwarded_xff_ports_and_ipv6_forms(void **state)
{
    const char *list = "127.0.0.1";
    assert_client(list, "127.0.0.1", "X-Forwarded-For: 203.0.113.5:4711\r\n", "203.0.113.5", XFF);
    assert_client(list, "127.0.0.1", "X-Forwarded-For: 2001:db8::1\r\n", "2001:db8::1", XFF);
    assert_client(list, "127.0.0.1", "X-Forwarded-For: [2001:db8::1]\r\n", "2001:db8::1", XFF);
    assert_client(list, "127.0.0.1", "X-Forwarded-For: [2001:db8::1]:443\r\n", "2001:db8::1", XFF);
    assert_client(list, "127.0.0.1", "X-Forwarded-For: ::ffff:203.0.113.5\r\n", "203.0.113.5", XFF);
    static const char *const bad[] = {
        "203.0.113.5:",      "203.0.113.5:65536", "203.0.113.5:123456", "203.0.113.5:_obf",
        "[2001:db8::1",      "[2001:db8::1]:",    "[2001:db8::1]443",   "[203.0.113.5]",
        "fe80::1%eth0",      "host.example",      "\"203.0.113.5\"",    "203.0.113.5 1.2.3.4",
        "[2001:db8::1]:1:2", "2001:db8::1]"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char h[128];
        snprintf(h, sizeof(h), "X-Forwarded-For: %s\r\n", bad[i]);
        assert_client(list, "127.0.0.1", h, "127.0.0.1", PEER);
    }
}

static void test_forwarded_xff_header_lines_join_in_order(void **state)
{
    assert_client("127.0.0.1,10.0.0.0/8", "127.0.0.1",
                  "X-Forwarded-For: 203.0.113.5\r\nx-forwarded-for: 10.0.0.1, 10.0.0.2\r\n",
                  "203.0.113.5", XFF);
    assert_client("127.0.0.1,10.0.0.0/8", "127.0.0.1",
                  "X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-For: 203.0.113.5\r\n", "203.0.113.5",
                  XFF);
}

static void test_forwarded_ipv6_peer_and_proxies(void **state)
{
    assert_client("::1,2001:db8:1::/48", "::1", "X-Forwarded-For: 2001:db8:2::9, 2001:db8:1::5\r\n",
                  "2001:db8:2::9", XFF);
    /* a mapped IPv4 peer matches an IPv4 entry */
    assert_client("127.0.0.1", "::ffff:127.0.0.1", "X-Forwarded-For: 2001:db8::7\r\n",
                  "2001:db8::7", XFF);
}

static void test_forwarded_unknown_peer_is_never_trusted(void **state)
{
    hr_forwarded_trust_t t;
    trust(&t, "0.0.0.0/0,::/0");
    hr_http_header_t hs[1] = {{"X-Forwarded-For", 15, "1.2.3.4", 7}};
    hr_http_request_t req = {.headers = hs, .num_headers = 1};
    hr_ip_t peer = {0}, client;
    assert_int_equal(hr_forwarded_client(&t, &peer, &req, &client), PEER);
    assert_int_equal(client.family, 0);
    hr_forwarded_trust_deinit(&t);
}

/* ---------------------------------------------------------------- Forwarded */

static void test_forwarded_rfc7239_examples(void **state)
{
    const char *list = "127.0.0.1";
    assert_client(list, "127.0.0.1", "Forwarded: for=\"_gazonk\"\r\n", "127.0.0.1", PEER);
    assert_client(list, "127.0.0.1", "Forwarded: For=\"[2001:db8:cafe::17]:4711\"\r\n",
                  "2001:db8:cafe::17", FWD);
    assert_client(list, "127.0.0.1", "Forwarded: for=192.0.2.60;proto=http;by=203.0.113.43\r\n",
                  "192.0.2.60", FWD);
    assert_client(list, "127.0.0.1", "Forwarded: for=192.0.2.43, for=198.51.100.17\r\n",
                  "198.51.100.17", FWD);
}

static void test_forwarded_skips_trusted_proxies_from_the_right(void **state)
{
    assert_client("127.0.0.1,10.0.0.0/8", "127.0.0.1",
                  "Forwarded: for=203.0.113.5;proto=https, for=\"10.0.0.7:8080\";by=10.0.0.1, "
                  "for=10.0.0.8\r\n",
                  "203.0.113.5", FWD);
    assert_client("127.0.0.1,10.0.0.0/8", "127.0.0.1",
                  "Forwarded: for=10.0.0.1, for=\"[::ffff:10.0.0.2]\"\r\n", "10.0.0.1", FWD);
}

static void test_forwarded_not_an_address_stops_the_walk(void **state)
{
    const char *list = "127.0.0.1,10.0.0.0/8";
    /* unknown, obfuscated, missing or duplicate for=: the last good address stays */
    static const char *const stops[] = {
        "for=unknown",
        "for=UNKNOWN",
        "for=_hidden",
        "for=\"_x:80\"",
        "proto=https",
        "for=1.2.3.4;for=1.2.3.4",
        "for=\"2001:db8::1\"",
        "for=[2001:db8::1]",
        "for=\"1.2.3.4:99999\"",
        "for=",
        "for",
        "=1.2.3.4",
        "for=1.2.3.4 x",
        "for=1.2.3.4;;proto=http ;by",
        "for=\"[2001:db8::1]:4711\"x",
        "for=1.2.3.4:80",
        "for=\"0123456789012345678901234567890123456789012345678901234567890123456789\"",
    };
    for (size_t i = 0; i < sizeof(stops) / sizeof(stops[0]); i++) {
        char h[256];
        snprintf(h, sizeof(h), "Forwarded: for=203.0.113.9, %s, for=10.0.0.5\r\n", stops[i]);
        assert_client(list, "127.0.0.1", h, "10.0.0.5", FWD);
        snprintf(h, sizeof(h), "Forwarded: for=203.0.113.9, %s\r\n", stops[i]);
        assert_client(list, "127.0.0.1", h, "127.0.0.1", PEER);
    }
}

static void test_forwarded_accepted_syntax_variants(void **state)
{
    const char *list = "127.0.0.1";
    static const char *const ok[] = {
        "for=203.0.113.9",
        "for=\"203.0.113.9\"",
        "for=\"203.0.113.9:_port-1.x\"",
        "  for=203.0.113.9  ",
        "for=203.0.113.9 ; proto=https",
        ";;for=203.0.113.9;;",
        "by=\"[::1]\";for=203.0.113.9;host=\"a,b;c\"",
        "for=\"\\2\\03.0.113.9\"",
        "proto=\"say \\\"hi\\\"\";for=203.0.113.9",
        "FOR=203.0.113.9;Proto=HTTPS",
        "for=\"[::ffff:203.0.113.9]\"",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char h[256];
        snprintf(h, sizeof(h), "Forwarded: %s\r\n", ok[i]);
        assert_client(list, "127.0.0.1", h, "203.0.113.9", FWD);
    }
}

static void test_forwarded_quoted_comma_does_not_split_an_element(void **state)
{
    /* if the comma split the element, "b\"" would be a bad element on the right */
    assert_client("127.0.0.1", "127.0.0.1", "Forwarded: for=203.0.113.9;host=\"a, b\"\r\n",
                  "203.0.113.9", FWD);
}

static void test_forwarded_unterminated_quote_spoils_the_rest_of_the_line(void **state)
{
    assert_client("127.0.0.1,10.0.0.0/8", "127.0.0.1",
                  "Forwarded: for=203.0.113.9, for=\"10.0.0.2, for=10.0.0.3\r\n", "127.0.0.1",
                  PEER);
    /* the next line starts fresh */
    assert_client("127.0.0.1,10.0.0.0/8", "127.0.0.1",
                  "Forwarded: for=203.0.113.9, for=\"10.0.0.2\r\nForwarded: for=10.0.0.3\r\n",
                  "10.0.0.3", FWD);
}

static void test_forwarded_header_lines_join_in_order(void **state)
{
    assert_client("127.0.0.1,10.0.0.0/8", "127.0.0.1",
                  "Forwarded: for=198.51.100.1\r\nforwarded: for=10.0.0.1\r\n", "198.51.100.1",
                  FWD);
}

static void test_forwarded_is_preferred_over_xff(void **state)
{
    assert_client("127.0.0.1", "127.0.0.1",
                  "X-Forwarded-For: 198.51.100.1\r\nForwarded: for=203.0.113.9\r\n", "203.0.113.9",
                  FWD);
    /* even when it gives nothing usable: X-Forwarded-For is not consulted */
    assert_client("127.0.0.1", "127.0.0.1",
                  "Forwarded: for=unknown\r\nX-Forwarded-For: 1.2.3.4\r\n", "127.0.0.1", PEER);
    assert_client("127.0.0.1", "127.0.0.1", "Forwarded:\r\nX-Forwarded-For: 1.2.3.4\r\n",
                  "127.0.0.1", PEER);
}

static void test_forwarded_arbitrary_bytes_in_values(void **state)
{
    /* values that the HTTP parser would refuse: the walk must still be safe */
    hr_forwarded_trust_t t;
    trust(&t, "127.0.0.1");
    hr_http_header_t hs[3] = {{"Forwarded", 9, "for=\"\\", 6},
                              {"Forwarded", 9, "for=1.2.3.4\0", 12},
                              {"Forwarded", 9, "", 0}};
    hr_http_request_t req = {.headers = hs, .num_headers = 3};
    hr_ip_t peer = ip_of("127.0.0.1"), client;
    assert_int_equal(hr_forwarded_client(&t, &peer, &req, &client), PEER);
    assert_ip(&client, "127.0.0.1");
    hs[0] = (hr_http_header_t){"X-Forwarded-For", 15, "1.2.3.4\0", 8};
    hs[1] = (hr_http_header_t){"X-Forwarded-For", 15, "\xff\xfe", 2};
    hs[2] = (hr_http_header_t){"X-Forwarded-For", 15, "5.6.7.8", 7};
    assert_int_equal(hr_forwarded_client(&t, &peer, &req, &client), XFF);
    assert_ip(&client, "5.6.7.8");
    hr_forwarded_trust_deinit(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forwarded_ip_parse_ipv4_and_ipv6),
        cmocka_unit_test(test_forwarded_ip_parse_mapped_ipv6_is_ipv4),
        cmocka_unit_test(test_forwarded_ip_parse_rejects_everything_else),
        cmocka_unit_test(test_forwarded_ip_format_unknown_family),
        cmocka_unit_test(test_forwarded_ip_from_sockaddr),
        cmocka_unit_test(test_forwarded_trust_parse_mixed_list),
        cmocka_unit_test(test_forwarded_trust_parse_empty_none_and_blank_elements),
        cmocka_unit_test(test_forwarded_trust_parse_masks_host_bits),
        cmocka_unit_test(test_forwarded_trust_zero_prefixes_stay_in_their_family),
        cmocka_unit_test(test_forwarded_trust_parse_rejects_bad_elements),
        cmocka_unit_test(test_forwarded_trust_parse_out_of_memory),
        cmocka_unit_test(test_forwarded_without_trusted_list_headers_are_ignored),
        cmocka_unit_test(test_forwarded_untrusted_peer_headers_are_ignored),
        cmocka_unit_test(test_forwarded_trusted_peer_without_headers_is_the_client),
        cmocka_unit_test(test_forwarded_xff_single_address),
        cmocka_unit_test(test_forwarded_xff_skips_trusted_proxies_from_the_right),
        cmocka_unit_test(test_forwarded_xff_spoofed_entries_left_of_the_client_are_ignored),
        cmocka_unit_test(test_forwarded_xff_all_trusted_gives_the_leftmost),
        cmocka_unit_test(test_forwarded_xff_malformed_rightmost_keeps_the_peer),
        cmocka_unit_test(test_forwarded_xff_malformed_entry_stops_the_walk),
        cmocka_unit_test(test_forwarded_xff_empty_elements_are_skipped),
        cmocka_unit_test(test_forwarded_xff_ports_and_ipv6_forms),
        cmocka_unit_test(test_forwarded_xff_header_lines_join_in_order),
        cmocka_unit_test(test_forwarded_ipv6_peer_and_proxies),
        cmocka_unit_test(test_forwarded_unknown_peer_is_never_trusted),
        cmocka_unit_test(test_forwarded_rfc7239_examples),
        cmocka_unit_test(test_forwarded_skips_trusted_proxies_from_the_right),
        cmocka_unit_test(test_forwarded_not_an_address_stops_the_walk),
        cmocka_unit_test(test_forwarded_accepted_syntax_variants),
        cmocka_unit_test(test_forwarded_quoted_comma_does_not_split_an_element),
        cmocka_unit_test(test_forwarded_unterminated_quote_spoils_the_rest_of_the_line),
        cmocka_unit_test(test_forwarded_header_lines_join_in_order),
        cmocka_unit_test(test_forwarded_is_preferred_over_xff),
        cmocka_unit_test(test_forwarded_arbitrary_bytes_in_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
