/* Herald JSON pub/sub protocol codec (docs/protocol.md). Decoding parses one text
 * message with jansson (RFC 8259; duplicate member names are refused so that Herald and
 * any proxy in front of it cannot disagree on a frame's meaning), checks the members the
 * frame type needs and copies the channel and the publish data out of the tree, so the
 * tree is freed before hr_jp_decode returns. Encoding does not use jansson: frames are
 * written straight into the caller's hr_buf_t, which is what lets a 1000-message history
 * reply cost one growing buffer instead of a tree of 5000 nodes. Payloads (data) arrive
 * already serialized and are copied verbatim. This file knows nothing of channels' name
 * rules, of the broker or of sockets. */
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "herald/error.h"
#include "proto/json_proto.h"

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* Set when jansson's allocator returned NULL on this thread. jansson 2.14 reports most
 * allocation failures inside the lexer as a syntax error with an empty text, which
 * would tell a client its valid frame was malformed; this flag tells the two apart. */
static _Thread_local bool jansson_oom;

static void *jansson_malloc(size_t size)
{
    void *p = hr_malloc(size);
    if (!p)
        jansson_oom = true;
    return p;
}

static void set_alloc_funcs(void)
{
    json_set_alloc_funcs(jansson_malloc, hr_free);
}

void hr_json_proto_init(void)
{
    pthread_once(&init_once, set_alloc_funcs);
}

static const char *const code_names[] = {
    [HR_JP_BAD_REQUEST] = "bad_request",       [HR_JP_UNKNOWN_TYPE] = "unknown_type",
    [HR_JP_NOT_ALLOWED] = "not_allowed",       [HR_JP_LIMIT_EXCEEDED] = "limit_exceeded",
    [HR_JP_NOT_FOUND] = "not_found",           [HR_JP_ALREADY_SUBSCRIBED] = "already_subscribed",
    [HR_JP_NOT_SUBSCRIBED] = "not_subscribed", [HR_JP_INTERNAL] = "internal",
    [HR_JP_UNAVAILABLE] = "unavailable",
};

static const char *const type_names[] = {
    [HR_JP_SUBSCRIBE] = "subscribe", [HR_JP_UNSUBSCRIBE] = "unsubscribe",
    [HR_JP_PUBLISH] = "publish",     [HR_JP_HISTORY] = "history",
    [HR_JP_PRESENCE] = "presence",   [HR_JP_PING] = "ping",
};

const char *hr_jp_code_name(hr_jp_code_t code)
{
    if ((unsigned)code >= sizeof code_names / sizeof code_names[0])
        return "internal";
    return code_names[code];
}

const char *hr_jp_type_name(hr_jp_type_t type)
{
    if ((unsigned)type >= sizeof type_names / sizeof type_names[0])
        return "unknown";
    return type_names[type];
}

/* ------------------------------------------------------------------------------------
 * JSON string escaping (RFC 8259 §7): '"' and '\' get a backslash, bytes below 0x20
 * become \u00XX, everything else (UTF-8 included) passes through. Two passes, one to
 * size and one to write, so the output is reserved once.
 * ---------------------------------------------------------------------------------- */

static size_t escaped_width(uint8_t c)
{
    if (c < 0x20)
        return 6;
    return c == '"' || c == '\\' ? 2 : 1;
}

/* Writes the literal, quotes included, to d (room for the escaped length); its length. */
static size_t escape_into(char *d, const uint8_t *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    char *start = d;
    *d++ = '"';
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (c < 0x20) {
            memcpy(d, "\\u00", 4);
            d[4] = hex[c >> 4];
            d[5] = hex[c & 0xF];
            d += 6;
        } else {
            if (c == '"' || c == '\\')
                *d++ = '\\';
            *d++ = (char)c;
        }
    }
    *d++ = '"';
    return (size_t)(d - start);
}

int hr_jp_append_string(hr_buf_t *out, const void *s, size_t len)
{
    const uint8_t *p = s;
    if (len > (SIZE_MAX - 2) / 6)
        return HR_ENOMEM;
    size_t need = 2;
    for (size_t i = 0; i < len; i++)
        need += escaped_width(p[i]);
    int rc = hr_buf_reserve(out, need);
    if (rc)
        return rc;
    out->len += escape_into((char *)out->data + out->len, p, len);
    return 0;
}

/* ------------------------------------------------------------------------------------
 * Decoding
 * ---------------------------------------------------------------------------------- */

