// Security: the configured limits (docs/security.md). Connections in total (503 at the
// handshake, a slot freed by a close, raised live by SIGHUP), per client address (two
// loopback addresses), the message rate (a burst closed with 1008, a steady client
// kept), subscriptions per connection (/pubsub limit_exceeded, /stomp ERROR). Every
// refusal shows in herald_limit_rejections_total{limit=...}. Each test starts its own
// herald and signals only that PID; every wait is bounded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { startHerald, sleep, waitUntil, withTimeout } from '../helpers/herald.mjs';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-limits-'));
process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));

// Opens a WebSocket. Resolves to { ws } when open, or { status, headers, body } when the
// handshake is refused with an HTTP answer.
function connect(url, { localAddress, protocol } = {}) {
  return withTimeout(new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocol ? [protocol] : [], { perMessageDeflate: false, localAddress });
    ws.once('open', () => resolve({ ws }));
    ws.once('unexpected-response', (req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
      res.on('error', reject);
    });
    ws.once('error', (e) => reject(e));
  }), 5000, `connect ${url}`);
}

function closed(ws) {
  if (ws.readyState === WebSocket.CLOSED) return Promise.resolve({ code: ws._closeCode });
  return withTimeout(new Promise((resolve) => {
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }));
  }), 5000, 'close');
}

