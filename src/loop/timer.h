#ifndef HR_LOOP_TIMER_H
#define HR_LOOP_TIMER_H

/* Timer wheel: 1024 slots of 16 ms; arm and disarm are O(1) list operations. A timer
 * further out than one turn stays in its slot and is skipped until its turn comes
 * (the cost is a comparison per turn). Owners embed hr_timer_t (no allocation). */

#include <stdbool.h>
#include <stdint.h>

#include "base/list.h"

struct hr_timer;
typedef void (*hr_timer_cb)(struct hr_timer *t);

typedef struct hr_timer {
    hr_list_t link;
    uint64_t due_ms;
    hr_timer_cb cb;
} hr_timer_t;

#define HR_WHEEL_SLOTS 1024
#define HR_WHEEL_TICK_MS 16

typedef struct hr_wheel {
    hr_list_t slots[HR_WHEEL_SLOTS];
    uint64_t last_tick;  /* ticks up to and including this one have been run */
    uint64_t running_to; /* during hr_wheel_run: the tick being caught up to, else 0 */
    size_t count;
} hr_wheel_t;

void hr_wheel_init(hr_wheel_t *w, uint64_t now_ms);
/* Initialises an unarmed timer. */
void hr_timer_init(hr_timer_t *t, hr_timer_cb cb);
/* Arms (or re-arms) t to fire at due_ms (not before). */
void hr_timer_arm(hr_wheel_t *w, hr_timer_t *t, uint64_t due_ms);
/* Disarms t; harmless if it is not armed. */
void hr_timer_disarm(hr_wheel_t *w, hr_timer_t *t);
static inline bool hr_timer_armed(const hr_timer_t *t)
{
    return hr_list_linked(&t->link);
}
/* Runs every timer due at now_ms. */
void hr_wheel_run(hr_wheel_t *w, uint64_t now_ms);
/* Milliseconds until the next tick that holds a timer, or -1 if none; at most 1000. */
int hr_wheel_timeout(const hr_wheel_t *w, uint64_t now_ms);

#endif
