/* herald pub / herald sub: publish to and follow a channel from the shell, over the
 * /pubsub endpoint (docs/protocol.md) with the client library.
 *
 *   herald pub CHANNEL DATA [--url URL]     DATA: JSON if it parses, else a JSON string
 *   herald sub CHANNEL [--since OFFSET --epoch E] [--url URL] [--full] [--count N]
 *
 * sub prints each message's data as one line of JSON (--full: the whole message frame),
 * and after a lost connection reconnects with since = the last offset it printed, so a
 * restart of the server or a network blip loses nothing the channel's history still
 * holds. Exit codes: 0 done, 1 connection or server error, 2 usage error. */
#include <jansson.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "herald/client.h"

#define DEFAULT_URL "ws://127.0.0.1:8080/pubsub"

typedef struct ps {
    hr_loop_t *loop;
    hr_client_t *client;
    bool pub;
    const char *channel;
    char *data; /* pub: compact JSON */
    bool full;
    long count; /* sub: exit after this many messages (0: never) */
    long seen;
    bool have_since;
    uint64_t since;
    char epoch[80];
    int exit_code;
    bool done;
} ps_t;

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void finish(ps_t *p, int code)
{
    p->exit_code = code;
    p->done = true;
    hr_loop_stop(p->loop);
}

static void send_json(ps_t *p, json_t *obj)
{
    char *text = json_dumps(obj, JSON_COMPACT);
    if (text) {
        hr_client_send(p->client, text, strlen(text), false);
        free(text);
    }
    json_decref(obj);
}

static void on_open(hr_client_t *c)
{
    ps_t *p = hr_client_data(c);
    if (p->pub) {
        json_error_t e;
        json_t *data = json_loads(p->data, JSON_DECODE_ANY, &e);
        send_json(p, json_pack("{s:s, s:i, s:s, s:o}", "type", "publish", "id", 1, "channel",
                               p->channel, "data", data));
        return;
    }
    json_t *sub = json_pack("{s:s, s:i, s:s}", "type", "subscribe", "id", 1, "channel", p->channel);
    if (p->have_since)
        json_object_set_new(
            sub, "since",
            json_pack("{s:I, s:s}", "offset", (json_int_t)p->since, "epoch", p->epoch));
    send_json(p, sub);
}

static void on_message(hr_client_t *c, const uint8_t *d, size_t len, bool binary)
{
    ps_t *p = hr_client_data(c);
    json_error_t e;
    json_t *m = json_loadb((const char *)d, len, 0, &e);
    const char *type = json_string_value(json_object_get(m, "type"));
    if (!type) {
        fprintf(stderr, "herald: unexpected frame: %.*s\n", (int)len, (const char *)d);
    } else if (!strcmp(type, "error")) {
        fprintf(stderr, "herald: error %s: %s\n", json_string_value(json_object_get(m, "code")),
                json_string_value(json_object_get(m, "message")));
        finish(p, 1);
    } else if (!strcmp(type, "ok") && p->pub) {
        printf("offset=%lld epoch=%s\n",
               (long long)json_integer_value(json_object_get(m, "offset")),
               json_string_value(json_object_get(m, "epoch")));
        finish(p, 0);
    } else if (!strcmp(type, "ok")) {
        json_t *rec = json_object_get(m, "recovered");
        const char *epoch = json_string_value(json_object_get(m, "epoch"));
        if (p->have_since && json_is_false(rec))
            fprintf(stderr,
                    "herald: could not recover the messages after offset %llu (history "
                    "no longer covers them)\n",
                    (unsigned long long)p->since);
        if (!p->have_since || json_is_false(rec)) {
            /* From here on, recover from the current top after a reconnect. */
            p->since = (uint64_t)json_integer_value(json_object_get(m, "offset"));
            p->have_since = epoch != NULL;
        }
        if (epoch)
            snprintf(p->epoch, sizeof(p->epoch), "%s", epoch);
    } else if (!strcmp(type, "message")) {
        if (p->full) {
            printf("%.*s\n", (int)len, (const char *)d);
        } else {
            char *data = json_dumps(json_object_get(m, "data"), JSON_COMPACT | JSON_ENCODE_ANY);
            printf("%s\n", data ? data : "null");
            free(data);
        }
        fflush(stdout);
        p->since = (uint64_t)json_integer_value(json_object_get(m, "offset"));
        p->have_since = true;
        if (p->count && ++p->seen >= p->count)
            finish(p, 0);
    }
    json_decref(m);
}

