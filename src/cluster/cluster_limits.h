#ifndef HR_CLUSTER_CLUSTER_LIMITS_H
#define HR_CLUSTER_CLUSTER_LIMITS_H

/* --max-connections-per-user across nodes (docs/cluster.md, "Limits"). With --redis a
 * user's open WebSocket connections are counted in Redis, in the hash
 * <prefix>:user:<user> with one field per node, next to the node's own count
 * (limits.h), which stays the answer while Redis is down. A node's field counts only
 * while its heartbeat key <prefix>:limits:node:<id> names the field's incarnation, so a
 * crashed node's connections stop holding slots when the key expires. */

#include <stdbool.h>

#include "server/server.h"

/* hr_conn_deflate_t.user_redis: what Redis knows of the connection. */
enum {
    HR_CLUSTER_USER_NONE = 0,    /* not counted in Redis (no --redis, anonymous, no limit) */
    HR_CLUSTER_USER_ASKED = 1,   /* the handshake waits for Redis' answer */
    HR_CLUSTER_USER_LOCAL = 2,   /* not asked, or Redis was down: released there all the same */
    HR_CLUSTER_USER_COUNTED = 3, /* counted in Redis */
};

/* The heartbeat key expires this long after the node's last beat. */
#define HR_CLUSTER_NODE_TTL_MS 10000
#define HR_CLUSTER_NODE_BEAT_MS 3000
/* A user's hash is dropped this long after its last change (keys of users never seen
 * again do not stay in Redis). */
#define HR_CLUSTER_USER_TTL_MS (24 * 3600 * 1000)

/* The verdict: 1 counted in Redis, 0 over the limit there (nothing counted), -1 Redis
 * down or not answering (fall back to the local count). Runs on the asking shard. */
typedef void (*hr_cluster_limits_cb)(void *ctx, int verdict);

/* Whether connections of this server are counted in Redis (--redis and a per-user
 * limit). */
bool hr_cluster_limits_active(const hr_server_t *srv);
/* On shard sh: counts one more connection of user unless max are counted on live
 * nodes; cb(ctx, verdict) runs later on sh, always once. 0, or HR_ENOMEM / HR_ESTATE
 * (cb is not called). */
int hr_cluster_limits_acquire(hr_shard_t *sh, const char *user, int max, hr_cluster_limits_cb cb,
                              void *ctx);
/* On shard sh: counts one more connection of user without asking (a STOMP session whose
 * token came in CONNECT: refused, if at all, by the local count). Released as below. */
void hr_cluster_limits_add(hr_shard_t *sh, const char *user);
/* On shard sh: gives back a connection counted by acquire (verdict 1, or -1: the
 * resync after an outage counted it). Best effort: one lost while Redis is down is
 * corrected by that resync. */
void hr_cluster_limits_release(hr_shard_t *sh, const char *user);

#endif
