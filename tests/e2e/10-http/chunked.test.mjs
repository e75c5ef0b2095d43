// Chunked request bodies on plain HTTP requests (RFC 9112 §7.1, docs/api.md "Request
// bodies"), over raw sockets: /api/publish with a chunked body in 1-byte TCP writes,
// keep-alive and pipelining after it (answers deferred to another thread too), the
// body limit (413), malformed chunking (400) and the Transfer-Encoding rules of §6.1
// (TE + Content-Length → 400, codings other than a final chunked → 400 or 501).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHerald, rawConnect, sleep } from '../helpers/herald.mjs';

const MAX_BODY = 1 << 20; // the server's fixed body limit (413 past it)

/** A chunked POST head (no body). */
function head(port, path = '/api/publish', extra = []) {
  return [`POST ${path} HTTP/1.1`, `Host: 127.0.0.1:${port}`, 'Content-Type: application/json',
    'Transfer-Encoding: chunked', ...extra].join('\r\n') + '\r\n\r\n';
}

/** text framed as chunks of the given sizes (the last one takes the rest), then 0 CRLF CRLF. */
function chunked(text, sizes = [], { ext = '', trailer = '' } = {}) {
  const buf = Buffer.from(text);
  let out = '';
  let off = 0;
  for (const n of sizes) {
    if (off >= buf.length) break;
    const piece = buf.subarray(off, off + n);
    out += `${piece.length.toString(16)}${ext}\r\n${piece.toString('latin1')}\r\n`;
    off += piece.length;
  }
  if (off < buf.length) out += `${(buf.length - off).toString(16)}\r\n${buf.subarray(off).toString('latin1')}\r\n`;
  return `${out}0\r\n${trailer}\r\n`;
}

function get(port, path, close = false) {
  return `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n${close ? 'Connection: close\r\n' : ''}\r\n`;
}

async function history(srv, channel) {
  const res = await fetch(`http://127.0.0.1:${srv.port}/api/channels/${channel}/history`, {
    signal: AbortSignal.timeout(5000),
  });
  if (res.status === 404) return []; // a channel never published to
  assert.equal(res.status, 200);
  return (await res.json()).messages.map((m) => m.data);
}

/** Sends raw bytes, reads one answer, asserts the status, a text reason (the refusals of
 *  the request path before any handler are text/plain, as for a Content-Length 413) and
 *  that the connection is closed after it (the framing cannot be trusted). Returns the
 *  reason. */
async function refused(srv, bytes, status) {
  const c = await rawConnect(srv.port);
  try {
    c.sendRaw(Buffer.from(bytes, 'latin1')).catch(() => {});
    const res = await c.readHttpResponse({ timeoutMs: 5000 });
    assert.equal(res.status, status, `${JSON.stringify(bytes.slice(0, 200))}\n${res.raw}`);
    assert.match(res.get('content-type'), /^text\/plain/);
    assert.ok(res.body.trim().length > 5, res.raw);
    assert.equal(await c.waitForTcpClose(3000), true, `${status} closes the connection`);
    return res.body;
  } finally { c.destroy(); }
}

