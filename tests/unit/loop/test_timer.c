/* Unit tests for the timer wheel (src/loop/timer.c): timers fire in due order and
 * never before their due time, callbacks may re-arm or disarm, a timer more than one
 * wheel turn away waits for its own turn, a long stall fires every due timer once, and
 * hr_wheel_timeout's bounds. The clock is the test's: hr_wheel_run gets explicit times. */
#include "test_util.h"

#include <stdbool.h>
#include <string.h>

#include "loop/timer.h"

typedef struct fired {
    hr_wheel_t *w;
    uint64_t now; /* the time hr_wheel_run was given */
    int order[64];
    uint64_t at[64];
    int n;
} fired_t;

typedef struct ttimer {
    hr_timer_t t;
    fired_t *log;
    int id;
    int fires;
    uint64_t rearm_in; /* re-arm this far after now from the callback (0: no) */
    int rearm_times;
    hr_timer_t *disarm; /* disarm this one from the callback */
} ttimer_t;

static void on_fire(hr_timer_t *t)
{
    ttimer_t *tt = hr_list_entry(t, ttimer_t, t);
    fired_t *f = tt->log;
    assert_true(f->n < 64);
    assert_false(hr_timer_armed(t));
    f->order[f->n] = tt->id;
    f->at[f->n] = f->now;
    f->n++;
    tt->fires++;
    if (tt->disarm)
        hr_timer_disarm(f->w, tt->disarm);
    if (tt->rearm_in && tt->fires <= tt->rearm_times)
        hr_timer_arm(f->w, t, f->now + tt->rearm_in);
}

static void tt_init(ttimer_t *tt, fired_t *log, int id)
{
    memset(tt, 0, sizeof(*tt));
    hr_timer_init(&tt->t, on_fire);
    tt->log = log;
    tt->id = id;
}

static void run_at(fired_t *f, uint64_t now)
{
    f->now = now;
    hr_wheel_run(f->w, now);
}

static void test_timer_fires_in_due_order_never_before_due(void **state)
{
    (void)state;
    hr_wheel_t w;
    fired_t f = {.w = &w};
    hr_wheel_init(&w, 1000);
    static const uint64_t due[] = {1100, 1050, 1300, 1050, 1017, 1008, 1033, 1999};
    static const int want[] = {5, 4, 6, 1, 3, 0, 2, 7};
    ttimer_t tt[8];
    for (int i = 0; i < 8; i++) {
        tt_init(&tt[i], &f, i);
        hr_timer_arm(&w, &tt[i].t, due[i]);
        assert_true(hr_timer_armed(&tt[i].t));
    }
    for (uint64_t now = 1000; now <= 2100; now++) {
        int before = f.n;
        run_at(&f, now);
        for (int i = before; i < f.n; i++) {
            int id = f.order[i];
            assert_true(now >= due[id]);                   /* not before */
            assert_true(now < due[id] + HR_WHEEL_TICK_MS); /* nor a tick late */
        }
    }
    assert_int_equal(f.n, 8);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(f.order[i], want[i]);
        assert_int_equal(tt[i].fires, 1);
        assert_false(hr_timer_armed(&tt[i].t));
    }
    assert_int_equal(w.count, 0);
    assert_int_equal(hr_wheel_timeout(&w, 2100), -1);
}

static void test_timer_due_in_the_past_fires_on_next_tick_not_this_run(void **state)
{
    (void)state;
    hr_wheel_t w;
    fired_t f = {.w = &w};
    hr_wheel_init(&w, 5000);
    ttimer_t a;
    tt_init(&a, &f, 1);
    hr_timer_arm(&w, &a.t, 10); /* long past */
    run_at(&f, 5000);           /* the current tick has been run already */
    assert_int_equal(f.n, 0);
    run_at(&f, 5000 + HR_WHEEL_TICK_MS);
    assert_int_equal(f.n, 1);
}

