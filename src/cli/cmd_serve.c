/* herald serve: read the config file (--config) and the options through the config
 * table, register the built-in endpoints, run until SIGINT/SIGTERM; SIGHUP reloads
 * (server/reload.c). */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/log.h"
#include "api/api.h"
#include "api/web.h"
#include "cli/cli.h"
#include "server/channels.h"
#include "proto/proto.h"
#include "server/config.h"
#include "server/config_file.h"
#include "server/handoff.h"
#include "server/http_stream.h"
#include "server/reload.h"
#include "server/sockjs.h"
#include "server/stomp.h"

static void usage(FILE *out)
{
    fputs("usage: herald serve [--config FILE] [options]\n"
          "\n"
          "Runs the server: /ws echoes every message, /broadcast sends every message to every\n"
          "client of /broadcast, /pubsub is the channel protocol (docs/protocol.md), /stomp is\n"
          "STOMP 1.0-1.2 on the same channels (docs/stomp.md), /api/ the HTTP API for backends\n"
          "(docs/api.md), /healthz the health check.\n"
          "\n"
          "  --config FILE                      read options from FILE (INI; keys are the options\n"
          "                                     below without '--'); options given here override\n"
          "                                     it; SIGHUP re-reads it (docs/operations.md)\n"
          "  --print-config                     print the resulting configuration as a config\n"
          "                                     file and exit\n"
          "\n"
          "options (--name VALUE or --name=VALUE):\n",
          out);
    hr_config_usage(out);
}

/* Config file errors as compilers print them: FILE:LINE: message. */
static void print_error(void *data, const char *file, int line, const char *msg)
{
    (void)data;
    if (file && line > 0)
        fprintf(stderr, "%s:%d: %s\n", file, line, msg);
    else if (file)
        fprintf(stderr, "%s: %s\n", file, msg);
    else
        fprintf(stderr, "herald serve: %s\n", msg);
}

/* Splits argv into --config, --print-config and the table's options (kept in args, in
 * order, to be applied over the file now and at every reload). 0 or an exit code. */
static int parse_args(int argc, char **argv, hr_config_arg_t *args, size_t *nargs,
                      const char **config, bool *print_config)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout);
            return -1;
        }
        if (strncmp(arg, "--", 2) != 0) {
            fprintf(stderr, "herald serve: unexpected argument '%s' (see herald serve --help)\n",
                    arg);
            return 2;
        }
        if (strcmp(arg, "--print-config") == 0) {
            *print_config = true;
            continue;
        }
        if (strcmp(arg, "--config") == 0 || strncmp(arg, "--config=", 9) == 0) {
            *config = arg[8] == '=' ? arg + 9 : i + 1 < argc ? argv[++i] : NULL;
            if (!*config || !**config) {
                fprintf(stderr, "herald serve: option '--config' needs a file\n");
                return 2;
            }
            continue;
        }
        hr_config_arg_t *a = &args[*nargs];
        const char *eq = strchr(arg + 2, '=');
        size_t nlen = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
        if (nlen >= sizeof(a->name))
            nlen = sizeof(a->name) - 1;
        memcpy(a->name, arg + 2, nlen);
        a->name[nlen] = 0;
        a->value = NULL;
        bool takes = false;
        if (!hr_config_known(a->name, &takes)) {
            fprintf(stderr, "herald serve: unknown option '--%s' (see herald serve --help)\n",
                    a->name);
            return 2;
        }
        if (eq)
            a->value = eq + 1;
        else if (takes) {
            if (i + 1 >= argc) {
                fprintf(stderr, "herald serve: option '--%s' needs a value\n", a->name);
                return 2;
            }
            a->value = argv[++i];
        }
        (*nargs)++;
    }
    return 0;
}

/* Runs the server with reload->running until it stops; the exit code. cfg is read only
 * before hr_server_run: a SIGHUP reload replaces (and frees) it while the server runs. */
