/* --max-connections-per-user across nodes (cluster_limits.h, docs/cluster.md "Limits").
 *
 * Redis holds, per user, a hash <prefix>:user:<user> of fields "<node id>:<incarnation>"
 * -> that node's open connections of the user. A Lua script sums the fields of live
 * nodes and increments this node's field if the sum is under the limit, all in one step,
 * so two nodes racing for a user's last slot cannot both win. A node is live while its
 * heartbeat key <prefix>:limits:node:<id> holds the incarnation named in the field: the
 * script drops every other field as it meets it, so a crashed node's slots come back
 * when its key expires (HR_CLUSTER_NODE_TTL_MS), without anyone cleaning up.
 *
 * Decrements are best effort: one lost while Redis is down would hold a slot for good,
 * and a restarted Redis has lost every count. So after a failed beat or count, or when
 * the beat's SET ... GET finds the key gone (a restart, a failover, a beat late past the
 * TTL), the node starts a new incarnation: it rewrites its field of every user from its
 * own count (limits.h, the truth for this node) under the new incarnation, then points
 * its heartbeat key at it, which retires every older field of the node at once. Cost:
 * one command per user with connections here, once per outage. A connection whose
 * count was in flight during a resync may be counted once too many or too few until it
 * closes.
 *
 * A STOMP session whose token comes in CONNECT is already open when its user is known:
 * it is counted here (hr_cluster_limits_add) but refused only by the node's own count. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/log.h"
#include "cluster/cluster.h"
#include "cluster/cluster_limits.h"
#include "herald/error.h"

/* KEYS[1] user hash; ARGV: this node's field, max, heartbeat key prefix, hash TTL ms.
 * 1 counted, 0 over the limit. */
static const char acquire_lua[] =
    "local f = redis.call('HGETALL', KEYS[1])\n"
    "local total = 0\n"
    "for i = 1, #f, 2 do\n"
    "  local live = f[i] == ARGV[1]\n"
    "  if not live then\n"
    "    local id, inc = string.match(f[i], '^(.*):(%d+)$')\n"
    "    live = id ~= nil and redis.call('GET', ARGV[3] .. id) == inc\n"
    "  end\n"
    "  if live then total = total + (tonumber(f[i + 1]) or 0)\n"
    "  else redis.call('HDEL', KEYS[1], f[i]) end\n"
    "end\n"
    "if total >= tonumber(ARGV[2]) then return 0 end\n"
    "redis.call('HINCRBY', KEYS[1], ARGV[1], 1)\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[4])\n"
    "return 1\n";

/* KEYS[1] user hash; ARGV: this node's field, hash TTL ms. Never below 0: a field that
 * reaches 0 goes (and the hash with its last field). */
static const char release_lua[] =
    "local n = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)\n"
    "if n <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end\n"
    "if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end\n"
    "return n\n";

/* KEYS[1] user hash; ARGV: this node's field (new incarnation), count, hash TTL ms, the
 * node's field prefix "<id>:" (its fields of older incarnations go). */
static const char resync_lua[] =
    "for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do\n"
    "  if f ~= ARGV[1] and string.sub(f, 1, #ARGV[4]) == ARGV[4] then\n"
    "    redis.call('HDEL', KEYS[1], f)\n"
    "  end\n"
    "end\n"
    "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[3])\n"
    "return 1\n";

static hr_cluster_script_t acquire_script, release_script, resync_script;
static pthread_once_t scripts_once = PTHREAD_ONCE_INIT;

static void init_scripts(void)
{
    hr_cluster_script_init(&acquire_script, acquire_lua);
    hr_cluster_script_init(&release_script, release_lua);
    hr_cluster_script_init(&resync_script, resync_lua);
}

void hr_cluster__limits_scripts_init(void)
{
    pthread_once(&scripts_once, init_scripts);
}

/* Longest key or field we build: prefix and user are bounded by the caller's checks;
 * anything longer is refused to Redis (counted locally only). */
#define KEY_MAX 512

bool hr_cluster_limits_active(const hr_server_t *srv)
{
    return srv->sec.max_connections_per_user > 0 && hr_cluster_enabled(srv);
}

