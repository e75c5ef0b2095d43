/* permessage-deflate (RFC 7692). Negotiation parses Sec-WebSocket-Extensions with the
 * RFC 6455 §9.1 grammar (implied OWS, token or quoted-string values, §7.1 "a quoted value
 * must be a token once unquoted") and answers the first acceptable offer (§5, §7.1). The
 * stream half compresses and decompresses one whole message at a time with raw zlib
 * streams (§7.2.1, §7.2.2). zlib's own state is allocated through hr_malloc so that tests
 * can fail any allocation. Not done here: framing and RSV1 handling (ws_conn), choosing
 * when a message is worth compressing, and windowBits 8 compression, which zlib cannot do
 * for raw streams (a peer that asks for 8 gets uncompressed messages, §6). */
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "herald/error.h"
#include "ws/deflate.h"

#define EXT_NAME "permessage-deflate"
/* More than this many parameters in one offer means a duplicate or an unknown one. */
#define MAX_PARAMS 8
/* The longest value we ever need is "15"; longer ones only have to be recognised. */
#define MAX_VALUE 16

void hr_deflate_config_default(hr_deflate_config_t *cfg)
{
    cfg->enabled = true;
    cfg->context_takeover = false;
    cfg->max_window_bits = 15;
    cfg->level = 6;
    cfg->mem_level = 8;
}

/* ---------------------------------------------------------------------------------------
 * Header grammar (RFC 6455 §9.1)
 * ------------------------------------------------------------------------------------- */

typedef struct cursor {
    const char *p;
    const char *end;
} cursor_t;

typedef struct ext_param {
    const char *name;
    size_t name_len;
    bool has_value;
    bool value_is_token; /* after unquoting: non-empty and only tchars */
    size_t value_len;
    char value[MAX_VALUE];
} ext_param_t;

typedef struct ext {
    const char *name;
    size_t name_len;
    bool valid; /* syntax was fine and the params fit in params[] */
    size_t nparams;
    ext_param_t params[MAX_PARAMS];
} ext_t;

/* What a permessage-deflate offer or response asked for; 0 bits means "absent". */
typedef struct pmd {
    bool snct;
    bool cnct;
    uint8_t smwb;
    bool cmwb_present;
    uint8_t cmwb;
} pmd_t;

static bool is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static void skip_ows(cursor_t *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
        c->p++;
}

static size_t scan_token(cursor_t *c)
{
    const char *start = c->p;
    while (c->p < c->end && is_tchar((unsigned char)*c->p))
        c->p++;
    return (size_t)(c->p - start);
}

/* Moves past the current list element after a syntax error, honouring quoted commas. */
static void skip_element(cursor_t *c)
{
    bool quoted = false;
    while (c->p < c->end) {
        char ch = *c->p++;
        if (quoted && ch == '\\' && c->p < c->end)
            c->p++;
        else if (ch == '"')
            quoted = !quoted;
        else if (!quoted && ch == ',')
            return;
    }
}

static void keep_value_char(ext_param_t *pm, unsigned char ch)
{
    if (!is_tchar(ch))
        pm->value_is_token = false;
    if (pm->value_len < MAX_VALUE)
        pm->value[pm->value_len] = (char)ch;
    else
        pm->value_is_token = false; /* too long to be any value we accept */
    pm->value_len++;
}

/* quoted-string = DQUOTE *( qdtext | quoted-pair ) DQUOTE; c->p is on the opening quote. */
static bool scan_quoted(cursor_t *c, ext_param_t *pm)
{
    c->p++;
    pm->value_is_token = true;
    while (c->p < c->end) {
        unsigned char ch = (unsigned char)*c->p++;
        if (ch == '"') {
            if (pm->value_len == 0)
                pm->value_is_token = false;
            return true;
        }
        if (ch == '\\') {
            if (c->p == c->end)
                return false;
            ch = (unsigned char)*c->p++;
        }
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return false;
        keep_value_char(pm, ch);
    }
    return false;
}

