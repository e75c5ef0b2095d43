/* Non-blocking TCP connections on a loop (see sock.h).
 *
 * Closing follows RFC 6455 §7.1.1 and the usual lingering close: after the last
 * queued byte is written, the write side is shut down (our FIN goes first), and the
 * socket keeps reading and discarding until the peer's FIN or the linger timeout.
 * Closing with unread input right away would make the kernel send RST, which can
 * destroy the close frame we just sent before the peer reads it. */
#include <errno.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "base/alloc.h"
#include "herald/error.h"
#include "net/sock.h"
#include "net/tls.h"

#define RECV_PADDING 64
#define READS_PER_EVENT 4

int hr_sock_ctx_init(hr_sock_ctx_t *ctx, hr_loop_t *loop, size_t recv_size)
{
    ctx->loop = loop;
    ctx->recv_size = recv_size;
    ctx->recv_buf = hr_malloc(recv_size + RECV_PADDING);
    if (!ctx->recv_buf)
        return HR_ENOMEM;
    hr_list_init(&ctx->flush_list);
    hr_list_init(&ctx->free_list);
    ctx->linger_ms = 2000;
    hr_buf_init(&ctx->tls_out);
    return 0;
}

void hr_sock_ctx_deinit(hr_sock_ctx_t *ctx)
{
    hr_sock_ctx_flush(ctx);
    hr_free(ctx->recv_buf);
    ctx->recv_buf = NULL;
    hr_buf_deinit(&ctx->tls_out);
}

static void schedule_flush(hr_sock_t *s)
{
    if (!(s->flags & HR_SOCK_IN_FLUSH)) {
        s->flags |= HR_SOCK_IN_FLUSH;
        hr_list_push_back(&s->ctx->flush_list, &s->flush_link);
    }
}

static void finish(hr_sock_t *s)
{
    if (s->flags & HR_SOCK_CLOSED)
        return;
    s->flags |= HR_SOCK_CLOSED;
    hr_loop_io_stop(s->ctx->loop, &s->io);
    if (s->tls)
        hr_tls__free(s);
    close(s->io.fd);
    s->io.fd = -1;
    hr_loop_timer_stop(s->ctx->loop, &s->timer);
    hr_outq_deinit(&s->outq);
    if (s->flags & HR_SOCK_IN_FLUSH)
        hr_list_remove(&s->flush_link);
    s->flags |= HR_SOCK_IN_FLUSH; /* the link now sits on free_list */
    hr_list_push_back(&s->ctx->free_list, &s->flush_link);
}

void hr_sock__schedule_flush(hr_sock_t *s)
{
    schedule_flush(s);
}

void hr_sock__finish(hr_sock_t *s)
{
    finish(s);
}

static void start_linger(hr_sock_t *s)
{
    s->flags |= HR_SOCK_LINGER;
    if (shutdown(s->io.fd, SHUT_WR) < 0) {
        finish(s);
        return;
    }
    hr_loop_io_update(s->ctx->loop, &s->io, EPOLLIN | EPOLLRDHUP);
    hr_sock_timer(s, s->ctx->linger_ms);
}

/* Writes queued output; returns false if the sock failed (and was finished). */
static bool flush_one(hr_sock_t *s)
{
    int rc = s->tls ? hr_tls__flush(s) : hr_outq_flush(&s->outq, s->io.fd);
    if (rc == HR_EAGAIN) {
        if (!(s->flags & HR_SOCK_WANT_WRITE)) {
            s->flags |= HR_SOCK_WANT_WRITE;
            hr_loop_io_update(s->ctx->loop, &s->io, s->io.events | EPOLLOUT);
        }
        return true;
    }
    if (rc < 0) {
        s->ops->on_eof(s, rc);
        finish(s);
        return false;
    }
    if (s->flags & HR_SOCK_WANT_WRITE) {
        s->flags &= ~HR_SOCK_WANT_WRITE;
        hr_loop_io_update(s->ctx->loop, &s->io, s->io.events & ~(uint32_t)EPOLLOUT);
    }
    if ((s->flags & (HR_SOCK_CLOSING | HR_SOCK_LINGER)) == HR_SOCK_CLOSING)
        start_linger(s);
    return true;
}

