/* herald client URL: an interactive WebSocket client in the manner of wscat/websocat, on
 * the client library (include/herald/client.h) and one hr_loop.
 *
 * Every stdin line becomes one message (text, or binary with --binary); every message
 * received is one line on stdout (text as is, binary as hex, or the raw bytes with
 * --raw). stdin is watched on the same loop (level-triggered, one read() per readiness,
 * so fd 0 is never switched to non-blocking: it is often shared with the shell). A
 * regular file or /dev/null on stdin cannot be polled; it is read from a timer instead.
 * At stdin EOF (or the first SIGINT/SIGTERM) a close 1000 is sent and the server's close
 * is awaited for --close-timeout seconds. Closes and errors get one line on stderr. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "cli/cli.h"
#include "herald/client.h"
#include "loop/loop.h"
#include "ws/utf8.h"

#define EXIT_OK 0
#define EXIT_FAIL 1
#define EXIT_USAGE 2
#define EXIT_SERVER_CLOSE 3

#define READ_CHUNK 65536
#define PAUSE_ABOVE (4u << 20) /* stop reading stdin while this much output is queued */
#define RESUME_BELOW (1u << 20)
#define POLL_MS 10

typedef struct client_app {
    hr_loop_t *loop;
    hr_client_t *c;
    hr_io_t in_io;          /* stdin, when it can be polled */
    hr_io_t sig_io;         /* signalfd for SIGINT/SIGTERM */
    hr_timer_t in_timer;    /* stdin that cannot be polled, or reading paused by backlog */
    hr_timer_t close_timer; /* bounds the wait for the server's close */
    bool in_pollable, in_watched, in_eof;
    char *line; /* the partial line read so far */
    size_t line_len, line_cap;
    /* options */
    bool binary, raw, verbose, prompt, reconnect;
    double close_timeout_s;
    /* state */
    bool prompt_shown, opened_once, open_now, closing, proto_error, failed;
    int exit_code;
} client_app_t;

static void usage(FILE *out)
{
    fputs("usage: herald client [options] URL\n"
          "\n"
          "Connects to a WebSocket URL (ws:// or wss://). Each line read on stdin is sent\n"
          "as one message; each message received is written to stdout as one line. At the\n"
          "end of stdin (Ctrl-D) or on Ctrl-C the client sends close 1000, waits for the\n"
          "server's close, and exits.\n"
          "\n"
          "options:\n"
          "  -H, --header 'Name: value'  extra request header (repeatable)\n"
          "  --protocol P         offer subprotocol P (repeatable)\n"
          "  --origin O           send Origin: O\n"
          "  --binary             send stdin lines as binary messages (default: text)\n"
          "  --raw                write binary messages as raw bytes (default: hex + newline)\n"
          "  --ping SECONDS       send a ping after SECONDS of silence\n"
          "  --compress           offer permessage-deflate\n"
          "  --insecure           wss://: do not verify the server's certificate (tests only)\n"
          "  --cafile FILE        wss://: trust the CA certificates in FILE (PEM) instead of\n"
          "                       the system store\n"
          "  --close-timeout SECONDS  wait for the server's close this long (default 2)\n"
          "  --reconnect          reconnect with back-off after a close or failure\n"
          "  --no-prompt          no '> ' prompt even when stdin is a terminal\n"
          "  -v, --verbose        note the connection, pongs and reconnects on stderr\n"
          "  -h, --help           this text\n"
          "\n"
          "stderr gets one line per close ('closed: CODE (name) reason \"...\"') and per error\n"
          "('error: ...').\n"
          "\n"
          "exit codes:\n"
          "  0  normal close: by us at end of input, or by the server with 1000, 1001 or no\n"
          "     status code\n"
          "  1  connection failed, handshake refused, protocol error, connection lost\n"
          "     without a close frame (1006), or no answer to our close in time\n"
          "  2  usage error (unknown option, bad or unsupported URL)\n"
          "  3  closed by the server with a code other than 1000/1001\n",
          out);
}

static const char *close_name(uint16_t code)
{
    switch (code) {
    case 1000:
        return "normal";
    case 1001:
        return "going away";
    case 1002:
        return "protocol error";
    case 1003:
        return "unsupported data";
    case 1005:
        return "no status";
    case 1006:
        return "abnormal";
    case 1007:
        return "invalid payload";
    case 1008:
        return "policy violation";
    case 1009:
        return "too big";
    case 1010:
        return "mandatory extension";
    case 1011:
        return "internal error";
    case 1012:
        return "service restart";
    case 1013:
        return "try again later";
    default:
        return code >= 4000 ? "application" : code >= 3000 ? "registered" : "unknown";
    }
}

