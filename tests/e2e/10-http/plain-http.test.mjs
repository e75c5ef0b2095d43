// Plain HTTP on the WebSocket port: /healthz, keep-alive and pipelining, body limits,
// and the error answers of the request path that is not an upgrade.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startHerald } from '../helpers/herald.mjs';

// Sends raw bytes, collects everything until the server closes or `ms` pass.
function exchange(port, bytes, ms = 1500) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(bytes));
    let buf = Buffer.alloc(0);
    let closed = false;
    const t = setTimeout(() => { s.destroy(); resolve({ text: buf.toString('latin1'), closed }); }, ms);
    s.on('data', (d) => { buf = Buffer.concat([buf, d]); });
    s.on('end', () => { closed = true; clearTimeout(t); s.destroy(); resolve({ text: buf.toString('latin1'), closed }); });
    s.on('error', (e) => { clearTimeout(t); reject(e); });
  });
}

// status lines: a body need not end in a newline, so they are found anywhere
const statuses = (text) => [...text.matchAll(/HTTP\/1\.1 (\d{3}) [A-Z]/g)].map((m) => Number(m[1]));

describe('plain HTTP', () => {
  let srv;
  before(async () => { srv = await startHerald(['--threads', '1']); });
  after(async () => { if (srv) await srv.stop(); });

  test('GET /healthz -> 200 JSON, connection kept alive', async () => {
    const r = await exchange(srv.port, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n', 500);
    assert.deepEqual(statuses(r.text), [200]);
    assert.match(r.text, /Content-Type: application\/json/);
    assert.match(r.text, /Connection: keep-alive/);
    assert.ok(r.text.endsWith('{"status":"ok"}'));
    assert.equal(r.closed, false, 'HTTP/1.1 keeps the connection open');
  });

  test('pipelined requests on one connection are answered in order; Connection: close ends it', async () => {
    const one = 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n';
    const r = await exchange(srv.port, one + one + 'GET /healthz?x=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.deepEqual(statuses(r.text), [200, 200, 200]);
    assert.match(r.text, /Connection: close/);
    assert.equal(r.closed, true);
  });

  test('HTTP/1.0 without keep-alive is closed after the answer', async () => {
    const r = await exchange(srv.port, 'GET /healthz HTTP/1.0\r\n\r\n');
    assert.deepEqual(statuses(r.text), [200]);
    assert.equal(r.closed, true);
  });

  test('HEAD /healthz -> 200 with no body', async () => {
    const r = await exchange(srv.port, 'HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.deepEqual(statuses(r.text), [200]);
    assert.ok(r.text.endsWith('\r\n\r\n'));
  });

  test('POST /healthz -> 405 with Allow, body consumed, connection usable', async () => {
    const r = await exchange(srv.port, 'POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello' +
      'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.deepEqual(statuses(r.text), [405, 200]);
    assert.match(r.text, /Allow: GET, HEAD/);
  });

  test('a body above the limit -> 413, gzip-coded -> 501, bad Content-Length -> 400, all closed', async () => {
    for (const [req, want] of [
      ['POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n', 413],
      ['POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n', 501],
      ['POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 12a\r\n\r\n', 400],
      ['POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx', 400],
    ]) {
      const r = await exchange(srv.port, req);
      assert.deepEqual(statuses(r.text), [want], req);
      assert.equal(r.closed, true, `${want} closes`);
    }
  });

  test('a body that arrives in pieces is waited for', async () => {
    const s = net.connect(srv.port, '127.0.0.1');
    await new Promise((r) => s.once('connect', r));
    let text = '';
    s.on('data', (d) => { text += d.toString('latin1'); });
    s.write('POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nab');
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(text, '', 'no answer before the whole body');
    s.write('cdef');
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(statuses(text), [405]);
    s.destroy();
  });

  test('an unknown path -> 404 and close', async () => {
    const r = await exchange(srv.port, 'GET /nope HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.deepEqual(statuses(r.text), [404]);
    assert.equal(r.closed, true);
  });
});
