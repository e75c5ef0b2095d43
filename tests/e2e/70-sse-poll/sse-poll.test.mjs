// The fallback transports (docs/sse-poll.md): /sse (Server-Sent Events) and /poll
// (long-polling) on the channels of /pubsub, publishing with POST to either path. The SSE
// reader is in sse-helpers.mjs.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { spawnSync } from 'node:child_process';
import WebSocket from 'ws';
import { startHerald, waitUntil, sleep } from '../helpers/herald.mjs';
import { SECRET, jwt, stopClean, request, sse } from './sse-helpers.mjs';

const publish = (port, channel, data, extra = {}) =>
  request(port, 'POST', '/sse', { body: { channel, data, ...extra }, headers: { 'content-type': 'application/json' } });

describe('SSE and long-polling', () => {
  let srv;
  let port;
  before(async () => {
    srv = await startHerald(['--threads', '2', '--namespace', 'gap.*:history=2',
      '--namespace', 'ro.*:publish=off', '--namespace', 'room.*:presence=on']);
    port = srv.port;
  });
  after(async () => { await stopClean(srv); });

  test('SSE: retry, subscribed, then messages with ids, as /pubsub sends them', async () => {
    const s = await sse(port, 'channel=t.a');
    assert.equal(s.status, 200);
    assert.match(s.headers['content-type'], /^text\/event-stream/);
    assert.equal(s.headers['cache-control'], 'no-cache');
    assert.equal(s.headers['x-accel-buffering'], 'no');
    const sub = await s.waitFor((e) => e.event === 'subscribed');
    assert.equal(s.retry, 3000);
    assert.equal(sub.json.type, 'subscribed');
    assert.equal(sub.json.channels.length, 1);
    assert.equal(sub.json.channels[0].channel, 't.a');
    assert.equal(sub.json.channels[0].offset, 0);
    assert.match(sub.json.channels[0].epoch, /^[a-z0-9]+$/);
    const r = await publish(port, 't.a', { text: 'hi\nthere', n: [1, 2] }, { id: 'p1' });
    assert.equal(r.status, 200, r.body);
    assert.deepEqual({ type: r.json.type, id: r.json.id, offset: r.json.offset }, { type: 'ok', id: 'p1', offset: 1 });
    const m = await s.waitFor((e) => e.event === 'message');
    assert.equal(m.json.type, 'message');
    assert.equal(m.json.channel, 't.a');
    assert.equal(m.json.offset, 1);
    assert.equal(m.json.epoch, r.json.epoch);
    assert.deepEqual(m.json.data, { text: 'hi\nthere', n: [1, 2] });
    assert.match(m.json.timestamp, /^\d{4}-\d\d-\d\dT/);
    assert.equal(m.id, `t.a:1:${r.json.epoch}`);
    s.close();
  });

  test('SSE: Last-Event-ID recovers what was published meanwhile, none twice', async () => {
    const a = await sse(port, 'channel=r.one');
    await a.waitFor((e) => e.event === 'subscribed');
    await publish(port, 'r.one', 1);
    await a.waitFor((e) => e.event === 'message');
    const lastId = a.lastId;
    a.close();
    for (const n of [2, 3, 4]) assert.equal((await request(port, 'POST', '/poll', { body: { channel: 'r.one', data: n } })).status, 200);
    const b = await sse(port, 'channel=r.one&since=r.one:0:zzz', { headers: { 'last-event-id': lastId } });
    const sub = await b.waitFor((e) => e.event === 'subscribed');
    assert.equal(sub.json.channels[0].recovered, true);
    await b.waitFor((e) => e.json?.data === 4);
    await publish(port, 'r.one', 5);
    await b.waitFor((e) => e.json?.data === 5);
    await sleep(100);
    assert.deepEqual(b.messages().map((m) => m.data), [2, 3, 4, 5]);
    assert.deepEqual(b.messages().map((m) => m.offset), [2, 3, 4, 5]);
    assert.match(b.lastId, /^r\.one:5:[a-z0-9]+$/);
    b.close();
  });

  test('SSE: a gap history cannot cover says recovered:false and goes on live', async () => {
    const r0 = await publish(port, 'gap.x', 0);
    for (let i = 1; i <= 5; i++) await publish(port, 'gap.x', i);
    const s = await sse(port, `channel=gap.x&since=${encodeURIComponent(`gap.x:1:${r0.json.epoch}`)}`);
    const sub = await s.waitFor((e) => e.event === 'subscribed');
    assert.equal(sub.json.channels[0].recovered, false);
    assert.equal(sub.json.channels[0].offset, 6);
    await publish(port, 'gap.x', 6);
    const m = await s.waitFor((e) => e.event === 'message');
    assert.equal(m.json.offset, 7);
    assert.equal(s.messages().length, 1);
    s.close();
  });

  test('SSE: several channels and a pattern; the id lists every channel', async () => {
    const s = await sse(port, 'channel=m.a&channel=m.b&channel=pat.*');
    const sub = await s.waitFor((e) => e.event === 'subscribed');
    assert.deepEqual(sub.json.channels.map((c) => c.channel), ['m.a', 'm.b', 'pat.*']);
    assert.equal(sub.json.channels[2].pattern, true);
    await publish(port, 'm.a', 'A');
    await s.waitFor((e) => e.json?.data === 'A');
    const rb = await publish(port, 'm.b', 'B');
    const b = await s.waitFor((e) => e.json?.data === 'B');
    const ids = b.id.split(',');
    assert.equal(ids.length, 2);
    assert.match(ids[0], /^m\.a:1:[a-z0-9]+$/);
    assert.equal(ids[1], `m.b:1:${rb.json.epoch}`);
    await publish(port, 'pat.x', 'P');
    const p = await s.waitFor((e) => e.json?.data === 'P');
    assert.equal(p.json.channel, 'pat.x');
    assert.equal(p.id, b.id, 'a pattern message leaves the position as it was');
    s.close();
  });

  test('SSE: presence join and leave events', async () => {
    const s = await sse(port, 'channel=room.1');
    await s.waitFor((e) => e.event === 'subscribed');
    const own = await s.waitFor((e) => e.event === 'join');
    const t = await sse(port, 'channel=room.1');
    await t.waitFor((e) => e.event === 'subscribed');
    const join = await s.waitFor((e) => e.event === 'join' && e.json.client !== own.json.client);
    assert.equal(join.json.type, 'join');
    assert.equal(join.json.channel, 'room.1');
    t.close();
    const leave = await s.waitFor((e) => e.event === 'leave');
    assert.equal(leave.json.client, join.json.client);
    s.close();
  });

  test('SSE: errors before the stream are JSON with a status', async () => {
    let r = await request(port, 'GET', '/sse');
    assert.equal(r.status, 400);
    assert.deepEqual([r.json.type, r.json.code], ['error', 'bad_request']);
    r = await request(port, 'GET', '/sse?channel=bad..name');
    assert.equal(r.status, 400);
    r = await request(port, 'GET', '/sse?channel=a&since=a:x:e');
    assert.equal(r.status, 400);
    assert.match(r.json.message, /position/);
    r = await request(port, 'GET', '/sse?channel=a', { headers: { origin: 'http://evil.example' } });
    assert.equal(r.status, 403);
    assert.equal(r.json.code, 'not_allowed');
  });

  test('poll: without since answers at once with the position', async () => {
    await publish(port, 'pl.a', 'x');
    const r = await request(port, 'GET', '/poll?channel=pl.a&channel=pl.b');
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /^application\/json/);
    assert.deepEqual(r.json.messages, []);
    assert.match(r.json.position, /^pl\.a:1:[a-z0-9]+,pl\.b:0:[a-z0-9]+$/);
    assert.equal(typeof r.json.recovered, 'boolean');
  });

  test('poll: answers at once with what is newer, waits for the next, times out empty', async () => {
    const first = await request(port, 'GET', '/poll?channel=pw.a');
    let pos = first.json.position;
    await publish(port, 'pw.a', 1);
    await publish(port, 'pw.a', 2);
    let r = await request(port, 'GET', `/poll?channel=pw.a&since=${encodeURIComponent(pos)}`);
    assert.deepEqual(r.json.messages.map((m) => m.data), [1, 2]);
    assert.equal(r.json.messages[0].type, 'message');
    assert.equal(r.json.recovered, true);
    pos = r.json.position;
    assert.match(pos, /^pw\.a:2:/);
    // Waits: nothing newer yet; a publish a little later completes it.
    const t0 = Date.now();
    const waiting = request(port, 'GET', `/poll?channel=pw.a&since=${encodeURIComponent(pos)}&timeout=20`);
    await sleep(300);
    await publish(port, 'pw.a', 3);
    r = await waiting;
    assert.ok(Date.now() - t0 >= 250, 'the poll waited for the publish');
    assert.deepEqual(r.json.messages.map((m) => m.data), [3]);
    pos = r.json.position;
    // Times out with no messages and the same position.
    r = await request(port, 'GET', `/poll?channel=pw.a&since=${encodeURIComponent(pos)}&timeout=1`);
    assert.deepEqual(r.json.messages, []);
    assert.equal(r.json.position, pos);
    r = await request(port, 'GET', '/poll?channel=pw.a&timeout=61');
    assert.equal(r.status, 400);
  });

  test('poll: a gap history cannot cover says recovered:false at once', async () => {
    const r0 = await publish(port, 'gap.p', 0);
    for (let i = 1; i <= 4; i++) await publish(port, 'gap.p', i);
    const r = await request(port, 'GET', `/poll?channel=gap.p&since=gap.p:1:${r0.json.epoch}&timeout=20`);
    assert.equal(r.json.recovered, false);
    assert.deepEqual(r.json.messages, []);
    assert.match(r.json.position, /^gap\.p:5:/);
  });

  test('poll: keep-alive connection serves the next request after a waited answer', async () => {
    const ka = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const get = (path) => new Promise((resolve, reject) => {
      http.get({ host: '127.0.0.1', port, path, agent: ka }, (res) => {
        let t = '';
        res.on('data', (d) => { t += d; });
        res.on('end', () => resolve({ status: res.statusCode, json: JSON.parse(t), socket: res.socket }));
      }).on('error', reject);
    });
    const a = await get('/poll?channel=ka.a');
    const waiting = get(`/poll?channel=ka.a&since=${encodeURIComponent(a.json.position)}&timeout=10`);
    await sleep(100);
    await publish(port, 'ka.a', 'k');
    const b = await waiting;
    assert.deepEqual(b.json.messages.map((m) => m.data), ['k']);
    const c = await get(`/poll?channel=ka.a&since=${encodeURIComponent(b.json.position)}&timeout=0`);
    assert.deepEqual(c.json.messages, []);
    assert.equal(c.socket, b.socket, 'same connection');
    ka.destroy();
  });

  test('POST: not_allowed, bad JSON, missing fields, 405 with Allow, CORS preflight', async () => {
    let r = await publish(port, 'ro.x', 1);
    assert.equal(r.status, 403);
    assert.equal(r.json.code, 'not_allowed');
    r = await request(port, 'POST', '/poll', { body: '{"channel":' });
    assert.equal(r.status, 400);
    assert.equal(r.json.code, 'bad_request');
    r = await request(port, 'POST', '/sse', { body: { channel: 'a' } });
    assert.equal(r.status, 400);
    r = await request(port, 'POST', '/sse', { body: { channel: 'a.*', data: 1 } });
    assert.equal(r.status, 400);
    r = await request(port, 'PUT', '/sse', { body: '{}' });
    assert.equal(r.status, 405);
    assert.match(r.headers.allow, /GET, POST/);
    r = await request(port, 'OPTIONS', '/poll', { headers: { origin: `http://127.0.0.1:${port}`, host: `127.0.0.1:${port}` } });
    assert.equal(r.status, 204);
    assert.equal(r.headers['access-control-allow-origin'], `http://127.0.0.1:${port}`);
    assert.match(r.headers['access-control-allow-headers'], /Last-Event-ID/);
  });

  test('a message published on /pubsub reaches SSE and poll; one from POST reaches /pubsub', async () => {
    const s = await sse(port, 'channel=x.both');
    await s.waitFor((e) => e.event === 'subscribed');
    const ws = new WebSocket(`${srv.url}/pubsub`);
    await new Promise((r) => ws.once('open', r));
    const got = [];
    ws.on('message', (d) => got.push(JSON.parse(d)));
    ws.send(JSON.stringify({ type: 'subscribe', id: 1, channel: 'x.both' }));
    await waitUntil(() => got.some((m) => m.type === 'ok'), 3000, 'subscribe ok');
    ws.send(JSON.stringify({ type: 'publish', id: 2, channel: 'x.both', data: { from: 'ws' } }));
    const viaSse = await s.waitFor((e) => e.json?.data?.from === 'ws');
    await waitUntil(() => got.some((m) => m.type === 'message'), 3000, 'message on /pubsub');
    const viaWs = got.find((m) => m.type === 'message');
    assert.deepEqual(viaSse.json, viaWs, 'the same message object on both transports');
    await publish(port, 'x.both', { from: 'post' });
    await waitUntil(() => got.some((m) => m.type === 'message' && m.data.from === 'post'), 3000, 'POST on /pubsub');
    ws.close();
    s.close();
  });

  test('metrics count SSE streams and poll requests', async () => {
    const s = await sse(port, 'channel=met.a');
    await s.waitFor((e) => e.event === 'subscribed');
    const m = await request(port, 'GET', '/metrics');
    const sum = (name) => m.body.split('\n').filter((l) => l.startsWith(`${name}{`))
      .reduce((a, l) => a + Number(l.split(' ').pop()), 0);
    assert.ok(sum('herald_sse_streams') >= 1);
    assert.ok(sum('herald_poll_requests_total') >= 1);
    assert.ok(sum('herald_stream_messages_sent_total') >= 1);
    s.close();
    await waitUntil(() => false, 0).catch(() => {});
  });

  test('HTTP/1.0 gets the stream raw until close; curl -N shows events', async () => {
    const sock = net.connect(port, '127.0.0.1');
    let text = '';
    sock.on('data', (d) => { text += d; });
    sock.write('GET /sse?channel=h10.a HTTP/1.0\r\n\r\n');
    await waitUntil(() => text.includes('event: subscribed'), 3000, 'HTTP/1.0 stream');
    assert.doesNotMatch(text, /Transfer-Encoding/i);
    assert.match(text, /Connection: close/i);
    sock.destroy();
    if (spawnSync('curl', ['--version']).status !== 0) return; // curl not installed: covered above
    const curl = spawnSync('curl', ['-sN', '--max-time', '1', `http://127.0.0.1:${port}/sse?channel=h10.a`], { encoding: 'utf8' });
    assert.match(curl.stdout, /^retry: 3000\n\nevent: subscribed\ndata: \{"type":"subscribed"/);
  });
});