static int user_key(const hr_server_t *srv, const char *user, char *out)
{
    int n = snprintf(out, KEY_MAX, "%s:user:%s", hr_cluster_prefix(srv), user);
    return n > 0 && n < KEY_MAX ? n : -1;
}

static int node_field(const hr_server_t *srv, unsigned inc, char *out)
{
    return snprintf(out, 64, "%s:%u", hr_cluster_node_id(srv), inc);
}

static void ignore_reply(void *ctx, const hr_cluster_reply_t *r)
{
    (void)ctx;
    (void)r;
}

/* ---------------------------------------------------------------- heartbeat */

static void beat(hr_shard_t *sh, bool fresh);

static void on_beat_timer(hr_timer_handle_t *t, void *data)
{
    (void)t;
    (void)data;
    hr_shard_t *sh = hr_server__current_shard();
    if (sh)
        beat(sh, false);
}

/* The first beat of the process, or the one right after a resync: the key may be
 * absent (it was never set, or Redis lost it), and the counts are already in place. */
static void on_fresh_beat(void *ctx, const hr_cluster_reply_t *r)
{
    hr_server_t *srv = ctx;
    if (!(r && (r->type == HR_CLUSTER_REPLY_STRING || r->type == HR_CLUSTER_REPLY_NIL)))
        atomic_store(&srv->redis.lim_stale, true);
}

/* The beat's SET ... GET answers the key's previous value. None: Redis lost it (a
 * restart, a failover, or beats late past the TTL, after which other nodes dropped this
 * node's fields): the counts are rewritten at once. */
static void on_beat(void *ctx, const hr_cluster_reply_t *r)
{
    hr_server_t *srv = ctx;
    if (r && r->type == HR_CLUSTER_REPLY_NIL) {
        atomic_store(&srv->redis.lim_stale, true);
        hr_shard_t *sh = hr_server__current_shard();
        if (sh)
            beat(sh, false);
        return;
    }
    /* Success clears nothing: a count that failed meanwhile must still be resynced. */
    if (!(r && r->type == HR_CLUSTER_REPLY_STRING) && !atomic_exchange(&srv->redis.lim_stale, true))
        hr_log_warn("cluster limits: heartbeat failed; per-user counts resync when Redis is back");
}

typedef struct resync_ctx {
    hr_buf_t users; /* NUL-terminated names, each followed by its count (uint32_t) */
    bool oom;
} resync_ctx_t;

static void collect(const void *key, size_t len, uint32_t count, void *arg)
{
    resync_ctx_t *rc = arg;
    char z = 0;
    if (rc->oom || memchr(key, 0, len))
        return;
    if (hr_buf_append(&rc->users, key, len) || hr_buf_append(&rc->users, &z, 1) ||
        hr_buf_append(&rc->users, &count, sizeof(count)))
        rc->oom = true;
}

/* A new incarnation: this node's fields rewritten from the local counts, then the
 * heartbeat key moved to it (one connection, so Redis runs them in this order). */
static void resync(hr_shard_t *sh)
{
    hr_server_t *srv = sh->srv;
    unsigned inc = atomic_load(&srv->redis.lim_inc) + 1;
    if (inc == 0)
        inc = 1;
    resync_ctx_t rc = {.oom = false};
    hr_buf_init(&rc.users);
    hr_limit_foreach(&srv->per_user, collect, &rc);
    if (rc.oom) {
        hr_buf_deinit(&rc.users);
        return; /* stays stale: tried again at the next beat */
    }
    /* Cleared before the rewrite: a failure from here on (this beat's SET, a count)
     * makes the next beat start another incarnation. */
    atomic_store(&srv->redis.lim_stale, false);
    atomic_store(&srv->redis.lim_inc, inc);
    char field[64], key[KEY_MAX], count[16], ttl[24];
    size_t flen = (size_t)node_field(srv, inc, field);
    size_t nodelen = strlen(hr_cluster_node_id(srv)) + 1; /* field's "<id>:" */
    snprintf(ttl, sizeof(ttl), "%d", HR_CLUSTER_USER_TTL_MS);
    size_t n = 0;
    for (size_t off = 0; off < rc.users.len;) {
        const char *user = (const char *)rc.users.data + off;
        size_t ulen = strlen(user);
        uint32_t cnt;
        memcpy(&cnt, rc.users.data + off + ulen + 1, sizeof(cnt));
        off += ulen + 1 + sizeof(cnt);
        int klen = user_key(srv, user, key);
        if (klen < 0)
            continue;
        snprintf(count, sizeof(count), "%u", cnt);
        const char *argv[] = {key, field, count, ttl, field};
        size_t lens[] = {(size_t)klen, flen, strlen(count), strlen(ttl), nodelen};
        hr_cluster_eval(sh, &resync_script, 1, 5, argv, lens, ignore_reply, NULL);
        n++;
    }
    hr_buf_deinit(&rc.users);
    if (n)
        hr_log_info("cluster limits: incarnation %u, %zu users recounted", inc, n);
}

