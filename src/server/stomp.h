#ifndef HR_SERVER_STOMP_H
#define HR_SERVER_STOMP_H

/* STOMP on the broker (docs/stomp.md). stomp.c is the session: frames in, frames out,
 * subscriptions, acknowledgements, transactions, heart-beats, /app dispatch.
 * stomp_broker.c routes messages to destinations: /topic/ to channels (channels.c),
 * /queue/ to queues kept on the queue's home shard, /user/ to the sessions of a user on
 * every shard. */

#include "herald/stomp.h"
#include "proto/stomp_frame.h"
#include "server/channels.h"

struct hr_http_client;

/* A message for queues and user destinations: headers (content-type and the sender's
 * own) and body in one refcounted block, shared by every shard that delivers it. */
typedef struct hr_smsg {
    atomic_uint refs;
    size_t nheaders;
    hr_stomp_header_t *headers; /* slices into data */
    hr_slice_t body;
    uint8_t data[];
} hr_smsg_t;

/* Copies the headers that travel with a message (all but those STOMP or Herald set:
 * destination, receipt, transaction, content-length, ...) and the body. */
hr_smsg_t *hr_smsg_create(const hr_stomp_header_t *h, size_t n, const void *body, size_t len);
hr_smsg_t *hr_smsg_ref(hr_smsg_t *m);
void hr_smsg_unref(hr_smsg_t *m);

/* Per-shard state (stomp_broker.c). */
int hr_stomp_shard_init(hr_shard_t *sh);
void hr_stomp_shard_deinit(hr_shard_t *sh);
/* The shard's HTTP client for webhooks, made on first use (NULL on failure). */
struct hr_http_client *hr_stomp_http(hr_shard_t *sh);
/* The shard's table of user-destination subscriptions ("USER\n/REST"). */
hr_topics_t *hr_stomp_users(hr_shard_t *sh);

/* Route results arrive on the calling shard: err 0, or an error with a message. */
typedef void (*hr_stomp_done_fn)(void *ctx, int err, const char *errmsg);

/* Routes a message to dest from shard sh. A client connection (NULL: the server itself,
 * the HTTP API, a backend's answer) gets its publish permissions applied to /topic/
 * (hr_auth_may_publish: publish=off, access, its channels claim). content_type may be
 * NULL. Returns 0 (done runs later on sh, if not NULL) or a negative error with *errmsg
 * (done not called). */
int hr_stomp_route(hr_shard_t *sh, const char *dest, size_t dlen, const char *ctype,
                   size_t ctype_len, const hr_stomp_header_t *extra, size_t nextra,
                   const void *body, size_t blen, const hr_conn_t *client, hr_stomp_done_fn done,
                   void *ctx, const char **errmsg);

/* The string members of a JSON object (jansson json_t *, or NULL) as headers, at most cap;
 * the slices point into the object. Returns the count. */
size_t hr_stomp_headers_from_json(const void *obj, hr_stomp_header_t *h, size_t cap);

/* Channel data (a JSON value) <-> STOMP body, per docs/stomp.md. */
int hr_stomp_body_to_json(const void *body, size_t len, const char *ctype, size_t ctype_len,
                          hr_buf_t *out, const char **errmsg);

/* --- queues (stomp_broker.c), called by the session --- */

/* Identifies a queue consumer across shards. */
typedef struct hr_qconsumer {
    hr_shard_t *shard;
    hr_conn_t *c;
    uint32_t conn_seq;
    uint64_t cid;
    bool auto_ack;
} hr_qconsumer_t;

int hr_stomp_queue_subscribe(hr_shard_t *sh, const char *name, size_t len, const hr_qconsumer_t *q);
/* The consumer left: its unacknowledged messages return to the queue. */
void hr_stomp_queue_unsubscribe(hr_shard_t *sh, const char *name, size_t len, uint64_t cid);
/* Acknowledge (ack) or return (nack, to another consumer if any) messages by seq. */
void hr_stomp_queue_settle(hr_shard_t *sh, const char *name, size_t len, uint64_t cid,
                           const uint64_t *seqs, size_t n, bool ack);

/* --- the session side (stomp.c), called by the broker on the consumer's shard --- */

/* A queue message for consumer cid of connection c (which may be gone: returns false,
 * and the broker puts the message back). */
bool hr_stomp_session_queue_deliver(hr_conn_t *c, uint32_t conn_seq, uint64_t cid,
                                    const char *qname, size_t qlen, uint64_t seq,
                                    const hr_smsg_t *m, bool redelivered);
/* A user-destination message to every local subscription of key "USER\n/REST". */
void hr_stomp_session_user_deliver(hr_shard_t *sh, const char *key, size_t klen, const char *msgid,
                                   const hr_smsg_t *m);
/* A channel message to a STOMP subscription (sub->kind == HR_SUB_STOMP). */
void hr_stomp_session_channel_deliver(hr_sub_t *sub, const hr_chan_msg_t *m,
                                      hr_slow_policy_t policy);

/* The connection's token expired (session.c): ERROR "token expired", close 4001. */
void hr_stomp_session_expired(hr_conn_t *c);

/* The route callbacks of /stomp. */
extern const hr_route_callbacks_t hr_stomp_route_cb;

#endif
