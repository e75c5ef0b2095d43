// Security: hostile clients against the real binary (docs/security.md, threat model).
// Slowloris handshakes, a reader that never reads, a ping flood, 10,000 silent TCP
// connections, 1-byte TCP segments, a compression bomb, garbage after and before the
// handshake. Each test starts its own herald (small limits where they help), signals
// only that PID, bounds every wait, and checks the server's answer, its /metrics and
// its memory (VmRSS of /proc/PID/status).
//
// Memory bounds are growth over a baseline taken after start-up. Under AddressSanitizer
// (a build with HERALD_SANITIZE set, found in the CMakeCache.txt of HERALD_BUILD_DIR or
// of the binary's build directory, or forced with HERALD_SANITIZED=1/0) herald gets a
// small ASan quarantine (quarantine_size_mb=16, appended to ASAN_OPTIONS) and the bounds
// are doubled plus that quarantine: shadow memory and redzones make every byte cost more,
// but unbounded growth (a 64 MiB bomb inflated, a flood queued) still shows.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import {
  startHerald, heraldBin, rawConnect, rawWs, buildRequest, encodeFrame, deflateMessage, OP,
  patternBytes, sleep, waitUntil, withTimeout,
} from '../helpers/herald.mjs';

const MB = 1024 * 1024;

function sanitized() {
  const forced = process.env.HERALD_SANITIZED;
  if (forced !== undefined && forced !== '') return forced === '1';
  const dirs = [process.env.HERALD_BUILD_DIR, path.resolve(path.dirname(heraldBin()), '..')];
  for (const d of dirs) {
    if (!d) continue;
    try {
      const cache = fs.readFileSync(path.join(d, 'CMakeCache.txt'), 'utf8');
      const m = /^HERALD_SANITIZE:[A-Z]*=(.*)$/m.exec(cache);
      if (m) return m[1].trim() !== '' && m[1].trim().toUpperCase() !== 'OFF';
    } catch { /* not a build directory */ }
  }
  return false;
}

const SAN = sanitized();
const QUARANTINE_MB = 16;
const ENV = SAN
  ? { ASAN_OPTIONS: `${process.env.ASAN_OPTIONS ? `${process.env.ASAN_OPTIONS}:` : ''}quarantine_size_mb=${QUARANTINE_MB}` }
  : undefined;
/** A memory bound for growth of `mb` MiB, loosened under sanitizers. */
const bound = (mb) => (SAN ? 2 * mb + QUARANTINE_MB : mb) * MB;
/** A time bound, loosened under sanitizers. */
const slow = (ms) => (SAN ? 3 * ms : ms);

const start = (args) => startHerald(args, { env: ENV });

function rss(srv) {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${srv.proc.pid}/status`, 'utf8'));
  assert.ok(m, 'VmRSS in /proc/PID/status');
  return Number(m[1]) * 1024;
}

/** Asserts that RSS grew by less than bound(mb) MiB over base; reports the growth. */
function assertGrowth(t, peak, base, mb) {
  const grew = (peak - base) / MB;
  t.diagnostic(`RSS ${(base / MB).toFixed(1)} -> ${(peak / MB).toFixed(1)} MiB (+${grew.toFixed(1)}, bound ${bound(mb) / MB}${SAN ? ', sanitized build' : ''})`);
  assert.ok(peak - base < bound(mb), `RSS grew by ${grew.toFixed(1)} MiB (bound ${bound(mb) / MB} MiB)`);
}

/** Samples VmRSS every 25 ms; stop() returns the largest value seen. */
function rssSampler(srv) {
  let max = rss(srv);
  const t = setInterval(() => { try { max = Math.max(max, rss(srv)); } catch { /* exited */ } }, 25);
  return { stop() { clearInterval(t); try { max = Math.max(max, rss(srv)); } catch { /* exited */ } return max; } };
}

/** Sum of every sample of `name` whose labels include `labels` (threads are summed). */
async function metric(srv, name, labels = {}) {
  const res = await withTimeout(fetch(`http://127.0.0.1:${srv.port}/metrics`), 5000, 'GET /metrics');
  assert.equal(res.status, 200);
  const text = await res.text();
  let sum = 0;
  let seen = false;
  for (const m of text.matchAll(/^([a-z_]+)(?:\{([^}]*)\})? (\d+)$/gm)) {
    if (m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] || '').matchAll(/([a-z_]+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) { sum += Number(m[3]); seen = true; }
  }
  assert.ok(seen, `${name}${JSON.stringify(labels)} on /metrics`);
  return sum;
}