static void test_timer_rearm_inside_callback(void **state)
{
    (void)state;
    hr_wheel_t w;
    fired_t f = {.w = &w};
    hr_wheel_init(&w, 0);
    ttimer_t a;
    tt_init(&a, &f, 1);
    a.rearm_in = 100;
    a.rearm_times = 4;
    hr_timer_arm(&w, &a.t, 100);
    for (uint64_t now = 0; now <= 1000; now++)
        run_at(&f, now);
    assert_int_equal(a.fires, 5);
    assert_true(f.at[0] >= 100);
    for (int i = 1; i < 5; i++)
        assert_true(f.at[i] >= f.at[i - 1] + 100);
    assert_false(hr_timer_armed(&a.t));
    assert_int_equal(w.count, 0);
}

/* A callback that re-arms for "now" (already due) must not run again in the same
 * hr_wheel_run call, or a busy timer could spin the loop forever. */
static void test_timer_rearm_for_now_inside_callback_waits_for_next_run(void **state)
{
    (void)state;
    hr_wheel_t w;
    fired_t f = {.w = &w};
    hr_wheel_init(&w, 0);
    ttimer_t a;
    tt_init(&a, &f, 1);
    a.rearm_in = 0;
    hr_timer_arm(&w, &a.t, 32);
    run_at(&f, 32);
    assert_int_equal(a.fires, 1);
    hr_timer_arm(&w, &a.t, 32); /* due now, armed after this tick ran */
    run_at(&f, 32);
    assert_int_equal(a.fires, 1);
    run_at(&f, 48);
    assert_int_equal(a.fires, 2);
}

static void rearm_now_cb(hr_timer_t *t)
{
    ttimer_t *tt = hr_list_entry(t, ttimer_t, t);
    tt->fires++;
    hr_timer_arm(tt->log->w, t, tt->log->now);
}

static void count_cb(hr_timer_t *t)
{
    hr_list_entry(t, ttimer_t, t)->fires++;
}

/* A callback that re-arms its timer for "now" (already due: "run me again soon") gets
 * one more run per hr_wheel_run call, however many ticks that call catches up on: a
 * long stall fires everything due once, not once per missed tick. */
static void test_timer_rearmed_for_now_in_callback_fires_once_per_run(void **state)
{
    (void)state;
    hr_wheel_t w;
    fired_t f = {.w = &w};
    hr_wheel_init(&w, 0);
    ttimer_t a;
    tt_init(&a, &f, 1);
    a.t.cb = rearm_now_cb;
    hr_timer_arm(&w, &a.t, 16);
    run_at(&f, 16);
    assert_int_equal(a.fires, 1);
    run_at(&f, 96); /* catches up ticks 2..6 */
    assert_int_equal(a.fires, 2);
    run_at(&f, 16 * 1000); /* catches up ~1000 ticks */
    assert_int_equal(a.fires, 3);
    assert_true(hr_timer_armed(&a.t));
    hr_timer_disarm(&w, &a.t);
}

static void test_timer_rearm_moves_an_armed_timer(void **state)
{
    (void)state;
    hr_wheel_t w;
    fired_t f = {.w = &w};
    hr_wheel_init(&w, 0);
    ttimer_t a;
    tt_init(&a, &f, 1);
    hr_timer_arm(&w, &a.t, 50);
    hr_timer_arm(&w, &a.t, 500);
    assert_int_equal(w.count, 1);
    for (uint64_t now = 0; now < 500; now++)
        run_at(&f, now);
    assert_int_equal(a.fires, 0);
    run_at(&f, 512);
    assert_int_equal(a.fires, 1);
    assert_int_equal(w.count, 0);
}

static void test_timer_disarm(void **state)
{
    (void)state;
    hr_wheel_t w;
    fired_t f = {.w = &w};
    hr_wheel_init(&w, 0);
    ttimer_t a, b;
    tt_init(&a, &f, 1);
    tt_init(&b, &f, 2);
    hr_timer_disarm(&w, &a.t); /* never armed: harmless */
    assert_int_equal(w.count, 0);
    hr_timer_arm(&w, &a.t, 40);
    hr_timer_arm(&w, &b.t, 40);
    hr_timer_disarm(&w, &a.t);
    hr_timer_disarm(&w, &a.t); /* twice: harmless */
    assert_false(hr_timer_armed(&a.t));
    assert_int_equal(w.count, 1);
    run_at(&f, 1000);
    assert_int_equal(a.fires, 0);
    assert_int_equal(b.fires, 1);
    assert_int_equal(w.count, 0);
}

