/* Fuzz target for the JSON pub/sub codec (src/proto/json_proto.c). Decodes arbitrary
 * bytes. A decoded command must respect the documented bounds, and every reply built
 * from its parts must be one valid JSON object whose members read back equal to what
 * went in: the id equals the frame's id, the channel its channel, the data its data.
 * A refused frame's error reply must be valid JSON too, echoing the id only when the
 * frame had a readable one. Aborts on any disagreement. */
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "herald/error.h"
#include "proto/json_proto.h"

static void check(bool ok)
{
    if (!ok)
        abort();
}

/* Parses out as one JSON object (aborting if it is not) and empties out. */
static json_t *load_reply(hr_buf_t *out)
{
    json_t *v = json_loadb((const char *)out->data, out->len, JSON_ALLOW_NUL, NULL);
    check(json_is_object(v));
    out->len = 0;
    return v;
}

static bool member_is(const json_t *o, const char *key, const void *s, size_t len)
{
    const json_t *v = json_object_get(o, key);
    return json_is_string(v) && json_string_length(v) == len &&
           memcmp(json_string_value(v), s, len) == 0;
}

/* The reply's id is the frame's id, or both are absent. */
static void check_id(const json_t *reply, const json_t *frame_id)
{
    const json_t *id = json_object_get(reply, "id");
    check(frame_id ? json_equal(id, frame_id) : id == NULL);
}

static void check_decoded(const hr_jp_cmd_t *cmd)
{
    if (cmd->type != HR_JP_PING)
        check(cmd->channel.len >= 1 && cmd->channel.len <= HR_JP_CHANNEL_MAX);
    if (cmd->type == HR_JP_HISTORY)
        check(cmd->limit >= 1 && cmd->limit <= HR_JP_LIMIT_MAX);
    if (cmd->has_since)
        check(cmd->since_offset <= HR_JP_OFFSET_MAX && cmd->since_epoch_len >= 1 &&
              cmd->since_epoch_len <= HR_JP_EPOCH_MAX);
    if (cmd->type == HR_JP_PUBLISH)
        check(cmd->data.len > 0);
}

static void reencode(const hr_jp_cmd_t *cmd, const json_t *frame, uint64_t time_ms)
{
    hr_buf_t out;
    hr_buf_init(&out);
    const json_t *frame_id = json_object_get(frame, "id");
    hr_slice_t epoch = hr_slice(cmd->since_epoch, cmd->since_epoch_len);
    hr_slice_t channel = cmd->channel.ptr ? cmd->channel : hr_slice("", 0);
    hr_slice_t data = cmd->data.ptr ? cmd->data : hr_slice("null", 4);
    const json_t *want_data = cmd->data.ptr ? json_object_get(frame, "data") : json_null();
    json_t *r;

    check(hr_jp_encode_pong(&out, &cmd->id) == 0);
    r = load_reply(&out);
    check_id(r, frame_id);
    json_decref(r);

    check(hr_jp_encode_ok_subscribe(&out, &cmd->id, channel, cmd->since_offset, epoch,
                                    cmd->has_since ? HR_JP_RECOVERED : HR_JP_RECOVERY_NONE) == 0);
    r = load_reply(&out);
    check_id(r, frame_id);
    check(member_is(r, "channel", channel.ptr, channel.len));
    check(member_is(r, "epoch", epoch.ptr, epoch.len));
    json_decref(r);

    check(hr_jp_encode_message(&out, channel, cmd->since_offset, epoch, time_ms, data) == 0);
    r = load_reply(&out);
    check(member_is(r, "channel", channel.ptr, channel.len));
    check(json_equal(json_object_get(r, "data"), want_data));
    json_decref(r);

    check(hr_jp_encode_ok_history_begin(&out, &cmd->id) == 0);
    for (unsigned i = 0; i < 3; i++)
        check(hr_jp_encode_ok_history_item(&out, channel, i, epoch, time_ms, data) == 0);
    check(hr_jp_encode_ok_history_end(&out, cmd->since_offset, epoch) == 0);
    r = load_reply(&out);
    check_id(r, frame_id);
    check(json_array_size(json_object_get(r, "messages")) == 3);
    json_decref(r);

    check(hr_jp_encode_ok_presence_begin(&out, &cmd->id) == 0);
    check(hr_jp_encode_ok_presence_item(&out, channel, epoch) == 0);
    check(hr_jp_encode_ok_presence_item(&out, epoch, hr_slice(NULL, 0)) == 0);
    check(hr_jp_encode_ok_presence_end(&out) == 0);
    r = load_reply(&out);
    check(json_array_size(json_object_get(r, "clients")) == 2);
    json_decref(r);

    check(hr_jp_encode_presence_event(&out, time_ms & 1 ? HR_JP_JOIN : HR_JP_LEAVE, channel, epoch,
                                      channel) == 0);
    r = load_reply(&out);
    check(member_is(r, "client", epoch.ptr, epoch.len));
    check(member_is(r, "user", channel.ptr, channel.len));
    json_decref(r);

    hr_buf_deinit(&out);
}

/* libFuzzer's entry point; declared here to satisfy -Wmissing-prototypes. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hr_json_proto_init();
    hr_jp_cmd_t cmd;
    hr_jp_error_t err;
    int rc = hr_jp_decode((const char *)data, size, &cmd, &err);
    json_t *frame = json_loadb((const char *)data, size,
                               JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
    const json_t *frame_id = json_is_object(frame) ? json_object_get(frame, "id") : NULL;

    if (rc == 0) {
        check(json_is_object(frame));
        check_decoded(&cmd);
        uint64_t time_ms = 0;
        for (size_t i = 0; i < size && i < 8; i++)
            time_ms = time_ms << 8 | data[i];
        reencode(&cmd, frame, time_ms);
        hr_jp_cmd_free(&cmd);
    } else {
        check(rc == HR_EPROTO || rc == HR_ENOMEM);
        check(!err.id.has || frame_id != NULL);
        hr_buf_t out;
        hr_buf_init(&out);
        check(hr_jp_encode_error(&out, &err.id, err.code, err.message) == 0);
        json_t *r = load_reply(&out);
        if (err.id.has)
            check_id(r, frame_id);
        else
            check(json_object_get(r, "id") == NULL);
        check(member_is(r, "message", err.message, strlen(err.message)));
        const char *code = hr_jp_code_name(err.code);
        check(member_is(r, "code", code, strlen(code)));
        json_decref(r);
        hr_buf_deinit(&out);
    }
    json_decref(frame);
    return 0;
}
