// Redis killed (SIGKILL) and restarted mid-stream (docs/cluster.md, "When Redis goes
// away"): local delivery goes on, no node crashes, /healthz and /metrics report the
// outage, the nodes reconnect and re-subscribe by themselves, cross-node delivery
// resumes, and a client that recovers across the outage is told honestly that the gap
// could not be filled (the restarted Redis is empty).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  SKIP, startCluster, Ps, apiPublish, health, redisUp, waitRedisUp, metrics, uniq, sleep,
} from './cluster-helpers.mjs';

test('Redis killed and restarted mid-stream', { skip: SKIP }, async () => {
  const cl = await startCluster(3);
  let streaming = true;
  try {
    const ch = `outage.${uniq()}`;
    const local = await Ps.open(cl.nodes[0], { name: 'local@node0' });
    const remote = await Ps.open(cl.nodes[1], { name: 'remote@node1' });
    const wild = await Ps.open(cl.nodes[2], { name: 'wild@node2' });
    await local.subscribe(ch);
    await remote.subscribe(ch);
    await wild.subscribe('outage.*');
    const pub = await Ps.open(cl.nodes[0], { name: 'pub@node0' });

    // A steady stream from node 0; replies are not awaited one by one (a publish during
    // the outage may be refused, which is allowed: it must not hang or crash anything).
    let seq = 0;
    const replies = [];
    const stream = (async () => {
      while (streaming) {
        const id = pub.nextId++;
        pub.send({ type: 'publish', id, channel: ch, data: { p: 'n0', seq: seq++ } });
        replies.push(id);
        await sleep(15);
      }
    })();

    await remote.waitMessages((m) => m.length >= 10, 'ten messages across nodes before the outage');
    const before = { remote: remote.messages.length, wild: wild.messages.length };
    const lastBefore = remote.messages[remote.messages.length - 1];

    await cl.redis.kill();
    for (const nd of cl.nodes) await waitRedisUp(nd, 8000, false);
    const h = await health(cl.nodes[0]);
    assert.equal(redisUp(h.body), false, JSON.stringify(h));

    // Local delivery goes on while Redis is down.
    const localAtKill = local.messages.length;
    await local.waitMessages((m) => m.length >= localAtKill + 10, 'local delivery during the outage');
    assert.match(await metrics(cl.nodes[0]), /^herald_redis_up 0$/m, 'herald_redis_up during the outage');

    await cl.redis.restart();
    for (const nd of cl.nodes) await waitRedisUp(nd, 15000, true);
    // Cross-node delivery resumes (the nodes re-subscribed by themselves).
    const resumedFrom = seq;
    await remote.waitMessages((m) => m.some((x) => x.data.seq > resumedFrom), 'delivery after Redis came back', 10000);
    await wild.waitMessages((m) => m.some((x) => x.data.seq > resumedFrom), 'pattern delivery after Redis came back', 10000);
    const after = await metrics(cl.nodes[1]);
    assert.match(after, /^herald_redis_up 1$/m);
    assert.ok(Number(/^herald_redis_reconnects_total (\d+)$/m.exec(after)?.[1]) >= 1, 'reconnects counted');
    // And through the HTTP API of another node.
    assert.equal((await apiPublish(cl.nodes[2], ch, { p: 'http', seq: 0 })).status, 200);
    await local.waitMessages((m) => m.some((x) => x.data.p === 'http'), 'HTTP publish from node 2 after the outage');
    await remote.waitMessages((m) => m.some((x) => x.data.p === 'http'), 'HTTP publish from node 2 after the outage');

    streaming = false;
    await stream;
    // Every publish got an answer (ok or error), none hung.
    for (const id of replies) await pub.take((f) => f.id === id, `publish reply #${id}`, 5000);

    // No message delivered twice, and each subscriber's stream is in publish order.
    for (const s of [local, remote]) {
      const n0 = s.messages.filter((m) => m.data.p === 'n0').map((m) => m.data.seq);
      for (let i = 1; i < n0.length; i++) assert.ok(n0[i] > n0[i - 1], `${s.name}: #${n0[i]} after #${n0[i - 1]}`);
    }
    assert.ok(remote.messages.length > before.remote && wild.messages.length > before.wild);

    // The remote client missed part of the stream. Recovering from where it was before
    // the outage, anywhere in the cluster, must not claim a recovery it cannot do: the
    // history was in the Redis that was killed.
    const again = await Ps.open(cl.nodes[2], { name: 'again@node2' });
    const ok = await again.subscribe(ch, { since: { offset: lastBefore.offset, epoch: lastBefore.epoch } });
    assert.equal(ok.type, 'ok');
    assert.equal(ok.recovered, false, `recovered across a Redis restart: ${JSON.stringify(ok)}`);

    // Nobody crashed.
    for (const nd of cl.nodes) {
      assert.equal(nd.proc.exitCode, null, `node :${nd.port} exited`);
      assert.equal((await health(nd)).status, 200);
    }
    for (const x of [local, remote, wild, pub, again]) x.close();
  } finally {
    streaming = false;
    const codes = await cl.stop();
    assert.deepEqual(codes, [0, 0, 0], cl.nodes.map((n) => n.stderr().slice(-1500)).join('\n---\n'));
  }
});
