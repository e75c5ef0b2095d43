/* Herald's Lua on Redis (docs/cluster.md). Keys of channel NAME under prefix P:
 *   P:off:NAME    the last offset (INCR)
 *   P:epoch:NAME  the epoch: set once (SET NX), so it changes only when the keys are lost
 *   P:hist:NAME   history: a list of "OFFSET TIME_MS DATA", trimmed to the history size
 *   P:ch:NAME     the pub/sub channel: envelope "H1 NODE OFFSET EPOCH TIME_MS\nDATA"
 * All three keys expire KEEP ms after the last publish (a long-idle channel starts over
 * under a new epoch; recovering clients are told). */
#include "cluster/cluster.h"

#define PUBLISH_BODY                                                                               \
    "local function herald_pub(p, name, data, node, size, keep, cand)\n"                           \
    "  local ko, ke, kh = p..':off:'..name, p..':epoch:'..name, p..':hist:'..name\n"               \
    "  redis.call('SET', ke, cand, 'NX')\n"                                                        \
    "  local epoch = redis.call('GET', ke)\n"                                                      \
    "  local off = redis.call('INCR', ko)\n"                                                       \
    "  local t = redis.call('TIME')\n"                                                             \
    "  local ms = tostring(tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))\n"           \
    "  local o = tostring(off)\n"                                                                  \
    "  if size > 0 then\n"                                                                         \
    "    redis.call('RPUSH', kh, o..' '..ms..' '..data)\n"                                         \
    "    redis.call('LTRIM', kh, -size, -1)\n"                                                     \
    "    redis.call('PEXPIRE', kh, keep)\n"                                                        \
    "  end\n"                                                                                      \
    "  redis.call('PEXPIRE', ko, keep)\n"                                                          \
    "  redis.call('PEXPIRE', ke, keep)\n"                                                          \
    "  redis.call('PUBLISH', p..':ch:'..name, 'H1 '..node..' '..o..' '..epoch..' "                 \
    "'..ms..'\\n'..data)\n"                                                                        \
    "  return {off, epoch, ms}\n"                                                                  \
    "end\n"

/* ARGV: prefix, name, data, node, history size, keep ms, epoch candidate.
 * Returns {offset, epoch, time_ms}. */
static const char publish_lua[] =
    PUBLISH_BODY "return herald_pub(ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]),\n"
                 "  tonumber(ARGV[6]), ARGV[7])\n";

/* ARGV: prefix, name, since (-1: none), epoch of since, limit, epoch candidate, keep ms.
 * Returns {top, epoch, covered (1: every entry after since is here), entries}: with
 * since and covered the entries after since (at most limit), else the last limit. */
static const char read_lua[] =
    "local p, name = ARGV[1], ARGV[2]\n"
    "local since, limit = tonumber(ARGV[3]), tonumber(ARGV[5])\n"
    "local ko, ke, kh = p..':off:'..name, p..':epoch:'..name, p..':hist:'..name\n"
    "if redis.call('SET', ke, ARGV[6], 'NX') then redis.call('PEXPIRE', ke, tonumber(ARGV[7])) "
    "end\n"
    "local epoch = redis.call('GET', ke)\n"
    "local top = tonumber(redis.call('GET', ko) or '0')\n"
    "local len = redis.call('LLEN', kh)\n"
    "local first = top - len + 1\n"
    "local covered, items = 0, {}\n"
    "if since >= 0 and epoch == ARGV[4] and since <= top and since + 1 >= first then\n"
    "  covered = 1\n"
    "  local n = top - since\n"
    "  if n > limit then n = limit end\n"
    "  if n > 0 then items = redis.call('LRANGE', kh, since + 1 - first, since - first + n) end\n"
    "elseif limit > 0 then\n"
    "  items = redis.call('LRANGE', kh, -limit, -1)\n"
    "end\n"
    "return {top, epoch, covered, items}\n";

/* FUNCTION LOAD REPLACE at connect (Redis 7), for backends: FCALL <prefix>_publish 0 NAME
 * DATA [SIZE]. The prefix is the node's; the epoch candidate comes from TIME. */
