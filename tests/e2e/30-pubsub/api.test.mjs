// The backend HTTP API on the /pubsub server's port (docs/api.md): every endpoint and
// status code, with --api-key on and off, keep-alive, 413, and the way API calls reach
// (or close) /pubsub connections. Every wait is bounded.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startHerald, rawConnect, sleep, withTimeout } from '../helpers/herald.mjs';

const TS_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

// ------------------------------------------------------------------------------------
// A small /pubsub client (frames parsed and queued; take() waits with a deadline).

class Ps {
  constructor(ws) {
    this.ws = ws;
    this.queue = [];
    this.closed = null;
    this.waiters = new Set();
    this.nextId = 1;
    ws.on('message', (d) => {
      let f;
      try { f = JSON.parse(d.toString()); } catch { f = { type: '<unparsable>', text: d.toString() }; }
      this.queue.push(f);
      this._wake();
    });
    ws.on('close', (code, reason) => { this.closed = { code, reason: reason.toString() }; this._wake(); });
    ws.on('error', () => this._wake());
  }

  static open(url) {
    return withTimeout(new Promise((resolve, reject) => {
      const ws = new WebSocket(`${url}/pubsub`, { perMessageDeflate: false });
      const c = new Ps(ws);
      ws.once('open', () => resolve(c));
      ws.once('error', reject);
    }), 10000, 'open /pubsub');
  }

  _wake() { for (const f of [...this.waiters]) f(); }

  _wait(deadline) {
    const ms = deadline - Date.now();
    if (ms <= 0) return Promise.resolve(false);
    return new Promise((resolve) => {
      const f = () => { clearTimeout(t); this.waiters.delete(f); resolve(true); };
      const t = setTimeout(() => { this.waiters.delete(f); resolve(false); }, ms);
      this.waiters.add(f);
    });
  }

  async take(pred, what, ms = 4000) {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = this.queue.findIndex(pred);
      if (i >= 0) return this.queue.splice(i, 1)[0];
      if (this.closed) throw new Error(`connection closed (${this.closed.code}) while waiting for ${what}`);
      if (!(await this._wait(deadline))) throw new Error(`timed out waiting for ${what}; queued ${JSON.stringify(this.queue).slice(0, 300)}`);
    }
  }

  async req(obj) {
    const id = this.nextId++;
    this.ws.send(JSON.stringify({ ...obj, id }));
    return this.take((f) => ['ok', 'error', 'pong'].includes(f.type) && f.id === id, `reply to ${obj.type}`);
  }

  async sub(channel) {
    const r = await this.req({ type: 'subscribe', channel });
    assert.equal(r.type, 'ok', JSON.stringify(r));
    return r;
  }

  message(channel, ms) { return this.take((f) => f.type === 'message' && f.channel === channel, `a message on ${channel}`, ms); }

  async quiet(ms, pred) {
    await sleep(ms);
    const out = this.queue.filter(pred);
    this.queue = this.queue.filter((f) => !pred(f));
    return out;
  }

  /** Resolves to the close info, or null if still open after ms. */
  async waitClose(ms = 4000) {
    const deadline = Date.now() + ms;
    while (!this.closed) if (!(await this._wait(deadline))) return null;
    return this.closed;
  }

  close() { try { this.ws.terminate(); } catch { /* gone */ } }
}

// ------------------------------------------------------------------------------------
// HTTP helpers

async function api(srv, method, path, { body, headers = {} } = {}) {
  const h = { ...headers };
  let b;
  if (body !== undefined) {
    h['content-type'] = 'application/json';
    b = typeof body === 'string' ? body : JSON.stringify(body);
  }
  const res = await fetch(`http://127.0.0.1:${srv.port}${path}`, {
    method, headers: h, body: b, signal: AbortSignal.timeout(5000),
  });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, headers: res.headers, text, json };
}

/** An error answer: the status and a {"error":"<code>","message":"..."} body. */
function assertError(r, status, what) {
  assert.equal(r.status, status, `${what}: status ${r.status}, body ${r.text}`);
  assert.ok(r.json && typeof r.json === 'object', `${what}: error body is not JSON: ${r.text}`);
  assert.equal(typeof r.json.error, 'string', `${what}: ${r.text}`);
  assert.ok(r.json.error.length > 0);
  assert.equal(typeof r.json.message, 'string', `${what}: ${r.text}`);
}

