/* Logging: one line per event on stderr, built in a stack buffer and written with a
 * single write() so lines from different threads never interleave (a pipe or a terminal
 * takes writes up to PIPE_BUF = 4096 bytes atomically, hence the 4 KiB line bound).
 *
 * Three formats of the same event (message + typed fields): text for people, logfmt and
 * JSON (one object per line) for collectors. Every byte that comes from outside (paths,
 * reasons, user names) is escaped, so a peer can neither break a line nor forge a field:
 * control characters become \n, \t, \u00XX; in logfmt and JSON strings '"' and '\' are
 * escaped and invalid UTF-8 becomes U+FFFD, which keeps each JSON line valid.
 *
 * Not here: rotation, syslog, sampling. stderr goes to journald or a container runtime,
 * which do those. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "herald/error.h"

#define LINE_MAX_BYTES 4096
#define MSG_MAX_BYTES 2048
/* Kept free while filling a line: "...", a closing quote, '}' and '\n' always fit. */
#define RESERVE 8

static hr_log_level_t log_level = HR_LOG_INFO;
static hr_log_format_t log_format = HR_LOG_TEXT;
static hr_log_sink_fn log_sink;
static void *log_sink_data;
static const char *const level_names[] = {"error", "warn", "info", "debug"};
static const char *const format_names[] = {"text", "logfmt", "json"};

void hr_log_set_level(hr_log_level_t level)
{
    log_level = level;
}

hr_log_level_t hr_log_get_level(void)
{
    return log_level;
}

int hr_log_set_format_name(const char *name)
{
    for (int i = 0; i < 3; i++)
        if (name && strcmp(name, format_names[i]) == 0) {
            log_format = (hr_log_format_t)i;
            return 0;
        }
    return HR_EINVAL;
}

void hr_log_set_format(hr_log_format_t format)
{
    log_format = format;
}

hr_log_format_t hr_log_get_format(void)
{
    return log_format;
}

void hr_log_set_sink(hr_log_sink_fn fn, void *data)
{
    log_sink = fn;
    log_sink_data = data;
}

/* ---------------------------------------------------------------- line buffer */

typedef struct line {
    char buf[LINE_MAX_BYTES];
    size_t len;
    bool full; /* something did not fit */
} line_t;

static size_t room(const line_t *l)
{
    return sizeof(l->buf) - RESERVE - l->len;
}

static bool put(line_t *l, const char *s, size_t n)
{
    if (n > room(l)) {
        l->full = true;
        return false;
    }
    memcpy(l->buf + l->len, s, n);
    l->len += n;
    return true;
}

static bool puts_(line_t *l, const char *s)
{
    return put(l, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at s[0..n), or 0 (RFC 3629 §4: no overlongs, no
 * surrogates, nothing above U+10FFFF). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return len;
}

/* Appends s[0..n) escaped. quoted: inside a JSON or logfmt string ('"' and '\' escaped,
 * invalid UTF-8 as U+FFFD); otherwise free text (control characters escaped only). If it
 * does not all fit, ends with "..." and marks the line full. */
static void put_escaped(line_t *l, const char *s, size_t n, bool quoted)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        char esc[8];
        const char *out = esc;
        size_t olen, step = 1;
        unsigned c = p[i];
        if (c == '\n' || c == '\r' || c == '\t') {
            esc[0] = '\\';
            esc[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
            olen = 2;
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            olen = 6;
        } else if (quoted && (c == '"' || c == '\\')) {
            esc[0] = '\\';
            esc[1] = (char)c;
            olen = 2;
        } else if (c < 0x80 || !quoted) {
            out = (const char *)p + i;
            olen = 1;
        } else if ((step = utf8_seq(p + i, n - i)) != 0) {
            out = (const char *)p + i;
            olen = step;
        } else {
            out = "\\ufffd";
            olen = 6;
            step = 1;
        }
        if (olen + 3 > room(l)) {
            l->full = true;
            memcpy(l->buf + l->len, "...", 3); /* RESERVE keeps room for it */
            l->len += 3;
            return;
        }
        memcpy(l->buf + l->len, out, olen);
        l->len += olen;
        i += step;
    }
}

