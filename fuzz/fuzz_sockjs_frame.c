/* Fuzz target for the SockJS codec (src/proto/sockjs_frame.c). The input is decoded as
 * a client payload (array, and lone string allowed); every decoded string is valid
 * UTF-8 and, quoted again as a server frame, decodes back to the same bytes. The input
 * itself, quoted, must decode to one string that equals it when it is valid UTF-8, and
 * the quoted form is printable ASCII or kept UTF-8, never a raw control byte. As an
 * EventSource event it percent-decodes back to itself. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "herald/error.h"
#include "proto/sockjs_frame.h"
#include "ws/utf8.h"

static void check_round_trip(const uint8_t *s, size_t n)
{
    hr_buf_t q, back;
    hr_buf_init(&q);
    hr_buf_init(&back);
    if (hr_sockjs_quote(&q, s, n) != 0)
        abort();
    for (size_t i = 0; i < q.len; i++)
        if (q.data[i] < 0x20 || q.data[i] == 0x7f)
            abort();
    ssize_t r = hr_sockjs_decode(q.data, q.len, true, &back);
    if (r != 1)
        abort();
    size_t off = 0;
    hr_slice_t m;
    if (!hr_sockjs_next(&back, &off, &m))
        abort();
    if (hr_utf8_valid(s, n) && (m.len != n || (n && memcmp(m.ptr, s, n) != 0)))
        abort();
    if (!hr_utf8_valid(m.ptr, m.len))
        abort();
    hr_buf_deinit(&q);
    hr_buf_deinit(&back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hr_buf_t out;
    hr_buf_init(&out);
    ssize_t n = hr_sockjs_decode(data, size, true, &out);
    if (n >= 0) {
        size_t off = 0;
        hr_slice_t m;
        ssize_t seen = 0;
        while (hr_sockjs_next(&out, &off, &m)) {
            if (!hr_utf8_valid(m.ptr, m.len))
                abort();
            check_round_trip(m.ptr, m.len);
            seen++;
        }
        if (seen != n)
            abort();
    } else if (n != HR_EAGAIN && n != HR_EPROTO) {
        abort();
    }
    hr_buf_deinit(&out);
    check_round_trip(data, size);
    /* An event carries no bare '%', CR, LF or NUL, and percent-decodes to the input. */
    hr_buf_t ev;
    hr_buf_init(&ev);
    if (hr_sockjs_encode_event(&ev, data, size) != 0 || ev.len < 10 ||
        memcmp(ev.data, "data: ", 6) != 0 || memcmp(ev.data + ev.len - 4, "\r\n\r\n", 4) != 0)
        abort();
    size_t k = 0;
    for (size_t i = 6; i < ev.len - 4; i++, k++) {
        uint8_t c = ev.data[i];
        if (c == '\r' || c == '\n' || c == 0)
            abort();
        if (c == '%') {
            if (i + 2 >= ev.len - 4)
                abort();
            unsigned v = 0;
            for (int j = 1; j <= 2; j++) {
                uint8_t h = ev.data[i + (size_t)j];
                v = v * 16 + (unsigned)(h <= '9' ? h - '0' : h - 'a' + 10);
            }
            c = (uint8_t)v;
            i += 2;
        }
        if (k >= size || c != data[k])
            abort();
    }
    if (k != size)
        abort();
    hr_buf_deinit(&ev);
    return 0;
}
