#ifndef HERALD_WS_H
#define HERALD_WS_H

/* WebSocket constants: opcodes (RFC 6455 §5.2) and close codes (§7.4). */

#define HR_WS_OP_CONT 0x0
#define HR_WS_OP_TEXT 0x1
#define HR_WS_OP_BINARY 0x2
#define HR_WS_OP_CLOSE 0x8
#define HR_WS_OP_PING 0x9
#define HR_WS_OP_PONG 0xA

#define HR_WS_CLOSE_CODES(X)                                                                       \
    X(NORMAL, 1000)                                                                                \
    X(GOING_AWAY, 1001)                                                                            \
    X(PROTOCOL_ERROR, 1002)                                                                        \
    X(UNSUPPORTED_DATA, 1003)                                                                      \
    X(NO_STATUS, 1005)                                                                             \
    X(ABNORMAL, 1006)                                                                              \
    X(INVALID_PAYLOAD, 1007)                                                                       \
    X(POLICY_VIOLATION, 1008)                                                                      \
    X(TOO_BIG, 1009)                                                                               \
    X(MANDATORY_EXTENSION, 1010)                                                                   \
    X(INTERNAL_ERROR, 1011)                                                                        \
    X(SERVICE_RESTART, 1012)                                                                       \
    X(TRY_AGAIN_LATER, 1013)

enum hr_ws_close_code {
#define HR_WS_CLOSE_ENUM_(name, value) HR_WS_CLOSE_##name = value,
    HR_WS_CLOSE_CODES(HR_WS_CLOSE_ENUM_)
#undef HR_WS_CLOSE_ENUM_
};

#endif
