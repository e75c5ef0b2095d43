/* permessage-deflate streams: arbitrary bytes are inflated with a 1 MiB cap in both
 * context modes (only 0, HR_EPROTO or HR_EMSGSIZE may come back, output never beyond the
 * cap), then the input is compressed and must inflate back to itself, as one message and
 * as two messages sharing a context. The first byte picks the window and level. */
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "herald/error.h"
#include "ws/deflate.h"

#define CAP (1u << 20)

static void check(int ok)
{
    if (!ok)
        abort();
}

static void inflate_any(const uint8_t *data, size_t size, int bits, bool reset)
{
    hr_deflate_stream_t s;
    hr_buf_t out;
    memset(&s, 0, sizeof(s));
    hr_buf_init(&out);
    /* Twice through one stream: the second pass runs on whatever context the first left. */
    for (int pass = 0; pass < 2; pass++) {
        out.len = 0;
        int rc = hr_deflate_inflate(&s, bits, reset, data, size, &out, CAP);
        check(rc == 0 || rc == HR_EPROTO || rc == HR_EMSGSIZE);
        check(out.len <= CAP);
        if (rc)
            check(out.len == 0);
    }
    hr_deflate_stream_deinit(&s);
    hr_buf_deinit(&out);
}

static void roundtrip(const uint8_t *data, size_t size, int bits, int level, bool reset)
{
    hr_deflate_config_t cfg;
    hr_deflate_stream_t tx, rx;
    hr_buf_t z, back;
    hr_deflate_config_default(&cfg);
    cfg.level = level;
    memset(&tx, 0, sizeof(tx));
    memset(&rx, 0, sizeof(rx));
    hr_buf_init(&z);
    hr_buf_init(&back);
    size_t half = size / 2;
    const uint8_t *part[2] = {data, data + half};
    size_t len[2] = {half, size - half};
    for (int i = 0; i < 2; i++) {
        z.len = 0;
        back.len = 0;
        check(hr_deflate_compress(&tx, &cfg, bits, reset, part[i], len[i], &z) == 0);
        check(z.len > 0);
        check(hr_deflate_inflate(&rx, bits, reset, z.data, z.len, &back, len[i]) == 0);
        check(back.len == len[i]);
        check(len[i] == 0 || memcmp(back.data, part[i], len[i]) == 0);
    }
    hr_deflate_stream_deinit(&tx);
    hr_deflate_stream_deinit(&rx);
    hr_buf_deinit(&z);
    hr_buf_deinit(&back);
}

/* No header declares it: libFuzzer (or replay.c) calls it by name. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    int bits = 8 + (data[0] & 7);
    int level = (data[0] >> 3) % 10;
    data++;
    size--;
    inflate_any(data, size, bits, true);
    inflate_any(data, size, bits, false);
    roundtrip(data, size, bits < 9 ? 9 : bits, level, false);
    roundtrip(data, size, 15, level, true);
    return 0;
}
