#ifndef HR_BASE_REFBUF_H
#define HR_BASE_REFBUF_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* A refcounted, immutable byte block: header and bytes in one allocation. Shared by
 * every out queue that sends it, across threads (the count is atomic). */
typedef struct hr_refbuf {
    atomic_uint refs;
    size_t len;
    uint8_t data[];
} hr_refbuf_t;

/* A block of len bytes with one reference; contents to be filled before sharing. */
hr_refbuf_t *hr_refbuf_create(size_t len);
/* Adds a reference; returns rb. */
hr_refbuf_t *hr_refbuf_ref(hr_refbuf_t *rb);
/* Drops a reference; frees the block at zero. NULL is ignored. */
void hr_refbuf_unref(hr_refbuf_t *rb);

#endif