describe('SSE and poll with --auth required', () => {
  let srv;
  before(async () => {
    srv = await startHerald(['--auth', 'required', '--jwt-secret', SECRET,
      '--namespace', 'priv.*:access=private']);
  });
  after(async () => { await stopClean(srv); });

  test('401 without a token; a token in ?token= or Authorization works', async () => {
    let r = await request(srv.port, 'GET', '/sse?channel=a');
    assert.equal(r.status, 401);
    assert.equal(r.json.code, 'unauthorized');
    r = await request(srv.port, 'GET', '/poll?channel=a');
    assert.equal(r.status, 401);
    r = await publish(srv.port, 'a', 1);
    assert.equal(r.status, 401);
    r = await request(srv.port, 'GET', `/poll?channel=a&token=${jwt({ sub: 'u', exp: Math.floor(Date.now() / 1000) - 5 })}`);
    assert.equal(r.status, 401);
    const tok = jwt({ sub: 'alice' });
    const s = await sse(srv.port, `channel=a&token=${tok}`);
    assert.equal(s.status, 200);
    await s.waitFor((e) => e.event === 'subscribed');
    r = await request(srv.port, 'POST', '/sse', { body: { channel: 'a', data: 'x' }, headers: { authorization: `Bearer ${tok}` } });
    assert.equal(r.status, 200);
    await s.waitFor((e) => e.json?.data === 'x');
    s.close();
  });

  test('a private channel needs a covering claim: 403', async () => {
    const r = await request(srv.port, 'GET', `/sse?channel=priv.x&token=${jwt({ sub: 'bob' })}`);
    assert.equal(r.status, 403);
    assert.equal(r.json.code, 'not_allowed');
    const ok = await request(srv.port, 'GET',
      `/poll?channel=priv.x&token=${jwt({ sub: 'bob', channels: { subscribe: ['priv.*'] } })}`);
    assert.equal(ok.status, 200);
  });
});

