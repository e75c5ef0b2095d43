#ifndef HR_NET_TLS_H
#define HR_NET_TLS_H

/* TLS (OpenSSL 3) for hr_sock, on the same loop and with the same corked writes.
 *
 * A sock becomes TLS with hr_sock_start_tls right after hr_sock_start (server) or in
 * on_connect (client); s->tls stays NULL for plain socks, whose path is unchanged.
 *   - Reads: the SSL object reads ciphertext from the fd itself (read-ahead) and
 *     decrypts into the thread's receive buffer; on_data is called as for plain socks.
 *   - Writes: at flush, the out queue's blocks are encrypted (small ones packed into
 *     records of up to 16 KiB) into the thread's ciphertext buffer, which goes out in
 *     one write per batch. Only what the socket did not take is kept per connection.
 *   - The handshake runs as input arrives; output queued meanwhile waits for it. Its
 *     time limit is the owner's sock timer (session.c: the handshake timeout).
 *   - Close: close_notify after the last queued byte, then the usual lingering close.
 * Per connection: the SSL object (SSL_MODE_RELEASE_BUFFERS: its buffers exist only
 * while a record is partly read or written) and a small struct. */

#include <stdbool.h>
#include <stddef.h>

#include "net/sock.h"

struct ssl_ctx_st; /* SSL_CTX: callers need no OpenSSL headers */
struct ssl_st;     /* SSL */

/* A server context from PEM files: the certificate chain and its private key. TLS 1.2
 * minimum, modern ciphers, ALPN http/1.1 (or none), session tickets, no
 * renegotiation. NULL with a message naming the file and the reason in err. */
struct ssl_ctx_st *hr_tls_server_ctx_create(const char *cert_file, const char *key_file, char *err,
                                            size_t errlen);
/* A client context: TLS 1.2 minimum; verifies the server against cafile (PEM), or the
 * system store when cafile is NULL, unless insecure. NULL with a message in err. */
struct ssl_ctx_st *hr_tls_client_ctx_create(bool insecure, const char *cafile, char *err,
                                            size_t errlen);
/* SSL_CTX_free (reference counted: SSL objects made from it keep it alive). */
void hr_tls_ctx_free(struct ssl_ctx_st *ctx);

/* Makes a started sock TLS. server_name NULL: the server side (waits for the client's
 * hello). Otherwise the client side, which sends its hello now: server_name is sent as
 * SNI (unless an IP address) and, when the context verifies, the certificate must
 * match it. 0, HR_ENOMEM or HR_EINVAL. */
int hr_sock_start_tls(hr_sock_t *s, struct ssl_ctx_st *ctx, const char *server_name);
/* True once the handshake has completed. */
bool hr_sock_tls_ready(const hr_sock_t *s);
/* The SSL object of a TLS sock (NULL for a plain one): for inspection (version, ALPN). */
struct ssl_st *hr_sock_tls_ssl(const hr_sock_t *s);
/* The reason of this thread's last TLS failure (valid in the on_eof it caused), e.g.
 * "certificate verify failed (self-signed certificate)". Never NULL. */
const char *hr_tls_last_error(void);

/* sock.c hooks (not for other callers). */
/* Input is readable (or may be buffered inside the SSL object): handshake, decrypt,
 * on_data. */
void hr_tls__read(hr_sock_t *s);
/* As hr_outq_flush for a TLS sock: 0 when everything (and close_notify when closing)
 * went out, HR_EAGAIN when the socket is full, or a negative error. */
int hr_tls__flush(hr_sock_t *s);
/* Frees the TLS state (the fd is being closed). */
void hr_tls__free(hr_sock_t *s);

#endif
