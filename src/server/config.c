/* The option table (Redis static_configs style): one row per option with its parser,
 * range and help; usage text and validation come from the same rows, so they cannot
 * disagree. Values: sizes take K/M/G suffixes (powers of 1024), durations are seconds
 * (fractions allowed). */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/log.h"
#include "herald/error.h"
#include "server/config.h"
#include "server/reload.h"

typedef enum opt_type {
    T_LISTEN,
    T_INT,
    T_SIZE,
    T_SECONDS,
    T_ONOFF,
    T_FLAG,
    T_STRING,
    T_LEVEL,
    T_NAMESPACE,
    T_MS_PAIR, /* "A,B" milliseconds */
    T_NUMBER   /* a decimal number (double) */
} opt_type_t;

typedef struct opt_row {
    const char *name;
    opt_type_t type;
    size_t offset; /* into hr_config_t */
    size_t width;  /* sizeof the field for integers */
    double min, max;
    const char *def;
    const char *help;
    const char *const *choices; /* T_STRING: the only values allowed, NULL-terminated */
} opt_row_t;

static const char *const log_formats[] = {"text", "logfmt", "json", NULL};
static const char *const auth_modes[] = {"off", "optional", "required", NULL};

#define SRV(f) offsetof(hr_config_t, server.f), sizeof(((hr_server_options_t *)0)->f)

