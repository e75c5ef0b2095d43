#ifndef HR_SERVER_CONFIG_H
#define HR_SERVER_CONFIG_H

/* The table of `herald serve` options: name, type, range, default and help in one place,
 * used by the command line (and, later, the config file). */

#include <stdbool.h>
#include <stdio.h>

#include "herald.h"

/* What the CLI holds beyond hr_server_options_t. */
#include "broker/namespace.h"

typedef struct hr_config {
    hr_server_options_t server;
    hr_namespaces_t namespaces;   /* --namespace, in the order given */
    const char *api_key;          /* --api-key: required on /api/ requests when set */
    uint32_t stomp_heartbeat[2];  /* --stomp-heartbeat SEND,RECV (ms) */
    double stomp_heartbeat_grace; /* --stomp-heartbeat-grace */
    const char *app_webhook;      /* --app-webhook URL */
    const char *log_format;       /* --log-format text|logfmt|json */
    bool access_log;              /* --access-log */
    const char *trusted_proxies;  /* --trusted-proxies LIST, or NULL */
    const char *route_echo, *route_broadcast, *route_pubsub, *route_stomp; /* path or "off" */
    const char *handoff_socket; /* --handoff-socket PATH, or NULL */
    const char *takeover;       /* --takeover PATH, or NULL */
    char listen[256];
    int log_level; /* hr_log_level_t */
} hr_config_t;

/* Defaults: those of hr_server_options_init, with signals handled. */
void hr_config_init(hr_config_t *cfg);
/* True if name (without "--") is an option; *takes_value tells if it needs a value. */
bool hr_config_known(const char *name, bool *takes_value);
/* Sets option name to value (NULL for a flag). 0, or -1 with a one-line message. */
int hr_config_set(hr_config_t *cfg, const char *name, const char *value, char *err, size_t errlen);
/* Prints the options with their defaults and help. */
void hr_config_usage(FILE *out);

#endif