void hr_sock_ctx_flush(hr_sock_ctx_t *ctx)
{
    while (!hr_list_empty(&ctx->flush_list)) {
        hr_sock_t *s = hr_list_entry(ctx->flush_list.next, hr_sock_t, flush_link);
        hr_list_remove(&s->flush_link);
        s->flags &= ~HR_SOCK_IN_FLUSH;
        if (s->flags & HR_SOCK_TLS_READ) {
            s->flags &= ~HR_SOCK_TLS_READ;
            if (!(s->flags & (HR_SOCK_CLOSING | HR_SOCK_CLOSED)) && (s->io.events & EPOLLIN))
                hr_tls__read(s);
            if (s->flags & HR_SOCK_CLOSED)
                continue;
        }
        if (!(s->flags & HR_SOCK_WANT_WRITE))
            flush_one(s);
    }
    while (!hr_list_empty(&ctx->free_list)) {
        hr_sock_t *s = hr_list_entry(ctx->free_list.next, hr_sock_t, flush_link);
        hr_list_remove(&s->flush_link);
        s->ops->on_free(s);
    }
}

static void on_timer(hr_timer_t *t)
{
    hr_sock_t *s = hr_list_entry(t, hr_sock_t, timer);
    if (s->flags & (HR_SOCK_LINGER | HR_SOCK_CLOSING))
        finish(s);
    else if (!(s->flags & HR_SOCK_CLOSED) && s->ops->on_timer)
        s->ops->on_timer(s);
}

static void on_io(hr_io_t *io, uint32_t events)
{
    hr_sock_t *s = (hr_sock_t *)io;
    if (s->flags & HR_SOCK_CLOSED)
        return;
    if (events & EPOLLOUT) {
        if (!flush_one(s))
            return;
    }
    if (!(events & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP)))
        return;
    if (s->tls && !(s->flags & HR_SOCK_CLOSING)) {
        hr_tls__read(s);
        return;
    }
    hr_sock_ctx_t *ctx = s->ctx;
    for (int i = 0; i < READS_PER_EVENT; i++) {
        ssize_t n;
        do {
            n = read(s->io.fd, ctx->recv_buf, ctx->recv_size);
        } while (n < 0 && errno == EINTR);
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            if (!(s->flags & HR_SOCK_CLOSING))
                s->ops->on_eof(s, n == 0 ? 0 : -errno);
            finish(s);
            return;
        }
        if (s->flags & HR_SOCK_CLOSING)
            continue; /* lingering or about to: discard */
        s->ops->on_data(s, ctx->recv_buf, (size_t)n);
        if (s->flags & (HR_SOCK_CLOSED | HR_SOCK_CLOSING) || !(s->io.events & EPOLLIN))
            return;
        if ((size_t)n < ctx->recv_size)
            return;
    }
}

int hr_sock_start(hr_sock_t *s, hr_sock_ctx_t *ctx, int fd, const hr_sock_ops_t *ops)
{
    s->io.fd = fd;
    s->io.cb = on_io;
    s->ctx = ctx;
    s->ops = ops;
    s->flags = 0;
    s->tls = NULL;
    hr_outq_init(&s->outq);
    hr_list_init(&s->flush_link);
    hr_timer_init(&s->timer, on_timer);
    return hr_loop_io_start(ctx->loop, &s->io, EPOLLIN | EPOLLRDHUP);
}

/* The connect finished or failed: a connecting socket turns writable either way, and
 * SO_ERROR tells which (connect(2), EINPROGRESS). */
static void on_connect_io(hr_io_t *io, uint32_t events)
{
    hr_sock_t *s = (hr_sock_t *)io;
    (void)events;
    if (s->flags & HR_SOCK_CLOSED)
        return;
    int soerr = 0;
    socklen_t slen = sizeof(soerr);
    if (getsockopt(s->io.fd, SOL_SOCKET, SO_ERROR, &soerr, &slen) < 0)
        soerr = errno;
    s->flags &= ~(uint32_t)(HR_SOCK_CONNECTING | HR_SOCK_WANT_WRITE);
    if (soerr) {
        s->ops->on_connect(s, -soerr);
        finish(s);
        return;
    }
    s->io.cb = on_io;
    int rc = hr_loop_io_update(s->ctx->loop, &s->io, EPOLLIN | EPOLLRDHUP);
    if (rc != 0) {
        s->ops->on_connect(s, rc);
        finish(s);
        return;
    }
    if (s->outq.count)
        schedule_flush(s);
    s->ops->on_connect(s, 0);
}

