#ifndef HR_SERVER_CHANNELS_H
#define HR_SERVER_CHANNELS_H

/* Channels across shards. Every channel has a home shard (hash of its name): the home
 * assigns offsets, keeps the history ring and the presence set, and builds each message
 * frame once; every shard keeps its own local subscriptions (exact names in one table,
 * patterns in another) and delivers the shared frame to them. A request from another
 * shard travels through inboxes; since each inbox keeps one producer's posts in order,
 * a subscription made pending on its shard before asking the home for recovery sees
 * exactly the live messages published after the home answered. */

#include "base/slice.h"
#include "server/server.h"

/* Home-side state of one channel. */
typedef struct hr_chan_home {
    struct hr_chan_home *next;
    uint64_t hash;
    hr_history_t history;
    hr_presence_t presence;
    const hr_namespace_t *ns;
    uint64_t last_used_ms; /* loop clock: publish or subscribe */
    /* --redis: history is a cache of what came from Redis; while Redis is down publishes
     * are local only, under an epoch of their own (outage_epoch, "" when none). */
    uint64_t outage_next;
    char outage_epoch[13];
    /* --redis: Redis may lack a presence change of this channel (made while it was down,
     * or its write failed): the home is kept until a resync rewrote its fields. */
    bool presence_dirty;
    size_t name_len;
    char name[];
} hr_chan_home_t;

enum { HR_SUB_PENDING = 1, HR_SUB_LIVE = 2 }; /* hr_sub_t.state for channel subscriptions */
enum { HR_SUB_CONN = 0, HR_SUB_STOMP = 1 };   /* hr_sub_t.kind: owner is a conn or a STOMP sub */
enum { HR_SUB_HTTP = 2 }; /* hr_sub_t.kind: owner is an SSE or long-poll request (http_stream.c) */

/* A channel message as a STOMP subscription sees it (stomp.c builds its frames). */
typedef struct hr_chan_msg {
    const char *name;
    size_t name_len;
    uint64_t offset;
    const char *epoch;
    hr_slice_t data;               /* the JSON value */
    _Atomic(hr_refbuf_t *) *stomp; /* [2]: the shared MESSAGE tail for 1.0 and for 1.1/1.2 */
} hr_chan_msg_t;

/* Results, delivered on the requesting shard. */
typedef void (*hr_chan_publish_cb)(void *ctx, int err, uint64_t offset, const char *epoch);

typedef struct hr_chan_sub_result {
    int err;
    uint64_t top;
    char epoch[24];
    bool recovered;
    size_t nframes;
    hr_frame_t **frames; /* missed messages in order (recovery), owned by the result */
} hr_chan_sub_result_t;
typedef void (*hr_chan_subscribe_cb)(void *ctx, const hr_chan_sub_result_t *r);

typedef struct hr_chan_history_item {
    uint64_t offset;
    uint64_t time_ms;
    hr_slice_t data; /* the published JSON value, inside the item's frame */
} hr_chan_history_item_t;

typedef struct hr_chan_history_result {
    int err;
    uint64_t top;
    char epoch[24];
    bool recovered; /* with since: whether history covered the gap */
    size_t n;
    hr_chan_history_item_t *items;
    hr_frame_t **frames; /* keep items' data alive; owned by the result */
} hr_chan_history_result_t;
typedef void (*hr_chan_history_cb)(void *ctx, const hr_chan_history_result_t *r);

/* Shard set-up and tear-down (server.c). */
int hr_channels_shard_init(hr_shard_t *sh);
void hr_channels_shard_deinit(hr_shard_t *sh);

/* The namespace options for a channel name. */
const hr_namespace_t *hr_channels_namespace(const hr_server_t *srv, const char *name, size_t len);

/* Publishes data (JSON text) to a valid channel name from shard sh; cb runs on sh with
 * the offset and epoch (or err). Permission checks are the caller's. Returns 0 or
 * HR_ENOMEM (cb not called). */
/* cb's err with --redis when the publish script was sent but Redis did not answer (the
 * command timeout, the connection lost): it may or may not have been published, so it
 * is not delivered locally either. Tell the publisher to send it again (at-least-once).
 * The value is -ETIMEDOUT. */
#define HR_CHAN_EUNKNOWN (-110)
int hr_channels_publish(hr_shard_t *sh, const char *name, size_t len, const char *data, size_t dlen,
                        hr_chan_publish_cb cb, void *ctx);

