#ifndef HR_LOOP_LOOP_H
#define HR_LOOP_LOOP_H

/* hr_loop: one per worker thread. An iteration runs: timers -> poll -> dispatch I/O
 * callbacks -> the end-of-iteration hook (where the net layer flushes corked output
 * and frees closed connections). */

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

#include "base/list.h"
#include "loop/inbox.h"
#include "loop/timer.h"

typedef struct hr_loop hr_loop_t;
struct hr_io;
typedef void (*hr_io_cb)(struct hr_io *io, uint32_t events);

/* A file descriptor watched by a loop; embedded in its owner. */
typedef struct hr_io {
    int fd;
    uint32_t events; /* EPOLLIN / EPOLLOUT currently requested */
    hr_io_cb cb;
} hr_io_t;

typedef void (*hr_loop_hook)(hr_loop_t *loop, void *data);

struct hr_loop {
    int be;
    bool stop;
    uint64_t now_ms;
    hr_wheel_t wheel;
    hr_inbox_t inbox;
    hr_io_t inbox_io;
    hr_loop_hook end_hook; /* run at the end of every iteration */
    void *hook_data;
    void *data; /* owner's pointer */
};

/* Returns 0 or a negative error. inbox_capacity posts may be pending at once. */
int hr_loop_init(hr_loop_t *loop, size_t inbox_capacity);
void hr_loop_deinit(hr_loop_t *loop);
/* Runs iterations until hr_loop_stop() is called from this loop's thread. */
void hr_loop_run(hr_loop_t *loop);
/* Runs one iteration, waiting at most max_wait_ms for I/O (-1: until a timer or I/O). */
void hr_loop_run_once(hr_loop_t *loop, int max_wait_ms);
void hr_loop_stop(hr_loop_t *loop);
/* Refreshes and returns the loop's monotonic clock (ms). */
uint64_t hr_loop_update_time(hr_loop_t *loop);
/* Monotonic milliseconds. */
uint64_t hr_clock_ms(void);

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