static void on_error(hr_client_t *c, int err, const char *msg)
{
    fprintf(stderr, "herald: %s\n", msg);
}

static void on_close(hr_client_t *c, uint16_t code, const char *reason, size_t rlen)
{
    ps_t *p = hr_client_data(c);
    if (p->pub && !p->done)
        finish(p, 1);
    /* sub: the client reconnects by itself; on_open resubscribes with since. */
}

/* herald pub --api URL: POST {"channel","data"} to URL (http://host:port/api/publish)
 * with a blocking HTTP/1.1 request; prints offset and epoch like the /pubsub path. */
static int publish_http(const char *url, const char *key, const char *channel, const char *data)
{
    if (strncmp(url, "http://", 7) != 0) {
        fprintf(stderr, "herald pub: --api needs an http:// URL (https comes with TLS)\n");
        return 2;
    }
    const char *hp = url + 7, *path = strchr(hp, '/');
    char host[256], port[8] = "80";
    size_t hl = path ? (size_t)(path - hp) : strlen(hp);
    if (hl == 0 || hl >= sizeof(host)) {
        fprintf(stderr, "herald pub: bad --api URL '%s'\n", url);
        return 2;
    }
    memcpy(host, hp, hl);
    host[hl] = 0;
    char *colon = strrchr(host, ':');
    if (colon) {
        snprintf(port, sizeof(port), "%s", colon + 1);
        *colon = 0;
    }
    if (!path)
        path = "/api/publish";
    json_t *body = json_pack("{s:s, s:o}", "channel", channel, "data",
                             json_loads(data, JSON_DECODE_ANY, NULL));
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    int fd = -1;
    if (text && getaddrinfo(host, port, &hints, &res) == 0) {
        fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
            close(fd);
            fd = -1;
        }
        freeaddrinfo(res);
    }
    if (fd < 0) {
        fprintf(stderr, "herald pub: cannot connect to %s:%s\n", host, port);
        free(text);
        return 1;
    }
    char head[1024];
    int n = snprintf(head, sizeof(head),
                     "POST %s HTTP/1.1\r\nHost: %s:%s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n%s%s%s\r\n",
                     path, host, port, strlen(text), key ? "Authorization: Bearer " : "",
                     key ? key : "", key ? "\r\n" : "");
    bool sent = n > 0 && (size_t)n < sizeof(head) && write(fd, head, (size_t)n) == n &&
                write(fd, text, strlen(text)) == (ssize_t)strlen(text);
    free(text);
    char resp[8192];
    size_t got = 0;
    ssize_t r;
    while (sent && got < sizeof(resp) - 1 && (r = read(fd, resp + got, sizeof(resp) - 1 - got)) > 0)
        got += (size_t)r;
    close(fd);
    resp[got] = 0;
    int status = 0;
    const char *json = strstr(resp, "\r\n\r\n");
    if (!sent || sscanf(resp, "HTTP/1.%*d %d", &status) != 1 || !json) {
        fprintf(stderr, "herald pub: no valid HTTP answer from %s\n", url);
        return 1;
    }
    json_t *m = json_loads(json + 4, 0, NULL);
    if (status != 200) {
        const char *msg = json_string_value(json_object_get(m, "message"));
        fprintf(stderr, "herald pub: HTTP %d %s: %s\n", status,
                json_string_value(json_object_get(m, "error")), msg ? msg : json + 4);
        json_decref(m);
        return 1;
    }
    printf("offset=%lld epoch=%s\n", (long long)json_integer_value(json_object_get(m, "offset")),
           json_string_value(json_object_get(m, "epoch")));
    json_decref(m);
    return 0;
}

