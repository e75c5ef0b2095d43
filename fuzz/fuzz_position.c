/* Fuzzes the position-string parser and the query helpers of the fallback transports
 * (src/proto/position.c). The whole input is parsed as a position, then as a query
 * whose values are percent-decoded.
 *
 * Invariants beyond "no crash": every entry lies inside the input with a non-empty
 * channel and an epoch of [a-z0-9]; re-appending the entries reproduces the input byte
 * for byte (round trip) and parses to the same entries; a decoded value is never longer
 * than its encoding and never contains NUL. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "proto/position.h"

#define MAX_ENTRIES 16

/* libFuzzer's entry point; declared here because no header of ours owns it. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_position(const char *s, size_t size)
{
    hr_position_entry_t e[MAX_ENTRIES], again[MAX_ENTRIES];
    int n = hr_position_parse(s, size, e, MAX_ENTRIES);
    if (n < 0)
        return;
    hr_buf_t b;
    hr_buf_init(&b);
    for (int i = 0; i < n; i++) {
        if (e[i].channel.len == 0 || (const char *)e[i].channel.ptr < s ||
            (const char *)e[i].epoch.ptr + e[i].epoch.len > s + size || e[i].epoch.len == 0 ||
            e[i].epoch.len > HR_POSITION_EPOCH_MAX)
            abort();
        for (size_t k = 0; k < e[i].epoch.len; k++) {
            char c = ((const char *)e[i].epoch.ptr)[k];
            if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
                abort();
        }
        if (hr_position_append(&b, 0, e[i].channel, e[i].offset, e[i].epoch) != 0)
            abort();
    }
    /* Leading zeros in an offset are the one thing the canonical form drops. */
    if (b.len > size || (b.len == size && size && memcmp(b.data, s, size) != 0))
        abort();
    if (hr_position_parse((const char *)b.data, b.len, again, MAX_ENTRIES) != n)
        abort();
    for (int i = 0; i < n; i++)
        if (again[i].offset != e[i].offset || again[i].channel.len != e[i].channel.len ||
            memcmp(again[i].channel.ptr, e[i].channel.ptr, e[i].channel.len) != 0)
            abort();
    hr_buf_deinit(&b);
}

static void check_query(const char *s, size_t size)
{
    size_t pos = 0;
    hr_slice_t name, value;
    char dst[256];
    while (hr_query_next(s, size, &pos, &name, &value)) {
        if (pos > size || (const char *)name.ptr < s ||
            (const char *)value.ptr + value.len > s + size)
            abort();
        ssize_t n = hr_query_decode(value.ptr, value.len, dst, sizeof(dst));
        if (n > (ssize_t)value.len || n > (ssize_t)sizeof(dst) ||
            (n > 0 && memchr(dst, 0, (size_t)n)))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_position((const char *)data, size);
    check_query((const char *)data, size);
    return 0;
}