function httpRequest(method, path, port, { body = '', headers = {} } = {}) {
  const lines = [`${method} ${path} HTTP/1.1`, `Host: 127.0.0.1:${port}`];
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
  if (body || method === 'POST') lines.push(`Content-Length: ${Buffer.byteLength(body)}`);
  if (body) lines.push('Content-Type: application/json');
  return `${lines.join('\r\n')}\r\n\r\n${body}`;
}

// ------------------------------------------------------------------------------------

describe('HTTP API without --api-key', { timeout: 30000 }, () => {
  let srv;
  const conns = [];
  const ps = async () => { const c = await Ps.open(srv.url); conns.push(c); return c; };

  before(async () => {
    srv = await startHerald(['--threads', '2', '--namespace', 'chat.*:presence=on']);
  });
  after(async () => {
    for (const c of conns) c.close();
    if (srv) await srv.stop();
  });

  // ---------------------------------------------------------------- publish

  test('POST /api/publish → 200 {offset, epoch}; offsets grow by one', async () => {
    const r1 = await api(srv, 'POST', '/api/publish', { body: { channel: 'api.pub', data: { a: 1 } } });
    assert.equal(r1.status, 200, r1.text);
    assert.match(r1.headers.get('content-type') || '', /application\/json/);
    assert.deepEqual(Object.keys(r1.json).sort(), ['epoch', 'offset']);
    assert.equal(r1.json.offset, 1);
    assert.equal(typeof r1.json.epoch, 'string');
    assert.ok(r1.json.epoch.length > 0);
    const r2 = await api(srv, 'POST', '/api/publish', { body: { channel: 'api.pub', data: null } });
    assert.equal(r2.status, 200, r2.text);
    assert.deepEqual(r2.json, { offset: 2, epoch: r1.json.epoch });
  });

  test('/api/publish reaches a /pubsub subscriber (same offset, epoch, data)', async () => {
    const s = await ps();
    const sub = await s.sub('api.reach');
    const r = await api(srv, 'POST', '/api/publish', { body: { channel: 'api.reach', data: { status: 'paid', n: [1, 2] } } });
    assert.equal(r.status, 200, r.text);
    const m = await s.message('api.reach');
    assert.deepEqual([m.offset, m.epoch, m.data], [r.json.offset, r.json.epoch, { status: 'paid', n: [1, 2] }]);
    assert.equal(m.epoch, sub.epoch);
    assert.match(m.timestamp, TS_RE);
  });

  test('/api/publish reaches pattern subscribers', async () => {
    const s = await ps();
    await s.sub('apipat.*');
    const r = await api(srv, 'POST', '/api/publish', { body: { channel: 'apipat.7', data: 7 } });
    assert.equal(r.status, 200, r.text);
    assert.equal((await s.message('apipat.7')).data, 7);
  });

  const badPublish = [
    ['invalid JSON', '{"channel":'],
    ['empty body', ''],
    ['an array', '[1]'],
    ['a string', '"x"'],
    ['channel missing', '{"data":1}'],
    ['channel not a string', '{"channel":5,"data":1}'],
    ['channel empty', '{"channel":"","data":1}'],
    ['channel a pattern', '{"channel":"orders.*","data":1}'],
    ['channel malformed', '{"channel":"a..b","data":1}'],
    ['data missing', '{"channel":"api.bad"}'],
  ];
  for (const [name, body] of badPublish) {
    test(`POST /api/publish with ${name} → 400`, async () => {
      const r = await api(srv, 'POST', '/api/publish', { body });
      assertError(r, 400, name);
    });
  }

  // ---------------------------------------------------------------- broadcast

  test('POST /api/broadcast → 200 results per channel in order; every subscriber gets it', async () => {
    const s = await ps();
    await s.sub('bc.a');
    await s.sub('bc.b');
    await api(srv, 'POST', '/api/publish', { body: { channel: 'bc.b', data: 0 } });
    const r = await api(srv, 'POST', '/api/broadcast', { body: { channels: ['bc.a', 'bc.b', 'bc.c'], data: { hi: 1 } } });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(Object.keys(r.json), ['results']);
    assert.deepEqual(r.json.results.map((x) => [x.channel, x.offset]), [['bc.a', 1], ['bc.b', 2], ['bc.c', 1]]);
    for (const x of r.json.results) assert.ok(typeof x.epoch === 'string' && x.epoch.length > 0);
    const ma = await s.message('bc.a');
    assert.deepEqual([ma.offset, ma.epoch, ma.data], [1, r.json.results[0].epoch, { hi: 1 }]);
    const mb = await s.take((f) => f.type === 'message' && f.channel === 'bc.b' && f.offset === 2, 'bc.b offset 2');
    assert.deepEqual(mb.data, { hi: 1 });
  });

  test('POST /api/broadcast to 100 channels → 200 with 100 results', async () => {
    const channels = Array.from({ length: 100 }, (_, i) => `bc100.${i}`);
    const r = await api(srv, 'POST', '/api/broadcast', { body: { channels, data: 1 } });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.results.map((x) => x.channel), channels);
    assert.ok(r.json.results.every((x) => x.offset === 1));
  });

  const badBroadcast = [
    ['no channels', { channels: [], data: 1 }],
    ['101 channels', { channels: Array.from({ length: 101 }, (_, i) => `bc101.${i}`), data: 1 }],
    ['channels missing', { data: 1 }],
    ['channels not an array', { channels: 'bc.a', data: 1 }],
    ['a channel not a string', { channels: ['bc.a', 3], data: 1 }],
    ['an invalid channel', { channels: ['bc.a', 'bc.*'], data: 1 }],
    ['data missing', { channels: ['bc.a'] }],
    ['invalid JSON', '{"channels":["a"],'],
  ];
  for (const [name, body] of badBroadcast) {
    test(`POST /api/broadcast with ${name} → 400`, async () => {
      const r = await api(srv, 'POST', '/api/broadcast', { body });
      assertError(r, 400, name);
    });
  }

  test('a refused broadcast publishes nothing', async () => {
    const s = await ps();
    await s.sub('bcnone.a');
    const r = await api(srv, 'POST', '/api/broadcast', { body: { channels: ['bcnone.a', 'bad..name'], data: 1 } });
    assertError(r, 400, 'broadcast with one invalid channel');
    assert.deepEqual(await s.quiet(300, (f) => f.type === 'message'), []);
  });

  // ---------------------------------------------------------------- channels

  test('GET /api/channels → exact-name subscriptions counted over all threads; patterns not listed', async () => {
    // enough connections to land on both threads
    const cs = await Promise.all(Array.from({ length: 8 }, () => ps()));
    for (const c of cs.slice(0, 6)) await c.sub('cnt.a');
    await cs[6].sub('cnt.b');
    await cs[7].sub('cnt.*');
    const pick = (j) => Object.fromEntries(j.channels.filter((x) => x.channel.startsWith('cnt.')).map((x) => [x.channel, x.subscribers]));
    let r;
    const deadline = Date.now() + 3000;
    for (;;) {
      r = await api(srv, 'GET', '/api/channels');
      assert.equal(r.status, 200, r.text);
      if (JSON.stringify(pick(r.json)) === JSON.stringify({ 'cnt.a': 6, 'cnt.b': 1 }) || Date.now() > deadline) break;
      await sleep(50);
    }
    assert.ok(Array.isArray(r.json.channels), r.text);
    for (const x of r.json.channels) assert.deepEqual(Object.keys(x).sort(), ['channel', 'subscribers']);
    assert.deepEqual(pick(r.json), { 'cnt.a': 6, 'cnt.b': 1 }, r.text);
    // unsubscribing lowers the count
    await cs[0].req({ type: 'unsubscribe', channel: 'cnt.a' });
    cs[1].close();
    const deadline2 = Date.now() + 3000;
    for (;;) {
      r = await api(srv, 'GET', '/api/channels');
      if (pick(r.json)['cnt.a'] === 4 || Date.now() > deadline2) break;
      await sleep(50);
    }
    assert.equal(pick(r.json)['cnt.a'], 4, r.text);
  });

  // ---------------------------------------------------------------- history

  test('GET /api/channels/NAME/history → channel, offset, epoch, messages (oldest first); no recovered without since', async () => {
    let epoch;
    for (let i = 1; i <= 5; i++) epoch = (await api(srv, 'POST', '/api/publish', { body: { channel: 'hist.api', data: { n: i } } })).json.epoch;
    const r = await api(srv, 'GET', '/api/channels/hist.api/history');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.channel, 'hist.api');
    assert.equal(r.json.offset, 5);
    assert.equal(r.json.epoch, epoch);
    assert.ok(!('recovered' in r.json), r.text);
    assert.deepEqual(r.json.messages.map((m) => [m.channel, m.offset, m.epoch, m.data]),
      [1, 2, 3, 4, 5].map((i) => ['hist.api', i, epoch, { n: i }]));
    for (const m of r.json.messages) {
      assert.deepEqual(Object.keys(m).sort(), ['channel', 'data', 'epoch', 'offset', 'timestamp']);
      assert.match(m.timestamp, TS_RE);
    }
  });

  test('history ?limit=N keeps the most recent N', async () => {
    for (let i = 1; i <= 5; i++) await api(srv, 'POST', '/api/publish', { body: { channel: 'hist.lim', data: i } });
    const r = await api(srv, 'GET', '/api/channels/hist.lim/history?limit=2');
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.messages.map((m) => m.offset), [4, 5]);
  });

  test('history ?since=OFFSET&epoch=E → the messages after it and recovered:true; wrong epoch → recovered:false', async () => {
    let epoch;
    for (let i = 1; i <= 5; i++) epoch = (await api(srv, 'POST', '/api/publish', { body: { channel: 'hist.since', data: i } })).json.epoch;
    const r = await api(srv, 'GET', `/api/channels/hist.since/history?since=3&epoch=${encodeURIComponent(epoch)}`);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.recovered, true, r.text);
    assert.deepEqual(r.json.messages.map((m) => m.offset), [4, 5]);
    const top = await api(srv, 'GET', `/api/channels/hist.since/history?since=5&epoch=${encodeURIComponent(epoch)}`);
    assert.equal(top.json.recovered, true, top.text);
    assert.deepEqual(top.json.messages, []);
    const w = await api(srv, 'GET', '/api/channels/hist.since/history?since=3&epoch=nope');
    assert.equal(w.status, 200, w.text);
    assert.equal(w.json.recovered, false, w.text);
    const lim = await api(srv, 'GET', `/api/channels/hist.since/history?since=1&epoch=${encodeURIComponent(epoch)}&limit=2`);
    assert.equal(lim.json.recovered, true, lim.text);
    assert.ok(lim.json.messages.every((m) => m.offset > 1) && lim.json.messages.length === 2, lim.text);
  });

  const badHistory = [
    ['limit=0', '/api/channels/hist.bad/history?limit=0'],
    ['limit=abc', '/api/channels/hist.bad/history?limit=abc'],
    ['limit=1001', '/api/channels/hist.bad/history?limit=1001'],
    ['since=-1', '/api/channels/hist.bad/history?since=-1&epoch=e'],
    ['since=x', '/api/channels/hist.bad/history?since=x&epoch=e'],
    ['since without epoch', '/api/channels/hist.bad/history?since=1'],
    ['an invalid channel name', '/api/channels/a..b/history'],
  ];
  for (const [name, path] of badHistory) {
    test(`history with ${name} → 400`, async () => {
      assertError(await api(srv, 'GET', path), 400, name);
    });
  }

  // ---------------------------------------------------------------- presence

  test('GET /api/channels/NAME/presence → clients with decimal ids and user null', async () => {
    const a = await ps();
    const b = await ps();
    await a.sub('chat.api');
    await b.sub('chat.api');
    const r = await api(srv, 'GET', '/api/channels/chat.api/presence');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.channel, 'chat.api');
    assert.equal(r.json.clients.length, 2, r.text);
    for (const e of r.json.clients) {
      assert.deepEqual(Object.keys(e).sort(), ['client', 'user']);
      assert.match(e.client, /^\d+$/);
      assert.equal(e.user, null, r.text);
    }
    // the same ids as the /pubsub presence command
    const viaWs = await a.req({ type: 'presence', channel: 'chat.api' });
    assert.deepEqual(viaWs.clients.map((e) => e.client).sort(), r.json.clients.map((e) => e.client).sort());
  });

  test('GET presence of a channel with presence off → 403', async () => {
    const a = await ps();
    await a.sub('nopres.api');
    assertError(await api(srv, 'GET', '/api/channels/nopres.api/presence'), 403, 'presence off');
  });

  // ---------------------------------------------------------------- disconnect

  test('POST /api/disconnect closes exactly that connection with 4001', async () => {
    const a = await ps();
    const b = await ps();
    await a.sub('chat.kick');
    const solo = await a.req({ type: 'presence', channel: 'chat.kick' });
    const aId = solo.clients[0].client;
    await b.sub('chat.kick');
    const r = await api(srv, 'POST', '/api/disconnect', { body: { client: aId } });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, { disconnected: 1 });
    const closed = await a.waitClose(4000);
    assert.ok(closed, 'the connection was not closed');
    assert.equal(closed.code, 4001);
    assert.equal(b.closed, null);
    assert.equal((await b.req({ type: 'ping' })).type, 'pong', 'the other connection is still usable');
    const leave = await b.take((f) => f.type === 'leave', 'leave of the disconnected client');
    assert.equal(leave.client, aId);
    // a second time: nobody has that id any more
    const again = await api(srv, 'POST', '/api/disconnect', { body: { client: aId } });
    assert.equal(again.status, 200, again.text);
    assert.deepEqual(again.json, { disconnected: 0 });
  });

  test('POST /api/disconnect of an unknown client → 200 {disconnected:0}', async () => {
    const r = await api(srv, 'POST', '/api/disconnect', { body: { client: '987654321987' } });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, { disconnected: 0 });
  });

  const badDisconnect = [
    ['invalid JSON', '{'],
    ['client missing', {}],
    ['client not a decimal string', { client: 'abc' }],
    ['client an object', { client: { id: 1 } }],
  ];
  for (const [name, body] of badDisconnect) {
    test(`POST /api/disconnect with ${name} → 400`, async () => {
      assertError(await api(srv, 'POST', '/api/disconnect', { body }), 400, name);
    });
  }

  // ---------------------------------------------------------------- stats

  test('GET /api/stats → connections, threads, messages_in, messages_out; the counters move', async () => {
    const a = await ps();
    const b = await ps();
    await b.sub('stats.x');
    const r1 = await api(srv, 'GET', '/api/stats');
    assert.equal(r1.status, 200, r1.text);
    for (const k of ['connections', 'threads', 'messages_in', 'messages_out']) {
      assert.equal(typeof r1.json[k], 'number', `${k} in ${r1.text}`);
      assert.ok(Number.isInteger(r1.json[k]) && r1.json[k] >= 0, `${k} in ${r1.text}`);
    }
    assert.equal(r1.json.threads, 2);
    assert.ok(r1.json.connections >= 2, `at least the 2 open /pubsub connections: ${r1.text}`);
    for (let i = 0; i < 5; i++) await a.req({ type: 'publish', channel: 'stats.x', data: i });
    for (let i = 0; i < 5; i++) await b.message('stats.x');
    const deadline = Date.now() + 3000;
    let r2;
    for (;;) {
      r2 = await api(srv, 'GET', '/api/stats');
      if ((r2.json.messages_in >= r1.json.messages_in + 5 && r2.json.messages_out >= r1.json.messages_out + 5) || Date.now() > deadline) break;
      await sleep(50);
    }
    assert.ok(r2.json.messages_in >= r1.json.messages_in + 5, `messages_in ${r1.json.messages_in} → ${r2.json.messages_in}`);
    assert.ok(r2.json.messages_out >= r1.json.messages_out + 5, `messages_out ${r1.json.messages_out} → ${r2.json.messages_out}`);
  });

  // ---------------------------------------------------------------- 405, 404

  const wrongMethod = [
    ['GET', '/api/publish', 'POST'],
    ['PUT', '/api/publish', 'POST'],
    ['GET', '/api/broadcast', 'POST'],
    ['GET', '/api/disconnect', 'POST'],
    ['POST', '/api/channels', 'GET'],
    ['DELETE', '/api/channels', 'GET'],
    ['POST', '/api/stats', 'GET'],
    ['POST', '/api/channels/x.y/history', 'GET'],
    ['POST', '/api/channels/x.y/presence', 'GET'],
  ];
  for (const [method, path, allowed] of wrongMethod) {
    test(`${method} ${path} → 405 with Allow: ${allowed}`, async () => {
      const r = await api(srv, method, path, method === 'GET' || method === 'DELETE' ? {} : { body: '{}' });
      assertError(r, 405, `${method} ${path}`);
      assert.ok((r.headers.get('allow') || '').split(/\s*,\s*/).includes(allowed), `Allow: ${r.headers.get('allow')}`);
    });
  }

  for (const path of ['/api/nope', '/api/', '/api/publishx', '/api/channels/x.y/nope', '/api/channels/x.y', '/api/stats/more']) {
    test(`GET ${path} → 404`, async () => {
      assertError(await api(srv, 'GET', path), 404, path);
    });
  }

  // ---------------------------------------------------------------- raw HTTP: 413, keep-alive

  test('a body over 1 MiB → 413 (raw socket)', async () => {
    const c = await rawConnect(srv.port);
    try {
      const n = (1 << 20) + 1;
      const head = `POST /api/publish HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\nContent-Type: application/json\r\nContent-Length: ${n}\r\n\r\n`;
      const body = Buffer.alloc(n, 0x20);
      body.write('{"channel":"big.x","data":"');
      body.write('"}', n - 2);
      c.sendRaw(Buffer.concat([Buffer.from(head), body])).catch(() => {});
      const res = await c.readHttpResponse({ timeoutMs: 5000 });
      assert.equal(res.status, 413, res.raw);
    } finally { c.destroy(); }
    // nothing was published
    const h = await api(srv, 'GET', '/api/channels/big.x/history');
    if (h.status === 200) assert.deepEqual(h.json.messages, []);
  });

  test('a body just under 1 MiB is accepted', async () => {
    const data = 'x'.repeat((1 << 20) - 100);
    const r = await api(srv, 'POST', '/api/publish', { body: { channel: 'big.ok', data } });
    assert.equal(r.status, 200, r.text.slice(0, 200));
  });

  test('HTTP/1.1 keep-alive: several requests on one connection, sequential and pipelined', async () => {
    const c = await rawConnect(srv.port);
    try {
      const reqs = [
        httpRequest('GET', '/api/stats', srv.port),
        httpRequest('POST', '/api/publish', srv.port, { body: '{"channel":"ka.x","data":1}' }),
        httpRequest('GET', '/api/channels/ka.x/history', srv.port),
        httpRequest('GET', '/api/nope', srv.port),
        httpRequest('POST', '/api/publish', srv.port, { body: '{"channel":"ka.x"}' }),
        httpRequest('GET', '/api/channels', srv.port),
      ];
      const want = [200, 200, 200, 404, 400, 200];
      for (let i = 0; i < reqs.length; i++) {
        await c.sendRaw(reqs[i]);
        const res = await c.readHttpResponse({ timeoutMs: 5000 });
        assert.equal(res.status, want[i], `request ${i + 1}: ${res.raw}`);
        assert.ok(!/^close$/i.test(res.get('connection') || ''), `request ${i + 1} answered with Connection: close:\n${res.raw}`);
        if (i === 1) assert.equal(JSON.parse(res.body).offset, 1);
        if (i === 2) assert.equal(JSON.parse(res.body).messages.length, 1);
      }
      // pipelined: three requests in one write
      await c.sendRaw(reqs[1] + reqs[1] + reqs[0]);
      const r1 = await c.readHttpResponse({ timeoutMs: 5000 });
      const r2 = await c.readHttpResponse({ timeoutMs: 5000 });
      const r3 = await c.readHttpResponse({ timeoutMs: 5000 });
      assert.deepEqual([r1.status, r2.status, r3.status], [200, 200, 200]);
      assert.deepEqual([JSON.parse(r1.body).offset, JSON.parse(r2.body).offset], [2, 3], 'answered in order');
      assert.equal(c.tcpClosed, false, 'the connection stays open');
    } finally { c.destroy(); }
  });

  test('Connection: close is honoured', async () => {
    const c = await rawConnect(srv.port);
    try {
      await c.sendRaw(httpRequest('GET', '/api/stats', srv.port, { headers: { Connection: 'close' } }));
      const res = await c.readHttpResponse({ timeoutMs: 5000 });
      assert.equal(res.status, 200);
      assert.ok(await c.waitForTcpClose(3000), 'server did not close');
    } finally { c.destroy(); }
  });
});

