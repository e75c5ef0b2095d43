// Smoke test of the Redis bridge (src/cluster/): two nodes on one redis-server.
// Publish on one node, receive on the other; recovery with `since` on the other node;
// a backend's raw PUBLISH and FCALL; a pattern subscription; /healthz and /metrics.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  SKIP, startCluster, Ps, apiPublish, metrics, health, uniq, sleep,
} from './cluster-helpers.mjs';

// A minimal EventSource reader (GET /sse): resolves once the stream has started.
async function sseOpen(node, channels) {
  const ac = new AbortController();
  const q = channels.map((c) => `channel=${encodeURIComponent(c)}`).join('&');
  const res = await fetch(`http://127.0.0.1:${node.port}/sse?${q}`, { signal: ac.signal });
  assert.equal(res.status, 200);
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  const events = [];
  const pump = (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buf += dec.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const data = block.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim()).join('\n');
          if (data) events.push(JSON.parse(data));
        }
      }
    } catch { /* aborted */ }
  })();
  const waitData = async (pred, ms = 8000) => {
    const deadline = Date.now() + ms;
    while (!pred(events)) {
      if (Date.now() > deadline) throw new Error(`SSE: timed out; have ${JSON.stringify(events).slice(0, 500)}`);
      await sleep(20);
    }
    return events;
  };
  await waitData((e) => e.some((x) => x.type === 'subscribed'));
  return { events, waitData, close: () => { ac.abort(); return pump; } };
}

// Both nodes stop cleanly on SIGTERM (exit 0; under ASan no report, no leak).
async function stopClean(cl, nodes) {
  const codes = await cl.stop();
  for (const [i, nd] of nodes.entries()) {
    assert.doesNotMatch(nd.stderr(), /Sanitizer|runtime error/, nd.stderr().slice(-3000));
    assert.equal(codes[i], 0, `node :${nd.port} exit code`);
  }
}

