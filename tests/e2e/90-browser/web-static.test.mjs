// Serving web/ (docs/web.md) without a browser: the embedded pages and their types,
// ETag revalidation, HEAD, refused traversal, --web off, --web-dir, and the admin feed
// (/admin/ws): its snapshots and its --api-key check at the handshake.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { startHerald, withTimeout } from '../helpers/herald.mjs';

const get = (port, p, init) => fetch(`http://127.0.0.1:${port}${p}`, init);

/** GET with the path sent as is (fetch would resolve "..": a browser never sends it). */
function rawGet(port, p) {
  return withTimeout(new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: p }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    }).once('error', reject);
  }), 4000, `GET ${p}`);
}

/** The next message of a ws client as JSON, bounded. */
function nextJson(ws, ms = 4000) {
  return withTimeout(new Promise((resolve, reject) => {
    ws.once('message', (d) => resolve(JSON.parse(String(d))));
    ws.once('close', () => reject(new Error('closed')));
  }), ms, 'admin snapshot');
}

/** Opens a ws client: resolves to it, or rejects with the refused handshake's status. */
function open(url, protocols) {
  return withTimeout(new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols);
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (req, res) => reject(Object.assign(new Error('refused'), { status: res.statusCode })));
    ws.once('error', reject);
  }), 4000, `open ${url}`);
}

test('the pages are served with their types, ETag, no-cache; HEAD and 304 work', async () => {
  const h = await startHerald([]);
  try {
    const cases = [
      ['/', 'text/html; charset=utf-8', '<title>Herald demo</title>'],
      ['/admin', 'text/html; charset=utf-8', '<title>Herald admin</title>'],
      ['/herald.js', 'text/javascript; charset=utf-8', 'export class Herald'],
      ['/static/demo.js', 'text/javascript; charset=utf-8', "from '/herald.js'"],
      ['/static/admin.js', 'text/javascript; charset=utf-8', '/admin/ws'],
      ['/static/app.css', 'text/css; charset=utf-8', '--accent'],
    ];
    for (const [p, type, needle] of cases) {
      const res = await get(h.port, p);
      assert.equal(res.status, 200, p);
      assert.equal(res.headers.get('content-type'), type, p);
      assert.equal(res.headers.get('cache-control'), 'no-cache', p);
      assert.equal(res.headers.get('x-content-type-options'), 'nosniff', p);
      const etag = res.headers.get('etag');
      assert.match(etag, /^"[0-9a-f]{16}"$/, p);
      const body = await res.text();
      assert.ok(body.includes(needle), `${p} has ${needle}`);
      assert.equal(Number(res.headers.get('content-length')), Buffer.byteLength(body), p);

      const again = await get(h.port, p, { headers: { 'If-None-Match': etag } });
      assert.equal(again.status, 304, `${p} revalidated`);
      assert.equal(await again.text(), '');
      const other = await get(h.port, p, { headers: { 'If-None-Match': '"0000000000000000"' } });
      assert.equal(other.status, 200, `${p} with a stale ETag`);
      await other.arrayBuffer();

      const head = await get(h.port, p, { method: 'HEAD' });
      assert.equal(head.status, 200);
      assert.equal(Number(head.headers.get('content-length')), Buffer.byteLength(body), `HEAD ${p}`);
      assert.equal(head.headers.get('etag'), etag);
    }
    const html = await get(h.port, '/');
    assert.match(html.headers.get('content-security-policy'), /default-src 'self'/);
    await html.arrayBuffer();
    // the STOMP bundle when web/node_modules is installed (npm ci in web/)
    const vendor = await get(h.port, '/vendor/stomp.umd.min.js');
    if (fs.existsSync(new URL('../../../web/node_modules/@stomp/stompjs/bundles/stomp.umd.min.js', import.meta.url))) {
      assert.equal(vendor.status, 200);
      assert.equal(vendor.headers.get('content-type'), 'text/javascript; charset=utf-8');
      assert.match(await vendor.text(), /StompJs/);
    } else {
      assert.equal(vendor.status, 404);
      await vendor.arrayBuffer();
    }
    // the WebSocket endpoints are not shadowed by the pages
    const ws = await open(`${h.url}/ws`);
    ws.close();
    const health = await get(h.port, '/healthz');
    assert.equal(health.status, 200);
    await health.arrayBuffer();
  } finally {
    await h.stop();
  }
});