static void usage(FILE *out, bool pub)
{
    if (pub)
        fputs("usage: herald pub CHANNEL DATA [--url URL | --api URL [--api-key KEY]]\n"
              "  Publishes DATA (JSON if it parses, else sent as a JSON string) to CHANNEL\n"
              "  through the /pubsub endpoint and prints the offset. URL default " DEFAULT_URL "\n"
              "  --api http://HOST:PORT/api/publish: through the HTTP API instead (as a backend).\n"
              "  Exit: 0 published, 1 connection or server error (printed), 2 usage.\n",
              out);
    else
        fputs("usage: herald sub CHANNEL [--since OFFSET --epoch EPOCH] [--url URL] [--full] "
              "[--count N]\n"
              "  Follows CHANNEL (or a pattern like orders.*) and prints each message's data as a\n"
              "  line of JSON (--full: the whole message). Reconnects by itself and recovers\n"
              "  missed messages from the channel history. --count N: exit after N messages.\n"
              "  Exit: 0 (--count reached or Ctrl-C), 1 server error, 2 usage.\n",
              out);
}

static int run(int argc, char **argv, bool pub)
{
    ps_t p = {.pub = pub};
    const char *url = DEFAULT_URL, *data = NULL, *api = NULL, *api_key = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout, pub);
            return 0;
        } else if (!strcmp(a, "--url") && v) {
            url = v;
            i++;
        } else if (pub && !strcmp(a, "--api") && v) {
            api = v;
            i++;
        } else if (pub && !strcmp(a, "--api-key") && v) {
            api_key = v;
            i++;
        } else if (!pub && !strcmp(a, "--since") && v) {
            char *end;
            p.since = strtoull(v, &end, 10);
            if (*end || !*v) {
                fprintf(stderr, "herald sub: --since needs a whole number\n");
                return 2;
            }
            p.have_since = true;
            i++;
        } else if (!pub && !strcmp(a, "--epoch") && v) {
            snprintf(p.epoch, sizeof(p.epoch), "%s", v);
            i++;
        } else if (!pub && !strcmp(a, "--count") && v) {
            p.count = strtol(v, NULL, 10);
            if (p.count <= 0) {
                fprintf(stderr, "herald sub: --count needs a positive number\n");
                return 2;
            }
            i++;
        } else if (!pub && !strcmp(a, "--full")) {
            p.full = true;
        } else if (a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "herald %s: unknown option '%s' (see --help)\n", pub ? "pub" : "sub",
                    a);
            return 2;
        } else if (!p.channel) {
            p.channel = a;
        } else if (pub && !data) {
            data = a;
        } else {
            fprintf(stderr, "herald %s: unexpected argument '%s'\n", pub ? "pub" : "sub", a);
            return 2;
        }
    }
    if (!p.channel || (pub && !data)) {
        usage(stderr, pub);
        return 2;
    }
    if (p.have_since && !p.epoch[0]) {
        fprintf(stderr, "herald sub: --since needs --epoch (from an earlier message)\n");
        return 2;
    }
    if (pub) {
        json_error_t e;
        json_t *parsed = json_loads(data, JSON_DECODE_ANY, &e);
        json_t *v = parsed ? parsed : json_string(data);
        p.data = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        json_decref(v);
        if (!p.data) {
            fprintf(stderr, "herald pub: DATA must be UTF-8 text\n");
            return 2;
        }
    }
    if (api) {
        int rc = publish_http(api, api_key, p.channel, p.data);
        free(p.data);
        return rc;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    p.loop = hr_loop_create();
    hr_client_options_t o;
    hr_client_options_init(&o);
    o.url = url;
    o.reconnect = !pub;
    hr_client_callbacks_t cb = {
        .on_open = on_open, .on_message = on_message, .on_close = on_close, .on_error = on_error};
    char err[256];
    p.client = p.loop ? hr_client_connect(p.loop, &o, &cb, &p, err, sizeof(err)) : NULL;
    if (!p.client) {
        fprintf(stderr, "herald %s: %s\n", pub ? "pub" : "sub",
                p.loop ? err : "cannot create a loop");
        free(p.data);
        hr_loop_destroy(p.loop);
        return 2;
    }
    while (!p.done && !interrupted)
        hr_loop_run_once(p.loop, 200);
    hr_client_destroy(p.client);
    hr_loop_run_once(p.loop, 0);
    hr_loop_destroy(p.loop);
    free(p.data);
    return p.done ? p.exit_code : 0;
}

int hr_cmd_pub(int argc, char **argv)
{
    return run(argc, argv, true);
}

int hr_cmd_sub(int argc, char **argv)
{
    return run(argc, argv, false);
}