/* logfmt: a value is quoted when it is empty or holds a space, '=', '"', '\', a control
 * character or anything outside ASCII. */
static bool needs_quotes(const char *s, size_t n)
{
    if (n == 0)
        return true;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c == '=' || c == '"' || c == '\\' || c >= 0x7f)
            return true;
    }
    return false;
}

/* Keys are the caller's literals; still, nothing but [A-Za-z0-9_.-] reaches the line. */
static void put_key(line_t *l, const char *key)
{
    for (const char *k = key && *key ? key : "_"; *k; k++) {
        char ch = *k;
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-';
        if (!put(l, ok ? k : "_", 1))
            return;
    }
}

static void put_number(line_t *l, const hr_log_field_t *f, bool json)
{
    char num[40];
    switch (f->type) {
    case HR_LOG_F_INT:
        snprintf(num, sizeof(num), "%lld", (long long)f->v.i);
        break;
    case HR_LOG_F_UINT:
        snprintf(num, sizeof(num), "%llu", (unsigned long long)f->v.u);
        break;
    case HR_LOG_F_BOOL:
        snprintf(num, sizeof(num), "%s", f->v.b ? "true" : "false");
        break;
    default:
        if (isfinite(f->v.f))
            snprintf(num, sizeof(num), "%.9g", f->v.f);
        else
            snprintf(num, sizeof(num), "%s", json ? "null" : isnan(f->v.f) ? "NaN" : "Inf");
        break;
    }
    puts_(l, num);
}

static void put_field(line_t *l, const hr_log_field_t *f, hr_log_format_t fmt)
{
    bool json = fmt == HR_LOG_JSON;
    if (json) {
        put(l, ",\"", 2);
        put_key(l, f->key);
        put(l, "\":", 2);
    } else {
        put(l, " ", 1);
        put_key(l, f->key);
        put(l, "=", 1);
    }
    if (f->type != HR_LOG_F_STR) {
        put_number(l, f, json);
        return;
    }
    const char *s = f->v.s.ptr ? f->v.s.ptr : "";
    size_t n = f->v.s.ptr ? f->v.s.len : 0;
    if (json && !f->v.s.ptr) {
        put(l, "null", 4);
        return;
    }
    bool q = json || needs_quotes(s, n);
    if (q)
        put(l, "\"", 1);
    put_escaped(l, s, n, q);
    if (q)
        put(l, "\"", 1);
}

/* ---------------------------------------------------------------- events */

static void emit(line_t *l)
{
    l->buf[l->len++] = '\n';
    if (log_sink) {
        log_sink(log_sink_data, l->buf, l->len);
        return;
    }
    ssize_t w;
    do
        w = write(STDERR_FILENO, l->buf, l->len);
    while (w < 0 && errno == EINTR);
}

static void vlog(hr_log_level_t level, const hr_log_field_t *fields, size_t n, const char *fmt,
                 va_list ap) __attribute__((format(printf, 4, 0)));

static void vlog(hr_log_level_t level, const hr_log_field_t *fields, size_t n, const char *fmt,
                 va_list ap)
{
    char msg[MSG_MAX_BYTES];
    int m = vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t mlen = m < 0 ? 0 : (size_t)m < sizeof(msg) ? (size_t)m : sizeof(msg) - 1;
    bool cut = m >= (int)sizeof(msg);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[64];
    snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    const char *lv = level_names[level];

    hr_log_format_t fmtk = log_format;
    line_t l;
    l.len = 0;
    l.full = false;
    switch (fmtk) {
    case HR_LOG_JSON:
        put(&l, "{\"time\":\"", 9);
        puts_(&l, when);
        put(&l, "\",\"level\":\"", 11);
        puts_(&l, lv);
        put(&l, "\",\"msg\":\"", 9);
        put_escaped(&l, msg, mlen, true);
        break;
    case HR_LOG_LOGFMT:
        put(&l, "time=", 5);
        puts_(&l, when);
        put(&l, " level=", 7);
        puts_(&l, lv);
        put(&l, " msg=\"", 6);
        put_escaped(&l, msg, mlen, true);
        break;
    default:
        puts_(&l, when);
        put(&l, " ", 1);
        puts_(&l, lv);
        put(&l, " ", 1);
        put_escaped(&l, msg, mlen, false);
        break;
    }
    if (cut && !l.full)
        put(&l, "...", 3);
    if (fmtk != HR_LOG_TEXT)
        l.buf[l.len++] = '"'; /* RESERVE keeps room for it */
    /* A field that does not fit is left out whole, and so are the ones after it. */
    for (size_t i = 0; i < n && !l.full; i++) {
        size_t mark = l.len;
        put_field(&l, &fields[i], fmtk);
        if (l.full)
            l.len = mark;
    }
    if (fmtk == HR_LOG_JSON)
        l.buf[l.len++] = '}';
    emit(&l);
}

