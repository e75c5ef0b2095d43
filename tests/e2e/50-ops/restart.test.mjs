// Graceful restart (docs/operations.md): a running herald (A, --handoff-socket) hands
// its port and channels to a new one (B, --takeover) while a backend publishes every few
// milliseconds through POST /api/publish (retrying on refused connections and 503, as a
// real backend does) and 20 /pubsub subscribers follow the channel. Every subscriber is
// closed by A with 1001 and the reconnect hint, reconnects to the same port (now B) with
// `since`, is recovered, and ends with exactly the published sequence: no gap, no
// duplicate, in order. Also: while a takeover is under way A answers publishes with
// `unavailable` (HTTP 503, JSON protocol error, STOMP ERROR) and, if the new process
// gives up, rolls back and serves again; SIGTERM alone drains with the same hint and
// exits 0; a second process refuses a handoff socket somebody listens on. Every wait is
// bounded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import {
  startHerald, runHerald, rawConnect, sleep, waitUntil, withTimeout, freePort,
} from '../helpers/herald.mjs';

const CHANNEL = 'orders.1';
const SUBSCRIBERS = 20;

function tmpDir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'herald-restart-'));
}

/** A port that was free a moment ago (B must bind the same one as A, so not port 0). */
/** One POST; resolves to {status, body} or rejects on a connection error. Bounded. */
function post(port, pathName, body, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const data = Buffer.from(JSON.stringify(body));
    const req = http.request({
      host: '127.0.0.1', port, path: pathName, method: 'POST', agent: false,
      headers: { 'Content-Type': 'application/json', 'Content-Length': data.length },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: text }));
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(data);
  });
}

function get(port, pathName, timeoutMs = 3000) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: pathName, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
  });
}

/**
 * The backend: publishes {"n": 1, 2, 3 ...} every ~5 ms. A publish that gets no 200 (503
 * while the old process hands over, connection refused or reset while nobody accepts) is
 * sent again a few ms later, until it succeeds. `published` is the sequence that got 200.
 */
function startPublisher(port) {
  const p = { published: [], retries: 0, statuses: {}, stopped: false, errors: [] };
  p.done = (async () => {
    let n = 1;
    while (!p.stopped) {
      const t0 = Date.now();
      for (let attempt = 0; ; attempt++) {
        if (attempt > 2000) throw new Error(`publish ${n} never succeeded: ${p.errors.slice(-5).join('; ')}`);
        let r;
        try {
          r = await post(port, '/api/publish', { channel: CHANNEL, data: { n } });
        } catch (e) {
          p.retries++;
          p.errors.push(e.code || e.message);
          await sleep(3);
          continue;
        }
        p.statuses[r.status] = (p.statuses[r.status] || 0) + 1;
        if (r.status === 200) break;
        if (r.status === 503) {
          assert.equal(r.headers['retry-after'], '1', '503 carries Retry-After: 1');
          assert.equal(JSON.parse(r.body).error, 'unavailable');
          p.retries++;
          await sleep(3);
          continue;
        }
        throw new Error(`publish ${n}: unexpected ${r.status} ${r.body}`);
      }
      p.published.push(n);
      n++;
      const wait = 5 - (Date.now() - t0);
      if (wait > 0) await sleep(wait);
    }
  })();
  return p;
}

/**
 * A /pubsub subscriber of CHANNEL that reconnects (to the same port) whenever it is
 * closed, with `since` = the last offset and epoch it saw, and checks that offsets are
 * consecutive within an epoch.
 */