test('bridge: two nodes share channels, history and backends through Redis', { skip: SKIP, timeout: 60000 }, async () => {
  const cl = await startCluster(2, { prefix: `hb${uniq()}` });
  const [a, b] = cl.nodes;
  const ch = `orders.${uniq()}`;
  const clients = [];
  try {
    // /healthz reports Redis and the node id.
    const h = await health(a);
    assert.equal(h.status, 200);
    assert.equal(h.body.redis, 'up');
    assert.match(h.body.node, /^[a-z0-9]{12}$/);

    // A subscriber on b, a publisher on a: delivered once, in order, with offsets 1..5.
    const sub = await Ps.open(b, { name: 'sub@b' }); clients.push(sub);
    const ok = await sub.subscribe(ch);
    assert.equal(ok.offset ?? 0, 0);
    const pub = await Ps.open(a, { name: 'pub@a' }); clients.push(pub);
    for (let i = 0; i < 5; i++) {
      const r = await pub.publish(ch, { seq: i });
      assert.equal(r.offset, i + 1, 'offsets come from Redis, 1..n');
    }
    await sub.waitMessages((m) => m.length >= 5, '5 messages on b');
    assert.deepEqual(sub.messages.map((m) => m.data.seq), [0, 1, 2, 3, 4]);
    assert.deepEqual(sub.messages.map((m) => m.offset), [1, 2, 3, 4, 5]);
    const epoch = sub.messages[0].epoch;
    assert.ok(sub.messages.every((m) => m.epoch === epoch));

    // The publisher's own node has no subscriber of its own and must not echo twice:
    // a subscriber on a gets the next one exactly once.
    const subA = await Ps.open(a, { name: 'sub@a' }); clients.push(subA);
    await subA.subscribe(ch);
    await apiPublish(b, ch, { seq: 5 });
    await sub.waitMessages((m) => m.length >= 6, '6th message on b');
    await subA.waitMessages((m) => m.length >= 1, 'a message on a');
    await sleep(300);
    assert.equal(subA.messages.length, 1, 'exactly once on a');
    assert.equal(sub.messages.length, 6, 'exactly once on b');
    assert.equal(subA.messages[0].offset, 6);

    // Recovery with since on the other node: client saw up to 2 on b, reconnects to a.
    const rec = await Ps.open(a, { name: 'rec@a' }); clients.push(rec);
    const rok = await rec.subscribe(ch, { since: { offset: 2, epoch } });
    assert.equal(rok.recovered, true, JSON.stringify(rok));
    await rec.waitMessages((m) => m.length >= 4, '4 recovered messages');
    assert.deepEqual(rec.messages.map((m) => m.offset), [3, 4, 5, 6]);
    // Under another epoch: honestly not recovered.
    const bad = await Ps.open(b, { name: 'bad@b' }); clients.push(bad);
    const bok = await bad.subscribe(ch, { since: { offset: 2, epoch: 'zzzzzzzzzzzz' } });
    assert.equal(bok.recovered, false);

    // History through the API of either node comes from Redis.
    const hist = await (await fetch(`http://127.0.0.1:${b.port}/api/channels/${ch}/history?limit=3`)).json();
    const items = hist.items || hist.messages || hist.publications || [];
    assert.deepEqual(items.map((m) => m.offset), [4, 5, 6], JSON.stringify(hist));

    // Wildcard: a pattern subscriber on b gets publishes to matching channels from a.
    // Several patterns of one node may match one channel (Redis sends one pmessage per
    // glob): each subscription still gets a message once, as on a single node.
    const pat = await Ps.open(b, { name: 'pat@b' }); clients.push(pat);
    const pat2 = await Ps.open(b, { name: 'pat2@b' }); clients.push(pat2);
    const pbase = `fleet${uniq()}`;
    await pat.subscribe(`${pbase}.*`);
    await pat2.subscribe(`${pbase}.>`);
    await pat2.subscribe(`*.truck2`);
    await pub.publish(`${pbase}.truck1`, { where: 1 });
    await pub.publish(`${pbase}.truck1.engine`, { where: 'engine' }); // two segments: not for .*
    await pub.publish(`${pbase}.truck2`, { where: 2 });
    await pat.waitMessages((m) => m.length >= 2, '2 pattern messages');
    await pat2.waitMessages((m) => m.length >= 4, '4 pattern messages');
    await sleep(300);
    assert.deepEqual(pat.messages.map((m) => m.data.where), [1, 2]);
    assert.deepEqual(pat2.messages.map((m) => m.data.where).sort(), [1, 2, 2, 'engine'].sort());

    // SSE subscribers (exact and pattern) on b get publishes from a through Redis too
    // (a pattern of its own: no /pubsub subscription makes the node PSUBSCRIBE it)
    const sse = await sseOpen(b, [ch, '*.truck9']);
    await pub.publish(ch, { sse: 1 });
    await pub.publish(`${pbase}.truck9`, { sse: 2 });
    const got = await sse.waitData((d) => d.filter((x) => x.type === 'message').length >= 2);
    assert.deepEqual(got.filter((x) => x.type === 'message').map((x) => x.data.sse).sort(), [1, 2]);
    sse.close();

    // A backend: raw PUBLISH of JSON on the documented channel reaches subscribers of
    // both nodes (no offset: not in history); non-JSON is dropped and counted.
    await cl.redis.cli('PUBLISH', `${cl.prefix}:ch:${ch}`, 'not json');
    await cl.redis.cli('PUBLISH', `${cl.prefix}:ch:${ch}`, '{"raw":true}');
    await sub.waitMessages((m) => m.some((x) => x.data && x.data.raw), 'raw on b');
    await subA.waitMessages((m) => m.some((x) => x.data && x.data.raw), 'raw on a');
    assert.equal(sub.messages.at(-1).offset, 0);
    // The proper way: FCALL <prefix>_publish gives it an offset and a place in history.
    const out = await cl.redis.cli('FCALL', `${cl.prefix}_publish`, '0', ch, '{"fcall":1}');
    assert.match(out, /^8\b/m, out); // after offsets 1..6 and the SSE one (7)
    await sub.waitMessages((m) => m.some((x) => x.data && x.data.fcall), 'fcall on b');
    assert.equal(sub.messages.at(-1).offset, 8);
    assert.equal(sub.messages.at(-1).epoch, epoch);

    const m = await metrics(a);
    assert.match(m, /^herald_cluster_enabled 1$/m);
    assert.match(m, /^herald_redis_up 1$/m);
    assert.match(m, /^herald_redis_messages_out_total [1-9]/m);
    assert.match(m, /^herald_redis_messages_in_total [1-9]/m);
    const mb = await metrics(b);
    assert.match(mb, /^herald_redis_errors_total [1-9]/m, 'the non-JSON publish counted');
    for (const c of clients) c.close();
    await stopClean(cl, [a, b]);
  } finally {
    for (const c of clients) c.close();
    await cl.stop();
  }
});