describe('a slow SSE reader', () => {
  let srv;
  before(async () => { srv = await startHerald(['--max-backlog', '262144']); });
  after(async () => { await stopClean(srv); });

  test('is dropped without hurting a reader that keeps up', async () => {
    const slow = await sse(srv.port, 'channel=big.a');
    await slow.waitFor((e) => e.event === 'subscribed');
    const fast = await sse(srv.port, 'channel=big.a');
    await fast.waitFor((e) => e.event === 'subscribed');
    slow.res.pause();
    slow.req.socket.setRecvBufferSize?.(4096);
    const ws = new WebSocket(`${srv.url}/pubsub`);
    await new Promise((r) => ws.once('open', r));
    const payload = 'x'.repeat(32 * 1024);
    const N = 640; // ~21 MB: past any socket buffers plus 256 KiB of backlog
    let acks = 0;
    ws.on('message', (d) => { if (JSON.parse(d).type === 'ok') acks++; });
    // In batches the fast reader keeps up with; the paused one falls behind.
    for (let i = 1; i <= N; i++) {
      ws.send(JSON.stringify({ type: 'publish', id: i, channel: 'big.a', data: { i, payload } }));
      if (i % 4 === 0) await waitUntil(() => fast.messages().length === i, 10000, `fast reader at ${i}`, 2);
    }
    await waitUntil(() => acks === N, 20000, 'publish acks');
    assert.deepEqual(fast.messages().map((m) => m.data.i), Array.from({ length: N }, (_, i) => i + 1));
    const m = await request(srv.port, 'GET', '/metrics');
    const closes = m.body.split('\n').filter((l) => l.startsWith('herald_slow_consumer_closes_total{'))
      .reduce((a, l) => a + Number(l.split(' ').pop()), 0);
    assert.ok(closes >= 1, 'the slow reader was closed as a slow consumer');
    slow.res.resume();
    await waitUntil(() => slow.ended, 10000, 'slow stream ends');
    assert.ok(slow.messages().length < N, 'the slow reader did not get everything');
    ws.close();
    fast.close();
  });
});