function startSubscriber(port, i) {
  const s = {
    i, received: [], offset: null, epoch: null, closes: [], subscribes: [], problems: [],
    connects: 0, ws: null, stopped: false,
  };
  let nextId = 1;
  const connect = () => {
    if (s.stopped) return;
    const ws = new WebSocket(`ws://127.0.0.1:${port}/pubsub`);
    s.ws = ws;
    let opened = false;
    ws.on('open', () => {
      opened = true;
      s.connects++;
      const req = { type: 'subscribe', id: nextId++, channel: CHANNEL };
      if (s.epoch !== null) req.since = { offset: s.offset, epoch: s.epoch };
      ws.send(JSON.stringify(req));
    });
    ws.on('message', (buf) => {
      const m = JSON.parse(buf.toString('utf8'));
      if (m.type === 'ok' && m.channel === CHANNEL) {
        s.subscribes.push({ recovered: m.recovered, offset: m.offset, epoch: m.epoch, connect: s.connects });
        if (s.epoch === null) {
          s.epoch = m.epoch;
          s.offset = m.offset;
        } else if (m.epoch !== s.epoch) {
          s.problems.push(`epoch changed from ${s.epoch} to ${m.epoch}`);
        }
      } else if (m.type === 'message') {
        if (m.epoch !== s.epoch) s.problems.push(`message of epoch ${m.epoch}, expected ${s.epoch}`);
        if (m.offset !== s.offset + 1) s.problems.push(`offset ${m.offset} after ${s.offset}`);
        s.offset = m.offset;
        s.received.push(m.data.n);
      } else if (m.type === 'error') {
        s.problems.push(`error ${buf}`);
      }
    });
    ws.on('close', (code, reason) => {
      if (opened) s.closes.push({ code, reason: reason.toString('utf8') });
      if (!s.stopped) setTimeout(connect, opened ? 5 : 20);
    });
    ws.on('error', () => { /* 'close' follows and reconnects */ });
  };
  connect();
  s.stop = () => {
    s.stopped = true;
    try { s.ws.close(1000); } catch { /* gone */ }
  };
  return s;
}

/** No sanitizer report (ASan/LSan change the exit code; UBSan only prints). */
function assertClean(server, name) {
  assert.doesNotMatch(server.stderr(), /runtime error|AddressSanitizer|LeakSanitizer/, `${name}:\n${server.stderr()}`);
}

function waitExit(server, ms, what) {
  return withTimeout(server.exited, ms, what);
}

test('takeover: subscribers recover every message exactly once across the restart', async (t) => {
  const dir = tmpDir();
  const sock = path.join(dir, 'h.sock');
  const port = await freePort();
  const common = ['--listen', `127.0.0.1:${port}`, '--threads', '2', '--handoff-socket', sock,
    '--namespace', 'orders.*:history=5000', '--shutdown-timeout', '3'];
  const a = await startHerald(common);
  let b = null;
  const subs = [];
  let pub = null;
  t.after(async () => {
    for (const s of subs) s.stop();
    if (pub) pub.stopped = true;
    await a.stop({ graceMs: 2000 });
    if (b) await b.stop({ graceMs: 5000 });
    fs.rmSync(dir, { recursive: true, force: true });
  });
  assert.equal(a.port, port);
  assert.equal((fs.statSync(sock).mode & 0o777), 0o600, 'the handoff socket is private');

  for (let i = 0; i < SUBSCRIBERS; i++) subs.push(startSubscriber(port, i));
  await waitUntil(() => subs.every((s) => s.subscribes.length === 1), 10000, 'every subscriber subscribed');

  pub = startPublisher(port);
  await waitUntil(() => pub.published.length >= 50, 10000, '50 messages published to A');

  b = await startHerald([...common, '--takeover', sock], { timeoutMs: 20000 });
  assert.equal(b.port, port, 'B serves the same port');
  const ea = await waitExit(a, 15000, 'A exiting after the takeover');
  assert.deepEqual(ea, { code: 0, signal: null }, `A exits 0 after handing over\n${a.stderr()}`);
  // stderr may still be in flight when 'exit' fires: wait for the lines.
  await waitUntil(() => /handed to process/.test(a.stderr()), 5000, 'A logging the handoff');
  await waitUntil(() => /took over \d+ channels/.test(b.stderr()), 5000, 'B logging the takeover');

  await waitUntil(() => subs.every((s) => s.subscribes.length >= 2), 15000,
    'every subscriber reconnected to B');
  const atHandoff = pub.published.length;
  await sleep(1500);
  pub.stopped = true;
  await withTimeout(pub.done, 20000, 'the publisher stopping');
  const published = pub.published;
  assert.ok(published.length > atHandoff + 50, `B kept publishing (${atHandoff} → ${published.length})`);
  for (let i = 0; i < published.length; i++) assert.equal(published[i], i + 1);

  await waitUntil(() => subs.every((s) => s.received.length >= published.length), 10000,
    'every subscriber received every published message');
  for (const s of subs) {
    assert.deepEqual(s.problems, [], `subscriber ${s.i}: ${s.problems.slice(0, 5).join('; ')}`);
    assert.ok(s.closes.length >= 1, `subscriber ${s.i} was closed by A`);
    assert.equal(s.closes[0].code, 1001, `subscriber ${s.i}: close code`);
    assert.match(s.closes[0].reason, /reconnect/, `subscriber ${s.i}: close reason`);
    const re = s.subscribes[1];
    assert.equal(re.recovered, true, `subscriber ${s.i} recovered on B`);
    assert.equal(re.epoch, s.subscribes[0].epoch, `subscriber ${s.i}: B keeps A's epoch`);
    assert.deepEqual(s.received, published, `subscriber ${s.i}: exactly the published sequence`);
  }
  t.diagnostic(`${published.length} messages (${atHandoff} when every subscriber was back), ` +
    `${pub.retries} publish retries, statuses ${JSON.stringify(pub.statuses)}`);

  for (const s of subs) s.stop();
  const code = await b.stop({ graceMs: 8000 });
  assert.equal(code, 0, `B exits 0 at SIGTERM\n${b.stderr()}`);
  assert.ok(!fs.existsSync(sock), 'B removed its handoff socket at exit');
  assertClean(a, 'A');
  assertClean(b, 'B');
});

