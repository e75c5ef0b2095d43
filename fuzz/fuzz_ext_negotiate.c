/* Sec-WebSocket-Extensions negotiation: arbitrary header text goes through the server side
 * with several configurations. An accepted offer must yield in-range parameters and a
 * response that our own client side accepts with the same configuration and reads back
 * to the same agreement; the text is also fed to the client-side parser directly. */
#include <stdlib.h>
#include <string.h>

#include "herald/error.h"
#include "ws/deflate.h"

static void check(int ok)
{
    if (!ok)
        abort();
}

static bool in_range(uint8_t bits)
{
    return bits >= 8 && bits <= 15;
}

static void negotiate(const char *text, size_t size, const hr_deflate_config_t *cfg)
{
    hr_deflate_params_t p, cp;
    char resp[160];
    int rc = hr_deflate_negotiate(text, size, cfg, &p, resp, sizeof(resp));
    check(rc == 0 || rc == 1);
    if (rc == 1) {
        check(strlen(resp) < sizeof(resp));
        check(in_range(p.server_max_window_bits) && in_range(p.client_max_window_bits));
        check(p.server_max_window_bits <= cfg->max_window_bits);
        check(p.client_max_window_bits <= 15);
        if (!cfg->context_takeover)
            check(p.server_no_context_takeover && p.client_no_context_takeover);
        check(hr_deflate_accept_response(resp, strlen(resp), cfg, &cp) == 0);
        check(cp.server_no_context_takeover == p.server_no_context_takeover);
        check(cp.client_no_context_takeover == p.client_no_context_takeover);
        check(cp.client_max_window_bits == p.client_max_window_bits);
        /* The client may assume a larger server window than we use, never a smaller. */
        check(cp.server_max_window_bits >= p.server_max_window_bits);
    }
    /* A short response buffer fails cleanly. */
    rc = hr_deflate_negotiate(text, size, cfg, &p, resp, 24);
    check(rc == 0 || rc == 1 || rc == HR_EINVAL);
    if (rc == 1)
        check(strlen(resp) < 24);
    rc = hr_deflate_accept_response(text, size, cfg, &cp);
    check(rc == 0 || rc == HR_EPROTO);
    if (rc == 0)
        check(in_range(cp.server_max_window_bits) && in_range(cp.client_max_window_bits));
}

/* No header declares it: libFuzzer (or replay.c) calls it by name. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The parser takes a pointer and a length; a copy makes overreads visible to ASan. */
    char *text = malloc(size ? size : 1);
    if (!text)
        return 0;
    if (size)
        memcpy(text, data, size);
    static const struct {
        bool ctx;
        uint8_t bits;
    } cfgs[] = {{false, 15}, {true, 15}, {true, 10}, {false, 9}};
    for (size_t i = 0; i < sizeof(cfgs) / sizeof(cfgs[0]); i++) {
        hr_deflate_config_t cfg;
        hr_deflate_config_default(&cfg);
        cfg.context_takeover = cfgs[i].ctx;
        cfg.max_window_bits = cfgs[i].bits;
        negotiate(text, size, &cfg);
    }
    free(text);
    return 0;
}