/** Stops herald (SIGTERM) and checks it exits 0 with no sanitizer report: it survived. */
async function assertCleanExit(srv) {
  const code = await srv.stop();
  assert.doesNotMatch(srv.stderr(), /runtime error|AddressSanitizer|LeakSanitizer/, srv.stderr().slice(-4000));
  assert.equal(code, 0, `herald exit code\n${srv.stderr().slice(-4000)}`);
}

/** A fresh client gets its echo back; resolves to the round trip in ms. */
async function echoRoundTrip(port) {
  const t0 = Date.now();
  const c = await rawWs(port);
  try {
    await c.sendText('still-there');
    const m = await c.readMessage({ timeoutMs: 5000 });
    assert.equal(m.payload.toString(), 'still-there');
    return Date.now() - t0;
  } finally { c.destroy(); }
}

// ---------------------------------------------------------------------------------------

test('slowloris: 50 handshakes dripping one byte per 200 ms are cut at --handshake-timeout', { timeout: 30000 }, async (t) => {
  const srv = await start(['--threads', '2', '--handshake-timeout', '1']);
  const socks = [];
  const timers = [];
  try {
    const head = Buffer.from(buildRequest({ path: '/ws', port: srv.port }), 'latin1');
    const lifetimes = [];
    await Promise.all(Array.from({ length: 50 }, () => new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port: srv.port });
      socks.push(s);
      s.setNoDelay(true);
      s.on('error', () => { /* ECONNRESET / EPIPE once the server cuts it */ });
      s.once('connect', () => {
        const t0 = Date.now();
        let i = 0;
        const tick = () => { if (!s.destroyed && i < head.length - 1) s.write(head.subarray(i, ++i)); };
        tick();
        const iv = setInterval(tick, 200); // never the last byte: the head never completes
        timers.push(iv);
        s.once('close', () => { clearInterval(iv); lifetimes.push(Date.now() - t0); });
        resolve();
      });
      s.once('error', reject);
    })));
    // Meanwhile a normal client is served at once.
    await sleep(300);
    const rtt = await echoRoundTrip(srv.port);
    t.diagnostic(`echo round trip during the slowloris: ${rtt} ms`);
    assert.ok(rtt < 1000, `a normal client is served during the slowloris (${rtt} ms)`);
    await waitUntil(() => lifetimes.length === 50, slow(4000), `the 50 slow handshakes to be closed (${lifetimes.length} so far)`);
    const longest = Math.max(...lifetimes);
    t.diagnostic(`slow handshakes closed after ${Math.min(...lifetimes)}-${longest} ms`);
    assert.ok(longest < slow(2000), `each is closed within ~2 s of connecting (longest ${longest} ms)`);
    assert.ok(Math.min(...lifetimes) >= 900, `none before the 1 s timeout (shortest ${Math.min(...lifetimes)} ms)`);
    assert.equal(await metric(srv, 'herald_handshakes_rejected_total', { reason: 'timeout' }), 50);
    assert.equal(await metric(srv, 'herald_limit_rejections_total', { limit: 'handshake_timeout' }), 50);
    assert.equal(srv.proc.exitCode, null, 'herald is still running');
    for (const s of socks) s.destroy();
    await assertCleanExit(srv);
  } finally {
    for (const t of timers) clearInterval(t);
    for (const s of socks) s.destroy();
    await srv.stop();
  }
});

