/* Unit tests for the JSON pub/sub codec (src/proto/json_proto.c): every frame type with
 * and without its optional members, every bad_request class, id echo, data round trips,
 * every encoder's output read back with jansson member by member (strings with quotes,
 * backslashes, control bytes, NUL and multi-byte UTF-8), timestamp formatting, and
 * allocation failure at every step of decoding and encoding. */
#include "test_util.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "herald/error.h"
#include "proto/json_proto.h"

/* Quote, backslash, control bytes, NUL, 2-, 3- and 4-byte UTF-8. */
static const char tricky[] = "q\"b\\s/\x01\x1f\n\t\x7f \xc3\xbc \xe6\x97\xa5 \xf0\x9f\x98\x80 \0z";
#define TRICKY_LEN (sizeof tricky - 1)

static hr_slice_t sl(const char *s)
{
    return hr_slice(s, strlen(s));
}

static void decode_ok(const char *text, hr_jp_cmd_t *cmd)
{
    hr_jp_error_t err;
    int rc = hr_jp_decode(text, strlen(text), cmd, &err);
    if (rc != 0)
        fail_msg("decode of %s failed: %s (%s)", text, err.message, hr_jp_code_name(err.code));
}

/* Decodes text, expects failure with code; id_text NULL means no id may be echoed. */
static void decode_fails(const char *text, hr_jp_code_t code, const char *id_text)
{
    hr_jp_cmd_t cmd;
    hr_jp_error_t err;
    int rc = hr_jp_decode(text, strlen(text), &cmd, &err);
    if (rc == 0)
        fail_msg("decode of %s should fail", text);
    assert_int_equal(rc, HR_EPROTO);
    assert_int_equal(err.code, code);
    assert_true(err.message[0] != '\0');
    if (id_text) {
        assert_true(err.id.has);
        assert_string_equal(err.id.text, id_text);
        assert_int_equal(err.id.len, strlen(id_text));
    } else {
        assert_false(err.id.has);
    }
}

static void assert_slice_eq(hr_slice_t s, const void *want, size_t len)
{
    assert_int_equal(s.len, len);
    assert_memory_equal(s.ptr, want, len);
}

static void assert_slice_str(hr_slice_t s, const char *want)
{
    assert_slice_eq(s, want, strlen(want));
}

/* Parses out[0..len) as exactly one JSON object and resets out. */
static json_t *load_out(hr_buf_t *out)
{
    json_error_t jerr;
    json_t *v = json_loadb((const char *)out->data, out->len, JSON_ALLOW_NUL, &jerr);
    if (!v)
        fail_msg("invalid JSON (%s): %.*s", jerr.text, (int)out->len, (const char *)out->data);
    assert_true(json_is_object(v));
    out->len = 0;
    return v;
}

static void assert_member_str(const json_t *o, const char *key, const void *want, size_t len)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_string(v))
        fail_msg("member %s is not a string", key);
    assert_int_equal(json_string_length(v), len);
    assert_memory_equal(json_string_value(v), want, len);
}

static void assert_member_int(const json_t *o, const char *key, json_int_t want)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_integer(v))
        fail_msg("member %s is not an integer", key);
    assert_true(json_integer_value(v) == want);
}

static void assert_no_member(const json_t *o, const char *key)
{
    assert_null(json_object_get(o, key));
}

static int setup(void **state)
{
    (void)state;
    hr_json_proto_init();
    return 0;
}

/* ------------------------------------------------------------------------------------
 * Decoding valid frames
 * ---------------------------------------------------------------------------------- */

static void test_jp_decode_subscribe_minimal(void **state)
{
    (void)state;
    hr_jp_cmd_t cmd;
    decode_ok("{\"type\":\"subscribe\",\"channel\":\"orders.*\"}", &cmd);
    assert_int_equal(cmd.type, HR_JP_SUBSCRIBE);
    assert_false(cmd.id.has);
    assert_slice_str(cmd.channel, "orders.*");
    assert_int_equal(((char *)cmd.channel.ptr)[cmd.channel.len], '\0');
    assert_false(cmd.has_since);
    assert_int_equal(cmd.data.len, 0);
    hr_jp_cmd_free(&cmd);
}

static void test_jp_decode_subscribe_with_since_and_id(void **state)
{
    (void)state;
    hr_jp_cmd_t cmd;
    decode_ok("{\"channel\":\"orders.>\",\"id\":7,\"type\":\"subscribe\","
              "\"since\":{\"offset\":18,\"epoch\":\"k3j9x0\"}}",
              &cmd);
    assert_int_equal(cmd.type, HR_JP_SUBSCRIBE);
    assert_true(cmd.id.has);
    assert_string_equal(cmd.id.text, "7");
    assert_slice_str(cmd.channel, "orders.>");
    assert_true(cmd.has_since);
    assert_true(cmd.since_offset == 18);
    assert_int_equal(cmd.since_epoch_len, 6);
    assert_string_equal(cmd.since_epoch, "k3j9x0");
    hr_jp_cmd_free(&cmd);

    decode_ok("{\"type\":\"subscribe\",\"channel\":\"a\","
              "\"since\":{\"offset\":9007199254740991,\"epoch\":\"e\"}}",
              &cmd);
    assert_true(cmd.since_offset == HR_JP_OFFSET_MAX);
    hr_jp_cmd_free(&cmd);

    decode_ok("{\"type\":\"subscribe\",\"channel\":\"a\",\"since\":{\"offset\":0,\"epoch\":"
              "\"0123456789012345678901234567890123456789012345678901234567890123\"}}",
              &cmd);
    assert_true(cmd.since_offset == 0);
    assert_int_equal(cmd.since_epoch_len, 64);
    hr_jp_cmd_free(&cmd);
}

