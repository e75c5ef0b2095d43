/* The echo protocol: the smallest route, and the reference example of one. A text
 * message comes back as text, binary as binary; hr_conn_send copies the payload once
 * into the reply frame. */
#include "proto/proto.h"

static void on_message(hr_conn_t *c, const uint8_t *data, size_t len, bool binary)
{
    hr_conn_send(c, data, len, binary);
}

const hr_route_callbacks_t hr_proto_echo = {.on_message = on_message};