test('a subscriber that never reads: closed by --max-backlog while 48 MB flood its channel, memory bounded', { timeout: 40000 }, async (t) => {
  const srv = await start(['--threads', '2', '--max-backlog', '1M', '--namespace', 'flood.*:history=1']);
  const base = rss(srv);
  let sampler = null;
  try {
    const before = await metric(srv, 'herald_slow_consumer_closes_total');
    const lazy = await rawWs(srv.port, { path: '/pubsub' });
    await lazy.sendText(JSON.stringify({ type: 'subscribe', id: 1, channel: 'flood.a' }));
    assert.equal(JSON.parse((await lazy.readMessage({ timeoutMs: 3000 })).payload).type, 'ok');
    lazy.socket.pause(); // reads nothing from here on
    sampler = rssSampler(srv);
    // As soon as the server gives up on it, read again: the server bounds how long it
    // tries to flush the close frame behind the message already on the wire.
    let closedAt = 0;
    const watch = (async () => {
      const deadline = Date.now() + 30000;
      while (!closedAt && Date.now() < deadline) {
        if (await metric(srv, 'herald_slow_consumer_closes_total') > before) {
          closedAt = Date.now();
          lazy.socket.resume();
        } else await sleep(100);
      }
    })();
    // 480 x 100 KB = 48 MB: far more than the socket buffers on both sides can hide, and
    // more than the memory bound, should it all be queued.
    const data = 'x'.repeat(100000);
    const api = `http://127.0.0.1:${srv.port}/api/publish`;
    for (let i = 0; i < 480; i += 10) {
      await withTimeout(Promise.all(Array.from({ length: 10 }, () => fetch(api, {
        method: 'POST', body: JSON.stringify({ channel: 'flood.a', data }),
      }).then((r) => assert.equal(r.status, 200)))), 10000, 'a batch of publishes');
    }
    await withTimeout(watch, 31000, 'the slow-consumer watch');
    assert.ok(closedAt, 'herald_slow_consumer_closes_total went up');
    assert.equal(await metric(srv, 'herald_slow_consumer_closes_total'), before + 1);
    // What the kernel held, then the 1008 close (or a reset).
    let close = null;
    let frames = 0;
    const deadline = Date.now() + 10000;
    for (;;) {
      const fr = await lazy.readFrame({ timeoutMs: Math.max(1, deadline - Date.now()) });
      if (!fr) break;
      if (fr.opcode === OP.CLOSE) { close = fr; break; }
      frames++;
    }
    t.diagnostic(`after ${frames} messages: ${close ? `close ${close.code}` : lazy.error?.code ?? 'FIN'}`);
    if (close) assert.equal(close.code, 1008, `close code (reason ${JSON.stringify(close.reason)})`);
    else assert.ok(lazy.error && lazy.error.code === 'ECONNRESET', `no close frame after ${frames} messages: expected a reset, got ${lazy.error?.code ?? 'a plain FIN'}`);
    assert.ok(await lazy.waitForTcpClose(3000), 'the TCP connection is closed');
    const peak = sampler.stop();
    sampler = null;
    assertGrowth(t, peak, base, 30);
    lazy.destroy();
    assert.ok(await echoRoundTrip(srv.port) < 1000, 'the server still answers');
    await assertCleanExit(srv);
  } finally {
    if (sampler) sampler.stop();
    await srv.stop();
  }
});

test('a flood of 20,000 pings: every one answered in order, free of --max-message-rate; others served', { timeout: 40000 }, async (t) => {
  // Ping, pong and close frames are free of the message rate (docs/security.md): a rate
  // of 10/s with a burst of 10 must not close a client that only pings.
  const srv = await start(['--threads', '2', '--max-message-rate', '10', '--message-burst', '10']);
  const base = rss(srv);
  const sampler = rssSampler(srv);
  const c = await rawWs(srv.port);
  try {
    const N = 20000;
    const pings = [];
    for (let i = 0; i < N; i++) {
      const p = Buffer.alloc(4);
      p.writeUInt32BE(i);
      pings.push(encodeFrame({ opcode: OP.PING, payload: p }));
    }
    const wire = Buffer.concat(pings);
    c.sendRaw(wire, { split: 64 * 1024 }); // as fast as TCP takes it
    // Another client, during the flood.
    const other = echoRoundTrip(srv.port);
    let next = 0;
    const deadline = Date.now() + slow(15000);
    while (next < N) {
      const fr = await c.readFrame({ timeoutMs: Math.max(1, deadline - Date.now()) });
      assert.ok(fr, `connection ended after ${next} pongs${c.error ? ` (${c.error.code})` : ''}`);
      assert.notEqual(fr.opcode, OP.CLOSE, `closed with ${fr.code} ${JSON.stringify(fr.reason)} after ${next} pongs`);
      assert.equal(fr.opcode, OP.PONG, `frame ${next} is a pong`);
      assert.equal(fr.payload.length, 4);
      assert.equal(fr.payload.readUInt32BE(0), next, 'pongs come in order with the ping payloads');
      next++;
    }
    const rtt = await other;
    t.diagnostic(`echo round trip of another client during the flood: ${rtt} ms`);
    assert.ok(rtt < 1000, `echo latency of another client during the flood: ${rtt} ms`);
    // The connection is still usable.
    await c.sendText('after-pings');
    assert.equal((await c.readMessage({ timeoutMs: 3000 })).payload.toString(), 'after-pings');
    const peak = sampler.stop();
    assertGrowth(t, peak, base, 30);
    assert.equal(await metric(srv, 'herald_limit_rejections_total', { limit: 'max_message_rate' }), 0);
    c.destroy();
    await assertCleanExit(srv);
  } finally {
    sampler.stop();
    c.destroy();
    await srv.stop();
  }
});

