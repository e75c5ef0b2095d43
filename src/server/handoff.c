/* Graceful restart: a new process takes the port and the channels over from the running
 * one, so that clients reconnecting with `since` recover exactly what they missed.
 *
 * The running process (A) listens on a Unix stream socket (--handoff-socket, mode 0600)
 * on a thread of its own. The new process (B, --takeover) connects before it binds, and
 * the two speak JSON lines (docs/operations.md has the full exchange):
 *
 *   B: {"type":"takeover","version":1,"pid":P}
 *   A: stops accepting on every shard, freezes publishing (HR_EAGAIN: publishers retry on
 *      B), snapshots every channel home while the workers are parked, and streams it:
 *   A: {"type":"hello","version":1,"pid":P,"channels":N}
 *   A: {"type":"channel","name":"orders.1","epoch":"...","next_offset":43,"items":K}
 *   A: K x {"type":"item","offset":O,"time":MS,"data":"<the JSON value, as a string>"}
 *   A: {"type":"end","channels":N,"items":M}
 *   B: loads the homes (workers not started), binds the port, then {"type":"ready"}
 *   A: {"type":"done"}, closes its clients with 1001 "server restarting, reconnect",
 *      drains (--shutdown-timeout) and exits 0.
 *
 * Either side may send {"type":"error","message":"..."} instead. If the exchange breaks
 * before A has said done, A unfreezes, listens again and goes on serving (the upgrade
 * failed, the service did not), and B exits non-zero. If nobody listens on the path
 * (no file, or a stale file: connection refused), B starts fresh: there is nobody to
 * take over from. Deliberately not handed over: connections (clients reconnect, which
 * every WebSocket client must handle anyway), presence (rebuilt as clients resubscribe),
 * STOMP queues and pending acks, and anything across machines (that is Redis's job). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/log.h"
#include "herald/error.h"
#include "proto/json_proto.h"
#include "server/channels.h"
#include "server/handoff.h"

#define HANDOFF_VERSION 1
#define IO_TIMEOUT_MS 10000  /* silence on the handoff socket after which a side gives up */
#define FLUSH_AT (64 * 1024) /* bytes of lines gathered before a write */

struct hr_handoff {
    hr_server_t *srv;
    char *path;
    int listen_fd; /* -1 while a takeover runs, or if listening again failed */
    dev_t dev;     /* the socket file we bound: unlink only ours */
    ino_t ino;
    int wake[2]; /* hr_handoff_close wakes the thread through this pipe */
    pthread_t thread;
    pthread_mutex_t lock; /* conn_fd against hr_handoff_close */
    int conn_fd;          /* the takeover in progress, or -1 */
    bool closing;
};

/* ---------------------------------------------------------------- line I/O */

typedef struct line_reader {
    int fd;
    hr_buf_t buf;
    size_t max; /* longest line accepted */
} line_reader_t;

/* The next line (without its '\n', NUL-terminated) in *line; valid until the next call.
 * 0, HR_EAGAIN (timed out), HR_ECLOSED (end of stream), HR_EMSGSIZE, HR_ENOMEM or -errno. */
