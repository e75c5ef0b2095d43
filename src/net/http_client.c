/* Outbound HTTP POSTs on a loop (see http_client.h), driven by libcurl's multi-socket
 * API: curl tells us which sockets to watch (on_curl_socket) and when to wake it
 * (on_curl_timer); we watch them on the loop and hand readiness back through
 * curl_multi_socket_action, then collect finished transfers (finish_transfers). One
 * multi handle per client keeps idle connections for reuse (HTTP/1.1 keep-alive).
 *
 * Two rules keep callbacks out of places they must not run:
 *  - curl's timer callback only arms a loop timer; socket_action runs from that timer,
 *    never from inside a curl callback, and hr_http_client_post only adds the handle,
 *    so done never runs inside post.
 *  - A socket curl stops watching may still have an event in the loop's current batch,
 *    so its state is not freed in place: it is marked dead and freed by the reap timer
 *    (timers never run in the middle of an I/O batch).
 *
 * Not here: redirects (a webhook answers itself), request bodies streamed from the
 * caller, HTTP/2. */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/list.h"
#include "herald/error.h"
#include "herald/version.h"
#include "net/http_client.h"

#define CONNECT_TIMEOUT_MS 5000u

/* A socket curl asked us to watch; curl_multi_assign maps it back. */
typedef struct http_sock {
    hr_io_t io; /* first: on_sock_io casts */
    hr_http_client_t *hc;
    hr_list_t link; /* hc->socks while watched, hc->dead_socks once curl removed it */
    bool dead;
} http_sock_t;

typedef struct http_req {
    hr_list_t link; /* hc->reqs */
    hr_http_client_t *hc;
    CURL *easy;
    struct curl_slist *headers;
    hr_buf_t resp;
    size_t max_response;
    bool too_large; /* the write callback refused a body over max_response */
    bool nomem;     /* the write callback could not grow resp */
    int watch_err;  /* its socket could not be watched: fail it after socket_action */
    hr_http_done_fn done;
    void *ctx;
    char errbuf[CURL_ERROR_SIZE];
} http_req_t;

struct hr_http_client {
    hr_loop_t *loop;
    CURLM *multi;
    hr_timer_t timer; /* curl's one timeout */
    hr_timer_t reap;  /* frees dead_socks */
    hr_list_t reqs;
    hr_list_t socks;
    hr_list_t dead_socks;
    size_t pending;
    int in_done;       /* depth of done callbacks running */
    bool watch_failed; /* some request has watch_err set */
    bool closing;      /* in hr_http_client_destroy: posts are refused */
};

/* ---------------------------------------------------------------- process-wide init */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_FAILED_INIT;

/* curl_global_init is not thread-safe in 7.x; shards create their clients in parallel.
 * There is no matching curl_global_cleanup: the state lives as long as the process. */
static void curl_init_once(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---------------------------------------------------------------- requests */

/* The request behind an easy handle (CURLOPT_PRIVATE), or NULL for curl's own. */
static http_req_t *req_of(CURL *easy)
{
    char *priv = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
    return (http_req_t *)priv;
}

static void req_free(http_req_t *r)
{
    if (r->easy)
        curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->headers);
    hr_buf_deinit(&r->resp);
    hr_free(r);
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    http_req_t *r = ud;
    size_t len = size * n;
    if (len > r->max_response - r->resp.len) {
        r->too_large = true;
        return 0; /* anything but len aborts the transfer with CURLE_WRITE_ERROR */
    }
    if (hr_buf_append(&r->resp, p, len) != 0) {
        r->nomem = true;
        return 0;
    }
    return len;
}

/* A CURLcode as a Herald code; the list is in http_client.h (hr_http_result_t.err). */
static int map_error(const http_req_t *r, CURLcode code)
{
    long os_errno = 0;
    if (r->too_large || code == CURLE_FILESIZE_EXCEEDED)
        return HR_EMSGSIZE;
    if (r->nomem || code == CURLE_OUT_OF_MEMORY)
        return HR_ENOMEM;
    curl_easy_getinfo(r->easy, CURLINFO_OS_ERRNO, &os_errno);
    bool have_errno = os_errno > 0 && os_errno < 4000;
    switch (code) {
    case CURLE_OPERATION_TIMEDOUT:
        return -ETIMEDOUT;
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
        return HR_EINVAL;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return HR_ENOENT;
    case CURLE_COULDNT_CONNECT:
        return have_errno ? -(int)os_errno : -ECONNREFUSED;
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
        return have_errno ? -(int)os_errno : -ECONNRESET;
    default:
        return HR_EPROTO;
    }
}

