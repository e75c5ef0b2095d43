/* epoll backend of hr_loop (level-triggered). Level triggering keeps the read path
 * simple: a connection that stops reading part-way (backpressure, fairness cap) is
 * woken again by the next epoll_wait without any bookkeeping of ours. */
#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "loop/loop_backend.h"

int hr_backend_create(void)
{
    int fd = epoll_create1(EPOLL_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

void hr_backend_destroy(int be)
{
    close(be);
}

int hr_backend_ctl(int be, int op, int fd, uint32_t events, void *data)
{
    static const int ops[] = {EPOLL_CTL_ADD, EPOLL_CTL_MOD, EPOLL_CTL_DEL};
    struct epoll_event ev = {.events = events, .data.ptr = data};
    return epoll_ctl(be, ops[op], fd, &ev) < 0 ? -errno : 0;
}

int hr_backend_wait(int be, hr_backend_event_t *events, int max, int timeout_ms)
{
    struct epoll_event evs[256];
    if (max > 256)
        max = 256;
    int n;
    do {
        n = epoll_wait(be, evs, max, timeout_ms);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    for (int i = 0; i < n; i++) {
        events[i].data = evs[i].data.ptr;
        events[i].events = evs[i].events;
    }
    return n;
}
