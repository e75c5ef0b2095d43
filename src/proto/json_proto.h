#ifndef HR_PROTO_JSON_PROTO_H
#define HR_PROTO_JSON_PROTO_H

/* Herald JSON pub/sub protocol (/pubsub, specified in docs/protocol.md): a pure codec.
 * hr_jp_decode turns one client text message into a command; the hr_jp_encode_*
 * functions append server frames to a caller buffer. No I/O, no broker knowledge. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/slice.h"

#define HR_JP_CHANNEL_MAX 255 /* bytes */
#define HR_JP_EPOCH_MAX 64    /* bytes, in since.epoch */
#define HR_JP_ID_STR_MAX 64   /* bytes of a string id, before escaping */
/* Room for the id as compact JSON text: a string of 64 bytes all escaped as \u00XX. */
#define HR_JP_ID_CAP (HR_JP_ID_STR_MAX * 6 + 2 + 1)
#define HR_JP_LIMIT_DEFAULT 100
#define HR_JP_LIMIT_MAX 1000
#define HR_JP_OFFSET_MAX UINT64_C(9007199254740991) /* 2^53 - 1: exact in every JSON peer */
#define HR_JP_TIME_CAP 32 /* "YYYY-MM-DDTHH:MM:SS.mmmZ" plus room for years > 9999 */

typedef enum hr_jp_type {
    HR_JP_SUBSCRIBE,
    HR_JP_UNSUBSCRIBE,
    HR_JP_PUBLISH,
    HR_JP_HISTORY,
    HR_JP_PRESENCE,
    HR_JP_PING
} hr_jp_type_t;

/* The stable error codes of {"type":"error"} frames; hr_jp_code_name() gives the wire text. */
typedef enum hr_jp_code {
    HR_JP_BAD_REQUEST,
    HR_JP_UNKNOWN_TYPE,
    HR_JP_NOT_ALLOWED,
    HR_JP_LIMIT_EXCEEDED,
    HR_JP_NOT_FOUND,
    HR_JP_ALREADY_SUBSCRIBED,
    HR_JP_NOT_SUBSCRIBED,
    HR_JP_INTERNAL,
    HR_JP_UNAVAILABLE /* the server is handing over to a new process: retry after reconnecting */
} hr_jp_code_t;

/* A client's request id, kept as the compact JSON text to echo: 17 or "a1". */
typedef struct hr_jp_id {
    bool has;
    size_t len;
    char text[HR_JP_ID_CAP]; /* NUL-terminated */
} hr_jp_id_t;

/* One decoded client frame. Slices point into storage owned by the command. */
typedef struct hr_jp_cmd {
    hr_jp_type_t type;
    hr_jp_id_t id;
    hr_slice_t channel; /* all types but ping; 1..255 bytes, NUL-terminated, may hold NULs */
    bool has_since;     /* subscribe, history */
    uint64_t since_offset;
    size_t since_epoch_len;
    char since_epoch[HR_JP_EPOCH_MAX + 1]; /* NUL-terminated */
    unsigned limit;                        /* history: 1..1000 (100 if absent); else 0 */
    hr_slice_t data; /* publish: the value as compact JSON text, NUL-terminated */
    hr_buf_t _store; /* private: backs channel and data */
} hr_jp_cmd_t;

/* Why a frame was refused; what hr_jp_encode_error needs to answer it. */
typedef struct hr_jp_error {
    hr_jp_code_t code;
    char message[160]; /* printable ASCII, NUL-terminated */
    hr_jp_id_t id;     /* id.has is false when the id could not be read */
} hr_jp_error_t;

typedef enum hr_jp_recovery {
    HR_JP_RECOVERY_NONE, /* no since in the request: omit "recovered" */
    HR_JP_RECOVERED,
    HR_JP_NOT_RECOVERED
} hr_jp_recovery_t;

typedef enum hr_jp_presence { HR_JP_JOIN, HR_JP_LEAVE } hr_jp_presence_t;