/* Runs r's done with the outcome and frees r: curl's code, or err when we end the
 * request ourselves (HR_ECLOSED: cancelled; else its socket could not be watched). The
 * easy handle is already out of the multi handle. */
static void complete(http_req_t *r, CURLcode code, int err)
{
    hr_http_client_t *hc = r->hc;
    hr_http_result_t res = {.errmsg = "", .body = (const uint8_t *)""};
    if (err == HR_ECLOSED) {
        res.err = err;
        res.errmsg = "request cancelled: HTTP client destroyed";
    } else if (err != 0) {
        res.err = err;
        snprintf(r->errbuf, sizeof(r->errbuf), "cannot watch the connection's socket: %s",
                 hr_strerror(err));
        res.errmsg = r->errbuf;
    } else if (code != CURLE_OK) {
        res.err = map_error(r, code);
        if (res.err == HR_EMSGSIZE)
            snprintf(r->errbuf, sizeof(r->errbuf), "response too large (limit %zu bytes)",
                     r->max_response);
        else if (r->nomem)
            snprintf(r->errbuf, sizeof(r->errbuf), "out of memory buffering the response");
        res.errmsg = r->errbuf[0] ? r->errbuf : curl_easy_strerror(code);
    } else {
        long status = 0;
        char *ct = NULL;
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(r->easy, CURLINFO_CONTENT_TYPE, &ct);
        res.status = (int)status;
        res.content_type = ct;
        if (r->resp.len) {
            res.body = r->resp.data;
            res.body_len = r->resp.len;
        }
    }
    hr_list_remove(&r->link);
    hc->pending--;
    hc->in_done++;
    r->done(r->ctx, &res);
    hc->in_done--;
    req_free(r);
}

/* Completes every transfer curl reports finished. Called after each socket_action,
 * outside any curl callback, so done may post new requests. */
static void finish_transfers(hr_http_client_t *hc)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(hc->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURL *easy = m->easy_handle;
        CURLcode code = m->data.result;
        http_req_t *r = req_of(easy);
        curl_multi_remove_handle(hc->multi, easy); /* m is invalid from here */
        complete(r, code, 0);
    }
    if (!hc->watch_failed)
        return;
    hc->watch_failed = false;
    hr_list_t failed;
    hr_list_init(&failed);
    for (hr_list_t *n = hc->reqs.next; n != &hc->reqs;) {
        hr_list_t *next = n->next;
        if (hr_list_entry(n, http_req_t, link)->watch_err) {
            hr_list_remove(n);
            hr_list_push_back(&failed, n);
        }
        n = next;
    }
    while (!hr_list_empty(&failed)) {
        http_req_t *r = hr_list_entry(failed.next, http_req_t, link);
        curl_multi_remove_handle(hc->multi, r->easy);
        complete(r, CURLE_OK, r->watch_err);
    }
}

/* ---------------------------------------------------------------- sockets and timer */

static void on_sock_io(hr_io_t *io, uint32_t events)
{
    http_sock_t *s = (http_sock_t *)io;
    if (s->dead)
        return; /* removed earlier in this batch; the reap timer frees it */
    hr_http_client_t *hc = s->hc;
    int flags = 0;
    if (events & (EPOLLIN | EPOLLHUP))
        flags |= CURL_CSELECT_IN; /* a hang-up reads as EOF */
    if (events & EPOLLOUT)
        flags |= CURL_CSELECT_OUT;
    if (events & EPOLLERR)
        flags |= CURL_CSELECT_ERR;
    int running;
    curl_multi_socket_action(hc->multi, s->io.fd, flags, &running); /* may kill s */
    finish_transfers(hc);
}

static void free_dead_socks(hr_http_client_t *hc)
{
    while (!hr_list_empty(&hc->dead_socks)) {
        http_sock_t *s = hr_list_entry(hc->dead_socks.next, http_sock_t, link);
        hr_list_remove(&s->link);
        hr_free(s);
    }
}

