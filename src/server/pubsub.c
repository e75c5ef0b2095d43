/* The /pubsub endpoint: Herald's JSON protocol (docs/protocol.md) over the sharded
 * channels of channels.c. Each command is decoded by the pure codec (proto/json_proto),
 * answered with the id it carried, and every failure is an {"type":"error"} reply: the
 * connection stays usable. Answers that need the channel's home shard come back through
 * the inbox; by then the connection may be gone, which the (connection, seq) pair of
 * each pending operation tells. */
#include <stdio.h>
#include <string.h>

#include "auth/grant.h"
#include "base/alloc.h"
#include "broker/channel.h"
#include "herald/error.h"
#include "proto/json_proto.h"
#include "server/channels.h"

typedef struct op {
    hr_conn_t *c;
    uint32_t seq;
    hr_jp_id_t id;
    bool since;
    uint64_t since_offset;
    size_t chan_len;
    char chan[];
} op_t;

static void send_buf(hr_conn_t *c, hr_buf_t *b)
{
    hr_conn_send(c, b->data, b->len, false);
}

static void reply_error(hr_conn_t *c, const hr_jp_id_t *id, hr_jp_code_t code, const char *msg)
{
    hr_buf_t *b = &conn_shard(c)->zscratch;
    b->len = 0;
    if (hr_jp_encode_error(b, id, code, msg) == 0)
        send_buf(c, b);
}

static op_t *op_new(hr_conn_t *c, const hr_jp_cmd_t *cmd)
{
    op_t *o = hr_malloc(sizeof(*o) + cmd->channel.len + 1);
    if (!o)
        return NULL;
    o->c = c;
    o->seq = c->seq;
    o->id = cmd->id;
    o->since = cmd->has_since;
    o->since_offset = cmd->since_offset;
    o->chan_len = cmd->channel.len;
    memcpy(o->chan, cmd->channel.ptr, cmd->channel.len);
    o->chan[o->chan_len] = 0;
    return o;
}

/* The connection the operation was for, or NULL if it has closed since. */
static hr_conn_t *op_conn(const op_t *o)
{
    return o->c->seq == o->seq && o->c->phase == HR_PHASE_OPEN ? o->c : NULL;
}

static hr_sub_t *find_sub(hr_topics_t *t, const char *name, size_t len, const hr_conn_t *c)
{
    hr_topic_t *tp = hr_topics_find(t, name, len);
    if (!tp)
        return NULL;
    for (hr_list_t *n = tp->subs.next; n != &tp->subs; n = n->next) {
        hr_sub_t *s = hr_list_entry(n, hr_sub_t, topic_link);
        if (s->owner == c)
            return s;
    }
    return NULL;
}

static size_t count_subs(const hr_conn_t *c)
{
    size_t n = 0;
    for (const hr_list_t *l = c->subs.next; l != &c->subs; l = l->next)
        n++;
    return n;
}

/* ---------------------------------------------------------------- subscribe */

static void on_subscribed(void *ctx, const hr_chan_sub_result_t *r)
{
    op_t *o = ctx;
    hr_conn_t *c = op_conn(o);
    hr_shard_t *sh = c ? conn_shard(c) : NULL;
    hr_sub_t *sub = c ? find_sub(&sh->chan_subs, o->chan, o->chan_len, c) : NULL;
    if (!sub) {
        hr_free(o); /* closed or unsubscribed meanwhile */
        return;
    }
    if (r->err) {
        hr_channels_unsubscribe(sh, sub, hr_conn_id(c));
        reply_error(c, &o->id, HR_JP_INTERNAL, "could not subscribe");
        hr_free(o);
        return;
    }
    hr_buf_t *b = &sh->zscratch;
    b->len = 0;
    hr_jp_recovery_t rec = !o->since      ? HR_JP_RECOVERY_NONE
                           : r->recovered ? HR_JP_RECOVERED
                                          : HR_JP_NOT_RECOVERED;
    if (hr_jp_encode_ok_subscribe(b, &o->id, hr_slice(o->chan, o->chan_len), r->top,
                                  hr_slice(r->epoch, strlen(r->epoch)), rec) == 0)
        send_buf(c, b);
    /* The missed messages, in order, before any live one (which are held back until now). */
    for (size_t i = 0; i < r->nframes; i++)
        hr_session_send_frame(c, r->frames[i]);
    sub->last_offset = r->top;
    sub->state = HR_SUB_LIVE;
    hr_free(o);
}

