// /sse and /poll under the same authentication and limits as a WebSocket handshake
// (docs/sse-poll.md "Authentication and limits"): the auth webhook decides for them too,
// an SSE stream or a waiting long poll counts against --max-connections-per-user (with
// --redis across nodes), and a slow SSE reader in a drop-* namespace has its stream ended
// cleanly, so that it reconnects with Last-Event-ID and recovers from history.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import WebSocket from 'ws';
import { startHerald, withTimeout, waitUntil, sleep } from '../helpers/herald.mjs';
import { SKIP, startCluster } from '../50-cluster/cluster-helpers.mjs';
import { SECRET, jwt, stopClean, request as httpRequest, sse } from './sse-helpers.mjs';

/** One HTTP request, a body sent as JSON; resolves {status, headers, body, json}. */
const request = (port, method, path, o = {}) =>
  httpRequest(port, method, path, { type: 'application/json', ms: 15000, ...o });

/** A WebSocket handshake: {ws} when open, {status, headers, body} when refused. */
function wsConnect(url) {
  return withTimeout(new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.once('open', () => resolve({ ws }));
    ws.once('unexpected-response', (req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    ws.once('error', reject);
  }), 5000, `connect ${url}`);
}

async function metric(port, name, label) {
  const m = await request(port, 'GET', '/metrics');
  return m.body.split('\n').filter((l) => l.startsWith(`${name}{`) && (!label || l.includes(label)))
    .reduce((a, l) => a + Number(l.split(' ').pop()), 0);
}

/** Retries an SSE request until it is accepted (a slot is freed asynchronously). */
async function sseWhenFree(port, query, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    const s = await sse(port, query);
    if (s.status === 200) return s;
    if (Date.now() >= deadline) throw new Error(`timed out waiting for ${what}: ${s.status} ${s.body}`);
    await sleep(100);
  }
}

function refusedForUser(r, what) {
  assert.equal(r.status, 503, `${what}: ${r.status} ${r.body}`);
  assert.equal(r.headers['retry-after'], '5', what);
}

