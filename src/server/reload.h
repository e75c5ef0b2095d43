#ifndef HR_SERVER_RELOAD_H
#define HR_SERVER_RELOAD_H

/* SIGHUP: re-read the config file, apply what can change on a running server, report
 * what needs a restart. */

#include <stdbool.h>
#include <stddef.h>

#include "server/config_file.h"
#include "server/server.h"

typedef struct hr_reload {
    const char *path;            /* --config FILE, or NULL */
    const hr_config_arg_t *args; /* the command-line options, applied over the file */
    size_t nargs;
    hr_config_t *running; /* what the server runs with; owned (heap), replaced by a reload */
} hr_reload_t;

/* The reload hook: hr_server__set_reload(srv, hr_reload_run, rl), on hr_server_run's
 * thread. Reads the file and the options again; on any error logs each one with its
 * line and changes nothing. Otherwise applies the live options while the workers are
 * parked (hr_server__stop_the_world), keeps the running value of the others and names
 * them in one log line, and logs "reload: applied (N changes: ...)". */
void hr_reload_run(hr_server_t *srv, void *data);

/* True if a reload applies option name to a running server. */
bool hr_reload_is_live(const char *name);

#endif