static void test_jp_decode_unsubscribe(void **state)
{
    (void)state;
    hr_jp_cmd_t cmd;
    decode_ok("{\"type\":\"unsubscribe\",\"channel\":\"chat\",\"id\":\"u1\"}", &cmd);
    assert_int_equal(cmd.type, HR_JP_UNSUBSCRIBE);
    assert_slice_str(cmd.channel, "chat");
    assert_string_equal(cmd.id.text, "\"u1\"");
    hr_jp_cmd_free(&cmd);
}

static void test_jp_decode_publish_data_round_trip(void **state)
{
    (void)state;
    static const struct {
        const char *frame;
        const char *data;
    } cases[] = {
        {"{\"type\":\"publish\",\"channel\":\"c\",\"data\":null}", "null"},
        {"{\"type\":\"publish\",\"channel\":\"c\",\"data\":42}", "42"},
        {"{\"type\":\"publish\",\"channel\":\"c\",\"data\":\"x\\\"y\"}", "\"x\\\"y\""},
        {"{\"type\":\"publish\",\"channel\":\"c\",\"data\" : { \"a\" : [1, 2, {\"b\": true}],"
         " \"c\": {\"d\": {\"e\": false}} } }",
         "{\"a\":[1,2,{\"b\":true}],\"c\":{\"d\":{\"e\":false}}}"},
        {"{\"type\":\"publish\",\"channel\":\"c\",\"data\":"
         "\"\xc3\xbc\xe6\x97\xa5\xf0\x9f\x98\x80\"}",
         "\"\xc3\xbc\xe6\x97\xa5\xf0\x9f\x98\x80\""},
        {"{\"type\":\"publish\",\"channel\":\"c\",\"data\":\"\\u00fc\\ud83d\\ude00\"}",
         "\"\xc3\xbc\xf0\x9f\x98\x80\""},
        {"{\"type\":\"publish\",\"channel\":\"c\",\"data\":[]}", "[]"},
        {"{\"type\":\"publish\",\"channel\":\"c\",\"data\":\"a\\u0000b\"}", "\"a\\u0000b\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hr_jp_cmd_t cmd;
        decode_ok(cases[i].frame, &cmd);
        assert_int_equal(cmd.type, HR_JP_PUBLISH);
        assert_slice_str(cmd.channel, "c");
        assert_slice_str(cmd.data, cases[i].data);
        assert_int_equal(((char *)cmd.data.ptr)[cmd.data.len], '\0');

        /* The stored text means the same value as the frame's data member. */
        json_t *frame = json_loads(cases[i].frame, JSON_ALLOW_NUL, NULL);
        json_t *back =
            json_loadb(cmd.data.ptr, cmd.data.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        assert_non_null(frame);
        assert_non_null(back);
        assert_true(json_equal(json_object_get(frame, "data"), back));
        json_decref(frame);
        json_decref(back);
        hr_jp_cmd_free(&cmd);
    }
}

static void test_jp_decode_history(void **state)
{
    (void)state;
    hr_jp_cmd_t cmd;
    decode_ok("{\"type\":\"history\",\"channel\":\"h\"}", &cmd);
    assert_int_equal(cmd.type, HR_JP_HISTORY);
    assert_int_equal(cmd.limit, HR_JP_LIMIT_DEFAULT);
    assert_false(cmd.has_since);
    hr_jp_cmd_free(&cmd);

    decode_ok("{\"type\":\"history\",\"channel\":\"h\",\"limit\":1}", &cmd);
    assert_int_equal(cmd.limit, 1);
    hr_jp_cmd_free(&cmd);

    decode_ok("{\"type\":\"history\",\"channel\":\"h\",\"limit\":1000,\"id\":-3,"
              "\"since\":{\"epoch\":\"ep\",\"offset\":5}}",
              &cmd);
    assert_int_equal(cmd.limit, 1000);
    assert_true(cmd.has_since);
    assert_true(cmd.since_offset == 5);
    assert_string_equal(cmd.since_epoch, "ep");
    assert_string_equal(cmd.id.text, "-3");
    hr_jp_cmd_free(&cmd);
}

static void test_jp_decode_presence(void **state)
{
    (void)state;
    hr_jp_cmd_t cmd;
    decode_ok("{\"type\":\"presence\",\"channel\":\"room.1\"}", &cmd);
    assert_int_equal(cmd.type, HR_JP_PRESENCE);
    assert_slice_str(cmd.channel, "room.1");
    assert_int_equal(cmd.limit, 0);
    hr_jp_cmd_free(&cmd);
}

static void test_jp_decode_ping(void **state)
{
    (void)state;
    hr_jp_cmd_t cmd;
    decode_ok("{\"type\":\"ping\"}", &cmd);
    assert_int_equal(cmd.type, HR_JP_PING);
    assert_false(cmd.id.has);
    assert_null(cmd.channel.ptr);
    hr_jp_cmd_free(&cmd);

    /* A channel on a ping is an unknown member for that type: ignored, not checked. */
    decode_ok("{\"type\":\"ping\",\"id\":1,\"channel\":5}", &cmd);
    assert_string_equal(cmd.id.text, "1");
    assert_null(cmd.channel.ptr);
    hr_jp_cmd_free(&cmd);
}

static void test_jp_decode_ignores_unknown_members(void **state)
{
    (void)state;
    hr_jp_cmd_t cmd;
    decode_ok("{\"type\":\"subscribe\",\"channel\":\"c\",\"future\":{\"x\":[1]},\"limit\":\"?\","
              "\"data\":1}",
              &cmd);
    assert_int_equal(cmd.type, HR_JP_SUBSCRIBE);
    assert_int_equal(cmd.data.len, 0);
    hr_jp_cmd_free(&cmd);

    /* since means nothing to publish, so its shape is not checked there. */
    decode_ok("{\"type\":\"publish\",\"channel\":\"c\",\"data\":1,\"since\":7}", &cmd);
    assert_false(cmd.has_since);
    hr_jp_cmd_free(&cmd);
}

static void test_jp_decode_channel_bounds(void **state)
{
    (void)state;
    char frame[600];
    char name[300];
    memset(name, 'n', sizeof name);
    name[255] = '\0';
    snprintf(frame, sizeof frame, "{\"type\":\"presence\",\"channel\":\"%s\"}", name);
    hr_jp_cmd_t cmd;
    decode_ok(frame, &cmd);
    assert_int_equal(cmd.channel.len, 255);
    hr_jp_cmd_free(&cmd);

    name[255] = 'n';
    name[256] = '\0';
    snprintf(frame, sizeof frame, "{\"type\":\"presence\",\"channel\":\"%s\",\"id\":2}", name);
    decode_fails(frame, HR_JP_BAD_REQUEST, "2");

    /* Bytes, not characters: 128 two-byte characters are 256 bytes. */
    size_t at = 0;
    for (int i = 0; i < 128; i++) {
        name[at++] = (char)0xc3;
        name[at++] = (char)0xbc;
    }
    name[at] = '\0';
    snprintf(frame, sizeof frame, "{\"type\":\"presence\",\"channel\":\"%s\"}", name);
    decode_fails(frame, HR_JP_BAD_REQUEST, NULL);
}

/* ------------------------------------------------------------------------------------
 * Ids
 * ---------------------------------------------------------------------------------- */

static void check_id(const char *frame, const char *want_text, const json_t *want_value)
{
    hr_jp_cmd_t cmd;
    decode_ok(frame, &cmd);
    assert_true(cmd.id.has);
    assert_string_equal(cmd.id.text, want_text);
    assert_int_equal(cmd.id.len, strlen(want_text));

    hr_buf_t out;
    hr_buf_init(&out);
    assert_int_equal(hr_jp_encode_pong(&out, &cmd.id), 0);
    json_t *reply = load_out(&out);
    assert_true(json_equal(json_object_get(reply, "id"), want_value));
    json_decref(reply);
    hr_buf_deinit(&out);
    hr_jp_cmd_free(&cmd);
}

static void test_jp_decode_id_echo(void **state)
{
    (void)state;
    json_t *v = json_integer(17);
    check_id("{\"type\":\"ping\",\"id\":17}", "17", v);
    json_decref(v);

    v = json_integer(-9007199254740993LL);
    check_id("{\"type\":\"ping\",\"id\":-9007199254740993}", "-9007199254740993", v);
    json_decref(v);

    v = json_string("a1");
    check_id("{\"type\":\"ping\",\"id\":\"a1\"}", "\"a1\"", v);
    json_decref(v);

    v = json_string("");
    check_id("{\"type\":\"ping\",\"id\":\"\"}", "\"\"", v);
    json_decref(v);

    v = json_string("q\"b\\n\n/\xc3\xbc");
    check_id("{\"type\":\"ping\",\"id\":\"q\\\"b\\\\n\\n\\/\\u00fc\"}",
             "\"q\\\"b\\\\n\\u000a/\xc3\xbc\"", v);
    json_decref(v);

    /* 64 control bytes: the longest escaped form, 386 bytes. */
    char frame[512] = "{\"type\":\"ping\",\"id\":\"";
    char raw[65];
    for (int i = 0; i < 64; i++) {
        strcat(frame, "\\u0001");
        raw[i] = 1;
    }
    raw[64] = '\0';
    strcat(frame, "\"}");
    hr_jp_cmd_t cmd;
    decode_ok(frame, &cmd);
    assert_int_equal(cmd.id.len, 64 * 6 + 2);
    hr_jp_cmd_free(&cmd);
    v = json_string(raw);
    char want[HR_JP_ID_CAP] = "\"";
    for (int i = 0; i < 64; i++)
        strcat(want, "\\u0001");
    strcat(want, "\"");
    check_id(frame, want, v);
    json_decref(v);
}

static void test_jp_decode_bad_id_is_not_echoed(void **state)
{
    (void)state;
    decode_fails("{\"type\":\"ping\",\"id\":{}}", HR_JP_BAD_REQUEST, NULL);
    decode_fails("{\"type\":\"ping\",\"id\":[1]}", HR_JP_BAD_REQUEST, NULL);
    decode_fails("{\"type\":\"ping\",\"id\":1.5}", HR_JP_BAD_REQUEST, NULL);
    decode_fails("{\"type\":\"ping\",\"id\":1.0}", HR_JP_BAD_REQUEST, NULL);
    decode_fails("{\"type\":\"ping\",\"id\":1e2}", HR_JP_BAD_REQUEST, NULL);
    decode_fails("{\"type\":\"ping\",\"id\":true}", HR_JP_BAD_REQUEST, NULL);
    decode_fails("{\"type\":\"ping\",\"id\":null}", HR_JP_BAD_REQUEST, NULL);
    decode_fails("{\"type\":\"ping\",\"id\":"
                 "\"01234567890123456789012345678901234567890123456789012345678901234\"}",
                 HR_JP_BAD_REQUEST, NULL);
    /* Beyond 64-bit integers jansson refuses the whole text. */
    decode_fails("{\"type\":\"ping\",\"id\":99999999999999999999}", HR_JP_BAD_REQUEST, NULL);

    hr_jp_cmd_t cmd;
    decode_ok("{\"type\":\"ping\",\"id\":"
              "\"0123456789012345678901234567890123456789012345678901234567890123\"}",
              &cmd);
    assert_int_equal(cmd.id.len, 66);
    hr_jp_cmd_free(&cmd);
}

/* ------------------------------------------------------------------------------------
 * bad_request and unknown_type
 * ---------------------------------------------------------------------------------- */

static void test_jp_decode_not_json_is_bad_request(void **state)
{
    (void)state;
    decode_fails("", HR_JP_BAD_REQUEST, NULL);
    decode_fails("hello", HR_JP_BAD_REQUEST, NULL);
    decode_fails("{\"type\":\"ping\"", HR_JP_BAD_REQUEST, NULL);
    decode_fails("{\"type\":\"ping\",}", HR_JP_BAD_REQUEST, NULL);
    decode_fails("{\"type\":\"ping\"} {}", HR_JP_BAD_REQUEST, NULL);
    decode_fails("{'type':'ping'}", HR_JP_BAD_REQUEST, NULL);
    decode_fails("{\"type\":\"ping\",\"id\":1,\"id\":2}", HR_JP_BAD_REQUEST, NULL);
    decode_fails("{\"type\":\"p\xff\"}", HR_JP_BAD_REQUEST, NULL);

    /* Not NUL-terminated: only len bytes are read. */
    const char text[] = "{\"type\":\"ping\"}garbage";
    hr_jp_cmd_t cmd;
    hr_jp_error_t err;
    assert_int_equal(hr_jp_decode(text, 15, &cmd, &err), 0);
    hr_jp_cmd_free(&cmd);
}

static void test_jp_decode_not_object_is_bad_request(void **state)
{
    (void)state;
    decode_fails("[]", HR_JP_BAD_REQUEST, NULL);
    decode_fails("[{\"type\":\"ping\"}]", HR_JP_BAD_REQUEST, NULL);
    decode_fails("\"ping\"", HR_JP_BAD_REQUEST, NULL);
    decode_fails("5", HR_JP_BAD_REQUEST, NULL);
    decode_fails("null", HR_JP_BAD_REQUEST, NULL);
}

static void test_jp_decode_type_missing_or_not_string(void **state)
{
    (void)state;
    decode_fails("{}", HR_JP_BAD_REQUEST, NULL);
    decode_fails("{\"id\":4,\"channel\":\"c\"}", HR_JP_BAD_REQUEST, "4");
    decode_fails("{\"id\":4,\"type\":1}", HR_JP_BAD_REQUEST, "4");
    decode_fails("{\"id\":\"x\",\"type\":null}", HR_JP_BAD_REQUEST, "\"x\"");
    decode_fails("{\"type\":[\"ping\"]}", HR_JP_BAD_REQUEST, NULL);
}

static void test_jp_decode_unknown_type(void **state)
{
    (void)state;
    decode_fails("{\"type\":\"dance\",\"id\":5}", HR_JP_UNKNOWN_TYPE, "5");
    decode_fails("{\"type\":\"PING\"}", HR_JP_UNKNOWN_TYPE, NULL);
    decode_fails("{\"type\":\"\"}", HR_JP_UNKNOWN_TYPE, NULL);
    decode_fails("{\"type\":\"ping\\u0000\"}", HR_JP_UNKNOWN_TYPE, NULL);
    decode_fails("{\"type\":\"pingpong\"}", HR_JP_UNKNOWN_TYPE, NULL);

    /* The message names the type, made safe for the wire. */
    hr_jp_cmd_t cmd;
    hr_jp_error_t err;
    const char *t = "{\"type\":\"\\n\xc3\xbc\"}";
    assert_int_equal(hr_jp_decode(t, strlen(t), &cmd, &err), HR_EPROTO);
    assert_string_equal(err.message, "unknown type \"???\"");
}

static void test_jp_decode_channel_missing_or_ill_typed(void **state)
{
    (void)state;
    static const char *const types[] = {"subscribe", "unsubscribe", "publish", "history",
                                        "presence"};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        char f[200];
        snprintf(f, sizeof f, "{\"type\":\"%s\",\"id\":1,\"data\":0}", types[i]);
        decode_fails(f, HR_JP_BAD_REQUEST, "1");
        snprintf(f, sizeof f, "{\"type\":\"%s\",\"id\":1,\"data\":0,\"channel\":7}", types[i]);
        decode_fails(f, HR_JP_BAD_REQUEST, "1");
        snprintf(f, sizeof f, "{\"type\":\"%s\",\"id\":1,\"data\":0,\"channel\":null}", types[i]);
        decode_fails(f, HR_JP_BAD_REQUEST, "1");
        snprintf(f, sizeof f, "{\"type\":\"%s\",\"id\":1,\"data\":0,\"channel\":\"\"}", types[i]);
        decode_fails(f, HR_JP_BAD_REQUEST, "1");
        snprintf(f, sizeof f, "{\"type\":\"%s\",\"id\":1,\"data\":0,\"channel\":[\"a\"]}",
                 types[i]);
        decode_fails(f, HR_JP_BAD_REQUEST, "1");
    }
}

static void test_jp_decode_since_errors(void **state)
{
    (void)state;
    static const char *const sinces[] = {
        "{\"epoch\":\"e\"}",
        "{\"offset\":1}",
        "{}",
        "null",
        "5",
        "[1,\"e\"]",
        "{\"offset\":-1,\"epoch\":\"e\"}",
        "{\"offset\":1.5,\"epoch\":\"e\"}",
        "{\"offset\":1.0,\"epoch\":\"e\"}",
        "{\"offset\":\"3\",\"epoch\":\"e\"}",
        "{\"offset\":9007199254740992,\"epoch\":\"e\"}",
        "{\"offset\":9223372036854775807,\"epoch\":\"e\"}",
        "{\"offset\":1,\"epoch\":\"\"}",
        "{\"offset\":1,\"epoch\":7}",
        "{\"offset\":1,\"epoch\":null}",
        "{\"offset\":1,\"epoch\":"
        "\"01234567890123456789012345678901234567890123456789012345678901234\"}",
    };
    static const char *const types[] = {"subscribe", "history"};
    for (size_t t = 0; t < 2; t++) {
        for (size_t i = 0; i < sizeof sinces / sizeof sinces[0]; i++) {
            char f[300];
            snprintf(f, sizeof f, "{\"type\":\"%s\",\"id\":\"s\",\"channel\":\"c\",\"since\":%s}",
                     types[t], sinces[i]);
            decode_fails(f, HR_JP_BAD_REQUEST, "\"s\"");
        }
    }
}

static void test_jp_decode_limit_errors(void **state)
{
    (void)state;
    static const char *const limits[] = {"0",      "1001", "-1",   "1.5",        "10.0",
                                         "\"10\"", "null", "true", "99999999999"};
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        char f[200];
        snprintf(f, sizeof f, "{\"type\":\"history\",\"id\":3,\"channel\":\"c\",\"limit\":%s}",
                 limits[i]);
        decode_fails(f, HR_JP_BAD_REQUEST, "3");
    }
}