int hr_cluster__function_build(hr_buf_t *b, const char *prefix)
{
    const char *parts[] = {
        "#!lua name=",
        prefix,
        "\n" PUBLISH_BODY "redis.register_function('",
        prefix,
        "_publish', function(keys, args)\n"
        "  local t = redis.call('TIME')\n"
        "  local cand = string.format('b%011d', (tonumber(t[1]) % 100000) * 1000000 + "
        "tonumber(t[2]))\n"
        "  return herald_pub('",
        prefix,
        "', args[1], args[2], 'backend', tonumber(args[3] or '100'), 21600000, cand)\n"
        "end)\n"};
    b->len = 0;
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
        if (hr_buf_append_str(b, parts[i]) != 0)
            return -1;
    return 0;
}

/* Shared presence: hash P:presence:NAME of "NODE:CLIENT" -> user ("" anonymous).
 * ARGV: prefix, name, node, client, user, join (1/0), keep ms, announce (1/0). With
 * announce the change is PUBLISHed ("P1 ..." envelope) for the other nodes' subscribers. */
static const char presence_lua[] =
    "local p, name, node, client, user = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]\n"
    "local key = p..':presence:'..name\n"
    "if ARGV[6] == '1' then\n"
    "  redis.call('HSET', key, node..':'..client, user)\n"
    "  redis.call('PEXPIRE', key, tonumber(ARGV[7]))\n"
    "else\n"
    "  redis.call('HDEL', key, node..':'..client)\n"
    "end\n"
    "if ARGV[8] == '1' then\n"
    "  local kind = 'leave'\n"
    "  if ARGV[6] == '1' then kind = 'join' end\n"
    "  redis.call('PUBLISH', p..':ch:'..name, 'P1 '..node..' '..kind..' '..client..'\\n'..user)\n"
    "end\n"
    "return 1\n";

/* ARGV: prefix, name. Returns {client, user, client, user, ...} of the nodes whose
 * heartbeat key P:node:NODE exists; fields of dead nodes are removed on the way. */
static const char presence_query_lua[] =
    "local p = ARGV[1]\n"
    "local key = p..':presence:'..ARGV[2]\n"
    "local all = redis.call('HGETALL', key)\n"
    "local alive, out = {}, {}\n"
    "for i = 1, #all, 2 do\n"
    "  local node, client = string.match(all[i], '^([^:]+):(%d+)$')\n"
    "  local ok = false\n"
    "  if node then\n"
    "    if alive[node] == nil then alive[node] = redis.call('EXISTS', p..':node:'..node) == 1 "
    "end\n"
    "    ok = alive[node]\n"
    "  end\n"
    "  if ok then\n"
    "    out[#out + 1] = client\n"
    "    out[#out + 1] = all[i + 1]\n"
    "  else\n"
    "    redis.call('HDEL', key, all[i])\n"
    "  end\n"
    "end\n"
    "return out\n";

/* After a reconnect: this node's fields of one channel become exactly the given ones.
 * ARGV: prefix, name, node, keep ms, then client, user pairs. */
static const char presence_resync_lua[] =
    "local p, name, node = ARGV[1], ARGV[2], ARGV[3]\n"
    "local key, pre = p..':presence:'..name, node..':'\n"
    "for _, f in ipairs(redis.call('HKEYS', key)) do\n"
    "  if string.sub(f, 1, #pre) == pre then redis.call('HDEL', key, f) end\n"
    "end\n"
    "for i = 5, #ARGV - 1, 2 do redis.call('HSET', key, pre..ARGV[i], ARGV[i + 1]) end\n"
    "if #ARGV >= 6 then redis.call('PEXPIRE', key, tonumber(ARGV[4])) end\n"
    "return 1\n";

hr_cluster_script_t hr_cluster_publish_script, hr_cluster_read_script;
hr_cluster_script_t hr_cluster_presence_script, hr_cluster_presence_query_script;
hr_cluster_script_t hr_cluster_presence_resync_script;

void hr_cluster__scripts_init(void)
{
    hr_cluster_script_init(&hr_cluster_publish_script, publish_lua);
    hr_cluster_script_init(&hr_cluster_read_script, read_lua);
    hr_cluster_script_init(&hr_cluster_presence_script, presence_lua);
    hr_cluster_script_init(&hr_cluster_presence_query_script, presence_query_lua);
    hr_cluster_script_init(&hr_cluster_presence_resync_script, presence_resync_lua);
    hr_cluster__limits_scripts_init(); /* all registered before the bridge connects */
}