test('bridge: Redis restart mid-stream: local delivery goes on, then Redis delivery resumes', { skip: SKIP, timeout: 60000 }, async () => {
  const cl = await startCluster(2, { prefix: `hr${uniq()}` });
  const [a, b] = cl.nodes;
  const ch = `live.${uniq()}`;
  const clients = [];
  try {
    const sa = await Ps.open(a); clients.push(sa);
    const sb = await Ps.open(b); clients.push(sb);
    await sa.subscribe(ch);
    await sb.subscribe(ch);
    const pub = await Ps.open(a); clients.push(pub);
    await pub.publish(ch, { n: 1 });
    await sb.waitMessages((m) => m.length >= 1, 'first');
    const epoch1 = sb.messages[0].epoch;

    await cl.redis.kill();
    const { waitRedisUp } = await import('./cluster-helpers.mjs');
    await waitRedisUp(a, 5000, false);
    assert.equal((await health(a)).status, 200, '/healthz stays 200');
    assert.match(await metrics(a), /^herald_redis_up 0$/m);
    // Local delivery only while Redis is away, under an epoch of the node's own.
    const r = await pub.publish(ch, { n: 2 });
    assert.notEqual(r.epoch, epoch1);
    await sa.waitMessages((m) => m.length >= 2, 'outage message on a');

    await cl.redis.restart();
    await waitRedisUp(a, 10000);
    await waitRedisUp(b, 10000);
    assert.match(await metrics(a), /^herald_redis_reconnects_total [1-9]/m);
    await pub.publish(ch, { n: 3 });
    await sb.waitMessages((m) => m.some((x) => x.data.n === 3), 'after restart on b');
    await sa.waitMessages((m) => m.some((x) => x.data.n === 3), 'after restart on a');
    const last = sb.messages.at(-1);
    assert.notEqual(last.epoch, epoch1, 'Redis came back empty: a new epoch');
    // Recovery across the outage is honest.
    const rec = await Ps.open(b); clients.push(rec);
    const ok = await rec.subscribe(ch, { since: { offset: 1, epoch: epoch1 } });
    assert.equal(ok.recovered, false);
    assert.equal(a.proc.exitCode, null);
    assert.equal(b.proc.exitCode, null);
    for (const c of clients) c.close();
    await stopClean(cl, [a, b]);
  } finally {
    for (const c of clients) c.close();
    await cl.stop();
  }
});