static void test_jp_decode_publish_without_data(void **state)
{
    (void)state;
    decode_fails("{\"type\":\"publish\",\"channel\":\"c\",\"id\":8}", HR_JP_BAD_REQUEST, "8");
}

/* ------------------------------------------------------------------------------------
 * Encoders
 * ---------------------------------------------------------------------------------- */

static hr_jp_id_t make_id(const char *text)
{
    hr_jp_id_t id = {.has = true, .len = strlen(text)};
    memcpy(id.text, text, id.len + 1);
    return id;
}

static void test_jp_append_string_every_ascii_byte(void **state)
{
    (void)state;
    char all[128];
    for (int i = 0; i < 128; i++)
        all[i] = (char)i;
    hr_buf_t out;
    hr_buf_init(&out);
    assert_int_equal(hr_jp_append_string(&out, all, sizeof all), 0);
    json_t *v = json_loadb((const char *)out.data, out.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    assert_non_null(v);
    assert_int_equal(json_string_length(v), sizeof all);
    assert_memory_equal(json_string_value(v), all, sizeof all);
    json_decref(v);

    out.len = 0;
    assert_int_equal(hr_jp_append_string(&out, "a\"\\\n\x1f\xc3\xbc", 7), 0);
    assert_int_equal(out.len, 21);
    assert_memory_equal(out.data, "\"a\\\"\\\\\\u000a\\u001f\xc3\xbc\"", 21);
    out.len = 0;
    assert_int_equal(hr_jp_append_string(&out, "", 0), 0);
    assert_memory_equal(out.data, "\"\"", 2);
    hr_buf_deinit(&out);
}

static void test_jp_encode_ok_pong_plain(void **state)
{
    (void)state;
    hr_buf_t out;
    hr_buf_init(&out);
    hr_jp_id_t id = make_id("17");

    assert_int_equal(hr_jp_encode_ok(&out, &id), 0);
    json_t *o = load_out(&out);
    assert_member_str(o, "type", "ok", 2);
    assert_member_int(o, "id", 17);
    assert_int_equal(json_object_size(o), 2);
    json_decref(o);

    assert_int_equal(hr_jp_encode_ok(&out, NULL), 0);
    assert_int_equal(out.len, strlen("{\"type\":\"ok\"}"));
    assert_memory_equal(out.data, "{\"type\":\"ok\"}", out.len);
    out.len = 0;

    hr_jp_id_t none = {.has = false};
    assert_int_equal(hr_jp_encode_pong(&out, &none), 0);
    o = load_out(&out);
    assert_member_str(o, "type", "pong", 4);
    assert_no_member(o, "id");
    json_decref(o);

    id = make_id("\"a\\\"b\"");
    assert_int_equal(hr_jp_encode_pong(&out, &id), 0);
    o = load_out(&out);
    assert_member_str(o, "id", "a\"b", 3);
    json_decref(o);
    hr_buf_deinit(&out);
}

static void test_jp_encode_ok_subscribe(void **state)
{
    (void)state;
    hr_buf_t out;
    hr_buf_init(&out);
    hr_jp_id_t id = make_id("\"s1\"");
    hr_jp_recovery_t rec[] = {HR_JP_RECOVERY_NONE, HR_JP_RECOVERED, HR_JP_NOT_RECOVERED};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(hr_jp_encode_ok_subscribe(&out, &id, hr_slice(tricky, TRICKY_LEN),
                                                   HR_JP_OFFSET_MAX, sl("k3j9x0"), rec[i]),
                         0);
        json_t *o = load_out(&out);
        assert_member_str(o, "type", "ok", 2);
        assert_member_str(o, "id", "s1", 2);
        assert_member_str(o, "channel", tricky, TRICKY_LEN);
        assert_member_int(o, "offset", (json_int_t)HR_JP_OFFSET_MAX);
        assert_member_str(o, "epoch", "k3j9x0", 6);
        const json_t *r = json_object_get(o, "recovered");
        if (rec[i] == HR_JP_RECOVERY_NONE)
            assert_null(r);
        else
            assert_true(json_is_boolean(r) && json_is_true(r) == (rec[i] == HR_JP_RECOVERED));
        json_decref(o);
    }
    hr_buf_deinit(&out);
}

