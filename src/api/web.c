/* The web pages (docs/web.md): GET and HEAD of a fixed set of paths, from the copies
 * cmake/HeraldEmbed.cmake embedded at build time or, with --web-dir, from disk.
 *
 * Routes are exact ("/", "/admin", "/herald.js") or narrow prefixes ("/static/",
 * "/vendor/"), never a catch-all "/": plain HTTP routes are matched before WebSocket
 * routes (session.c), so a catch-all would shadow /ws, /pubsub and the rest. A name
 * below a prefix is one path segment of [A-Za-z0-9._-] without a leading dot, so a
 * request cannot leave web/ (no '..', '/', '%', '\\'); anything else is refused with 400.
 * Embedded files carry an ETag from their SHA-1, disk files one from size and mtime;
 * If-None-Match answers 304. Every answer says Cache-Control: no-cache (revalidate), so
 * a rebuilt or edited page shows on the next load. Reading from disk blocks the worker
 * for the read: --web-dir is for developing the pages, not for serving traffic. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/web.h"
#include "base/alloc.h"
#include "base/buf.h"
#include "base/log.h"
#include "herald/error.h"

#define MAX_NAME 128
#define MAX_DISK_FILE (16u << 20)
#define JSON_TYPE "application/json"
/* Pages only talk to their own origin, except the raw console (any ws:// URL). */
#define HTML_HEADERS                                                                               \
    "Content-Security-Policy: default-src 'self'; connect-src 'self' ws: wss: http: https:; "      \
    "img-src 'self' data:; object-src 'none'; frame-ancestors 'none'; base-uri 'none'\r\n"         \
    "Referrer-Policy: no-referrer\r\n"

static const struct {
    const char *ext, *type;
} types[] = {
    {"html", "text/html; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"ico", "image/x-icon"},
    {"txt", "text/plain; charset=utf-8"},
};

const char *hr_web_content_type(const char *name)
{
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(dot + 1, types[i].ext) == 0)
            return types[i].type;
    return "application/octet-stream";
}

/* One path segment that stays inside web/: 0, HR_EINVAL, or HR_ENOENT (too long). */
static int check_segment(const char *s, size_t n)
{
    if (n == 0 || s[0] == '.')
        return HR_EINVAL;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
        if (!ok || (ch == '.' && i + 1 < n && s[i + 1] == '.'))
            return HR_EINVAL;
    }
    return n < MAX_NAME - 8 ? 0 : HR_ENOENT;
}

int hr_web_resolve(const char *path, size_t len, char *out, size_t cap)
{
    static const struct {
        const char *path, *name;
    } exact[] = {{"/", "index.html"}, {"/admin", "admin.html"}, {"/herald.js", "herald.js"}};
    for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++)
        if (strlen(exact[i].path) == len && memcmp(path, exact[i].path, len) == 0)
            return snprintf(out, cap, "%s", exact[i].name) < (int)cap ? 0 : HR_ENOENT;
    const char *prefix = NULL;
    if (len >= 8 && memcmp(path, "/static/", 8) == 0)
        prefix = "";
    else if (len >= 8 && memcmp(path, "/vendor/", 8) == 0)
        prefix = "vendor/";
    if (!prefix)
        return HR_ENOENT;
    int rc = check_segment(path + 8, len - 8);
    if (rc)
        return rc;
    if ((size_t)snprintf(out, cap, "%s%.*s", prefix, (int)(len - 8), path + 8) >= cap)
        return HR_ENOENT;
    /* /static/ serves page assets only: not package.json, not a stray editor file. */
    if (!*prefix && strcmp(hr_web_content_type(out), "application/octet-stream") == 0)
        return HR_ENOENT;
    return 0;
}

static void fail(hr_http_ctx_t *x, int status, const char *code, const char *message,
                 const char *extra)
{
    hr_buf_t b;
    hr_buf_init(&b);
    if (hr_buf_appendf(&b, "{\"type\":\"error\",\"code\":\"%s\",\"message\":\"%s\"}", code,
                       message) == 0)
        hr_http_reply(x, status, JSON_TYPE, b.data, b.len, extra);
    else
        hr_http_reply(x, 500, NULL, "out of memory\n", 14, NULL);
    hr_buf_deinit(&b);
}

/* If-None-Match holds etag (or "*"): a weak comparison, RFC 9110 §13.1.2. */
static bool not_modified(const hr_http_request_t *req, const char *etag)
{
    const hr_http_header_t *h = hr_http_find_header(req, "If-None-Match");
    if (!h)
        return false;
    size_t el = strlen(etag);
    const char *p = h->value, *end = h->value + h->value_len;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == ',' || *p == '\t'))
            p++;
        const char *q = p;
        while (q < end && *q != ',')
            q++;
        const char *e = q;
        while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (e - p >= 2 && p[0] == 'W' && p[1] == '/')
            p += 2;
        if ((e - p == 1 && *p == '*') || ((size_t)(e - p) == el && memcmp(p, etag, el) == 0))
            return true;
        p = q;
    }
    return false;
}

