#ifndef HR_CLUSTER_ENVELOPE_H
#define HR_CLUSTER_ENVELOPE_H

/* What travels on a channel's Redis channel (docs/cluster.md). A message published by a
 * node (or by Herald's publish script/function) is one header line and the JSON data:
 *
 *     H1 <node> <offset> <epoch> <time_ms>\n<data>
 *
 * A presence change that a node announces to the others (src/server/channels.c):
 *
 *     P1 <node> join|leave <client>\n<user>          (user empty: anonymous)
 *
 * Any payload that starts with neither "H1 " nor "P1 " is a raw backend PUBLISH: the
 * whole payload is the data, with no offset. Pure functions: no I/O, no allocation but the
 * caller's buffer. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/slice.h"

#define HR_CLUSTER_NODE_MAX 32
#define HR_CLUSTER_USER_MAX 128 /* HR_PRESENCE_USER_MAX */

typedef struct hr_cluster_env {
    bool herald;   /* a message: node, offset, epoch, time_ms, data */
    bool presence; /* a presence change: node, join, client, data (the user) */
    bool join;
    hr_slice_t node;
    uint64_t offset;
    uint64_t client;
    hr_slice_t epoch;
    uint64_t time_ms;
    hr_slice_t data;
} hr_cluster_env_t;

/* 0 (neither herald nor presence set: a raw payload), or HR_EINVAL for a payload that
 * starts with "H1 " or "P1 " but whose header is malformed (bad node, offset 0 or out
 * of range, bad epoch, time, kind or client, no newline, a user over 128 bytes). */
int hr_cluster_env_parse(const char *p, size_t n, hr_cluster_env_t *out);
/* Appends the envelope of a Herald message to out. 0 or HR_ENOMEM. */
int hr_cluster_env_encode(hr_buf_t *out, hr_slice_t node, uint64_t offset, hr_slice_t epoch,
                          uint64_t time_ms, hr_slice_t data);

/* Appends to out the Redis channel of a channel name, "<prefix>:ch:<name>", or with
 * pattern the PSUBSCRIBE glob of a Herald pattern: "*" and ">" segments become "*" (a
 * superset: arrivals are filtered with hr_channel_match) and glob metacharacters
 * ("*?[]\") elsewhere, prefix included, are escaped. 0 or HR_ENOMEM. */
int hr_cluster_redis_channel(hr_buf_t *out, hr_slice_t prefix, hr_slice_t name, bool pattern);

#endif