static void test_jp_encode_ok_publish(void **state)
{
    (void)state;
    hr_buf_t out;
    hr_buf_init(&out);
    hr_jp_id_t id = make_id("9");
    assert_int_equal(hr_jp_encode_ok_publish(&out, &id, 0, hr_slice(tricky, TRICKY_LEN)), 0);
    json_t *o = load_out(&out);
    assert_member_str(o, "type", "ok", 2);
    assert_member_int(o, "id", 9);
    assert_member_int(o, "offset", 0);
    assert_member_str(o, "epoch", tricky, TRICKY_LEN);
    assert_int_equal(json_object_size(o), 4);
    json_decref(o);
    hr_buf_deinit(&out);
}

static void test_jp_encode_ok_history(void **state)
{
    (void)state;
    hr_buf_t out;
    hr_buf_init(&out);
    hr_jp_id_t id = make_id("\"h\"");

    /* Empty. */
    assert_int_equal(hr_jp_encode_ok_history_begin(&out, &id), 0);
    assert_int_equal(hr_jp_encode_ok_history_end(&out, 4, sl("ep")), 0);
    json_t *o = load_out(&out);
    assert_member_str(o, "id", "h", 1);
    assert_true(json_is_array(json_object_get(o, "messages")));
    assert_int_equal(json_array_size(json_object_get(o, "messages")), 0);
    assert_member_int(o, "offset", 4);
    assert_member_str(o, "epoch", "ep", 2);
    json_decref(o);

    /* The largest reply, with every kind of data. */
    static const char *const datas[] = {"null", "{\"a\":[1,{\"b\":\"\xc3\xbc\"}]}", "\"x\"",
                                        "-1.5e3"};
    assert_int_equal(hr_jp_encode_ok_history_begin(&out, NULL), 0);
    for (unsigned i = 0; i < HR_JP_LIMIT_MAX; i++) {
        assert_int_equal(hr_jp_encode_ok_history_item(&out, hr_slice(tricky, TRICKY_LEN), i + 1,
                                                      sl("ep"), 1795716000123 + i,
                                                      sl(datas[i % 4])),
                         0);
    }
    assert_int_equal(hr_jp_encode_ok_history_end(&out, 1000, sl("ep")), 0);
    o = load_out(&out);
    assert_no_member(o, "id");
    const json_t *msgs = json_object_get(o, "messages");
    assert_int_equal(json_array_size(msgs), HR_JP_LIMIT_MAX);
    for (unsigned i = 0; i < HR_JP_LIMIT_MAX; i += 333) {
        const json_t *m = json_array_get(msgs, i);
        assert_no_member(m, "type");
        assert_member_str(m, "channel", tricky, TRICKY_LEN);
        assert_member_int(m, "offset", i + 1);
        assert_member_str(m, "epoch", "ep", 2);
        assert_int_equal(json_object_size(m), 5);
        json_t *want = json_loads(datas[i % 4], JSON_DECODE_ANY, NULL);
        assert_true(json_equal(json_object_get(m, "data"), want));
        json_decref(want);
    }
    assert_member_str(json_array_get(msgs, 0), "timestamp", "2026-11-26T18:00:00.123Z", 24);
    json_decref(o);
    hr_buf_deinit(&out);
}

