#ifndef HR_CLUSTER_CLUSTER_H
#define HR_CLUSTER_CLUSTER_H

/* The Redis bridge (--redis, docs/cluster.md): one thread with its own loop and two
 * hiredis async connections (commands; subscriptions). Shards post requests to it and
 * get the answers back on their own thread. Without --redis none of this runs:
 * hr_cluster_enabled is false and every other call answers "down". */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/server.h"

/* Reply types: the values of hiredis' REDIS_REPLY_*. */
enum {
    HR_CLUSTER_REPLY_STRING = 1,
    HR_CLUSTER_REPLY_ARRAY = 2,
    HR_CLUSTER_REPLY_INTEGER = 3,
    HR_CLUSTER_REPLY_NIL = 4,
    HR_CLUSTER_REPLY_STATUS = 5,
    HR_CLUSTER_REPLY_ERROR = 6,
    /* Not from Redis: hr_cluster_eval_tracked's "sent, no answer" (Redis may have run it). */
    HR_CLUSTER_REPLY_UNKNOWN = 100,
};

/* A Redis reply copied out of hiredis (which frees its own after the callback). */
typedef struct hr_cluster_reply {
    int type;
    long long integer;
    char *str; /* STRING, STATUS, ERROR: NUL-terminated, len bytes */
    size_t len;
    size_t n; /* ARRAY */
    struct hr_cluster_reply **elem;
} hr_cluster_reply_t;

/* Runs on the asking shard. r is NULL when Redis is down, the command timed out
 * (HR_CLUSTER_TIMEOUT_MS) or memory ran out; it is freed when cb returns. A NULL cb
 * sends the command and ignores the answer. */
typedef void (*hr_cluster_reply_cb)(void *ctx, const hr_cluster_reply_t *r);

#define HR_CLUSTER_TIMEOUT_MS 2000
#define HR_CLUSTER_NODE_ID_LEN 12

/* A Lua script run by sha (EVALSHA, falling back to EVAL on NOSCRIPT, so it survives a
 * Redis restart or SCRIPT FLUSH). Static storage; hr_cluster_script_init computes the
 * sha once. */
typedef struct hr_cluster_script {
    const char *lua;
    char sha[41];
} hr_cluster_script_t;

/* With --redis. */
bool hr_cluster_enabled(const hr_server_t *srv);
/* Both connections are up (and scripts may be run). */
bool hr_cluster_up(const hr_server_t *srv);
/* This process' node id: 12 characters of [a-z0-9], random per process, "" without
 * --redis. */
const char *hr_cluster_node_id(const hr_server_t *srv);
/* The key prefix (--redis-prefix). */
const char *hr_cluster_prefix(const hr_server_t *srv);

/* Any shard thread: sends argv to Redis on the command connection; cb(ctx, reply) runs
 * on sh. 0, or HR_ESTATE without --redis, HR_EINVAL (argc 0), HR_ENOMEM (cb not
 * called). While Redis is down, or past 65536 commands in flight, cb gets NULL at once
 * (through sh's inbox). */
int hr_cluster_command(hr_shard_t *sh, hr_cluster_reply_cb cb, void *ctx, int argc,
                       const char **argv, const size_t *argvlen);

void hr_cluster_script_init(hr_cluster_script_t *s, const char *lua);
/* EVALSHA s->sha nkeys argv...: argv holds the nkeys keys then the arguments. Same
 * contract as hr_cluster_command. */
int hr_cluster_eval(hr_shard_t *sh, hr_cluster_script_t *s, int nkeys, int argc, const char **argv,
                    const size_t *argvlen, hr_cluster_reply_cb cb, void *ctx);
/* As hr_cluster_eval, but tells "never sent" (Redis known down, the in-flight limit: cb
 * gets NULL, the script did not run) from "sent, no answer" (the timeout, or the
 * connection lost after sending: cb gets a reply of type HR_CLUSTER_REPLY_UNKNOWN, the
 * script may have run). For scripts whose effects must not be repeated locally. */
int hr_cluster_eval_tracked(hr_shard_t *sh, hr_cluster_script_t *s, int nkeys, int argc,
                            const char **argv, const size_t *argvlen, hr_cluster_reply_cb cb,
                            void *ctx);

/* Counters for /metrics (any thread). */
typedef struct hr_cluster_stats {
    bool up;
    uint64_t reconnects, messages_in, messages_out, errors;
} hr_cluster_stats_t;
void hr_cluster_stats(const hr_server_t *srv, hr_cluster_stats_t *out);

/* server.c: starts the bridge thread before the workers (0, or an error with a message
 * in err); stop joins it after they stopped. */
int hr_cluster_start(hr_server_t *srv, char *err, size_t errlen);
void hr_cluster_stop(hr_server_t *srv);

/* ---- used by channels.c */

/* Herald's scripts (scripts.c; arguments documented there), ready after start. */
extern hr_cluster_script_t hr_cluster_publish_script, hr_cluster_read_script;
extern hr_cluster_script_t hr_cluster_presence_script, hr_cluster_presence_query_script;
extern hr_cluster_script_t hr_cluster_presence_resync_script;
/* reply.c: what the publish script's answer x (from hr_cluster_eval_tracked) means.
 * DONE: Redis stored and PUBLISHed it, *offset and *epoch (x's string) are set. NOT_RUN:
 * never sent (x NULL: Redis known down) or refused (an error answer: the script's
 * PUBLISH is its last call). UNKNOWN: sent and not answered, or an answer the script
 * never gives: it may have been PUBLISHed. */
typedef enum {
    HR_CLUSTER_PUB_DONE,
    HR_CLUSTER_PUB_NOT_RUN,
    HR_CLUSTER_PUB_UNKNOWN,
} hr_cluster_pub_outcome_t;
hr_cluster_pub_outcome_t hr_cluster_publish_outcome(const hr_cluster_reply_t *x, uint64_t *offset,
                                                    const char **epoch);
/* reply.c: a deep copy of a hiredis reply (NULL on out of memory), and its free. */
struct redisReply;
hr_cluster_reply_t *hr_cluster__reply_copy(const struct redisReply *x);
void hr_cluster__reply_free(hr_cluster_reply_t *r);
/* scripts.c, for cluster.c: hashes the scripts (before the workers start); builds the
 * Redis 7 function library for backends into b (0, or -1 out of memory). */
void hr_cluster__scripts_init(void);
/* cluster_limits.c: registers the per-user limit's scripts (idempotent). */
void hr_cluster__limits_scripts_init(void);
int hr_cluster__function_build(hr_buf_t *b, const char *prefix);

/* Subscription interest of one shard in a channel (exact) or a Herald pattern: the node
 * SUBSCRIBEs / PSUBSCRIBEs on the first interested shard and UNSUBSCRIBEs after the last.
 * on_ready(ctx) runs on sh once Redis confirmed the subscription (or at once while Redis
 * is down); NULL for none. */
void hr_cluster_interest(hr_shard_t *sh, const char *name, size_t len, bool pattern, bool add,
                         void (*on_ready)(void *ctx, void *arg), void *ctx, void *arg);

#endif