static int set_error(hr_jp_error_t *err, hr_jp_code_t code, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Fills err and returns rc. The message is forced to printable ASCII: parts of it (the
 * type name, jansson's text) come from the peer and may be cut mid-character. */
static int set_error(hr_jp_error_t *err, hr_jp_code_t code, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    if (n < 0)
        err->message[0] = '\0';
    for (char *p = err->message; *p; p++) {
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7E)
            *p = '?';
    }
    err->code = code;
    return rc;
}

static int bad(hr_jp_error_t *err, const char *message)
{
    return set_error(err, HR_JP_BAD_REQUEST, HR_EPROTO, "%s", message);
}

/* An id is an integer or a string of at most 64 bytes; kept as the text to echo. */
static bool read_id(const json_t *v, hr_jp_id_t *id)
{
    if (json_is_integer(v)) {
        int n = snprintf(id->text, sizeof id->text, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        if (n < 0 || (size_t)n >= sizeof id->text)
            return false;
        id->len = (size_t)n;
    } else if (json_is_string(v) && json_string_length(v) <= HR_JP_ID_STR_MAX) {
        id->len =
            escape_into(id->text, (const uint8_t *)json_string_value(v), json_string_length(v));
        id->text[id->len] = '\0';
    } else {
        return false;
    }
    id->has = true;
    return true;
}

static bool read_type(const json_t *v, hr_jp_type_t *type)
{
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    for (size_t i = 0; i < sizeof type_names / sizeof type_names[0]; i++) {
        if (strlen(type_names[i]) == n && memcmp(type_names[i], s, n) == 0) {
            *type = (hr_jp_type_t)i;
            return true;
        }
    }
    return false;
}

/* Integer in 0..2^53-1 (JSON reals such as 1.0 or 1e3 are refused). */
static bool read_offset(const json_t *v, uint64_t *out)
{
    if (!json_is_integer(v))
        return false;
    json_int_t n = json_integer_value(v);
    if (n < 0 || (uint64_t)n > HR_JP_OFFSET_MAX)
        return false;
    *out = (uint64_t)n;
    return true;
}

static int read_since(const json_t *root, hr_jp_cmd_t *cmd, hr_jp_error_t *err)
{
    const json_t *since = json_object_get(root, "since");
    if (!since)
        return 0;
    if (!json_is_object(since))
        return bad(err, "since must be an object with offset and epoch");
    if (!read_offset(json_object_get(since, "offset"), &cmd->since_offset))
        return bad(err, "since.offset must be an integer from 0 to 2^53-1");
    const json_t *epoch = json_object_get(since, "epoch");
    size_t n = json_string_length(epoch);
    if (!json_is_string(epoch) || n == 0 || n > HR_JP_EPOCH_MAX)
        return bad(err, "since.epoch must be a string of 1 to 64 bytes");
    memcpy(cmd->since_epoch, json_string_value(epoch), n);
    cmd->since_epoch[n] = '\0';
    cmd->since_epoch_len = n;
    cmd->has_since = true;
    return 0;
}

static int read_limit(const json_t *root, hr_jp_cmd_t *cmd, hr_jp_error_t *err)
{
    const json_t *v = json_object_get(root, "limit");
    cmd->limit = HR_JP_LIMIT_DEFAULT;
    if (!v)
        return 0;
    json_int_t n = json_is_integer(v) ? json_integer_value(v) : 0;
    if (n < 1 || n > HR_JP_LIMIT_MAX)
        return bad(err, "limit must be an integer from 1 to 1000");
    cmd->limit = (unsigned)n;
    return 0;
}

static int append_to_buf(const char *p, size_t n, void *ctx)
{
    return hr_buf_append(ctx, p, n) ? -1 : 0;
}

/* Copies the channel (and for publish the data, re-serialized compactly) into the
 * command's store; slices are set once the store has stopped moving. */
static int fill_store(const json_t *channel, const json_t *data, hr_jp_cmd_t *cmd,
                      hr_jp_error_t *err)
{
    hr_buf_t *st = &cmd->_store;
    size_t ch_len = json_string_length(channel);
    if (hr_buf_append(st, json_string_value(channel), ch_len) || hr_buf_append(st, "", 1))
        goto nomem;
    size_t data_at = st->len;
    if (data) {
        if (json_dump_callback(data, append_to_buf, st, JSON_COMPACT | JSON_ENCODE_ANY) != 0)
            goto nomem;
        if (hr_buf_append(st, "", 1))
            goto nomem;
    }
    cmd->channel = hr_slice(st->data, ch_len);
    if (data)
        cmd->data = hr_slice(st->data + data_at, st->len - 1 - data_at);
    return 0;
nomem:
    return set_error(err, HR_JP_INTERNAL, HR_ENOMEM, "out of memory");
}

static int decode_object(const json_t *root, hr_jp_cmd_t *cmd, hr_jp_error_t *err)
{
    if (!json_is_object(root))
        return bad(err, "a frame must be a JSON object");

    const json_t *v = json_object_get(root, "id");
    if (v) {
        if (!read_id(v, &cmd->id))
            return bad(err, "id must be an integer or a string of at most 64 bytes");
        err->id = cmd->id;
    }

    v = json_object_get(root, "type");
    if (!v)
        return bad(err, "type is required");
    if (!json_is_string(v))
        return bad(err, "type must be a string");
    if (!read_type(v, &cmd->type))
        return set_error(err, HR_JP_UNKNOWN_TYPE, HR_EPROTO, "unknown type \"%.32s\"",
                         json_string_value(v));
    if (cmd->type == HR_JP_PING)
        return 0;

    const json_t *channel = json_object_get(root, "channel");
    if (!channel)
        return bad(err, "channel is required");
    if (!json_is_string(channel))
        return bad(err, "channel must be a string");
    size_t ch_len = json_string_length(channel);
    if (ch_len == 0 || ch_len > HR_JP_CHANNEL_MAX)
        return bad(err, "channel must be 1 to 255 bytes");

    const json_t *data = NULL;
    int rc = 0;
    switch (cmd->type) {
    case HR_JP_SUBSCRIBE:
        rc = read_since(root, cmd, err);
        break;
    case HR_JP_HISTORY:
        rc = read_limit(root, cmd, err);
        if (rc == 0)
            rc = read_since(root, cmd, err);
        break;
    case HR_JP_PUBLISH:
        data = json_object_get(root, "data");
        if (!data)
            rc = bad(err, "data is required (it may be null)");
        break;
    default:
        break;
    }
    if (rc)
        return rc;
    return fill_store(channel, data, cmd, err);
}

int hr_jp_decode(const char *text, size_t len, hr_jp_cmd_t *cmd, hr_jp_error_t *err)
{
    hr_json_proto_init();
    memset(cmd, 0, sizeof *cmd);
    hr_buf_init(&cmd->_store);
    err->id.has = false;
    err->id.len = 0;
    err->id.text[0] = '\0';
    err->message[0] = '\0';
    err->code = HR_JP_INTERNAL;

    json_error_t jerr;
    jansson_oom = false;
    json_t *root =
        json_loadb(text, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!root) {
        if (jansson_oom || json_error_code(&jerr) == json_error_out_of_memory)
            return set_error(err, HR_JP_INTERNAL, HR_ENOMEM, "out of memory");
        return set_error(err, HR_JP_BAD_REQUEST, HR_EPROTO, "malformed JSON at byte %d: %s",
                         jerr.position, jerr.text);
    }
    int rc = decode_object(root, cmd, err);
    json_decref(root);
    if (rc)
        hr_jp_cmd_free(cmd);
    return rc;
}

void hr_jp_cmd_free(hr_jp_cmd_t *cmd)
{
    hr_buf_deinit(&cmd->_store);
    cmd->channel = hr_slice(NULL, 0);
    cmd->data = hr_slice(NULL, 0);
}

/* ------------------------------------------------------------------------------------
 * Encoding. A writer remembers where the frame started and the first error; after an
 * error every step is a no-op and w_end() cuts the partial frame off.
 * ---------------------------------------------------------------------------------- */

typedef struct writer {
    hr_buf_t *b;
    size_t start;
    int rc;
} writer_t;

static writer_t w_begin(hr_buf_t *b)
{
    writer_t w = {b, b->len, 0};
    return w;
}

static int w_end(writer_t *w)
{
    if (w->rc)
        w->b->len = w->start;
    return w->rc;
}

static void w_raw(writer_t *w, const void *p, size_t n)
{
    if (w->rc == 0)
        w->rc = hr_buf_append(w->b, p, n);
}

static void w_lit(writer_t *w, const char *s)
{
    w_raw(w, s, strlen(s));
}

static void w_str(writer_t *w, hr_slice_t s)
{
    if (w->rc == 0)
        w->rc = hr_jp_append_string(w->b, s.ptr, s.len);
}

/* A string, or null for a slice without a pointer. */
static void w_str_or_null(writer_t *w, hr_slice_t s)
{
    if (s.ptr)
        w_str(w, s);
    else
        w_lit(w, "null");
}

static void w_u64(writer_t *w, uint64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%" PRIu64, v);
    w_raw(w, tmp, (size_t)n);
}

/* {"type":"<type>" and, if there is one, ,"id":<id> */
static void w_head(writer_t *w, const char *type, const hr_jp_id_t *id)
{
    w_lit(w, "{\"type\":\"");
    w_lit(w, type);
    w_lit(w, "\"");
    if (id && id->has) {
        w_lit(w, ",\"id\":");
        w_raw(w, id->text, id->len);
    }
}

static void w_offset_epoch(writer_t *w, uint64_t offset, hr_slice_t epoch)
{
    w_lit(w, ",\"offset\":");
    w_u64(w, offset);
    w_lit(w, ",\"epoch\":");
    w_str(w, epoch);
}

/* "channel":..,"offset":..,"epoch":..,"timestamp":..,"data":.. shared by message frames
 * and history items. */
static void w_message_body(writer_t *w, hr_slice_t channel, uint64_t offset, hr_slice_t epoch,
                           uint64_t time_ms, hr_slice_t data)
{
    char ts[HR_JP_TIME_CAP];
    size_t ts_len = hr_jp_format_time(ts, time_ms);
    w_lit(w, "\"channel\":");
    w_str(w, channel);
    w_offset_epoch(w, offset, epoch);
    w_lit(w, ",\"timestamp\":\"");
    w_raw(w, ts, ts_len);
    w_lit(w, "\",\"data\":");
    w_raw(w, data.ptr, data.len);
}

/* Items after the first need a comma; the buffer says which one this is. */
static void w_item_sep(writer_t *w)
{
    if (w->b->len > 0 && w->b->data[w->b->len - 1] != '[')
        w_lit(w, ",");
}

int hr_jp_encode_ok(hr_buf_t *out, const hr_jp_id_t *id)
{
    writer_t w = w_begin(out);
    w_head(&w, "ok", id);
    w_lit(&w, "}");
    return w_end(&w);
}

int hr_jp_encode_ok_subscribe(hr_buf_t *out, const hr_jp_id_t *id, hr_slice_t channel,
                              uint64_t offset, hr_slice_t epoch, hr_jp_recovery_t recovery)
{
    writer_t w = w_begin(out);
    w_head(&w, "ok", id);
    w_lit(&w, ",\"channel\":");
    w_str(&w, channel);
    w_offset_epoch(&w, offset, epoch);
    if (recovery == HR_JP_RECOVERED)
        w_lit(&w, ",\"recovered\":true");
    else if (recovery == HR_JP_NOT_RECOVERED)
        w_lit(&w, ",\"recovered\":false");
    w_lit(&w, "}");
    return w_end(&w);
}

int hr_jp_encode_ok_publish(hr_buf_t *out, const hr_jp_id_t *id, uint64_t offset, hr_slice_t epoch)
{
    writer_t w = w_begin(out);
    w_head(&w, "ok", id);
    w_offset_epoch(&w, offset, epoch);
    w_lit(&w, "}");
    return w_end(&w);
}

int hr_jp_encode_ok_history_begin(hr_buf_t *out, const hr_jp_id_t *id)
{
    writer_t w = w_begin(out);
    w_head(&w, "ok", id);
    w_lit(&w, ",\"messages\":[");
    return w_end(&w);
}

int hr_jp_encode_ok_history_item(hr_buf_t *out, hr_slice_t channel, uint64_t offset,
                                 hr_slice_t epoch, uint64_t time_ms, hr_slice_t data)
{
    writer_t w = w_begin(out);
    w_item_sep(&w);
    w_lit(&w, "{");
    w_message_body(&w, channel, offset, epoch, time_ms, data);
    w_lit(&w, "}");
    return w_end(&w);
}

int hr_jp_encode_ok_history_end(hr_buf_t *out, uint64_t offset, hr_slice_t epoch)
{
    writer_t w = w_begin(out);
    w_lit(&w, "]");
    w_offset_epoch(&w, offset, epoch);
    w_lit(&w, "}");
    return w_end(&w);
}

int hr_jp_encode_ok_presence_begin(hr_buf_t *out, const hr_jp_id_t *id)
{
    writer_t w = w_begin(out);
    w_head(&w, "ok", id);
    w_lit(&w, ",\"clients\":[");
    return w_end(&w);
}

int hr_jp_encode_ok_presence_item(hr_buf_t *out, hr_slice_t client, hr_slice_t user)
{
    writer_t w = w_begin(out);
    w_item_sep(&w);
    w_lit(&w, "{\"client\":");
    w_str(&w, client);
    w_lit(&w, ",\"user\":");
    w_str_or_null(&w, user);
    w_lit(&w, "}");
    return w_end(&w);
}

int hr_jp_encode_ok_presence_end(hr_buf_t *out)
{
    writer_t w = w_begin(out);
    w_lit(&w, "]}");
    return w_end(&w);
}

int hr_jp_encode_pong(hr_buf_t *out, const hr_jp_id_t *id)
{
    writer_t w = w_begin(out);
    w_head(&w, "pong", id);
    w_lit(&w, "}");
    return w_end(&w);
}

int hr_jp_encode_error(hr_buf_t *out, const hr_jp_id_t *id, hr_jp_code_t code, const char *message)
{
    writer_t w = w_begin(out);
    w_head(&w, "error", id);
    w_lit(&w, ",\"code\":\"");
    w_lit(&w, hr_jp_code_name(code));
    w_lit(&w, "\",\"message\":");
    w_str(&w, hr_slice(message, strlen(message)));
    w_lit(&w, "}");
    return w_end(&w);
}

int hr_jp_encode_message(hr_buf_t *out, hr_slice_t channel, uint64_t offset, hr_slice_t epoch,
                         uint64_t time_ms, hr_slice_t data)
{
    writer_t w = w_begin(out);
    w_lit(&w, "{\"type\":\"message\",");
    w_message_body(&w, channel, offset, epoch, time_ms, data);
    w_lit(&w, "}");
    return w_end(&w);
}

int hr_jp_encode_presence_event(hr_buf_t *out, hr_jp_presence_t event, hr_slice_t channel,
                                hr_slice_t client, hr_slice_t user)
{
    writer_t w = w_begin(out);
    w_head(&w, event == HR_JP_JOIN ? "join" : "leave", NULL);
    w_lit(&w, ",\"channel\":");
    w_str(&w, channel);
    w_lit(&w, ",\"client\":");
    w_str(&w, client);
    w_lit(&w, ",\"user\":");
    w_str_or_null(&w, user);
    w_lit(&w, "}");
    return w_end(&w);
}

/* Days since 1970-01-01 to a proleptic Gregorian date: Howard Hinnant's
 * civil_from_days, in unsigned arithmetic (no dates before 1970 to handle). Unlike
 * gmtime_r it has no time_t range and no locale or tz state. */
size_t hr_jp_format_time(char dst[HR_JP_TIME_CAP], uint64_t time_ms)
{
    uint64_t days = time_ms / 86400000u;
    unsigned ms_of_day = (unsigned)(time_ms % 86400000u);
    uint64_t z = days + 719468u; /* days since 0000-03-01 */
    uint64_t era = z / 146097u;
    unsigned doe = (unsigned)(z - era * 146097u);                             /* [0, 146096] */
    unsigned yoe = (doe - doe / 1460u + doe / 36524u - doe / 146096u) / 365u; /* [0, 399] */
    unsigned doy = doe - (365u * yoe + yoe / 4u - yoe / 100u);                /* [0, 365] */
    unsigned mp = (5u * doy + 2u) / 153u;                                     /* March = 0 */
    unsigned day = doy - (153u * mp + 2u) / 5u + 1u;
    unsigned month = mp < 10u ? mp + 3u : mp - 9u;
    uint64_t year = yoe + era * 400u + (month <= 2u);

    int n = snprintf(dst, HR_JP_TIME_CAP, "%04" PRIu64 "-%02u-%02uT%02u:%02u:%02u.%03uZ", year,
                     month, day, ms_of_day / 3600000u, ms_of_day / 60000u % 60u,
                     ms_of_day / 1000u % 60u, ms_of_day % 1000u);
    return n < 0 ? 0 : (size_t)n;
}