// Retries connect until it opens (a slot frees asynchronously, after the server has seen
// the close). Resolves to the open WebSocket.
async function connectWhenFree(url, opts, what) {
  const deadline = Date.now() + 5000;
  for (;;) {
    const r = await connect(url, opts);
    if (r.ws) return r.ws;
    if (Date.now() >= deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

async function rejections(srv) {
  const res = await fetch(`http://127.0.0.1:${srv.port}/metrics`);
  const text = await res.text();
  const out = {};
  for (const m of text.matchAll(/^herald_limit_rejections_total\{limit="([a-z_]+)"\} (\d+)$/gm)) {
    out[m[1]] = Number(m[2]);
  }
  return out;
}

test('--max-connections: the next handshake gets 503, a close frees a slot', async () => {
  // /metrics is a connection too: it is read after the WebSockets are gone.
  const srv = await startHerald(['--threads', '2', '--max-connections', '5']);
  try {
    const open = [];
    for (let i = 0; i < 5; i++) {
      const r = await connect(`${srv.url}/ws`);
      assert.ok(r.ws, `connection ${i + 1} opens`);
      open.push(r.ws);
    }
    const sixth = await connect(`${srv.url}/ws`);
    assert.equal(sixth.status, 503);
    assert.ok(Number(sixth.headers['retry-after']) > 0, 'Retry-After');
    assert.match(sixth.body, /too many connections/);
    // A plain HTTP request over the limit gets the same answer.
    const res = await fetch(`http://127.0.0.1:${srv.port}/healthz`);
    assert.equal(res.status, 503);
    await res.text();
    const first = open.shift();
    first.close();
    await closed(first);
    open.push(await connectWhenFree(`${srv.url}/ws`, {}, 'a slot after a close'));
    for (const ws of open) ws.close();
    await Promise.all(open.map(closed));
    await sleep(100);
    const rej = await rejections(srv);
    assert.ok(rej.max_connections >= 2, `max_connections rejections: ${JSON.stringify(rej)}`);
  } finally { assert.equal(await srv.stop(), 0, `herald exit: ${srv.stderr().slice(-3000)}`); }
});

test('--max-connections-per-ip: counted per client address', async () => {
  const srv = await startHerald(['--max-connections-per-ip', '3']);
  try {
    const a = [];
    for (let i = 0; i < 3; i++) a.push((await connect(`${srv.url}/ws`, { localAddress: '127.0.0.1' })).ws);
    assert.ok(a.every(Boolean));
    const over = await connect(`${srv.url}/ws`, { localAddress: '127.0.0.1' });
    assert.equal(over.status, 503);
    assert.match(over.body, /from this address/);
    // Another address has its own count.
    const b = [];
    for (let i = 0; i < 3; i++) b.push((await connect(`${srv.url}/ws`, { localAddress: '127.0.0.2' })).ws);
    assert.ok(b.every(Boolean), '127.0.0.2 gets its own 3');
    assert.equal((await connect(`${srv.url}/ws`, { localAddress: '127.0.0.2' })).status, 503);
    // Plain HTTP is not counted per address.
    assert.equal((await fetch(`http://127.0.0.1:${srv.port}/healthz`)).status, 200);
    // A close gives the address a slot back; already open connections are untouched.
    a[0].close();
    await closed(a[0]);
    a[0] = await connectWhenFree(`${srv.url}/ws`, { localAddress: '127.0.0.1' }, 'a slot for 127.0.0.1');
    for (const ws of [...a, ...b]) assert.equal(ws.readyState, WebSocket.OPEN);
    const rej = await rejections(srv);
    assert.ok(rej.max_connections_per_ip >= 2, JSON.stringify(rej));
    for (const ws of [...a, ...b]) ws.close();
  } finally { assert.equal(await srv.stop(), 0, `herald exit: ${srv.stderr().slice(-3000)}`); }
});

const SECRET = 'limits-secret-0123456789-abcdefghij';
function jwt(sub) {
  const b64u = (b) => Buffer.from(b).toString('base64url');
  const input = `${b64u(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${b64u(JSON.stringify({ sub }))}`;
  return `${input}.${b64u(crypto.createHmac('sha256', SECRET).update(input).digest())}`;
}

// STOMP over a raw WebSocket: CONNECT with headers; resolves to the text received so far
// once a CONNECTED or ERROR frame is in, with the socket.
async function stompConnect(url, headers = {}) {
  const ws = (await connect(url, { protocol: 'v12.stomp' })).ws;
  const st = { ws, text: '' };
  ws.on('message', (d) => { st.text += d.toString(); });
  const h = Object.entries({ 'accept-version': '1.2', host: 'localhost', ...headers })
    .map(([k, v]) => `${k}:${v}\n`).join('');
  ws.send(`CONNECT\n${h}\n\0`);
  await waitUntil(() => /^(CONNECTED|ERROR)/m.test(st.text), 5000, 'CONNECTED or ERROR');
  return st;
}

test('--max-connections-per-user: tokens at the handshake (503), STOMP at CONNECT (1013)', async () => {
  const srv = await startHerald(['--auth', 'optional', '--jwt-secret', SECRET, '--max-connections-per-user', '2']);
  try {
    const alice = jwt('alice');
    const a1 = (await connect(`${srv.url}/ws?token=${alice}`)).ws;
    const a2 = (await connect(`${srv.url}/ws?token=${alice}`)).ws;
    assert.ok(a1 && a2);
    const a3 = await connect(`${srv.url}/ws?token=${alice}`);
    assert.equal(a3.status, 503);
    assert.match(a3.body, /for this user/);
    assert.ok((await connect(`${srv.url}/ws?token=${jwt('bob')}`)).ws, 'another user');
    assert.ok((await connect(`${srv.url}/ws`)).ws, 'anonymous connections are not per-user');
    // STOMP: the token comes with CONNECT.
    const st = await stompConnect(`${srv.url}/stomp`, { passcode: alice });
    assert.match(st.text, /^ERROR/m);
    assert.match(st.text, /message:too many connections for this user/);
    assert.equal((await closed(st.ws)).code, 1013);
    a1.close();
    await closed(a1);
    await sleep(50);
    const ok = await stompConnect(`${srv.url}/stomp`, { passcode: alice });
    assert.match(ok.text, /^CONNECTED/m);
    assert.match(ok.text, /user-name:alice/);
    const rej = await rejections(srv);
    assert.equal(rej.max_connections_per_user, 2);
    a2.close();
    ok.ws.close();
  } finally { assert.equal(await srv.stop(), 0, `herald exit: ${srv.stderr().slice(-3000)}`); }
});

test('--auth off: a STOMP login is claimed, not counted per user', async () => {
  const srv = await startHerald(['--max-connections-per-user', '1']);
  try {
    const one = await stompConnect(`${srv.url}/stomp`, { login: 'carol' });
    const two = await stompConnect(`${srv.url}/stomp`, { login: 'carol' });
    assert.match(one.text, /^CONNECTED/m);
    assert.match(two.text, /^CONNECTED/m);
    one.ws.close();
    two.ws.close();
  } finally { assert.equal(await srv.stop(), 0, `herald exit: ${srv.stderr().slice(-3000)}`); }
});

test('--max-message-rate: a burst is closed with 1008, a steady client stays', async () => {
  const srv = await startHerald(['--max-message-rate', '10', '--message-burst', '5']);
  try {
    const steady = (await connect(`${srv.url}/ws`)).ws;
    const flood = (await connect(`${srv.url}/ws`)).ws;
    let echoed = 0;
    steady.on('message', () => { echoed++; });
    const floodClosed = closed(flood);
    for (let i = 0; i < 50; i++) flood.send(`m${i}`);
    const fc = await floodClosed;
    assert.equal(fc.code, 1008);
    assert.equal(fc.reason, 'message rate exceeded');
    // 5 messages/s for 2 s: well within 10/s.
    for (let i = 0; i < 10; i++) {
      steady.send(`s${i}`);
      await sleep(200);
    }
    await waitUntil(() => echoed === 10, 5000, 'ten echoes');
    assert.equal(steady.readyState, WebSocket.OPEN);
    const rej = await rejections(srv);
    assert.equal(rej.max_message_rate, 1);
    steady.close();
  } finally { assert.equal(await srv.stop(), 0, `herald exit: ${srv.stderr().slice(-3000)}`); }
});

test('--max-message-rate 0: no limit', async () => {
  const srv = await startHerald(['--max-message-rate', '0', '--message-burst', '1']);
  try {
    const ws = (await connect(`${srv.url}/ws`)).ws;
    let n = 0;
    ws.on('message', () => { n++; });
    for (let i = 0; i < 2000; i++) ws.send('x');
    await waitUntil(() => n === 2000, 10000, '2000 echoes');
    assert.equal(ws.readyState, WebSocket.OPEN);
    ws.close();
  } finally { assert.equal(await srv.stop(), 0, `herald exit: ${srv.stderr().slice(-3000)}`); }
});

test('--max-subscriptions: /pubsub limit_exceeded, /stomp ERROR', async () => {
  const srv = await startHerald(['--max-subscriptions', '3']);
  try {
    const ps = (await connect(`${srv.url}/pubsub`)).ws;
    const replies = new Map();
    ps.on('message', (d) => { const m = JSON.parse(d.toString()); if (m.id !== undefined) replies.set(m.id, m); });
    for (let i = 1; i <= 4; i++) ps.send(JSON.stringify({ type: 'subscribe', id: i, channel: `lim.${i}` }));
    await waitUntil(() => replies.size === 4, 5000, 'four replies');
    for (let i = 1; i <= 3; i++) assert.equal(replies.get(i).type, 'ok', JSON.stringify(replies.get(i)));
    assert.equal(replies.get(4).type, 'error');
    assert.equal(replies.get(4).code, 'limit_exceeded');
    assert.equal(ps.readyState, WebSocket.OPEN, 'the connection stays usable');

    const st = (await connect(`${srv.url}/stomp`, { protocol: 'v12.stomp' })).ws;
    let text = '';
    st.on('message', (d) => { text += d.toString(); });
    st.send('CONNECT\naccept-version:1.2\nhost:localhost\n\n\0');
    await waitUntil(() => text.startsWith('CONNECTED'), 5000, 'CONNECTED');
    for (let i = 1; i <= 4; i++) st.send(`SUBSCRIBE\nid:${i}\ndestination:/topic/lim.${i}\n\n\0`);
    const c = await closed(st);
    assert.match(text, /\0ERROR\n/);
    assert.match(text, /message:too many subscriptions/);
    assert.equal(c.code, 1008);
    const rej = await rejections(srv);
    assert.equal(rej.max_subscriptions, 2);
    ps.close();
  } finally { assert.equal(await srv.stop(), 0, `herald exit: ${srv.stderr().slice(-3000)}`); }
});

test('SIGHUP: --max-connections is raised live', async () => {
  const file = path.join(dir, 'limits.conf');
  fs.writeFileSync(file, 'max-connections = 2\n');
  const srv = await startHerald(['--config', file]);
  try {
    const a = (await connect(`${srv.url}/ws`)).ws;
    const b = (await connect(`${srv.url}/ws`)).ws;
    assert.equal((await connect(`${srv.url}/ws`)).status, 503);
    fs.writeFileSync(file, 'max-connections = 4\n');
    const before = (srv.stderr().match(/reload: applied/g) || []).length;
    srv.proc.kill('SIGHUP');
    await waitUntil(() => (srv.stderr().match(/reload: applied/g) || []).length > before, 5000, 'reload');
    assert.match(srv.stderr(), /max-connections 2 -> 4/);
    const c = await connect(`${srv.url}/ws`);
    assert.ok(c.ws, 'a third connection after the reload');
    for (const ws of [a, b, c.ws]) ws.close();
  } finally { assert.equal(await srv.stop(), 0, `herald exit: ${srv.stderr().slice(-3000)}`); }
});
