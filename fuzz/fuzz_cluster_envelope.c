/* Fuzz target for the Redis envelope parser and the glob builder (src/cluster/envelope.c).
 * A parsed Herald envelope must re-encode to the same bytes; a presence one ends with
 * its user (at most 128 bytes); a raw payload is the whole input; the glob of any input (as prefix
 * and as pattern) is built without a crash, and every metacharacter in it is either escaped or a
 * whole wildcard segment's "*". */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/envelope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_glob(const char *s, size_t n)
{
    hr_buf_t b;
    hr_buf_init(&b);
    if (hr_cluster_redis_channel(&b, hr_slice(s, n), hr_slice(s, n), true) == 0) {
        for (size_t i = 0; i < b.len; i++) {
            char c = (char)b.data[i];
            if (c == '\\') {
                if (i + 1 == b.len || !strchr("*?[]\\", b.data[i + 1]) || !b.data[i + 1])
                    abort();
                i++;
            } else if (c == '?' || c == '[' || c == ']') {
                abort();
            } else if (c == '*' && ((i > 0 && b.data[i - 1] != '.' && b.data[i - 1] != ':') ||
                                    (i + 1 < b.len && b.data[i + 1] != '.'))) {
                abort(); /* a bare '*' only as a whole segment */
            }
        }
    }
    hr_buf_deinit(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    hr_cluster_env_t e;
    if (hr_cluster_env_parse(s, size, &e) == 0) {
        if (e.presence) {
            if (e.herald || e.data.len > HR_CLUSTER_USER_MAX || size < 3 || memcmp(s, "P1 ", 3) ||
                (const char *)e.data.ptr + e.data.len != s + size)
                abort();
        } else if (!e.herald) {
            if (e.data.ptr != s || e.data.len != size)
                abort();
        } else {
            hr_buf_t b;
            hr_buf_init(&b);
            if (hr_cluster_env_encode(&b, e.node, e.offset, e.epoch, e.time_ms, e.data) == 0 &&
                (b.len != size || memcmp(b.data, s, size) != 0))
                abort(); /* the header is canonical: the same bytes again */
            hr_buf_deinit(&b);
        }
    }
    check_glob(s, size);
    return 0;
}
