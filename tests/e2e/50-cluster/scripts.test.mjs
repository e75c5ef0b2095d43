// Each node loads its Lua scripts when it connects, before it publishes anything. If it
// relied on EVALSHA's NOSCRIPT fallback instead, a node's first publish on a fresh Redis
// could fail with NOSCRIPT while its next ones succeeded (another node having loaded
// the script in between), and be retried after them: out of per-publisher order. So on
// a fresh Redis, with every node publishing at once, Redis must never see a NOSCRIPT
// error nor a plain EVAL.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SKIP, startCluster, Ps, uniq } from './cluster-helpers.mjs';

function commandStats(info) {
  const stats = new Map();
  for (const line of info.split(/\r?\n/)) {
    const m = /^cmdstat_([a-z|]+):calls=(\d+),.*failed_calls=(\d+)/.exec(line);
    if (m) stats.set(m[1], { calls: Number(m[2]), failed: Number(m[3]) });
  }
  return stats;
}

test('scripts are loaded at connect: no NOSCRIPT, no EVAL fallback, on a fresh Redis', { skip: SKIP }, async () => {
  const cl = await startCluster(3);
  try {
    const ch = `scripts.${uniq()}`;
    const pubs = await Promise.all(cl.nodes.map((nd, i) => Ps.open(nd, { name: `pub@node${i}` })));
    await Promise.all(pubs.map((p, i) => Promise.all(Array.from({ length: 20 }, (_, seq) => p.publish(ch, { p: i, seq })))));
    const info = await cl.redis.cli('INFO', 'commandstats');
    const stats = commandStats(info);
    const evalsha = stats.get('evalsha');
    assert.ok(evalsha && evalsha.calls >= 60, `the publishes ran as EVALSHA: ${info}`);
    assert.equal(evalsha.failed, 0, `no EVALSHA failed (NOSCRIPT): ${info}`);
    assert.equal(stats.get('eval'), undefined, `no EVAL fallback: ${info}`);
    assert.ok((stats.get('script|load')?.calls ?? 0) >= 3, `each node loaded its scripts: ${info}`);
    for (const p of pubs) p.close();
  } finally {
    await cl.stop();
  }
});
