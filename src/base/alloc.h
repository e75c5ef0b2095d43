#ifndef HR_BASE_ALLOC_H
#define HR_BASE_ALLOC_H

#include <stddef.h>

/* Herald's allocator. Every allocation in src/ goes through these, so that tests can
 * make the Nth allocation fail (hr_alloc_fail_at) and check for a clean HR_ENOMEM. */
void *hr_malloc(size_t size);
void *hr_calloc(size_t n, size_t size);
void *hr_realloc(void *ptr, size_t size);
void hr_free(void *ptr);
char *hr_strdup(const char *s);

/* Tests only: the nth allocation from now (1-based) and all after it fail; 0 disables. */
void hr_alloc_fail_at(long nth);
/* Tests only: how many allocations have been made since the last hr_alloc_fail_at(). */
long hr_alloc_count(void);

#endif
