// web/herald.js against the real server, in Node (the `ws` package as WebSocket):
// publish/subscribe/history/presence/ping over /pubsub; a network cut (a TCP proxy we
// control) and a graceful takeover restart, after each of which herald.js recovers the
// messages published meanwhile exactly once; a plain restart, where history is gone and
// herald.js says so with a 'gap'; and the SSE and long-polling fallbacks when WebSocket
// cannot be constructed. Every wait is bounded.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { Herald } from '../../../web/herald.js';
import {
  startHerald as start, sleep, waitUntil, withTimeout, freePort,
} from '../helpers/herald.mjs';

// Every server started here, checked at the end for sanitizer reports (ASan/UBSan builds).
const servers = [];
async function startHerald(args, opts) {
  const srv = await start(args, opts);
  servers.push(srv);
  return srv;
}
after(() => {
  for (const srv of servers) {
    assert.doesNotMatch(srv.stderr(), /runtime error|AddressSanitizer|LeakSanitizer/, srv.stderr());
  }
});

const FAST = { reconnectDelay: { min: 50, max: 200 }, requestTimeout: 5000 };

function client(port, opts = {}) {
  const h = new Herald(`ws://127.0.0.1:${port}/pubsub`, { WebSocket, ...FAST, ...opts });
  h.log = { states: [], errors: [], gaps: [], connected: 0, disconnected: [] };
  h.on('state', (s) => h.log.states.push(s));
  h.on('error', (e) => h.log.errors.push(e));
  h.on('gap', (g) => h.log.gaps.push(g));
  h.on('connected', () => { h.log.connected++; });
  h.on('disconnected', (d) => h.log.disconnected.push(d));
  return h;
}

function waitConnected(h, n = 1, ms = 5000) {
  return waitUntil(() => h.log.connected >= n && h.state === 'connected', ms, `herald.js connected (${n})`);
}

/** POST /api/publish on the server itself; retries while a restart is under way. */
async function apiPublish(port, channel, data, { retryMs = 5000 } = {}) {
  const deadline = Date.now() + retryMs;
  for (;;) {
    try {
      const r = await httpJson(port, 'POST', '/api/publish', { channel, data });
      if (r.status === 200) return r.body;
      if (r.status !== 503) throw new Error(`publish: ${r.status} ${JSON.stringify(r.body)}`);
    } catch (e) {
      if (!/ECONNREFUSED|ECONNRESET|socket hang up/.test(e.message)) throw e;
    }
    if (Date.now() > deadline) throw new Error(`publish to ${channel} never succeeded`);
    await sleep(10);
  }
}

function httpJson(port, method, p, body) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? null : Buffer.from(JSON.stringify(body));
    const req = http.request({
      host: '127.0.0.1', port, path: p, method, agent: false,
      headers: data ? { 'Content-Type': 'application/json', 'Content-Length': data.length } : {},
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => {
        let j = null;
        try { j = JSON.parse(text); } catch { /* not JSON */ }
        resolve({ status: res.statusCode, headers: res.headers, body: j, text });
      });
    });
    req.setTimeout(5000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(data || undefined);
  });
}

/** A TCP proxy whose connections we can cut, and which can refuse while "down". */
function startProxy(targetPort) {
  const conns = new Set();
  let down = false;
  const server = net.createServer((c) => {
    if (down) { c.destroy(); return; }
    const u = net.connect(targetPort, '127.0.0.1');
    conns.add(c);
    conns.add(u);
    const kill = () => { c.destroy(); u.destroy(); conns.delete(c); conns.delete(u); };
    c.on('error', kill); u.on('error', kill); c.on('close', kill); u.on('close', kill);
    c.pipe(u);
    u.pipe(c);
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve({
      port: server.address().port,
      cut() { down = true; for (const s of conns) s.destroy(); conns.clear(); },
      restore() { down = false; },
      close() { this.cut(); return new Promise((r) => server.close(() => r())); },
    }));
  });
}

function tmpDir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'herald-js-'));
}

// ---------------------------------------------------------------------------------------

