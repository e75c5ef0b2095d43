/* Fuzz target for the UTF-8 validator (src/ws/utf8.c). Checks the one-shot verdict,
 * a two-piece feed split at a data-derived point, and the exact index of the first
 * bad byte (fed one byte at a time) against a slow reference that follows the
 * UTF8-octets grammar of RFC 3629 §4 literally. Aborts on any disagreement. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "herald/error.h"
#include "ws/utf8.h"

/* Allowed range of the second byte for a lead, per RFC 3629 §4; lo > hi for bytes that
 * cannot lead. Returns how many bytes the sequence has (0 if b cannot lead). */
static int lead_info(uint8_t b, uint8_t *lo, uint8_t *hi)
{
    *lo = 0x80;
    *hi = 0xBF;
    if (b <= 0x7F)
        return 1;
    if (b >= 0xC2 && b <= 0xDF)
        return 2;
    if (b == 0xE0) {
        *lo = 0xA0;
        return 3;
    }
    if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF)
        return 3;
    if (b == 0xED) {
        *hi = 0x9F;
        return 3;
    }
    if (b == 0xF0) {
        *lo = 0x90;
        return 4;
    }
    if (b >= 0xF1 && b <= 0xF3)
        return 4;
    if (b == 0xF4) {
        *hi = 0x8F;
        return 4;
    }
    return 0;
}

/* Returns the index of the first byte that cannot be part of valid UTF-8, or -1; sets
 * *complete when the input ends on a character boundary. */
static long ref_first_bad(const uint8_t *p, size_t n, bool *complete)
{
    size_t i = 0;
    *complete = true;
    while (i < n) {
        uint8_t lo, hi;
        int len = lead_info(p[i], &lo, &hi);
        if (len == 0)
            return (long)i;
        for (int k = 1; k < len; k++) {
            if (i + (size_t)k >= n) {
                *complete = false;
                return -1;
            }
            uint8_t c = p[i + (size_t)k];
            uint8_t klo = k == 1 ? lo : 0x80, khi = k == 1 ? hi : 0xBF;
            if (c < klo || c > khi)
                return (long)(i + (size_t)k);
        }
        i += (size_t)len;
    }
    return -1;
}

/* libFuzzer's entry point; declared here to satisfy -Wmissing-prototypes. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bool complete;
    long bad = ref_first_bad(data, size, &complete);
    bool want_valid = bad < 0 && complete;

    if (hr_utf8_valid(data, size) != want_valid)
        abort();

    size_t split = size ? data[0] % (size + 1) : 0;
    hr_utf8_t u;
    hr_utf8_init(&u);
    int rc1 = hr_utf8_feed(&u, data, split);
    int rc2 = hr_utf8_feed(&u, data + split, size - split);
    if (bad >= 0) {
        bool in_first = (size_t)bad < split;
        if (in_first && (rc1 != HR_EILSEQ || rc2 != HR_EILSEQ))
            abort();
        if (!in_first && (rc1 != 0 || rc2 != HR_EILSEQ))
            abort();
        if (hr_utf8_complete(&u))
            abort();
    } else {
        if (rc1 != 0 || rc2 != 0 || hr_utf8_complete(&u) != complete)
            abort();
    }

    hr_utf8_init(&u);
    long got = -1;
    for (size_t i = 0; i < size; i++) {
        if (hr_utf8_feed(&u, data + i, 1) != 0) {
            got = (long)i;
            break;
        }
    }
    if (got != bad)
        abort();
    return 0;
}