static int read_line(line_reader_t *r, char **line, size_t *len, size_t *consumed)
{
    hr_buf_consume(&r->buf, *consumed);
    *consumed = 0;
    size_t scanned = 0;
    for (;;) {
        uint8_t *nl =
            r->buf.len > scanned ? memchr(r->buf.data + scanned, '\n', r->buf.len - scanned) : NULL;
        if (nl) {
            *nl = 0;
            *line = (char *)r->buf.data;
            *len = (size_t)(nl - r->buf.data);
            *consumed = *len + 1;
            return 0;
        }
        scanned = r->buf.len;
        if (r->buf.len > r->max)
            return HR_EMSGSIZE;
        struct pollfd p = {.fd = r->fd, .events = POLLIN};
        int n = poll(&p, 1, IO_TIMEOUT_MS);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return HR_EAGAIN;
        if (hr_buf_reserve(&r->buf, 64 * 1024) != 0)
            return HR_ENOMEM;
        ssize_t got = read(r->fd, r->buf.data + r->buf.len, r->buf.cap - r->buf.len);
        if (got < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (got < 0)
            return -errno;
        if (got == 0)
            return HR_ECLOSED;
        r->buf.len += (size_t)got;
    }
}

/* Writes all of buf (the socket has SO_SNDTIMEO). 0 or a negative error. */
static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK ? HR_EAGAIN : -errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int send_line(int fd, const char *line)
{
    size_t n = strlen(line);
    char buf[512];
    if (n + 1 > sizeof(buf))
        return HR_EINVAL;
    memcpy(buf, line, n);
    buf[n] = '\n';
    return write_all(fd, buf, n + 1);
}

static void send_error(int fd, const char *message)
{
    hr_buf_t b;
    hr_buf_init(&b);
    if (hr_buf_append_str(&b, "{\"type\":\"error\",\"message\":") == 0 &&
        hr_jp_append_string(&b, message, strlen(message)) == 0 && hr_buf_append(&b, "}\n", 2) == 0)
        write_all(fd, b.data, b.len);
    hr_buf_deinit(&b);
}

/* The "type" of a line parsed into *root (to json_decref), or NULL if it is not an
 * object with a string type. */
static const char *parse_line(const char *line, size_t len, json_t **root)
{
    *root = json_loadb(line, len, 0, NULL);
    const char *t = json_string_value(json_object_get(*root, "type"));
    return json_is_object(*root) && t ? t : NULL;
}

static int set_timeouts(int fd)
{
    struct timeval tv = {.tv_sec = IO_TIMEOUT_MS / 1000, .tv_usec = 0};
    if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
        return -errno;
    return 0;
}

static int unix_address(const char *path, struct sockaddr_un *sa)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (!*path || strlen(path) >= sizeof(sa->sun_path))
        return HR_EINVAL;
    memcpy(sa->sun_path, path, strlen(path));
    return 0;
}

/* ---------------------------------------------------------------- old process (A) */

/* Binds and listens on h->path (mode 0600). 0 or a negative error with a message. */
static int bind_socket(struct hr_handoff *h, char *err, size_t errlen)
{
    struct sockaddr_un sa;
    if (unix_address(h->path, &sa) != 0) {
        snprintf(err, errlen, "--handoff-socket %s: path empty or too long (at most %zu bytes)",
                 h->path, sizeof(sa.sun_path) - 1);
        return HR_EINVAL;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "--handoff-socket %s: %s", h->path, strerror(errno));
        return -errno;
    }
    /* Someone listening there already (another herald): refuse rather than steal it. A
     * file nobody listens on is what a crash leaves behind: replace it. */
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
        close(fd);
        snprintf(err, errlen,
                 "--handoff-socket %s: another process is listening there (start this one "
                 "with --takeover %s to replace it)",
                 h->path, h->path);
        return HR_EEXIST;
    }
    if (errno == ECONNREFUSED)
        unlink(h->path);
    close(fd);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct stat st;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(h->path, 0600) < 0 ||
        listen(fd, 4) < 0 || stat(h->path, &st) < 0) {
        int e = errno;
        snprintf(err, errlen, "--handoff-socket %s: %s", h->path, strerror(e));
        if (fd >= 0)
            close(fd);
        return -e;
    }
    h->listen_fd = fd;
    h->dev = st.st_dev;
    h->ino = st.st_ino;
    return 0;
}

/* Closes the listening socket and removes its file, if the file is still ours. */
static void release_socket(struct hr_handoff *h)
{
    if (h->listen_fd < 0)
        return;
    struct stat st;
    if (stat(h->path, &st) == 0 && st.st_dev == h->dev && st.st_ino == h->ino)
        unlink(h->path);
    close(h->listen_fd);
    h->listen_fd = -1;
}

typedef struct snap {
    int rc;
    hr_chan_snapshot_t *v;
    size_t n;
} snap_t;

static void take_snapshot(hr_server_t *s, void *data)
{
    snap_t *sn = data;
    sn->rc = hr_channels_snapshot(s, &sn->v, &sn->n);
}

