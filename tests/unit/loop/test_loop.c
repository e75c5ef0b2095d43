/* Unit tests for the event loop (src/loop/loop.c): a post from another thread runs on
 * the loop's thread, timers through hr_loop_timer_start fire in order and not early,
 * a stopped timer does not fire, hr_loop_stop ends hr_loop_run, and a full inbox
 * refuses posts. Every test ends by checking the wheel is empty and destroying the
 * loop. A guard timer stops any loop that would otherwise hang. */
#include "test_util.h"

#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "herald/error.h"
#include "loop/loop.h"

enum { GUARD_MS = 10000 };

struct fixture;

/* A timer that knows its fixture and its index. */
typedef struct ftimer {
    hr_timer_t t;
    struct fixture *f;
    int id;
} ftimer_t;

typedef struct fixture {
    hr_loop_t loop;
    hr_timer_t guard;
    bool timed_out;
    pthread_t loop_thread;
    /* posts */
    int runs;
    bool on_loop_thread;
    long target;
    long posted_runs;
    /* timers */
    ftimer_t t[3];
    uint64_t start_ms;
    uint64_t fired_ms[3];
    int order[3];
    int nfired;
    int stop_after;
} fixture_t;

static void guard_cb(hr_timer_t *t)
{
    fixture_t *f = hr_list_entry(t, fixture_t, guard);
    f->timed_out = true;
    hr_loop_stop(&f->loop);
}

static void fixture_init(fixture_t *f, size_t inbox_capacity)
{
    memset(f, 0, sizeof(*f));
    assert_int_equal(hr_loop_init(&f->loop, inbox_capacity), 0);
    f->loop_thread = pthread_self();
    hr_timer_init(&f->guard, guard_cb);
    hr_loop_update_time(&f->loop);
    hr_loop_timer_start(&f->loop, &f->guard, GUARD_MS);
}

static void fixture_done(fixture_t *f)
{
    assert_false(f->timed_out);
    hr_loop_timer_stop(&f->loop, &f->guard);
    assert_int_equal(f->loop.wheel.count, 0); /* no live timers left */
    hr_loop_deinit(&f->loop);
}

/* ------------------------------------------------------------------------------------
 * Posts.
 * ---------------------------------------------------------------------------------- */

static void stop_post(void *ctx, void *arg)
{
    fixture_t *f = ctx;
    assert_ptr_equal(arg, (void *)f);
    f->on_loop_thread = pthread_equal(pthread_self(), f->loop_thread) != 0;
    f->runs++;
    hr_loop_stop(&f->loop);
}

static void *post_stop_thread(void *p)
{
    fixture_t *f = p;
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL); /* let the loop block in poll first */
    while (hr_loop_post(&f->loop, stop_post, f, f) == HR_ENOBUFS)
        sched_yield();
    return NULL;
}

static void test_loop_post_from_another_thread_runs_on_loop_thread(void **state)
{
    (void)state;
    fixture_t f;
    fixture_init(&f, 64);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, post_stop_thread, &f), 0);
    hr_loop_run(&f.loop); /* blocks until the post stops it */
    pthread_join(th, NULL);
    assert_int_equal(f.runs, 1);
    assert_true(f.on_loop_thread);
    fixture_done(&f);
}

static void count_post(void *ctx, void *arg)
{
    fixture_t *f = ctx;
    (void)arg;
    if (!pthread_equal(pthread_self(), f->loop_thread))
        f->on_loop_thread = false;
    if (++f->posted_runs == f->target)
        hr_loop_stop(&f->loop);
}

static void *post_many_thread(void *p)
{
    fixture_t *f = p;
    for (int i = 0; i < 20000; i++)
        while (hr_loop_post(&f->loop, count_post, f, NULL) == HR_ENOBUFS)
            sched_yield();
    return NULL;
}

static void test_loop_posts_from_two_threads_all_run_on_loop_thread(void **state)
{
    (void)state;
    fixture_t f;
    fixture_init(&f, 256);
    f.on_loop_thread = true;
    f.target = 2 * 20000;
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, post_many_thread, &f), 0);
    hr_loop_run(&f.loop);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(f.posted_runs, f.target);
    assert_true(f.on_loop_thread);
    fixture_done(&f);
}

static void noop_post(void *ctx, void *arg)
{
    fixture_t *f = ctx;
    (void)arg;
    f->runs++;
}

