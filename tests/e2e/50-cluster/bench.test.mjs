// `herald bench pubsub --urls` (bench/cluster.sh): the publisher on one node, the
// subscribers spread over the others, every message delivered to every subscriber
// across Redis; and --urls refused where it means nothing. No figure is asserted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runHerald } from '../helpers/herald.mjs';
import { SKIP, startCluster, Ps } from './cluster-helpers.mjs';

function result(stdout) {
  const line = stdout.split('\n').filter((l) => l.startsWith('RESULT ')).pop();
  assert.ok(line, `no RESULT line in:\n${stdout}`);
  return Object.fromEntries(line.split(' ').slice(1).map((kv) => kv.split('=')));
}

test('bench pubsub --urls: subscribers on other nodes get every message', { skip: SKIP }, async () => {
  const cl = await startCluster(3);
  try {
    const [a, b, c] = cl.nodes.map((n) => `${n.url}/pubsub`);
    // A watcher on node 1 sees the bench's channel traffic arrive from node 0.
    const watch = await Ps.open(cl.nodes[1], { name: 'watch@node1' });
    await watch.subscribe('bench.x');
    const r = await runHerald(['bench', 'pubsub', a, '-c', '20', '--rate', '100', '-d', '1', '--warmup', '0.2',
      '--channel', 'bench.x', '--urls', `${b},${c}`], { timeoutMs: 20000 });
    assert.equal(r.code, 0, r.stderr);
    const kv = result(r.stdout);
    assert.ok(Number(kv.sent) >= 50, `sent ${kv.sent}`);
    assert.equal(Number(kv.deliveries), Number(kv.sent) * 20);
    assert.equal(kv.lost, '0');
    assert.equal(kv.out_of_order, '0');
    assert.equal(kv.errors, '0');
    assert.match(r.stdout, new RegExp(`subscribers +${b.replace(/[/.]/g, '\\$&')} \\(round-robin`));
    assert.ok(watch.messages.length >= Number(kv.sent), `watcher on node 1 got ${watch.messages.length}`);
    watch.close();

    for (const bad of [
      ['bench', 'echo', a, '--urls', b],
      ['bench', 'pubsub', a, '--urls', 'http://127.0.0.1:1/pubsub'],
      ['bench', 'pubsub', a, '--urls', `${b},`],
    ]) {
      const u = await runHerald(bad, { timeoutMs: 5000 });
      assert.equal(u.code, 2, `${bad.join(' ')}: ${u.stderr}`);
      assert.match(u.stderr, /herald bench: .*see herald bench --help/);
    }
  } finally {
    assert.deepEqual(await cl.stop(), [0, 0, 0]);
  }
});
