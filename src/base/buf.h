#ifndef HR_BASE_BUF_H
#define HR_BASE_BUF_H

#include <stddef.h>
#include <stdint.h>

/* A growable byte buffer: data[0..len) is content, data[len..cap) is free space.
 * An empty buffer owns no memory (data == NULL), so an idle owner costs nothing. */
typedef struct hr_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
} hr_buf_t;

/* Empty buffer, no allocation. */
void hr_buf_init(hr_buf_t *b);
/* Frees the storage; the buffer is empty and reusable after. */
void hr_buf_deinit(hr_buf_t *b);
/* Ensures cap - len >= extra. Returns 0 or HR_ENOMEM (the buffer is unchanged). */
int hr_buf_reserve(hr_buf_t *b, size_t extra);
/* Appends n bytes. Returns 0 or HR_ENOMEM (the buffer is unchanged). */
int hr_buf_append(hr_buf_t *b, const void *p, size_t n);
/* Appends a NUL-terminated string (without the NUL). Returns 0 or HR_ENOMEM. */
int hr_buf_append_str(hr_buf_t *b, const char *s);
/* printf-style append. Returns 0, HR_ENOMEM, or HR_EINVAL for a bad format. */
int hr_buf_appendf(hr_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Removes the first n bytes (n <= len). */
void hr_buf_consume(hr_buf_t *b, size_t n);

#endif
