/* The option table (Redis static_configs style): one row per option with its parser,
 * range and help; usage text and validation come from the same rows, so they cannot
 * disagree. Values: sizes take K/M/G suffixes (powers of 1024), durations are seconds
 * (fractions allowed). */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "herald/error.h"
#include "server/config.h"

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
    cfg->route_echo = "/ws";
    cfg->route_broadcast = "/broadcast";
    cfg->route_pubsub = "/pubsub";
    cfg->route_stomp = "/stomp";
    cfg->stomp_heartbeat[0] = cfg->stomp_heartbeat[1] = 10000;
    cfg->stomp_heartbeat_grace = 3;
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