static const opt_row_t rows[] = {
    {"listen", T_LISTEN, offsetof(hr_config_t, listen), 0, 0, 0, "127.0.0.1:8080",
     "address and port to listen on (port 0: any free port)", NULL},
    {"threads", T_INT, SRV(threads), 1, 256, "CPUs", "worker threads, each with its own loop",
     NULL},
    {"max-message", T_SIZE, SRV(max_message), 1, 4294967295.0, "16M",
     "largest message accepted; above it the connection is closed with 1009", NULL},
    {"max-backlog", T_SIZE, SRV(max_backlog), 1024, 1ull << 40, "1M",
     "queued output per connection above which the client is closed with 1008", NULL},
    {"max-header", T_SIZE, SRV(max_header), 256, 1 << 20, "8K",
     "largest HTTP request head (431 above it)", NULL},
    {"ping-interval", T_SECONDS, SRV(ping_interval_ms), 0, 86400, "25",
     "seconds of silence after which the server pings (0: never)", NULL},
    {"idle-timeout", T_SECONDS, SRV(idle_timeout_ms), 0, 86400, "60",
     "seconds of silence after which a connection is closed (0: never)", NULL},
    {"handshake-timeout", T_SECONDS, SRV(handshake_timeout_ms), 0.001, 3600, "10",
     "seconds a client has to complete its opening handshake", NULL},
    {"shutdown-timeout", T_SECONDS, SRV(shutdown_timeout_ms), 0, 3600, "5",
     "seconds to wait for clients to close at SIGTERM/SIGINT", NULL},
    {"allowed-origins", T_STRING, SRV(allowed_origins), 0, 0, "same host",
     "comma-separated Origin patterns ('*' any; 'https://*.example.com'; 'localhost:3000')", NULL},
    {"compression", T_ONOFF, SRV(compression), 0, 0, "on", "permessage-deflate (on|off)", NULL},
    {"deflate-context-takeover", T_FLAG, SRV(deflate_context_takeover), 0, 0, "off",
     "keep zlib context between messages (better ratio, ~300 KiB per connection)", NULL},
    {"namespace", T_NAMESPACE, offsetof(hr_config_t, namespaces), 0, 0, 0, "every channel",
     "channel options, repeatable: 'orders.*:history=50,ttl=600,publish=off,presence=on,"
     "slow=disconnect|drop-oldest|drop-newest' (defaults: history=100,ttl=300,publish=on)",
     NULL},
    {"api-key", T_STRING, offsetof(hr_config_t, api_key), 0, 0, 0, "none",
     "key required on /api/ requests (Authorization: Bearer KEY or X-API-Key: KEY)", NULL},
    {"stomp-heartbeat", T_MS_PAIR, offsetof(hr_config_t, stomp_heartbeat), 0, 0, 86400000,
     "10000,10000",
     "STOMP heart-beats in ms: SEND (how often Herald can send), RECV (how often it wants one)",
     NULL},
    {"stomp-heartbeat-grace", T_NUMBER, offsetof(hr_config_t, stomp_heartbeat_grace), 0, 1, 1000,
     "3", "STOMP: heart-beat periods without a byte before a session is closed", NULL},
    {"app-webhook", T_STRING, offsetof(hr_config_t, app_webhook), 0, 0, 0, "none",
     "URL that STOMP SENDs to /app/... are POSTed to (docs/stomp.md)", NULL},
    {"tls-cert", T_STRING, offsetof(hr_config_t, tls_cert), 0, 0, 0, "none",
     "PEM certificate chain: serve wss:// and https:// (with --tls-key; SIGHUP reloads both)",
     NULL},
    {"tls-key", T_STRING, offsetof(hr_config_t, tls_key), 0, 0, 0, "none",
     "PEM private key of --tls-cert", NULL},
    {"auth", T_STRING, offsetof(hr_config_t, auth), 0, 0, 0, "off",
     "tokens: required (401 without a valid one), optional (anonymous allowed) or off", auth_modes},
    {"jwt-secret", T_STRING, offsetof(hr_config_t, jwt_secret), 0, 0, 0, "none",
     "HS256 secret that signs client tokens (JWT)", NULL},
    {"jwt-public-key", T_STRING, offsetof(hr_config_t, jwt_public_key), 0, 0, 0, "none",
     "PEM public key file for RS256/ES256 client tokens (JWT)", NULL},
    {"auth-webhook", T_STRING, offsetof(hr_config_t, auth_webhook), 0, 0, 0, "none",
     "URL asked to accept or refuse each connection (like a Spring HandshakeInterceptor)", NULL},
    {"max-connections", T_INT, offsetof(hr_config_t, max_connections), sizeof(int), 0, 10000000,
     "100000", "open connections in total; the excess is refused with 503 (0: no limit)", NULL},
    {"max-connections-per-ip", T_INT, offsetof(hr_config_t, max_connections_per_ip), sizeof(int), 0,
     10000000, "10000", "open connections per client address (0: no limit)", NULL},
    {"max-connections-per-user", T_INT, offsetof(hr_config_t, max_connections_per_user),
     sizeof(int), 0, 10000000, "100", "open connections per authenticated user (0: no limit)",
     NULL},
    {"max-message-rate", T_NUMBER, offsetof(hr_config_t, max_message_rate), 0, 0, 1e9, "0",
     "messages per second a connection may send, on average; over it: close 1008 (0: no limit)",
     NULL},
    {"message-burst", T_INT, offsetof(hr_config_t, message_burst), sizeof(int), 1, 10000000, "1000",
     "messages a connection may send at once above --max-message-rate", NULL},
    {"max-subscriptions", T_INT, offsetof(hr_config_t, max_subscriptions), sizeof(int), 1, 10000000,
     "1024", "subscriptions per connection (/pubsub and /stomp)", NULL},
    {"log-format", T_STRING, offsetof(hr_config_t, log_format), 0, 0, 0, "text",
     "log lines as text, logfmt or json", log_formats},
    {"access-log", T_ONOFF, offsetof(hr_config_t, access_log), 0, 0, 0, "off",
     "one log line per handshake and plain HTTP request (on|off)", NULL},
    {"trusted-proxies", T_STRING, offsetof(hr_config_t, trusted_proxies), 0, 0, 0, "none",
     "comma-separated addresses/CIDRs whose X-Forwarded-For / Forwarded headers are believed",
     NULL},
    {"route-echo", T_STRING, offsetof(hr_config_t, route_echo), 0, 0, 0, "/ws",
     "path of the echo endpoint ('off' disables it)", NULL},
    {"route-broadcast", T_STRING, offsetof(hr_config_t, route_broadcast), 0, 0, 0, "/broadcast",
     "path of the broadcast endpoint ('off' disables it)", NULL},
    {"route-pubsub", T_STRING, offsetof(hr_config_t, route_pubsub), 0, 0, 0, "/pubsub",
     "path of the JSON pub/sub endpoint ('off' disables it)", NULL},
    {"route-stomp", T_STRING, offsetof(hr_config_t, route_stomp), 0, 0, 0, "/stomp",
     "path of the STOMP endpoint ('off' disables it)", NULL},
    {"handoff-socket", T_STRING, offsetof(hr_config_t, handoff_socket), 0, 0, 0, "none",
     "Unix socket where a new process (--takeover) can take over channels and the port", NULL},
    {"takeover", T_STRING, offsetof(hr_config_t, takeover), 0, 0, 0, "none",
     "at start, take channels over from the process listening on this handoff socket", NULL},
    {"redis", T_STRING, offsetof(hr_config_t, redis), 0, 0, 0, "none",
     "redis://[:password@]host:port[/db]: share channels, history, presence and per-user limits "
     "with the other nodes on this Redis (docs/cluster.md)",
     NULL},
    {"redis-prefix", T_STRING, offsetof(hr_config_t, redis_prefix), 0, 0, 0, "herald",
     "prefix of every Redis key and channel Herald uses (several clusters on one Redis)", NULL},
    {"route-sse", T_STRING, offsetof(hr_config_t, route_sse), 0, 0, 0, "/sse",
     "path of the Server-Sent Events transport ('off' disables it)", NULL},
    {"route-poll", T_STRING, offsetof(hr_config_t, route_poll), 0, 0, 0, "/poll",
     "path of the long-polling transport ('off' disables it)", NULL},
    {"web", T_ONOFF, offsetof(hr_config_t, web), 0, 0, 0, "on",
     "serve the demo page at /, the admin page at /admin and herald.js (on|off)", NULL},
    {"web-dir", T_STRING, offsetof(hr_config_t, web_dir), 0, 0, 0, "embedded",
     "serve the web pages from this directory instead of the copies built into the binary", NULL},
    {"sockjs", T_ONOFF, offsetof(hr_config_t, sockjs), 0, 0, 0, "on",
     "SockJS transports on the STOMP endpoint, for sockjs-client front ends (on|off)", NULL},
    {"log-level", T_LEVEL, offsetof(hr_config_t, log_level), sizeof(int), 0, 0, "info",
     "error, warn, info or debug", NULL},
};

