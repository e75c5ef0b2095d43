/* Log-linear latency histogram for herald bench (see hist.h). Values below 128 us get a
 * bucket each; above, every power of two [2^k, 2^(k+1)) is split into 64 equal
 * sub-buckets, so a bucket is at most 1/64 of its value wide. 60 s needs 2^26 us, i.e.
 * 128 + 19 * 64 = 1344 buckets; the array is rounded up. Cost per sample: a count of
 * leading zeros, a shift and an add; no floating point until a quantile is asked for. */
#include "bench/hist.h"

#include <string.h>

void hr_bench_hist_init(hr_bench_hist_t *h)
{
    memset(h, 0, sizeof(*h));
}

unsigned hr_bench_hist__index(uint64_t us)
{
    if (us < HR_BENCH_HIST_LINEAR)
        return (unsigned)us;
    if (us > HR_BENCH_HIST_MAX_US)
        us = HR_BENCH_HIST_MAX_US;
    unsigned msb = 63u - (unsigned)__builtin_clzll(us); /* >= 7 */
    unsigned shift = msb - HR_BENCH_HIST_SUB_BITS;      /* >= 1 */
    unsigned top = (unsigned)(us >> shift);             /* 64..127 */
    return HR_BENCH_HIST_LINEAR + (shift - 1) * (1u << HR_BENCH_HIST_SUB_BITS) +
           (top - (1u << HR_BENCH_HIST_SUB_BITS));
}

/* The lowest value of bucket i and its width. */
static void bucket_range(unsigned i, uint64_t *lo, uint64_t *width)
{
    if (i < HR_BENCH_HIST_LINEAR) {
        *lo = i;
        *width = 1;
        return;
    }
    unsigned j = i - HR_BENCH_HIST_LINEAR;
    unsigned shift = j / (1u << HR_BENCH_HIST_SUB_BITS) + 1;
    uint64_t top = (j % (1u << HR_BENCH_HIST_SUB_BITS)) + (1u << HR_BENCH_HIST_SUB_BITS);
    *lo = top << shift;
    *width = 1ull << shift;
}

void hr_bench_hist_merge(hr_bench_hist_t *dst, const hr_bench_hist_t *src)
{
    for (unsigned i = 0; i < HR_BENCH_HIST_BUCKETS; i++)
        dst->buckets[i] += src->buckets[i];
    dst->count += src->count;
    if (src->max_us > dst->max_us)
        dst->max_us = src->max_us;
}

uint64_t hr_bench_hist_quantile(const hr_bench_hist_t *h, double q)
{
    if (h->count == 0)
        return 0;
    if (q < 0)
        q = 0;
    /* the rank of the sample wanted, 1-based: ceil(q * count), at least 1 */
    double r = q * (double)h->count;
    uint64_t rank = (uint64_t)r;
    if ((double)rank < r)
        rank++;
    if (rank < 1)
        rank = 1;
    if (rank > h->count)
        rank = h->count;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HR_BENCH_HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t lo, width;
            bucket_range(i, &lo, &width);
            uint64_t v = lo + width / 2;
            return v > h->max_us ? h->max_us : v;
        }
    }
    return h->max_us;
}
