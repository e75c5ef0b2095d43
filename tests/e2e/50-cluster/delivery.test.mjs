// Three herald nodes sharing one Redis (docs/cluster.md): subscribers on every node,
// publishers on every node and through the HTTP API of every node; every message reaches
// every subscriber exactly once, each publisher's messages in the order published, with
// one offset per message whichever node delivers it. Wildcards across nodes, a backend
// PUBLISH from redis-cli, and STOMP /topic subscribers fed from another node.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { redisCli } from '../helpers/redis.mjs';
import {
  SKIP, startCluster, Ps, apiPublish, checkExactlyOnce, uniq, sleep, withTimeout,
} from './cluster-helpers.mjs';

describe('three nodes, one Redis', { skip: SKIP }, () => {
  let cl;
  before(async () => {
    // node 1 runs two worker threads: a message from Redis must reach both of them
    cl = await startCluster(3, { nodeArgs: (i) => (i === 1 ? ['--threads', '2'] : []) });
  });
  after(async () => {
    if (!cl) return;
    const codes = await cl.stop();
    assert.deepEqual(codes, [0, 0, 0], `node exit codes; stderr:\n${cl.nodes.map((n) => n.stderr().slice(-1500)).join('\n---\n')}`);
  });

  test('every message reaches every subscriber on every node exactly once, in per-publisher order', async () => {
    const ch = `fan.${uniq()}`;
    const subs = [];
    for (const [i, nd] of cl.nodes.entries()) {
      for (let k = 0; k < 3; k++) subs.push(await Ps.open(nd, { name: `sub${k}@node${i}` }));
    }
    const pubs = [];
    for (const [i, nd] of cl.nodes.entries()) pubs.push(await Ps.open(nd, { name: `pub@node${i}` }));
    // A publisher subscribed to its own channel must get its own messages once too.
    for (const s of [...subs, ...pubs]) await s.subscribe(ch);

    const N = 60;
    const H = 30;
    const expected = new Map();
    for (let i = 0; i < pubs.length; i++) expected.set(`ws${i}`, N);
    expected.set('http', H);

    // WebSocket publishers pipeline their publishes (replies come back in order); the HTTP
    // publisher goes round the nodes one request at a time, so its order is defined.
    const wsDone = pubs.map(async (p, i) => {
      const ids = [];
      for (let seq = 0; seq < N; seq++) {
        const id = p.nextId++;
        ids.push(id);
        p.send({ type: 'publish', id, channel: ch, data: { p: `ws${i}`, seq } });
      }
      for (const id of ids) {
        const r = await p.take((f) => f.id === id, `publish reply #${id}`, 10000);
        assert.equal(r.type, 'ok', `${p.name} publish #${id}: ${JSON.stringify(r)}`);
      }
    });
    const httpDone = (async () => {
      for (let seq = 0; seq < H; seq++) {
        const r = await apiPublish(cl.nodes[seq % 3], ch, { p: 'http', seq });
        assert.equal(r.status, 200, `POST /api/publish #${seq}: ${JSON.stringify(r.body)}`);
        assert.ok(Number.isInteger(r.body.offset), JSON.stringify(r.body));
      }
    })();
    await withTimeout(Promise.all([...wsDone, httpDone]), 20000, 'publishing');

    const total = N * pubs.length + H;
    const everyone = [...subs, ...pubs];
    for (const s of everyone) await s.waitMessages((m) => m.length >= total, `${total} messages`, 10000);
    await sleep(300); // duplicates, if any, arrive now
    const problems = everyone.flatMap((s) => checkExactlyOnce(s.messages, expected, s.name));
    assert.deepEqual(problems, []);

    // Offsets live in Redis: one message has one offset and one epoch on every node, and
    // the channel's offsets are 1..total without a gap or a repeat.
    const ref = new Map();
    for (const m of subs[0].messages) ref.set(`${m.data.p}#${m.data.seq}`, `${m.offset}/${m.epoch}`);
    for (const s of everyone) {
      for (const m of s.messages) {
        assert.equal(`${m.offset}/${m.epoch}`, ref.get(`${m.data.p}#${m.data.seq}`),
          `${s.name}: ${m.data.p}#${m.data.seq} offset/epoch differs from ${subs[0].name}`);
      }
    }
    const offsets = subs[0].messages.map((m) => m.offset).sort((a, b) => a - b);
    assert.deepEqual(offsets, Array.from({ length: total }, (_, i) => i + 1), 'offsets 1..total');
    for (const s of everyone) s.close();
  });

  test('wildcard subscriptions (orders.*, orders.>) match publishes from other nodes', async () => {
    const base = `orders${uniq()}`;
    const star = await Ps.open(cl.nodes[0], { name: 'star@node0' });
    const deep = await Ps.open(cl.nodes[1], { name: 'deep@node1' });
    const exact = await Ps.open(cl.nodes[2], { name: 'exact@node2' });
    await star.subscribe(`${base}.*`);
    await deep.subscribe(`${base}.>`);
    await exact.subscribe(`${base}.7`);
    const pub = await Ps.open(cl.nodes[2], { name: 'pub@node2' });
    // from node 2 over the WebSocket, from node 0 over HTTP
    await pub.publish(`${base}.7`, { p: 'a', seq: 0 });
    await pub.publish(`${base}.7.x`, { p: 'b', seq: 0 });
    assert.equal((await apiPublish(cl.nodes[0], `${base}.8`, { p: 'a', seq: 1 })).status, 200);
    assert.equal((await apiPublish(cl.nodes[0], `${base}.8.y.z`, { p: 'b', seq: 1 })).status, 200);
    assert.equal((await apiPublish(cl.nodes[1], `other${base}.7`, { p: 'c', seq: 0 })).status, 200);

    await star.waitMessages((m) => m.length >= 2, 'two orders.* messages');
    await deep.waitMessages((m) => m.length >= 4, 'four orders.> messages');
    await exact.waitMessages((m) => m.length >= 1, 'one exact message');
    await sleep(300);
    assert.deepEqual(star.messages.map((m) => m.channel), [`${base}.7`, `${base}.8`]);
    assert.deepEqual(checkExactlyOnce(star.messages, new Map([['a', 2]]), star.name), []);
    assert.deepEqual(checkExactlyOnce(deep.messages, new Map([['a', 2], ['b', 2]]), deep.name), []);
    assert.deepEqual(deep.messages.map((m) => m.channel).sort(),
      [`${base}.7`, `${base}.7.x`, `${base}.8`, `${base}.8.y.z`].sort());
    assert.deepEqual(exact.messages.map((m) => [m.channel, m.data]), [[`${base}.7`, { p: 'a', seq: 0 }]]);

    // Unsubscribing the last pattern on a node stops delivery there; the others go on.
    const u = await star.request({ type: 'unsubscribe', channel: `${base}.*` });
    assert.equal(u.type, 'ok');
    assert.equal((await apiPublish(cl.nodes[2], `${base}.9`, { p: 'a', seq: 2 })).status, 200);
    await deep.waitMessages((m) => m.length >= 5, 'orders.9 on orders.>');
    await sleep(200);
    assert.equal(star.messages.length, 2, 'no delivery after unsubscribe');
    for (const c of [star, deep, exact, pub]) c.close();
  });

  test('overlapping exact and pattern subscriptions on one node each get a message once', async () => {
    // On node 1 (two threads) the channel is SUBSCRIBEd and PSUBSCRIBEd through two globs
    // (base.* serves both base.* and base.>; *.7 another), so Redis sends it three times:
    // each subscription must get it through exactly one of them.
    const base = `ovl${uniq()}`;
    const nd = cl.nodes[1];
    const exact = await Ps.open(nd, { name: 'exact@node1' });
    const star = await Ps.open(nd, { name: 'star@node1' });
    const deep = await Ps.open(nd, { name: 'deep@node1' });
    const lead = await Ps.open(nd, { name: 'lead@node1' });
    await exact.subscribe(`${base}.7`);
    await star.subscribe(`${base}.*`);
    await deep.subscribe(`${base}.>`);
    await lead.subscribe('*.7');
    const pub = await Ps.open(cl.nodes[0], { name: 'pub@node0' });
    await pub.publish(`${base}.7`, { p: 'a', seq: 0 });
    await pub.publish(`${base}.7.x`, { p: 'b', seq: 0 });
    await pub.publish(`z${base}.7`, { p: 'c', seq: 0 });
    await deep.waitMessages((m) => m.length >= 2, 'two messages on base.>');
    await lead.waitMessages((m) => m.some((x) => x.data.p === 'c'), 'z.base.7 on *.7');
    await sleep(300); // duplicates, if any, arrive now
    const mine = (s) => s.messages.filter((m) => m.channel.includes(base)).map((m) => [m.channel, m.data.p]);
    assert.deepEqual(mine(exact), [[`${base}.7`, 'a']]);
    assert.deepEqual(mine(star), [[`${base}.7`, 'a']]);
    assert.deepEqual(mine(deep), [[`${base}.7`, 'a'], [`${base}.7.x`, 'b']]);
    assert.deepEqual(mine(lead), [[`${base}.7`, 'a'], [`z${base}.7`, 'c']]);
    for (const c of [exact, star, deep, lead, pub]) c.close();
  });

  test('a backend PUBLISH from redis-cli reaches subscribers on every node', async () => {
    const ch = `backend.${uniq()}`;
    const subs = [];
    for (const [i, nd] of cl.nodes.entries()) {
      const s = await Ps.open(nd, { name: `sub@node${i}` });
      await s.subscribe(ch);
      subs.push(s);
    }
    const pat = await Ps.open(cl.nodes[1], { name: 'pattern@node1' });
    await pat.subscribe('backend.>');
    for (let seq = 0; seq < 5; seq++) {
      const n = await redisCli(cl.redis.port, 'PUBLISH', `${cl.prefix}:ch:${ch}`, JSON.stringify({ p: 'redis', seq }));
      assert.ok(Number(n) >= 1, `PUBLISH reached ${n} Redis subscribers`);
    }
    for (const s of [...subs, pat]) await s.waitMessages((m) => m.length >= 5, 'five backend messages');
    await sleep(200);
    for (const s of subs) {
      assert.deepEqual(checkExactlyOnce(s.messages, new Map([['redis', 5]]), s.name), []);
      for (const m of s.messages) assert.equal(m.channel, ch);
    }
    assert.deepEqual(checkExactlyOnce(pat.messages.filter((m) => m.channel === ch), new Map([['redis', 5]]), pat.name), []);
    // A raw PUBLISH is not stored: no offset and no epoch (docs/cluster.md), on every node.
    for (const s of [...subs, pat]) {
      for (const m of s.messages) assert.deepEqual([m.offset, m.epoch], [0, ''], `${s.name}: ${JSON.stringify(m)}`);
    }
    for (const s of [...subs, pat]) s.close();
  });

  test('STOMP /topic subscribers on one node receive publishes from the others', async () => {
    const ch = `stomp.${uniq()}`;
    const ws = new WebSocket(`${cl.nodes[0].url}/stomp`, 'v12.stomp');
    let text = '';
    ws.on('message', (d) => { text += d.toString(); });
    await withTimeout(new Promise((res, rej) => { ws.once('open', res); ws.once('error', rej); }), 5000, 'stomp open');
    ws.send('CONNECT\naccept-version:1.2\nhost:localhost\n\n\0');
    ws.send(`SUBSCRIBE\nid:s1\ndestination:/topic/${ch}\nreceipt:r1\n\n\0`);
    const deadline = Date.now() + 5000;
    while (!/receipt-id:r1/.test(text) && Date.now() < deadline) await sleep(20);
    assert.match(text, /receipt-id:r1/, `no RECEIPT for SUBSCRIBE: ${text}`);

    const pub = await Ps.open(cl.nodes[1], { name: 'pub@node1' });
    await pub.publish(ch, { p: 'ws', seq: 0 });
    assert.equal((await apiPublish(cl.nodes[2], ch, { p: 'http', seq: 0 })).status, 200);
    const frames = () => text.split('\0').filter((f) => f.replace(/^\n+/, '').startsWith('MESSAGE'));
    const until = Date.now() + 8000;
    while (frames().length < 2 && Date.now() < until) await sleep(20);
    await sleep(200);
    const msgs = frames();
    assert.equal(msgs.length, 2, `STOMP frames: ${JSON.stringify(text)}`);
    assert.match(msgs[0], new RegExp(`destination:/topic/${ch.replace('.', '\\.')}`));
    assert.ok(msgs[0].endsWith('{"p":"ws","seq":0}'), msgs[0]);
    assert.ok(msgs[1].endsWith('{"p":"http","seq":0}'), msgs[1]);
    ws.close();
    pub.close();
  });
});
