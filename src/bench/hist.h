#ifndef HR_BENCH_HIST_H
#define HR_BENCH_HIST_H

/* Log-linear latency histogram (HdrHistogram-like): microsecond values, exact below
 * 128 us, then 64 sub-buckets per power of two (relative error under 1.6%), up to
 * 60 s; larger values land in the last bucket. Fixed size, no allocation: one per bench
 * thread, merged at the end. */

#include <stdint.h>

#define HR_BENCH_HIST_SUB_BITS 6                            /* 64 sub-buckets per octave */
#define HR_BENCH_HIST_LINEAR (2u << HR_BENCH_HIST_SUB_BITS) /* exact below 128 us */
#define HR_BENCH_HIST_MAX_US 60000000ull                    /* 60 s */
#define HR_BENCH_HIST_BUCKETS 1408

typedef struct hr_bench_hist {
    uint64_t count;
    uint64_t max_us;
    uint64_t buckets[HR_BENCH_HIST_BUCKETS];
} hr_bench_hist_t;

/* Empties h. */
void hr_bench_hist_init(hr_bench_hist_t *h);
/* Adds every sample of src to dst. */
void hr_bench_hist_merge(hr_bench_hist_t *dst, const hr_bench_hist_t *src);
/* The value at quantile q (0..1), in microseconds (the middle of its bucket); 0 if empty. */
uint64_t hr_bench_hist_quantile(const hr_bench_hist_t *h, double q);
/* Bucket index of a value; exposed for hr_bench_hist_record. */
unsigned hr_bench_hist__index(uint64_t us);

/* inline definitions */

/* Records one sample of us microseconds. Two shifts and an increment. */
static inline void hr_bench_hist_record(hr_bench_hist_t *h, uint64_t us)
{
    h->buckets[hr_bench_hist__index(us)]++;
    h->count++;
    if (us > h->max_us)
        h->max_us = us;
}

#endif
