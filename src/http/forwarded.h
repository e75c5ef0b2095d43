#ifndef HR_HTTP_FORWARDED_H
#define HR_HTTP_FORWARDED_H

/* The client address of a request that reached us through reverse proxies, the way
 * nginx's realip module computes it with real_ip_recursive on: the proxy headers are
 * believed only when the TCP peer is one of the trusted proxies, and then only as far as
 * the chain of trusted proxies goes. Pure: no I/O; only the trusted list allocates.
 *
 * The walk (hr_forwarded_client):
 *  1. If the peer is not trusted (or no proxy is trusted), the peer is the client: the
 *     headers are ignored.
 *  2. Otherwise the addresses are taken from Forwarded (RFC 7239) if the request has at
 *     least one Forwarded header line, else from X-Forwarded-For; several lines of one
 *     header are one list, in order. No usable header: the peer is the client.
 *  3. The list is walked from the right. A trusted address is a proxy: step over it. The
 *     first untrusted address is the client. If every address is trusted, the leftmost
 *     is the client.
 *  4. An element that is not a usable address stops the walk, and the address reached so
 *     far (the last good one, or the peer when the rightmost element is bad) is the
 *     client. Not usable: malformed syntax; in Forwarded an element without for=, with
 *     for= twice, or whose for= is "unknown" or an obfuscated identifier ("_hidden"); an
 *     IPv6 zone, a host name, anything but the address forms below.
 *  Empty list elements (", ,") are skipped (RFC 9110 §5.6.1).
 *
 * Address forms. X-Forwarded-For: 192.0.2.1, 192.0.2.1:4711, 2001:db8::1, [2001:db8::1],
 * [2001:db8::1]:4711. Forwarded for=: 192.0.2.1 (token or quoted), "192.0.2.1:4711",
 * "[2001:db8::1]", "[2001:db8::1]:4711" (IPv6 must be bracketed and quoted; a port may
 * be obfuscated, "_p1"). Parameter names and "unknown" are case-insensitive; optional
 * whitespace around ',', ';' is allowed.
 *
 * The proxies must own the header Herald reads: a proxy that appends to
 * X-Forwarded-For must remove a Forwarded header sent by the client (and the reverse),
 * or the client chooses its own address (docs/operations.md). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/http_parse.h"

struct sockaddr;

/* An IP address. IPv4 is kept in its IPv4-mapped IPv6 form (::ffff:192.0.2.1) with family
 * 4, so a peer seen as ::ffff:192.0.2.1 on a dual-stack socket is the IPv4 192.0.2.1. */
typedef struct hr_ip {
    uint8_t family; /* 0 unknown (never trusted), 4 or 6 */
    uint8_t b[16];  /* network byte order */
} hr_ip_t;

/* Room for the text of any hr_ip_t, with its NUL. */
#define HR_IP_STRLEN 46

/* A network: addresses whose first bits bits (of the 128-bit form) equal addr's. */
typedef struct hr_ip_net {
    hr_ip_t addr; /* host bits cleared */
    uint8_t bits; /* 96..128 for IPv4 (192.0.2.0/24 is 120), 0..128 for IPv6 */
} hr_ip_net_t;

/* The trusted proxies (--trusted-proxies). Zero-initialised: none. */
typedef struct hr_forwarded_trust {
    hr_ip_net_t *nets;
    size_t count;
} hr_forwarded_trust_t;

/* Where hr_forwarded_client found the client. */
typedef enum hr_forwarded_source {
    HR_FORWARDED_PEER = 0,  /* the TCP peer (untrusted peer, no header, or nothing usable) */
    HR_FORWARDED_FORWARDED, /* an address from Forwarded */
    HR_FORWARDED_XFF,       /* an address from X-Forwarded-For */
} hr_forwarded_source_t;

/* Parses an IPv4 (dotted quad) or IPv6 address from s[0..len) (no brackets, port or
 * zone). 0, or -1 with *ip untouched. */
int hr_ip_parse(const char *s, size_t len, hr_ip_t *ip);

/* Fills *ip from an AF_INET or AF_INET6 socket address (IPv4-mapped IPv6 becomes IPv4);
 * 0, or -1 and family 0 for any other family or a NULL sa. */
int hr_ip_from_sockaddr(const struct sockaddr *sa, hr_ip_t *ip);

/* Writes ip as text ("192.0.2.1", "2001:db8::1", "unknown" for family 0) with a NUL;
 * returns its length. */
size_t hr_ip_format(const hr_ip_t *ip, char out[HR_IP_STRLEN]);

/*
 * Parses a trusted-proxy list: comma-separated IPv4/IPv6 addresses and CIDRs
 * ("127.0.0.1,10.0.0.0/8,::1,fd00::/8"), whitespace around elements allowed, empty
 * elements skipped. Host bits below the prefix are ignored (10.1.2.3/8 is 10.0.0.0/8).
 * NULL, "" and "none" give an empty list. An IPv4-mapped IPv6 network (::ffff:0:0/96)
 * is an IPv4 network and needs a prefix of at least 96. Returns 0 (replacing *t, which
 * must be zero or deinitialised), HR_EINVAL with a message naming the bad element in
 * err, or HR_ENOMEM.
 */
int hr_forwarded_trust_parse(hr_forwarded_trust_t *t, const char *list, char *err, size_t errlen);
void hr_forwarded_trust_deinit(hr_forwarded_trust_t *t);

/* True if ip lies in one of the trusted networks. */
bool hr_forwarded_trusted(const hr_forwarded_trust_t *t, const hr_ip_t *ip);

/* Computes the client address of req received from peer (the walk above) into *client;
 * returns where it came from. Reads req's headers only; keeps no pointers. */
hr_forwarded_source_t hr_forwarded_client(const hr_forwarded_trust_t *t, const hr_ip_t *peer,
                                          const hr_http_request_t *req, hr_ip_t *client);

#endif