test('SIGTERM alone: clients are closed with 1001 and the reconnect hint, exit 0', async (t) => {
  const dir = tmpDir();
  const sock = path.join(dir, 'h.sock');
  const srv = await startHerald(['--handoff-socket', sock, '--shutdown-timeout', '3']);
  t.after(async () => {
    await srv.stop({ graceMs: 2000 });
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const ready = await get(srv.port, '/readyz').catch(() => null);
  if (ready !== null && ready !== 404) assert.equal(ready, 200, '/readyz before the drain');

  const closes = [];
  const clients = await Promise.all([0, 1, 2].map(() => new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${srv.port}/pubsub`);
    const to = setTimeout(() => reject(new Error('subscribe timed out')), 5000);
    ws.on('open', () => ws.send(JSON.stringify({ type: 'subscribe', id: 1, channel: CHANNEL })));
    ws.on('message', () => { clearTimeout(to); resolve(ws); });
    ws.on('close', (code, reason) => closes.push({ code, reason: reason.toString('utf8') }));
    ws.on('error', reject);
  })));
  assert.equal(clients.length, 3);
  srv.proc.kill('SIGTERM');
  const e = await waitExit(srv, 10000, 'herald exiting at SIGTERM');
  assert.deepEqual(e, { code: 0, signal: null }, srv.stderr());
  await waitUntil(() => closes.length === 3, 5000, 'every client closed');
  for (const c of closes) {
    assert.equal(c.code, 1001);
    assert.match(c.reason, /reconnect/);
  }
  assert.ok(!fs.existsSync(sock), 'the handoff socket is removed at exit');
  assertClean(srv, 'herald');
});

test('handoff socket: a second process refuses a socket somebody listens on; --takeover of nobody starts fresh', async (t) => {
  const dir = tmpDir();
  const sock = path.join(dir, 'h.sock');
  const a = await startHerald(['--handoff-socket', sock]);
  t.after(async () => {
    await a.stop({ graceMs: 2000 });
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const r = await runHerald(['serve', '--listen', '127.0.0.1:0', '--handoff-socket', sock], { timeoutMs: 10000 });
  assert.equal(r.code, 1, `refused: ${r.stderr}`);
  assert.match(r.stderr, /another process is listening/);
  assert.ok(fs.existsSync(sock), 'the first process keeps its socket');

  const fresh = await startHerald(['--takeover', path.join(dir, 'nobody.sock')]);
  await waitUntil(() => /starting fresh/.test(fresh.stderr()), 5000, 'the fresh start logged');
  assert.equal(await fresh.stop(), 0);
  assert.equal(await a.stop(), 0);
  assertClean(a, 'A');
  assertClean(fresh, 'fresh');
});

/** Reads newline-terminated lines from a socket; next() resolves to one line (bounded). */
function lineReader(sock) {
  let buf = '';
  const lines = [];
  const waiters = [];
  let ended = false;
  const wake = () => { while (waiters.length) waiters.shift()(); };
  sock.setEncoding('utf8');
  sock.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) { lines.push(buf.slice(0, i)); buf = buf.slice(i + 1); }
    wake();
  });
  sock.on('close', () => { ended = true; wake(); });
  sock.on('error', () => { ended = true; wake(); });
  return {
    async next(ms = 5000) {
      const deadline = Date.now() + ms;
      while (!lines.length) {
        if (ended) throw new Error('the handoff socket closed');
        const left = deadline - Date.now();
        if (left <= 0) throw new Error('timed out waiting for a handoff line');
        await new Promise((resolve) => { const t = setTimeout(resolve, left); waiters.push(() => { clearTimeout(t); resolve(); }); });
      }
      return JSON.parse(lines.shift());
    },
  };
}

/** A raw STOMP 1.2 session over `ws`: frames as {command, headers, body}. */
async function stompConnect(port) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/stomp`, ['v12.stomp']);
  const frames = [];
  ws.on('message', (d) => {
    const text = d.toString('utf8');
    if (text === '\n' || text === '\r\n') return; // heart-beat
    const [head, ...rest] = text.split('\n\n');
    const [command, ...hl] = head.split('\n');
    const headers = Object.fromEntries(hl.map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1)]));
    frames.push({ command, headers, body: rest.join('\n\n').replace(/\0$/, '') });
  });
  await withTimeout(new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); }), 5000, 'STOMP open');
  ws.send('CONNECT\naccept-version:1.2\nhost:localhost\nheart-beat:0,0\n\n\0');
  await waitUntil(() => frames.length > 0, 5000, 'CONNECTED');
  assert.equal(frames[0].command, 'CONNECTED');
  return { ws, frames };
}