#define NROWS (sizeof(rows) / sizeof(rows[0]))

void hr_config_init(hr_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    hr_server_options_init(&cfg->server);
    hr_namespaces_init(&cfg->namespaces);
    cfg->server.handle_signals = true;
    strcpy(cfg->listen, "127.0.0.1:8080");
    cfg->log_level = HR_LOG_INFO;
    cfg->log_format = "text";
    cfg->auth = "off";
    cfg->max_connections = 100000;
    cfg->max_connections_per_ip = 10000;
    cfg->max_connections_per_user = 100;
    cfg->max_message_rate = 0; /* off: docs/security.md, "Message rate" */
    cfg->message_burst = 1000;
    cfg->max_subscriptions = 1024;
    cfg->route_echo = "/ws";
    cfg->route_broadcast = "/broadcast";
    cfg->route_pubsub = "/pubsub";
    cfg->route_stomp = "/stomp";
    cfg->redis_prefix = "herald";
    cfg->route_sse = "/sse";
    cfg->route_poll = "/poll";
    cfg->web = true;
    cfg->sockjs = true;
    cfg->stomp_heartbeat[0] = cfg->stomp_heartbeat[1] = 10000;
    cfg->stomp_heartbeat_grace = 3;
}

/* A string the config owns: values read from a file outlive the parser's buffer. */
struct hr_config_str {
    struct hr_config_str *next;
    char s[];
};