describe('chunked request bodies', { timeout: 60000 }, () => {
  let srv;
  before(async () => { srv = await startHerald(['--threads', '2']); });
  after(async () => { if (srv) await srv.stop(); });

  test('/api/publish with a chunked body in 1-byte TCP writes → 200, published as sent', async () => {
    const c = await rawConnect(srv.port);
    try {
      const body = JSON.stringify({ channel: 'ch.one', data: { text: 'héllo, chunks', n: [1, 2, 3] } });
      const req = head(srv.port) + chunked(body, [1, 5, 17], { ext: ';name="v;x"' });
      await c.sendRaw(Buffer.from(req, 'latin1'), { split: 1, delay: 1 });
      const res = await c.readHttpResponse();
      assert.equal(res.status, 200, res.raw);
      assert.equal(JSON.parse(res.body).offset, 1, res.body);
      assert.deepEqual(await history(srv, 'ch.one'), [{ text: 'héllo, chunks', n: [1, 2, 3] }]);
      assert.equal(c.tcpClosed, false, 'kept alive');
    } finally { c.destroy(); }
  });

  test('no answer before the last chunk; trailers are ignored', async () => {
    const c = await rawConnect(srv.port);
    try {
      const body = JSON.stringify({ channel: 'ch.wait', data: 'x'.repeat(300) });
      const all = chunked(body, [100, 100], { trailer: 'X-Checksum: 12\r\nX-Other: a\r\n' });
      const cut = all.indexOf('0\r\nX-Checksum');
      await c.sendRaw(Buffer.from(head(srv.port) + all.slice(0, cut), 'latin1'));
      await sleep(300);
      assert.equal(c.avail, 0, 'answered before the body was complete');
      await c.sendRaw(Buffer.from(all.slice(cut), 'latin1'), { split: 3, delay: 1 });
      const res = await c.readHttpResponse();
      assert.equal(res.status, 200, res.raw);
      assert.deepEqual(await history(srv, 'ch.wait'), ['x'.repeat(300)]);
    } finally { c.destroy(); }
  });

  test('keep-alive: pipelined requests after chunked bodies are answered in order', async () => {
    const c = await rawConnect(srv.port);
    try {
      // Several channels: their home threads differ, so some answers are deferred to the
      // other thread while the next request waits in the buffer behind the decoded body.
      const chans = ['pipe.a', 'pipe.b', 'pipe.c', 'pipe.d', 'pipe.e', 'pipe.f'];
      let bytes = '';
      for (const [i, ch] of chans.entries()) {
        bytes += head(srv.port) + chunked(JSON.stringify({ channel: ch, data: i }), [3, 1, 7]);
        if (i === 2) bytes += get(srv.port, '/healthz');
      }
      const cl = JSON.stringify({ channel: 'pipe.a', data: 9 }); // and a Content-Length one
      bytes += `POST /api/publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${cl.length}\r\n\r\n${cl}`;
      bytes += get(srv.port, '/api/channels/pipe.a/history', true);
      await c.sendRaw(Buffer.from(bytes, 'latin1'));
      const statuses = [];
      const bodies = [];
      for (let i = 0; i < chans.length + 3; i++) {
        const res = await c.readHttpResponse();
        statuses.push(res.status);
        bodies.push(res.body);
      }
      assert.deepEqual(statuses, Array(chans.length + 3).fill(200), bodies.join('\n'));
      assert.equal(bodies[3], '{"status":"ok"}');
      const hist = JSON.parse(bodies.at(-1));
      assert.deepEqual(hist.messages.map((m) => m.data), [0, 9]);
      assert.equal(await c.waitForTcpClose(3000), true, 'Connection: close honoured');
      for (const [i, ch] of chans.entries()) {
        if (i) assert.deepEqual(await history(srv, ch), [i]);
      }
    } finally { c.destroy(); }
  });

  test('a chunked body past the limit → 413: a chunk size over it, or chunks adding up over it', async () => {
    await refused(srv, head(srv.port) + `${(MAX_BODY + 1).toString(16)}\r\n`, 413);
    const big = Buffer.alloc(600000, 'a').toString('latin1');
    const c = await rawConnect(srv.port);
    try {
      const bytes = head(srv.port) + chunked(`{"channel":"big.x","data":"${big}${big}"}`, [600000]);
      c.sendRaw(Buffer.from(bytes, 'latin1')).catch(() => {});
      const res = await c.readHttpResponse({ timeoutMs: 5000 });
      assert.equal(res.status, 413, res.raw);
      assert.equal(await c.waitForTcpClose(3000), true);
    } finally { c.destroy(); }
    assert.deepEqual(await history(srv, 'big.x'), []);
  });

  test('a chunked body exactly at the limit is accepted', async () => {
    const c = await rawConnect(srv.port);
    try {
      const pre = '{"channel":"big.ok","data":"';
      const body = pre + 'y'.repeat(MAX_BODY - pre.length - 2) + '"}';
      assert.equal(body.length, MAX_BODY);
      c.sendRaw(Buffer.from(head(srv.port) + chunked(body, [4096, 65536, 1, 300000]), 'latin1')).catch(() => {});
      const res = await c.readHttpResponse({ timeoutMs: 10000 });
      assert.equal(res.status, 200, res.raw);
    } finally { c.destroy(); }
  });

  for (const [name, body] of [
    ['a size that is not hex', 'zz\r\n'],
    ['an empty size line', '\r\n'],
    ['a bare LF after the size', '5\n{"a":\r\n0\r\n\r\n'],
    ['data longer than its size', '2\r\n{"a"\r\n0\r\n\r\n'],
    ['a missing CRLF after the data', '2\r\n{}0\r\n\r\n'],
    ['a control character in an extension', '2;a\x01b\r\n{}\r\n0\r\n\r\n'],
    ['a malformed trailer', '2\r\n{}\r\n0\r\nno colon here\r\n\r\n'],
  ]) {
    test(`malformed chunking (${name}) → 400 and closed`, async () => {
      const e = await refused(srv, head(srv.port) + body, 400);
      assert.match(e, /chunked/);
    });
  }

  test('Transfer-Encoding with Content-Length → 400 (request smuggling defence), either order', async () => {
    const body = chunked('{"channel":"smug.x","data":1}');
    await refused(srv, head(srv.port, '/api/publish', [`Content-Length: ${body.length}`]) + body, 400);
    await refused(srv, `POST /api/publish HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n` +
      `Transfer-Encoding: chunked\r\n\r\n${body}`, 400);
    assert.deepEqual(await history(srv, 'smug.x'), []);
  });

  test('RFC 9112 §6.1: chunked not final → 400; other codings before chunked → 501; HTTP/1.0 → 400', async () => {
    const req = (te, version = '1.1', body = '0\r\n\r\n') => `POST /api/publish HTTP/${version}\r\n` +
      `Host: x\r\nContent-Type: application/json\r\nTransfer-Encoding: ${te}\r\n\r\n${body}`;
    await refused(srv, req('gzip'), 400);
    await refused(srv, req('chunked, gzip'), 400);
    await refused(srv, req('chunked, chunked'), 400);
    await refused(srv, req('chunked;x=1'), 400);
    const e = await refused(srv, req('gzip, chunked'), 501);
    assert.match(e, /Transfer-Encoding/);
    await refused(srv, req('chunked', '1.0'), 400);
    // and upper case is still chunked
    const c = await rawConnect(srv.port);
    try {
      const body = chunked(JSON.stringify({ channel: 'te.case', data: 'up' }), [4]);
      await c.sendRaw(Buffer.from(req('CHUNKED', '1.1', body) + get(srv.port, '/healthz', true), 'latin1'));
      const r1 = await c.readHttpResponse();
      assert.equal(r1.status, 200, r1.raw);
      const r2 = await c.readHttpResponse();
      assert.equal(r2.status, 200, r2.raw);
      assert.deepEqual(await history(srv, 'te.case'), ['up']);
    } finally { c.destroy(); }
  });

  test('POST /sse and /poll (publishing) take chunked bodies too, kept alive', async () => {
    const c = await rawConnect(srv.port);
    try {
      const one = chunked(JSON.stringify({ channel: 'fb.x', data: 'by sse' }), [2, 2]);
      const two = chunked(JSON.stringify({ channel: 'fb.x', data: 'by poll' }), [9]);
      await c.sendRaw(Buffer.from(head(srv.port, '/sse') + one + head(srv.port, '/poll') + two, 'latin1'),
        { split: 5, delay: 1 });
      const r1 = await c.readHttpResponse();
      const r2 = await c.readHttpResponse();
      assert.deepEqual([r1.status, r2.status], [200, 200], `${r1.raw}\n${r2.raw}`);
      assert.deepEqual(await history(srv, 'fb.x'), ['by sse', 'by poll']);
    } finally { c.destroy(); }
  });

  test('a chunked request to another endpoint (/healthz, no body wanted) is read whole first', async () => {
    const c = await rawConnect(srv.port);
    try {
      await c.sendRaw(Buffer.from(`GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n` +
        `3\r\nabc\r\n0\r\n\r\n${get(srv.port, '/healthz', true)}`, 'latin1'), { split: 2, delay: 1 });
      const r1 = await c.readHttpResponse();
      const r2 = await c.readHttpResponse();
      assert.deepEqual([r1.status, r2.status], [200, 200]);
      assert.equal(await c.waitForTcpClose(3000), true);
    } finally { c.destroy(); }
  });
});