void hr_log(hr_log_level_t level, const char *fmt, ...)
{
    if (level > log_level)
        return;
    va_list ap;
    va_start(ap, fmt);
    vlog(level, NULL, 0, fmt, ap);
    va_end(ap);
}

void hr_log_fields(hr_log_level_t level, const hr_log_field_t *fields, size_t n, const char *fmt,
                   ...)
{
    if (level > log_level)
        return;
    va_list ap;
    va_start(ap, fmt);
    vlog(level, fields, n, fmt, ap);
    va_end(ap);
}

/* ---------------------------------------------------------------- secrets */

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

static bool ends_with(const char *s, size_t n, const char *suffix)
{
    size_t k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

/* Whether the query parameter name s[0..n) (still percent-encoded) names a secret. */
static bool secret_param(const char *s, size_t n)
{
    static const char *const names[] = {
        "key",  "api_key",       "apikey", "api-key",   "x-api-key", "passwd",    "pwd", "jwt",
        "auth", "authorization", "sig",    "signature", "session",   "sessionid", "code"};
    char k[64];
    size_t kl = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            ch = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else if (ch == '+') {
            ch = ' ';
        }
        if (kl == sizeof(k))
            return true; /* an absurdly long name: say nothing of its value */
        k[kl++] = (char)(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
    }
    if (ends_with(k, kl, "token") || ends_with(k, kl, "secret") || ends_with(k, kl, "password"))
        return true;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strlen(names[i]) == kl && memcmp(names[i], k, kl) == 0)
            return true;
    return false;
}

/* Appends p[0..n) to out[0..cap - 1), as much as fits. */
static void append(char *out, size_t cap, size_t *o, const char *p, size_t n)
{
    if (n > cap - 1 - *o)
        n = cap - 1 - *o;
    memcpy(out + *o, p, n);
    *o += n;
}

size_t hr_log_redact_query(const char *target, size_t len, char *out, size_t cap)
{
    if (!cap)
        return 0;
    size_t o = 0;
    out[0] = 0;
    if (!target)
        return 0;
    const char *q = memchr(target, '?', len);
    append(out, cap, &o, target, q ? (size_t)(q - target) + 1 : len);
    /* Parameters are split at '&' and also at ';' (which some frameworks accept), so that
     * "a=1;token=x" cannot slip a secret past. The separators are copied as they are. */
    const char *end = target + len;
    for (const char *p = q ? q + 1 : end; p < end;) {
        const char *sep = p;
        while (sep < end && *sep != '&' && *sep != ';')
            sep++;
        const char *eq = memchr(p, '=', (size_t)(sep - p));
        if (eq && secret_param(p, (size_t)(eq - p))) {
            append(out, cap, &o, p, (size_t)(eq - p) + 1);
            append(out, cap, &o, "REDACTED", 8);
        } else {
            append(out, cap, &o, p, (size_t)(sep - p));
        }
        if (sep == end)
            break;
        append(out, cap, &o, sep, 1);
        p = sep + 1;
    }
    out[o] = 0;
    return o;
}

bool hr_log_header_is_secret(const char *name, size_t len)
{
    static const char *const names[] = {"authorization", "proxy-authorization", "cookie",
                                        "set-cookie", "x-api-key"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strlen(names[i]) == len && strncasecmp(names[i], name, len) == 0)
            return true;
    return false;
}
