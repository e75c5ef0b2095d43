/* A STOMP application with libherald: the C equivalent of a Spring @MessageMapping
 * controller.
 *
 *   example_stomp_app [PORT]     (default 9004; 0 picks a free port)
 *
 * /stomp speaks STOMP 1.0-1.2 (docs/stomp.md). Clients subscribe to /topic/greetings
 * and to /user/queue/reply. The application handles SENDs to /app/...:
 *   /app/greet    body NAME   -> "Hello, NAME!" to /topic/greetings (everyone)
 *   /app/reverse  body TEXT   -> TEXT reversed to /user/USER/queue/reply (only the sender's
 *                                user; CONNECT with a login)
 *   anything else             -> refused: the client gets an ERROR frame */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald.h"
#include "herald/stomp.h"

static int on_app(hr_conn_t *c, const hr_stomp_app_message_t *m, void *data, char *err,
                  size_t errlen)
{
    (void)data;
    hr_server_t *s = hr_conn_server(c);
    if (strcmp(m->destination, "/app/greet") == 0) {
        char text[300];
        int n = snprintf(text, sizeof(text), "Hello, %.*s!",
                         (int)(m->body_len > 256 ? 256 : m->body_len), (const char *)m->body);
        return hr_stomp_send(s, "/topic/greetings", "text/plain", text, (size_t)n);
    }
    if (strcmp(m->destination, "/app/reverse") == 0) {
        if (!m->user) {
            snprintf(err, errlen, "reverse needs a login");
            return HR_EINVAL;
        }
        char *rev = malloc(m->body_len + 1);
        if (!rev)
            return HR_ENOMEM;
        for (size_t i = 0; i < m->body_len; i++)
            rev[i] = (char)m->body[m->body_len - 1 - i];
        char dest[300];
        snprintf(dest, sizeof(dest), "/user/%s/queue/reply", m->user);
        int rc = hr_stomp_send(s, dest, "text/plain", rev, m->body_len);
        free(rev);
        return rc;
    }
    snprintf(err, errlen, "no handler for %s", m->destination);
    return HR_EINVAL;
}

int main(int argc, char **argv)
{
    hr_server_options_t o;
    hr_server_options_init(&o);
    o.port = (uint16_t)(argc > 1 ? atoi(argv[1]) : 9004);
    o.threads = 2;
    o.handle_signals = true;
    char err[256];
    hr_server_t *s = hr_server_create(&o, err, sizeof(err));
    if (!s || hr_stomp_add_route(s, "/stomp", on_app, NULL) < 0 ||
        hr_server_start(s, err, sizeof(err)) != 0) {
        fprintf(stderr, "example_stomp_app: %s\n", s ? err : "cannot create the server");
        return 1;
    }
    printf("listening on 127.0.0.1:%u\n", hr_server_port(s));
    fflush(stdout);
    int rc = hr_server_run(s, err, sizeof(err));
    hr_server_destroy(s);
    return rc == 0 ? 0 : 1;
}