static int serve(hr_reload_t *reload)
{
    const hr_config_t *cfg = reload->running;
    char err[512];
    hr_log_set_level((hr_log_level_t)cfg->log_level);
    hr_log_set_format_name(cfg->log_format);
    hr_server_t *srv = hr_server_create(&cfg->server, err, sizeof(err));
    if (!srv) {
        fprintf(stderr, "herald serve: %s\n", err);
        return 1;
    }
    srv->namespaces = cfg->namespaces;
    srv->api_key = cfg->api_key ? hr_strdup(cfg->api_key) : NULL;
    srv->stomp.hb_send_ms = cfg->stomp_heartbeat[0];
    srv->stomp.hb_recv_ms = cfg->stomp_heartbeat[1];
    srv->stomp.hb_grace = cfg->stomp_heartbeat_grace;
    srv->stomp.app_webhook = cfg->app_webhook ? hr_strdup(cfg->app_webhook) : NULL;
    srv->trusted_proxies = cfg->trusted_proxies ? hr_strdup(cfg->trusted_proxies) : NULL;
    srv->access_log = cfg->access_log;
#define DUP(s) ((s) ? hr_strdup(s) : NULL)
    srv->sec.tls_cert = DUP(cfg->tls_cert);
    srv->sec.tls_key = DUP(cfg->tls_key);
    srv->sec.auth = strcmp(cfg->auth, "required") == 0   ? HR_AUTH_REQUIRED
                    : strcmp(cfg->auth, "optional") == 0 ? HR_AUTH_OPTIONAL
                                                         : HR_AUTH_OFF;
    srv->sec.jwt_secret = DUP(cfg->jwt_secret);
    srv->sec.jwt_public_key = DUP(cfg->jwt_public_key);
    srv->sec.auth_webhook = DUP(cfg->auth_webhook);
    srv->redis.url = DUP(cfg->redis);
    srv->redis.prefix = DUP(cfg->redis_prefix);
    srv->web_dir = DUP(cfg->web_dir);
#undef DUP
    srv->web = cfg->web;
    srv->sockjs = cfg->sockjs;
    srv->sec.max_connections = cfg->max_connections;
    srv->sec.max_connections_per_ip = cfg->max_connections_per_ip;
    srv->sec.max_connections_per_user = cfg->max_connections_per_user;
    srv->sec.max_message_rate = cfg->max_message_rate;
    srv->sec.message_burst = cfg->message_burst;
    srv->sec.max_subscriptions = cfg->max_subscriptions;
    hr_server__set_reload(srv, hr_reload_run, reload);
#define ON(path) (strcmp((path), "off") != 0)
    if ((ON(cfg->route_echo) &&
         hr_server_add_route(srv, cfg->route_echo, &hr_proto_echo, NULL, NULL) < 0) ||
        (ON(cfg->route_broadcast) &&
         hr_server_add_route(srv, cfg->route_broadcast, &hr_proto_broadcast, NULL, NULL) < 0) ||
        (ON(cfg->route_pubsub) &&
         hr_server_add_route(srv, cfg->route_pubsub, &hr_pubsub_route, NULL, NULL) < 0) ||
        (ON(cfg->route_stomp) && hr_stomp_add_route(srv, cfg->route_stomp, NULL, NULL) < 0) ||
        (ON(cfg->route_stomp) && cfg->sockjs && hr_sockjs_add_routes(srv, cfg->route_stomp) < 0) ||
        hr_server__add_http(srv, "/healthz", false, hr_api_healthz, NULL) != 0 ||
        hr_server__add_http(srv, "/readyz", false, hr_api_readyz, NULL) != 0 ||
        hr_server__add_http(srv, "/metrics", false, hr_api_metrics, NULL) != 0 ||
        hr_server__add_http(srv, "/api/", true, hr_api_handle, NULL) != 0 ||
        (ON(cfg->route_sse) &&
         hr_server__add_http(srv, cfg->route_sse, false, hr_http_sse_handle, NULL) != 0) ||
        (ON(cfg->route_poll) &&
         hr_server__add_http(srv, cfg->route_poll, false, hr_http_poll_handle, NULL) != 0) ||
        hr_web_register(srv) != 0) {
        fprintf(stderr, "herald serve: cannot register endpoints (a route path must start with '/' "
                        "and be unique)\n");
        hr_server_destroy(srv);
        return 1;
    }
#undef ON
    if (cfg->takeover && hr_handoff_takeover(srv, cfg->takeover, err, sizeof(err)) != 0) {
        fprintf(stderr, "herald serve: %s\n", err);
        hr_server_destroy(srv);
        return 1;
    }
    /* SIGINT/SIGTERM are taken by hr_server_run's sigtimedwait; block them before the
     * workers exist so that none of them can receive one. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    int rc = hr_server_start(srv, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "herald serve: %s\n", err);
        hr_server_destroy(srv);
        return 1;
    }
    if (cfg->handoff_socket && hr_handoff_listen(srv, cfg->handoff_socket, err, sizeof(err)) != 0) {
        fprintf(stderr, "herald serve: %s\n", err);
        hr_server_stop(srv);
        hr_server_wait(srv);
        hr_server_destroy(srv);
        return 1;
    }
    const char *host = cfg->server.host;
    bool v6 = strchr(host, ':') != NULL;
    printf("herald listening on %s%s%s:%u\n", v6 ? "[" : "", host, v6 ? "]" : "",
           hr_server_port(srv));
    fflush(stdout);
    char eps[1024] = "";
    const char *paths[] = {cfg->route_echo,  cfg->route_broadcast, cfg->route_pubsub,
                           cfg->route_stomp, cfg->route_sse,       cfg->route_poll};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
        if (strcmp(paths[i], "off") != 0)
            snprintf(eps + strlen(eps), sizeof(eps) - strlen(eps), "%s ", paths[i]);
    hr_log_info("herald %s: %d threads, endpoints %s/api/ /healthz /metrics%s%s", HR_VERSION_STRING,
                cfg->server.threads, eps, cfg->web ? ", pages at / and /admin" : "",
                cfg->redis ? ", cluster through Redis" : "");
    if (reload->path)
        hr_log_info("configuration from %s (SIGHUP re-reads it)", reload->path);
    rc = hr_server_run(srv, err, sizeof(err));
    hr_handoff_close(srv);
    hr_server_destroy(srv);
    return rc == 0 ? 0 : 1;
}

int hr_cmd_serve(int argc, char **argv)
{
    hr_config_arg_t *args = hr_calloc((size_t)argc, sizeof(*args));
    hr_config_t *cfgp = hr_malloc(sizeof(*cfgp));
    if (!args || !cfgp) {
        fprintf(stderr, "herald serve: out of memory\n");
        hr_free(args);
        hr_free(cfgp);
        return 1;
    }
    hr_reload_t reload = {.args = args, .running = cfgp};
    size_t nargs = 0;
    bool print_config = false;
    int rc = parse_args(argc, argv, args, &nargs, &reload.path, &print_config);
    if (rc) {
        hr_free(args);
        hr_free(cfgp);
        return rc < 0 ? 0 : rc;
    }
    reload.nargs = nargs;
    int nerr = hr_config_load(cfgp, reload.path, args, nargs, print_error, NULL);
    if (nerr != 0 || print_config) {
        if (nerr > 0 && reload.path)
            fprintf(stderr, "herald serve: %d error%s in %s\n", nerr, nerr == 1 ? "" : "s",
                    reload.path);
        else if (nerr == 0)
            hr_config_print(stdout, cfgp);
        hr_config_deinit(cfgp);
        hr_free(cfgp);
        hr_free(args);
        return nerr ? 2 : 0;
    }
    rc = serve(&reload);
    hr_config_deinit(reload.running);
    hr_free(reload.running);
    hr_free(args);
    return rc;
}