static void do_subscribe(hr_conn_t *c, const hr_jp_cmd_t *cmd)
{
    hr_shard_t *sh = conn_shard(c);
    const char *name = cmd->channel.ptr;
    size_t len = cmd->channel.len;
    bool pattern = hr_channel_is_pattern(name, len);
    if (pattern ? !hr_channel_pattern_valid(name, len) : !hr_channel_name_valid(name, len)) {
        reply_error(c, &cmd->id, HR_JP_BAD_REQUEST, "invalid channel name");
        return;
    }
    if (!hr_auth_may_subscribe(hr_conn_grant(c), &sh->srv->namespaces, name, len)) {
        reply_error(c, &cmd->id, HR_JP_NOT_ALLOWED, "subscribe to this channel not allowed");
        return;
    }
    if (pattern && cmd->has_since) {
        reply_error(c, &cmd->id, HR_JP_BAD_REQUEST, "since is not supported on patterns");
        return;
    }
    /* --max-subscriptions: exact and patterns together. */
    if (count_subs(c) >= (size_t)sh->srv->sec.max_subscriptions) {
        sh->stats.limit_rejections[HR_LIMIT_MAX_SUBSCRIPTIONS]++;
        reply_error(c, &cmd->id, HR_JP_LIMIT_EXCEEDED, "too many subscriptions");
        return;
    }
    hr_topics_t *t = pattern ? &sh->chan_patterns : &sh->chan_subs;
    int rc = hr_topics_subscribe(t, name, len, c, &c->subs);
    if (rc == HR_EEXIST) {
        reply_error(c, &cmd->id, HR_JP_ALREADY_SUBSCRIBED, "already subscribed");
        return;
    }
    if (rc) {
        reply_error(c, &cmd->id, HR_JP_INTERNAL, "out of memory");
        return;
    }
    hr_sub_t *sub = hr_topics_last_of(&c->subs);
    if (pattern) {
        sub->state = HR_SUB_LIVE;
        hr_channels_pattern_added(sh, sub); /* --redis: PSUBSCRIBE */
        /* A pattern spans channels with offsets of their own: a plain ok, live only. */
        hr_buf_t *b = &sh->zscratch;
        b->len = 0;
        if (hr_jp_encode_ok(b, &cmd->id) == 0)
            send_buf(c, b);
        return;
    }
    sub->state = HR_SUB_PENDING;
    op_t *o = op_new(c, cmd);
    if (!o) {
        hr_topics_remove(t, sub);
        reply_error(c, &cmd->id, HR_JP_INTERNAL, "out of memory");
    } else if (hr_channels_subscribe(sh, sub, cmd->has_since, cmd->since_offset, cmd->since_epoch,
                                     hr_conn_id(c), hr_conn_user(c), on_subscribed, o) != 0) {
        hr_free(o);
        hr_channels_unsubscribe(sh, sub, hr_conn_id(c));
        reply_error(c, &cmd->id, HR_JP_INTERNAL, "out of memory");
    }
}