/* ------------------------------------------------------------------------------------
 * Terminal output */

static void show_prompt(client_app_t *a)
{
    if (a->prompt && !a->prompt_shown && !a->in_eof && hr_client_is_open(a->c)) {
        fputs("> ", stderr);
        fflush(stderr);
        a->prompt_shown = true;
    }
}

static void clear_prompt(client_app_t *a)
{
    if (a->prompt_shown) {
        fputs("\r\033[K", stderr); /* the prompt and any half-typed echo */
        a->prompt_shown = false;
    }
}

/* stderr line, keeping the prompt out of its way */
static void note(client_app_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void note(client_app_t *a, const char *fmt, ...)
{
    clear_prompt(a);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void stop(client_app_t *a, int code)
{
    a->exit_code = code;
    hr_loop_stop(a->loop);
}

/* ------------------------------------------------------------------------------------
 * stdin */

static void in_watch(client_app_t *a, bool on);

static void begin_close(client_app_t *a)
{
    if (a->closing)
        return;
    a->closing = true;
    in_watch(a, false);
    clear_prompt(a);
    if (!hr_client_is_open(a->c)) {
        /* not connected (waiting to reconnect): nothing to close */
        stop(a, a->opened_once ? EXIT_OK : EXIT_FAIL);
        return;
    }
    hr_client_close(a->c, HR_WS_CLOSE_NORMAL, NULL);
    hr_loop_timer_start(a->loop, &a->close_timer, (uint64_t)(a->close_timeout_s * 1000.0));
}

static void send_line(client_app_t *a, const char *p, size_t n)
{
    if (n > 0 && p[n - 1] == '\r')
        n--;
    if (!hr_client_is_open(a->c)) {
        note(a, "error: not connected, line dropped");
        return;
    }
    if (!a->binary && !hr_utf8_valid((const uint8_t *)p, n)) {
        note(a, "error: input line is not valid UTF-8, not sent (use --binary)");
        return;
    }
    int rc = hr_client_send(a->c, p, n, a->binary);
    if (rc != 0)
        note(a, "error: send: %s", hr_strerror(rc));
}

/* Sends every complete line in the buffer, keeps the rest. */
static void flush_lines(client_app_t *a)
{
    size_t start = 0;
    for (;;) {
        char *nl = memchr(a->line + start, '\n', a->line_len - start);
        if (!nl)
            break;
        size_t n = (size_t)(nl - (a->line + start));
        send_line(a, a->line + start, n);
        start += n + 1;
    }
    if (start > 0) {
        memmove(a->line, a->line + start, a->line_len - start);
        a->line_len -= start;
    }
}

static void on_in_eof(client_app_t *a)
{
    a->in_eof = true;
    if (a->line_len > 0 && hr_client_is_open(a->c))
        send_line(a, a->line, a->line_len);
    a->line_len = 0;
    begin_close(a);
}

/* One read(); returns false when reading should stop for now (EOF, error, would block). */
static bool read_stdin(client_app_t *a)
{
    if (a->line_cap - a->line_len < READ_CHUNK) {
        size_t cap = a->line_cap ? a->line_cap * 2 : 2 * READ_CHUNK;
        while (cap - a->line_len < READ_CHUNK)
            cap *= 2;
        char *p = realloc(a->line, cap);
        if (!p) {
            note(a, "error: out of memory");
            stop(a, EXIT_FAIL);
            return false;
        }
        a->line = p;
        a->line_cap = cap;
    }
    ssize_t n;
    do
        n = read(STDIN_FILENO, a->line + a->line_len, READ_CHUNK);
    while (n < 0 && errno == EINTR);
    if (n < 0 && errno == EAGAIN)
        return false;
    if (n <= 0) {
        if (n < 0 && errno != EIO) /* EIO: the terminal hung up, an end like any other */
            note(a, "error: reading stdin: %s", strerror(errno));
        on_in_eof(a);
        return false;
    }
    a->prompt_shown = false; /* the user pressed Enter: the cursor is on a new line */
    a->line_len += (size_t)n;
    flush_lines(a);
    if (hr_client_queued(a->c) > PAUSE_ABOVE) {
        in_watch(a, false);
        hr_loop_timer_start(a->loop, &a->in_timer, POLL_MS);
        return false;
    }
    show_prompt(a);
    return true;
}

static void on_stdin(hr_io_t *io, uint32_t events)
{
    client_app_t *a = (client_app_t *)((char *)io - offsetof(client_app_t, in_io));
    (void)events;
    read_stdin(a);
}

/* stdin that epoll refuses (a regular file, /dev/null), or a pause for the backlog. */
static void on_in_timer(hr_timer_t *t)
{
    client_app_t *a = (client_app_t *)((char *)t - offsetof(client_app_t, in_timer));
    if (a->in_eof || a->closing || !hr_client_is_open(a->c))
        return;
    if (hr_client_queued(a->c) > RESUME_BELOW) {
        hr_loop_timer_start(a->loop, &a->in_timer, POLL_MS);
        return;
    }
    if (a->in_pollable) {
        in_watch(a, true);
        return;
    }
    for (int i = 0; i < 16; i++) /* up to 1 MiB per turn */
        if (!read_stdin(a))
            return;
    hr_loop_timer_start(a->loop, &a->in_timer, 0);
}

static void in_watch(client_app_t *a, bool on)
{
    if (on && !a->in_eof && !a->closing) {
        if (a->in_pollable) {
            if (!a->in_watched && hr_loop_io_start(a->loop, &a->in_io, EPOLLIN) == 0)
                a->in_watched = true;
        } else {
            hr_loop_timer_start(a->loop, &a->in_timer, 0);
        }
        return;
    }
    if (a->in_watched) {
        hr_loop_io_stop(a->loop, &a->in_io);
        a->in_watched = false;
    }
    hr_loop_timer_stop(a->loop, &a->in_timer);
}

/* ------------------------------------------------------------------------------------
 * Client callbacks */

static void on_open(hr_client_t *c)
{
    client_app_t *a = hr_client_data(c);
    a->opened_once = true;
    a->open_now = true;
    if (a->verbose) {
        const char *proto = hr_client_protocol(c);
        note(a, "connected%s%s%s", proto ? " (protocol " : "", proto ? proto : "",
             proto ? ")" : "");
        if (hr_client_compressed(c))
            note(a, "permessage-deflate negotiated");
    }
    if (a->in_eof) { /* reconnected after the input ended: nothing more to send */
        begin_close(a);
        return;
    }
    in_watch(a, true);
    show_prompt(a);
}

static void write_hex(const uint8_t *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    char buf[1024];
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        buf[k++] = digits[p[i] >> 4];
        buf[k++] = digits[p[i] & 15];
        if (k == sizeof(buf)) {
            fwrite(buf, 1, k, stdout);
            k = 0;
        }
    }
    fwrite(buf, 1, k, stdout);
}

static void on_message(hr_client_t *c, const uint8_t *data, size_t len, bool binary)
{
    client_app_t *a = hr_client_data(c);
    clear_prompt(a);
    if (binary && a->raw) {
        fwrite(data, 1, len, stdout);
    } else {
        if (binary)
            write_hex(data, len);
        else
            fwrite(data, 1, len, stdout);
        fputc('\n', stdout);
    }
    if (fflush(stdout) != 0) {
        note(a, "error: writing stdout: %s", strerror(errno));
        begin_close(a);
        return;
    }
    show_prompt(a);
}

static void on_pong(hr_client_t *c, const uint8_t *data, size_t len)
{
    client_app_t *a = hr_client_data(c);
    (void)data;
    if (a->verbose) {
        note(a, "pong (%zu bytes)", len);
        show_prompt(a);
    }
}

static void on_error(hr_client_t *c, int err, const char *msg)
{
    client_app_t *a = hr_client_data(c);
    note(a, "error: %s", msg);
    if (err == HR_EPROTO || err == HR_EILSEQ || err == HR_EMSGSIZE)
        a->proto_error = true;
    a->failed = true;
}

static void on_close(hr_client_t *c, uint16_t code, const char *reason, size_t reason_len)
{
    client_app_t *a = hr_client_data(c);
    bool was_open = a->open_now; /* an attempt that never opened: on_error said it all */
    a->open_now = false;
    if (!a->reconnect || a->closing)
        in_watch(a, false);
    if (was_open)
        note(a, "closed: %u (%s) reason \"%.*s\"", code, close_name(code), (int)reason_len, reason);
    int rc;
    if (a->proto_error || !a->opened_once)
        rc = EXIT_FAIL;
    else if (code == 1000 || code == 1001 || code == 1005)
        rc = EXIT_OK;
    else if (code == 1006)
        rc = EXIT_FAIL;
    else
        rc = EXIT_SERVER_CLOSE;
    if (a->reconnect && !a->closing) {
        /* The library schedules the next attempt after this returns. stdin stays watched
         * (once the first connection opened) so its end still ends the program; lines
         * typed meanwhile are dropped with an error. */
        a->proto_error = false;
        a->failed = false;
        if (a->verbose)
            note(a, "reconnecting");
        return;
    }
    hr_loop_timer_stop(a->loop, &a->close_timer);
    stop(a, rc);
}

static void on_close_timeout(hr_timer_t *t)
{
    client_app_t *a = (client_app_t *)((char *)t - offsetof(client_app_t, close_timer));
    note(a, "error: no close from the server within %g s", a->close_timeout_s);
    stop(a, EXIT_FAIL);
}

static void on_signal(hr_io_t *io, uint32_t events)
{
    client_app_t *a = (client_app_t *)((char *)io - offsetof(client_app_t, sig_io));
    struct signalfd_siginfo si;
    (void)events;
    if (read(io->fd, &si, sizeof(si)) != (ssize_t)sizeof(si))
        return;
    if (a->closing) { /* a second signal: do not wait any longer */
        note(a, "error: interrupted");
        stop(a, EXIT_FAIL);
        return;
    }
    a->in_eof = true;
    a->line_len = 0;
    begin_close(a);
}

/* ------------------------------------------------------------------------------------
 * The command */

static bool parse_secs(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < 0 || v > 1e6)
        return false;
    *out = v;
    return true;
}