void hr_config_deinit(hr_config_t *cfg)
{
    while (cfg->strings) {
        struct hr_config_str *x = cfg->strings;
        cfg->strings = x->next;
        hr_free(x);
    }
}

const char *hr_config_keep(hr_config_t *cfg, const char *s)
{
    size_t n = strlen(s);
    struct hr_config_str *x = hr_malloc(sizeof(*x) + n + 1);
    if (!x)
        return NULL;
    memcpy(x->s, s, n + 1);
    x->next = cfg->strings;
    cfg->strings = x;
    return x->s;
}

static const opt_row_t *find(const char *name)
{
    for (size_t i = 0; i < NROWS; i++)
        if (strcmp(rows[i].name, name) == 0)
            return &rows[i];
    return NULL;
}

bool hr_config_known(const char *name, bool *takes_value)
{
    const opt_row_t *r = find(name);
    if (r && takes_value)
        *takes_value = r->type != T_FLAG;
    return r != NULL;
}

static int bad(char *err, size_t errlen, const opt_row_t *r, const char *value, const char *why)
{
    snprintf(err, errlen, "invalid value '%s' for --%s: %s", value, r->name, why);
    return -1;
}

static void store_uint(void *field, size_t width, uint64_t v)
{
    if (width == 8)
        *(uint64_t *)field = v;
    else if (width == 4)
        *(uint32_t *)field = (uint32_t)v;
    else if (width == 2)
        *(uint16_t *)field = (uint16_t)v;
}

static int parse_listen(hr_config_t *cfg, const opt_row_t *r, const char *v, char *err,
                        size_t errlen)
{
    const char *colon = strrchr(v, ':');
    if (!colon || colon == v || strlen(v) >= sizeof(cfg->listen))
        return bad(err, errlen, r, v, "expected HOST:PORT");
    char *end;
    errno = 0;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (errno || *end || end == colon + 1 || port > 65535)
        return bad(err, errlen, r, v, "port must be 0..65535");
    strcpy(cfg->listen, v);
    cfg->listen[colon - v] = 0;
    char *host = cfg->listen;
    size_t hl = strlen(host);
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') { /* [::1]:8080 */
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = 0;
    }
    cfg->server.host = cfg->listen;
    cfg->server.port = (uint16_t)port;
    return 0;
}

