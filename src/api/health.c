/* /healthz: liveness for load balancers and orchestrators. It answers from the worker
 * that took the connection, so a 200 also says that worker's loop is turning. */
#include <string.h>

#include "api/api.h"

void hr_api_healthz(hr_http_ctx_t *x, void *data)
{
    (void)data;
    const hr_http_request_t *r = x->req;
    bool get = r->method_len == 3 && memcmp(r->method, "GET", 3) == 0;
    bool head = r->method_len == 4 && memcmp(r->method, "HEAD", 4) == 0;
    if (!get && !head) {
        static const char msg[] = "{\"error\":\"method_not_allowed\",\"message\":\"use GET\"}";
        hr_http_reply(x, 405, "application/json", msg, sizeof(msg) - 1, "Allow: GET, HEAD\r\n");
        return;
    }
    static const char ok[] = "{\"status\":\"ok\"}";
    hr_http_reply(x, 200, "application/json", ok, head ? 0 : sizeof(ok) - 1, NULL);
}