describe('/sse and /poll with --auth-webhook', () => {
  let backend, srv;
  const seen = [];
  before(async () => {
    backend = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d) => { body += d; });
      req.on('end', () => {
        const q = JSON.parse(body);
        seen.push(q);
        const answer = () => {
          if (q.token === 'good') {
            res.writeHead(200, { 'content-type': 'application/json' });
            res.end(JSON.stringify({ user: 'hooked', channels: { subscribe: ['room.*'], publish: ['room.*'] } }));
          } else if (q.token === 'forbidden') {
            res.writeHead(403); res.end();
          } else {
            res.writeHead(401); res.end();
          }
        };
        // "slow": past the server's 5 s webhook timeout
        if (q.token === 'slow') setTimeout(answer, 7000); else answer();
      });
    });
    await new Promise((r) => backend.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${backend.address().port}/auth`;
    srv = await startHerald(['--auth', 'required', '--auth-webhook', url, '--namespace', 'room.*:presence=on']);
  });
  after(async () => {
    await stopClean(srv);
    backend?.closeAllConnections?.();
    backend?.close();
  });

  test('SSE: the backend accepts with its user and channels; POST publishes with it', async () => {
    const s = await sse(srv.port, 'channel=room.1&token=good', { headers: { cookie: 'x=1' } });
    assert.equal(s.status, 200);
    await s.waitFor((e) => e.event === 'subscribed');
    const q = seen.find((x) => x.token === 'good' && x.path === '/sse');
    assert.ok(q, 'the webhook was asked with the request path');
    assert.equal(q.headers.authorization, undefined);
    assert.equal(q.headers.cookie, undefined);
    assert.equal(q.headers.accept, 'text/event-stream');
    assert.equal(q.client, '127.0.0.1');
    // The presence of the SSE client names the backend's user.
    const p = await request(srv.port, 'POST', '/sse', { body: { channel: 'room.1', data: { n: 1 } }, headers: { authorization: 'Bearer good' } });
    assert.equal(p.status, 200, p.body);
    const m = await s.waitFor((e) => e.event === 'message');
    assert.deepEqual(m.json.data, { n: 1 });
    const denied = await request(srv.port, 'POST', '/sse', { body: { channel: 'other', data: 1 }, headers: { authorization: 'Bearer good' } });
    assert.equal(denied.status, 403);
    s.close();
  });

  test('SSE and poll: the grant limits channels; 401 and 403 as the backend says', async () => {
    const other = await sse(srv.port, 'channel=other&token=good');
    assert.equal(other.status, 403);
    assert.equal(other.json.code, 'not_allowed');
    for (const path of ['/sse', '/poll']) {
      const bad = await request(srv.port, 'GET', `${path}?channel=room.2&token=bad`);
      assert.equal(bad.status, 401, `${path} ${bad.body}`);
      assert.equal(bad.json.type, 'error');
      assert.equal(bad.json.code, 'unauthorized');
      assert.match(bad.headers['www-authenticate'], /^Bearer/);
      const forb = await request(srv.port, 'GET', `${path}?channel=room.2`, { headers: { authorization: 'Bearer forbidden' } });
      assert.equal(forb.status, 403, `${path} ${forb.body}`);
      assert.equal(forb.json.code, 'not_allowed');
      const none = await request(srv.port, 'GET', `${path}?channel=room.2`);
      assert.equal(none.status, 401);
    }
    const ok = await request(srv.port, 'GET', '/poll?channel=room.2&token=good');
    assert.equal(ok.status, 200, ok.body);
    assert.deepEqual(ok.json.messages, []);
    assert.match(ok.json.position, /^room\.2:0:/);
    assert.ok(seen.some((x) => x.token === 'good' && x.path === '/poll'));
    const no = await request(srv.port, 'GET', '/poll?channel=other&token=good');
    assert.equal(no.status, 403);
  });

  test('a poll answered after the webhook serves the request pipelined behind it', async () => {
    const sock = net.connect(srv.port, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    let text = '';
    sock.setEncoding('utf8');
    sock.on('data', (d) => { text += d; });
    sock.write('GET /poll?channel=room.3&token=good HTTP/1.1\r\nHost: x\r\n\r\n'
      + 'GET /poll?channel=room.3&token=bad HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    await withTimeout(new Promise((r) => sock.once('close', r)), 5000, 'both answers');
    const statuses = [...text.matchAll(/^HTTP\/1\.1 (\d+)/gm)].map((m) => Number(m[1]));
    assert.deepEqual(statuses, [200, 401], text);
  });

  test('a backend that does not answer in time: 503, for /sse and /poll', async () => {
    const [a, b] = await Promise.all([
      request(srv.port, 'GET', '/sse?channel=room.4&token=slow'),
      request(srv.port, 'GET', '/poll?channel=room.4&token=slow'),
    ]);
    for (const r of [a, b]) {
      assert.equal(r.status, 503, r.body);
      assert.equal(r.json.type, 'error');
      assert.equal(r.json.message, 'authentication backend unavailable');
    }
  });
});

describe('--max-connections-per-user counts SSE streams and waiting polls', () => {
  let srv;
  const alice = jwt({ sub: 'alice' });
  const bob = jwt({ sub: 'bob' });
  before(async () => {
    srv = await startHerald(['--threads', '2', '--auth', 'required', '--jwt-secret', SECRET,
      '--max-connections-per-user', '2']);
  });
  after(async () => { await stopClean(srv); });

  test('1 WebSocket + 1 SSE stream fill 2 slots; the third is refused either way', async () => {
    const before = await metric(srv.port, 'herald_limit_rejections_total', 'max_connections_per_user');
    const w = await wsConnect(`${srv.url}/pubsub?token=${alice}`);
    assert.ok(w.ws, 'first WebSocket');
    const s = await sse(srv.port, `channel=u.a&token=${alice}`);
    assert.equal(s.status, 200);
    await s.waitFor((e) => e.event === 'subscribed');
    const third = await sse(srv.port, `channel=u.a&token=${alice}`);
    refusedForUser(third, 'third as SSE');
    assert.deepEqual(third.json, { type: 'error', code: 'limit_exceeded', message: 'too many connections for this user' });
    refusedForUser(await request(srv.port, 'GET', `/poll?channel=u.a&token=${alice}`), 'third as a poll');
    refusedForUser(await wsConnect(`${srv.url}/pubsub?token=${alice}`), 'third as WebSocket');
    assert.equal(await metric(srv.port, 'herald_limit_rejections_total', 'max_connections_per_user'), before + 3);
    // Another user is not affected.
    const b = await sse(srv.port, `channel=u.a&token=${bob}`);
    assert.equal(b.status, 200);
    b.close();
    // Closing the SSE stream frees its slot (for a WebSocket as well).
    s.close();
    let w2;
    const deadline = Date.now() + 5000;
    while (!w2) {
      const r = await wsConnect(`${srv.url}/pubsub?token=${alice}`);
      if (r.ws) w2 = r.ws;
      else if (Date.now() > deadline) assert.fail(`slot not freed: ${r.status}`);
      else await sleep(100);
    }
    w.ws.close();
    w2.close();
  });

  test('a long poll counts while it waits, and its answer frees the slot', async () => {
    const s = await sseWhenFree(srv.port, `channel=lp.a&token=${alice}`, 5000, 'slots of the previous test');
    await s.waitFor((e) => e.event === 'subscribed');
    const first = await request(srv.port, 'GET', `/poll?channel=lp.a&token=${alice}`);
    assert.equal(first.status, 200, first.body); // answered at once: held no slot after
    const waiting = request(srv.port, 'GET', `/poll?channel=lp.a&token=${alice}&timeout=20&since=${encodeURIComponent(first.json.position)}`);
    await sleep(300);
    refusedForUser(await sse(srv.port, `channel=lp.a&token=${alice}`), 'SSE + waiting poll fill 2 slots');
    const p = await request(srv.port, 'POST', '/poll', { body: { channel: 'lp.a', data: 7 }, headers: { authorization: `Bearer ${alice}` } });
    assert.equal(p.status, 200, p.body);
    const answered = await waiting;
    assert.deepEqual(answered.json.messages.map((m) => m.data), [7]);
    const s2 = await sseWhenFree(srv.port, `channel=lp.a&token=${alice}`, 5000, 'the answered poll\'s slot');
    s2.close();
    s.close();
  });
});

describe('--max-connections-per-user across nodes (--redis) counts SSE streams', { skip: SKIP }, () => {
  test('an SSE stream on one node and a WebSocket on another fill the 2 slots', async () => {
    const alice = jwt({ sub: 'alice' });
    const cl = await startCluster(2, { extra: ['--auth', 'required', '--jwt-secret', SECRET, '--max-connections-per-user', '2'] });
    try {
      const [n0, n1] = cl.nodes;
      const s = await sse(n0.port, `channel=c.a&token=${alice}`);
      assert.equal(s.status, 200);
      await s.waitFor((e) => e.event === 'subscribed');
      const w = await wsConnect(`${n1.url}/pubsub?token=${alice}`);
      assert.ok(w.ws, 'WebSocket on node 1');
      refusedForUser(await sse(n1.port, `channel=c.a&token=${alice}`), 'SSE on node 1 over the cluster-wide limit');
      refusedForUser(await wsConnect(`${n0.url}/pubsub?token=${alice}`), 'WebSocket on node 0 over the cluster-wide limit');
      refusedForUser(await request(n1.port, 'GET', `/poll?channel=c.a&token=${alice}`), 'poll on node 1');
      // The stream's end on node 0 frees the slot on node 1.
      s.close();
      const s2 = await sseWhenFree(n1.port, `channel=c.a&token=${alice}`, 5000, 'the slot freed on node 0');
      await s2.waitFor((e) => e.event === 'subscribed');
      refusedForUser(await sse(n0.port, `channel=c.a&token=${alice}`), 'full again');
      const h = (await cl.redis.cli('HGETALL', `${cl.prefix}:user:alice`)).split('\n').filter(Boolean);
      let sum = 0;
      for (let i = 1; i < h.length; i += 2) sum += Number(h[i]);
      assert.equal(sum, 2, `Redis counts the WebSocket and the stream: ${h}`);
      s2.close();
      w.ws.close();
    } finally {
      await cl.stop();
    }
  });
});

describe('a slow SSE reader and the namespace slow policy', () => {
  let srv;
  before(async () => {
    srv = await startHerald(['--max-backlog', '262144',
      '--namespace', 'dn.*:slow=drop-newest,history=1000', '--namespace', 'do.*:slow=drop-oldest,history=1000']);
  });
  after(async () => { await stopClean(srv); });

  for (const ch of ['dn.a', 'do.a']) {
    test(`${ch.slice(0, 2) === 'dn' ? 'drop-newest' : 'drop-oldest'}: the stream ends cleanly after what was queued; Last-Event-ID recovers the rest`, async () => {
      const closes0 = await metric(srv.port, 'herald_slow_consumer_closes_total');
      const dropped0 = await metric(srv.port, 'herald_dropped_messages_total');
      const slow = await sse(srv.port, `channel=${ch}`);
      await slow.waitFor((e) => e.event === 'subscribed');
      const fast = await sse(srv.port, `channel=${ch}`);
      await fast.waitFor((e) => e.event === 'subscribed');
      slow.res.pause();
      const ws = new WebSocket(`${srv.url}/pubsub`);
      await new Promise((r) => ws.once('open', r));
      const payload = 'x'.repeat(32 * 1024);
      let acks = 0;
      ws.on('message', (d) => { if (JSON.parse(d).type === 'ok') acks++; });
      // Big messages until the paused reader is behind (~21 MB at most: past any socket
      // buffers plus 256 KiB of backlog), then a few small ones: what it missed must fit
      // in --max-backlog for its recovery to start.
      let N = 0;
      let behind = false;
      while (N < 640 && !behind) {
        for (let k = 0; k < 4; k++) {
          N++;
          ws.send(JSON.stringify({ type: 'publish', id: N, channel: ch, data: { i: N, payload } }));
        }
        await waitUntil(() => fast.messages().length === N, 10000, `fast reader at ${N}`, 2);
        behind = await metric(srv.port, 'herald_dropped_messages_total') > dropped0;
      }
      assert.ok(behind, 'the paused reader fell behind');
      for (let k = 0; k < 5; k++) {
        N++;
        ws.send(JSON.stringify({ type: 'publish', id: N, channel: ch, data: { i: N, payload: 'small' } }));
      }
      await waitUntil(() => acks === N, 20000, 'publish acks');
      await waitUntil(() => fast.messages().length === N, 10000, 'fast reader at the end', 2);
      assert.deepEqual(fast.messages().map((m) => m.data.i), Array.from({ length: N }, (_, i) => i + 1));
      assert.ok(await metric(srv.port, 'herald_dropped_messages_total') > dropped0, 'drops counted');
      assert.equal(await metric(srv.port, 'herald_slow_consumer_closes_total'), closes0, 'not closed as a slow consumer');
      slow.res.resume();
      await waitUntil(() => slow.ended, 10000, 'slow stream ends');
      assert.equal(slow.clean, true, 'the body ended with its last chunk');
      const got = slow.messages().map((m) => m.data.i);
      assert.ok(got.length < N, 'the slow reader did not get everything in that stream');
      assert.deepEqual(got, Array.from({ length: got.length }, (_, i) => i + 1), 'no gap inside the stream');
      // The reconnection EventSource makes: everything after the last event read.
      const again = await sse(srv.port, `channel=${ch}`, { headers: { 'last-event-id': slow.lastId } });
      const sub = await again.waitFor((e) => e.event === 'subscribed');
      assert.equal(sub.json.channels[0].recovered, true);
      await waitUntil(() => again.messages().length === N - got.length, 10000, 'recovered messages');
      assert.deepEqual(again.messages().map((m) => m.data.i), Array.from({ length: N - got.length }, (_, i) => got.length + i + 1));
      again.close();
      fast.close();
      ws.close();
    });
  }
});
