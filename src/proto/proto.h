#ifndef HR_PROTO_PROTO_H
#define HR_PROTO_PROTO_H

/* The built-in protocols, each a set of route callbacks on the public interface. */

#include "herald.h"

/* /ws: every message back to its sender unchanged. */
extern const hr_route_callbacks_t hr_proto_echo;
/* /broadcast: every message to every connection on the route, sender included. */
extern const hr_route_callbacks_t hr_proto_broadcast;

#endif