test('10,000 silent TCP connections: a normal client is still served, all are closed at --handshake-timeout', { timeout: 45000 }, async (t) => {
  const N = 10000;
  const srv = await start(['--threads', '2', '--handshake-timeout', '5']);
  const socks = [];
  try {
    let closedCount = 0;
    let failed = 0;
    const opened0 = Date.now();
    // Spread over 8 loopback source addresses: 1,250 ports each, far from exhausting any.
    for (let i = 0; i < N; i += 500) {
      await withTimeout(Promise.all(Array.from({ length: Math.min(500, N - i) }, (_, k) => new Promise((resolve) => {
        const s = net.connect({ host: '127.0.0.1', port: srv.port, localAddress: `127.0.0.${2 + ((i + k) % 8)}` });
        socks.push(s);
        s.on('error', () => { /* reset by the server at the timeout */ });
        s.once('close', () => { closedCount++; });
        s.once('connect', resolve);
        s.once('error', () => { failed++; resolve(); });
      }))), slow(10000), `connecting batch ${i / 500}`);
    }
    const openMs = Date.now() - opened0;
    t.diagnostic(`${N} connections opened in ${openMs} ms`);
    assert.equal(failed, 0, 'every connection opened');
    assert.ok(Date.now() - opened0 < 5000, `connections opened in ${openMs} ms, before the timeout (make the timeout longer if this fails)`);
    assert.equal(closedCount, 0, 'none closed before the handshake timeout');
    const rtt = await echoRoundTrip(srv.port);
    t.diagnostic(`echo round trip among 10,000 silent connections: ${rtt} ms`);
    assert.ok(rtt < 1000, `a normal client among 10,000 silent ones: ${rtt} ms`);
    await waitUntil(() => closedCount === N, slow(8000), `all ${N} silent connections to be closed (${closedCount} so far)`, 50);
    assert.equal(srv.proc.exitCode, null, 'herald is still running');
    assert.ok(await echoRoundTrip(srv.port) < 1000, 'and still serves');
    // Silent connections are closed, not refused: they sent no request to refuse.
    assert.equal(await metric(srv, 'herald_handshakes_rejected_total', { reason: 'timeout' }), 0);
    assert.ok(await metric(srv, 'herald_connections_accepted_total') >= N);
    for (const s of socks) s.destroy();
    await assertCleanExit(srv);
  } finally {
    for (const s of socks) s.destroy();
    await srv.stop();
  }
});