int hr_sock_connect(hr_sock_t *s, hr_sock_ctx_t *ctx, int fd, const hr_sock_ops_t *ops)
{
    s->io.fd = fd;
    s->io.cb = on_connect_io;
    s->ctx = ctx;
    s->ops = ops;
    /* WANT_WRITE keeps the end-of-iteration flush away until the connect is done. */
    s->flags = HR_SOCK_CONNECTING | HR_SOCK_WANT_WRITE;
    s->tls = NULL;
    hr_outq_init(&s->outq);
    hr_list_init(&s->flush_link);
    hr_timer_init(&s->timer, on_timer);
    return hr_loop_io_start(ctx->loop, &s->io, EPOLLOUT);
}

int hr_sock_write(hr_sock_t *s, hr_refbuf_t *rb, size_t off, size_t end)
{
    if (s->flags & (HR_SOCK_CLOSED | HR_SOCK_LINGER)) {
        hr_refbuf_unref(rb);
        return HR_ECLOSED;
    }
    int rc = hr_outq_push(&s->outq, rb, off, end);
    if (rc == 0)
        schedule_flush(s);
    return rc;
}

/* Copies at least this large are first offered to the socket directly when nothing is
 * queued: corking gains nothing for them, and a write that the socket takes whole saves
 * copying the payload into the out queue (an echo of 64 KiB goes from the receive
 * buffer to the kernel). Only the part the socket did not take is queued. */
#define DIRECT_WRITE_MIN (16 * 1024)

static size_t write_now(hr_sock_t *s, const void *a, size_t alen, const void *b, size_t blen)
{
    struct iovec iov[2] = {{(void *)a, alen}, {(void *)b, blen}};
    ssize_t w;
    do {
        w = writev(s->io.fd, iov, blen ? 2 : 1);
    } while (w < 0 && errno == EINTR);
    return w > 0 ? (size_t)w : 0; /* errors show again at the next flush */
}

int hr_sock_write_parts(hr_sock_t *s, const void *a, size_t alen, const void *b, size_t blen)
{
    if (s->flags & (HR_SOCK_CLOSED | HR_SOCK_LINGER))
        return HR_ECLOSED;
    if (alen + blen >= DIRECT_WRITE_MIN && s->outq.count == 0 && !s->tls &&
        !(s->flags & (HR_SOCK_CONNECTING | HR_SOCK_WANT_WRITE))) {
        size_t w = write_now(s, a, alen, b, blen);
        if (w >= alen) {
            b = (const uint8_t *)b + (w - alen);
            blen -= w - alen;
            alen = 0;
        } else {
            a = (const uint8_t *)a + w;
            alen -= w;
        }
        if (alen + blen == 0)
            return 0;
    }
    int rc = hr_outq_append(&s->outq, a, alen, b, blen);
    if (rc == 0)
        schedule_flush(s);
    return rc;
}

int hr_sock_write_copy(hr_sock_t *s, const void *data, size_t len)
{
    return hr_sock_write_parts(s, data, len, NULL, 0);
}

void hr_sock_close(hr_sock_t *s)
{
    if (s->flags & (HR_SOCK_CLOSING | HR_SOCK_CLOSED))
        return;
    s->flags |= HR_SOCK_CLOSING;
    hr_loop_timer_stop(s->ctx->loop, &s->timer);
    /* Keep reading (to discard) so a peer that goes on sending cannot fill our buffer
     * and stall the close; the flush starts lingering when the queue is empty. */
    if (!(s->io.events & EPOLLIN))
        hr_loop_io_update(s->ctx->loop, &s->io, s->io.events | EPOLLIN);
    schedule_flush(s);
    hr_sock_timer(s, s->ctx->linger_ms + 3000); /* bound the flush too */
}

void hr_sock_abort(hr_sock_t *s)
{
    finish(s);
}

void hr_sock_pause_reading(hr_sock_t *s, bool pause)
{
    if (s->flags & (HR_SOCK_CLOSED | HR_SOCK_CLOSING))
        return;
    uint32_t ev = pause ? s->io.events & ~(uint32_t)(EPOLLIN | EPOLLRDHUP)
                        : s->io.events | EPOLLIN | EPOLLRDHUP;
    hr_loop_io_update(s->ctx->loop, &s->io, ev);
    if (!pause && s->tls) {
        /* Records read ahead while paused raise no event: look at the next flush. */
        s->flags |= HR_SOCK_TLS_READ;
        schedule_flush(s);
    }
}

void hr_sock_timer(hr_sock_t *s, uint64_t in_ms)
{
    hr_loop_timer_start(s->ctx->loop, &s->timer, in_ms);
}
