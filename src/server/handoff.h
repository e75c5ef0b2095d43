#ifndef HR_SERVER_HANDOFF_H
#define HR_SERVER_HANDOFF_H

/* Graceful restart (docs/operations.md): a new process takes the channels (epochs,
 * offsets, history) and the port over from the running one, so clients that reconnect
 * with `since` recover every message. */

#include "server/server.h"

/* Old process: after hr_server_start, listen on the Unix socket path for a takeover.
 * 0 or a negative error with a message in err. */
int hr_handoff_listen(hr_server_t *s, const char *path, char *err, size_t errlen);
/* New process: before hr_server_start, take the channels over from the process
 * listening on path (which then stops accepting and drains its clients). 0 or a
 * negative error with a message in err. */
int hr_handoff_takeover(hr_server_t *s, const char *path, char *err, size_t errlen);
/* Frees what hr_handoff_listen set up (after the server stopped). */
void hr_handoff_close(hr_server_t *s);

#endif