describe('SSE stream endings', () => {
  test('an expiring token ends the stream with token_expired', async () => {
    const srv = await startHerald(['--auth', 'required', '--jwt-secret', SECRET]);
    try {
      const s = await sse(srv.port, `channel=exp.a&token=${jwt({ sub: 'eve', exp: Math.floor(Date.now() / 1000) + 2 })}`);
      await s.waitFor((e) => e.event === 'subscribed');
      const e = await s.waitFor((ev) => ev.event === 'error', 5000, 'token_expired');
      assert.equal(e.json.code, 'token_expired');
      await waitUntil(() => s.ended, 3000, 'stream end');
    } finally {
      await stopClean(srv);
    }
  });

  test('server shutdown ends the stream cleanly (last chunk)', async () => {
    const srv = await startHerald([]);
    const s = await sse(srv.port, 'channel=bye.a');
    await s.waitFor((e) => e.event === 'subscribed');
    const code = await stopClean(srv);
    assert.equal(code, 0);
    await waitUntil(() => s.ended, 3000, 'stream end');
    assert.equal(s.res.complete, true, 'the chunked body ended well-formed');
  });
});

describe('SSE and poll options', () => {
  test('--route-sse off, --route-poll elsewhere; --max-connections-per-ip counts streams', async () => {
    const srv = await startHerald(['--route-sse', 'off', '--route-poll', '/lp', '--max-connections-per-ip', '1']);
    try {
      let r = await request(srv.port, 'GET', '/sse?channel=a');
      assert.notEqual(r.status, 200);
      r = await request(srv.port, 'GET', '/lp?channel=a');
      assert.equal(r.status, 200);
      assert.match(r.json.position, /^a:0:/);
      // A waiting poll holds the one connection this address may have.
      const waiting = request(srv.port, 'GET', `/lp?channel=a&since=${encodeURIComponent(r.json.position)}&timeout=5`);
      await sleep(200);
      r = await request(srv.port, 'GET', '/lp?channel=a');
      assert.equal(r.status, 503);
      await request(srv.port, 'POST', '/lp', { body: { channel: 'a', data: 1 } }).catch(() => {});
      const w = await waiting;
      assert.equal(w.status, 200);
    } finally {
      await stopClean(srv);
    }
  });
});