test('1-byte TCP segments: a handshake and a masked 200-byte message, byte by byte, are echoed', { timeout: 30000 }, async (t) => {
  const srv = await start(['--threads', '1']);
  const c = await rawConnect(srv.port);
  try {
    c.socket.setNoDelay(true);
    const drip = async (buf) => {
      for (let i = 0; i < buf.length; i++) {
        assert.ok(await c.write(buf.subarray(i, i + 1)), `byte ${i} written`);
        await sleep(1); // let each byte leave in its own segment
      }
    };
    const key = 'dGhlIHNhbXBsZSBub25jZQ==';
    await drip(Buffer.from(buildRequest({ path: '/ws', port: srv.port, key }), 'latin1'));
    const res = await c.readHttpResponse({ timeoutMs: 3000 });
    assert.equal(res.status, 101);
    assert.equal(res.get('sec-websocket-accept'), 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
    const payload = Buffer.from('0123456789'.repeat(20));
    await drip(encodeFrame({ opcode: OP.TEXT, payload }));
    const m = await c.readMessage({ timeoutMs: 3000 });
    assert.equal(m.opcode, OP.TEXT);
    assert.deepEqual(m.payload, payload);
    c.destroy();
    await assertCleanExit(srv);
  } finally {
    c.destroy();
    await srv.stop();
  }
});

test('compression bomb: 64 MiB of zeros in 64 KB of deflate is refused with 1009 before it is inflated', { timeout: 30000 }, async (t) => {
  const srv = await start(['--threads', '1', '--max-message', '1M']);
  const bomb = deflateMessage(Buffer.alloc(64 * MB));
  assert.ok(bomb.length < 128 * 1024, `the bomb is small (${bomb.length} bytes)`);
  const before = await metric(srv, 'herald_limit_rejections_total', { limit: 'max_message' });
  const c = await rawWs(srv.port, { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate' } });
  const base = rss(srv);
  const sampler = rssSampler(srv);
  try {
    assert.match(c.response.get('sec-websocket-extensions') || '', /permessage-deflate/, 'permessage-deflate negotiated');
    const t0 = Date.now();
    c.sendFrame({ opcode: OP.BINARY, rsv1: true, payload: bomb });
    const r = await c.readUntilClose({ timeoutMs: 5000, reply: true });
    const ms = Date.now() - t0;
    assert.equal(r.frames.length, 0, 'nothing echoed');
    assert.ok(r.close, 'a close frame');
    assert.equal(r.close.code, 1009, `close code (reason ${JSON.stringify(r.close.reason)})`);
    t.diagnostic(`bomb refused in ${ms} ms`);
    assert.ok(ms < slow(1000), `refused quickly (${ms} ms)`);
    const peak = sampler.stop();
    assertGrowth(t, peak, base, 50);
    assert.equal(await metric(srv, 'herald_limit_rejections_total', { limit: 'max_message' }), before + 1);
    assert.ok(await echoRoundTrip(srv.port) < 1000, 'the server still answers');
    c.destroy();
    await assertCleanExit(srv);
  } finally {
    sampler.stop();
    c.destroy();
    await srv.stop();
  }
});

test('garbage after the handshake: 100 connections of 4 KB pseudo-random bytes each fail with 1002/1007/1009', { timeout: 30000 }, async (t) => {
  const srv = await start(['--threads', '2', '--max-message', '1K']);
  try {
    const before = await metric(srv, 'herald_protocol_errors_total');
    const outcomes = await Promise.all(Array.from({ length: 100 }, async (_, i) => {
      const c = await rawWs(srv.port);
      try {
        c.sendRaw(patternBytes(4096, 1000 + i));
        const r = await c.readUntilClose({ timeoutMs: slow(3000) });
        return { seed: 1000 + i, close: r.close, tcpClosed: r.tcpClosed, error: c.error?.code };
      } finally { c.destroy(); }
    }));
    for (const o of outcomes) {
      if (o.close) {
        assert.ok([1002, 1007, 1009].includes(o.close.code),
          `seed ${o.seed}: close code ${o.close.code} ${JSON.stringify(o.close.reason)} is a protocol error`);
      } else {
        assert.equal(o.error, 'ECONNRESET', `seed ${o.seed}: ended without a close frame and without a reset`);
      }
      assert.ok(o.tcpClosed, `seed ${o.seed}: the server closed the TCP connection`);
    }
    assert.ok(outcomes.filter((o) => o.close).length >= 90, 'the close frame reaches (nearly) every client');
    assert.equal(await metric(srv, 'herald_protocol_errors_total'), before + 100);
    assert.ok(await echoRoundTrip(srv.port) < 1000, 'the server still answers');
    await assertCleanExit(srv);
  } finally {
    await srv.stop();
  }
});

test('garbage before the handshake: pseudo-random bytes as the first request get 400 and a close', { timeout: 30000 }, async (t) => {
  const srv = await start(['--threads', '2']);
  try {
    const before = await metric(srv, 'herald_handshakes_rejected_total', { reason: 'bad_request' });
    const N = 20;
    await Promise.all(Array.from({ length: N }, async (_, i) => {
      const c = await rawConnect(srv.port);
      try {
        c.sendRaw(patternBytes(1024, 5000 + i));
        const res = await c.readHttpResponse({ timeoutMs: 3000 });
        assert.equal(res.status, 400, `seed ${5000 + i}`);
        assert.ok(await c.waitForTcpClose(3000), `seed ${5000 + i}: the connection is closed after the 400`);
      } finally { c.destroy(); }
    }));
    assert.equal(await metric(srv, 'herald_handshakes_rejected_total', { reason: 'bad_request' }), before + N);
    assert.ok(await echoRoundTrip(srv.port) < 1000, 'the server still answers');
    await assertCleanExit(srv);
  } finally {
    await srv.stop();
  }
});
