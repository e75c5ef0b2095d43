// --max-connections-per-user across nodes (docs/cluster.md, "Limits"): the count lives
// in Redis, one hash field per node, so a user's connections on every node add up; a
// close anywhere frees a slot everywhere; a crashed node's connections stop counting
// once its heartbeat key expires; with Redis down each node falls back to its own count,
// and rewrites it into Redis when Redis is back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import {
  SKIP, startCluster, jwt, SECRET, waitRedisUp, withTimeout, sleep,
} from './cluster-helpers.mjs';

// Opens a WebSocket; resolves to { ws } when open, or { status, headers, body } when the
// handshake is refused with an HTTP answer.
function connect(url) {
  return withTimeout(new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.once('open', () => resolve({ ws }));
    ws.once('unexpected-response', (req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
      res.on('error', reject);
    });
    ws.once('error', reject);
  }), 5000, `connect ${url}`);
}

// STOMP over a raw WebSocket: CONNECT with headers; resolves once CONNECTED or ERROR is in.
async function stompConnect(url, headers = {}) {
  const ws = new WebSocket(url, ['v12.stomp'], { perMessageDeflate: false });
  await withTimeout(new Promise((res, rej) => { ws.once('open', res); ws.once('error', rej); }), 5000, 'stomp open');
  const st = { ws, text: '' };
  ws.on('message', (d) => { st.text += d.toString(); });
  const h = Object.entries({ 'accept-version': '1.2', host: 'localhost', ...headers })
    .map(([k, v]) => `${k}:${v}\n`).join('');
  ws.send(`CONNECT\n${h}\n\0`);
  const deadline = Date.now() + 5000;
  while (!/^(CONNECTED|ERROR)/m.test(st.text) && Date.now() < deadline) await sleep(20);
  return st;
}

function closed(ws) {
  if (ws.readyState === WebSocket.CLOSED) return Promise.resolve();
  return withTimeout(new Promise((resolve) => ws.once('close', resolve)), 5000, 'close');
}

// Retries until the handshake opens (a slot is freed asynchronously). Resolves to the ws.
async function connectWhenFree(url, ms, what) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    last = await connect(url);
    if (last.ws) return last.ws;
    if (Date.now() >= deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}; last answer ${last.status} ${last.body}`);
    await sleep(100);
  }
}

async function rejections(node) {
  const text = await (await fetch(`http://127.0.0.1:${node.port}/metrics`)).text();
  const m = /^herald_limit_rejections_total\{limit="max_connections_per_user"\} (\d+)$/m.exec(text);
  return m ? Number(m[1]) : 0;
}

function refusedForUser(r, what) {
  assert.equal(r.status, 503, `${what}: expected 503, got ${r.status ?? 'an open WebSocket'}`);
  assert.match(r.body, /too many connections for this user/);
  assert.equal(r.headers['retry-after'], '5');
}

test('the per-user connection limit holds across nodes', { skip: SKIP }, async () => {
  const cl = await startCluster(3, {
    extra: ['--auth', 'optional', '--jwt-secret', SECRET, '--max-connections-per-user', '2'],
  });
  const open = [];
  try {
    const [n0, n1, n2] = cl.nodes;
    const alice = jwt('alice');
    const url = (nd, tok = alice) => `${nd.url}/ws?token=${tok}`;
    const a0 = await connect(url(n0));
    const a1 = await connect(url(n1));
    assert.ok(a0.ws && a1.ws, 'two connections for alice on two nodes');
    open.push(a0.ws, a1.ws);
    // The third, on a node that has none of alice's connections, is over the limit.
    refusedForUser(await connect(url(n2)), 'third connection on node 2');
    refusedForUser(await connect(url(n0)), 'third connection on node 0');
    assert.equal(await rejections(n2), 1);
    assert.equal(await rejections(n0), 1);
    // Other users and anonymous connections are not affected.
    const b = await connect(url(n2, jwt('bob')));
    const anon = await connect(`${n2.url}/ws`);
    assert.ok(b.ws && anon.ws);
    open.push(b.ws, anon.ws);
    // The Redis side: one field per node holding alice's connections.
    const fields = await cl.redis.cli('HGETALL', `${cl.prefix}:user:alice`);
    assert.equal(fields.split('\n').length, 4, `two node fields for alice: ${JSON.stringify(fields)}`);

    // A close on node 0 frees a slot on node 2.
    a0.ws.close();
    await closed(a0.ws);
    const a2 = await connectWhenFree(url(n2), 5000, 'the slot freed on node 0');
    open.push(a2);
    refusedForUser(await connect(url(n1)), 'over the limit again');

    // Node 1 crashes with one of alice's connections. Its count stops counting when its
    // heartbeat key expires: alice gets that slot back without anyone closing anything.
    await n1.stop({ signal: 'SIGKILL' });
    const a3 = await connectWhenFree(url(n0), 20000, "the crashed node's slot");
    open.push(a3);
    refusedForUser(await connect(url(n0)), 'limit still enforced after the crash');

    // STOMP with the token in CONNECT: the session is open before its user is known, so
    // only node 0's own count (1 of 2) decides; but it is counted in Redis from then on.
    const st = await stompConnect(`${n0.url}/stomp`, { passcode: alice });
    assert.match(st.text, /^CONNECTED/m, st.text);
    a2.close(); // node 2 now holds none of alice's; Redis still counts a3 + the session
    await closed(a2);
    await sleep(300);
    refusedForUser(await connect(url(n2)), 'the STOMP session holds the freed slot');
    st.ws.close();
    await closed(st.ws);
    open.push(await connectWhenFree(url(n2), 5000, 'the slot of the closed STOMP session'));

    // Redis down: each node falls back to its own count (2 per node).
    await cl.redis.kill();
    await waitRedisUp(n0, 8000, false);
    const local = await connect(url(n0));
    assert.ok(local.ws, 'node 0 holds one of alice\'s connections: a second is allowed locally');
    open.push(local.ws);
    refusedForUser(await connect(url(n0)), 'local limit while Redis is down');

    // Redis comes back empty: each node rewrites its own counts at its next beat (node 0
    // holds 2 of alice's, node 2 one), and the cluster-wide limit holds again.
    await cl.redis.restart();
    for (const nd of [n0, n2]) await waitRedisUp(nd, 15000);
    const key = `${cl.prefix}:user:alice`;
    const sum = async () => {
      const lines = (await cl.redis.cli('HGETALL', key)).split('\n').filter(Boolean);
      let t = 0;
      for (let i = 1; i < lines.length; i += 2) t += Number(lines[i]);
      return t;
    };
    const deadline = Date.now() + 10000;
    while ((await sum()) < 3) {
      if (Date.now() > deadline) throw new Error(`counts not rewritten after the outage: ${await cl.redis.cli('HGETALL', key)}`);
      await sleep(100);
    }
    assert.equal(await sum(), 3, await cl.redis.cli('HGETALL', key));
    refusedForUser(await connect(url(n2)), 'the cluster-wide limit after Redis came back');
    for (const ws of open) ws.close();
  } finally {
    for (const ws of open) { try { ws.terminate(); } catch { /* gone */ } }
    const codes = await cl.stop();
    // node 1 was killed on purpose; the others exit cleanly
    assert.deepEqual([codes[0], codes[2]], [0, 0], cl.nodes.map((n) => n.stderr().slice(-1500)).join('\n---\n'));
  }
});
