// STOMP on /stomp (docs/stomp.md) driven by @stomp/stompjs, the client Spring front ends
// use: CONNECTED headers, heart-beat negotiation, topics and wildcards, content types,
// message ids, queues and acknowledgements, user destinations, transactions and ERROR
// frames. Every wait is bounded.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHerald, sleep } from '../helpers/herald.mjs';
import { stompjs, Clients, uid } from './stomp-helpers.mjs';

const bodies = (msgs) => msgs.map((m) => m.body);

/** "EPOCH-OFFSET" → {epoch, offset}. */
function parseMessageId(id) {
  const m = /^(.+)-(\d+)$/.exec(id || '');
  assert.ok(m, `message-id ${JSON.stringify(id)} is not EPOCH-OFFSET`);
  return { epoch: m[1], offset: Number(m[2]) };
}

describe('STOMP with @stomp/stompjs', { timeout: 40000 }, () => {
  let srv;
  const clients = new Clients();
  const connect = (opts) => clients.add(stompjs(srv, opts));

  before(async () => {
    srv = await startHerald(['--threads', '2', '--namespace', 'ro.*:publish=off']);
  });
  after(async () => {
    await clients.closeAll();
    if (srv) await srv.stop();
  });

  // ---------------------------------------------------------------- CONNECT

  describe('CONNECT', () => {
    test('CONNECTED: version 1.2, server Herald/VERSION, a session, user-name = login', async () => {
      const c = await connect({ login: 'ada' });
      const h = c.headers;
      assert.equal(h.version, '1.2');
      assert.match(h.server || '', /^Herald\/\S+$/);
      assert.ok(typeof h.session === 'string' && h.session.length > 0, `session: ${h.session}`);
      assert.equal(h['user-name'], 'ada');
      assert.match(h['heart-beat'] || '', /^\d+,\d+$/);
    });

    test('without login there is no user-name; sessions differ', async () => {
      const a = await connect();
      const b = await connect();
      assert.equal(a.headers['user-name'], undefined);
      assert.notEqual(a.headers.session, b.headers.session);
    });
  });

  // ---------------------------------------------------------------- topics

  describe('topics', () => {
    test('SUBSCRIBE and SEND to /topic/chat with receipts; MESSAGE carries destination, subscription, message-id', async () => {
      const c = await connect();
      const sub = await c.subscribe('/topic/chat');
      const r = await c.send('/topic/chat', 'hello');
      assert.ok(r.headers['receipt-id']);
      const m = await sub.next();
      assert.equal(m.body, 'hello');
      assert.equal(m.headers.destination, '/topic/chat');
      assert.equal(m.headers.subscription, sub.id);
      parseMessageId(m.headers['message-id']);
    });

    test('two clients see each other\'s messages, both in the same order', async () => {
      const dest = `/topic/${uid('duo')}`;
      const a = await connect();
      const b = await connect();
      const sa = await a.subscribe(dest);
      const sb = await b.subscribe(dest);
      const sends = [];
      for (let i = 1; i <= 5; i++) {
        sends.push(a.send(dest, `a${i}`));
        sends.push(b.send(dest, `b${i}`));
      }
      await Promise.all(sends);
      const ma = bodies(await sa.take(10));
      const mb = bodies(await sb.take(10));
      assert.deepEqual(ma, mb, 'both subscribers see one order');
      assert.deepEqual(ma.filter((x) => x[0] === 'a'), ['a1', 'a2', 'a3', 'a4', 'a5']);
      assert.deepEqual(ma.filter((x) => x[0] === 'b'), ['b1', 'b2', 'b3', 'b4', 'b5']);
      assert.deepEqual(await sa.quiet(200), []);
    });

    test('wildcards: /topic/chat.* takes one segment, /topic/chat.> the rest; MESSAGE names the concrete destination', async () => {
      const root = uid('wild');
      const c = await connect();
      const star = await c.subscribe(`/topic/${root}.*`);
      const rest = await c.subscribe(`/topic/${root}.>`);
      await c.send(`/topic/${root}.room1`, 'one');
      await c.send(`/topic/${root}.room1.sub`, 'two');
      await c.send(`/topic/${root}`, 'zero');
      const s1 = await star.next();
      assert.equal(s1.body, 'one');
      assert.equal(s1.headers.destination, `/topic/${root}.room1`);
      assert.equal(s1.headers.subscription, star.id);
      const r = await rest.take(2);
      assert.deepEqual(bodies(r), ['one', 'two']);
      assert.equal(r[1].headers.destination, `/topic/${root}.room1.sub`);
      assert.deepEqual(bodies(await star.quiet(200)), [], '/topic/x.* matches neither x nor x.a.b');
      assert.deepEqual(bodies(await rest.quiet(0)), []);
    });

    test('UNSUBSCRIBE stops delivery', async () => {
      const dest = `/topic/${uid('unsub')}`;
      const a = await connect();
      const b = await connect();
      const sa = await a.subscribe(dest);
      const control = await b.subscribe(dest);
      await b.send(dest, 'before');
      assert.equal((await sa.next()).body, 'before');
      await sa.unsubscribe();
      await b.send(dest, 'after');
      assert.deepEqual(bodies(await control.take(2)), ['before', 'after']);
      assert.deepEqual(bodies(await sa.quiet(300)), []);
      assert.deepEqual(bodies(a.unhandled), []);
    });

    test('content types: JSON object/array → application/json, text → text/plain;charset=UTF-8', async () => {
      const dest = `/topic/${uid('ct')}`;
      const c = await connect();
      const sub = await c.subscribe(dest);
      await c.send(dest, '{"a":1,"b":[true,null]}'); // no content-type: an object is JSON
      await c.send(dest, '[1,2]'); // no content-type: an array is JSON
      await c.send(dest, 'plain words'); // text
      await c.send(dest, '42'); // no content-type: neither object nor array → a string
      await c.send(dest, '42', { 'content-type': 'application/json' }); // the number 42
      await c.send(dest, '"quoted"', { 'content-type': 'application/json;charset=UTF-8' }); // a JSON string
      await c.send(dest, 'héllo ✓'); // UTF-8 text
      const m = await sub.take(7);
      const ct = m.map((x) => x.headers['content-type']);
      assert.deepEqual(JSON.parse(m[0].body), { a: 1, b: [true, null] });
      assert.deepEqual(JSON.parse(m[1].body), [1, 2]);
      assert.equal(m[2].body, 'plain words');
      assert.equal(m[3].body, '42');
      assert.equal(m[4].body, '42');
      assert.equal(m[5].body, 'quoted');
      assert.equal(m[6].body, 'héllo ✓');
      assert.deepEqual(ct, [
        'application/json', 'application/json', 'text/plain;charset=UTF-8', 'text/plain;charset=UTF-8',
        'application/json', 'text/plain;charset=UTF-8', 'text/plain;charset=UTF-8',
      ]);
    });

    test('custom SEND headers do not travel with channel messages', async () => {
      const dest = `/topic/${uid('hdr')}`;
      const c = await connect();
      const sub = await c.subscribe(dest);
      await c.send(dest, 'x', { 'x-custom': '1' });
      const m = await sub.next();
      assert.equal(m.body, 'x');
      assert.equal(m.headers['x-custom'], undefined);
    });

    test('message-id is EPOCH-OFFSET: one epoch, offsets 1, 2, 3 on a new channel', async () => {
      const dest = `/topic/${uid('mid')}`;
      const c = await connect();
      const sub = await c.subscribe(dest);
      for (const b of ['m1', 'm2', 'm3']) await c.send(dest, b);
      const ids = (await sub.take(3)).map((m) => parseMessageId(m.headers['message-id']));
      assert.deepEqual(ids.map((x) => x.offset), [1, 2, 3]);
      assert.equal(new Set(ids.map((x) => x.epoch)).size, 1);
    });
  });

  // ---------------------------------------------------------------- queues

  describe('queues', () => {
    test('round-robin: 2 consumers, 10 messages → 5 each, all 10 exactly once', async () => {
      const dest = `/queue/${uid('work')}`;
      const a = await connect();
      const b = await connect();
      const p = await connect();
      const sa = await a.subscribe(dest);
      const sb = await b.subscribe(dest);
      const sent = [];
      for (let i = 1; i <= 10; i++) { sent.push(`w${i}`); await p.send(dest, `w${i}`); }
      const ga = bodies(await sa.take(5));
      const gb = bodies(await sb.take(5));
      await sleep(200);
      ga.push(...bodies(await sa.quiet(0)));
      gb.push(...bodies(await sb.quiet(0)));
      assert.equal(ga.length, 5, `a got ${ga}`);
      assert.equal(gb.length, 5, `b got ${gb}`);
      assert.deepEqual([...ga, ...gb].sort(), [...sent].sort());
      const num = (x) => Number(x.slice(1));
      assert.deepEqual(ga.map(num), [...ga.map(num)].sort((x, y) => x - y), 'each consumer gets its share in order');
    });

    test('messages sent while nobody is subscribed wait, then arrive in order', async () => {
      const dest = `/queue/${uid('buf')}`;
      const p = await connect();
      for (const b of ['q1', 'q2', 'q3']) await p.send(dest, b);
      const c = await connect();
      const sub = await c.subscribe(dest);
      assert.deepEqual(bodies(await sub.take(3)), ['q1', 'q2', 'q3']);
      assert.deepEqual(bodies(await sub.quiet(200)), []);
    });

    test('custom SEND headers travel with queue messages', async () => {
      const dest = `/queue/${uid('qh')}`;
      const c = await connect();
      const sub = await c.subscribe(dest);
      await c.send(dest, 'x', { 'x-trace': 'abc', 'x-n': '7' });
      const m = await sub.next();
      assert.equal(m.headers['x-trace'], 'abc');
      assert.equal(m.headers['x-n'], '7');
      assert.equal(m.headers.destination, dest);
    });

    test('ack:client-individual: a NACKed message goes to the other consumer with redelivered:true', async () => {
      const dest = `/queue/${uid('nack')}`;
      const a = await connect();
      const b = await connect();
      const sa = await a.subscribe(dest, { ack: 'client-individual' });
      await b.send(dest, 'n1');
      const m = await sa.next();
      assert.equal(m.body, 'n1');
      assert.ok(m.headers.ack, 'a client-ack MESSAGE carries ack (1.2)');
      assert.notEqual(m.headers.redelivered, 'true');
      const sb = await b.subscribe(dest);
      const rid = uid('nack-r');
      const r = a.receipt(rid);
      m.nack({ receipt: rid });
      await r;
      const again = await sb.next();
      assert.equal(again.body, 'n1');
      assert.equal(again.headers.redelivered, 'true');
      assert.deepEqual(bodies(await sa.quiet(300)), [], 'not back to the consumer that NACKed it');
    });

    test('ack:client-individual: an ACKed message is not redelivered, the unacked one is', async () => {
      const dest = `/queue/${uid('ind')}`;
      const a = await connect();
      const b = await connect();
      const sa = await a.subscribe(dest, { ack: 'client-individual' });
      await b.send(dest, 'i1');
      await b.send(dest, 'i2');
      await b.send(dest, 'i3');
      const [m1, m2, m3] = await sa.take(3);
      assert.deepEqual(bodies([m1, m2, m3]), ['i1', 'i2', 'i3']);
      for (const m of [m1, m3]) { // i2 stays unacknowledged (individual: i3 does not cover it)
        const rid = uid('ack-r');
        const r = a.receipt(rid);
        m.ack({ receipt: rid });
        await r;
      }
      await a.kill();
      const sb = await b.subscribe(dest);
      const got = await sb.next();
      assert.equal(got.body, 'i2');
      assert.equal(got.headers.redelivered, 'true');
      assert.deepEqual(bodies(await sb.quiet(300)), []);
    });

    test('ack:client, DISCONNECT without ACK → the other consumer gets every message, redelivered', async () => {
      const dest = `/queue/${uid('cl')}`;
      const a = await connect();
      const b = await connect();
      const sa = await a.subscribe(dest, { ack: 'client' });
      for (const x of ['c1', 'c2', 'c3']) await b.send(dest, x);
      assert.deepEqual(bodies(await sa.take(3)), ['c1', 'c2', 'c3']);
      const sb = await b.subscribe(dest);
      assert.deepEqual(bodies(await sb.quiet(200)), [], 'outstanding messages stay with a');
      await a.disconnect();
      const got = await sb.take(3);
      assert.deepEqual(bodies(got).sort(), ['c1', 'c2', 'c3']);
      for (const m of got) assert.equal(m.headers.redelivered, 'true', `${m.body} redelivered`);
    });

    test('ack:client is cumulative: ACK of the 3rd acknowledges 1-3; 4 and 5 are redelivered', async () => {
      const dest = `/queue/${uid('cum')}`;
      const a = await connect();
      const b = await connect();
      const sa = await a.subscribe(dest, { ack: 'client' });
      for (const x of ['k1', 'k2', 'k3', 'k4', 'k5']) await b.send(dest, x);
      const got = await sa.take(5);
      assert.deepEqual(bodies(got), ['k1', 'k2', 'k3', 'k4', 'k5']);
      const rid = uid('cum-r');
      const r = a.receipt(rid);
      got[2].ack({ receipt: rid });
      await r;
      await a.kill();
      const sb = await b.subscribe(dest);
      const again = await sb.take(2);
      assert.deepEqual(bodies(again).sort(), ['k4', 'k5']);
      for (const m of again) assert.equal(m.headers.redelivered, 'true');
      assert.deepEqual(bodies(await sb.quiet(300)), []);
    });

    test('UNSUBSCRIBE returns unacknowledged messages to the queue', async () => {
      const dest = `/queue/${uid('uq')}`;
      const a = await connect();
      const b = await connect();
      const sa = await a.subscribe(dest, { ack: 'client-individual' });
      await b.send(dest, 'u1');
      assert.equal((await sa.next()).body, 'u1');
      const sb = await b.subscribe(dest);
      await sa.unsubscribe();
      const m = await sb.next();
      assert.equal(m.body, 'u1');
      assert.equal(m.headers.redelivered, 'true');
    });
  });

  // ---------------------------------------------------------------- user destinations

  describe('user destinations', () => {
    test('/user/alice/queue/notify reaches both of alice\'s sessions, not bob\'s', async () => {
      const alice = uid('alice');
      const bob = uid('bob');
      const a1 = await connect({ login: alice });
      const a2 = await connect({ login: alice });
      const b = await connect({ login: bob });
      const s1 = await a1.subscribe('/user/queue/notify');
      const s2 = await a2.subscribe('/user/queue/notify');
      const sb = await b.subscribe('/user/queue/notify');
      await b.send(`/user/${alice}/queue/notify`, 'for alice', { 'x-from': bob });
      const m1 = await s1.next();
      const m2 = await s2.next();
      assert.equal(m1.body, 'for alice');
      assert.equal(m2.body, 'for alice');
      assert.equal(m1.headers['x-from'], bob, 'custom headers travel with user messages');
      assert.equal(m1.headers.subscription, s1.id);
      assert.deepEqual(bodies(await sb.quiet(300)), [], 'bob\'s own /user/queue/notify gets nothing');
      assert.deepEqual(bodies(await s1.quiet(0)), [], 'one copy per session');
    });

    test('a user message names the subscribed destination /user/queue/NAME (as Spring does)', async () => {
      const carol = uid('carol');
      const c = await connect({ login: carol });
      const s = await c.subscribe('/user/queue/notify');
      await c.send(`/user/${carol}/queue/notify`, 'self');
      const m = await s.next();
      assert.equal(m.body, 'self');
      assert.equal(m.headers.destination, '/user/queue/notify');
    });

    test('another queue name of the same user is not delivered', async () => {
      const dave = uid('dave');
      const d = await connect({ login: dave });
      const s = await d.subscribe('/user/queue/a');
      await d.send(`/user/${dave}/queue/b`, 'to b');
      await d.send(`/user/${dave}/queue/a`, 'to a');
      assert.deepEqual(bodies(await s.take(1)), ['to a']);
      assert.deepEqual(bodies(await s.quiet(200)), []);
    });
  });

  // ---------------------------------------------------------------- transactions

  describe('transactions', () => {
    test('SENDs in a transaction are held until COMMIT, then applied in order', async () => {
      const dest = `/topic/${uid('tx')}`;
      const sub = await (await connect()).subscribe(dest);
      const c = await connect();
      const tx = c.client.begin();
      await c.send(dest, 't1', { transaction: tx.id }, { receipt: false });
      await c.send(dest, 'n1'); // outside the transaction: delivered now
      await c.send(dest, 't2', { transaction: tx.id }, { receipt: false });
      assert.deepEqual(bodies(await sub.take(1)), ['n1']);
      assert.deepEqual(bodies(await sub.quiet(300)), [], 'nothing of the transaction before COMMIT');
      tx.commit();
      assert.deepEqual(bodies(await sub.take(2)), ['t1', 't2']);
    });

    test('ABORT drops the transaction\'s SENDs', async () => {
      const dest = `/topic/${uid('abort')}`;
      const sub = await (await connect()).subscribe(dest);
      const c = await connect();
      const tx = c.client.begin();
      await c.send(dest, 't1', { transaction: tx.id }, { receipt: false });
      await c.send(dest, 't2', { transaction: tx.id }, { receipt: false });
      tx.abort();
      await c.send(dest, 'marker');
      assert.deepEqual(bodies(await sub.take(1)), ['marker']);
      assert.deepEqual(bodies(await sub.quiet(300)), []);
    });

    test('a disconnect drops an open transaction', async () => {
      const dest = `/topic/${uid('txd')}`;
      const s = await connect();
      const sub = await s.subscribe(dest);
      const c = await connect();
      const tx = c.client.begin();
      await c.send(dest, 't1', { transaction: tx.id }, { receipt: false });
      await c.disconnect();
      await s.send(dest, 'marker');
      assert.deepEqual(bodies(await sub.take(1)), ['marker']);
      assert.deepEqual(bodies(await sub.quiet(300)), []);
    });

    test('ACK in a transaction takes effect only at COMMIT', async () => {
      const dest = `/queue/${uid('txack')}`;
      const a = await connect();
      const b = await connect();
      const sa = await a.subscribe(dest, { ack: 'client-individual' });
      await b.send(dest, 'x1');
      const m = await sa.next();
      const tx = a.client.begin();
      m.ack({ transaction: tx.id });
      tx.abort(); // the ACK is dropped: x1 is still outstanding
      await a.kill();
      const sb = await b.subscribe(dest);
      const again = await sb.next();
      assert.equal(again.body, 'x1');
      assert.equal(again.headers.redelivered, 'true');
    });
  });

  // ---------------------------------------------------------------- errors

  describe('ERROR frames', () => {
    test('SEND to /unknown/x → ERROR "unknown destination" with receipt-id, then close 1008', async () => {
      const c = await connect();
      c.client.publish({ destination: '/unknown/x', body: 'x', headers: { receipt: 'r-unknown' } });
      const e = await c.error();
      assert.equal(e.headers.message, 'unknown destination');
      assert.equal(e.headers['receipt-id'], 'r-unknown');
      assert.equal((await c.closed()).code, 1008);
    });

    test('SUBSCRIBE to /unknown/y → ERROR "unknown destination", close 1008', async () => {
      const c = await connect();
      c.client.subscribe('/unknown/y', () => {});
      const e = await c.error();
      assert.equal(e.headers.message, 'unknown destination');
      assert.equal((await c.closed()).code, 1008);
    });

    test('SUBSCRIBE to /app/x is refused (no @SubscribeMapping)', async () => {
      const c = await connect();
      c.client.subscribe('/app/x', () => {});
      const e = await c.error();
      assert.ok(e.headers.message, 'ERROR has a message');
      assert.equal((await c.closed()).code, 1008);
    });

    test('SEND with content-type application/json and a body that is not JSON → ERROR, close 1008', async () => {
      const c = await connect();
      const dest = `/topic/${uid('badjson')}`;
      c.client.publish({ destination: dest, body: '{"a":', headers: { 'content-type': 'application/json' } });
      const e = await c.error();
      assert.ok(e.headers.message);
      assert.equal((await c.closed()).code, 1008);
    });

    test('SEND to a publish=off namespace → ERROR, close 1008', async () => {
      const watcher = await connect();
      const dest = `/topic/ro.${uid('n')}`;
      const sub = await watcher.subscribe(dest); // subscribing is allowed
      const c = await connect();
      c.client.publish({ destination: dest, body: 'nope' });
      const e = await c.error();
      assert.ok(e.headers.message);
      assert.equal((await c.closed()).code, 1008);
      assert.deepEqual(bodies(await sub.quiet(200)), []);
    });

    test('an ERROR closes only that session', async () => {
      const ok = await connect();
      const dest = `/topic/${uid('alive')}`;
      const sub = await ok.subscribe(dest);
      const bad = await connect();
      bad.client.publish({ destination: '/unknown/z', body: 'x' });
      await bad.error();
      await bad.closed();
      await ok.send(dest, 'still here');
      assert.equal((await sub.next()).body, 'still here');
    });
  });
});

