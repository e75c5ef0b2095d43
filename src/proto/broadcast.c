/* The broadcast protocol: each message goes to every connection on the same route, on
 * every worker thread, sender included. The frame is serialized once
 * (hr_server_broadcast) and shared by reference among all recipients. */
#include "base/log.h"
#include "proto/proto.h"

static void on_message(hr_conn_t *c, const uint8_t *data, size_t len, bool binary)
{
    int rc = hr_server_broadcast(hr_conn_server(c), hr_conn_route(c), data, len, binary);
    if (rc)
        hr_log_warn("broadcast from conn %llu failed: %s", (unsigned long long)hr_conn_id(c),
                    hr_strerror(rc));
}

const hr_route_callbacks_t hr_proto_broadcast = {.on_message = on_message};
