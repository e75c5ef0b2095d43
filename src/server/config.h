#ifndef HR_SERVER_CONFIG_H
#define HR_SERVER_CONFIG_H

/* The table of `herald serve` options: name, type, range, default and help in one place,
 * used by the command line and the config file (config_file.h). */

#include <stdbool.h>
#include <stdio.h>

#include "herald.h"

/* What the CLI holds beyond hr_server_options_t. */
#include "broker/namespace.h"

typedef struct hr_config {
    hr_server_options_t server;
    hr_namespaces_t namespaces;              /* --namespace, in the order given */
    const char *api_key;                     /* --api-key: required on /api/ requests when set */
    uint32_t stomp_heartbeat[2];             /* --stomp-heartbeat SEND,RECV (ms) */
    double stomp_heartbeat_grace;            /* --stomp-heartbeat-grace */
    const char *app_webhook;                 /* --app-webhook URL */
    const char *log_format;                  /* --log-format text|logfmt|json */
    const char *tls_cert, *tls_key;          /* --tls-cert, --tls-key (PEM files) */
    const char *auth;                        /* --auth off|optional|required */
    const char *jwt_secret, *jwt_public_key; /* HS256 secret; RS256/ES256 key file */
    const char *auth_webhook;                /* --auth-webhook URL */
    int max_connections, max_connections_per_ip, max_connections_per_user; /* 0: none */
    double max_message_rate;     /* per connection, messages/s; 0: none */
    int message_burst;           /* token bucket depth */
    int max_subscriptions;       /* per connection */
    bool access_log;             /* --access-log */
    const char *trusted_proxies; /* --trusted-proxies LIST, or NULL */
    const char *route_echo, *route_broadcast, *route_pubsub, *route_stomp; /* path or "off" */
    const char *handoff_socket;         /* --handoff-socket PATH, or NULL */
    const char *takeover;               /* --takeover PATH, or NULL */
    const char *redis;                  /* --redis redis://host:port/db, or NULL (one node) */
    const char *redis_prefix;           /* --redis-prefix: key and channel prefix in Redis */
    const char *route_sse, *route_poll; /* fallback transports: path or "off" */
    const char *web_dir;                /* --web-dir: serve pages from here, NULL: embedded */
    bool web;                           /* --web: the demo page at / and /admin */
    bool sockjs;                        /* --sockjs: SockJS on the STOMP endpoint */
    char listen[256];
    int log_level;                 /* hr_log_level_t */
    struct hr_config_str *strings; /* copies owned by the config (hr_config_keep) */
} hr_config_t;

/* Defaults: those of hr_server_options_init, with signals handled. */
void hr_config_init(hr_config_t *cfg);
/* Frees the strings the config owns (hr_config_keep); the config is then as after init. */
void hr_config_deinit(hr_config_t *cfg);
/* A copy of s owned by cfg, alive until hr_config_deinit (hr_config_set keeps pointers).
 * NULL on out of memory. */
const char *hr_config_keep(hr_config_t *cfg, const char *s);
/* True if name (without "--") is an option; *takes_value tells if it needs a value. */
bool hr_config_known(const char *name, bool *takes_value);
/* Sets option name to value (NULL for a flag). 0, or -1 with a one-line message. */
int hr_config_set(hr_config_t *cfg, const char *name, const char *value, char *err, size_t errlen);
/* As hr_config_set, for a config file line: every option takes a value, and a flag
 * (--deflate-context-takeover) takes on|off|true|false. value must outlive cfg. */
int hr_config_set_file(hr_config_t *cfg, const char *name, const char *value, char *err,
                       size_t errlen);
/* Prints the options with their defaults and help. */
void hr_config_usage(FILE *out);

/* The options in table order: hr_config_name(i) for i < hr_config_count(). */
size_t hr_config_count(void);
const char *hr_config_name(size_t i);
/* Index of option name, or -1. */
int hr_config_index(const char *name);
/* Writes option name's value in cfg as the config file spells it ("16M", "25", "on"), ""
 * when unset; --namespace: one spec per line. Returns the length it needs (snprintf). */
size_t hr_config_format(const hr_config_t *cfg, const char *name, char *out, size_t len);
/* True if option name has the same value in a and b. */
bool hr_config_same(const hr_config_t *a, const hr_config_t *b, const char *name);
/* Copies option name's value from src into dst (strings kept by dst). 0 or HR_ENOMEM. */
int hr_config_copy(hr_config_t *dst, const hr_config_t *src, const char *name);
/* Writes cfg as a config file: every option with its help; those at their default are
 * commented out (herald serve --print-config, packaging/herald.conf). */
void hr_config_print(FILE *out, const hr_config_t *cfg);

#endif