describe('STOMP heart-beats with @stomp/stompjs (--stomp-heartbeat 500,500)', { timeout: 20000 }, () => {
  let srv;
  const clients = new Clients();

  before(async () => { srv = await startHerald(['--stomp-heartbeat', '500,500']); });
  after(async () => {
    await clients.closeAll();
    if (srv) await srv.stop();
  });

  test('CONNECTED heart-beat is the server\'s 500,500; it sends every max(500, 1000) ms', async () => {
    const c = await clients.add(stompjs(srv, { heartbeat: [1000, 1000] }));
    assert.equal(c.headers['heart-beat'], '500,500');
    const t0 = Date.now();
    await sleep(3300);
    const n = c.heartbeats.filter((t) => t >= t0).length;
    // every 1000 ms → about 3; every 500 ms (ignoring the client's 1000) would be about 6
    assert.ok(n >= 2 && n <= 4, `${n} server heart-beats in 3.3 s`);
    assert.equal(c.closeEvt, null, 'stompjs pings every 1000 ms, which the server accepts');
    const sub = await c.subscribe('/topic/hb');
    await c.send('/topic/hb', 'alive');
    assert.equal((await sub.next()).body, 'alive');
  });

  test('a client that asks for no heart-beats (0,0) gets none', async () => {
    const c = await clients.add(stompjs(srv, { heartbeat: [0, 0] }));
    await sleep(1200);
    assert.equal(c.heartbeats.length, 0);
    assert.equal(c.closeEvt, null);
  });
});