int hr_config_set(hr_config_t *cfg, const char *name, const char *value, char *err, size_t errlen)
{
    const opt_row_t *r = find(name);
    if (!r) {
        snprintf(err, errlen, "unknown option '--%s'", name);
        return -1;
    }
    if (r->type != T_FLAG && (!value || !*value)) {
        snprintf(err, errlen, "option '--%s' needs a value", name);
        return -1;
    }
    void *field = (char *)cfg + r->offset;
    char *end;
    switch (r->type) {
    case T_LISTEN:
        return parse_listen(cfg, r, value, err, errlen);
    case T_FLAG:
        if (value)
            return bad(err, errlen, r, value, "takes no value");
        *(bool *)field = true;
        return 0;
    case T_ONOFF:
        if (strcmp(value, "on") == 0 || strcmp(value, "true") == 0)
            *(bool *)field = true;
        else if (strcmp(value, "off") == 0 || strcmp(value, "false") == 0)
            *(bool *)field = false;
        else
            return bad(err, errlen, r, value, "expected on or off");
        return 0;
    case T_STRING:
        if (r->choices) {
            bool ok = false;
            for (const char *const *c = r->choices; *c; c++)
                ok = ok || strcmp(*c, value) == 0;
            if (!ok) {
                char why[128] = "expected one of:";
                for (const char *const *c = r->choices; *c; c++)
                    snprintf(why + strlen(why), sizeof(why) - strlen(why), " %s", *c);
                return bad(err, errlen, r, value, why);
            }
        }
        if (strncmp(r->name, "route-", 6) == 0 && value[0] != '/' && strcmp(value, "off") != 0)
            return bad(err, errlen, r, value, "expected a path starting with '/', or off");
        *(const char **)field = value;
        return 0;
    case T_NAMESPACE: {
        hr_namespace_t ns;
        if (hr_namespace_parse(value, &ns, err, errlen) != 0)
            return -1;
        int rc = hr_namespaces_add(field, &ns);
        if (rc == HR_EEXIST)
            snprintf(err, errlen, "--namespace %s: pattern given twice", ns.pattern);
        else if (rc)
            snprintf(err, errlen, "--namespace %s: too many namespaces or bad pattern", ns.pattern);
        return rc ? -1 : 0;
    }
    case T_LEVEL: {
        static const char *const names[] = {"error", "warn", "info", "debug"};
        for (int i = 0; i < 4; i++)
            if (strcmp(value, names[i]) == 0) {
                *(int *)field = i;
                return 0;
            }
        return bad(err, errlen, r, value, "expected error, warn, info or debug");
    }
    case T_INT: {
        errno = 0;
        long v = strtol(value, &end, 10);
        if (errno || *end || end == value || v < r->min || v > r->max) {
            char why[64];
            snprintf(why, sizeof(why), "expected a whole number from %.0f to %.0f", r->min, r->max);
            return bad(err, errlen, r, value, why);
        }
        *(int *)field = (int)v;
        return 0;
    }
    case T_SIZE: {
        if (value[0] == '-' || value[0] == '+')
            return bad(err, errlen, r, value, "expected a size like 65536, 64K or 16M");
        errno = 0;
        unsigned long long v = strtoull(value, &end, 10);
        unsigned long long mul = 1;
        if (*end == 'K' || *end == 'k')
            mul = 1ull << 10, end++;
        else if (*end == 'M' || *end == 'm')
            mul = 1ull << 20, end++;
        else if (*end == 'G' || *end == 'g')
            mul = 1ull << 30, end++;
        if (errno || *end || end == value || v > (unsigned long long)r->max / mul ||
            (double)(v * mul) < r->min || (double)(v * mul) > r->max) {
            char why[96];
            snprintf(why, sizeof(why), "expected a size from %.0f to %.0f bytes (K/M/G suffixes)",
                     r->min, r->max);
            return bad(err, errlen, r, value, why);
        }
        store_uint(field, r->width, v * mul);
        return 0;
    }
    case T_MS_PAIR: {
        uint32_t *pair = field;
        errno = 0;
        unsigned long a = strtoul(value, &end, 10), b = 0;
        bool ok =
            value[0] >= '0' && value[0] <= '9' && *end == ',' && end[1] >= '0' && end[1] <= '9';
        if (ok)
            b = strtoul(end + 1, &end, 10);
        if (!ok || errno || *end || a > r->max || b > r->max)
            return bad(err, errlen, r, value, "expected two millisecond counts: SEND,RECV");
        pair[0] = (uint32_t)a;
        pair[1] = (uint32_t)b;
        return 0;
    }
    case T_NUMBER: {
        errno = 0;
        double v = strtod(value, &end);
        if (errno || *end || end == value || !(v >= r->min && v <= r->max)) {
            char why[64];
            snprintf(why, sizeof(why), "expected a number from %g to %g", r->min, r->max);
            return bad(err, errlen, r, value, why);
        }
        *(double *)field = v;
        return 0;
    }
    case T_SECONDS: {
        errno = 0;
        double v = strtod(value, &end);
        if (errno || *end || end == value || !(v >= r->min && v <= r->max)) {
            char why[64];
            snprintf(why, sizeof(why), "expected seconds from %g to %g", r->min, r->max);
            return bad(err, errlen, r, value, why);
        }
        uint64_t ms = (uint64_t)(v * 1000.0 + 0.5);
        store_uint(field, r->width, ms == 0 && v > 0 ? 1 : ms); /* 0 means "never" */
        return 0;
    }
    }
    return -1;
}

