// Slow-consumer policies of a namespace (--namespace '...:slow=...'): a /pubsub client that
// stops reading while a channel floods. disconnect: closed with 1008; drop-newest and
// drop-oldest: kept, and the loss shows as a gap in the offsets it then receives; every
// drop counted in /api/stats. A client that reads gets every message in every case.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startHerald, rawWs, sleep } from '../helpers/herald.mjs';

async function scenario(policy) {
  const srv = await startHerald(['--threads', '2', '--max-backlog', '64K',
    '--namespace', `flood.*:slow=${policy},history=10`]);
  try {
    const slow = await rawWs(srv.port, { path: '/pubsub' });
    await slow.sendText(JSON.stringify({ type: 'subscribe', id: 1, channel: 'flood.a' }));
    const ok = JSON.parse((await slow.readMessage({ timeoutMs: 3000 })).payload.toString());
    assert.equal(ok.type, 'ok');
    const good = new WebSocket(`ws://127.0.0.1:${srv.port}/pubsub`);
    const goodOffsets = [];
    good.on('message', (d) => { const m = JSON.parse(d); if (m.type === 'message') goodOffsets.push(m.offset); });
    await new Promise((r) => good.once('open', r));
    good.send(JSON.stringify({ type: 'subscribe', id: 1, channel: 'flood.a' }));
    await sleep(200);
    slow.socket.pause(); // reads nothing from here on
    // 400 x 30 KB = 12 MB: more than the kernel's socket buffers can hide (the send
    // buffer autotunes up to tcp_wmem's 4 MB), so the backlog must build up in Herald.
    const N = 400;
    const data = 'x'.repeat(30000);
    for (let i = 0; i < N; i += 20) {
      await Promise.all(Array.from({ length: 20 }, () => fetch(`${srv.url.replace('ws:', 'http:')}/api/publish`, {
        method: 'POST', body: JSON.stringify({ channel: 'flood.a', data }),
      }).then((r) => assert.equal(r.status, 200))));
    }
    const deadline = Date.now() + 10000;
    while (goodOffsets.length < N && Date.now() < deadline) await sleep(50);
    assert.deepEqual(goodOffsets, Array.from({ length: N }, (_, i) => i + 1), 'the reading client got everything in order');
    const stats = await (await fetch(`${srv.url.replace('ws:', 'http:')}/api/stats`)).json();
    slow.socket.resume();
    const frames = [];
    let close = null;
    for (;;) {
      const fr = await slow.readFrame({ timeoutMs: 1500 }).catch(() => null);
      if (!fr) break;
      if (fr.opcode === 8) { close = fr; break; }
      frames.push(JSON.parse(fr.payload.toString()));
    }
    good.terminate();
    return { stats, close, offsets: frames.filter((m) => m.type === 'message').map((m) => m.offset) };
  } finally { await srv.stop(); }
}

test('slow=disconnect: the slow subscriber is closed with 1008 and counted', async () => {
  const r = await scenario('disconnect');
  assert.ok(r.close, 'a close frame');
  assert.equal(r.close.code, 1008);
  assert.ok(r.stats.slow_consumer_closes >= 1);
});

for (const policy of ['drop-newest', 'drop-oldest']) {
  test(`slow=${policy}: the slow subscriber stays, sees a gap in offsets, drops are counted`, async () => {
    const r = await scenario(policy);
    assert.equal(r.close, null, 'not closed');
    assert.ok(r.stats.dropped_messages > 0, 'drops counted');
    assert.ok(r.offsets.length > 0 && r.offsets.length < 400, `got ${r.offsets.length} of 400`);
    for (let i = 1; i < r.offsets.length; i++) assert.ok(r.offsets[i] > r.offsets[i - 1], 'offsets increase');
    const gaps = r.offsets.some((o, i) => i > 0 && o !== r.offsets[i - 1] + 1) || r.offsets[r.offsets.length - 1] !== 400 || r.offsets[0] !== 1;
    assert.ok(gaps, 'the loss is visible as a gap');
  });
}
