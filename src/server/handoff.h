#ifndef HR_SERVER_HANDOFF_H
#define HR_SERVER_HANDOFF_H

/* Graceful restart (docs/operations.md): a new process takes the channels (epochs,
 * offsets, history) and the port over from the running one, so clients that reconnect
 * with `since` recover every message. handoff.c describes the exchange. */

#include "server/server.h"

/* Old process: after hr_server_start, listen on the Unix socket path (mode 0600) for a
 * takeover, on a thread of its own. Refuses (HR_EEXIST) when another process listens
 * there; replaces a stale socket file. After a takeover the server is stopping (its
 * clients closed with 1001 "server restarting, reconnect") and hr_server_run returns.
 * 0 or a negative error with a message in err. */
int hr_handoff_listen(hr_server_t *s, const char *path, char *err, size_t errlen);
/* New process: before hr_server_start, take the channels over from the process
 * listening on path (which then stops accepting and drains its clients); the listeners
 * are bound when this returns. 0 also when nobody listens on path (a fresh start,
 * logged); a negative error with a message in err when the exchange failed (the old
 * process then goes on serving). */
int hr_handoff_takeover(hr_server_t *s, const char *path, char *err, size_t errlen);
/* Stops what hr_handoff_listen started and removes the socket file if it is still ours
 * (after the server stopped). Does nothing without hr_handoff_listen. */
void hr_handoff_close(hr_server_t *s);

#endif
