/* Server life-cycle and the cross-thread paths.
 *
 * Shard per thread: each worker has its own loop, SO_REUSEPORT listener, connections
 * and topic table, so the per-message path takes no lock. A broadcast or publish
 * builds its frame once, delivers it to the caller's own shard directly (when called
 * on a worker) and posts one reference to every other shard's inbox, whose loop fans
 * it out. A full inbox is waited out, never dropped; a worker that waits keeps
 * draining its own inbox meanwhile, so two workers posting to each other cannot
 * deadlock. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/hash.h"
#include "base/log.h"
#include "cluster/cluster.h"
#include "net/tls.h"
#include "proto/json_proto.h"
#include "server/channels.h"
#include "server/server.h"
#include "server/sockjs.h"
#include "server/stomp.h"
#include "ws/ws_frame.h"

#define INBOX_CAPACITY 16384
/* One per thread: large enough that a 64 KiB message usually arrives whole in one
 * read and is delivered from it without a copy. */
#define RECV_BUFFER (256 * 1024)
#define ACCEPTS_PER_EVENT 64

struct hr_timer_handle {
    hr_timer_t t;
    hr_list_t link; /* shard's user_timers */
    hr_shard_t *sh;
    uint64_t repeat_ms;
    void (*cb)(hr_timer_handle_t *t, void *data);
    void *data;
    bool stopped;
};

static _Thread_local hr_shard_t *tls_shard;

hr_shard_t *hr_server__current_shard(void)
{
    return tls_shard;
}

void hr_server_options_init(hr_server_options_t *o)
{
    memset(o, 0, sizeof(*o));
    o->host = "127.0.0.1";
    o->port = 8080;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    o->threads = n > 0 ? (int)n : 1;
    o->max_message = 16u << 20;
    o->max_backlog = 1u << 20;
    o->max_header = 8192;
    o->ping_interval_ms = 25000;
    o->idle_timeout_ms = 60000;
    o->handshake_timeout_ms = 10000;
    o->shutdown_timeout_ms = 5000;
    o->compression = true;
}

static void set_err(char *err, size_t errlen, const char *msg)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", msg);
}

static int parse_origins(hr_server_t *s, const char *list)
{
    if (!list || !*list)
        return 0;
    size_t n = 1;
    for (const char *p = list; *p; p++)
        n += *p == ',';
    s->origins = hr_calloc(n, sizeof(char *));
    if (!s->origins)
        return HR_ENOMEM;
    const char *p = list;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        while (len && (*p == ' ' || *p == '\t'))
            p++, len--;
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (len) {
            char *o = hr_malloc(len + 1);
            if (!o)
                return HR_ENOMEM;
            memcpy(o, p, len);
            o[len] = 0;
            s->origins[s->norigins++] = o;
        }
        if (!e)
            break;
        p = e + 1;
    }
    return 0;
}

int hr_server__replace_origins(hr_server_t *s, const char *list)
{
    char **old = s->origins;
    size_t nold = s->norigins;
    s->origins = NULL;
    s->norigins = 0;
    int rc = parse_origins(s, list);
    if (rc) { /* keep the old list; drop what was parsed */
        char **partial = s->origins;
        size_t npartial = s->norigins;
        s->origins = old;
        s->norigins = nold;
        old = partial;
        nold = npartial;
    }
    for (size_t i = 0; i < nold; i++)
        hr_free(old[i]);
    hr_free(old);
    return rc;
}

static void shard_end_hook(hr_loop_t *loop, void *data)
{
    hr_shard_t *sh = data;
    hr_sock_ctx_flush(&sh->sock);
    if (sh->stopping && hr_list_empty(&sh->conns))
        hr_loop_stop(loop);
}

static int shard_init(hr_server_t *srv, hr_shard_t *sh, int index)
{
    sh->srv = srv;
    sh->index = index;
    sh->listen_io.fd = -1;
    hr_list_init(&sh->conns);
    hr_list_init(&sh->user_timers);
    hr_pool_init(&sh->conn_pool, sizeof(hr_conn_t));
    for (int i = 0; i < HR_MAX_ROUTES; i++)
        hr_list_init(&sh->route_conns[i]);
    hr_topics_init(&sh->topics);
    hr_buf_init(&sh->scratch);
    hr_buf_init(&sh->zscratch);
    hr_buf_init(&sh->dscratch);
    int rc = hr_loop_init(&sh->loop, INBOX_CAPACITY);
    if (rc)
        return rc;
    sh->loop.data = sh;
    hr_loop_add_end_hook(&sh->loop, shard_end_hook, sh);
    rc = hr_sock_ctx_init(&sh->sock, &sh->loop, RECV_BUFFER);
    sh->loop.sock_ctx = &sh->sock;
    if (rc) {
        hr_loop_deinit(&sh->loop);
        return rc;
    }
    sh->sock.linger_ms = 2000;
    rc = hr_channels_shard_init(sh);
    return rc ? rc : hr_stomp_shard_init(sh);
}