/* Routes jansson's allocations (process-wide) through hr_malloc/hr_free. Idempotent,
 * thread-safe; hr_jp_decode calls it too. */
void hr_json_proto_init(void);

/* Wire name of a code ("bad_request"); of a type ("subscribe"). Never NULL. */
const char *hr_jp_code_name(hr_jp_code_t code);
const char *hr_jp_type_name(hr_jp_type_t type);

/*
 * Decodes text[0..len) (one text message; need not be NUL-terminated). Returns 0 with
 * *cmd filled (release it with hr_jp_cmd_free), or a negative code with *err filled and
 * nothing to free: HR_EPROTO (err->code bad_request or unknown_type) or HR_ENOMEM
 * (err->code internal).
 */
int hr_jp_decode(const char *text, size_t len, hr_jp_cmd_t *cmd, hr_jp_error_t *err);
/* Frees what a successful decode owns; the command may be decoded into again. */
void hr_jp_cmd_free(hr_jp_cmd_t *cmd);

/*
 * Encoders. Each appends one complete frame to out and returns 0 or HR_ENOMEM; on
 * failure out->len is back to its value at the call. id may be NULL or have has false
 * (no "id" member). String slices are valid UTF-8 and may hold any byte, NUL included;
 * a user slice with a NULL ptr encodes JSON null. data slices are JSON text, copied
 * verbatim.
 */
int hr_jp_encode_ok(hr_buf_t *out, const hr_jp_id_t *id);
int hr_jp_encode_ok_subscribe(hr_buf_t *out, const hr_jp_id_t *id, hr_slice_t channel,
                              uint64_t offset, hr_slice_t epoch, hr_jp_recovery_t recovery);
int hr_jp_encode_ok_publish(hr_buf_t *out, const hr_jp_id_t *id, uint64_t offset, hr_slice_t epoch);
/* History reply in pieces, so that 1000 messages need no tree: begin, item per message
 * (oldest first), end. On failure, cut out back to its length before begin. */
int hr_jp_encode_ok_history_begin(hr_buf_t *out, const hr_jp_id_t *id);
int hr_jp_encode_ok_history_item(hr_buf_t *out, hr_slice_t channel, uint64_t offset,
                                 hr_slice_t epoch, uint64_t time_ms, hr_slice_t data);
int hr_jp_encode_ok_history_end(hr_buf_t *out, uint64_t offset, hr_slice_t epoch);
/* Presence reply in pieces, like history: begin, item per client, end. */
int hr_jp_encode_ok_presence_begin(hr_buf_t *out, const hr_jp_id_t *id);
int hr_jp_encode_ok_presence_item(hr_buf_t *out, hr_slice_t client, hr_slice_t user);
int hr_jp_encode_ok_presence_end(hr_buf_t *out);
int hr_jp_encode_pong(hr_buf_t *out, const hr_jp_id_t *id);
/* message is NUL-terminated UTF-8 text for humans. */
int hr_jp_encode_error(hr_buf_t *out, const hr_jp_id_t *id, hr_jp_code_t code, const char *message);
int hr_jp_encode_message(hr_buf_t *out, hr_slice_t channel, uint64_t offset, hr_slice_t epoch,
                         uint64_t time_ms, hr_slice_t data);
int hr_jp_encode_presence_event(hr_buf_t *out, hr_jp_presence_t event, hr_slice_t channel,
                                hr_slice_t client, hr_slice_t user);

/* Writes time_ms (Unix epoch, milliseconds) as ISO-8601 UTC "1970-01-01T00:00:00.000Z"
 * into dst and returns its length (NUL-terminated). */
size_t hr_jp_format_time(char dst[HR_JP_TIME_CAP], uint64_t time_ms);
/* Appends s as a JSON string literal (quotes included). 0 or HR_ENOMEM (out unchanged). */
int hr_jp_append_string(hr_buf_t *out, const void *s, size_t len);

#endif
