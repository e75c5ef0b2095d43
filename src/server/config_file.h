#ifndef HR_SERVER_CONFIG_FILE_H
#define HR_SERVER_CONFIG_FILE_H

/* The config file of `herald serve --config FILE` and `herald check-config FILE`: INI
 * (libinih) whose keys are the option table's names (config.h), top level or in
 * [herald], plus [routes] (echo/broadcast/pubsub/stomp = route-*). Every error is
 * reported with its line, not only the first. docs/operations.md has the format. */

#include <stddef.h>

#include "server/config.h"

/* Called once per error: file as given, line (0: not a line of the file, e.g. a
 * command-line option or an unreadable file) and a one-line message. */
typedef void (*hr_config_error_fn)(void *data, const char *file, int line, const char *msg);

/* A command-line option: name without "--", value NULL for a flag. value is borrowed
 * (argv) and must outlive every config it is applied to. */
typedef struct hr_config_arg {
    char name[64];
    const char *value;
} hr_config_arg_t;

/* Reads the file at path over cfg. Returns the number of errors (each one reported),
 * or a negative errno when the file cannot be read (reported with line 0). Values are
 * kept by cfg (hr_config_keep). */
int hr_config_load_file(hr_config_t *cfg, const char *path, hr_config_error_fn on_error,
                        void *data);
/* The same for NUL-terminated text; name is the file name errors are reported under. */
int hr_config_load_string(hr_config_t *cfg, const char *name, const char *text,
                          hr_config_error_fn on_error, void *data);

/* Applies command-line options over cfg (the file's values): each one replaces the
 * file's value, except --namespace, which is added before the file's namespaces (first
 * match wins, so the command line's are tried first) and replaces a file namespace of
 * the same pattern. 0, or -1 with a one-line message (the first error). */
int hr_config_apply_args(hr_config_t *cfg, const hr_config_arg_t *args, size_t nargs, char *err,
                         size_t errlen);

/* hr_config_init, then the file (if path), then args. Returns 0, the number of errors
 * (file and command line, each reported), or a negative errno when the file cannot be
 * read. On a non-zero return cfg still needs hr_config_deinit. */
int hr_config_load(hr_config_t *cfg, const char *path, const hr_config_arg_t *args, size_t nargs,
                   hr_config_error_fn on_error, void *data);

#endif