/* Streams the snapshot as JSON lines. 0 or a negative error. */
static int stream_snapshot(int fd, const snap_t *sn, size_t *nitems)
{
    hr_buf_t b;
    hr_buf_init(&b);
    int rc =
        hr_buf_appendf(&b, "{\"type\":\"hello\",\"version\":%d,\"pid\":%ld,\"channels\":%zu}\n",
                       HANDOFF_VERSION, (long)getpid(), sn->n);
    size_t items = 0;
    for (size_t i = 0; rc == 0 && i < sn->n; i++) {
        const hr_chan_snapshot_t *ch = &sn->v[i];
        rc = hr_buf_append_str(&b, "{\"type\":\"channel\",\"name\":");
        rc = rc ? rc : hr_jp_append_string(&b, ch->name, ch->name_len);
        rc = rc ? rc
                : hr_buf_appendf(&b, ",\"epoch\":\"%s\",\"next_offset\":%llu,\"items\":%zu}\n",
                                 ch->epoch, (unsigned long long)ch->next_offset, ch->n);
        for (size_t j = 0; rc == 0 && j < ch->n; j++) {
            const hr_chan_snapshot_item_t *it = &ch->items[j];
            rc = hr_buf_appendf(&b, "{\"type\":\"item\",\"offset\":%llu,\"time\":%llu,\"data\":",
                                (unsigned long long)it->offset, (unsigned long long)it->time_ms);
            rc = rc ? rc : hr_jp_append_string(&b, it->data.ptr, it->data.len);
            rc = rc ? rc : hr_buf_append(&b, "}\n", 2);
            if (rc == 0 && b.len >= FLUSH_AT) {
                rc = write_all(fd, b.data, b.len);
                b.len = 0;
            }
        }
        items += ch->n;
    }
    if (rc == 0)
        rc =
            hr_buf_appendf(&b, "{\"type\":\"end\",\"channels\":%zu,\"items\":%zu}\n", sn->n, items);
    if (rc == 0)
        rc = write_all(fd, b.data, b.len);
    hr_buf_deinit(&b);
    *nitems = items;
    return rc;
}

/* The takeover failed before A said done: serve again as if nothing happened. */
static void roll_back(struct hr_handoff *h)
{
    hr_log_warn("handoff: takeover failed; accepting and publishing again");
    atomic_store(&h->srv->frozen, false);
    hr_server__resume_accepting(h->srv);
    char err[256];
    if (h->listen_fd < 0 && bind_socket(h, err, sizeof(err)) != 0)
        hr_log_error("handoff: %s (no takeover possible until restart)", err);
}

/* One takeover request on fd. Returns true when this process has handed over and stops. */
static bool serve_takeover(struct hr_handoff *h, int fd)
{
    hr_server_t *s = h->srv;
    struct ucred cred;
    socklen_t cl = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0 ||
        (cred.uid != geteuid() && cred.uid != 0)) {
        hr_log_warn("handoff: refused a connection from uid %u", (unsigned)cred.uid);
        return false;
    }
    set_timeouts(fd);
    line_reader_t r = {.fd = fd, .max = 4096};
    hr_buf_init(&r.buf);
    char *line;
    size_t len, used = 0;
    json_t *req = NULL;
    bool handed_over = false;
    int rc = read_line(&r, &line, &len, &used);
    const char *type = rc == 0 ? parse_line(line, len, &req) : NULL;
    if (!type || strcmp(type, "takeover") != 0 ||
        json_integer_value(json_object_get(req, "version")) != HANDOFF_VERSION) {
        if (rc == 0)
            send_error(fd, "expected {\"type\":\"takeover\",\"version\":1}");
        hr_log_warn("handoff: not a takeover request; ignored");
        goto out;
    }
    long peer = (long)json_integer_value(json_object_get(req, "pid"));
    if (atomic_load(&s->stop_requested)) {
        send_error(fd, "this process is already stopping");
        goto out;
    }
    hr_log_info("handoff: process %ld takes over: stop accepting, freeze publishing", peer);
    /* The new process binds its own handoff socket once it runs: leave the path to it. */
    release_socket(h);
    hr_server__stop_accepting(s);
    atomic_store(&s->frozen, true);
    snap_t sn = {0};
    rc = hr_server__stop_the_world(s, take_snapshot, &sn);
    if (rc == 0)
        rc = sn.rc;
    size_t nitems = 0;
    if (rc == 0)
        rc = stream_snapshot(fd, &sn, &nitems);
    else
        send_error(fd, rc == HR_ESTATE ? "this process is stopping" : "out of memory");
    hr_channels_snapshot_free(sn.v, sn.n);
    if (rc == 0)
        rc = read_line(&r, &line, &len, &used);
    json_t *ans = NULL;
    type = rc == 0 ? parse_line(line, len, &ans) : NULL;
    if (type && strcmp(type, "ready") == 0 && send_line(fd, "{\"type\":\"done\"}") == 0) {
        hr_log_info("handoff: %zu channels (%zu messages) handed to process %ld; closing "
                    "connections",
                    sn.n, nitems, peer);
        s->shutdown_reason = "server restarting, reconnect";
        hr_server_stop(s);
        handed_over = true;
    } else {
        const char *why = type && strcmp(type, "error") == 0
                              ? json_string_value(json_object_get(ans, "message"))
                              : NULL;
        hr_log_error("handoff: process %ld did not take over (%s)", peer,
                     why                ? why
                     : rc == HR_EAGAIN  ? "timed out"
                     : rc == HR_ECLOSED ? "it closed the connection"
                     : rc               ? hr_strerror(rc)
                                        : "unexpected answer");
        roll_back(h);
    }
    json_decref(ans);