static void do_unsubscribe(hr_conn_t *c, const hr_jp_cmd_t *cmd)
{
    hr_shard_t *sh = conn_shard(c);
    hr_sub_t *sub = find_sub(&sh->chan_subs, cmd->channel.ptr, cmd->channel.len, c);
    if (!sub)
        sub = find_sub(&sh->chan_patterns, cmd->channel.ptr, cmd->channel.len, c);
    if (!sub) {
        reply_error(c, &cmd->id, HR_JP_NOT_SUBSCRIBED, "not subscribed to this channel");
        return;
    }
    hr_channels_unsubscribe(sh, sub, hr_conn_id(c));
    hr_buf_t *b = &sh->zscratch;
    b->len = 0;
    if (hr_jp_encode_ok(b, &cmd->id) == 0)
        send_buf(c, b);
}

/* ---------------------------------------------------------------- publish */

static void on_published(void *ctx, int err, uint64_t offset, const char *epoch)
{
    op_t *o = ctx;
    hr_conn_t *c = op_conn(o);
    if (c) {
        if (err == HR_EAGAIN) {
            reply_error(c, &o->id, HR_JP_UNAVAILABLE,
                        "server restarting: publish again after reconnecting");
        } else if (err == HR_CHAN_EUNKNOWN) {
            reply_error(c, &o->id, HR_JP_UNAVAILABLE,
                        "Redis did not answer: the publish may or may not have happened; publish "
                        "again to be sure");
        } else if (err) {
            reply_error(c, &o->id, HR_JP_INTERNAL, "could not publish");
        } else {
            hr_buf_t *b = &conn_shard(c)->zscratch;
            b->len = 0;
            if (hr_jp_encode_ok_publish(b, &o->id, offset, hr_slice(epoch, strlen(epoch))) == 0)
                send_buf(c, b);
        }
    }
    hr_free(o);
}

static void do_publish(hr_conn_t *c, const hr_jp_cmd_t *cmd)
{
    hr_shard_t *sh = conn_shard(c);
    if (!hr_channel_name_valid(cmd->channel.ptr, cmd->channel.len)) {
        reply_error(c, &cmd->id, HR_JP_BAD_REQUEST, "invalid channel name (no patterns here)");
        return;
    }
    const hr_namespace_t *ns = hr_channels_namespace(sh->srv, cmd->channel.ptr, cmd->channel.len);
    if (!hr_auth_may_publish(hr_conn_grant(c), ns, cmd->channel.ptr, cmd->channel.len)) {
        reply_error(c, &cmd->id, HR_JP_NOT_ALLOWED,
                    ns->client_publish && ns->access != HR_ACCESS_SERVER
                        ? "publish to this channel not allowed"
                        : "clients may not publish to this channel");
        return;
    }
    op_t *o = op_new(c, cmd);
    if (!o || hr_channels_publish(sh, cmd->channel.ptr, cmd->channel.len, cmd->data.ptr,
                                  cmd->data.len, on_published, o) != 0) {
        hr_free(o);
        reply_error(c, &cmd->id, HR_JP_INTERNAL, "out of memory");
    }
}

/* ---------------------------------------------------------------- history, presence */

static void on_history(void *ctx, const hr_chan_history_result_t *r)
{
    op_t *o = ctx;
    hr_conn_t *c = op_conn(o);
    if (c && r->err == HR_ENOENT) {
        reply_error(c, &o->id, HR_JP_NOT_FOUND, "no message was published to this channel");
    } else if (c && r->err) {
        reply_error(c, &o->id, HR_JP_INTERNAL, "could not read history");
    } else if (c) {
        hr_buf_t *b = &conn_shard(c)->zscratch;
        b->len = 0;
        hr_slice_t chan = hr_slice(o->chan, o->chan_len),
                   epoch = hr_slice(r->epoch, strlen(r->epoch));
        int rc = hr_jp_encode_ok_history_begin(b, &o->id);
        for (size_t i = 0; rc == 0 && i < r->n; i++)
            rc = hr_jp_encode_ok_history_item(b, chan, r->items[i].offset, epoch,
                                              r->items[i].time_ms, r->items[i].data);
        if (rc == 0)
            rc = hr_jp_encode_ok_history_end(b, r->top, epoch);
        if (rc == 0)
            send_buf(c, b);
        else
            reply_error(c, &o->id, HR_JP_INTERNAL, "out of memory");
    }
    hr_free(o);
}