/* Reads web_dir/rel into *buf: 0, HR_ENOENT, HR_EINVAL (not a regular file, too large),
 * HR_ENOMEM or -errno. The ETag is made of size and modification time. */
static int read_disk(const char *dir, const char *rel, hr_buf_t *buf, char *etag, size_t ecap)
{
    char path[4096];
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, rel) >= sizeof(path))
        return HR_ENOENT;
    int fd;
    while ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 && errno == EINTR)
        ;
    if (fd < 0)
        return errno == ENOENT || errno == ENOTDIR ? HR_ENOENT : -errno;
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0) {
        rc = -errno;
        goto out;
    }
    if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > MAX_DISK_FILE) {
        rc = S_ISREG(st.st_mode) ? HR_EINVAL : HR_ENOENT;
        goto out;
    }
    snprintf(etag, ecap, "\"%llx-%llx\"", (unsigned long long)st.st_size,
             (unsigned long long)st.st_mtim.tv_sec * 1000000000ull +
                 (unsigned long long)st.st_mtim.tv_nsec);
    if (hr_buf_reserve(buf, (size_t)st.st_size + 1) != 0) {
        rc = HR_ENOMEM;
        goto out;
    }
    while (buf->len < (size_t)st.st_size) {
        ssize_t n = read(fd, buf->data + buf->len, (size_t)st.st_size - buf->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? -errno : 0;
            break; /* shrank while read: serve what there is */
        }
        buf->len += (size_t)n;
    }
out:
    close(fd);
    return rc;
}

static const char *disk_path(const char *name)
{
    if (strncmp(name, "vendor/", 7) != 0)
        return name;
    for (const hr_web_vendor_t *v = hr_web_vendor; v->name; v++)
        if (strcmp(v->name, name + 7) == 0)
            return v->path;
    return NULL;
}

static void serve_file(hr_http_ctx_t *x, void *data)
{
    (void)data;
    const hr_http_request_t *r = x->req;
    bool get = r->method_len == 3 && memcmp(r->method, "GET", 3) == 0;
    bool head = r->method_len == 4 && memcmp(r->method, "HEAD", 4) == 0;
    if (!get && !head) {
        fail(x, 405, "method_not_allowed", "use GET or HEAD", "Allow: GET, HEAD\r\n");
        return;
    }
    char name[MAX_NAME];
    int rc = hr_web_resolve(x->path, x->path_len, name, sizeof(name));
    if (rc == HR_EINVAL) {
        fail(x, 400, "bad_request", "invalid file name", NULL);
        return;
    }
    const hr_server_t *srv = conn_shard(x->c)->srv;
    const unsigned char *body = NULL;
    size_t len = 0;
    char etag[64] = "";
    hr_buf_t disk;
    hr_buf_init(&disk);
    if (rc == 0 && srv->web_dir) {
        const char *rel = disk_path(name);
        rc = rel ? read_disk(srv->web_dir, rel, &disk, etag, sizeof(etag)) : HR_ENOENT;
        body = disk.data;
        len = disk.len;
        if (rc && rc != HR_ENOENT) {
            fail(x, 500, "internal", "cannot read the file", NULL);
            goto out;
        }
    } else if (rc == 0) {
        rc = HR_ENOENT;
        for (const hr_web_file_t *f = hr_web_embedded; f->name; f++)
            if (strcmp(f->name, name) == 0) {
                body = f->data;
                len = f->len;
                snprintf(etag, sizeof(etag), "%s", f->etag);
                rc = 0;
                break;
            }
    }
    if (rc) {
        fail(x, 404, "not_found", "no such page", NULL);
        goto out;
    }
    const char *type = hr_web_content_type(name);
    char headers[1024];
    snprintf(headers, sizeof(headers),
             "ETag: %s\r\nCache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\n%s", etag,
             strncmp(type, "text/html", 9) == 0 ? HTML_HEADERS : "");
    if (not_modified(r, etag))
        hr_http_reply(x, 304, type, "", 0, headers);
    else
        hr_http_reply(x, 200, type, body ? (const void *)body : "", len, headers);
out:
    hr_buf_deinit(&disk);
}

int hr_web_register(hr_server_t *s)
{
    if (!s->web)
        return 0;
    struct stat st;
    if (s->web_dir && (stat(s->web_dir, &st) != 0 || !S_ISDIR(st.st_mode)))
        hr_log_warn("--web-dir %s is not a directory: every page will be 404", s->web_dir);
    static const struct {
        const char *path;
        bool prefix;
    } routes[] = {{"/", false},
                  {"/admin", false},
                  {"/herald.js", false},
                  {"/static/", true},
                  {"/vendor/", true}};
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        int rc = hr_server__add_http(s, routes[i].path, routes[i].prefix, serve_file, NULL);
        if (rc)
            return rc;
    }
    return hr_admin_register(s);
}
