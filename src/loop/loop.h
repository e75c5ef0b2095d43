#ifndef HR_LOOP_LOOP_H
#define HR_LOOP_LOOP_H

/* hr_loop: one per worker thread. An iteration runs: timers -> poll -> dispatch I/O
 * callbacks -> the end-of-iteration hook (where the net layer flushes corked output
 * and frees closed connections). */

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

#include "base/list.h"
#include "herald/loop.h"
#include "loop/inbox.h"
#include "loop/timer.h"

struct hr_io;
typedef void (*hr_io_cb)(struct hr_io *io, uint32_t events);

/* A file descriptor watched by a loop; embedded in its owner. */
typedef struct hr_io {
    int fd;
    uint32_t events; /* EPOLLIN / EPOLLOUT currently requested */
    hr_io_cb cb;
} hr_io_t;

typedef void (*hr_loop_hook)(hr_loop_t *loop, void *data);

#define HR_LOOP_MAX_HOOKS 4

struct hr_loop {
    int be;
    bool stop;
    uint64_t now_ms;
    hr_wheel_t wheel;
    hr_inbox_t inbox;
    hr_io_t inbox_io;
    struct {
        hr_loop_hook fn;
        void *data;
    } end_hooks[HR_LOOP_MAX_HOOKS], destroy_hooks[HR_LOOP_MAX_HOOKS]; /* in order of adding */
    int n_end_hooks, n_destroy_hooks;
    struct hr_sock_ctx *sock_ctx; /* the net layer's per-loop state, set by whoever made it */
    void *data;                   /* owner's pointer */
};

/* Adds fn(loop, data) to run at the end of every iteration (after I/O and timers), or
 * when the loop is destroyed. 0 or HR_ENOBUFS (at most HR_LOOP_MAX_HOOKS each). */
int hr_loop_add_end_hook(hr_loop_t *loop, hr_loop_hook fn, void *data);
int hr_loop_add_destroy_hook(hr_loop_t *loop, hr_loop_hook fn, void *data);

/* For a loop embedded in its owner (a shard); hr_loop_create/destroy (herald/loop.h) wrap
 * these for standalone loops. Returns 0 or a negative error. inbox_capacity posts may be
 * pending at once. hr_loop_run, hr_loop_run_once and hr_loop_stop are in herald/loop.h. */
int hr_loop_init(hr_loop_t *loop, size_t inbox_capacity);
void hr_loop_deinit(hr_loop_t *loop);
/* Refreshes and returns the loop's monotonic clock (ms). */
uint64_t hr_loop_update_time(hr_loop_t *loop);
/* Monotonic milliseconds. */
uint64_t hr_clock_ms(void);
/* Wall-clock milliseconds since the Unix epoch (message timestamps, history TTL). */
uint64_t hr_loop_wall_ms(void);

/* Watch io->fd for events (EPOLLIN|EPOLLOUT); 0 events removes it. */
int hr_loop_io_start(hr_loop_t *loop, hr_io_t *io, uint32_t events);
int hr_loop_io_update(hr_loop_t *loop, hr_io_t *io, uint32_t events);
void hr_loop_io_stop(hr_loop_t *loop, hr_io_t *io);

/* Timer helpers on the loop's wheel; due in ms from now. */
void hr_loop_timer_start(hr_loop_t *loop, hr_timer_t *t, uint64_t in_ms);
void hr_loop_timer_stop(hr_loop_t *loop, hr_timer_t *t);

/* Any thread: runs fn(ctx, arg) on the loop's thread. 0 or HR_ENOBUFS (inbox full). */
int hr_loop_post(hr_loop_t *loop, hr_inbox_fn fn, void *ctx, void *arg);

#endif
