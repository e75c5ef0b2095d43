#ifndef HR_BASE_POOL_H
#define HR_BASE_POOL_H

/* A fixed-size object pool for one thread: objects are carved from chunks of
 * HR_POOL_CHUNK_ITEMS and recycled through a free list. Connections come from here, so
 * an idle connection costs exactly its struct: no malloc header, and no holes left by
 * the short-lived allocations of its handshake. Chunks are kept until hr_pool_deinit. */

#include <stddef.h>

#define HR_POOL_CHUNK_ITEMS 128

typedef struct hr_pool {
    size_t item_size;
    void *free_list;
    void *chunks; /* singly linked through each chunk's first word */
    size_t live;
} hr_pool_t;

/* item_size is rounded up to a multiple of 8. */
void hr_pool_init(hr_pool_t *p, size_t item_size);
/* Frees every chunk; objects still live are gone too. */
void hr_pool_deinit(hr_pool_t *p);
/* A zeroed object, or NULL on out of memory. */
void *hr_pool_alloc(hr_pool_t *p);
void hr_pool_free(hr_pool_t *p, void *obj);

#endif