static void test_jp_encode_ok_presence(void **state)
{
    (void)state;
    hr_buf_t out;
    hr_buf_init(&out);
    hr_jp_id_t id = make_id("2");
    assert_int_equal(hr_jp_encode_ok_presence_begin(&out, &id), 0);
    assert_int_equal(hr_jp_encode_ok_presence_end(&out), 0);
    json_t *o = load_out(&out);
    assert_int_equal(json_array_size(json_object_get(o, "clients")), 0);
    json_decref(o);

    assert_int_equal(hr_jp_encode_ok_presence_begin(&out, &id), 0);
    assert_int_equal(hr_jp_encode_ok_presence_item(&out, sl("c1"), hr_slice(NULL, 0)), 0);
    assert_int_equal(hr_jp_encode_ok_presence_item(&out, sl("c\"2"), hr_slice(tricky, TRICKY_LEN)),
                     0);
    assert_int_equal(hr_jp_encode_ok_presence_item(&out, sl("c3"), sl("")), 0);
    assert_int_equal(hr_jp_encode_ok_presence_end(&out), 0);
    o = load_out(&out);
    assert_member_str(o, "type", "ok", 2);
    assert_member_int(o, "id", 2);
    const json_t *cl = json_object_get(o, "clients");
    assert_int_equal(json_array_size(cl), 3);
    assert_member_str(json_array_get(cl, 0), "client", "c1", 2);
    assert_true(json_is_null(json_object_get(json_array_get(cl, 0), "user")));
    assert_member_str(json_array_get(cl, 1), "client", "c\"2", 3);
    assert_member_str(json_array_get(cl, 1), "user", tricky, TRICKY_LEN);
    assert_member_str(json_array_get(cl, 2), "user", "", 0);
    json_decref(o);
    hr_buf_deinit(&out);
}

