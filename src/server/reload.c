/* SIGHUP reload. The file and the original command-line options are read into a fresh
 * config; the options that workers read per connection or per request (limits,
 * timeouts, origins, namespaces, keys, logging, STOMP heart-beats, the webhook, the
 * proxy list) are swapped in while every worker is parked between two inbox posts, so
 * they need no locks. What is built once at start (listeners, threads, routes, zlib
 * settings, the handoff socket) keeps its running value and is reported.
 *
 * Namespaces: channel homes point into srv->namespaces, so after the list is replaced
 * each home is pointed at its (new) namespace. A channel's history ring keeps the size
 * and TTL it was created with; new channels get the new ones. */
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/log.h"
#include "server/channels.h"
#include "server/reload.h"

static const char *const live_options[] = {
    "max-message",
    "max-backlog",
    "max-header",
    "ping-interval",
    "idle-timeout",
    "handshake-timeout",
    "shutdown-timeout",
    "allowed-origins",
    "namespace",
    "api-key",
    "log-level",
    "log-format",
    "stomp-heartbeat",
    "stomp-heartbeat-grace",
    "app-webhook",
    "access-log",
    "trusted-proxies",
    "max-connections",
    "max-connections-per-ip",
    "max-connections-per-user",
    "max-message-rate",
    "message-burst",
    "max-subscriptions",
};

bool hr_reload_is_live(const char *name)
{
    for (size_t i = 0; i < sizeof(live_options) / sizeof(live_options[0]); i++)
        if (strcmp(live_options[i], name) == 0)
            return true;
    return false;
}

/* What the stopped world swaps in. The strings are fresh copies going in and the old
 * ones coming out, freed once the workers run again. */
typedef struct apply {
    const hr_config_t *cfg;
    bool origins, namespaces;
    int origins_rc;
    char *api_key, *app_webhook, *trusted_proxies;
    hr_forwarded_trust_t trust; /* the parsed --trusted-proxies, swapped with the server's */
} apply_t;

static void swap_str(char **a, char **b)
{
    char *t = *a;
    *a = *b;
    *b = t;
}

/* Every worker is parked: nothing reads what this writes. */
static void apply_live(hr_server_t *srv, void *data)
{
    apply_t *a = data;
    const hr_config_t *c = a->cfg;
    hr_server_options_t *o = &srv->opt;
    o->max_message = c->server.max_message;
    o->max_backlog = c->server.max_backlog;
    o->max_header = c->server.max_header;
    o->ping_interval_ms = c->server.ping_interval_ms;
    o->idle_timeout_ms = c->server.idle_timeout_ms;
    o->handshake_timeout_ms = c->server.handshake_timeout_ms;
    o->shutdown_timeout_ms = c->server.shutdown_timeout_ms;
    if (a->origins)
        a->origins_rc = hr_server__replace_origins(srv, c->server.allowed_origins);
    if (a->namespaces) {
        srv->namespaces = c->namespaces;
        for (int i = 0; i < srv->nshards; i++) {
            hr_shard_t *sh = &srv->shards[i];
            for (size_t b = 0; b < sh->nhome_buckets; b++)
                for (hr_chan_home_t *h = sh->homes[b]; h; h = h->next)
                    h->ns = hr_channels_namespace(srv, h->name, h->name_len);
        }
    }
    swap_str(&srv->api_key, &a->api_key);
    swap_str(&srv->stomp.app_webhook, &a->app_webhook);
    swap_str(&srv->trusted_proxies, &a->trusted_proxies);
    hr_forwarded_trust_t t = srv->trust;
    srv->trust = a->trust;
    a->trust = t;
    srv->stomp.hb_send_ms = c->stomp_heartbeat[0];
    srv->stomp.hb_recv_ms = c->stomp_heartbeat[1];
    srv->stomp.hb_grace = c->stomp_heartbeat_grace;
    srv->access_log = c->access_log;
    /* Connection limits apply to what comes next: open connections stay (a lower
     * --max-subscriptions refuses new subscriptions only; rate buckets refill to the new
     * burst). */
    srv->sec.max_connections = c->max_connections;
    srv->sec.max_connections_per_ip = c->max_connections_per_ip;
    srv->sec.max_connections_per_user = c->max_connections_per_user;
    srv->sec.max_message_rate = c->max_message_rate;
    srv->sec.message_burst = c->message_burst;
    srv->sec.max_subscriptions = c->max_subscriptions;
    hr_log_set_level((hr_log_level_t)c->log_level);
    hr_log_set_format_name(c->log_format);
}

static void log_error(void *data, const char *file, int line, const char *msg)
{
    (void)data;
    if (file && line > 0)
        hr_log_error("reload: %s:%d: %s", file, line, msg);
    else if (file)
        hr_log_error("reload: %s: %s", file, msg);
    else
        hr_log_error("reload: %s", msg);
}

