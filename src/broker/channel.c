/* Channel names and patterns (see channel.h). Validation is one pass over at most 255
 * bytes with a 256-entry class table; matching walks pattern and name segment by
 * segment, O(pn + nn), without recursion or backtracking: "*" consumes exactly one
 * segment and ">" may only end a pattern, so no segment ever has two ways to match.
 * The grammar deliberately leaves out spaces, control and non-ASCII bytes, so a name
 * can be logged, put in a URL path or used as a Redis channel without escaping. */
#include <string.h>

#include "broker/channel.h"

/* 1 for the bytes allowed inside a segment. */
static const unsigned char seg_byte[256] = {
    ['!'] = 1, ['+'] = 1, ['-'] = 1, ['/'] = 1, [':'] = 1, ['='] = 1, ['@'] = 1, ['_'] = 1,
    ['~'] = 1, ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1,
    ['7'] = 1, ['8'] = 1, ['9'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1,
    ['F'] = 1, ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1,
    ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1,
    ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1,
    ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1,
    ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1,
    ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

/* End (index of the '.' or n) of the segment that starts at i <= n. */
static size_t seg_end(const char *s, size_t n, size_t i)
{
    const char *dot = i < n ? memchr(s + i, '.', n - i) : NULL;
    return dot ? (size_t)(dot - s) : n;
}

static bool is_wild(const char *s, size_t i, size_t e, char w)
{
    return e - i == 1 && s[i] == w;
}

/* Validates s[0..n); with wildcards allowed, *wild says whether one was seen. */
static bool validate(const char *s, size_t n, bool allow_wild, bool *wild)
{
    *wild = false;
    if (!s || n == 0 || n > HR_CHANNEL_MAX)
        return false;
    for (size_t i = 0; i <= n;) {
        size_t e = seg_end(s, n, i);
        if (e == i)
            return false;
        if (allow_wild && (is_wild(s, i, e, '*') || (e == n && is_wild(s, i, e, '>')))) {
            *wild = true;
        } else {
            for (size_t k = i; k < e; k++)
                if (!seg_byte[(unsigned char)s[k]])
                    return false;
        }
        i = e + 1;
    }
    return true;
}

bool hr_channel_name_valid(const char *s, size_t n)
{
    bool wild;
    return validate(s, n, false, &wild);
}

bool hr_channel_pattern_valid(const char *s, size_t n)
{
    bool wild;
    return validate(s, n, true, &wild);
}

bool hr_channel_is_pattern(const char *s, size_t n)
{
    bool wild;
    return validate(s, n, true, &wild) && wild;
}

bool hr_channel_match(const char *pat, size_t pn, const char *name, size_t nn)
{
    if (!pat || !name)
        return false;
    /* pi/ni start the current segments; ni > nn means the name has no segment left. */
    size_t pi = 0, ni = 0;
    for (;;) {
        size_t pe = seg_end(pat, pn, pi);
        if (ni > nn)
            return false;
        if (pe == pn && is_wild(pat, pi, pe, '>'))
            return true; /* at least one name segment is left */
        size_t ne = seg_end(name, nn, ni);
        if (!is_wild(pat, pi, pe, '*') &&
            (pe - pi != ne - ni || memcmp(pat + pi, name + ni, pe - pi) != 0))
            return false;
        pi = pe + 1;
        ni = ne + 1;
        if (pi > pn)
            return ni > nn;
    }
}
