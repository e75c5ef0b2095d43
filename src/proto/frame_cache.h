#ifndef HR_PROTO_FRAME_CACHE_H
#define HR_PROTO_FRAME_CACHE_H

/* A message to many recipients, serialized once: one refcounted block with the frame
 * header and payload, and at most one permessage-deflate variant, compressed lazily by
 * the first thread that has a recipient for it. Recipients' out queues hold references
 * to these blocks; the payload is never copied per recipient. */

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "base/refbuf.h"
#include "ws/deflate.h"

typedef struct hr_frame {
    atomic_uint refs;
    bool binary;
    size_t hdr_len; /* header bytes at the start of plain->data */
    size_t payload_len;
    hr_refbuf_t *plain;
    _Atomic(hr_refbuf_t *) deflated; /* NULL until built; a whole frame with RSV1 */
    atomic_bool deflate_failed;
} hr_frame_t;

/* A frame of data[0..len) with one reference. NULL on out of memory. */
hr_frame_t *hr_frame_create(const void *data, size_t len, bool binary);
hr_frame_t *hr_frame_ref(hr_frame_t *f);
void hr_frame_unref(hr_frame_t *f);
/* The compressed variant (built with stream s, window 15, no context), or NULL if it
 * cannot be built. The returned block is owned by the frame (ref it to queue it). */
hr_refbuf_t *hr_frame_deflated(hr_frame_t *f, hr_deflate_stream_t *s,
                               const hr_deflate_config_t *cfg, hr_buf_t *scratch);
/* A private frame (header + payload) for one recipient; rsv1 marks compressed payload. */
hr_refbuf_t *hr_frame_build(uint8_t opcode, bool rsv1, const void *data, size_t len);

#endif