static void test_jp_encode_error_every_code(void **state)
{
    (void)state;
    static const char *const names[] = {"bad_request",    "unknown_type", "not_allowed",
                                        "limit_exceeded", "not_found",    "already_subscribed",
                                        "not_subscribed", "internal"};
    hr_buf_t out;
    hr_buf_init(&out);
    hr_jp_id_t id = make_id("\"e\"");
    for (int c = HR_JP_BAD_REQUEST; c <= HR_JP_INTERNAL; c++) {
        assert_string_equal(hr_jp_code_name((hr_jp_code_t)c), names[c]);
        assert_int_equal(hr_jp_encode_error(&out, c % 2 ? NULL : &id, (hr_jp_code_t)c,
                                            "said \"no\"\\\n\x01 \xe6\x97\xa5"),
                         0);
        json_t *o = load_out(&out);
        assert_member_str(o, "type", "error", 5);
        if (c % 2)
            assert_no_member(o, "id");
        else
            assert_member_str(o, "id", "e", 1);
        assert_member_str(o, "code", names[c], strlen(names[c]));
        assert_member_str(o, "message", "said \"no\"\\\n\x01 \xe6\x97\xa5", 16);
        json_decref(o);
    }
    hr_buf_deinit(&out);
}

/* Every decode error's reply is valid JSON carrying the id that could be read. */
static void test_jp_encode_error_from_decode(void **state)
{
    (void)state;
    static const char *const frames[] = {"{\"id\":\"\\\"\\\\\\n\",\"type\":\"nope\"}",
                                         "{\"type\":\"p\xff\"}", "{\"id\":[],\"type\":\"ping\"}",
                                         "\x01\x02", "{\"id\":7,\"type\":\"publish\"}"};
    hr_buf_t out;
    hr_buf_init(&out);
    for (size_t i = 0; i < sizeof frames / sizeof frames[0]; i++) {
        hr_jp_cmd_t cmd;
        hr_jp_error_t err;
        assert_int_equal(hr_jp_decode(frames[i], strlen(frames[i]), &cmd, &err), HR_EPROTO);
        assert_int_equal(hr_jp_encode_error(&out, &err.id, err.code, err.message), 0);
        json_t *o = load_out(&out);
        assert_member_str(o, "code", hr_jp_code_name(err.code), strlen(hr_jp_code_name(err.code)));
        assert_member_str(o, "message", err.message, strlen(err.message));
        if (i == 0)
            assert_member_str(o, "id", "\"\\\n", 3);
        else if (i == 4)
            assert_member_int(o, "id", 7);
        else
            assert_no_member(o, "id");
        json_decref(o);
    }
    hr_buf_deinit(&out);
}