test('herald.js over /pubsub: subscribe, publish, history, presence, ping', async (t) => {
  const srv = await startHerald(['--namespace', 'room.*:presence=on']);
  const a = client(srv.port);
  const b = client(srv.port);
  t.after(async () => { a.close(); b.close(); await srv.stop(); });
  const got = [];
  a.connect();
  b.connect();
  const sub = a.subscribe('chat.lobby', (m) => got.push(m));
  await withTimeout(sub.ready, 5000, 'subscribe');
  assert.equal(a.transport, 'websocket');
  assert.equal(a.state, 'connected');

  const r1 = await b.publish('chat.lobby', { text: 'hi' });
  const r2 = await b.publish('chat.lobby', { text: 'there' });
  assert.equal(r2.offset, r1.offset + 1);
  assert.equal(typeof r1.epoch, 'string');
  await waitUntil(() => got.length === 2, 5000, 'two messages');
  assert.deepEqual(got.map((m) => m.data.text), ['hi', 'there']);
  assert.deepEqual(Object.keys(got[0]).sort(), ['channel', 'data', 'epoch', 'offset', 'timestamp', 'type']);
  assert.deepEqual(sub.position, { offset: r2.offset, epoch: r2.epoch });

  const hist = await b.history('chat.lobby', { limit: 1 });
  assert.deepEqual(hist.messages.map((m) => m.data.text), ['there']);
  assert.equal(hist.offset, r2.offset);

  // presence: a's subscription is listed
  const room = a.subscribe('room.1', () => {});
  await withTimeout(room.ready, 5000, 'subscribe room.1');
  const clients = await b.presence('room.1');
  assert.equal(clients.length, 1);
  assert.equal(clients[0].user, null);

  const rtt = await a.ping();
  assert.ok(typeof rtt === 'number' && rtt >= 0);
  assert.equal(a.latency, rtt);

  // errors carry the server's code
  await assert.rejects(b.publish('', 1), (e) => e.code === 'bad_request');
  await assert.rejects(b.history('never.published'), (e) => e.code === 'not_found');

  sub.unsubscribe();
  await b.publish('chat.lobby', { text: 'after' });
  await b.ping(); // a round trip later, nothing more arrived
  await a.ping();
  assert.equal(got.length, 2);
  assert.deepEqual(a.log.errors, []);
});

