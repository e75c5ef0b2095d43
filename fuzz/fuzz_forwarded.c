/* Fuzzes the trusted-proxy list parser and the client-address walk over Forwarded and
 * X-Forwarded-For. Input: byte 0 picks the TCP peer; the rest is split at '\n' into a
 * trusted list, then header lines whose first byte picks the name ('F' Forwarded, 'X'
 * X-Forwarded-For, else an unrelated header) and whose other bytes are the value, raw
 * (no HTTP parser in front: NULs, quotes and control bytes reach the walk).
 *
 * Invariants beyond "no crash": a parsed list contains each of its own networks, with
 * host bits cleared; addresses survive format and parse unchanged; an untrusted peer is
 * always the client; the answer names an address; and two metamorphic rules of the
 * right-to-left walk: a header line appended with an untrusted address makes that
 * address the client, and one appended with the (trusted) peer's own address changes
 * nothing. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/forwarded.h"

#define MAX_LINES 8

/* libFuzzer's entry point; declared here because no header of ours owns it. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const peers[] = {"127.0.0.1", "10.0.0.1",    "::1",
                                    "192.0.2.1", "2001:db8::1", NULL};

static void check_roundtrip(const hr_ip_t *ip)
{
    char s[HR_IP_STRLEN];
    size_t n = hr_ip_format(ip, s);
    if (n != strlen(s) || n >= HR_IP_STRLEN)
        abort();
    hr_ip_t again;
    if (ip->family && (hr_ip_parse(s, n, &again) != 0 || memcmp(&again, ip, sizeof(*ip)) != 0))
        abort();
}

static void check_list(const hr_forwarded_trust_t *t)
{
    for (size_t i = 0; i < t->count; i++) {
        const hr_ip_net_t *n = &t->nets[i];
        if (n->bits > 128 || (n->addr.family == 4 && n->bits < 96) ||
            (n->addr.family != 4 && n->addr.family != 6))
            abort();
        for (unsigned b = n->bits; b < 128; b++)
            if (n->addr.b[b / 8] & (0x80u >> (b % 8)))
                abort();
        if (!hr_forwarded_trusted(t, &n->addr))
            abort();
        check_roundtrip(&n->addr);
    }
}

static bool same(const hr_ip_t *a, const hr_ip_t *b)
{
    return memcmp(a, b, sizeof(*a)) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 8192)
        return 0;
    hr_ip_t peer = {0};
    const char *ps = peers[data[0] % (sizeof(peers) / sizeof(peers[0]))];
    if (ps && hr_ip_parse(ps, strlen(ps), &peer) != 0)
        abort();

    /* Split into lines; line 0 is the trusted list (a C string: cut at a NUL). */
    const char *buf = (const char *)data + 1;
    size_t len = size - 1;
    const char *lines[MAX_LINES + 1];
    size_t lens[MAX_LINES + 1], nlines = 0;
    for (size_t at = 0; nlines <= MAX_LINES;) {
        const char *nl = memchr(buf + at, '\n', len - at);
        size_t l = nl ? (size_t)(nl - (buf + at)) : len - at;
        lines[nlines] = buf + at;
        lens[nlines++] = l;
        if (!nl)
            break;
        at += l + 1;
    }
    char list[256];
    size_t ll = lens[0] < sizeof(list) - 1 ? lens[0] : sizeof(list) - 1;
    memcpy(list, lines[0], ll);
    list[ll] = 0;
    hr_forwarded_trust_t t;
    if (hr_forwarded_trust_parse(&t, list, NULL, 0) != 0)
        return 0;
    check_list(&t);

    hr_http_header_t hs[MAX_LINES + 1];
    hr_http_request_t req = {.headers = hs, .num_headers = 0};
    bool has_fwd = false;
    for (size_t i = 1; i < nlines; i++) {
        const char *v = lines[i];
        size_t vl = lens[i];
        const char *name = "X-Other";
        if (vl && (v[0] == 'F' || v[0] == 'X'))
            name = v[0] == 'F' ? "forwarded" : "X-FORWARDED-FOR";
        has_fwd = has_fwd || name[0] == 'f';
        hr_ip_t ip;
        if (vl > 1 && hr_ip_parse(v + 1, vl - 1, &ip) == 0)
            check_roundtrip(&ip);
        hs[req.num_headers++] =
            (hr_http_header_t){name, strlen(name), vl ? v + 1 : v, vl ? vl - 1 : 0};
    }

    hr_ip_t client, again;
    hr_forwarded_source_t src = hr_forwarded_client(&t, &peer, &req, &client);
    check_roundtrip(&client);
    if (src == HR_FORWARDED_PEER ? !same(&client, &peer) : client.family != 4 && client.family != 6)
        abort();
    bool peer_trusted = hr_forwarded_trusted(&t, &peer);
    if (!peer_trusted && src != HR_FORWARDED_PEER)
        abort();
    if (src == HR_FORWARDED_FORWARDED && !has_fwd)
        abort();
    if (src == HR_FORWARDED_XFF && has_fwd)
        abort();
    if (hr_forwarded_client(&t, &peer, &req, &again) != src || !same(&client, &again))
        abort();
    if (!peer_trusted || req.num_headers == MAX_LINES + 1) {
        hr_forwarded_trust_deinit(&t);
        return 0;
    }

    /* Metamorphic: one more line on the right. */
    const char *hname = has_fwd ? "Forwarded" : "X-Forwarded-For";
    hr_ip_t outsider;
    hr_ip_parse("198.18.0.1", 10, &outsider);
    if (!hr_forwarded_trusted(&t, &outsider)) {
        hs[req.num_headers] = (hr_http_header_t){
            hname, strlen(hname), has_fwd ? "for=198.18.0.1" : "198.18.0.1", has_fwd ? 14u : 10u};
        req.num_headers++;
        if (hr_forwarded_client(&t, &peer, &req, &again) == HR_FORWARDED_PEER ||
            !same(&again, &outsider))
            abort();
        req.num_headers--;
    }
    char addr[HR_IP_STRLEN], value[HR_IP_STRLEN + 16];
    hr_ip_format(&peer, addr);
    size_t vl = 0;
    if (has_fwd && peer.family == 6)
        vl = (size_t)snprintf(value, sizeof(value), "for=\"[%s]\"", addr);
    else
        vl = (size_t)snprintf(value, sizeof(value), "%s%s", has_fwd ? "for=" : "", addr);
    hs[req.num_headers++] = (hr_http_header_t){hname, strlen(hname), value, vl};
    hr_forwarded_client(&t, &peer, &req, &again);
    if (!same(&again, &client))
        abort();
    hr_forwarded_trust_deinit(&t);
    return 0;
}