void hr_config_usage(FILE *out)
{
    for (size_t i = 0; i < NROWS; i++) {
        const opt_row_t *r = &rows[i];
        char left[64];
        snprintf(left, sizeof(left), "--%s%s", r->name, r->type == T_FLAG ? "" : " VALUE");
        fprintf(out, "  %-34s %s (default: %s)\n", left, r->help, r->def);
    }
}

int hr_config_set_file(hr_config_t *cfg, const char *name, const char *value, char *err,
                       size_t errlen)
{
    const opt_row_t *r = find(name);
    if (!r || r->type != T_FLAG)
        return hr_config_set(cfg, name, value, err, errlen);
    if (value && (strcmp(value, "on") == 0 || strcmp(value, "true") == 0))
        *(bool *)((char *)cfg + r->offset) = true;
    else if (value && (strcmp(value, "off") == 0 || strcmp(value, "false") == 0))
        *(bool *)((char *)cfg + r->offset) = false;
    else
        return bad(err, errlen, r, value ? value : "", "expected on or off");
    return 0;
}

/* ---------------------------------------------------------------- writing values back */

size_t hr_config_count(void)
{
    return NROWS;
}

const char *hr_config_name(size_t i)
{
    return i < NROWS ? rows[i].name : NULL;
}

int hr_config_index(const char *name)
{
    const opt_row_t *r = find(name);
    return r ? (int)(r - rows) : -1;
}

static uint64_t load_uint(const void *field, size_t width)
{
    if (width == 8)
        return *(const uint64_t *)field;
    if (width == 4)
        return *(const uint32_t *)field;
    if (width == 2)
        return *(const uint16_t *)field;
    return 0;
}

