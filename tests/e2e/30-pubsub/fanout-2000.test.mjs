// 2,000 subscribers on one channel over two threads, messages published through both the
// HTTP API and /pubsub: every subscriber gets every message exactly once, in offset order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startHerald, sleep } from '../helpers/herald.mjs';

test('2,000 subscribers on one channel: every message counted at every subscriber', { timeout: 120000 }, async () => {
  const srv = await startHerald(['--threads', '2']);
  const http = srv.url.replace('ws:', 'http:');
  const subs = [];
  try {
    for (let i = 0; i < 2000; i += 100) {
      subs.push(...await Promise.all(Array.from({ length: 100 }, () => new Promise((resolve, reject) => {
        const ws = new WebSocket(`ws://127.0.0.1:${srv.port}/pubsub`, { perMessageDeflate: false });
        ws.offsets = [];
        ws.ok = false;
        ws.on('message', (d) => {
          const m = JSON.parse(d);
          if (m.type === 'message') ws.offsets.push(m.offset);
          else if (m.type === 'ok') ws.ok = true;
        });
        ws.once('open', () => { ws.send(JSON.stringify({ type: 'subscribe', id: 1, channel: 'fan.all' })); resolve(ws); });
        ws.once('error', reject);
      }))));
    }
    const deadline = Date.now() + 20000;
    while (subs.some((s) => !s.ok) && Date.now() < deadline) await sleep(20);
    assert.ok(subs.every((s) => s.ok), 'every subscription confirmed');
    const N = 100;
    const pub = new WebSocket(`ws://127.0.0.1:${srv.port}/pubsub`);
    await new Promise((r) => pub.once('open', r));
    for (let i = 0; i < N; i++) {
      if (i % 2) pub.send(JSON.stringify({ type: 'publish', id: i, channel: 'fan.all', data: i }));
      else assert.equal((await fetch(`${http}/api/publish`, { method: 'POST', body: JSON.stringify({ channel: 'fan.all', data: i }) })).status, 200);
    }
    const until = Date.now() + 30000;
    while (subs.some((s) => s.offsets.length < N) && Date.now() < until) await sleep(50);
    await sleep(200); // any duplicate would arrive now
    const want = Array.from({ length: N }, (_, i) => i + 1);
    const bad = subs.filter((s) => s.offsets.length !== N || s.offsets.some((o, i) => o !== want[i]));
    assert.equal(bad.length, 0, `${bad.length} subscribers with missing, duplicate or out-of-order messages`);
    pub.terminate();
  } finally {
    for (const s of subs) s.terminate();
    await srv.stop();
  }
});
