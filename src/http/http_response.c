/* Response heads for the handshake: the 101 of RFC 6455 §4.2.2 and short error
 * responses (RFC 9110 §15 status codes, RFC 9112 §9.6 Connection: close, since after a
 * refused upgrade the connection's bytes can no longer be trusted to frame a second
 * request). Each writer appends all of its output or none of it. It does not write
 * bodies beyond the one-line reason, nor chunked encoding, nor Date headers. */
#include <string.h>

#include "http/http_upgrade.h"
#include "herald/error.h"

/* Puts out->len back on failure so that a half-written head never reaches a socket. */
static int undo(hr_buf_t *out, size_t mark, int rc)
{
    if (rc)
        out->len = mark;
    return rc;
}

int hr_http_write_101(hr_buf_t *out, const char accept[29], const char *protocol,
                      const char *extensions)
{
    size_t mark = out->len;
    int rc = hr_buf_appendf(out,
                            "HTTP/1.1 101 Switching Protocols\r\n"
                            "Upgrade: websocket\r\n"
                            "Connection: Upgrade\r\n"
                            "Sec-WebSocket-Accept: %s\r\n",
                            accept);
    if (!rc && protocol)
        rc = hr_buf_appendf(out, "Sec-WebSocket-Protocol: %s\r\n", protocol);
    if (!rc && extensions)
        rc = hr_buf_appendf(out, "Sec-WebSocket-Extensions: %s\r\n", extensions);
    if (!rc)
        rc = hr_buf_append(out, "\r\n", 2);
    return undo(out, mark, rc);
}

int hr_http_write_error(hr_buf_t *out, int status, const char *reason, const char *extra_headers)
{
    size_t mark = out->len;
    if (!reason)
        reason = hr_http_status_text(status);
    int rc = hr_buf_appendf(out,
                            "HTTP/1.1 %d %s\r\n"
                            "Content-Type: text/plain; charset=utf-8\r\n"
                            "Content-Length: %zu\r\n"
                            "Connection: close\r\n"
                            "%s\r\n"
                            "%s\n",
                            status, hr_http_status_text(status), strlen(reason) + 1,
                            extra_headers ? extra_headers : "", reason);
    return undo(out, mark, rc);
}

int hr_http_write_response(hr_buf_t *out, int status, const char *content_type, const void *body,
                           size_t len, bool keep_alive, const char *extra_headers)
{
    size_t mark = out->len;
    int rc =
        hr_buf_appendf(out,
                       "HTTP/1.1 %d %s\r\n"
                       "Content-Type: %s\r\n"
                       "Content-Length: %zu\r\n"
                       "Connection: %s\r\n"
                       "%s\r\n",
                       status, hr_http_status_text(status),
                       content_type ? content_type : "text/plain; charset=utf-8", len,
                       keep_alive ? "keep-alive" : "close", extra_headers ? extra_headers : "");
    if (rc == 0)
        rc = hr_buf_append(out, body, len);
    return undo(out, mark, rc);
}

const char *hr_http_status_text(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}