static int usage_error(const char *what, const char *arg)
{
    fprintf(stderr, "herald client: %s '%s' (see herald client --help)\n", what, arg);
    return EXIT_USAGE;
}

int hr_cmd_client(int argc, char **argv)
{
    client_app_t a;
    memset(&a, 0, sizeof(a));
    a.close_timeout_s = 2;
    hr_client_options_t opts;
    hr_client_options_init(&opts);
    const char **headers = calloc((size_t)argc + 1, sizeof(char *));
    const char **protocols = calloc((size_t)argc + 1, sizeof(char *));
    size_t nh = 0, np = 0;
    const char *url = NULL;
    bool no_prompt = false;
    double ping_s = 0;
    int rc = EXIT_USAGE;
    int sfd = -1;
    if (!headers || !protocols) {
        fputs("herald client: out of memory\n", stderr);
        rc = EXIT_FAIL;
        goto done;
    }
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *val = NULL;
        /* "--name=value" for options that take one */
        char name[32];
        const char *eq = strncmp(arg, "--", 2) == 0 ? strchr(arg, '=') : NULL;
        size_t nlen = eq ? (size_t)(eq - arg) : strlen(arg);
        if (nlen >= sizeof(name))
            nlen = sizeof(name) - 1; /* too long for an option: matches none */
        memcpy(name, arg, nlen);
        name[nlen] = 0;
        bool takes = !strcmp(name, "-H") || !strcmp(name, "--header") ||
                     !strcmp(name, "--protocol") || !strcmp(name, "--origin") ||
                     !strcmp(name, "--ping") || !strcmp(name, "--close-timeout") ||
                     !strcmp(name, "--cafile");
        if (takes) {
            if (eq)
                val = eq + 1;
            else if (i + 1 < argc)
                val = argv[++i];
            else {
                rc = usage_error("missing value for", name);
                goto done;
            }
        } else if (eq) {
            rc = usage_error("option takes no value", arg);
            goto done;
        }
        if (!strcmp(name, "-h") || !strcmp(name, "--help")) {
            usage(stdout);
            rc = EXIT_OK;
            goto done;
        } else if (!strcmp(name, "-H") || !strcmp(name, "--header")) {
            const char *colon = strchr(val, ':');
            if (!colon || colon == val || strpbrk(val, "\r\n")) {
                rc = usage_error("header must look like 'Name: value', got", val);
                goto done;
            }
            headers[nh++] = val;
        } else if (!strcmp(name, "--protocol")) {
            if (!*val || strpbrk(val, " ,\t\r\n")) {
                rc = usage_error("bad subprotocol", val);
                goto done;
            }
            protocols[np++] = val;
        } else if (!strcmp(name, "--origin")) {
            opts.origin = val;
        } else if (!strcmp(name, "--ping")) {
            if (!parse_secs(val, &ping_s)) {
                rc = usage_error("bad --ping", val);
                goto done;
            }
        } else if (!strcmp(name, "--close-timeout")) {
            if (!parse_secs(val, &a.close_timeout_s)) {
                rc = usage_error("bad --close-timeout", val);
                goto done;
            }
        } else if (!strcmp(name, "--binary")) {
            a.binary = true;
        } else if (!strcmp(name, "--raw")) {
            a.raw = true;
        } else if (!strcmp(name, "--compress")) {
            opts.compress = true;
        } else if (!strcmp(name, "--insecure")) {
            opts.tls_insecure = true;
        } else if (!strcmp(name, "--cafile")) {
            opts.tls_cafile = val;
        } else if (!strcmp(name, "--reconnect")) {
            a.reconnect = true;
        } else if (!strcmp(name, "--no-prompt")) {
            no_prompt = true;
        } else if (!strcmp(name, "-v") || !strcmp(name, "--verbose")) {
            a.verbose = true;
        } else if (arg[0] == '-' && arg[1] != 0) {
            rc = usage_error("unknown option", arg);
            goto done;
        } else if (!url) {
            url = arg;
        } else {
            rc = usage_error("unexpected argument", arg);
            goto done;
        }
    }
    if (!url) {
        fputs("herald client: missing URL (see herald client --help)\n", stderr);
        goto done;
    }
    if (strncmp(url, "ws://", 5) != 0 && strncmp(url, "wss://", 6) != 0) {
        rc = usage_error("URL must start with ws:// or wss://, got", url);
        goto done;
    }
    opts.url = url;
    opts.headers = nh ? headers : NULL;
    opts.protocols = np ? protocols : NULL;
    opts.ping_interval_ms = (uint32_t)(ping_s * 1000.0);
    opts.reconnect = a.reconnect;
    a.prompt = !no_prompt && isatty(STDIN_FILENO);

    signal(SIGPIPE, SIG_IGN);
    a.loop = hr_loop_create();
    if (!a.loop) {
        fputs("herald client: cannot create the event loop\n", stderr);
        rc = EXIT_FAIL;
        goto done;
    }
    hr_timer_init(&a.in_timer, on_in_timer);
    hr_timer_init(&a.close_timer, on_close_timeout);
    a.in_io.fd = STDIN_FILENO;
    a.in_io.cb = on_stdin;
    /* Can epoll watch stdin? Not a regular file or /dev/null (EPERM): those are read
     * from a timer, which never blocks on them. */
    if (hr_loop_io_start(a.loop, &a.in_io, EPOLLIN) == 0) {
        a.in_pollable = true;
        hr_loop_io_stop(a.loop, &a.in_io);
    }
    /* SIGINT/SIGTERM start the close handshake instead of killing us. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &set, NULL) == 0 &&
        (sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) >= 0) {
        a.sig_io.fd = sfd;
        a.sig_io.cb = on_signal;
        hr_loop_io_start(a.loop, &a.sig_io, EPOLLIN);
    }

    static const hr_client_callbacks_t cb = {
        .on_open = on_open,
        .on_message = on_message,
        .on_pong = on_pong,
        .on_close = on_close,
        .on_error = on_error,
    };
    char err[256];
    a.c = hr_client_connect(a.loop, &opts, &cb, &a, err, sizeof(err));
    if (!a.c) {
        fprintf(stderr, "herald client: %s\n", err);
        rc = EXIT_USAGE;
        goto done;
    }
    a.exit_code = EXIT_FAIL;
    hr_loop_run(a.loop);
    rc = a.exit_code;
    clear_prompt(&a);
    fflush(stdout);

done:
    if (a.loop) {
        in_watch(&a, false);
        hr_loop_timer_stop(a.loop, &a.close_timer);
        if (sfd >= 0)
            hr_loop_io_stop(a.loop, &a.sig_io);
        if (a.c)
            hr_client_destroy(a.c);
        hr_loop_run_once(a.loop, 0); /* let the loop free what the client left behind */
        hr_loop_destroy(a.loop);
    }
    if (sfd >= 0)
        close(sfd);
    free(a.line);
    free(headers);
    free(protocols);
    return rc;
}
