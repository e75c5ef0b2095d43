#ifndef HR_LOOP_BACKEND_H
#define HR_LOOP_BACKEND_H

/* The poller behind hr_loop: five functions, so that an io_uring backend can replace
 * epoll without touching the layers above. Events use the EPOLL* bit values. */

#include <stdint.h>

typedef struct hr_backend_event {
    void *data;
    uint32_t events;
} hr_backend_event_t;

/* Returns a backend handle (an fd for epoll) or -errno. */
int hr_backend_create(void);
void hr_backend_destroy(int be);
/* op is 0 add, 1 modify, 2 delete. Returns 0 or -errno. */
int hr_backend_ctl(int be, int op, int fd, uint32_t events, void *data);
/* Waits up to timeout_ms (-1 forever). Returns the number of events or -errno. */
int hr_backend_wait(int be, hr_backend_event_t *events, int max, int timeout_ms);

#endif
