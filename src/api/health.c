/* /healthz and /readyz for load balancers and orchestrators.
 *
 * /healthz is liveness: it answers from the worker that took the connection, so a 200
 * says that worker's loop is turning; it stays 200 during a drain (restarting a process
 * that is shutting down on its own helps nobody).
 * /readyz is readiness: 200 while the server accepts and every worker runs, 503 from the
 * moment a shutdown starts (SIGTERM, hr_server_stop), so a load balancer takes the node
 * out of rotation while its clients drain. */
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "cluster/cluster.h"

/* GET or HEAD; otherwise answers 405 and returns false. */
static bool get_or_head(hr_http_ctx_t *x, bool *head)
{
    const hr_http_request_t *r = x->req;
    bool get = r->method_len == 3 && memcmp(r->method, "GET", 3) == 0;
    *head = r->method_len == 4 && memcmp(r->method, "HEAD", 4) == 0;
    if (get || *head)
        return true;
    static const char msg[] = "{\"error\":\"method_not_allowed\",\"message\":\"use GET\"}";
    hr_http_reply(x, 405, "application/json", msg, sizeof(msg) - 1, "Allow: GET, HEAD\r\n");
    return false;
}

void hr_api_healthz(hr_http_ctx_t *x, void *data)
{
    (void)data;
    bool head;
    if (!get_or_head(x, &head))
        return;
    static const char ok[] = "{\"status\":\"ok\"}";
    const hr_server_t *srv = conn_shard(x->c)->srv;
    if (hr_cluster_enabled(srv)) {
        /* --redis: still 200 while Redis is down (this node delivers locally and
         * reconnects by itself); the body says so for monitoring. */
        char b[128];
        int n = snprintf(b, sizeof(b), "{\"status\":\"ok\",\"redis\":\"%s\",\"node\":\"%s\"}",
                         hr_cluster_up(srv) ? "up" : "down", hr_cluster_node_id(srv));
        hr_http_reply(x, 200, "application/json", b, head ? 0 : (size_t)n, NULL);
        return;
    }
    hr_http_reply(x, 200, "application/json", ok, head ? 0 : sizeof(ok) - 1, NULL);
}

/* Reads only atomics of other shards (stop_requested, exited) and this shard's own
 * stopping flag: no lock, no cross-thread post. */
static bool ready(const hr_shard_t *self)
{
    const hr_server_t *srv = self->srv;
    /* Stopping, or frozen while a new process takes over: out of rotation. */
    if (atomic_load(&srv->stop_requested) || self->stopping || atomic_load(&srv->frozen))
        return false;
    for (int i = 0; i < srv->nshards; i++)
        if (atomic_load(&srv->shards[i].exited))
            return false;
    return true;
}

void hr_api_readyz(hr_http_ctx_t *x, void *data)
{
    (void)data;
    bool head;
    if (!get_or_head(x, &head))
        return;
    static const char yes[] = "{\"status\":\"ready\"}";
    static const char no[] = "{\"status\":\"stopping\"}";
    /* Connection: close on 503: a keep-alive probe must not pin the draining node. */
    if (ready(conn_shard(x->c)))
        hr_http_reply(x, 200, "application/json", yes, head ? 0 : sizeof(yes) - 1, NULL);
    else {
        x->keep_alive = false;
        hr_http_reply(x, 503, "application/json", no, head ? 0 : sizeof(no) - 1, NULL);
    }
}
