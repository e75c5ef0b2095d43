#ifndef HR_API_WEB_H
#define HR_API_WEB_H

/* The web pages of `herald serve` (docs/web.md): the demo at /, the admin page at /admin,
 * herald.js, their assets under /static/ and npm bundles under /vendor/, from copies
 * embedded at build time (cmake/HeraldEmbed.cmake) or, with --web-dir, from disk. And
 * the admin page's live feed, the WebSocket route /admin/ws (admin.c). */

#include <stddef.h>

#include "server/server.h"

/* A file embedded from web/; the tables end with a NULL name. */
typedef struct hr_web_file {
    const char *name; /* "index.html", "vendor/stomp.umd.min.js" */
    const unsigned char *data;
    size_t len;
    const char *etag; /* quoted, from the content's SHA-1 */
} hr_web_file_t;

/* An npm bundle served as /vendor/<name> from web/<path> (node_modules). */
typedef struct hr_web_vendor {
    const char *name;
    const char *path;
} hr_web_vendor_t;

extern const hr_web_file_t hr_web_embedded[];
extern const hr_web_vendor_t hr_web_vendor[];

/* Registers the page routes (/, /admin, /herald.js, /static/, /vendor/) and the admin
 * feed on s, before start; a no-op unless s->web. 0, or a negative error. */
int hr_web_register(hr_server_t *s);

/* The file an HTTP path names, as a name in hr_web_embedded (below web/): 0 and the name
 * in out, HR_ENOENT (no such page), or HR_EINVAL (a name that tries to leave web/: '..',
 * '/', '\\', '%', control bytes, a leading dot). Pure; for the handler and its tests. */
int hr_web_resolve(const char *path, size_t len, char *out, size_t cap);

/* The Content-Type of a file name, by extension ("application/octet-stream" if unknown). */
const char *hr_web_content_type(const char *name);

/* admin.c: registers /admin/ws and its once-a-second stats timer. 0 or an error. */
int hr_admin_register(hr_server_t *s);

/* admin.c: the --api-key check of the admin feed's handshake: 0 when no key is set or
 * the request carries it (Sec-WebSocket-Protocol "herald-key.<key>", or ?key=, percent-
 * encoded), else 401. */
int hr_admin_check_key(const char *key, const hr_http_request_t *req);

#endif
