/* Incremental UTF-8 validator for text messages and close reasons (RFC 3629 §3-§4,
 * required by RFC 6455 §5.6 and §8.1). Bytes are mapped to one of 12 classes and a
 * 9-state DFA tracks how many continuation bytes are still owed and which narrowed
 * range the next one must fall in; the narrowed ranges (after E0, ED, F0, F4) are what
 * reject overlongs, surrogates and code points above U+10FFFF at the first byte that
 * rules them out, not at the end of the sequence. It does not decode code points or
 * check normalisation; it only answers "can this still be valid UTF-8". */
#include <string.h>

#include "herald/error.h"
#include "ws/utf8.h"

enum {
    S_OK = 0, /* at a character boundary */
    S_C1,     /* one continuation byte owed, any of 80..BF */
    S_C2,     /* two owed, any range */
    S_C3,     /* three owed, any range */
    S_E0,     /* after E0: A0..BF, else the code point would be overlong */
    S_ED,     /* after ED: 80..9F, else a surrogate D800..DFFF */
    S_F0,     /* after F0: 90..BF, else overlong */
    S_F4,     /* after F4: 80..8F, else above U+10FFFF */
    S_BAD,    /* failed; sticky */
    S_COUNT
};

/* Byte classes: 0 ASCII, 1 80..8F, 2 90..9F, 3 A0..BF, 4 never valid (C0 C1 F5..FF),
 * 5 C2..DF, 6 E0, 7 E1..EC EE EF, 8 ED, 9 F0, 10 F1..F3, 11 F4. */
static const uint8_t byte_class[256] = {
    0, 0,  0,  0,  0,  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 00 */
    0, 0,  0,  0,  0,  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 10 */
    0, 0,  0,  0,  0,  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 20 */
    0, 0,  0,  0,  0,  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 30 */
    0, 0,  0,  0,  0,  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 40 */
    0, 0,  0,  0,  0,  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 50 */
    0, 0,  0,  0,  0,  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 60 */
    0, 0,  0,  0,  0,  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 70 */
    1, 1,  1,  1,  1,  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 80 */
    2, 2,  2,  2,  2,  2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 90 */
    3, 3,  3,  3,  3,  3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, /* A0 */
    3, 3,  3,  3,  3,  3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, /* B0 */
    4, 4,  5,  5,  5,  5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, /* C0 */
    5, 5,  5,  5,  5,  5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, /* D0 */
    6, 7,  7,  7,  7,  7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 7, /* E0 */
    9, 10, 10, 10, 11, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, /* F0 */
};

#define X S_BAD
static const uint8_t next_state[S_COUNT][12] = {
    /*          asc  80   90   A0   bad  C2   E0    E1   ED    F0    F1    F4 */
    [S_OK] = {S_OK, X, X, X, X, S_C1, S_E0, S_C2, S_ED, S_F0, S_C3, S_F4},
    [S_C1] = {X, S_OK, S_OK, S_OK, X, X, X, X, X, X, X, X},
    [S_C2] = {X, S_C1, S_C1, S_C1, X, X, X, X, X, X, X, X},
    [S_C3] = {X, S_C2, S_C2, S_C2, X, X, X, X, X, X, X, X},
    [S_E0] = {X, X, X, S_C1, X, X, X, X, X, X, X, X},
    [S_ED] = {X, S_C1, S_C1, X, X, X, X, X, X, X, X, X},
    [S_F0] = {X, X, S_C2, S_C2, X, X, X, X, X, X, X, X},
    [S_F4] = {X, S_C2, X, X, X, X, X, X, X, X, X, X},
    [S_BAD] = {X, X, X, X, X, X, X, X, X, X, X, X},
};
#undef X

/* Chat and JSON payloads are mostly ASCII: at a boundary, test 8 bytes per step for a
 * set high bit instead of walking the DFA. memcpy keeps it alignment-safe and compiles
 * to one load. Returns how many leading bytes were skipped (a multiple of 8). */
static size_t skip_ascii(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (n - i >= 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (w & UINT64_C(0x8080808080808080))
            break;
        i += 8;
    }
    return i;
}

void hr_utf8_init(hr_utf8_t *u)
{
    u->state = S_OK;
}

int hr_utf8_feed(hr_utf8_t *u, const uint8_t *buf, size_t len)
{
    uint32_t s = u->state;
    if (s == S_BAD)
        return HR_EILSEQ;
    size_t i = 0;
    while (i < len) {
        if (s == S_OK) {
            i += skip_ascii(buf + i, len - i);
            if (i == len)
                break;
        }
        s = next_state[s][byte_class[buf[i]]];
        if (s == S_BAD) {
            u->state = S_BAD;
            return HR_EILSEQ;
        }
        i++;
    }
    u->state = s;
    return 0;
}

bool hr_utf8_complete(const hr_utf8_t *u)
{
    return u->state == S_OK;
}

bool hr_utf8_valid(const uint8_t *buf, size_t len)
{
    hr_utf8_t u;
    hr_utf8_init(&u);
    return hr_utf8_feed(&u, buf, len) == 0 && hr_utf8_complete(&u);
}