out:
    json_decref(req);
    hr_buf_deinit(&r.buf);
    return handed_over;
}

static void *handoff_main(void *arg)
{
    struct hr_handoff *h = arg;
    for (;;) {
        struct pollfd p[2] = {{.fd = h->listen_fd, .events = POLLIN},
                              {.fd = h->wake[0], .events = POLLIN}};
        int n = poll(p, 2, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || p[1].revents)
            break;
        if (!(p[0].revents & POLLIN))
            continue;
        int fd = accept4(h->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        pthread_mutex_lock(&h->lock);
        bool closing = h->closing;
        h->conn_fd = closing ? -1 : fd;
        pthread_mutex_unlock(&h->lock);
        bool done = !closing && serve_takeover(h, fd);
        pthread_mutex_lock(&h->lock);
        h->conn_fd = -1;
        pthread_mutex_unlock(&h->lock);
        close(fd);
        if (done || closing)
            break;
    }
    return NULL;
}

int hr_handoff_listen(hr_server_t *s, const char *path, char *err, size_t errlen)
{
    struct hr_handoff *h = hr_calloc(1, sizeof(*h));
    if (!h || !(h->path = hr_strdup(path))) {
        hr_free(h);
        snprintf(err, errlen, "out of memory");
        return HR_ENOMEM;
    }
    h->srv = s;
    h->listen_fd = -1;
    h->conn_fd = -1;
    h->wake[0] = h->wake[1] = -1;
    pthread_mutex_init(&h->lock, NULL);
    int rc = bind_socket(h, err, errlen);
    if (rc == 0 && pipe2(h->wake, O_CLOEXEC) < 0) {
        rc = -errno;
        snprintf(err, errlen, "--handoff-socket: %s", strerror(errno));
    }
    if (rc == 0) {
        /* Signals are for hr_server_run's thread. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        if (pthread_create(&h->thread, NULL, handoff_main, h) != 0) {
            rc = HR_ENOMEM;
            snprintf(err, errlen, "--handoff-socket: cannot create its thread");
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    if (rc) {
        release_socket(h);
        if (h->wake[0] >= 0) {
            close(h->wake[0]);
            close(h->wake[1]);
        }
        pthread_mutex_destroy(&h->lock);
        hr_free(h->path);
        hr_free(h);
        return rc;
    }
    s->handoff = h;
    hr_log_info("handoff: a new process can take over with --takeover %s", path);
    return 0;
}

void hr_handoff_close(hr_server_t *s)
{
    struct hr_handoff *h = s->handoff;
    if (!h)
        return;
    pthread_mutex_lock(&h->lock);
    h->closing = true;
    if (h->conn_fd >= 0)
        shutdown(h->conn_fd, SHUT_RDWR); /* a takeover still talking: cut it short */
    pthread_mutex_unlock(&h->lock);
    ssize_t w;
    do
        w = write(h->wake[1], "x", 1);
    while (w < 0 && errno == EINTR);
    pthread_join(h->thread, NULL);
    release_socket(h);
    close(h->wake[0]);
    close(h->wake[1]);
    pthread_mutex_destroy(&h->lock);
    hr_free(h->path);
    hr_free(h);
    s->handoff = NULL;
}

/* ---------------------------------------------------------------- new process (B) */

typedef struct loader {
    hr_server_t *srv;
    hr_chan_snapshot_t ch; /* the channel being read */
    size_t want, cap;      /* its items announced, and allocated */
    json_t **keep;         /* the item lines, whose strings back ch.items[].data */
    size_t channels, items;
} loader_t;

static void loader_reset(loader_t *l)
{
    for (size_t i = 0; i < l->ch.n; i++)
        json_decref(l->keep[i]);
    hr_free(l->keep);
    hr_free(l->ch.items);
    hr_free(l->ch.name);
    memset(&l->ch, 0, sizeof(l->ch));
    l->keep = NULL;
    l->want = l->cap = 0;
}

static int loader_finish_channel(loader_t *l, char *err, size_t errlen)
{
    int rc = hr_channels_restore(l->srv, &l->ch);
    if (rc) {
        snprintf(err, errlen, "channel %s: %s", l->ch.name,
                 rc == HR_EINVAL ? "inconsistent offsets" : hr_strerror(rc));
        return rc;
    }
    l->channels++;
    l->items += l->ch.n;
    loader_reset(l);
    return 0;
}

/* One line of A's stream. 1 at the end marker, 0 to go on, or a negative error. */
static int loader_line(loader_t *l, json_t *root, const char *type, char *err, size_t errlen)
{
    if (strcmp(type, "item") == 0) {
        json_t *data = json_object_get(root, "data");
        if (!l->ch.name || l->ch.n >= l->want || !json_is_string(data)) {
            snprintf(err, errlen, "unexpected item line");
            return HR_EPROTO;
        }
        hr_chan_snapshot_item_t *it = &l->ch.items[l->ch.n];
        it->offset = (uint64_t)json_integer_value(json_object_get(root, "offset"));
        it->time_ms = (uint64_t)json_integer_value(json_object_get(root, "time"));
        it->data = hr_slice(json_string_value(data), json_string_length(data));
        it->frame = NULL;
        l->keep[l->ch.n++] = json_incref(root);
        return l->ch.n == l->want ? loader_finish_channel(l, err, errlen) : 0;
    }
    if (l->ch.name) {
        snprintf(err, errlen, "channel %s: %zu of %zu items", l->ch.name, l->ch.n, l->want);
        return HR_EPROTO;
    }
    if (strcmp(type, "channel") == 0) {
        json_t *name = json_object_get(root, "name");
        const char *epoch = json_string_value(json_object_get(root, "epoch"));
        json_int_t next = json_integer_value(json_object_get(root, "next_offset"));
        json_int_t n = json_integer_value(json_object_get(root, "items"));
        if (!json_is_string(name) || !epoch || strlen(epoch) >= sizeof(l->ch.epoch) || next < 1 ||
            n < 0 || n >= next) {
            snprintf(err, errlen, "bad channel line");
            return HR_EPROTO;
        }
        l->ch.name_len = json_string_length(name);
        l->ch.name = hr_malloc(l->ch.name_len + 1);
        l->want = (size_t)n;
        l->ch.items = n ? hr_calloc((size_t)n, sizeof(*l->ch.items)) : NULL;
        l->keep = n ? hr_calloc((size_t)n, sizeof(*l->keep)) : NULL;
        if (!l->ch.name || (n && (!l->ch.items || !l->keep))) {
            snprintf(err, errlen, "out of memory");
            return HR_ENOMEM;
        }
        memcpy(l->ch.name, json_string_value(name), l->ch.name_len + 1);
        snprintf(l->ch.epoch, sizeof(l->ch.epoch), "%s", epoch);
        l->ch.next_offset = (uint64_t)next;
        return n ? 0 : loader_finish_channel(l, err, errlen);
    }
    if (strcmp(type, "end") == 0) {
        if ((size_t)json_integer_value(json_object_get(root, "channels")) != l->channels) {
            snprintf(err, errlen, "%zu channels received, %lld announced", l->channels,
                     (long long)json_integer_value(json_object_get(root, "channels")));
            return HR_EPROTO;
        }
        return 1;
    }
    if (strcmp(type, "error") == 0) {
        const char *m = json_string_value(json_object_get(root, "message"));
        snprintf(err, errlen, "refused: %s", m ? m : "no reason given");
        return HR_EPROTO;
    }
    if (strcmp(type, "hello") == 0 &&
        json_integer_value(json_object_get(root, "version")) == HANDOFF_VERSION)
        return 0;
    snprintf(err, errlen, "unexpected '%s' line", type);
    return HR_EPROTO;
}

/* Receives and loads the channels, binds, says ready and waits for done. */
static int take_over(hr_server_t *s, int fd, char *err, size_t errlen)
{
    char req[128];
    snprintf(req, sizeof(req), "{\"type\":\"takeover\",\"version\":%d,\"pid\":%ld}",
             HANDOFF_VERSION, (long)getpid());
    int rc = set_timeouts(fd);
    rc = rc ? rc : send_line(fd, req);
    if (rc) {
        snprintf(err, errlen, "cannot send the request: %s", hr_strerror(rc));
        return rc;
    }
    /* An item line is a message escaped as a JSON string: at most 6 bytes a byte. */
    line_reader_t r = {.fd = fd, .max = 6 * (size_t)s->opt.max_message + 4096};
    hr_buf_init(&r.buf);
    loader_t l = {.srv = s};
    char *line;
    size_t len, used = 0;
    for (rc = 0; rc == 0;) {
        rc = read_line(&r, &line, &len, &used);
        if (rc) {
            snprintf(err, errlen, "reading the channels: %s",
                     rc == HR_EAGAIN    ? "timed out"
                     : rc == HR_ECLOSED ? "the running process closed the connection"
                                        : hr_strerror(rc));
            break;
        }
        json_t *root;
        const char *type = parse_line(line, len, &root);
        if (!type) {
            snprintf(err, errlen, "malformed line from the running process");
            rc = HR_EPROTO;
        } else {
            rc = loader_line(&l, root, type, err, errlen);
        }
        json_decref(root);
    }
    loader_reset(&l);
    if (rc == 1) {
        char lerr[256];
        rc = hr_server__listen(s, lerr, sizeof(lerr));
        if (rc) {
            snprintf(err, errlen, "%s", lerr);
            send_error(fd, lerr);
        }
    } else {
        send_error(fd, err);
    }
    if (rc == 0)
        rc = send_line(fd, "{\"type\":\"ready\"}");
    json_t *ans = NULL;
    if (rc == 0 && (rc = read_line(&r, &line, &len, &used)) == 0) {
        const char *type = parse_line(line, len, &ans);
        if (!type || strcmp(type, "done") != 0)
            rc = HR_EPROTO;
    }
    if (rc && !*err)
        snprintf(err, errlen, "the running process did not confirm the takeover (%s)",
                 rc == HR_EAGAIN ? "timed out" : hr_strerror(rc));
    json_decref(ans);
    hr_buf_deinit(&r.buf);
    if (rc == 0)
        hr_log_info("handoff: took over %zu channels (%zu messages) on port %u", l.channels,
                    l.items, hr_server_port(s));
    return rc;
}

int hr_handoff_takeover(hr_server_t *s, const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sa;
    if (unix_address(path, &sa) != 0) {
        snprintf(err, errlen, "--takeover %s: path empty or too long", path);
        return HR_EINVAL;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "--takeover %s: %s", path, strerror(errno));
        return -errno;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        close(fd);
        if (e == ENOENT || e == ECONNREFUSED) {
            /* Nobody to take over from (first start, or the old process is gone). */
            hr_log_info("--takeover %s: no running process there (%s): starting fresh", path,
                        strerror(e));
            return 0;
        }
        snprintf(err, errlen, "--takeover %s: %s", path, strerror(e));
        return -e;
    }
    err[0] = 0;
    char why[400] = "";
    int rc = take_over(s, fd, why, sizeof(why));
    close(fd);
    if (rc)
        snprintf(err, errlen, "--takeover %s: %s", path, why);
    return rc;
}
