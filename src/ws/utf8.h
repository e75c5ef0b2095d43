#ifndef HR_WS_UTF8_H
#define HR_WS_UTF8_H

/* Incremental UTF-8 validator (RFC 3629): state is carried across calls, so a text
 * message can be validated as its fragments arrive and fail at the first bad byte. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hr_utf8 {
    uint32_t state; /* 0 = at a character boundary; other values mid-sequence or reject */
} hr_utf8_t;

/* Starts a new validation. */
void hr_utf8_init(hr_utf8_t *u);

/*
 * Feeds buf[0..len). Returns 0 if every byte so far can still begin or continue valid
 * UTF-8 (possibly mid-sequence), or HR_EILSEQ as soon as a byte makes the input
 * invalid: overlong forms, surrogates (U+D800..U+DFFF), code points above U+10FFFF,
 * stray continuation bytes, bytes 0xC0, 0xC1, 0xF5..0xFF, truncated sequences followed
 * by a non-continuation byte. After HR_EILSEQ the validator stays failed.
 */
int hr_utf8_feed(hr_utf8_t *u, const uint8_t *buf, size_t len);

/* True if the input fed so far ends at a character boundary (a complete message). */
bool hr_utf8_complete(const hr_utf8_t *u);

/* One-shot: true if buf[0..len) is complete, valid UTF-8. */
bool hr_utf8_valid(const uint8_t *buf, size_t len);

#endif