static void on_reap(hr_timer_t *t)
{
    free_dead_socks(hr_list_entry(t, hr_http_client_t, reap));
}

static void sock_release(hr_http_client_t *hc, http_sock_t *s)
{
    hr_loop_io_stop(hc->loop, &s->io);
    s->dead = true;
    hr_list_remove(&s->link);
    hr_list_push_back(&hc->dead_socks, &s->link);
    if (!hr_timer_armed(&hc->reap))
        hr_loop_timer_start(hc->loop, &hc->reap, 0);
}

/* The transfer on easy cannot be watched: finish_transfers fails it after this
 * socket_action. Returning -1 to curl instead would fail every transfer of the multi
 * handle, and curl 7.88 then stalls until something else calls it. */
static int watch_failed(hr_http_client_t *hc, CURL *easy, int err)
{
    http_req_t *r = req_of(easy);
    if (r && !r->watch_err) {
        r->watch_err = err;
        hc->watch_failed = true;
    }
    return 0;
}

/* CURLMOPT_SOCKETFUNCTION: start, change or stop watching fd. */
static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    hr_http_client_t *hc = userp;
    http_sock_t *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s)
            sock_release(hc, s);
        return 0;
    }
    uint32_t events = ((what & CURL_POLL_IN) ? (uint32_t)EPOLLIN : 0u) |
                      ((what & CURL_POLL_OUT) ? (uint32_t)EPOLLOUT : 0u);
    int rc;
    if (s) {
        rc = hr_loop_io_update(hc->loop, &s->io, events);
        return rc == 0 ? 0 : watch_failed(hc, easy, rc);
    }
    s = hr_calloc(1, sizeof(*s));
    if (!s)
        return watch_failed(hc, easy, HR_ENOMEM);
    s->io.fd = fd;
    s->io.cb = on_sock_io;
    s->hc = hc;
    rc = hr_loop_io_start(hc->loop, &s->io, events);
    if (rc != 0) {
        hr_free(s);
        return watch_failed(hc, easy, rc);
    }
    hr_list_push_back(&hc->socks, &s->link);
    curl_multi_assign(hc->multi, fd, s);
    return 0;
}

/* CURLMOPT_TIMERFUNCTION: only arms the loop timer. curl forbids calling socket_action
 * from here, and a 0 ms timeout ("as soon as possible") runs at the wheel's next tick
 * (within HR_WHEEL_TICK_MS). */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    hr_http_client_t *hc = userp;
    if (timeout_ms < 0)
        hr_loop_timer_stop(hc->loop, &hc->timer);
    else
        hr_loop_timer_start(hc->loop, &hc->timer, (uint64_t)timeout_ms);
    return 0;
}

