/* A chat room with libherald: every message sent to /chat reaches every connected
 * client (on every worker thread), prefixed with the sender's id; joins and leaves are
 * announced. A timer on the server announces the number of connected clients.
 *
 *   example_broadcast [PORT]     (default 9002; 0 picks a free port) */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "herald.h"

static hr_server_t *srv;
static int room;
static atomic_int online;

static void announce(unsigned long long id, const char *what)
{
    char line[128];
    int n = snprintf(line, sizeof(line), "* %llu %s", id, what);
    hr_server_broadcast(srv, room, line, (size_t)n, false);
}

static void on_open(hr_conn_t *c)
{
    atomic_fetch_add(&online, 1);
    announce((unsigned long long)hr_conn_id(c), "joined");
}

static void on_message(hr_conn_t *c, const uint8_t *data, size_t len, bool binary)
{
    char line[4096];
    int n = snprintf(line, sizeof(line), "%llu: %.*s", (unsigned long long)hr_conn_id(c),
                     (int)(len < 4000 ? len : 4000), (const char *)data);
    /* One frame, built once, shared by reference with every recipient. */
    hr_server_broadcast(hr_conn_server(c), hr_conn_route(c), line, (size_t)n, binary);
}

static void on_close(hr_conn_t *c, uint16_t code, const char *reason, size_t reason_len)
{
    atomic_fetch_sub(&online, 1);
    announce((unsigned long long)hr_conn_id(c), "left");
}

static void on_tick(hr_timer_handle_t *t, void *data)
{
    char line[64];
    int n = snprintf(line, sizeof(line), "* %d online", atomic_load(&online));
    hr_server_broadcast(srv, room, line, (size_t)n, false);
}

int main(int argc, char **argv)
{
    hr_server_options_t opt;
    hr_server_options_init(&opt);
    opt.port = (uint16_t)(argc > 1 ? atoi(argv[1]) : 9002);
    opt.handle_signals = true;
    char err[256];
    srv = hr_server_create(&opt, err, sizeof(err));
    if (!srv) {
        fprintf(stderr, "broadcast: %s\n", err);
        return 1;
    }
    hr_route_callbacks_t cb = {.on_open = on_open, .on_message = on_message, .on_close = on_close};
    room = hr_server_add_route(srv, "/chat", &cb, NULL, NULL);
    hr_timer_start(srv, 1000, 1000, on_tick, NULL);
    if (hr_server_start(srv, err, sizeof(err)) != 0) {
        fprintf(stderr, "broadcast: %s\n", err);
        hr_server_destroy(srv);
        return 1;
    }
    printf("listening on 127.0.0.1:%u\n", hr_server_port(srv));
    fflush(stdout);
    int rc = hr_server_run(srv, err, sizeof(err));
    hr_server_destroy(srv);
    return rc == 0 ? 0 : 1;
}
