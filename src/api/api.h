#ifndef HR_API_API_H
#define HR_API_API_H

/* Plain HTTP endpoints of `herald serve` (health now; the backend API with the channels
 * work), as handlers for hr_server__add_http. */

#include "server/server.h"

/* GET /healthz: 200 {"status":"ok"} while the server runs; other methods 405. */
void hr_api_healthz(hr_http_ctx_t *x, void *data);

/* GET /readyz: 200 {"status":"ready"} while the server accepts and every worker runs;
 * 503 {"status":"stopping"} once a shutdown has started. Other methods 405. */
void hr_api_readyz(hr_http_ctx_t *x, void *data);

/* Everything under /api/: the backend API (docs/api.md). */
void hr_api_handle(hr_http_ctx_t *x, void *data);

/* GET /metrics: Prometheus text format, a sample per worker thread. */
void hr_api_metrics(hr_http_ctx_t *x, void *data);

#endif
