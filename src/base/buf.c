/* hr_buf_t: doubling growth, first allocation 256 bytes; consume() moves the tail
 * down (buffers here are short-lived partial frames and requests, so the copy is
 * cheaper than the bookkeeping of a ring). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "herald/error.h"

void hr_buf_init(hr_buf_t *b)
{
    b->data = NULL;
    b->len = b->cap = 0;
}

void hr_buf_deinit(hr_buf_t *b)
{
    hr_free(b->data);
    hr_buf_init(b);
}

int hr_buf_reserve(hr_buf_t *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return 0;
    if (extra > SIZE_MAX / 2 - b->len)
        return HR_ENOMEM;
    size_t need = b->len + extra;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    uint8_t *p = hr_realloc(b->data, cap);
    if (!p)
        return HR_ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int hr_buf_append(hr_buf_t *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    int rc = hr_buf_reserve(b, n);
    if (rc)
        return rc;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int hr_buf_append_str(hr_buf_t *b, const char *s)
{
    return hr_buf_append(b, s, strlen(s));
}

int hr_buf_appendf(hr_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return HR_EINVAL;
    int rc = hr_buf_reserve(b, (size_t)n + 1);
    if (rc)
        return rc;
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void hr_buf_consume(hr_buf_t *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}
