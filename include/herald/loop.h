#ifndef HERALD_LOOP_H
#define HERALD_LOOP_H

/*
 * A standalone event loop for embedders that drive clients (include/herald/client.h)
 * without a server, e.g. a command-line tool or a load generator. Single-threaded: every
 * call on a loop and on the clients attached to it must come from the thread that runs
 * it.
 */

#include <stdint.h>

#include "herald/version.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hr_loop hr_loop_t;

/* Returns a new loop, or NULL on out of memory / no epoll. */
HR_API hr_loop_t *hr_loop_create(void);
/* Frees the loop; every client on it must have been destroyed. */
HR_API void hr_loop_destroy(hr_loop_t *loop);
/* Runs until hr_loop_stop is called (from a callback on this loop). */
HR_API void hr_loop_run(hr_loop_t *loop);
/* Runs one iteration, waiting at most timeout_ms for events (-1: until something happens). */
HR_API void hr_loop_run_once(hr_loop_t *loop, int timeout_ms);
/* Makes hr_loop_run return after the current iteration. */
HR_API void hr_loop_stop(hr_loop_t *loop);
/* The loop's monotonic clock in milliseconds (updated each iteration). */
HR_API uint64_t hr_loop_now(const hr_loop_t *loop);

#ifdef __cplusplus
}
#endif

#endif