static bool scan_param(cursor_t *c, ext_param_t *pm)
{
    memset(pm, 0, sizeof(*pm));
    skip_ows(c);
    pm->name = c->p;
    pm->name_len = scan_token(c);
    if (pm->name_len == 0)
        return false;
    skip_ows(c);
    if (c->p == c->end || *c->p != '=')
        return true;
    c->p++;
    skip_ows(c);
    pm->has_value = true;
    if (c->p < c->end && *c->p == '"') {
        if (!scan_quoted(c, pm))
            return false;
    } else {
        const char *v = c->p;
        size_t n = scan_token(c);
        if (n == 0)
            return false;
        pm->value_is_token = true;
        for (size_t i = 0; i < n; i++)
            keep_value_char(pm, (unsigned char)v[i]);
    }
    skip_ows(c);
    return true;
}

/*
 * Reads the next extension of the list into *e. Returns false at the end of the list.
 * Empty list elements are skipped (RFC 7230 §7 asks recipients to tolerate them). A
 * syntax error leaves e->valid false and the cursor after the element's comma, so the
 * caller can decline that offer and go on with the next one.
 */
static bool next_ext(cursor_t *c, ext_t *e)
{
    for (;;) {
        skip_ows(c);
        if (c->p == c->end)
            return false;
        if (*c->p != ',')
            break;
        c->p++;
    }
    e->valid = false;
    e->nparams = 0;
    e->name = c->p;
    e->name_len = scan_token(c);
    if (e->name_len == 0)
        goto bad;
    skip_ows(c);
    while (c->p < c->end && *c->p == ';') {
        c->p++;
        ext_param_t scratch;
        ext_param_t *pm = e->nparams < MAX_PARAMS ? &e->params[e->nparams] : &scratch;
        if (!scan_param(c, pm))
            goto bad;
        e->nparams++;
    }
    if (c->p < c->end) {
        if (*c->p != ',')
            goto bad;
        c->p++;
    }
    e->valid = e->nparams <= MAX_PARAMS;
    return true;
bad:
    skip_element(c);
    return true;
}

static bool same(const char *s, size_t n, const char *lit)
{
    size_t m = strlen(lit);
    if (n != m)
        return false;
    for (size_t i = 0; i < n; i++) {
        char a = s[i];
        if (a >= 'A' && a <= 'Z')
            a = (char)(a - 'A' + 'a');
        if (a != lit[i])
            return false;
    }
    return true;
}