static void test_jp_encode_message(void **state)
{
    (void)state;
    hr_buf_t out;
    hr_buf_init(&out);
    assert_int_equal(hr_jp_encode_message(&out, sl("orders.42"), 18, sl("k3j9x0"), 1795716000123,
                                          sl("{\"qty\":3}")),
                     0);
    static const char want[] = "{\"type\":\"message\",\"channel\":\"orders.42\",\"offset\":18,"
                               "\"epoch\":\"k3j9x0\",\"timestamp\":\"2026-11-26T18:00:00.123Z\","
                               "\"data\":{\"qty\":3}}";
    assert_int_equal(out.len, sizeof want - 1);
    assert_memory_equal(out.data, want, sizeof want - 1);
    out.len = 0;

    assert_int_equal(hr_jp_encode_message(&out, hr_slice(tricky, TRICKY_LEN), 0,
                                          hr_slice(tricky, TRICKY_LEN), 0, sl("null")),
                     0);
    json_t *o = load_out(&out);
    assert_member_str(o, "type", "message", 7);
    assert_member_str(o, "channel", tricky, TRICKY_LEN);
    assert_member_str(o, "epoch", tricky, TRICKY_LEN);
    assert_member_int(o, "offset", 0);
    assert_member_str(o, "timestamp", "1970-01-01T00:00:00.000Z", 24);
    assert_true(json_is_null(json_object_get(o, "data")));
    assert_int_equal(json_object_size(o), 6);
    json_decref(o);
    hr_buf_deinit(&out);
}

static void test_jp_encode_presence_event(void **state)
{
    (void)state;
    hr_buf_t out;
    hr_buf_init(&out);
    assert_int_equal(hr_jp_encode_presence_event(&out, HR_JP_JOIN, sl("room"), sl("c7"),
                                                 hr_slice(tricky, TRICKY_LEN)),
                     0);
    json_t *o = load_out(&out);
    assert_member_str(o, "type", "join", 4);
    assert_member_str(o, "channel", "room", 4);
    assert_member_str(o, "client", "c7", 2);
    assert_member_str(o, "user", tricky, TRICKY_LEN);
    assert_no_member(o, "id");
    json_decref(o);

    assert_int_equal(hr_jp_encode_presence_event(&out, HR_JP_LEAVE, hr_slice(tricky, TRICKY_LEN),
                                                 sl("c\\8"), hr_slice(NULL, 0)),
                     0);
    o = load_out(&out);
    assert_member_str(o, "type", "leave", 5);
    assert_member_str(o, "channel", tricky, TRICKY_LEN);
    assert_member_str(o, "client", "c\\8", 3);
    assert_true(json_is_null(json_object_get(o, "user")));
    json_decref(o);
    hr_buf_deinit(&out);
}

static void test_jp_encoders_append_after_existing_content(void **state)
{
    (void)state;
    hr_buf_t out;
    hr_buf_init(&out);
    assert_int_equal(hr_buf_append(&out, "xy", 2), 0);
    assert_int_equal(hr_jp_encode_pong(&out, NULL), 0);
    assert_int_equal(out.len, 2 + strlen("{\"type\":\"pong\"}"));
    assert_memory_equal(out.data, "xy{\"type\":\"pong\"}", out.len);
    hr_buf_deinit(&out);
}

/* ------------------------------------------------------------------------------------
 * Timestamps
 * ---------------------------------------------------------------------------------- */

static void check_time(uint64_t ms, const char *want)
{
    char ts[HR_JP_TIME_CAP];
    size_t n = hr_jp_format_time(ts, ms);
    assert_string_equal(ts, want);
    assert_int_equal(n, strlen(want));
}

static void test_jp_format_time(void **state)
{
    (void)state;
    check_time(0, "1970-01-01T00:00:00.000Z");
    check_time(1, "1970-01-01T00:00:00.001Z");
    check_time(59999, "1970-01-01T00:00:59.999Z");
    check_time(86400000, "1970-01-02T00:00:00.000Z");
    check_time(951782400000, "2000-02-29T00:00:00.000Z");
    check_time(1709210096007, "2024-02-29T12:34:56.007Z");
    check_time(1704067199999, "2023-12-31T23:59:59.999Z");
    check_time(1795716000123, "2026-11-26T18:00:00.123Z");
    check_time(4107542400000 - 1, "2100-02-28T23:59:59.999Z");
    check_time(4107542400000, "2100-03-01T00:00:00.000Z");
    check_time(253402300799999, "9999-12-31T23:59:59.999Z");
    check_time(253402300800000, "10000-01-01T00:00:00.000Z");
    char ts[HR_JP_TIME_CAP];
    assert_true(hr_jp_format_time(ts, UINT64_MAX) < HR_JP_TIME_CAP);
}

/* ------------------------------------------------------------------------------------
 * Allocation failure
 * ---------------------------------------------------------------------------------- */

/* Fails allocation 1, 2, ... of decoding text until a run completes; each run must end
 * in success with the right result or in a clean error (ASan reports any leak). */
