#ifndef HERALD_ERROR_H
#define HERALD_ERROR_H

#include "herald/version.h"

/*
 * Herald error codes. Every function that can fail returns 0 (or a count) on
 * success and one of these negative codes on failure. Where a code matches a
 * system errno its value is -errno, so a failed system call can be returned as
 * -errno unchanged.
 */
#define HR_ERRNO_MAP(X)                                                                            \
    X(EAGAIN, -11, "need more input or resource temporarily unavailable")                          \
    X(ENOMEM, -12, "out of memory")                                                                \
    X(EINVAL, -22, "invalid argument")                                                             \
    X(EPROTO, -71, "protocol error")                                                               \
    X(EMSGSIZE, -90, "message too long")                                                           \
    X(EILSEQ, -84, "invalid UTF-8")                                                                \
    X(ENOENT, -2, "no such entry")                                                                 \
    X(EEXIST, -17, "already exists")                                                               \
    X(ENOBUFS, -105, "queue limit reached")                                                        \
    X(ECLOSED, -4001, "connection is closing or closed")                                           \
    X(ESTATE, -4002, "call not valid in the current state")

typedef enum hr_errno {
#define HR_ERR_ENUM_(name, value, msg) HR_##name = (value),
    HR_ERRNO_MAP(HR_ERR_ENUM_)
#undef HR_ERR_ENUM_
} hr_errno_t;

/* Returns a static description of err (Herald code or -errno); never NULL. */
HR_API const char *hr_strerror(int err);

/* Returns the symbolic name of err ("HR_EPROTO"), or "HR_UNKNOWN"; never NULL. */
HR_API const char *hr_err_name(int err);

#endif