describe('HTTP API with --api-key', { timeout: 30000 }, () => {
  let srv;
  const KEY = 'k3y-s3cret';
  const conns = [];

  before(async () => { srv = await startHerald(['--api-key', KEY]); });
  after(async () => {
    for (const c of conns) c.close();
    if (srv) await srv.stop();
  });

  const endpoints = [
    ['GET', '/api/stats'],
    ['GET', '/api/channels'],
    ['GET', '/api/channels/auth.x/history'],
    ['POST', '/api/publish', { channel: 'auth.x', data: 1 }],
    ['POST', '/api/broadcast', { channels: ['auth.x'], data: 1 }],
    ['POST', '/api/disconnect', { client: '1' }],
    ['GET', '/api/nope'],
  ];
  for (const [method, path, body] of endpoints) {
    test(`${method} ${path} without a key → 401`, async () => {
      assertError(await api(srv, method, path, { body }), 401, 'no key');
    });
    test(`${method} ${path} with a wrong key → 401 (Bearer and X-API-Key)`, async () => {
      assertError(await api(srv, method, path, { body, headers: { Authorization: `Bearer ${KEY}x` } }), 401, 'wrong bearer');
      assertError(await api(srv, method, path, { body, headers: { 'X-API-Key': 'nope' } }), 401, 'wrong x-api-key');
      assertError(await api(srv, method, path, { body, headers: { Authorization: KEY } }), 401, 'key without Bearer');
      assertError(await api(srv, method, path, { body, headers: { Authorization: `Basic ${KEY}` } }), 401, 'Basic scheme');
    });
  }

  test('Authorization: Bearer KEY and X-API-Key: KEY are accepted', async () => {
    const a = await api(srv, 'GET', '/api/stats', { headers: { Authorization: `Bearer ${KEY}` } });
    assert.equal(a.status, 200, a.text);
    const b = await api(srv, 'GET', '/api/stats', { headers: { 'X-API-Key': KEY } });
    assert.equal(b.status, 200, b.text);
    const p = await api(srv, 'POST', '/api/publish', { body: { channel: 'auth.ok', data: 1 }, headers: { 'X-API-Key': KEY } });
    assert.equal(p.status, 200, p.text);
    const n = await api(srv, 'GET', '/api/nope', { headers: { 'X-API-Key': KEY } });
    assertError(n, 404, 'authorized unknown path');
  });

  test('an unauthorized publish publishes nothing; an authorized one reaches /pubsub (which needs no key)', async () => {
    const s = await Ps.open(srv.url);
    conns.push(s);
    await s.sub('auth.flow');
    const bad = await api(srv, 'POST', '/api/publish', { body: { channel: 'auth.flow', data: 'no' } });
    assertError(bad, 401, 'no key');
    assert.deepEqual(await s.quiet(300, (f) => f.type === 'message'), []);
    const ok = await api(srv, 'POST', '/api/publish', { body: { channel: 'auth.flow', data: 'yes' }, headers: { Authorization: `Bearer ${KEY}` } });
    assert.equal(ok.status, 200, ok.text);
    const m = await s.message('auth.flow');
    assert.deepEqual([m.offset, m.data], [1, 'yes']);
  });

  test('/healthz needs no key', async () => {
    const r = await api(srv, 'GET', '/healthz');
    assert.equal(r.status, 200);
  });
});