/* RFC 7692 §7.1.2: 8..15, decimal, no leading zero. Returns 0 when the value is bad. */
static uint8_t parse_bits(const ext_param_t *pm)
{
    if (!pm->has_value || !pm->value_is_token)
        return 0;
    const char *v = pm->value;
    if (pm->value_len == 1 && (v[0] == '8' || v[0] == '9'))
        return (uint8_t)(v[0] - '0');
    if (pm->value_len == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5')
        return (uint8_t)(10 + v[1] - '0');
    return 0;
}

/*
 * Reads the parameters of a permessage-deflate element. need_cmwb_value is true for a
 * response, where client_max_window_bits must carry a value (§7.1.2.2). Returns false
 * for an unknown or repeated parameter or a bad value.
 */
static bool read_pmd(const ext_t *e, bool need_cmwb_value, pmd_t *o)
{
    bool seen_smwb = false;
    memset(o, 0, sizeof(*o));
    if (!e->valid)
        return false;
    for (size_t i = 0; i < e->nparams; i++) {
        const ext_param_t *pm = &e->params[i];
        if (same(pm->name, pm->name_len, "server_no_context_takeover")) {
            if (o->snct || pm->has_value)
                return false;
            o->snct = true;
        } else if (same(pm->name, pm->name_len, "client_no_context_takeover")) {
            if (o->cnct || pm->has_value)
                return false;
            o->cnct = true;
        } else if (same(pm->name, pm->name_len, "server_max_window_bits")) {
            if (seen_smwb)
                return false;
            seen_smwb = true;
            o->smwb = parse_bits(pm);
            if (!o->smwb)
                return false;
        } else if (same(pm->name, pm->name_len, "client_max_window_bits")) {
            if (o->cmwb_present)
                return false;
            o->cmwb_present = true;
            if (pm->has_value || need_cmwb_value) {
                o->cmwb = parse_bits(pm);
                if (!o->cmwb)
                    return false;
            }
        } else {
            return false;
        }
    }
    return true;
}

static uint8_t our_max_bits(const hr_deflate_config_t *cfg)
{
    if (cfg->max_window_bits < 9)
        return 9;
    return cfg->max_window_bits > 15 ? 15 : cfg->max_window_bits;
}

static uint8_t min_bits(uint8_t a, uint8_t b)
{
    return a < b ? a : b;
}

/* Appends to out[*len..cap) keeping it NUL-terminated; false once it does not fit. */
static bool put(char *out, size_t cap, size_t *len, const char *s)
{
    size_t n = strlen(s);
    if (*len + n + 1 > cap)
        return false;
    memcpy(out + *len, s, n + 1);
    *len += n;
    return true;
}

static bool put_bits(char *out, size_t cap, size_t *len, const char *name, uint8_t bits)
{
    char tmp[48];
    if (bits)
        snprintf(tmp, sizeof(tmp), "; %s=%u", name, (unsigned)bits);
    else
        snprintf(tmp, sizeof(tmp), "; %s", name);
    return put(out, cap, len, tmp);
}

/* ---------------------------------------------------------------------------------------
 * Server side
 * ------------------------------------------------------------------------------------- */

static int answer(const pmd_t *o, const hr_deflate_config_t *cfg, hr_deflate_params_t *params,
                  char *resp, size_t resp_cap)
{
    uint8_t ours = our_max_bits(cfg);
    hr_deflate_params_t p;
    /* §7.1.1.1: a requested server_no_context_takeover must be echoed to be accepted. */
    p.server_no_context_takeover = o->snct || !cfg->context_takeover;
    /* §7.1.1.2: echoing the client's hint costs nothing and spares us its context. */
    p.client_no_context_takeover = o->cnct || !cfg->context_takeover;
    /* §7.1.2.1: a requested server window is answered with the same or a smaller one. */
    p.server_max_window_bits = min_bits(o->smwb ? o->smwb : 15, ours);
    /* §7.1.2.2: only a client that offered client_max_window_bits may be told a limit;
     * the smaller window also shrinks our inflate window when context is kept. */
    p.client_max_window_bits = o->cmwb_present ? min_bits(o->cmwb ? o->cmwb : 15, ours) : 15;

    size_t n = 0;
    if (resp_cap == 0)
        return HR_EINVAL;
    resp[0] = '\0';
    bool ok = put(resp, resp_cap, &n, EXT_NAME);
    if (ok && p.server_no_context_takeover)
        ok = put_bits(resp, resp_cap, &n, "server_no_context_takeover", 0);
    if (ok && p.client_no_context_takeover)
        ok = put_bits(resp, resp_cap, &n, "client_no_context_takeover", 0);
    if (ok && o->smwb)
        ok = put_bits(resp, resp_cap, &n, "server_max_window_bits", p.server_max_window_bits);
    if (ok && o->cmwb_present && p.client_max_window_bits < 15)
        ok = put_bits(resp, resp_cap, &n, "client_max_window_bits", p.client_max_window_bits);
    if (!ok) {
        resp[0] = '\0';
        return HR_EINVAL;
    }
    *params = p;
    return 1;
}

int hr_deflate_negotiate(const char *offers, size_t len, const hr_deflate_config_t *cfg,
                         hr_deflate_params_t *params, char *resp, size_t resp_cap)
{
    if (!cfg->enabled || !offers)
        return 0;
    cursor_t c = {offers, offers + len};
    ext_t e;
    while (next_ext(&c, &e)) {
        pmd_t o;
        if (!e.valid || !same(e.name, e.name_len, EXT_NAME))
            continue;
        if (!read_pmd(&e, false, &o))
            continue;
        return answer(&o, cfg, params, resp, resp_cap);
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * Client side
 * ------------------------------------------------------------------------------------- */

int hr_deflate_offer(const hr_deflate_config_t *cfg, char *out, size_t cap)
{
    uint8_t ours = our_max_bits(cfg);
    size_t n = 0;
    if (cap == 0)
        return HR_EINVAL;
    out[0] = '\0';
    if (!cfg->enabled)
        return 0;
    /* client_max_window_bits is always offered: it lets the server pick a smaller client
     * window, which is what keeps its inflate memory down (§7.1.2.2). */
    bool ok = put(out, cap, &n, EXT_NAME) &&
              put_bits(out, cap, &n, "client_max_window_bits", ours < 15 ? ours : 0);
    if (ok && ours < 15)
        ok = put_bits(out, cap, &n, "server_max_window_bits", ours);
    if (ok && !cfg->context_takeover)
        ok = put_bits(out, cap, &n, "server_no_context_takeover", 0) &&
             put_bits(out, cap, &n, "client_no_context_takeover", 0);
    if (!ok) {
        out[0] = '\0';
        return HR_EINVAL;
    }
    return (int)n;
}

int hr_deflate_accept_response(const char *resp, size_t len, const hr_deflate_config_t *cfg,
                               hr_deflate_params_t *params)
{
    if (!cfg->enabled || !resp)
        return HR_EPROTO;
    uint8_t ours = our_max_bits(cfg);
    cursor_t c = {resp, resp + len};
    ext_t e;
    pmd_t o;
    /* We offered one extension, so the answer is exactly that one (RFC 6455 §9.1). */
    if (!next_ext(&c, &e) || !e.valid || !same(e.name, e.name_len, EXT_NAME))
        return HR_EPROTO;
    if (!read_pmd(&e, true, &o))
        return HR_EPROTO;
    ext_t extra;
    if (next_ext(&c, &extra))
        return HR_EPROTO;
    /* §7.1.2.2 forbids client_max_window_bits in an answer to an offer without it; our
     * offer always carries it (hr_deflate_offer), so here it is always legal. */
    /* A server window larger than we asked for would break our inflate memory bound. A
     * missing one means the server ignored the request; we then inflate with 15. */
    if (ours < 15 && o.smwb > ours)
        return HR_EPROTO;
    params->server_no_context_takeover = o.snct;
    params->client_no_context_takeover = o.cnct;
    params->server_max_window_bits = o.smwb ? o.smwb : 15;
    params->client_max_window_bits = o.cmwb_present ? o.cmwb : 15;
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * Streams (§7.2)
 * ------------------------------------------------------------------------------------- */

static const uint8_t sync_tail[4] = {0x00, 0x00, 0xff, 0xff};

static voidpf on_zalloc(voidpf opaque, uInt items, uInt size)
{
    (void)opaque;
    return hr_malloc((size_t)items * size);
}

static void on_zfree(voidpf opaque, voidpf p)
{
    (void)opaque;
    hr_free(p);
}

void hr_deflate_stream_deinit(hr_deflate_stream_t *s)
{
    if (s->ready) {
        if (s->compress)
            deflateEnd(&s->z);
        else
            inflateEnd(&s->z);
    }
    memset(s, 0, sizeof(*s));
}

static int open_inflate(hr_deflate_stream_t *s, int bits)
{
    if (s->ready && !s->compress) {
        if (s->window_bits == bits)
            return 0;
        /* A different window means a different peer; its context is of no use. */
        if (inflateReset2(&s->z, -bits) != Z_OK) {
            hr_deflate_stream_deinit(s);
            return HR_ENOMEM;
        }
        s->window_bits = bits;
        return 0;
    }
    hr_deflate_stream_deinit(s);
    s->z.zalloc = on_zalloc;
    s->z.zfree = on_zfree;
    s->z.opaque = Z_NULL;
    if (inflateInit2(&s->z, -bits) != Z_OK) {
        memset(s, 0, sizeof(*s));
        return HR_ENOMEM;
    }
    s->ready = true;
    s->compress = false;
    s->window_bits = bits;
    return 0;
}

/* Points zlib at the free space of out, never beyond max_out; when out is full to the
 * cap, at a one-byte probe instead, so that any further output shows up as overflow
 * without the buffer growing past the cap. */
static int give_space(z_stream *z, hr_buf_t *out, size_t max_out, uint8_t *probe)
{
    size_t room = max_out - out->len;
    if (room == 0) {
        z->next_out = probe;
        z->avail_out = 1;
        return 0;
    }
    if (out->cap == out->len) {
        size_t want = room < 16384 ? room : 16384;
        if (hr_buf_reserve(out, want) != 0)
            return HR_ENOMEM;
    }
    size_t space = out->cap - out->len;
    if (space > room)
        space = room;
    if (space > UINT32_MAX)
        space = UINT32_MAX;
    z->next_out = out->data + out->len;
    z->avail_out = (uInt)space;
    return 0;
}

static int run_inflate(hr_deflate_stream_t *s, const uint8_t *in, size_t len, hr_buf_t *out,
                       size_t max_out)
{
    z_stream *z = &s->z;
    uint8_t probe;
    bool tail_fed = false;
    size_t left = len;

    z->next_in = (Bytef *)(uintptr_t)in;
    z->avail_in = 0;
    for (;;) {
        if (z->avail_in == 0) {
            if (left > 0) {
                uInt chunk = left > UINT32_MAX ? UINT32_MAX : (uInt)left;
                z->next_in = (Bytef *)(uintptr_t)(in + (len - left));
                z->avail_in = chunk;
                left -= chunk;
            } else if (!tail_fed) {
                /* §7.2.2: the sender removed this tail; put it back. */
                z->next_in = (Bytef *)(uintptr_t)sync_tail;
                z->avail_in = sizeof(sync_tail);
                tail_fed = true;
            }
        }
        int rc = give_space(z, out, max_out, &probe);
        if (rc)
            return rc;
        bool probing = z->next_out == &probe;
        uInt before = z->avail_out;
        /* Z_BLOCK stops at block boundaries, which lets us tell a message that ends
         * cleanly from one cut inside a block (data_type bit 7 below). */
        int zr = inflate(z, Z_BLOCK);
        uInt produced = before - z->avail_out;
        if (probing && produced > 0)
            return HR_EMSGSIZE;
        if (!probing)
            out->len += produced;
        if (zr == Z_STREAM_END) {
            /* §7.2.3.4: a sender without an empty-block flush ends the message with a
             * final block, followed by an empty stored block header (and our tail) that
             * zlib will not read. Its next message starts a fresh stream. */
            return inflateReset(z) == Z_OK ? 0 : HR_EPROTO;
        }
        if (zr == Z_MEM_ERROR)
            return HR_ENOMEM;
        if (zr != Z_OK && zr != Z_BUF_ERROR)
            return HR_EPROTO;
        if (z->avail_in == 0 && left == 0 && tail_fed && z->avail_out > 0)
            return (z->data_type & 128) ? 0 : HR_EPROTO;
    }
}

int hr_deflate_inflate(hr_deflate_stream_t *s, int window_bits, bool reset, const uint8_t *in,
                       size_t len, hr_buf_t *out, size_t max_out)
{
    if (window_bits < 8 || window_bits > 15 || (len > 0 && !in))
        return HR_EINVAL;
    if (out->len > max_out)
        return HR_EMSGSIZE;
    /* An empty payload is not a valid compressed message (§7.2.3.6 gives 0x00), but
     * senders that skip an empty sync flush produce it; it can only mean "". */
    if (len == 0)
        return 0;
    /* zlib refuses windowBits 8 for raw inflate; a larger window decodes any stream made
     * with a smaller one. */
    int rc = open_inflate(s, window_bits == 8 ? 15 : window_bits);
    if (rc)
        return rc;
    size_t start = out->len;
    rc = run_inflate(s, in, len, out, max_out);
    if (rc) {
        out->len = start;
        /* The stream is mid-message; only a fresh one is usable again. A failed
         * allocation may have left zlib in its MEM state, so free everything then. */
        if (rc == HR_ENOMEM || inflateReset(&s->z) != Z_OK)
            hr_deflate_stream_deinit(s);
        return rc;
    }
    if (reset && inflateReset(&s->z) != Z_OK) {
        hr_deflate_stream_deinit(s);
        return HR_EPROTO;
    }
    return 0;
}

static int open_deflate(hr_deflate_stream_t *s, const hr_deflate_config_t *cfg, int bits)
{
    if (s->ready && s->compress && s->window_bits == bits)
        return 0;
    hr_deflate_stream_deinit(s);
    s->z.zalloc = on_zalloc;
    s->z.zfree = on_zfree;
    s->z.opaque = Z_NULL;
    int level = cfg->level;
    int mem = cfg->mem_level;
    if (level < Z_DEFAULT_COMPRESSION || level > 9)
        level = Z_DEFAULT_COMPRESSION;
    if (mem < 1 || mem > 9)
        mem = 8;
    int zr = deflateInit2(&s->z, level, Z_DEFLATED, -bits, mem, Z_DEFAULT_STRATEGY);
    if (zr != Z_OK) {
        memset(s, 0, sizeof(*s));
        return zr == Z_MEM_ERROR ? HR_ENOMEM : HR_EINVAL;
    }
    s->ready = true;
    s->compress = true;
    s->window_bits = bits;
    return 0;
}

static int run_deflate(z_stream *z, const uint8_t *in, size_t len, hr_buf_t *out)
{
    size_t left = len;
    z->next_in = (Bytef *)(uintptr_t)in;
    z->avail_in = 0;
    /* deflateBound covers one call with Z_FINISH; the sync marker and a block header
     * are a few bytes more. Reserving it up front usually means a single pass. */
    uLong bound = deflateBound(z, len > UINT32_MAX ? UINT32_MAX : (uLong)len) + 16;
    if (hr_buf_reserve(out, bound) != 0)
        return HR_ENOMEM;
    for (;;) {
        if (z->avail_in == 0 && left > 0) {
            uInt chunk = left > UINT32_MAX ? UINT32_MAX : (uInt)left;
            z->next_in = (Bytef *)(uintptr_t)(in + (len - left));
            z->avail_in = chunk;
            left -= chunk;
        }
        if (out->cap == out->len && hr_buf_reserve(out, 4096) != 0)
            return HR_ENOMEM;
        size_t space = out->cap - out->len;
        z->next_out = out->data + out->len;
        z->avail_out = space > UINT32_MAX ? UINT32_MAX : (uInt)space;
        uInt before = z->avail_out;
        int zr = deflate(z, left > 0 ? Z_NO_FLUSH : Z_SYNC_FLUSH);
        out->len += before - z->avail_out;
        if (zr == Z_MEM_ERROR)
            return HR_ENOMEM;
        if (zr != Z_OK && zr != Z_BUF_ERROR)
            return HR_EINVAL;
        /* Output space left over after a flush means zlib has nothing pending. */
        if (left == 0 && z->avail_in == 0 && z->avail_out > 0)
            return 0;
    }
}

int hr_deflate_compress(hr_deflate_stream_t *s, const hr_deflate_config_t *cfg, int window_bits,
                        bool reset, const uint8_t *in, size_t len, hr_buf_t *out)
{
    if (window_bits < 9 || window_bits > 15 || (len > 0 && !in))
        return HR_EINVAL;
    if (len == 0) {
        /* §7.2.3.6: an empty message is one empty stored block without its LEN/NLEN,
         * i.e. the byte 0x00. zlib would emit nothing for an empty sync flush that
         * follows another one, so write it ourselves; the stream state is untouched
         * and stays in step with the peer's, since the block adds nothing to the
         * window. */
        static const uint8_t empty_block = 0x00;
        return hr_buf_append(out, &empty_block, 1);
    }
    int rc = open_deflate(s, cfg, window_bits);
    if (rc)
        return rc;
    size_t start = out->len;
    rc = run_deflate(&s->z, in, len, out);
    if (rc == 0) {
        size_t n = out->len - start;
        /* §7.2.1: with Z_SYNC_FLUSH the output ends in an empty stored block; its
         * 00 00 FF FF is dropped. Anything else would be a zlib contract breach. */
        if (n >= 4 && memcmp(out->data + out->len - 4, sync_tail, 4) == 0)
            out->len -= 4;
        else
            rc = HR_EINVAL;
    }
    if (rc) {
        out->len = start;
        /* The compressor holds a half-written message the peer never sees; keeping
         * its history would make later messages refer to bytes the peer lacks. */
        hr_deflate_stream_deinit(s);
        return rc;
    }
    if (reset && deflateReset(&s->z) != Z_OK) {
        hr_deflate_stream_deinit(s);
        return HR_EINVAL;
    }
    return 0;
}
