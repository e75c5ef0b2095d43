// Recovery with `since` across nodes (docs/cluster.md): history and offsets live in
// Redis, so a client that drops off one node and reconnects to another gets exactly
// the messages it missed, then the live ones.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  SKIP, startCluster, Ps, apiPublish, checkExactlyOnce, uniq, sleep,
} from './cluster-helpers.mjs';

test('recovery with since after reconnecting to another node', { skip: SKIP }, async () => {
  const cl = await startCluster(3);
  try {
    const ch = `rec.${uniq()}`;
    const a = await Ps.open(cl.nodes[0], { name: 'client@node0' });
    const first = await a.subscribe(ch);
    assert.equal(first.offset, 0, `a new channel starts at offset 0: ${JSON.stringify(first)}`);
    const pub = await Ps.open(cl.nodes[1], { name: 'pub@node1' });
    for (let seq = 0; seq < 5; seq++) await pub.publish(ch, { p: 'x', seq });
    await a.waitMessages((m) => m.length >= 5, 'five live messages');
    const last = a.messages[a.messages.length - 1];
    assert.equal(last.offset, 5);
    await a.closeAndWait();

    // Missed while away: from node 1 over the WebSocket and from node 2 over HTTP.
    for (let seq = 5; seq < 8; seq++) await pub.publish(ch, { p: 'x', seq });
    for (let seq = 8; seq < 10; seq++) assert.equal((await apiPublish(cl.nodes[2], ch, { p: 'x', seq })).status, 200);

    const b = await Ps.open(cl.nodes[2], { name: 'client@node2' });
    const ok = await b.subscribe(ch, { since: { offset: last.offset, epoch: last.epoch } });
    assert.equal(ok.recovered, true, JSON.stringify(ok));
    assert.equal(ok.epoch, last.epoch, 'one epoch across nodes');
    assert.equal(ok.offset, 10);
    await b.waitMessages((m) => m.length >= 5, 'the five missed messages');
    assert.deepEqual(b.messages.map((m) => m.offset), [6, 7, 8, 9, 10]);
    // then live
    await pub.publish(ch, { p: 'x', seq: 10 });
    await b.waitMessages((m) => m.length >= 6, 'the live message after recovery');
    await sleep(200);
    assert.deepEqual(checkExactlyOnce([...a.messages, ...b.messages], new Map([['x', 11]]), 'a+b'), []);

    // history on a third node reads the same shared history
    const c = await Ps.open(cl.nodes[0], { name: 'hist@node0' });
    const h = await c.request({ type: 'history', channel: ch, limit: 3 });
    assert.equal(h.type, 'ok', JSON.stringify(h));
    assert.deepEqual(h.messages.map((m) => m.data.seq), [8, 9, 10]);
    assert.equal(h.offset, 11);

    // An epoch this cluster never issued cannot be recovered, and says so.
    const d = await Ps.open(cl.nodes[1], { name: 'stale@node1' });
    const stale = await d.subscribe(ch, { since: { offset: 3, epoch: 'not-this-epoch' } });
    assert.equal(stale.recovered, false, JSON.stringify(stale));
    await sleep(200);
    assert.equal(d.messages.length, 0, 'nothing replayed from a foreign epoch');
    for (const x of [b, c, d, pub]) x.close();
  } finally {
    const codes = await cl.stop();
    assert.deepEqual(codes, [0, 0, 0], cl.nodes.map((n) => n.stderr().slice(-1500)).join('\n---\n'));
  }
});