static void on_presence(void *ctx, const hr_chan_presence_result_t *r)
{
    op_t *o = ctx;
    hr_conn_t *c = op_conn(o);
    if (c && r->err == HR_ESTATE) {
        reply_error(c, &o->id, HR_JP_NOT_ALLOWED, "presence is off for this channel");
    } else if (c && r->err) {
        reply_error(c, &o->id, HR_JP_INTERNAL, "could not read presence");
    } else if (c) {
        hr_buf_t *b = &conn_shard(c)->zscratch;
        b->len = 0;
        int rc = hr_jp_encode_ok_presence_begin(b, &o->id);
        for (size_t i = 0; rc == 0 && i < r->n; i++) {
            char cid[24];
            int n = snprintf(cid, sizeof(cid), "%llu", (unsigned long long)r->clients[i].client);
            const char *u = r->clients[i].user;
            rc = hr_jp_encode_ok_presence_item(b, hr_slice(cid, (size_t)n),
                                               hr_slice(u, u ? strlen(u) : 0));
        }
        if (rc == 0)
            rc = hr_jp_encode_ok_presence_end(b);
        if (rc == 0)
            send_buf(c, b);
    }
    hr_free(o);
}

static void do_query(hr_conn_t *c, const hr_jp_cmd_t *cmd)
{
    hr_shard_t *sh = conn_shard(c);
    if (!hr_channel_name_valid(cmd->channel.ptr, cmd->channel.len)) {
        reply_error(c, &cmd->id, HR_JP_BAD_REQUEST, "invalid channel name (no patterns here)");
        return;
    }
    if (!hr_auth_may_subscribe(hr_conn_grant(c), &sh->srv->namespaces, cmd->channel.ptr,
                               cmd->channel.len)) {
        reply_error(c, &cmd->id, HR_JP_NOT_ALLOWED, "reading this channel not allowed");
        return;
    }
    op_t *o = op_new(c, cmd);
    int rc =
        !o ? HR_ENOMEM
        : cmd->type == HR_JP_HISTORY
            ? hr_channels_history(sh, cmd->channel.ptr, cmd->channel.len, cmd->has_since,
                                  cmd->since_offset, cmd->since_epoch, cmd->limit, on_history, o)
            : hr_channels_presence(sh, cmd->channel.ptr, cmd->channel.len, on_presence, o);
    if (rc) {
        hr_free(o);
        reply_error(c, &cmd->id, HR_JP_INTERNAL, "out of memory");
    }
}

/* ---------------------------------------------------------------- route */

static void on_message(hr_conn_t *c, const uint8_t *data, size_t len, bool binary)
{
    if (binary) {
        reply_error(c, NULL, HR_JP_BAD_REQUEST, "frames must be text (JSON)");
        return;
    }
    hr_jp_cmd_t cmd;
    hr_jp_error_t err;
    if (hr_jp_decode((const char *)data, len, &cmd, &err) != 0) {
        reply_error(c, &err.id, err.code, err.message);
        return;
    }
    switch (cmd.type) {
    case HR_JP_SUBSCRIBE:
        do_subscribe(c, &cmd);
        break;
    case HR_JP_UNSUBSCRIBE:
        do_unsubscribe(c, &cmd);
        break;
    case HR_JP_PUBLISH:
        do_publish(c, &cmd);
        break;
    case HR_JP_HISTORY:
    case HR_JP_PRESENCE:
        do_query(c, &cmd);
        break;
    case HR_JP_PING: {
        hr_buf_t *b = &conn_shard(c)->zscratch;
        b->len = 0;
        if (hr_jp_encode_pong(b, &cmd.id) == 0)
            send_buf(c, b);
        break;
    }
    }
    hr_jp_cmd_free(&cmd);
}

const hr_route_callbacks_t hr_pubsub_route = {.on_message = on_message};