test('unknown files are 404, names leaving web/ are 400, other methods 405', async () => {
  const h = await startHerald([]);
  try {
    for (const p of ['/static/nope.js', '/static/package.json', '/vendor/nope.js', '/index.html']) {
      const res = await get(h.port, p);
      if (p === '/index.html') {
        // no page route: falls through to the WebSocket routes, which have none there
        assert.equal(res.status, 404, p);
        await res.arrayBuffer();
        continue;
      }
      assert.equal(res.status, 404, p);
      assert.deepEqual(await res.json(), { type: 'error', code: 'not_found', message: 'no such page' });
    }
    for (const p of ['/static/..%2fCMakeLists.txt', '/static/.hidden.css', '/vendor/..', '/static/a%2fb.js',
      '/static/../../etc/passwd', '/vendor/../../CMakeLists.txt']) {
      const res = await rawGet(h.port, p);
      assert.equal(res.status, 400, p);
      assert.equal(JSON.parse(res.body).code, 'bad_request', p);
    }
    const post = await get(h.port, '/', { method: 'POST', body: 'x' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET, HEAD');
    await post.arrayBuffer();
  } finally {
    await h.stop();
  }
});

test('--web off serves no pages and no admin feed', async () => {
  const h = await startHerald(['--web', 'off']);
  try {
    for (const p of ['/', '/admin', '/herald.js', '/static/app.css']) {
      const res = await get(h.port, p);
      assert.equal(res.status, 404, p);
      await res.arrayBuffer();
    }
    await assert.rejects(open(`${h.url}/admin/ws`, ['herald-admin']), (e) => e.status === 404);
  } finally {
    await h.stop();
  }
});

test('--web-dir serves from disk: edits show at once, with a new ETag', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-web-'));
  fs.writeFileSync(path.join(dir, 'index.html'), '<p>one</p>');
  fs.writeFileSync(path.join(dir, 'extra.css'), 'p{}');
  fs.writeFileSync(path.join(dir, 'secret.json'), '{}');
  const h = await startHerald(['--web-dir', dir]);
  try {
    const a = await get(h.port, '/');
    assert.equal(await a.text(), '<p>one</p>');
    const etag = a.headers.get('etag');
    assert.ok(etag);
    fs.writeFileSync(path.join(dir, 'index.html'), '<p>two, longer</p>');
    const b = await get(h.port, '/', { headers: { 'If-None-Match': etag } });
    assert.equal(b.status, 200);
    assert.equal(await b.text(), '<p>two, longer</p>');
    const c = await get(h.port, '/', { headers: { 'If-None-Match': b.headers.get('etag') } });
    assert.equal(c.status, 304);
    await c.arrayBuffer();
    const css = await get(h.port, '/static/extra.css');
    assert.equal(css.headers.get('content-type'), 'text/css; charset=utf-8');
    assert.equal(await css.text(), 'p{}');
    for (const p of ['/static/secret.json', '/admin', '/vendor/stomp.umd.min.js']) {
      const res = await get(h.port, p);
      assert.equal(res.status, 404, p);
      await res.arrayBuffer();
    }
  } finally {
    await h.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the admin feed sends a snapshot a second; --api-key guards it at the handshake', async () => {
  const h = await startHerald(['--api-key', 's3cret', '--threads', '2']);
  try {
    await assert.rejects(open(`${h.url}/admin/ws`, ['herald-admin']), (e) => e.status === 401);
    await assert.rejects(open(`${h.url}/admin/ws`, ['herald-admin', 'herald-key.wrong']), (e) => e.status === 401);
    await assert.rejects(open(`${h.url}/admin/ws?key=wrong`), (e) => e.status === 401);
    const byQuery = await open(`${h.url}/admin/ws?key=s3cret`);
    byQuery.close();
    // the page itself is public: it holds no data
    const page = await get(h.port, '/admin');
    assert.equal(page.status, 200);
    await page.arrayBuffer();

    const ws = await open(`${h.url}/admin/ws`, ['herald-admin', 'herald-key.s3cret']);
    assert.equal(ws.protocol, 'herald-admin');
    const first = await nextJson(ws);
    assert.equal(first.type, 'stats');
    assert.equal(first.threads.length, 2);
    assert.ok(first.connections >= 1, 'counts the feed itself');
    for (const k of ['messages_in', 'messages_out', 'slow_consumer_closes', 'dropped_messages', 'channels_total']) {
      assert.equal(typeof first[k], 'number', k);
    }
    assert.equal(typeof first.rejected.unauthorized, 'number');
    assert.ok(first.rejected.unauthorized >= 3, 'the refused handshakes are counted');
    // a subscriber and some traffic show up in the next snapshots
    const sub = await open(`${h.url}/pubsub`);
    sub.send(JSON.stringify({ type: 'subscribe', id: 1, channel: 'orders.7' }));
    await withTimeout(new Promise((r) => sub.once('message', r)), 3000, 'subscribed');
    for (let i = 0; i < 5; i++) {
      const res = await get(h.port, '/api/publish', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: 'Bearer s3cret' },
        body: JSON.stringify({ channel: 'orders.7', data: i }),
      });
      assert.equal(res.status, 200);
      await res.arrayBuffer();
    }
    let s;
    for (let i = 0; i < 5; i++) {
      s = await nextJson(ws);
      if (s.channels.some((c) => c.channel === 'orders.7') && s.messages_out >= first.messages_out + 5) break;
    }
    assert.deepEqual(s.channels.find((c) => c.channel === 'orders.7'), { channel: 'orders.7', subscribers: 1 });
    assert.ok(s.messages_out >= first.messages_out + 5, `messages_out moved: ${first.messages_out} -> ${s.messages_out}`);
    assert.ok(s.connections >= 2);
    assert.ok(s.time > first.time);
    sub.close();
    ws.close();
    assert.equal(await h.stop(), 0, 'a clean exit (under ASan: no leak)');
  } finally {
    await h.stop();
  }
});