static void test_timer_callback_disarms_another_due_in_same_tick(void **state)
{
    (void)state;
    hr_wheel_t w;
    fired_t f = {.w = &w};
    hr_wheel_init(&w, 0);
    ttimer_t a, b, c;
    tt_init(&a, &f, 1);
    tt_init(&b, &f, 2);
    tt_init(&c, &f, 3);
    a.disarm = &b.t;
    hr_timer_arm(&w, &a.t, 30);
    hr_timer_arm(&w, &b.t, 31);
    hr_timer_arm(&w, &c.t, 32);
    run_at(&f, 32);
    assert_int_equal(a.fires, 1);
    assert_int_equal(b.fires, 0);
    assert_int_equal(c.fires, 1);
    assert_int_equal(w.count, 0);
    assert_int_equal(hr_wheel_timeout(&w, 32), -1);
}

static void test_timer_more_than_one_turn_away_fires_only_at_its_time(void **state)
{
    (void)state;
    hr_wheel_t w;
    fired_t f = {.w = &w};
    hr_wheel_init(&w, 0);
    ttimer_t a, b;
    tt_init(&a, &f, 1);
    tt_init(&b, &f, 2);
    hr_timer_arm(&w, &a.t, 60000);                                 /* ~3.7 turns */
    hr_timer_arm(&w, &b.t, HR_WHEEL_SLOTS * HR_WHEEL_TICK_MS + 5); /* just over one turn */
    for (uint64_t now = 0; now < 60000; now += HR_WHEEL_TICK_MS / 2) {
        run_at(&f, now);
        assert_int_equal(a.fires, 0);
        if (now < HR_WHEEL_SLOTS * HR_WHEEL_TICK_MS + 5)
            assert_int_equal(b.fires, 0);
    }
    assert_int_equal(b.fires, 1);
    run_at(&f, 60000);
    assert_int_equal(a.fires, 1);
    assert_int_equal(w.count, 0);

    /* the same with coarse steps: a run per second */
    hr_wheel_init(&w, 0);
    tt_init(&a, &f, 1);
    hr_timer_arm(&w, &a.t, 60000);
    for (uint64_t now = 1000; now < 60000; now += 1000) {
        run_at(&f, now);
        assert_int_equal(a.fires, 0);
    }
    run_at(&f, 60000);
    assert_int_equal(a.fires, 1);
}

static void test_timer_long_stall_fires_everything_due_once(void **state)
{
    (void)state;
    hr_wheel_t w;
    fired_t f = {.w = &w};
    hr_wheel_init(&w, 0);
    static const uint64_t due[] = {10, 5000, 16384, 20000, 49999, 50000, 50001, 100000};
    ttimer_t tt[8];
    for (int i = 0; i < 8; i++) {
        tt_init(&tt[i], &f, i);
        hr_timer_arm(&w, &tt[i].t, due[i]);
    }
    run_at(&f, 50000); /* ~3000 ticks after the last run */
    for (int i = 0; i < 8; i++)
        assert_int_equal(tt[i].fires, due[i] <= 50000 ? 1 : 0);
    run_at(&f, 50000);
    run_at(&f, 50015); /* same tick as 50000: 50001 is not reached yet */
    for (int i = 0; i < 8; i++)
        assert_int_equal(tt[i].fires, due[i] <= 50000 ? 1 : 0);
    run_at(&f, 50016);
    assert_int_equal(tt[6].fires, 1);
    assert_int_equal(tt[7].fires, 0);
    run_at(&f, 200000);
    for (int i = 0; i < 8; i++)
        assert_int_equal(tt[i].fires, 1);
    assert_int_equal(w.count, 0);
}