static void on_timer(hr_timer_t *t)
{
    hr_http_client_t *hc = hr_list_entry(t, hr_http_client_t, timer);
    int running;
    curl_multi_socket_action(hc->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    finish_transfers(hc);
}

/* ---------------------------------------------------------------- public */

hr_http_client_t *hr_http_client_create(hr_loop_t *loop)
{
    pthread_once(&curl_once, curl_init_once);
    if (curl_init_rc != CURLE_OK)
        return NULL;
    hr_http_client_t *hc = hr_calloc(1, sizeof(*hc));
    if (!hc)
        return NULL;
    hc->multi = curl_multi_init();
    if (!hc->multi) {
        hr_free(hc);
        return NULL;
    }
    hc->loop = loop;
    hr_timer_init(&hc->timer, on_timer);
    hr_timer_init(&hc->reap, on_reap);
    hr_list_init(&hc->reqs);
    hr_list_init(&hc->socks);
    hr_list_init(&hc->dead_socks);
    curl_multi_setopt(hc->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(hc->multi, CURLMOPT_SOCKETDATA, hc);
    curl_multi_setopt(hc->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(hc->multi, CURLMOPT_TIMERDATA, hc);
    return hc;
}

void hr_http_client_destroy(hr_http_client_t *hc)
{
    if (!hc || hc->closing)
        return;
    assert(hc->in_done == 0 && "hr_http_client_destroy from a done callback");
    hc->closing = true;
    while (!hr_list_empty(&hc->reqs)) {
        http_req_t *r = hr_list_entry(hc->reqs.next, http_req_t, link);
        curl_multi_remove_handle(hc->multi, r->easy);
        complete(r, CURLE_OK, HR_ECLOSED);
    }
    /* Closes the kept-alive connections; curl reports their sockets removed. */
    curl_multi_cleanup(hc->multi);
    while (!hr_list_empty(&hc->socks))
        sock_release(hc, hr_list_entry(hc->socks.next, http_sock_t, link));
    free_dead_socks(hc);
    hr_loop_timer_stop(hc->loop, &hc->timer);
    hr_loop_timer_stop(hc->loop, &hc->reap);
    hr_free(hc);
}

/* A header line must not smuggle in another one. */
static bool header_ok(const char *h, bool need_colon)
{
    return strpbrk(h, "\r\n") == NULL && (!need_colon || strchr(h, ':') != NULL);
}

static int append_header(http_req_t *r, const char *line)
{
    struct curl_slist *l = curl_slist_append(r->headers, line);
    if (!l)
        return HR_ENOMEM;
    r->headers = l;
    return 0;
}

int hr_http_client_post(hr_http_client_t *hc, const char *url, const char *content_type,
                        const void *body, size_t len, const char *const *extra_headers,
                        uint32_t timeout_ms, size_t max_response, hr_http_done_fn done, void *ctx)
{
    if (!url || !content_type || !done || (!body && len) || timeout_ms == 0 ||
        !header_ok(content_type, false))
        return HR_EINVAL;
    for (const char *const *h = extra_headers; h && *h; h++)
        if (!header_ok(*h, true))
            return HR_EINVAL;
    if (hc->closing)
        return HR_ECLOSED;

    http_req_t *r = hr_calloc(1, sizeof(*r));
    if (!r)
        return HR_ENOMEM;
    hr_buf_init(&r->resp);
    hr_list_init(&r->link);
    r->hc = hc;
    r->max_response = max_response;
    r->done = done;
    r->ctx = ctx;
    r->easy = curl_easy_init();
    if (!r->easy)
        goto fail;

    size_t ct_len = strlen("Content-Type: ") + strlen(content_type) + 1;
    char *ct = hr_malloc(ct_len);
    if (!ct)
        goto fail;
    snprintf(ct, ct_len, "Content-Type: %s", content_type);
    int rc = append_header(r, ct);
    hr_free(ct);
    /* An empty Expect: stops curl from waiting for 100-continue on large bodies. */
    if (rc != 0 || append_header(r, "Expect:") != 0)
        goto fail;
    for (const char *const *h = extra_headers; h && *h; h++)
        if (append_header(r, *h) != 0)
            goto fail;

    long connect_ms = timeout_ms < CONNECT_TIMEOUT_MS ? (long)timeout_ms : CONNECT_TIMEOUT_MS;
    CURL *e = r->easy;
    /* POSTFIELDSIZE before COPYPOSTFIELDS, so that the copy is len bytes, not strlen. */
    if (curl_easy_setopt(e, CURLOPT_URL, url) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, len ? (const char *)body : "") != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_USERAGENT, "Herald/" HR_VERSION_STRING) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_PROXY, "") != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, connect_ms) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_WRITEDATA, r) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_PRIVATE, r) != CURLE_OK)
        goto fail;
    /* A declared Content-Length over the limit fails before any byte is read (0 would
     * mean no limit to curl, so an empty limit is left to on_body). */
    if (max_response > 0 && (uint64_t)max_response <= (uint64_t)INT64_MAX &&
        curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)max_response) != CURLE_OK)
        goto fail;
    /* Adding only asks for a 0 ms timer (on_curl_timer): nothing completes in here. */
    if (curl_multi_add_handle(hc->multi, e) != CURLM_OK)
        goto fail;
    hr_list_push_back(&hc->reqs, &r->link);
    hc->pending++;
    return 0;

fail:
    req_free(r);
    return HR_ENOMEM;
}

size_t hr_http_client_pending(const hr_http_client_t *hc)
{
    return hc->pending;
}
