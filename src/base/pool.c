/* Fixed-size object pool (see pool.h). Each chunk starts with a 16-byte header holding
 * the link to the previous chunk; objects are 8-byte aligned (what a struct of pointers
 * and integers needs), which keeps a 248-byte connection at 248 bytes. */
#include <string.h>

#include "base/alloc.h"
#include "base/pool.h"

#define CHUNK_HEADER 16

void hr_pool_init(hr_pool_t *p, size_t item_size)
{
    if (item_size < sizeof(void *))
        item_size = sizeof(void *);
    p->item_size = (item_size + 7) & ~(size_t)7;
    p->free_list = NULL;
    p->chunks = NULL;
    p->live = 0;
}

void hr_pool_deinit(hr_pool_t *p)
{
    while (p->chunks) {
        void *next;
        memcpy(&next, p->chunks, sizeof(next));
        hr_free(p->chunks);
        p->chunks = next;
    }
    p->free_list = NULL;
    p->live = 0;
}

static int grow(hr_pool_t *p)
{
    char *chunk = hr_malloc(CHUNK_HEADER + p->item_size * HR_POOL_CHUNK_ITEMS);
    if (!chunk)
        return -1;
    memcpy(chunk, &p->chunks, sizeof(void *));
    p->chunks = chunk;
    /* Thread the new items onto the free list, first item first. */
    for (size_t i = HR_POOL_CHUNK_ITEMS; i-- > 0;) {
        void *item = chunk + CHUNK_HEADER + i * p->item_size;
        memcpy(item, &p->free_list, sizeof(void *));
        p->free_list = item;
    }
    return 0;
}

void *hr_pool_alloc(hr_pool_t *p)
{
    if (!p->free_list && grow(p) != 0)
        return NULL;
    void *item = p->free_list;
    memcpy(&p->free_list, item, sizeof(void *));
    memset(item, 0, p->item_size);
    p->live++;
    return item;
}

void hr_pool_free(hr_pool_t *p, void *obj)
{
    if (!obj)
        return;
    memcpy(obj, &p->free_list, sizeof(void *));
    p->free_list = obj;
    p->live--;
}