test('bridge: presence is shared: joins and leaves cross nodes, the API lists every node', { skip: SKIP, timeout: 60000 }, async () => {
  const cl = await startCluster(2, { prefix: `hp${uniq()}`, extra: ['--namespace', 'room.*:presence=on'] });
  const [a, b] = cl.nodes;
  const ch = `room.${uniq()}`;
  const clients = [];
  const presence = async (node) => {
    const r = await fetch(`http://127.0.0.1:${node.port}/api/channels/${ch}/presence`);
    assert.equal(r.status, 200);
    return (await r.json()).clients;
  };
  try {
    const x = await Ps.open(a, { name: 'x@a' }); clients.push(x);
    await x.subscribe(ch);
    const y = await Ps.open(b, { name: 'y@b' }); clients.push(y);
    await y.subscribe(ch);
    // x (on a) hears y's join, which happened on b.
    const join = await x.take((f) => f.type === 'join' && f.channel === ch, 'join of y from b');
    assert.match(join.client, /^\d+$/);
    // Either node's API lists both clients.
    for (const node of [a, b]) {
      let list = [];
      for (let i = 0; i < 40 && list.length < 2; i++) { list = await presence(node); if (list.length < 2) await sleep(50); }
      assert.equal(list.length, 2, `presence on :${node.port}: ${JSON.stringify(list)}`);
    }
    // y leaves: x hears it, and the lists shrink.
    y.close();
    const leave = await x.take((f) => f.type === 'leave' && f.channel === ch, 'leave of y from b');
    assert.equal(leave.client, join.client);
    let list = [];
    for (let i = 0; i < 40; i++) { list = await presence(a); if (list.length === 1) break; await sleep(50); }
    assert.equal(list.length, 1, JSON.stringify(list));
    // A node that dies without a goodbye: its clients drop out once its heartbeat expires.
    const z = await Ps.open(b, { name: 'z@b' }); clients.push(z);
    await z.subscribe(ch);
    for (let i = 0; i < 40; i++) { list = await presence(a); if (list.length === 2) break; await sleep(50); }
    assert.equal(list.length, 2);
    await b.stop({ signal: 'SIGKILL' });
    for (let i = 0; i < 100; i++) { list = await presence(a); if (list.length === 1) break; await sleep(100); }
    assert.equal(list.length, 1, 'a killed node\'s clients are not listed after its heartbeat expired');
  } finally {
    for (const c of clients) c.close();
    await cl.stop();
  }
});

test('bridge: subscribing while messages stream in misses nothing and repeats nothing', { skip: SKIP, timeout: 60000 }, async () => {
  // A node SUBSCRIBEs in Redis, then reads the top offset; messages published between the
  // two reach the node before the read's answer: the answer must include them, once.
  // A backend publishes in a tight loop (redis-cli -r, FCALL) while subscribers join.
  const cl = await startCluster(1, { prefix: `hs${uniq()}` });
  const [b] = cl.nodes;
  const base = `race${uniq()}`;
  const N = 4; const PER = 3000;
  const chans = Array.from({ length: N }, (_, i) => `${base}.c${i}`);
  const clients = [];
  try {
    const firsts = [];
    for (const ch of chans) {
      await cl.redis.cli('FCALL', `${cl.prefix}_publish`, '0', ch, '{"n":1}', String(PER));
      firsts.push((await (await fetch(`http://127.0.0.1:${b.port}/api/channels/${ch}/history?limit=1`)).json()).epoch);
    }
    const streaming = Promise.all(chans.map((ch) => cl.redis.cli('-r', String(PER - 1), 'FCALL', `${cl.prefix}_publish`, '0', ch, '{"n":2}', String(PER))));
    streaming.catch(() => {}); // reported where awaited
    // Meanwhile: the first subscriber of each channel, half of them recovering from 1.
    const subs = [];
    for (let i = 0; i < N; i++) {
      await sleep(20);
      const s = await Ps.open(b, { name: `s${i}` }); clients.push(s);
      const since = i % 2 === 0;
      const ok = await s.subscribe(chans[i], since ? { since: { offset: 1, epoch: firsts[i] } } : {});
      // Recovery of more than 1000 messages (over the namespace's history) is refused.
      if (since) assert.equal(ok.recovered, ok.offset - 1 <= 1000, JSON.stringify(ok));
      subs.push({ s, from: since && ok.recovered ? 1 : ok.offset, ch: chans[i] });
    }
    await streaming;
    for (const { s, from, ch } of subs) {
      assert.ok(from < PER, `${ch}: subscribed after the stream ended (${from}): the test proves nothing`);
      await s.waitMessages((m) => m.length >= PER - from, `${ch}: offsets ${from + 1}..${PER}`, 15000);
      await sleep(100);
      const offs = s.messages.map((m) => m.offset);
      const bad = offs.findIndex((o, k) => o !== from + 1 + k);
      assert.equal(bad, -1, `${ch} (subscribed at ${from}): at ${bad} got ${offs[bad]}, want ${from + 1 + bad}`);
      assert.equal(offs.length, PER - from);
    }
  } finally {
    for (const c of clients) c.close();
    await cl.stop();
  }
});