test('network cut: herald.js reconnects and recovers what was published meanwhile, exactly once', async (t) => {
  const srv = await startHerald(['--namespace', 'orders.*:history=100']);
  const proxy = await startProxy(srv.port);
  const h = client(proxy.port, { transports: ['websocket'] });
  t.after(async () => { h.close(); await proxy.close(); await srv.stop(); });
  const got = [];
  h.subscribe('orders.42', (m) => got.push(m.data.n));
  h.connect();
  await waitConnected(h);
  await waitUntil(() => h.position() !== '', 5000, 'subscribed');
  for (let n = 1; n <= 3; n++) await apiPublish(srv.port, 'orders.42', { n });
  await waitUntil(() => got.length === 3, 5000, 'messages before the cut');

  proxy.cut();
  await waitUntil(() => h.log.disconnected.length === 1, 5000, 'the drop noticed');
  assert.equal(h.log.disconnected[0].willReconnect, true);
  await waitUntil(() => h.log.states.some((s) => s.state === 'reconnecting' && s.retryInMs > 0), 5000, 'reconnecting in N ms');
  for (let n = 4; n <= 8; n++) await apiPublish(srv.port, 'orders.42', { n });
  await sleep(300); // a few refused attempts
  proxy.restore();
  await waitConnected(h, 2);
  await waitUntil(() => got.length >= 8, 5000, 'recovered messages');
  await apiPublish(srv.port, 'orders.42', { n: 9 });
  await waitUntil(() => got.length >= 9, 5000, 'live again');
  await h.ping();
  assert.deepEqual(got, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.deepEqual(h.log.gaps, []);
  assert.deepEqual(h.log.errors, []);
});

test('graceful takeover restart: herald.js recovers every message across it, exactly once', async (t) => {
  const dir = tmpDir();
  const sock = path.join(dir, 'h.sock');
  const port = await freePort();
  const common = ['--listen', `127.0.0.1:${port}`, '--handoff-socket', sock, '--shutdown-timeout', '3'];
  const a = await startHerald(common);
  let b = null;
  // a reconnect delay of ~0.9 s leaves time to publish on B before the client is back
  const h = client(port, { transports: ['websocket'], reconnectDelay: { min: 1000, max: 1000 }, random: () => 0.9 });
  t.after(async () => {
    h.close();
    await a.stop({ graceMs: 2000 });
    if (b) await b.stop({ graceMs: 5000 });
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const got = [];
  h.subscribe('chat.room', (m) => got.push(m.data.n));
  h.connect();
  await waitConnected(h);
  await waitUntil(() => h.position() !== '', 5000, 'subscribed');
  for (let n = 1; n <= 3; n++) await apiPublish(port, 'chat.room', { n });
  await waitUntil(() => got.length === 3, 5000, 'messages on A');

  b = await startHerald([...common, '--takeover', sock], { timeoutMs: 20000 });
  await waitUntil(() => h.log.disconnected.length >= 1, 10000, 'A closing the client');
  assert.equal(h.log.disconnected[0].code, 1001);
  assert.match(h.log.disconnected[0].reason, /reconnect/);
  for (let n = 4; n <= 6; n++) await apiPublish(port, 'chat.room', { n });
  await waitConnected(h, 2, 10000);
  for (let n = 7; n <= 8; n++) await apiPublish(port, 'chat.room', { n });
  await waitUntil(() => got.length >= 8, 5000, 'every message');
  await h.ping();
  assert.deepEqual(got, [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.deepEqual(h.log.gaps, [], 'B kept the history: no gap');
});

test('plain restart: history is gone, herald.js reports a gap and follows the new epoch', async (t) => {
  const port = await freePort();
  let srv = await startHerald(['--listen', `127.0.0.1:${port}`]);
  const h = client(port, { transports: ['websocket'] });
  t.after(async () => { h.close(); await srv.stop(); });
  const got = [];
  const sub = h.subscribe('news', (m) => got.push(m.data.n));
  h.connect();
  await withTimeout(sub.ready, 5000, 'subscribe');
  await apiPublish(port, 'news', { n: 1 });
  await waitUntil(() => got.length === 1, 5000, 'first message');
  const before = sub.position;

  await srv.stop();
  srv = await startHerald(['--listen', `127.0.0.1:${port}`]);
  await waitConnected(h, 2, 10000);
  await waitUntil(() => h.log.gaps.length === 1, 5000, 'a gap event');
  const gap = h.log.gaps[0];
  assert.equal(gap.channel, 'news');
  assert.deepEqual(gap.since, before);
  assert.notEqual(gap.epoch, before.epoch, 'a new epoch after a plain restart');
  await apiPublish(port, 'news', { n: 2 });
  await waitUntil(() => got.length === 2, 5000, 'a message of the new epoch');
  assert.deepEqual(got, [1, 2]);
  assert.equal(sub.position.epoch, gap.epoch);
});

class BlockedWebSocket {
  constructor() { throw new Error('WebSocket blocked'); }
}

test('fallback to SSE when WebSocket cannot be used: receive, publish, recover', async (t) => {
  const srv = await startHerald(['--namespace', 'chat.*:history=100']);
  const h = client(srv.port, { WebSocket: BlockedWebSocket, transports: ['websocket', 'sse', 'poll'] });
  t.after(async () => { h.close(); await srv.stop(); });
  const got = [];
  const sub = h.subscribe('chat.lobby', (m) => got.push(m.data.n));
  h.connect();
  await withTimeout(sub.ready, 5000, 'subscribed over SSE');
  assert.equal(h.transport, 'sse');
  await apiPublish(srv.port, 'chat.lobby', { n: 1 });
  const r = await h.publish('chat.lobby', { n: 2 }); // POST /sse
  assert.equal(typeof r.offset, 'number');
  await waitUntil(() => got.length === 2, 5000, 'two messages over SSE');
  // a second channel reopens the stream with since: nothing lost, nothing repeated
  const other = [];
  const sub2 = h.subscribe('chat.other', (m) => other.push(m.data.n));
  await withTimeout(sub2.ready, 5000, 'second channel');
  await apiPublish(srv.port, 'chat.lobby', { n: 3 });
  await apiPublish(srv.port, 'chat.other', { n: 1 });
  await waitUntil(() => got.length === 3 && other.length === 1, 5000, 'both channels');
  assert.deepEqual(got, [1, 2, 3]);
  assert.deepEqual(other, [1]);
  await assert.rejects(h.history('chat.lobby'), (e) => e.code === 'unsupported');
  assert.deepEqual(h.log.errors, []);
});

test('fallback to long-polling when WebSocket and SSE cannot be used', async (t) => {
  const srv = await startHerald(['--namespace', 'chat.*:history=100']);
  const h = client(srv.port, { WebSocket: BlockedWebSocket, transports: ['websocket', 'poll'], pollTimeout: 5 });
  t.after(async () => { h.close(); await srv.stop(); });
  const got = [];
  const sub = h.subscribe('chat.poll', (m) => got.push(m.data.n));
  h.connect();
  await withTimeout(sub.ready, 5000, 'subscribed over poll');
  assert.equal(h.transport, 'poll');
  await apiPublish(srv.port, 'chat.poll', { n: 1 });
  await h.publish('chat.poll', { n: 2 }); // POST /poll
  await waitUntil(() => got.length === 2, 8000, 'two messages over long-polling');
  assert.deepEqual(got, [1, 2]);
  assert.deepEqual(h.log.errors, []);
});

test('SSE cut: herald.js reopens the stream with the position and recovers exactly once', async (t) => {
  const srv = await startHerald(['--namespace', 'chat.*:history=100']);
  const proxy = await startProxy(srv.port);
  const h = client(proxy.port, { WebSocket: BlockedWebSocket, transports: ['websocket', 'sse'] });
  t.after(async () => { h.close(); await proxy.close(); await srv.stop(); });
  const got = [];
  const sub = h.subscribe('chat.sse', (m) => got.push(m.data.n));
  h.connect();
  await withTimeout(sub.ready, 5000, 'subscribed over SSE');
  for (let n = 1; n <= 2; n++) await apiPublish(srv.port, 'chat.sse', { n });
  await waitUntil(() => got.length === 2, 5000, 'messages before the cut');

  proxy.cut();
  await waitUntil(() => h.log.disconnected.length === 1, 5000, 'the drop noticed');
  for (let n = 3; n <= 5; n++) await apiPublish(srv.port, 'chat.sse', { n });
  await sleep(200);
  proxy.restore();
  await waitConnected(h, 2, 10000);
  assert.equal(h.transport, 'sse');
  await apiPublish(srv.port, 'chat.sse', { n: 6 });
  await waitUntil(() => got.length >= 6, 5000, 'recovered and live');
  await sleep(100);
  assert.deepEqual(got, [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(h.log.gaps, []);
});

function jwt(claims, secret) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const input = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  return `${input}.${crypto.createHmac('sha256', secret).update(input).digest('base64url')}`;
}

test('tokens: herald.js authenticates on WebSocket and on the SSE fallback', async (t) => {
  const secret = 'herald-js-test-secret';
  const srv = await startHerald(['--auth', 'required', '--jwt-secret', secret,
    '--namespace', 'room.*:presence=on']);
  let asked = 0;
  const token = () => { asked++; return jwt({ sub: 'alice', exp: Math.floor(Date.now() / 1000) + 600 }, secret); };
  const ws = client(srv.port, { token, transports: ['websocket'] });
  const sse = client(srv.port, { token, WebSocket: BlockedWebSocket, transports: ['websocket', 'sse'] });
  const anon = client(srv.port, { transports: ['websocket'] });
  t.after(async () => { ws.close(); sse.close(); anon.close(); await srv.stop(); });

  const got = [];
  const s1 = ws.subscribe('room.1', (m) => got.push(['ws', m.data]));
  const s2 = sse.subscribe('room.1', (m) => got.push(['sse', m.data]));
  ws.connect();
  sse.connect();
  await withTimeout(Promise.all([s1.ready, s2.ready]), 5000, 'both subscribed');
  assert.ok(asked >= 2, 'the token function was asked');
  const clients = await ws.presence('room.1');
  assert.ok(clients.some((c) => c.user === 'alice'));
  await sse.publish('room.1', 'from sse'); // POST with Authorization: Bearer
  await waitUntil(() => got.length === 2, 5000, 'both got the message');

  // without a token the handshake is refused: herald.js keeps retrying, never connects
  anon.connect();
  await waitUntil(() => anon.log.states.filter((s) => s.state === 'reconnecting' && s.retryInMs > 0).length >= 2,
    5000, 'anonymous client retrying');
  assert.equal(anon.log.connected, 0);
});
