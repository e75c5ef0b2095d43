#ifndef HR_NET_SOCK_H
#define HR_NET_SOCK_H

/* hr_sock: a non-blocking TCP connection on a loop. Reads go into the thread's one
 * receive buffer and are handed to the owner; writes are queued (by reference) and
 * flushed once at the end of the loop iteration (corked); closing is deferred: the
 * memory is released by the owner's on_free after the iteration, never inside one of
 * its own callbacks. */

#include <stdbool.h>
#include <stdint.h>

#include "base/buf.h"
#include "loop/loop.h"
#include "net/outq.h"

typedef struct hr_sock hr_sock_t;
struct hr_tls;

typedef struct hr_sock_ops {
    /* Bytes received; data is the thread's receive buffer, mutable, borrowed. */
    void (*on_data)(hr_sock_t *s, uint8_t *data, size_t len);
    /* The peer closed or the socket failed; the sock is already closing. */
    void (*on_eof)(hr_sock_t *s, int err);
    /* The sock's timer fired (not while lingering). */
    void (*on_timer)(hr_sock_t *s);
    /* Last call: the fd is closed, release the memory. */
    void (*on_free)(hr_sock_t *s);
    /* Only for hr_sock_connect: the connect finished, err 0 or -errno. After a failure
     * the sock closes itself when this returns (on_free follows; on_eof does not). */
    void (*on_connect)(hr_sock_t *s, int err);
} hr_sock_ops_t;

/* Per-thread state shared by the socks of one loop. */
typedef struct hr_sock_ctx {
    hr_loop_t *loop;
    uint8_t *recv_buf;
    size_t recv_size;
    hr_list_t flush_list; /* socks with queued output */
    hr_list_t free_list;  /* closed socks waiting for on_free */
    uint64_t linger_ms;
    hr_buf_t tls_out; /* TLS socks (net/tls.h): ciphertext being written, reused */
} hr_sock_ctx_t;

enum {
    HR_SOCK_CLOSING = 1u << 0,    /* flush, then shut down writing and linger */
    HR_SOCK_LINGER = 1u << 1,     /* write side shut, reading and discarding until EOF */
    HR_SOCK_CLOSED = 1u << 2,     /* fd closed, on free_list */
    HR_SOCK_IN_FLUSH = 1u << 3,   /* on flush_list */
    HR_SOCK_WANT_WRITE = 1u << 4, /* waiting for EPOLLOUT */
    HR_SOCK_CONNECTING = 1u << 5, /* hr_sock_connect: waiting for the connect to finish */
    HR_SOCK_TLS_READ = 1u << 6    /* TLS: input may wait inside the SSL object: read at flush */
};

struct hr_sock {
    hr_io_t io;
    hr_sock_ctx_t *ctx;
    const hr_sock_ops_t *ops;
    hr_outq_t outq;
    hr_list_t flush_link;
    hr_timer_t timer;
    uint32_t flags;
    uint32_t tag;       /* the owner's, in what was padding (hr_conn: its per-address limit) */
    struct hr_tls *tls; /* NULL: plain TCP (net/tls.h) */
};

/* Recv buffer of recv_size bytes (+ padding). 0 or HR_ENOMEM. */
int hr_sock_ctx_init(hr_sock_ctx_t *ctx, hr_loop_t *loop, size_t recv_size);
void hr_sock_ctx_deinit(hr_sock_ctx_t *ctx);
/* End-of-iteration work: flush every sock with output, free closed socks. */
void hr_sock_ctx_flush(hr_sock_ctx_t *ctx);

/* Adopts a connected non-blocking fd and starts reading. 0 or -errno (fd not closed). */
int hr_sock_start(hr_sock_t *s, hr_sock_ctx_t *ctx, int fd, const hr_sock_ops_t *ops);
/* Adopts a non-blocking fd whose connect() returned 0 or EINPROGRESS: waits for
 * writability, checks SO_ERROR, then calls ops->on_connect and, on success, reads as
 * after hr_sock_start. Output queued meanwhile waits for the connect. The sock's timer
 * works meanwhile (a connect timeout). 0 or -errno (fd not closed, no callbacks). */
int hr_sock_connect(hr_sock_t *s, hr_sock_ctx_t *ctx, int fd, const hr_sock_ops_t *ops);
/* Queues rb->data[off..end) (takes the caller's reference). 0 or HR_ENOMEM, HR_ECLOSED. */
int hr_sock_write(hr_sock_t *s, hr_refbuf_t *rb, size_t off, size_t end);
/* Queues a private copy of data. 0 or HR_ENOMEM, HR_ECLOSED. */
int hr_sock_write_copy(hr_sock_t *s, const void *data, size_t len);
/* Queues a private copy of a[0..alen) then b[0..blen) (a frame header and its payload);
 * small copies are packed into one block with the ones before them. 0 or HR_ENOMEM,
 * HR_ECLOSED. */
int hr_sock_write_parts(hr_sock_t *s, const void *a, size_t alen, const void *b, size_t blen);
/* Graceful: send what is queued, shut down writing, read until EOF (at most
 * ctx->linger_ms), then close. Reads are no longer delivered. */
void hr_sock_close(hr_sock_t *s);
/* Immediate: close the fd now, drop queued output. */
void hr_sock_abort(hr_sock_t *s);
/* Stops or resumes delivering reads (backpressure). */
void hr_sock_pause_reading(hr_sock_t *s, bool pause);
/* Arms the sock's one timer in ms from now (re-arms if armed). */
void hr_sock_timer(hr_sock_t *s, uint64_t in_ms);
/* For net/tls.c only. */
void hr_sock__schedule_flush(hr_sock_t *s);
void hr_sock__finish(hr_sock_t *s);
static inline size_t hr_sock_queued(const hr_sock_t *s)
{
    return s->outq.bytes;
}

#endif