/* Asks the home of sub's channel for its top offset and epoch (and, with since, the
 * missed messages), registering presence of client/user when the namespace wants it.
 * sub must be in sh->chan_subs and HR_SUB_PENDING: messages are held back from it until
 * the answer, which cb gets on sh. 0 or HR_ENOMEM. */
int hr_channels_subscribe(hr_shard_t *sh, hr_sub_t *sub, bool since, uint64_t since_offset,
                          const char *epoch, uint64_t client, const char *user,
                          hr_chan_subscribe_cb cb, void *ctx);

/* A channel subscription of client ended (unsubscribe or close): frees sub and tells the
 * home for presence. */
void hr_channels_unsubscribe(hr_shard_t *sh, hr_sub_t *sub, uint64_t client);

/* History for the API or the history command: the last limit messages, or those after
 * since (with recovered false when the ring no longer covers them). */
int hr_channels_history(hr_shard_t *sh, const char *name, size_t len, bool since,
                        uint64_t since_offset, const char *epoch, unsigned limit,
                        hr_chan_history_cb cb, void *ctx);

typedef struct hr_chan_presence_client {
    uint64_t client;
    char *user; /* NULL: anonymous */
} hr_chan_presence_client_t;

typedef struct hr_chan_presence_result {
    int err; /* HR_ESTATE: presence is off for the channel's namespace */
    size_t n;
    hr_chan_presence_client_t *clients;
} hr_chan_presence_result_t;
typedef void (*hr_chan_presence_cb)(void *ctx, const hr_chan_presence_result_t *r);

/* Who is subscribed to a channel (namespaces with presence on). cb runs on sh. */
int hr_channels_presence(hr_shard_t *sh, const char *name, size_t len, hr_chan_presence_cb cb,
                         void *ctx);

/* Graceful restart (handoff.c): a channel's home as one process hands it to the next. */
typedef struct hr_chan_snapshot_item {
    uint64_t offset;
    uint64_t time_ms;
    hr_slice_t data;   /* the published JSON value */
    hr_frame_t *frame; /* a reference keeping data alive (snapshot), or NULL (restore) */
} hr_chan_snapshot_item_t;

typedef struct hr_chan_snapshot {
    char *name;
    size_t name_len;
    char epoch[HR_HISTORY_EPOCH_MAX + 1];
    uint64_t next_offset; /* the offset the next publish gets */
    size_t n;             /* history items, consecutive offsets ending at next_offset - 1 */
    hr_chan_snapshot_item_t *items;
} hr_chan_snapshot_t;

/* Every channel home of every shard, with references to its history. Only while every
 * worker is parked (hr_server__stop_the_world) or none runs. 0 or HR_ENOMEM. */
int hr_channels_snapshot(hr_server_t *srv, hr_chan_snapshot_t **out, size_t *n);
void hr_channels_snapshot_free(hr_chan_snapshot_t *v, size_t n);
/* Before start: makes ch a channel home with its epoch, next offset and history (frames
 * rebuilt as pub_at_home builds them). 0, HR_EINVAL (inconsistent), HR_EEXIST,
 * HR_ENOMEM, HR_ESTATE (started). */
int hr_channels_restore(hr_server_t *srv, const hr_chan_snapshot_t *ch);

/* --redis (src/cluster/): a pattern subscription was added on sh (the bridge
 * PSUBSCRIBEs for it); nothing without --redis. hr_channels_unsubscribe undoes it. */
void hr_channels_pattern_added(hr_shard_t *sh, hr_sub_t *sub);

struct hr_cluster_env;
/* --redis, on the bridge thread: a message that arrived on <prefix>:ch:<name> (glob: the
 * PSUBSCRIBE pattern it matched, or NULL for a SUBSCRIBE), fanned out to this node's
 * subscribers. 0, or HR_EINVAL (bad name or data), HR_ENOMEM. */
int hr_channels__from_redis(hr_server_t *srv, hr_buf_t *scratch, const char *name, size_t len,
                            const struct hr_cluster_env *env, const char *glob, size_t glen);

/* --redis, posted to every shard when Redis (re)connects: writes the presence of its
 * channel homes to Redis again (a restarted Redis has lost it). */
void hr_channels__presence_resync(void *ctx, void *arg);

/* The /pubsub endpoint: Herald's JSON protocol (docs/protocol.md) on these channels. */
extern const hr_route_callbacks_t hr_pubsub_route;

#endif
