/* Refcounted immutable blocks (h2o_mem_alloc_shared). Relaxed increments, acq_rel on
 * the decrement that may free, the usual pattern for shared ownership. */
#include "base/alloc.h"
#include "base/refbuf.h"

hr_refbuf_t *hr_refbuf_create(size_t len)
{
    hr_refbuf_t *rb = hr_malloc(sizeof(*rb) + len);
    if (!rb)
        return NULL;
    atomic_init(&rb->refs, 1);
    rb->len = len;
    return rb;
}

hr_refbuf_t *hr_refbuf_ref(hr_refbuf_t *rb)
{
    atomic_fetch_add_explicit(&rb->refs, 1, memory_order_relaxed);
    return rb;
}

void hr_refbuf_unref(hr_refbuf_t *rb)
{
    if (rb && atomic_fetch_sub_explicit(&rb->refs, 1, memory_order_acq_rel) == 1)
        hr_free(rb);
}
