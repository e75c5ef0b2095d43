/* Timer wheel (see timer.h). Connection timeouts re-arm lazily: a connection records
 * its last activity and its one timer, when it fires, decides whether the deadline
 * really passed or re-arms for the remainder (nginx's lazy timers), so a busy
 * connection touches the wheel about once per timeout period, not once per message. */
#include "loop/timer.h"

void hr_wheel_init(hr_wheel_t *w, uint64_t now_ms)
{
    for (size_t i = 0; i < HR_WHEEL_SLOTS; i++)
        hr_list_init(&w->slots[i]);
    w->last_tick = now_ms / HR_WHEEL_TICK_MS;
    w->running_to = 0;
    w->count = 0;
}

void hr_timer_init(hr_timer_t *t, hr_timer_cb cb)
{
    hr_list_init(&t->link);
    t->due_ms = 0;
    t->cb = cb;
}

void hr_timer_arm(hr_wheel_t *w, hr_timer_t *t, uint64_t due_ms)
{
    hr_timer_disarm(w, t);
    uint64_t tick = (due_ms + HR_WHEEL_TICK_MS - 1) / HR_WHEEL_TICK_MS;
    /* Never into a tick already run, nor (inside a run) one the run will still reach:
     * a timer re-armed for "now" fires once per run, not once per caught-up tick. */
    uint64_t floor = w->last_tick > w->running_to ? w->last_tick : w->running_to;
    if (tick <= floor)
        tick = floor + 1;
    t->due_ms = due_ms;
    hr_list_push_back(&w->slots[tick % HR_WHEEL_SLOTS], &t->link);
    w->count++;
}

void hr_timer_disarm(hr_wheel_t *w, hr_timer_t *t)
{
    if (hr_list_linked(&t->link)) {
        hr_list_remove(&t->link);
        w->count--;
    }
}

void hr_wheel_run(hr_wheel_t *w, uint64_t now_ms)
{
    uint64_t now_tick = now_ms / HR_WHEEL_TICK_MS;
    /* After a long stall visit each slot once, not once per missed tick. */
    if (now_tick - w->last_tick > HR_WHEEL_SLOTS)
        w->last_tick = now_tick - HR_WHEEL_SLOTS;
    w->running_to = now_tick;
    while (w->last_tick < now_tick && w->count > 0) {
        w->last_tick++;
        hr_list_t *slot = &w->slots[w->last_tick % HR_WHEEL_SLOTS];
        /* Detach the due ones first: a callback may re-arm into this same slot. */
        hr_list_t due;
        hr_list_init(&due);
        for (hr_list_t *n = slot->next; n != slot;) {
            hr_list_t *next = n->next;
            hr_timer_t *t = hr_list_entry(n, hr_timer_t, link);
            if (t->due_ms <= now_ms) {
                hr_list_remove(n);
                hr_list_push_back(&due, n);
            }
            n = next;
        }
        while (!hr_list_empty(&due)) {
            hr_timer_t *t = hr_list_entry(due.next, hr_timer_t, link);
            hr_list_remove(&t->link);
            w->count--;
            t->cb(t);
        }
    }
    w->last_tick = now_tick;
    w->running_to = 0;
}

int hr_wheel_timeout(const hr_wheel_t *w, uint64_t now_ms)
{
    if (w->count == 0)
        return -1;
    uint64_t now_tick = now_ms / HR_WHEEL_TICK_MS;
    for (uint64_t i = 1; i <= 1000 / HR_WHEEL_TICK_MS; i++) {
        if (!hr_list_empty(&w->slots[(now_tick + i) % HR_WHEEL_SLOTS]))
            return (int)((now_tick + i) * HR_WHEEL_TICK_MS - now_ms);
    }
    return 1000;
}
