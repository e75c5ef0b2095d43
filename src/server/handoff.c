/* Graceful restart: not implemented yet. */
#include <stdio.h>

#include "herald/error.h"
#include "server/handoff.h"

int hr_handoff_listen(hr_server_t *s, const char *path, char *err, size_t errlen)
{
    (void)s;
    snprintf(err, errlen, "--handoff-socket %s: not implemented yet", path);
    return HR_EINVAL;
}

int hr_handoff_takeover(hr_server_t *s, const char *path, char *err, size_t errlen)
{
    (void)s;
    snprintf(err, errlen, "--takeover %s: not implemented yet", path);
    return HR_EINVAL;
}

void hr_handoff_close(hr_server_t *s)
{
    (void)s;
}
