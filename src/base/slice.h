#ifndef HR_BASE_SLICE_H
#define HR_BASE_SLICE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A pointer and a length that travel together; layout-compatible with struct iovec. */
typedef struct hr_slice {
    void *ptr;
    size_t len;
} hr_slice_t;

static inline hr_slice_t hr_slice(const void *ptr, size_t len);
static inline int hr_slice_eq_str(hr_slice_t s, const char *str);

/* inline definitions */

static inline hr_slice_t hr_slice(const void *ptr, size_t len)
{
    hr_slice_t s = {(void *)ptr, len};
    return s;
}

static inline int hr_slice_eq_str(hr_slice_t s, const char *str)
{
    size_t n = strlen(str);
    return s.len == n && memcmp(s.ptr, str, n) == 0;
}

#endif