static void shard_deinit(hr_shard_t *sh)
{
    hr_sockjs_shard_deinit(sh);
    hr_stomp_shard_deinit(sh);
    hr_channels_shard_deinit(sh);
    while (!hr_list_empty(&sh->user_timers)) {
        hr_timer_handle_t *h = hr_list_entry(sh->user_timers.next, hr_timer_handle_t, link);
        hr_list_remove(&h->link);
        hr_loop_timer_stop(&sh->loop, &h->t);
        hr_free(h);
    }
    if (sh->listen_io.fd >= 0)
        close(sh->listen_io.fd);
    hr_sock_ctx_deinit(&sh->sock);
    hr_loop_deinit(&sh->loop);
    hr_topics_deinit(&sh->topics);
    hr_deflate_stream_deinit(&sh->inflate_shared);
    hr_deflate_stream_deinit(&sh->deflate_shared);
    hr_buf_deinit(&sh->scratch);
    hr_buf_deinit(&sh->zscratch);
    hr_buf_deinit(&sh->dscratch);
    hr_refbuf_unref(sh->head_arena);
    sh->head_arena = NULL;
    hr_pool_deinit(&sh->conn_pool);
}

hr_server_t *hr_server_create(const hr_server_options_t *opts, char *err, size_t errlen)
{
    if (opts->threads < 1 || opts->threads > 256) {
        set_err(err, errlen, "threads must be between 1 and 256");
        return NULL;
    }
    hr_server_t *s = hr_calloc(1, sizeof(*s));
    if (!s) {
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    s->opt = *opts;
    s->stomp.hb_send_ms = 10000;
    s->stomp.hb_recv_ms = 10000;
    s->stomp.hb_grace = 3;
    s->sec.max_subscriptions = 1024;
    s->sec.message_burst = 1000;
    atomic_init(&s->nconns, 0);
    int lim = hr_limit_table_init(&s->per_ip);
    if (lim == 0)
        lim = hr_limit_table_init(&s->per_user);
    s->host = hr_strdup(opts->host ? opts->host : "127.0.0.1");
    s->opt.host = s->host;
    s->opt.allowed_origins = NULL;
    hr_deflate_config_default(&s->deflate);
    s->deflate.enabled = opts->compression;
    s->deflate.context_takeover = opts->deflate_context_takeover;
    s->max_body = 1u << 20;
    hr_namespaces_init(&s->namespaces);
    hr_json_proto_init();
    s->nshards = opts->threads;
    s->shards = hr_calloc((size_t)s->nshards, sizeof(hr_shard_t));
    if (lim || !s->host || !s->shards || parse_origins(s, opts->allowed_origins)) {
        set_err(err, errlen, "out of memory");
        goto fail;
    }
    for (int i = 0; i < s->nshards; i++) {
        if (shard_init(s, &s->shards[i], i)) {
            set_err(err, errlen, "cannot create event loop");
            s->nshards = i;
            goto fail;
        }
    }
    return s;
fail:
    hr_server_destroy(s);
    return NULL;
}

int hr_server_add_route(hr_server_t *s, const char *path, const hr_route_callbacks_t *cb,
                        const char *const *subprotocols, void *route_data)
{
    if (!path || path[0] != '/' || s->started)
        return HR_EINVAL;
    if (s->nroutes == HR_MAX_ROUTES)
        return HR_ENOBUFS;
    for (int i = 0; i < s->nroutes; i++)
        if (strcmp(s->routes[i].path, path) == 0)
            return HR_EEXIST;
    hr_route_t *r = &s->routes[s->nroutes];
    memset(r, 0, sizeof(*r));
    r->path = hr_strdup(path);
    if (!r->path)
        return HR_ENOMEM;
    if (cb)
        r->cb = *cb;
    for (size_t i = 0; subprotocols && subprotocols[i] && i < HR_MAX_SUBPROTOCOLS; i++) {
        r->subprotocols[i] = hr_strdup(subprotocols[i]);
        if (!r->subprotocols[i])
            return HR_ENOMEM;
        r->nsubprotocols++;
    }
    r->data = route_data;
    r->id = s->nroutes++;
    return r->id;
}

int hr_server__add_http(hr_server_t *s, const char *path, bool prefix, hr_http_handler_fn fn,
                        void *data)
{
    if (!path || path[0] != '/' || s->started)
        return HR_EINVAL;
    if (s->n_http_routes == HR_MAX_HTTP_ROUTES)
        return HR_ENOBUFS;
    hr_http_route_t *r = &s->http_routes[s->n_http_routes];
    r->path = hr_strdup(path);
    if (!r->path)
        return HR_ENOMEM;
    r->prefix = prefix;
    r->fn = fn;
    r->data = data;
    s->n_http_routes++;
    return 0;
}

/* ---------------------------------------------------------------- listeners */

static void on_accept(hr_io_t *io, uint32_t events)
{
    hr_shard_t *sh = (hr_shard_t *)((char *)io - offsetof(hr_shard_t, listen_io));
    for (int i = 0; i < ACCEPTS_PER_EVENT && !sh->stopping; i++) {
        int fd = accept4(io->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE)
                hr_log_warn("accept: %s", strerror(errno));
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        hr_session_accept(sh, fd);
    }
}

static int open_listener(hr_server_t *s, uint16_t port, uint16_t *bound, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%u", port);
    const char *host = s->host[0] ? s->host : NULL;
    int gai = getaddrinfo(host, portstr, &hints, &res);
    if (gai != 0) {
        char msg[256];
        snprintf(msg, sizeof(msg), "cannot resolve listen address '%s': %s", s->host,
                 gai_strerror(gai));
        set_err(err, errlen, msg);
        return HR_EINVAL;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 4096) < 0) {
        int e = errno;
        char msg[256];
        snprintf(msg, sizeof(msg), "cannot listen on %s:%u: %s", s->host, port, strerror(e));
        set_err(err, errlen, msg);
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return -e;
    }
    freeaddrinfo(res);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                            : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

/* Runs on the shard (or before start): stop accepting. */
static void close_listener(void *ctx, void *arg)
{
    hr_shard_t *sh = ctx;
    (void)arg;
    if (sh->listen_io.fd >= 0) {
        hr_loop_io_stop(&sh->loop, &sh->listen_io);
        close(sh->listen_io.fd);
        sh->listen_io.fd = -1;
    }
}

/* ---------------------------------------------------------------- workers */

static void *worker_main(void *arg)
{
    hr_shard_t *sh = arg;
    tls_shard = sh;
    hr_loop_run(&sh->loop);
    atomic_store(&sh->exited, true);
    /* Whatever is left after the drain bound is cut off now. */
    while (!hr_list_empty(&sh->conns)) {
        hr_conn_t *c = hr_list_entry(sh->conns.next, hr_conn_t, shard_link);
        hr_sock_abort(&c->sock);
        hr_sock_ctx_flush(&sh->sock);
    }
    hr_inbox_drain(&sh->loop.inbox);
    return NULL;
}

static void on_stop_timer(hr_timer_t *t)
{
    hr_shard_t *sh = hr_list_entry(t, hr_shard_t, stop_timer);
    hr_loop_stop(&sh->loop);
}

/* Runs on the shard: stop accepting, close every client with 1001, bounded drain. */
static void shard_stop(void *ctx, void *arg)
{
    hr_shard_t *sh = ctx;
    if (sh->stopping)
        return;
    sh->stopping = true;
    close_listener(sh, NULL);
    for (hr_list_t *n = sh->conns.next; n != &sh->conns;) {
        hr_list_t *next = n->next;
        hr_session_shutdown(hr_list_entry(n, hr_conn_t, shard_link));
        n = next;
    }
    /* Closing peers answer within the linger time; never wait longer than asked. */
    sh->sock.linger_ms =
        sh->srv->opt.shutdown_timeout_ms < 2000 ? sh->srv->opt.shutdown_timeout_ms : 2000;
    hr_timer_init(&sh->stop_timer, on_stop_timer);
    hr_loop_timer_start(&sh->loop, &sh->stop_timer, sh->srv->opt.shutdown_timeout_ms);
}

/* Posts to a shard, waiting while its inbox is full. Returns false (nothing posted) if
 * the shard's worker has already left its loop. */
static bool post_wait(hr_shard_t *to, hr_inbox_fn fn, void *ctx, void *arg)
{
    hr_shard_t *self = tls_shard;
    while (hr_loop_post(&to->loop, fn, ctx, arg) == HR_ENOBUFS) {
        if (atomic_load(&to->exited))
            return false;
        if (self)
            hr_inbox_drain(&self->loop.inbox);
        sched_yield();
    }
    return true;
}

void hr_server__post(hr_shard_t *to, hr_inbox_fn fn, void *arg)
{
    if (!post_wait(to, fn, to, arg))
        hr_log_warn("shard %d stopped: a cross-thread request was dropped", to->index);
}

void hr_server__run_on(hr_shard_t *self, hr_shard_t *to, hr_inbox_fn fn, void *arg)
{
    if (to == self)
        fn(to, arg);
    else
        hr_server__post(to, fn, arg);
}

hr_shard_t *hr_server__home(hr_server_t *srv, const char *name, size_t len)
{
    return &srv->shards[(hr_hash_name(name, len) >> 17) % (uint64_t)srv->nshards];
}

int hr_server__listen(hr_server_t *s, char *err, size_t errlen)
{
    if (s->started) {
        set_err(err, errlen, "server already started");
        return HR_ESTATE;
    }
    /* Every shard binds the port the first one got (port 0: any free port). */
    uint16_t port = s->port ? s->port : s->opt.port;
    for (int i = 0; i < s->nshards; i++) {
        hr_shard_t *sh = &s->shards[i];
        if (sh->listen_io.fd >= 0)
            continue;
        int fd = open_listener(s, port, &port, err, errlen);
        if (fd < 0)
            return fd;
        sh->listen_io.fd = fd;
        sh->listen_io.cb = on_accept;
        hr_loop_io_start(&sh->loop, &sh->listen_io, EPOLLIN);
        s->port = port;
    }
    return 0;
}

static void reopen_listener(void *ctx, void *arg)
{
    hr_shard_t *sh = ctx;
    (void)arg;
    char err[256];
    uint16_t port = sh->srv->port;
    if (sh->stopping || sh->listen_io.fd >= 0)
        return;
    int fd = open_listener(sh->srv, port, &port, err, sizeof(err));
    if (fd < 0) {
        hr_log_error("shard %d: %s", sh->index, err);
        return;
    }
    sh->listen_io.fd = fd;
    sh->listen_io.cb = on_accept;
    hr_loop_io_start(&sh->loop, &sh->listen_io, EPOLLIN);
}

void hr_server__stop_accepting(hr_server_t *s)
{
    for (int i = 0; i < s->nshards; i++)
        post_wait(&s->shards[i], close_listener, &s->shards[i], NULL);
}

void hr_server__resume_accepting(hr_server_t *s)
{
    for (int i = 0; i < s->nshards; i++)
        post_wait(&s->shards[i], reopen_listener, &s->shards[i], NULL);
}

int hr_server_start(hr_server_t *s, char *err, size_t errlen)
{
    if (s->started) {
        set_err(err, errlen, "server already started");
        return HR_ESTATE;
    }
    /* --trusted-proxies: parsed once here, read by every worker (session.c). */
    hr_forwarded_trust_deinit(&s->trust);
    char why[200];
    int rc = hr_forwarded_trust_parse(&s->trust, s->trusted_proxies, why, sizeof(why));
    if (rc) {
        char msg[256];
        snprintf(msg, sizeof(msg), "--trusted-proxies: %s",
                 rc == HR_EINVAL ? why : "out of memory");
        set_err(err, errlen, msg);
        return rc;
    }
    rc = hr_session_auth_start(s, err, errlen); /* --auth: JWT keys, read by every worker */
    if (rc)
        return rc;
    if ((s->sec.tls_cert || s->sec.tls_key) && !s->tls_ctx) {
        s->tls_ctx = hr_tls_server_ctx_create(s->sec.tls_cert, s->sec.tls_key, err, errlen);
        if (!s->tls_ctx)
            return HR_EINVAL;
    }
    rc = hr_server__listen(s, err, errlen);
    if (rc)
        return rc;
    /* Workers never take signals: the caller's thread (hr_server_run) does. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    rc = hr_cluster_start(s, err, errlen); /* --redis: the bridge thread, before any worker */
    if (rc) {
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        return rc;
    }
    s->started = true;
    for (int i = 0; i < s->nshards; i++) {
        if (pthread_create(&s->shards[i].thread, NULL, worker_main, &s->shards[i]) != 0) {
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            set_err(err, errlen, "cannot create worker thread");
            for (int j = 0; j < i; j++)
                post_wait(&s->shards[j], shard_stop, &s->shards[j], NULL);
            for (int j = 0; j < i; j++)
                pthread_join(s->shards[j].thread, NULL);
            hr_cluster_stop(s);
            s->started = false;
            return HR_ENOMEM;
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return 0;
}

uint16_t hr_server_port(const hr_server_t *s)
{
    return s->port;
}

void hr_server_stop(hr_server_t *s)
{
    if (atomic_exchange(&s->stop_requested, true))
        return;
    for (int i = 0; i < s->nshards; i++)
        post_wait(&s->shards[i], shard_stop, &s->shards[i], NULL);
}

int hr_server_wait(hr_server_t *s)
{
    if (!s->started)
        return HR_ESTATE;
    for (int i = 0; i < s->nshards; i++)
        pthread_join(s->shards[i].thread, NULL);
    hr_cluster_stop(s); /* after the workers: they may still have asked it something */
    s->started = false;
    return 0;
}

/* ---------------------------------------------------------------- stop the world */

typedef struct world {
    pthread_barrier_t parked, resume;
} world_t;

static void park(void *ctx, void *arg)
{
    (void)ctx;
    world_t *w = arg;
    pthread_barrier_wait(&w->parked);
    pthread_barrier_wait(&w->resume);
}

/* Two worlds stopped at once (a SIGHUP reload and a handoff) would each park some of the
 * workers and wait for the others forever: one at a time, process-wide. */
static pthread_mutex_t world_lock = PTHREAD_MUTEX_INITIALIZER;

int hr_server__stop_the_world(hr_server_t *s, void (*fn)(hr_server_t *s, void *data), void *data)
{
    if (tls_shard)
        return HR_ESTATE;
    pthread_mutex_lock(&world_lock);
    bool ok = s->started && !atomic_load(&s->stop_requested);
    for (int i = 0; ok && i < s->nshards; i++)
        ok = !s->shards[i].stopping && !atomic_load(&s->shards[i].exited);
    if (!ok) {
        pthread_mutex_unlock(&world_lock);
        return HR_ESTATE;
    }
    world_t w;
    pthread_barrier_init(&w.parked, NULL, (unsigned)s->nshards + 1);
    pthread_barrier_init(&w.resume, NULL, (unsigned)s->nshards + 1);
    for (int i = 0; i < s->nshards; i++)
        hr_server__post(&s->shards[i], park, &w);
    /* Every worker is now inside park(): none touches shared state until resume. The
     * barriers order fn's writes before anything the workers do next. */
    pthread_barrier_wait(&w.parked);
    fn(s, data);
    pthread_barrier_wait(&w.resume);
    pthread_barrier_destroy(&w.parked);
    pthread_barrier_destroy(&w.resume);
    pthread_mutex_unlock(&world_lock);
    return 0;
}

static void swap_tls_ctx(hr_server_t *s, void *data)
{
    struct ssl_ctx_st **ctx = data, *old = s->tls_ctx;
    s->tls_ctx = *ctx;
    *ctx = old;
}

int hr_tls_reload(hr_server_t *s)
{
    char err[512];
    struct ssl_ctx_st *ctx =
        hr_tls_server_ctx_create(s->sec.tls_cert, s->sec.tls_key, err, sizeof(err));
    if (!ctx) {
        hr_log_error("reload: TLS certificate not reloaded: %s (kept the running one)", err);
        return HR_EINVAL;
    }
    int rc = hr_server__stop_the_world(s, swap_tls_ctx, &ctx);
    hr_tls_ctx_free(ctx); /* the old one (its connections keep it alive), or the unused new one */
    if (rc) {
        hr_log_warn("reload: TLS certificate not reloaded: the server is stopping");
        return rc;
    }
    hr_log_info("reload: TLS certificate reloaded");
    return 0;
}

void hr_server__set_reload(hr_server_t *s, void (*fn)(hr_server_t *s, void *data), void *data)
{
    s->reload_fn = fn;
    s->reload_data = data;
}

int hr_server_run(hr_server_t *s, char *err, size_t errlen)
{
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    if (s->opt.handle_signals)
        pthread_sigmask(SIG_BLOCK, &set, &old);
    int rc = s->started ? 0 : hr_server_start(s, err, errlen);
    if (rc) {
        if (s->opt.handle_signals)
            pthread_sigmask(SIG_SETMASK, &old, NULL);
        return rc;
    }
    if (s->opt.handle_signals) {
        /* Wait for a signal, or for the workers to be stopped by hr_server_stop. */
        struct timespec tick = {0, 200 * 1000 * 1000};
        while (!atomic_load(&s->stop_requested)) {
            int sig = sigtimedwait(&set, NULL, &tick);
            if (sig == SIGINT || sig == SIGTERM) {
                hr_log_info("signal %d: closing connections and stopping", sig);
                hr_server_stop(s);
            } else if (sig == SIGHUP && s->reload_fn) {
                s->reload_fn(s, s->reload_data);
            } else if (sig == SIGHUP) {
                hr_log_info("SIGHUP: nothing to reload");
            }
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    return hr_server_wait(s);
}

void hr_server_destroy(hr_server_t *s)
{
    if (!s)
        return;
    if (s->started) {
        hr_server_stop(s);
        hr_server_wait(s);
    }
    /* Every worker has stopped. Posts that reached an inbox after its worker's last drain
     * still hold references, and running one may post to another shard: drain them all,
     * on this thread, until none is left, before any shard goes away. */
    for (size_t ran = 1; ran;) {
        ran = 0;
        for (int i = 0; i < s->nshards; i++)
            if (s->shards[i].loop.inbox.cells)
                ran += hr_inbox_drain(&s->shards[i].loop.inbox);
    }
    for (int i = 0; i < s->nshards; i++)
        shard_deinit(&s->shards[i]);
    hr_free(s->shards);
    for (int i = 0; i < s->nroutes; i++) {
        hr_free(s->routes[i].path);
        for (size_t j = 0; j < s->routes[i].nsubprotocols; j++)
            hr_free(s->routes[i].subprotocols[j]);
    }
    for (int i = 0; i < s->n_http_routes; i++)
        hr_free(s->http_routes[i].path);
    for (size_t i = 0; i < s->norigins; i++)
        hr_free(s->origins[i]);
    hr_free(s->origins);
    hr_free(s->api_key);
    hr_free(s->stomp.app_webhook);
    hr_free(s->redis.url);
    hr_free(s->redis.prefix);
    hr_free(s->web_dir);
    hr_free(s->trusted_proxies);
    hr_free(s->sec.tls_cert);
    hr_free(s->sec.tls_key);
    hr_tls_ctx_free(s->tls_ctx);
    hr_free(s->sec.jwt_secret);
    hr_free(s->sec.jwt_public_key);
    hr_free(s->sec.auth_webhook);
    hr_session_auth_stop(s);
    hr_forwarded_trust_deinit(&s->trust);
    hr_limit_table_deinit(&s->per_ip);
    hr_limit_table_deinit(&s->per_user);
    hr_free(s->host);
    hr_free(s);
}

/* ---------------------------------------------------------------- fan-out */

typedef struct fanout {
    hr_frame_t *frame;
    int route_id;     /* >= 0: a route broadcast */
    size_t topic_len; /* otherwise: a topic publish */
    char topic[];
} fanout_t;

static void deliver_local(hr_shard_t *sh, const fanout_t *fo)
{
    if (fo->route_id >= 0) {
        hr_list_t *head = &sh->route_conns[fo->route_id];
        for (hr_list_t *n = head->next; n != head;) {
            hr_list_t *next = n->next; /* a slow consumer unlinks itself */
            hr_session_send_frame(hr_list_entry(n, hr_conn_t, route_link), fo->frame);
            n = next;
        }
        return;
    }
    hr_topic_t *tp = hr_topics_find(&sh->topics, fo->topic, fo->topic_len);
    if (!tp)
        return;
    for (hr_list_t *n = tp->subs.next; n != &tp->subs;) {
        hr_list_t *next = n->next;
        hr_sub_t *sub = hr_list_entry(n, hr_sub_t, topic_link);
        bool last = next == &tp->subs;
        /* A slow consumer's close frees its subscriptions, perhaps the topic itself. */
        hr_session_send_frame(sub->owner, fo->frame);
        if (last)
            break;
        n = next;
    }
}

static void fanout_unref(fanout_t *fo, atomic_uint *refs)
{
    (void)refs;
    hr_frame_unref(fo->frame);
}

typedef struct fanout_ref {
    atomic_uint refs;
    fanout_t fo;
} fanout_ref_t;

static void release_fanout(fanout_ref_t *r)
{
    if (atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) == 1) {
        fanout_unref(&r->fo, &r->refs);
        hr_free(r);
    }
}

static void on_fanout(void *ctx, void *arg)
{
    hr_shard_t *sh = ctx;
    fanout_ref_t *r = arg;
    if (!sh->stopping)
        deliver_local(sh, &r->fo);
    release_fanout(r);
}

static int fan_out(hr_server_t *s, int route_id, const char *topic, const void *data, size_t len,
                   bool binary)
{
    if (len > s->opt.max_message)
        return HR_EMSGSIZE;
    size_t tlen = topic ? strlen(topic) : 0;
    fanout_ref_t *r = hr_malloc(sizeof(*r) + tlen + 1);
    if (!r)
        return HR_ENOMEM;
    r->fo.frame = hr_frame_create(data, len, binary);
    if (!r->fo.frame) {
        hr_free(r);
        return HR_ENOMEM;
    }
    r->fo.route_id = route_id;
    r->fo.topic_len = tlen;
    if (topic)
        memcpy(r->fo.topic, topic, tlen + 1);
    hr_shard_t *self = tls_shard && tls_shard->srv == s ? tls_shard : NULL;
    atomic_init(&r->refs, (unsigned)s->nshards + 1);
    for (int i = 0; i < s->nshards; i++) {
        hr_shard_t *sh = &s->shards[i];
        if (sh == self || !s->started) {
            deliver_local(sh, &r->fo);
            release_fanout(r);
        } else if (!post_wait(sh, on_fanout, sh, r)) {
            release_fanout(r);
        }
    }
    release_fanout(r);
    return 0;
}

int hr_server_broadcast(hr_server_t *s, int route_id, const void *data, size_t len, bool binary)
{
    if (route_id < 0 || route_id >= s->nroutes)
        return HR_EINVAL;
    return fan_out(s, route_id, NULL, data, len, binary);
}

int hr_server_publish(hr_server_t *s, const char *topic, const void *data, size_t len, bool binary)
{
    if (!topic || !*topic)
        return HR_EINVAL;
    return fan_out(s, -1, topic, data, len, binary);
}

/* ---------------------------------------------------------------- timers */

static void on_user_timer(hr_timer_t *t)
{
    hr_timer_handle_t *h = (hr_timer_handle_t *)t;
    h->cb(h, h->data);
    if (h->stopped || !h->repeat_ms) {
        hr_loop_timer_stop(&h->sh->loop, &h->t);
        hr_list_remove(&h->link);
        hr_free(h);
        return;
    }
    hr_loop_timer_start(&h->sh->loop, &h->t, h->repeat_ms);
}

hr_timer_handle_t *hr_timer_start(hr_server_t *s, uint64_t after_ms, uint64_t repeat_ms,
                                  void (*cb)(hr_timer_handle_t *t, void *data), void *data)
{
    hr_shard_t *sh = tls_shard && tls_shard->srv == s ? tls_shard : NULL;
    if (!sh && !s->started)
        sh = &s->shards[0];
    if (!sh)
        return NULL;
    hr_timer_handle_t *h = hr_calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    hr_timer_init(&h->t, on_user_timer);
    h->sh = sh;
    h->repeat_ms = repeat_ms;
    h->cb = cb;
    h->data = data;
    hr_list_push_back(&sh->user_timers, &h->link);
    hr_loop_update_time(&sh->loop);
    hr_loop_timer_start(&sh->loop, &h->t, after_ms);
    return h;
}

void hr_timer_stop(hr_timer_handle_t *h)
{
    if (hr_timer_armed(&h->t)) {
        hr_loop_timer_stop(&h->sh->loop, &h->t);
        hr_list_remove(&h->link);
        hr_free(h);
    } else {
        h->stopped = true; /* inside its own callback: freed on return */
    }
}