static void test_timer_long_stall_with_timers_in_every_slot(void **state)
{
    (void)state;
    hr_wheel_t w;
    fired_t f = {.w = &w};
    hr_wheel_init(&w, 0);
    enum { N = 3 * HR_WHEEL_SLOTS };
    static ttimer_t tt[N];
    int fires = 0;
    for (int i = 0; i < N; i++) {
        tt_init(&tt[i], &f, i);
        tt[i].t.cb = count_cb;
        hr_timer_arm(&w, &tt[i].t, (uint64_t)i * 11 + 1); /* up to ~33.8 s */
    }
    run_at(&f, 20000); /* 1250 ticks: more than a turn */
    for (int i = 0; i < N; i++) {
        assert_int_equal(tt[i].fires, (uint64_t)i * 11 + 1 <= 20000 ? 1 : 0);
        fires += tt[i].fires;
        hr_timer_disarm(&w, &tt[i].t);
    }
    assert_true(fires > 0);
    assert_int_equal(w.count, 0);
}

static void test_timer_wheel_timeout_values(void **state)
{
    (void)state;
    hr_wheel_t w;
    fired_t f = {.w = &w};
    hr_wheel_init(&w, 1000);
    assert_int_equal(hr_wheel_timeout(&w, 1000), -1);
    ttimer_t a, b, c;
    tt_init(&a, &f, 1);
    tt_init(&b, &f, 2);
    tt_init(&c, &f, 3);

    /* never shorter than the time to the due time, at most a tick longer */
    static const uint64_t in[] = {1, 15, 16, 17, 100, 500, 999};
    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
        for (uint64_t now = 1000; now < 1000 + HR_WHEEL_TICK_MS; now += 5) {
            hr_wheel_init(&w, now);
            hr_timer_arm(&w, &a.t, now + in[i]);
            int to = hr_wheel_timeout(&w, now);
            assert_true(to >= (int)in[i]);
            assert_true(to < (int)in[i] + HR_WHEEL_TICK_MS);
            hr_timer_disarm(&w, &a.t);
        }
    }

    /* far timers: capped at 1000 (the cap may come early; never above it) */
    hr_wheel_init(&w, 1000);
    hr_timer_arm(&w, &b.t, 1000 + 5000);
    int to = hr_wheel_timeout(&w, 1000);
    assert_true(to > 0 && to <= 1000);
    hr_timer_arm(&w, &c.t, 1000 + 60000);
    to = hr_wheel_timeout(&w, 1000);
    assert_true(to > 0 && to <= 1000);
    /* the nearest one wins */
    hr_timer_arm(&w, &a.t, 1000 + 40);
    to = hr_wheel_timeout(&w, 1000);
    assert_true(to >= 40 && to < 40 + HR_WHEEL_TICK_MS);
    hr_timer_disarm(&w, &a.t);
    hr_timer_disarm(&w, &b.t);
    hr_timer_disarm(&w, &c.t);
    assert_int_equal(hr_wheel_timeout(&w, 1000), -1);

    /* an overdue timer armed after its tick ran: the next tick */
    hr_wheel_init(&w, 1000);
    hr_wheel_run(&w, 1000);
    hr_timer_arm(&w, &a.t, 990);
    to = hr_wheel_timeout(&w, 1000);
    assert_true(to > 0 && to <= HR_WHEEL_TICK_MS);
    hr_timer_disarm(&w, &a.t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timer_fires_in_due_order_never_before_due),
        cmocka_unit_test(test_timer_due_in_the_past_fires_on_next_tick_not_this_run),
        cmocka_unit_test(test_timer_rearm_inside_callback),
        cmocka_unit_test(test_timer_rearm_for_now_inside_callback_waits_for_next_run),
        cmocka_unit_test(test_timer_rearmed_for_now_in_callback_fires_once_per_run),
        cmocka_unit_test(test_timer_rearm_moves_an_armed_timer),
        cmocka_unit_test(test_timer_disarm),
        cmocka_unit_test(test_timer_callback_disarms_another_due_in_same_tick),
        cmocka_unit_test(test_timer_more_than_one_turn_away_fires_only_at_its_time),
        cmocka_unit_test(test_timer_long_stall_fires_everything_due_once),
        cmocka_unit_test(test_timer_long_stall_with_timers_in_every_slot),
        cmocka_unit_test(test_timer_wheel_timeout_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
