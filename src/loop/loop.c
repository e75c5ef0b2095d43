/* The event loop (see loop.h for the iteration order). One loop per worker thread; the
 * only cross-thread entry is the inbox, so nothing here takes a lock. */
#include <errno.h>
#include <time.h>

#include "base/alloc.h"
#include "herald/error.h"
#include "loop/loop.h"
#include "loop/loop_backend.h"

uint64_t hr_clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t hr_loop_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t hr_loop_update_time(hr_loop_t *loop)
{
    loop->now_ms = hr_clock_ms();
    return loop->now_ms;
}

static void on_inbox(hr_io_t *io, uint32_t events)
{
    hr_loop_t *loop = (hr_loop_t *)((char *)io - offsetof(hr_loop_t, inbox_io));
    hr_inbox_drain(&loop->inbox);
}

int hr_loop_init(hr_loop_t *loop, size_t inbox_capacity)
{
    *loop = (hr_loop_t){0};
    loop->be = hr_backend_create();
    if (loop->be < 0)
        return loop->be;
    int rc = hr_inbox_init(&loop->inbox, inbox_capacity);
    if (rc) {
        hr_backend_destroy(loop->be);
        return rc;
    }
    hr_wheel_init(&loop->wheel, hr_loop_update_time(loop));
    loop->inbox_io.fd = loop->inbox.efd;
    loop->inbox_io.cb = on_inbox;
    rc = hr_loop_io_start(loop, &loop->inbox_io, EPOLLIN);
    if (rc) {
        hr_inbox_deinit(&loop->inbox);
        hr_backend_destroy(loop->be);
    }
    return rc;
}

void hr_loop_deinit(hr_loop_t *loop)
{
    for (int i = 0; i < loop->n_destroy_hooks; i++)
        loop->destroy_hooks[i].fn(loop, loop->destroy_hooks[i].data);
    loop->n_destroy_hooks = 0;
    hr_loop_io_stop(loop, &loop->inbox_io);
    hr_inbox_deinit(&loop->inbox);
    hr_backend_destroy(loop->be);
}

int hr_loop_add_end_hook(hr_loop_t *loop, hr_loop_hook fn, void *data)
{
    if (loop->n_end_hooks == HR_LOOP_MAX_HOOKS)
        return HR_ENOBUFS;
    loop->end_hooks[loop->n_end_hooks].fn = fn;
    loop->end_hooks[loop->n_end_hooks++].data = data;
    return 0;
}

int hr_loop_add_destroy_hook(hr_loop_t *loop, hr_loop_hook fn, void *data)
{
    if (loop->n_destroy_hooks == HR_LOOP_MAX_HOOKS)
        return HR_ENOBUFS;
    loop->destroy_hooks[loop->n_destroy_hooks].fn = fn;
    loop->destroy_hooks[loop->n_destroy_hooks++].data = data;
    return 0;
}

int hr_loop_io_start(hr_loop_t *loop, hr_io_t *io, uint32_t events)
{
    io->events = events;
    return hr_backend_ctl(loop->be, 0, io->fd, events, io);
}

int hr_loop_io_update(hr_loop_t *loop, hr_io_t *io, uint32_t events)
{
    if (io->events == events)
        return 0;
    io->events = events;
    return hr_backend_ctl(loop->be, 1, io->fd, events, io);
}

void hr_loop_io_stop(hr_loop_t *loop, hr_io_t *io)
{
    if (io->fd >= 0)
        hr_backend_ctl(loop->be, 2, io->fd, 0, io);
    io->events = 0;
}

void hr_loop_timer_start(hr_loop_t *loop, hr_timer_t *t, uint64_t in_ms)
{
    hr_timer_arm(&loop->wheel, t, loop->now_ms + in_ms);
}

void hr_loop_timer_stop(hr_loop_t *loop, hr_timer_t *t)
{
    hr_timer_disarm(&loop->wheel, t);
}

int hr_loop_post(hr_loop_t *loop, hr_inbox_fn fn, void *ctx, void *arg)
{
    return hr_inbox_push(&loop->inbox, fn, ctx, arg);
}

void hr_loop_stop(hr_loop_t *loop)
{
    loop->stop = true;
}

void hr_loop_run_once(hr_loop_t *loop, int max_wait_ms)
{
    hr_backend_event_t evs[256];
    hr_wheel_run(&loop->wheel, hr_loop_update_time(loop));
    int timeout = hr_wheel_timeout(&loop->wheel, loop->now_ms);
    if (max_wait_ms >= 0 && (timeout < 0 || timeout > max_wait_ms))
        timeout = max_wait_ms;
    int n = hr_backend_wait(loop->be, evs, 256, timeout);
    hr_loop_update_time(loop);
    for (int i = 0; i < n; i++) {
        hr_io_t *io = evs[i].data;
        io->cb(io, evs[i].events);
    }
    hr_wheel_run(&loop->wheel, loop->now_ms);
    for (int i = 0; i < loop->n_end_hooks; i++)
        loop->end_hooks[i].fn(loop, loop->end_hooks[i].data);
}

void hr_loop_run(hr_loop_t *loop)
{
    while (!loop->stop)
        hr_loop_run_once(loop, -1);
    loop->stop = false; /* the loop can be run again */
}

hr_loop_t *hr_loop_create(void)
{
    hr_loop_t *loop = hr_malloc(sizeof(*loop));
    if (loop && hr_loop_init(loop, 1024) != 0) {
        hr_free(loop);
        loop = NULL;
    }
    return loop;
}

void hr_loop_destroy(hr_loop_t *loop)
{
    if (!loop)
        return;
    hr_loop_deinit(loop);
    hr_free(loop);
}

uint64_t hr_loop_now(const hr_loop_t *loop)
{
    return loop->now_ms;
}