/* Appends ", " (unless first) and text to buf[0..len), truncating. */
static void append(char *buf, size_t len, const char *text)
{
    size_t at = strlen(buf);
    if (at + 1 < len)
        snprintf(buf + at, len - at, "%s%s", at ? ", " : "", text);
}

/* "max-message 1K -> 64K"; only the name for secrets and lists. */
static void describe(char *out, size_t len, const char *name, const hr_config_t *was,
                     const hr_config_t *now)
{
    if (strcmp(name, "api-key") == 0 || strcmp(name, "app-webhook") == 0 ||
        strcmp(name, "namespace") == 0) {
        snprintf(out, len, "%s", name);
        return;
    }
    char a[64], b[64];
    size_t na = hr_config_format(was, name, a, sizeof(a));
    size_t nb = hr_config_format(now, name, b, sizeof(b));
    snprintf(out, len, "%s %s%s -> %s%s", name, a[0] ? a : "(none)", na >= sizeof(a) ? "..." : "",
             b[0] ? b : "(none)", nb >= sizeof(b) ? "..." : "");
}

static char *dup_or_null(const char *s, bool *failed)
{
    char *d = s ? hr_strdup(s) : NULL;
    if (s && !d)
        *failed = true;
    return d;
}

void hr_reload_run(hr_server_t *srv, void *data)
{
    hr_reload_t *rl = data;
    if (srv->tls_ctx)
        hr_tls_reload(srv); /* the certificate files, whatever the options say */
    hr_config_t *next = hr_malloc(sizeof(*next));
    if (!next) {
        hr_log_error("reload: out of memory; nothing changed");
        return;
    }
    hr_log_info("reload: reading %s", rl->path ? rl->path : "the command-line options");
    int n = hr_config_load(next, rl->path, rl->args, rl->nargs, log_error, NULL);
    if (n < 0) {
        hr_log_error("reload: kept the running configuration");
        goto done;
    }
    if (n > 0) {
        hr_log_error("reload: %d error%s in %s: nothing changed", n, n == 1 ? "" : "s",
                     rl->path ? rl->path : "the options");
        goto done;
    }

    char restart[512] = "", changes[1024] = "", one[192];
    int nrestart = 0, nchanges = 0;
    apply_t a = {.cfg = next};
    for (size_t i = 0; i < hr_config_count(); i++) {
        const char *name = hr_config_name(i);
        if (hr_config_same(rl->running, next, name))
            continue;
        if (!hr_reload_is_live(name)) {
            append(restart, sizeof(restart), name);
            nrestart++;
            if (hr_config_copy(next, rl->running, name) != 0) {
                hr_log_error("reload: out of memory; nothing changed");
                goto done;
            }
            continue;
        }
        describe(one, sizeof(one), name, rl->running, next);
        append(changes, sizeof(changes), one);
        nchanges++;
        a.origins |= strcmp(name, "allowed-origins") == 0;
        a.namespaces |= strcmp(name, "namespace") == 0;
    }
    if (nrestart)
        hr_log_warn("reload: %s need%s a restart (kept the running values)", restart,
                    nrestart == 1 ? "s" : "");
    if (nchanges == 0) {
        hr_log_info("reload: applied (0 changes)");
        goto done;
    }

    bool failed = false;
    a.api_key = dup_or_null(next->api_key, &failed);
    a.app_webhook = dup_or_null(next->app_webhook, &failed);
    a.trusted_proxies = dup_or_null(next->trusted_proxies, &failed);
    char why[200];
    if (hr_forwarded_trust_parse(&a.trust, next->trusted_proxies, why, sizeof(why)) != 0) {
        hr_log_error("reload: --trusted-proxies: %s; nothing changed", why);
        hr_free(a.api_key);
        hr_free(a.app_webhook);
        hr_free(a.trusted_proxies);
        goto done;
    }
    int rc = failed ? HR_ENOMEM : hr_server__stop_the_world(srv, apply_live, &a);
    hr_forwarded_trust_deinit(&a.trust); /* the old list, or the new one if not applied */
    /* Either the new copies (not applied) or the old strings (the workers now read the
     * new ones): nobody holds these any more. */
    hr_free(a.api_key);
    hr_free(a.app_webhook);
    hr_free(a.trusted_proxies);
    if (rc == HR_ENOMEM) {
        hr_log_error("reload: out of memory; nothing changed");
        goto done;
    }
    if (rc) {
        hr_log_warn("reload: the server is stopping; nothing changed");
        goto done;
    }
    if (a.origins_rc) {
        hr_log_error("reload: out of memory for allowed-origins: kept the running list");
        hr_config_copy(next, rl->running, "allowed-origins");
    }
    hr_config_t *old = rl->running;
    rl->running = next;
    next = old;
    hr_log_info("reload: applied (%d change%s: %s)", nchanges, nchanges == 1 ? "" : "s", changes);
done:
    hr_config_deinit(next);
    hr_free(next);
}
