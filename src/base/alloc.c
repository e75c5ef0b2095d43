/* Allocation hooks. The fail-at counter is a test facility (SQLite faultsim style);
 * it is thread-local so that a test in one thread does not disturb a server thread. */
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"

static _Thread_local long fail_at;
static _Thread_local long count;

static int should_fail(void)
{
    count++;
    return fail_at > 0 && count >= fail_at;
}

void hr_alloc_fail_at(long nth)
{
    fail_at = nth;
    count = 0;
}

long hr_alloc_count(void)
{
    return count;
}

void *hr_malloc(size_t size)
{
    return should_fail() ? NULL : malloc(size ? size : 1);
}

void *hr_calloc(size_t n, size_t size)
{
    return should_fail() ? NULL : calloc(n ? n : 1, size ? size : 1);
}

void *hr_realloc(void *ptr, size_t size)
{
    return should_fail() ? NULL : realloc(ptr, size ? size : 1);
}

void hr_free(void *ptr)
{
    free(ptr);
}

char *hr_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = hr_malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}
