#ifndef HR_BASE_LOG_H
#define HR_BASE_LOG_H

/* Leveled logging to stderr, one line per event, each line one write(). Three line
 * formats; an event is a message plus optional typed key/value fields:
 *
 *   text    2026-11-26T20:00:00.123Z info handshake refused conn=4294967297 status=403
 *   logfmt  time=2026-11-26T20:00:00.123Z level=info msg="handshake refused" conn=4294967297
 *   json    {"time":"2026-11-26T20:00:00.123Z","level":"info","msg":"handshake refused",...}
 *
 * Never log secrets: pass request targets through hr_log_redact_query() and skip the
 * values of headers for which hr_log_header_is_secret() is true. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef enum hr_log_level {
    HR_LOG_ERROR = 0,
    HR_LOG_WARN,
    HR_LOG_INFO,
    HR_LOG_DEBUG,
} hr_log_level_t;

typedef enum hr_log_format {
    HR_LOG_TEXT = 0, /* 2026-11-26T20:00:00.000Z info message key=value */
    HR_LOG_LOGFMT,   /* time=... level=info msg="message" key=value */
    HR_LOG_JSON,     /* {"time":"...","level":"info","msg":"message","key":value} */
} hr_log_format_t;

typedef enum hr_log_field_type {
    HR_LOG_F_STR = 0,
    HR_LOG_F_INT,
    HR_LOG_F_UINT,
    HR_LOG_F_FLOAT,
    HR_LOG_F_BOOL,
} hr_log_field_type_t;

/* One key/value of an event. key: [a-z0-9_] by convention, never time, level or msg;
 * a string value is borrowed for the call and may hold any bytes (escaped on output). */
typedef struct hr_log_field {
    const char *key;
    hr_log_field_type_t type;
    union {
        struct {
            const char *ptr; /* NULL: JSON null, empty in text and logfmt */
            size_t len;
        } s;
        int64_t i;
        uint64_t u;
        double f;
        bool b;
    } v;
} hr_log_field_t;

/* Receives each finished line (ending in '\n'); for tests. NULL: stderr (the default). */
typedef void (*hr_log_sink_fn)(void *data, const char *line, size_t len);

void hr_log_set_level(hr_log_level_t level);
hr_log_level_t hr_log_get_level(void);
/* Sets the line format; 0, or HR_EINVAL for an unknown name ("text", "logfmt", "json"). */
int hr_log_set_format_name(const char *name);
void hr_log_set_format(hr_log_format_t format);
hr_log_format_t hr_log_get_format(void);
/* Redirects lines to fn(data, line, len) instead of stderr; not thread-safe: call it
 * before the workers start (tests). */
void hr_log_set_sink(hr_log_sink_fn fn, void *data);

/* An event without fields. */
void hr_log(hr_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* An event with fields[0..n): usually through HR_LOG_KV, e.g.
 *   hr_log_fields(HR_LOG_INFO, HR_LOG_KV(hr_log_uint("conn", id), hr_log_str("path", p)),
 *                 "handshake refused");
 * Lines are cut at 4 KiB: a long message ends in "...", fields that do not fit are left
 * out whole, and the line stays well-formed. */
void hr_log_fields(hr_log_level_t level, const hr_log_field_t *fields, size_t n, const char *fmt,
                   ...) __attribute__((format(printf, 4, 5)));

/* Expands to the two arguments fields, n of hr_log_fields from a list of fields. */
#define HR_LOG_KV(...)                                                                             \
    ((const hr_log_field_t[]){__VA_ARGS__}),                                                       \
        (sizeof((const hr_log_field_t[]){__VA_ARGS__}) / sizeof(hr_log_field_t))

/* Copies a request target (path, optional ?query) into out (cap bytes, always
 * NUL-terminated, cut at cap - 1), with the value of every secret query parameter
 * replaced by REDACTED. Secret names (case-insensitive, after percent-decoding): key,
 * api_key, apikey, api-key, x-api-key, passwd, pwd, jwt, auth, authorization, sig,
 * signature, session, sessionid, code, and any name ending in token, secret or password
 * (token, access_token, password, client_secret...). Returns the length written. */
size_t hr_log_redact_query(const char *target, size_t len, char *out, size_t cap);
/* True for headers whose values are never logged: Authorization, Proxy-Authorization,
 * Cookie, Set-Cookie, X-API-Key (case-insensitive). */
bool hr_log_header_is_secret(const char *name, size_t len);

#define hr_log_error(...) hr_log(HR_LOG_ERROR, __VA_ARGS__)
#define hr_log_warn(...) hr_log(HR_LOG_WARN, __VA_ARGS__)
#define hr_log_info(...) hr_log(HR_LOG_INFO, __VA_ARGS__)
#define hr_log_debug(...)                                                                          \
    do {                                                                                           \
        if (hr_log_get_level() >= HR_LOG_DEBUG)                                                    \
            hr_log(HR_LOG_DEBUG, __VA_ARGS__);                                                     \
    } while (0)

/* inline definitions */

static inline bool hr_log_enabled(hr_log_level_t level)
{
    return level <= hr_log_get_level();
}

static inline hr_log_field_t hr_log_strn(const char *key, const char *s, size_t len)
{
    hr_log_field_t f = {.key = key, .type = HR_LOG_F_STR};
    f.v.s.ptr = s;
    f.v.s.len = len;
    return f;
}

static inline hr_log_field_t hr_log_str(const char *key, const char *s)
{
    return hr_log_strn(key, s, s ? strlen(s) : 0);
}

static inline hr_log_field_t hr_log_int(const char *key, int64_t v)
{
    hr_log_field_t f = {.key = key, .type = HR_LOG_F_INT};
    f.v.i = v;
    return f;
}

static inline hr_log_field_t hr_log_uint(const char *key, uint64_t v)
{
    hr_log_field_t f = {.key = key, .type = HR_LOG_F_UINT};
    f.v.u = v;
    return f;
}

static inline hr_log_field_t hr_log_float(const char *key, double v)
{
    hr_log_field_t f = {.key = key, .type = HR_LOG_F_FLOAT};
    f.v.f = v;
    return f;
}

static inline hr_log_field_t hr_log_bool(const char *key, bool v)
{
    hr_log_field_t f = {.key = key, .type = HR_LOG_F_BOOL};
    f.v.b = v;
    return f;
}

#endif