test('a takeover that fails midway: publishes are refused while frozen, then A serves again', async (t) => {
  const dir = tmpDir();
  const sock = path.join(dir, 'h.sock');
  const a = await startHerald(['--handoff-socket', sock, '--threads', '2']);
  const port = a.port;
  const closers = [];
  t.after(async () => {
    for (const c of closers) try { c(); } catch { /* gone */ }
    await a.stop({ graceMs: 2000 });
    fs.rmSync(dir, { recursive: true, force: true });
  });
  let epoch = null;
  for (let n = 1; n <= 3; n++) {
    const r = await post(port, '/api/publish', { channel: 'orders.9', data: { n, text: 'a "quoted"\nline' } });
    assert.equal(r.status, 200, r.body);
    epoch = JSON.parse(r.body).epoch;
  }
  // Connections made before the takeover stay open while A is frozen.
  const raw = await rawConnect(port);
  closers.push(() => raw.destroy());
  const ps = new WebSocket(`ws://127.0.0.1:${port}/pubsub`);
  closers.push(() => ps.terminate());
  const psFrames = [];
  ps.on('message', (d) => psFrames.push(JSON.parse(d.toString('utf8'))));
  await withTimeout(new Promise((resolve, reject) => { ps.once('open', resolve); ps.once('error', reject); }), 5000, '/pubsub open');
  const st = await stompConnect(port);
  closers.push(() => st.ws.terminate());

  // The test plays the new process: ask, and read the whole stream.
  const hs = net.connect(sock);
  closers.push(() => hs.destroy());
  const lines = lineReader(hs);
  hs.write(`${JSON.stringify({ type: 'takeover', version: 1, pid: process.pid })}\n`);
  const hello = await lines.next();
  assert.equal(hello.type, 'hello');
  assert.equal(hello.version, 1);
  assert.equal(hello.pid, a.proc.pid);
  const channels = [];
  for (;;) {
    const l = await lines.next();
    if (l.type === 'end') { assert.equal(l.channels, channels.length); break; }
    if (l.type === 'channel') channels.push({ ...l, list: [] });
    else if (l.type === 'item') channels.at(-1).list.push(l);
    else assert.fail(`unexpected line ${JSON.stringify(l)}`);
  }
  assert.equal(hello.channels, channels.length);
  const ch = channels.find((c) => c.name === 'orders.9');
  assert.ok(ch, 'orders.9 is in the snapshot');
  assert.equal(ch.epoch, epoch);
  assert.equal(ch.next_offset, 4);
  assert.equal(ch.items, 3);
  assert.deepEqual(ch.list.map((i) => i.offset), [1, 2, 3]);
  assert.deepEqual(ch.list.map((i) => JSON.parse(i.data)), [1, 2, 3].map((n) => ({ n, text: 'a "quoted"\nline' })));
  assert.ok(ch.list.every((i) => Math.abs(i.time - Date.now()) < 60000), 'item times are Unix ms');
  assert.ok(!fs.existsSync(sock), 'A gave up its handoff socket path to the new process');

  // Frozen: every publish path refuses, and says so.
  const body = JSON.stringify({ channel: 'orders.9', data: { n: 4 } });
  await raw.sendRaw(`POST /api/publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  const res = await raw.readHttpResponse();
  assert.equal(res.status, 503);
  assert.equal(res.get('retry-after'), '1');
  assert.equal(JSON.parse(res.body).error, 'unavailable');
  ps.send(JSON.stringify({ type: 'publish', id: 7, channel: 'orders.9', data: { n: 4 } }));
  await waitUntil(() => psFrames.some((f) => f.id === 7), 5000, 'the /pubsub publish answer');
  const perr = psFrames.find((f) => f.id === 7);
  assert.equal(perr.type, 'error');
  assert.equal(perr.code, 'unavailable');
  st.ws.send('SEND\ndestination:/topic/orders.9\ncontent-type:application/json\nreceipt:r1\n\n{"n":4}\0');
  await waitUntil(() => st.frames.some((f) => f.command === 'ERROR'), 5000, 'the STOMP ERROR');
  assert.match(st.frames.find((f) => f.command === 'ERROR').headers.message, /restarting/);
  // Not accepting: a new connection is refused (nobody else listens on the port).
  await assert.rejects(withTimeout(post(port, '/api/publish', { channel: 'orders.9', data: 0 }), 5000, 'refused publish'),
    (e) => e.code === 'ECONNREFUSED' || e.code === 'ECONNRESET');

  // The "new process" gives up: A rolls back.
  hs.end(`${JSON.stringify({ type: 'error', message: 'test gives up' })}\n`);
  let ok = null;
  async function retry() {
    for (let i = 0; i < 100 && ok === null; i++) {
      try {
        const r = await post(port, '/api/publish', { channel: 'orders.9', data: { n: 4 } });
        if (r.status === 200) ok = JSON.parse(r.body);
      } catch { await sleep(50); }
    }
  }
  await Promise.race([retry(), waitUntil(() => ok !== null, 10000, 'A accepting again', 50)]);
  assert.deepEqual(ok, { offset: 4, epoch }, 'same epoch, nothing lost, nothing published twice');
  await waitUntil(() => fs.existsSync(sock), 5000, 'A listening on its handoff socket again');
  await waitUntil(() => /takeover failed/.test(a.stderr()), 5000, 'A logging the rollback');
  assert.equal(await a.stop(), 0);
  assertClean(a, 'A');
});
