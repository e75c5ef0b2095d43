/* Server-pushed order status with libherald.
 *
 *   example_order_status [PORT]     (default 9003; 0 picks a free port)
 *
 * A client of /orders sends "subscribe ORDER" (or "unsubscribe ORDER") and from then
 * on receives {"order":"ORDER","status":"..."} for every status change of that order.
 * Status changes come from the "backend": here a plain thread of the application (not
 * a Herald worker) that moves order 1001 through its life-cycle every 300 ms, calling
 * hr_server_publish, which is safe from any thread. A client may also post a change
 * itself with "update ORDER STATUS", as a back-office page would. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "herald.h"

static hr_server_t *srv;
static atomic_bool backend_stop;

static void push_status(const char *order, const char *status)
{
    char topic[96], msg[256];
    snprintf(topic, sizeof(topic), "order.%s", order);
    int n = snprintf(msg, sizeof(msg), "{\"order\":\"%s\",\"status\":\"%s\"}", order, status);
    hr_server_publish(srv, topic, msg, (size_t)n, false);
}

static void *backend(void *arg)
{
    static const char *const steps[] = {"placed", "paid", "packed", "shipped", "delivered"};
    struct timespec pause = {0, 300 * 1000 * 1000};
    for (unsigned i = 0; !atomic_load(&backend_stop); i++) {
        push_status("1001", steps[i % 5]);
        nanosleep(&pause, NULL);
    }
    return NULL;
}

/* "verb ARG [REST]": copies ARG into arg (NUL-terminated) and returns REST or NULL. */
static const char *word(const char *s, size_t len, const char *verb, char *arg, size_t cap,
                        const char **rest)
{
    size_t vl = strlen(verb);
    if (len <= vl + 1 || memcmp(s, verb, vl) != 0 || s[vl] != ' ')
        return NULL;
    const char *a = s + vl + 1, *end = s + len;
    const char *sp = memchr(a, ' ', (size_t)(end - a));
    const char *aend = sp ? sp : end;
    if (aend == a || (size_t)(aend - a) >= cap)
        return NULL;
    for (const char *p = a; p < aend; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              *p == '-'))
            return NULL;
    memcpy(arg, a, (size_t)(aend - a));
    arg[aend - a] = 0;
    *rest = sp ? sp + 1 : end;
    return arg;
}

static void reply(hr_conn_t *c, const char *text)
{
    hr_conn_send(c, text, strlen(text), false);
}

static void on_message(hr_conn_t *c, const uint8_t *data, size_t len, bool binary)
{
    const char *s = (const char *)data, *rest;
    char order[64], topic[96], text[160], status[32];
    if (word(s, len, "subscribe", order, sizeof(order), &rest)) {
        snprintf(topic, sizeof(topic), "order.%s", order);
        int rc = hr_conn_subscribe(c, topic);
        snprintf(text, sizeof(text), rc == 0 ? "subscribed %s" : "error already subscribed to %s",
                 order);
        reply(c, text);
    } else if (word(s, len, "unsubscribe", order, sizeof(order), &rest)) {
        snprintf(topic, sizeof(topic), "order.%s", order);
        int rc = hr_conn_unsubscribe(c, topic);
        snprintf(text, sizeof(text), rc == 0 ? "unsubscribed %s" : "error not subscribed to %s",
                 order);
        reply(c, text);
    } else if (word(s, len, "update", order, sizeof(order), &rest) &&
               (size_t)(s + len - rest) > 0 && (size_t)(s + len - rest) < sizeof(status)) {
        size_t sl = (size_t)(s + len - rest);
        memcpy(status, rest, sl);
        status[sl] = 0;
        for (size_t i = 0; i < sl; i++)
            if (status[i] < 'a' || status[i] > 'z') {
                reply(c, "error status must be lower-case letters");
                return;
            }
        push_status(order, status);
        reply(c, "ok");
    } else {
        reply(c, "error expected: subscribe ORDER | unsubscribe ORDER | update ORDER STATUS");
    }
}

int main(int argc, char **argv)
{
    hr_server_options_t opt;
    hr_server_options_init(&opt);
    opt.port = (uint16_t)(argc > 1 ? atoi(argv[1]) : 9003);
    opt.handle_signals = true;
    char err[256];
    srv = hr_server_create(&opt, err, sizeof(err));
    if (!srv) {
        fprintf(stderr, "order_status: %s\n", err);
        return 1;
    }
    hr_route_callbacks_t cb = {.on_message = on_message};
    hr_server_add_route(srv, "/orders", &cb, NULL, NULL);
    if (hr_server_start(srv, err, sizeof(err)) != 0) {
        fprintf(stderr, "order_status: %s\n", err);
        hr_server_destroy(srv);
        return 1;
    }
    pthread_t tid;
    pthread_create(&tid, NULL, backend, NULL);
    printf("listening on 127.0.0.1:%u\n", hr_server_port(srv));
    fflush(stdout);
    int rc = hr_server_run(srv, err, sizeof(err));
    atomic_store(&backend_stop, true);
    pthread_join(tid, NULL);
    hr_server_destroy(srv);
    return rc == 0 ? 0 : 1;
}