static void test_loop_post_to_full_inbox_is_enobufs_then_runs_all_queued(void **state)
{
    (void)state;
    fixture_t f;
    fixture_init(&f, 4);
    int queued = 0;
    while (hr_loop_post(&f.loop, noop_post, &f, NULL) == 0)
        queued++;
    assert_int_equal(queued, 4);
    assert_int_equal(hr_loop_post(&f.loop, noop_post, &f, NULL), HR_ENOBUFS);
    hr_loop_run_once(&f.loop, 1000);
    assert_int_equal(f.runs, 4);
    assert_int_equal(hr_loop_post(&f.loop, noop_post, &f, NULL), 0);
    hr_loop_run_once(&f.loop, 1000);
    assert_int_equal(f.runs, 5);
    fixture_done(&f);
}

/* ------------------------------------------------------------------------------------
 * Timers.
 * ---------------------------------------------------------------------------------- */

static void timer_cb(hr_timer_t *t)
{
    ftimer_t *ft = hr_list_entry(t, ftimer_t, t);
    fixture_t *f = ft->f;
    f->fired_ms[ft->id] = hr_clock_ms();
    f->order[f->nfired++] = ft->id;
    if (f->nfired == f->stop_after)
        hr_loop_stop(&f->loop);
}

static void timers_init(fixture_t *f)
{
    for (int i = 0; i < 3; i++) {
        hr_timer_init(&f->t[i].t, timer_cb);
        f->t[i].f = f;
        f->t[i].id = i;
    }
}

static void test_loop_timers_fire_in_order_not_before_due(void **state)
{
    (void)state;
    fixture_t f;
    fixture_init(&f, 16);
    static const uint64_t in[3] = {60, 20, 40};
    timers_init(&f);
    f.stop_after = 3;
    f.start_ms = hr_loop_update_time(&f.loop);
    for (int i = 0; i < 3; i++)
        hr_loop_timer_start(&f.loop, &f.t[i].t, in[i]);
    hr_loop_run(&f.loop);
    assert_int_equal(f.nfired, 3);
    assert_int_equal(f.order[0], 1);
    assert_int_equal(f.order[1], 2);
    assert_int_equal(f.order[2], 0);
    for (int i = 0; i < 3; i++)
        assert_true(f.fired_ms[i] >= f.start_ms + in[i]);
    fixture_done(&f);
}

static void test_loop_stopped_timer_does_not_fire(void **state)
{
    (void)state;
    fixture_t f;
    fixture_init(&f, 16);
    timers_init(&f);
    f.stop_after = 2;
    hr_loop_update_time(&f.loop);
    hr_loop_timer_start(&f.loop, &f.t[0].t, 10);
    hr_loop_timer_start(&f.loop, &f.t[1].t, 30);
    hr_loop_timer_start(&f.loop, &f.t[2].t, 50);
    hr_loop_timer_stop(&f.loop, &f.t[1].t);
    hr_loop_run(&f.loop);
    assert_int_equal(f.nfired, 2);
    assert_int_equal(f.order[0], 0);
    assert_int_equal(f.order[1], 2);
    assert_false(hr_timer_armed(&f.t[1].t));
    fixture_done(&f);
}

static void test_loop_stop_ends_run_after_the_current_iteration(void **state)
{
    (void)state;
    fixture_t f;
    fixture_init(&f, 16);
    timers_init(&f);
    f.stop_after = 1;
    hr_loop_update_time(&f.loop);
    hr_loop_timer_start(&f.loop, &f.t[0].t, 1);
    hr_loop_timer_start(&f.loop, &f.t[1].t, 500);
    uint64_t t0 = hr_clock_ms();
    hr_loop_run(&f.loop);
    assert_int_equal(f.nfired, 1);
    assert_true(hr_clock_ms() - t0 < 500); /* did not wait for the second timer */
    hr_loop_timer_stop(&f.loop, &f.t[1].t);
    fixture_done(&f);
}

static void test_loop_run_once_returns_after_max_wait_without_events(void **state)
{
    (void)state;
    fixture_t f;
    fixture_init(&f, 16);
    uint64_t t0 = hr_clock_ms();
    hr_loop_run_once(&f.loop, 0);
    hr_loop_run_once(&f.loop, 20);
    assert_true(hr_clock_ms() - t0 < GUARD_MS);
    fixture_done(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loop_post_from_another_thread_runs_on_loop_thread),
        cmocka_unit_test(test_loop_posts_from_two_threads_all_run_on_loop_thread),
        cmocka_unit_test(test_loop_post_to_full_inbox_is_enobufs_then_runs_all_queued),
        cmocka_unit_test(test_loop_timers_fire_in_order_not_before_due),
        cmocka_unit_test(test_loop_stopped_timer_does_not_fire),
        cmocka_unit_test(test_loop_stop_ends_run_after_the_current_iteration),
        cmocka_unit_test(test_loop_run_once_returns_after_max_wait_without_events),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