/* Appends to out[0..len) at *at, snprintf-style: *at counts what was needed. */
static void put(char *out, size_t len, size_t *at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void put(char *out, size_t len, size_t *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(*at < len ? out + *at : NULL, *at < len ? len - *at : 0, fmt, ap);
    va_end(ap);
    if (n > 0)
        *at += (size_t)n;
}

/* Milliseconds as seconds, as short as exact: 25000 "25", 1500 "1.5", 1 "0.001". */
static void put_seconds(char *out, size_t len, size_t *at, uint64_t ms)
{
    if (ms % 1000 == 0) {
        put(out, len, at, "%llu", (unsigned long long)(ms / 1000));
        return;
    }
    char frac[4];
    snprintf(frac, sizeof(frac), "%03u", (unsigned)(ms % 1000));
    for (int i = 2; i > 0 && frac[i] == '0'; i--)
        frac[i] = 0;
    put(out, len, at, "%llu.%s", (unsigned long long)(ms / 1000), frac);
}

static void put_namespace(char *out, size_t len, size_t *at, const hr_namespace_t *ns)
{
    put(out, len, at, "%s:history=%u,ttl=", ns->pattern, ns->history_size);
    put_seconds(out, len, at, ns->history_ttl_ms);
    put(out, len, at, ",publish=%s,presence=%s,slow=%s", ns->client_publish ? "on" : "off",
        ns->presence ? "on" : "off", hr_slow_policy_name(ns->slow));
}

static size_t format_row(const hr_config_t *cfg, const opt_row_t *r, char *out, size_t len)
{
    static const char *const levels[] = {"error", "warn", "info", "debug"};
    const void *field = (const char *)cfg + r->offset;
    size_t at = 0;
    if (len)
        out[0] = 0;
    switch (r->type) {
    case T_LISTEN: {
        const char *host = cfg->server.host ? cfg->server.host : "";
        bool v6 = strchr(host, ':') != NULL;
        put(out, len, &at, "%s%s%s:%u", v6 ? "[" : "", host, v6 ? "]" : "", cfg->server.port);
        break;
    }
    case T_INT:
        put(out, len, &at, "%d", *(const int *)field);
        break;
    case T_SIZE: {
        uint64_t v = load_uint(field, r->width);
        static const char suffix[] = "GMK";
        int i = 0;
        while (i < 3 && (v == 0 || v % (1ull << (10 * (3 - i))) != 0))
            i++;
        if (i < 3)
            put(out, len, &at, "%llu%c", (unsigned long long)(v >> (10 * (3 - i))), suffix[i]);
        else
            put(out, len, &at, "%llu", (unsigned long long)v);
        break;
    }
    case T_SECONDS:
        put_seconds(out, len, &at, load_uint(field, r->width));
        break;
    case T_ONOFF:
    case T_FLAG:
        put(out, len, &at, "%s", *(const bool *)field ? "on" : "off");
        break;
    case T_STRING:
        put(out, len, &at, "%s", *(const char *const *)field ? *(const char *const *)field : "");
        break;
    case T_LEVEL: {
        int l = *(const int *)field;
        put(out, len, &at, "%s", l >= 0 && l < 4 ? levels[l] : "info");
        break;
    }
    case T_NAMESPACE: {
        const hr_namespaces_t *list = field;
        for (size_t i = 0; i < list->count; i++) {
            if (i)
                put(out, len, &at, "\n");
            put_namespace(out, len, &at, &list->items[i]);
        }
        break;
    }
    case T_MS_PAIR:
        put(out, len, &at, "%u,%u", ((const uint32_t *)field)[0], ((const uint32_t *)field)[1]);
        break;
    case T_NUMBER:
        put(out, len, &at, "%.15g", *(const double *)field);
        break;
    }
    return at;
}

size_t hr_config_format(const hr_config_t *cfg, const char *name, char *out, size_t len)
{
    const opt_row_t *r = find(name);
    if (!r) {
        if (len)
            out[0] = 0;
        return 0;
    }
    return format_row(cfg, r, out, len);
}

/* The value of row r, formatted into a heap buffer (NULL on out of memory). */
static char *format_alloc(const hr_config_t *cfg, const opt_row_t *r)
{
    size_t n = format_row(cfg, r, NULL, 0);
    char *s = hr_malloc(n + 1);
    if (s)
        format_row(cfg, r, s, n + 1);
    return s;
}

bool hr_config_same(const hr_config_t *a, const hr_config_t *b, const char *name)
{
    const opt_row_t *r = find(name);
    if (!r)
        return true;
    char *x = format_alloc(a, r), *y = format_alloc(b, r);
    bool same = x && y && strcmp(x, y) == 0;
    hr_free(x);
    hr_free(y);
    return same;
}

int hr_config_copy(hr_config_t *dst, const hr_config_t *src, const char *name)
{
    const opt_row_t *r = find(name);
    if (!r)
        return HR_EINVAL;
    void *to = (char *)dst + r->offset;
    const void *from = (const char *)src + r->offset;
    switch (r->type) {
    case T_LISTEN:
        memcpy(dst->listen, src->listen, sizeof(dst->listen));
        dst->server.host = src->server.host == src->listen ? dst->listen : src->server.host;
        dst->server.port = src->server.port;
        return 0;
    case T_STRING: {
        const char *v = *(const char *const *)from;
        const char *kept = v ? hr_config_keep(dst, v) : NULL;
        if (v && !kept)
            return HR_ENOMEM;
        *(const char **)to = kept;
        return 0;
    }
    case T_INT:
    case T_LEVEL:
        memcpy(to, from, sizeof(int));
        return 0;
    case T_SIZE:
    case T_SECONDS:
        memcpy(to, from, r->width);
        return 0;
    case T_ONOFF:
    case T_FLAG:
        memcpy(to, from, sizeof(bool));
        return 0;
    case T_NAMESPACE:
        memcpy(to, from, sizeof(hr_namespaces_t));
        return 0;
    case T_MS_PAIR:
        memcpy(to, from, 2 * sizeof(uint32_t));
        return 0;
    case T_NUMBER:
        memcpy(to, from, sizeof(double));
        return 0;
    }
    return HR_EINVAL;
}

/* Defaults that describe rather than spell a value ("CPUs", "none", "same host"). */
static bool default_is_value(const opt_row_t *r)
{
    return strcmp(r->def, "CPUs") != 0 && strcmp(r->def, "none") != 0 && !strchr(r->def, ' ');
}

/* A value the config file would read differently unquoted: outer blanks, a comment
 * (# or ; after a blank, or first), or enclosing quotes. */
static bool needs_quotes(const char *v)
{
    size_t n = strlen(v);
    if (!n)
        return false;
    if (v[0] == ' ' || v[0] == '\t' || v[n - 1] == ' ' || v[n - 1] == '\t' || v[0] == '#' ||
        v[0] == ';' || (v[0] == '"' && v[n - 1] == '"'))
        return true;
    for (size_t i = 1; i < n; i++)
        if ((v[i] == '#' || v[i] == ';') && (v[i - 1] == ' ' || v[i - 1] == '\t'))
            return true;
    return false;
}

static void print_row(FILE *out, const hr_config_t *cfg, const hr_config_t *defaults,
                      const opt_row_t *r, const char *key)
{
    fprintf(out, "\n# %s", r->help);
    if (!default_is_value(r))
        fprintf(out, " (default: %s)", r->def);
    if (!hr_reload_is_live(r->name))
        fputs(" (a change needs a restart)", out);
    fputc('\n', out);
    char *v = format_alloc(cfg, r);
    char *d = format_alloc(defaults, r);
    bool dflt = !v || !d || strcmp(v, d) == 0;
    if (r->type == T_NAMESPACE && !dflt) {
        for (char *line = v, *nl; line; line = nl ? nl + 1 : NULL) {
            nl = strchr(line, '\n');
            if (nl)
                *nl = 0;
            fprintf(out, "%s = %s\n", key, line);
        }
    } else if (!dflt) {
        fprintf(out, needs_quotes(v) ? "%s = \"%s\"\n" : "%s = %s\n", key, v);
    } else if (default_is_value(r)) {
        fprintf(out, "# %s = %s\n", key, r->def);
    } else {
        fprintf(out, "# %s =\n", key);
    }
    hr_free(v);
    hr_free(d);
}

void hr_config_print(FILE *out, const hr_config_t *cfg)
{
    hr_config_t *defaults = hr_malloc(sizeof(*defaults));
    if (!defaults)
        return;
    hr_config_init(defaults);
    fputs("# Herald configuration for `herald serve --config FILE` (docs/operations.md),\n"
          "# written by `herald serve --print-config`.\n"
          "#\n"
          "# Every key is a `herald serve` option without its \"--\"; options given on the\n"
          "# command line override this file. A key commented out shows its default.\n"
          "# Sizes take K/M/G suffixes (powers of 1024), durations are seconds. Comments\n"
          "# start with # or ; (at the start of a line, or after a blank). Check a file with\n"
          "# `herald check-config FILE`; SIGHUP re-reads it.\n"
          "\n[herald]\n",
          out);
    for (size_t i = 0; i < NROWS; i++)
        if (strncmp(rows[i].name, "route-", 6) != 0)
            print_row(out, cfg, defaults, &rows[i], rows[i].name);
    fputs("\n# Endpoint paths (the route-* options); 'off' disables an endpoint.\n[routes]\n", out);
    for (size_t i = 0; i < NROWS; i++)
        if (strncmp(rows[i].name, "route-", 6) == 0)
            print_row(out, cfg, defaults, &rows[i], rows[i].name + 6);
    hr_config_deinit(defaults);
    hr_free(defaults);
}