/* fresh: the process' first beat (its key absent by nature). */
static void beat(hr_shard_t *sh, bool fresh)
{
    hr_server_t *srv = sh->srv;
    if (atomic_load(&srv->redis.lim_stale)) {
        if (!hr_cluster_up(srv))
            return;
        resync(sh);
        fresh = true;
    }
    char key[KEY_MAX], inc[16], ttl[24];
    int klen = snprintf(key, sizeof(key), "%s:limits:node:%s", hr_cluster_prefix(srv),
                        hr_cluster_node_id(srv));
    snprintf(inc, sizeof(inc), "%u", atomic_load(&srv->redis.lim_inc));
    snprintf(ttl, sizeof(ttl), "%d", HR_CLUSTER_NODE_TTL_MS);
    const char *argv[] = {"SET", key, inc, "PX", ttl, "GET"};
    size_t lens[] = {3, (size_t)klen, strlen(inc), 2, strlen(ttl), 3};
    if (hr_cluster_command(sh, fresh ? on_fresh_beat : on_beat, srv, 6, argv, lens) != 0)
        atomic_store(&srv->redis.lim_stale, true);
}

/* The first count of the process starts the heartbeat on the shard that asked (it stays
 * there; hr_timer_start's timers are freed with their shard). */
static void begin(hr_shard_t *sh)
{
    hr_server_t *srv = sh->srv;
    unsigned zero = 0;
    if (atomic_load(&srv->redis.lim_inc) != 0 ||
        !atomic_compare_exchange_strong(&srv->redis.lim_inc, &zero, 1))
        return;
    atomic_store(&srv->redis.lim_stale, false);
    beat(sh, true);
    if (!hr_timer_start(srv, HR_CLUSTER_NODE_BEAT_MS, HR_CLUSTER_NODE_BEAT_MS, on_beat_timer, srv))
        hr_log_warn("cluster limits: no heartbeat timer (out of memory): counts of this node "
                    "stop counting elsewhere after %d ms",
                    HR_CLUSTER_NODE_TTL_MS);
}

/* ---------------------------------------------------------------- acquire and release */

typedef struct acquire_op {
    hr_server_t *srv;
    hr_cluster_limits_cb cb;
    void *ctx;
    unsigned inc; /* the incarnation the count was asked under */
    char user[];
} acquire_op_t;

static void on_acquire(void *ctx, const hr_cluster_reply_t *r)
{
    acquire_op_t *op = ctx;
    int verdict = -1;
    if (r && r->type == HR_CLUSTER_REPLY_INTEGER)
        verdict = r->integer == 1 ? 1 : 0;
    else if (r && r->type == HR_CLUSTER_REPLY_ERROR)
        hr_log_warn("cluster limits: acquire script: %s", r->str);
    if (verdict < 0) /* counted locally only: the next beat recounts this node in Redis */
        atomic_store(&op->srv->redis.lim_stale, true);
    if (verdict == 0 && op->inc != atomic_load(&op->srv->redis.lim_inc)) {
        /* A resync while it was asked counted the connection from the local table (which
         * had it then) under the new incarnation: take it back. */
        hr_shard_t *sh = hr_server__current_shard();
        if (sh)
            hr_cluster_limits_release(sh, op->user);
    }
    hr_cluster_limits_cb cb = op->cb;
    void *cctx = op->ctx;
    hr_free(op);
    cb(cctx, verdict);
}

