// Subscriptions that come and go while a channel is busy (unsubscribe, resubscribe,
// close during fan-out, on two threads): the steady subscribers get every message in
// order, and the server stays healthy (the suite also runs under ASan/UBSan).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startHerald, sleep } from '../helpers/herald.mjs';

function client(port) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/pubsub`);
    ws.offsets = [];
    ws.on('message', (d) => { const m = JSON.parse(d); if (m.type === 'message') ws.offsets.push(m.offset); });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

test('churning subscribers during fan-out: steady ones get every message, in order', { timeout: 60000 }, async () => {
  const srv = await startHerald(['--threads', '2']);
  const http = srv.url.replace('ws:', 'http:');
  try {
    const steady = await Promise.all(Array.from({ length: 20 }, () => client(srv.port)));
    for (const s of steady) s.send(JSON.stringify({ type: 'subscribe', id: 1, channel: 'busy.c' }));
    const churners = await Promise.all(Array.from({ length: 30 }, () => client(srv.port)));
    await sleep(300);
    const N = 600;
    let stop = false;
    const churn = (async () => {
      let k = 0;
      while (!stop) {
        const c = churners[k++ % churners.length];
        await sleep(2);
        if (c.readyState !== WebSocket.OPEN) continue;
        c.send(JSON.stringify({ type: 'subscribe', id: k, channel: 'busy.c' }));
        c.send(JSON.stringify({ type: 'subscribe', id: k + 1, channel: 'busy.*' }));
        c.send(JSON.stringify({ type: 'unsubscribe', id: k + 2, channel: 'busy.c' }));
        if (k % 7 === 0) c.terminate(); // gone in the middle of deliveries
      }
    })();
    const publishers = Array.from({ length: 4 }, async (_, p) => {
      for (let i = 0; i < N / 4; i++) {
        const r = await fetch(`${http}/api/publish`, { method: 'POST', body: JSON.stringify({ channel: 'busy.c', data: { p, i } }) });
        assert.equal(r.status, 200);
      }
    });
    await Promise.all(publishers);
    stop = true;
    await churn;
    const deadline = Date.now() + 10000;
    while (steady.some((s) => s.offsets.length < N) && Date.now() < deadline) await sleep(50);
    for (const s of steady) assert.deepEqual(s.offsets, Array.from({ length: N }, (_, i) => i + 1));
    const health = await fetch(`${http}/healthz`);
    assert.equal(health.status, 200);
    for (const c of [...steady, ...churners]) c.terminate();
  } finally {
    assert.equal(await srv.stop(), 0, 'clean exit');
  }
});