static void decode_under_faults(const char *text, int want_rc)
{
    for (long n = 1;; n++) {
        hr_jp_cmd_t cmd;
        hr_jp_error_t err;
        hr_alloc_fail_at(n);
        int rc = hr_jp_decode(text, strlen(text), &cmd, &err);
        long used = hr_alloc_count();
        hr_alloc_fail_at(0);
        if (rc == 0) {
            assert_int_equal(want_rc, 0);
            hr_jp_cmd_free(&cmd);
        } else if (rc == HR_ENOMEM) {
            assert_int_equal(err.code, HR_JP_INTERNAL);
            assert_string_equal(err.message, "out of memory");
        } else {
            /* A valid frame must never be called malformed because memory ran out. */
            assert_int_equal(rc, HR_EPROTO);
            assert_int_equal(want_rc, HR_EPROTO);
        }
        if (used < n) {
            assert_int_equal(rc, want_rc);
            break;
        }
        assert_true(n < 10000);
    }
}

static void test_jp_decode_allocation_failures(void **state)
{
    (void)state;
    decode_under_faults("{\"type\":\"ping\",\"id\":\"p\"}", 0);
    decode_under_faults("{\"type\":\"subscribe\",\"channel\":\"orders.*\",\"id\":1,"
                        "\"since\":{\"offset\":18,\"epoch\":\"k3j9x0\"}}",
                        0);
    decode_under_faults("{\"type\":\"publish\",\"channel\":\"c\",\"data\":{\"a\":[1,2,{\"b\":"
                        "\"long string value that makes the buffer grow past its first "
                        "allocation...................................................."
                        "..............................................................."
                        "..............................................................."
                        ".....................................\"}],\"u\":\"\xc3\xbc\"}}",
                        0);
    decode_under_faults("{\"type\":\"history\",\"channel\":\"c\",\"limit\":0}", HR_EPROTO);
    decode_under_faults("{\"type\":\"nope\"}", HR_EPROTO);
    decode_under_faults("not json", HR_EPROTO);
}

static void test_jp_encode_allocation_failure_restores_len(void **state)
{
    (void)state;
    char data[1000];
    memset(data, ' ', sizeof data);
    data[0] = '"';
    data[sizeof data - 1] = '"';
    for (long n = 1;; n++) {
        hr_buf_t out;
        hr_buf_init(&out);
        assert_int_equal(hr_buf_append(&out, "xy", 2), 0);
        hr_alloc_fail_at(n);
        int rc = hr_jp_encode_ok_history_begin(&out, NULL);
        for (int i = 0; rc == 0 && i < 20; i++)
            rc = hr_jp_encode_ok_history_item(&out, sl("c"), 1, sl("e"), 0,
                                              hr_slice(data, sizeof data));
        size_t before_end = out.len;
        if (rc == 0)
            rc = hr_jp_encode_ok_history_end(&out, 1, sl("e"));
        long used = hr_alloc_count();
        hr_alloc_fail_at(0);
        if (rc == HR_ENOMEM) {
            assert_true(out.len <= before_end);
            assert_memory_equal(out.data, "xy", 2);
            /* Each call cut its partial item off: what is left ends a complete piece. */
            char last = (char)out.data[out.len - 1];
            assert_true(last == 'y' || last == '[' || last == '}');
        } else {
            assert_int_equal(rc, 0);
        }
        hr_buf_deinit(&out);
        if (used < n)
            break;
    }
    hr_buf_t out;
    hr_buf_init(&out);
    hr_alloc_fail_at(1);
    assert_int_equal(hr_jp_encode_presence_event(&out, HR_JP_JOIN, sl("r"), sl("c"), sl("u")),
                     HR_ENOMEM);
    assert_int_equal(hr_jp_encode_error(&out, NULL, HR_JP_INTERNAL, "x"), HR_ENOMEM);
    hr_alloc_fail_at(0);
    assert_int_equal(out.len, 0);
    hr_buf_deinit(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jp_decode_subscribe_minimal),
        cmocka_unit_test(test_jp_decode_subscribe_with_since_and_id),
        cmocka_unit_test(test_jp_decode_unsubscribe),
        cmocka_unit_test(test_jp_decode_publish_data_round_trip),
        cmocka_unit_test(test_jp_decode_history),
        cmocka_unit_test(test_jp_decode_presence),
        cmocka_unit_test(test_jp_decode_ping),
        cmocka_unit_test(test_jp_decode_ignores_unknown_members),
        cmocka_unit_test(test_jp_decode_channel_bounds),
        cmocka_unit_test(test_jp_decode_id_echo),
        cmocka_unit_test(test_jp_decode_bad_id_is_not_echoed),
        cmocka_unit_test(test_jp_decode_not_json_is_bad_request),
        cmocka_unit_test(test_jp_decode_not_object_is_bad_request),
        cmocka_unit_test(test_jp_decode_type_missing_or_not_string),
        cmocka_unit_test(test_jp_decode_unknown_type),
        cmocka_unit_test(test_jp_decode_channel_missing_or_ill_typed),
        cmocka_unit_test(test_jp_decode_since_errors),
        cmocka_unit_test(test_jp_decode_limit_errors),
        cmocka_unit_test(test_jp_decode_publish_without_data),
        cmocka_unit_test(test_jp_append_string_every_ascii_byte),
        cmocka_unit_test(test_jp_encode_ok_pong_plain),
        cmocka_unit_test(test_jp_encode_ok_subscribe),
        cmocka_unit_test(test_jp_encode_ok_publish),
        cmocka_unit_test(test_jp_encode_ok_history),
        cmocka_unit_test(test_jp_encode_ok_presence),
        cmocka_unit_test(test_jp_encode_error_every_code),
        cmocka_unit_test(test_jp_encode_error_from_decode),
        cmocka_unit_test(test_jp_encode_message),
        cmocka_unit_test(test_jp_encode_presence_event),
        cmocka_unit_test(test_jp_encoders_append_after_existing_content),
        cmocka_unit_test(test_jp_format_time),
        cmocka_unit_test(test_jp_decode_allocation_failures),
        cmocka_unit_test(test_jp_encode_allocation_failure_restores_len),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