int hr_cluster_limits_acquire(hr_shard_t *sh, const char *user, int max, hr_cluster_limits_cb cb,
                              void *ctx)
{
    hr_server_t *srv = sh->srv;
    if (!hr_cluster_enabled(srv))
        return HR_ESTATE;
    pthread_once(&scripts_once, init_scripts);
    begin(sh);
    char key[KEY_MAX], field[64], maxs[16], nodes[KEY_MAX], ttl[24];
    int klen = user_key(srv, user, key);
    int nlen = snprintf(nodes, sizeof(nodes), "%s:limits:node:", hr_cluster_prefix(srv));
    if (klen < 0 || nlen <= 0 || nlen >= (int)sizeof(nodes))
        return HR_EINVAL;
    unsigned inc = atomic_load(&srv->redis.lim_inc);
    size_t flen = (size_t)node_field(srv, inc, field);
    snprintf(maxs, sizeof(maxs), "%d", max);
    snprintf(ttl, sizeof(ttl), "%d", HR_CLUSTER_USER_TTL_MS);
    size_t ulen = strlen(user);
    acquire_op_t *op = hr_malloc(sizeof(*op) + ulen + 1);
    if (!op)
        return HR_ENOMEM;
    op->srv = srv;
    op->cb = cb;
    op->ctx = ctx;
    op->inc = inc;
    memcpy(op->user, user, ulen + 1);
    const char *argv[] = {key, field, maxs, nodes, ttl};
    size_t lens[] = {(size_t)klen, flen, strlen(maxs), (size_t)nlen, strlen(ttl)};
    int rc = hr_cluster_eval(sh, &acquire_script, 1, 5, argv, lens, on_acquire, op);
    if (rc)
        hr_free(op);
    return rc;
}

static void on_add(void *ctx, const hr_cluster_reply_t *r)
{
    hr_server_t *srv = ctx;
    if (!r || r->type != HR_CLUSTER_REPLY_INTEGER) /* recounted at the next beat */
        atomic_store(&srv->redis.lim_stale, true);
}

void hr_cluster_limits_add(hr_shard_t *sh, const char *user)
{
    hr_server_t *srv = sh->srv;
    if (!hr_cluster_enabled(srv))
        return;
    pthread_once(&scripts_once, init_scripts);
    begin(sh);
    char key[KEY_MAX], field[64], nodes[KEY_MAX], ttl[24];
    int klen = user_key(srv, user, key);
    int nlen = snprintf(nodes, sizeof(nodes), "%s:limits:node:", hr_cluster_prefix(srv));
    if (klen < 0 || nlen <= 0 || nlen >= (int)sizeof(nodes))
        return;
    size_t flen = (size_t)node_field(srv, atomic_load(&srv->redis.lim_inc), field);
    snprintf(ttl, sizeof(ttl), "%d", HR_CLUSTER_USER_TTL_MS);
    const char *argv[] = {key, field, "2147483647", nodes, ttl};
    size_t lens[] = {(size_t)klen, flen, 10, (size_t)nlen, strlen(ttl)};
    if (hr_cluster_eval(sh, &acquire_script, 1, 5, argv, lens, on_add, srv) != 0)
        atomic_store(&srv->redis.lim_stale, true);
}

void hr_cluster_limits_release(hr_shard_t *sh, const char *user)
{
    hr_server_t *srv = sh->srv;
    if (!user || !hr_cluster_enabled(srv))
        return;
    pthread_once(&scripts_once, init_scripts);
    char key[KEY_MAX], field[64], ttl[24];
    int klen = user_key(srv, user, key);
    if (klen < 0)
        return;
    size_t flen = (size_t)node_field(srv, atomic_load(&srv->redis.lim_inc), field);
    snprintf(ttl, sizeof(ttl), "%d", HR_CLUSTER_USER_TTL_MS);
    const char *argv[] = {key, field, ttl};
    size_t lens[] = {(size_t)klen, flen, strlen(ttl)};
    hr_cluster_eval(sh, &release_script, 1, 3, argv, lens, ignore_reply, NULL);
}
