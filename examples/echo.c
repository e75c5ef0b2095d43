/* The smallest embedding of libherald: a WebSocket echo server at /echo.
 *
 *   example_echo [PORT]      (default 9001; 0 picks a free port)
 *
 * Every message comes back to its sender unchanged. Stops on SIGINT/SIGTERM. */
#include <stdio.h>
#include <stdlib.h>

#include "herald.h"

static void on_open(hr_conn_t *c)
{
    const char *proto = hr_conn_protocol(c);
    printf("open: connection %llu on thread %d protocol %s\n", (unsigned long long)hr_conn_id(c),
           hr_conn_thread(c), proto ? proto : "(none)");
    fflush(stdout);
}

static void on_message(hr_conn_t *c, const uint8_t *data, size_t len, bool binary)
{
    hr_conn_send(c, data, len, binary);
}

static void on_close(hr_conn_t *c, uint16_t code, const char *reason, size_t reason_len)
{
    printf("close: connection %llu code %u reason '%.*s'\n", (unsigned long long)hr_conn_id(c),
           code, (int)reason_len, reason);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    hr_server_options_t opt;
    hr_server_options_init(&opt);
    opt.port = (uint16_t)(argc > 1 ? atoi(argv[1]) : 9001);
    opt.handle_signals = true;
    char err[256];
    hr_server_t *srv = hr_server_create(&opt, err, sizeof(err));
    if (!srv) {
        fprintf(stderr, "echo: %s\n", err);
        return 1;
    }
    hr_route_callbacks_t cb = {.on_open = on_open, .on_message = on_message, .on_close = on_close};
    /* Subprotocols in server preference order; a client offering none still connects. */
    static const char *const protocols[] = {"echo.v2", "echo.v1", NULL};
    hr_server_add_route(srv, "/echo", &cb, protocols, NULL);
    if (hr_server_start(srv, err, sizeof(err)) != 0) {
        fprintf(stderr, "echo: %s\n", err);
        hr_server_destroy(srv);
        return 1;
    }
    printf("listening on 127.0.0.1:%u\n", hr_server_port(srv));
    fflush(stdout);
    int rc = hr_server_run(srv, err, sizeof(err));
    hr_server_destroy(srv);
    return rc == 0 ? 0 : 1;
}
