// Channels and destinations are the same thing (docs/stomp.md): /api/publish and /pubsub
// reach STOMP subscribers of /topic/NAME and the other way round, in one offset
// sequence; POST /api/stomp/send reaches topics, queues and user destinations.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHerald } from '../helpers/herald.mjs';
import { stompjs, Clients, Ps, api, uid } from './stomp-helpers.mjs';

describe('STOMP ↔ channels and the HTTP API', { timeout: 30000 }, () => {
  let srv;
  const clients = new Clients();
  const pss = [];
  const connect = (opts) => clients.add(stompjs(srv, opts));
  const pubsub = async () => { const p = await Ps.open(srv); pss.push(p); return p; };

  before(async () => {
    srv = await startHerald(['--threads', '2', '--namespace', 'ro.*:publish=off']);
  });
  after(async () => {
    await clients.closeAll();
    for (const p of pss) p.close();
    if (srv) await srv.stop();
  });

  test('POST /api/publish {"a":1} reaches /topic/NAME as application/json; message-id = EPOCH-OFFSET of the answer', async () => {
    const ch = uid('chat');
    const c = await connect();
    const sub = await c.subscribe(`/topic/${ch}`);
    const r = await api(srv, 'POST', '/api/publish', { channel: ch, data: { a: 1 } });
    assert.equal(r.status, 200, r.text);
    const m = await sub.next();
    assert.equal(m.headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(m.body), { a: 1 });
    assert.equal(m.headers.destination, `/topic/${ch}`);
    assert.equal(m.headers['message-id'], `${r.json.epoch}-${r.json.offset}`);
  });

  test('POST /api/publish of a JSON string reaches STOMP as its text, text/plain;charset=UTF-8', async () => {
    const ch = uid('chat');
    const c = await connect();
    const sub = await c.subscribe(`/topic/${ch}`);
    const r = await api(srv, 'POST', '/api/publish', { channel: ch, data: 'hi "there"\n' });
    assert.equal(r.status, 200, r.text);
    const m = await sub.next();
    assert.equal(m.headers['content-type'], 'text/plain;charset=UTF-8');
    assert.equal(m.body, 'hi "there"\n');
  });

  test('/api/publish to chat reaches a /topic/chat subscriber', async () => {
    const c = await connect();
    const sub = await c.subscribe('/topic/chat');
    const r = await api(srv, 'POST', '/api/publish', { channel: 'chat', data: { a: 1 } });
    assert.equal(r.status, 200, r.text);
    const m = await sub.next();
    assert.equal(m.headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(m.body), { a: 1 });
  });

  test('a STOMP SEND to /topic/NAME reaches a /pubsub subscriber with the data, in one offset sequence', async () => {
    const ch = uid('mix');
    const p = await pubsub();
    const r = await p.req({ type: 'subscribe', channel: ch });
    assert.equal(r.type, 'ok', JSON.stringify(r));
    const c = await connect();
    const sub = await c.subscribe(`/topic/${ch}`);
    await c.send(`/topic/${ch}`, '{"x":[1,2]}');
    await c.send(`/topic/${ch}`, 'some text');
    const pr = await api(srv, 'POST', '/api/publish', { channel: ch, data: null });
    assert.equal(pr.status, 200);
    const m1 = await p.message(ch);
    const m2 = await p.message(ch);
    const m3 = await p.message(ch);
    assert.deepEqual(m1.data, { x: [1, 2] });
    assert.equal(m2.data, 'some text');
    assert.equal(m3.data, null);
    assert.deepEqual([m1.offset, m2.offset, m3.offset], [1, 2, 3]);
    const sm = await sub.take(3);
    assert.deepEqual(sm.map((m) => m.headers['message-id']), [m1, m2, m3].map((m) => `${m.epoch}-${m.offset}`));
    assert.equal(sm[2].body, 'null');
    assert.equal(sm[2].headers['content-type'], 'application/json');
  });

  test('a /pubsub publish reaches a STOMP wildcard subscriber', async () => {
    const root = uid('orders');
    const c = await connect();
    const sub = await c.subscribe(`/topic/${root}.*`);
    const p = await pubsub();
    const r = await p.req({ type: 'publish', channel: `${root}.42`, data: { status: 'paid' } });
    assert.equal(r.type, 'ok', JSON.stringify(r));
    const m = await sub.next();
    assert.equal(m.headers.destination, `/topic/${root}.42`);
    assert.deepEqual(JSON.parse(m.body), { status: 'paid' });
  });

  test('POST /api/stomp/send to /user/alice/queue/x reaches alice → 202 {"ok":true}', async () => {
    const alice = uid('alice');
    const a = await connect({ login: alice });
    const other = await connect({ login: uid('bob') });
    const sub = await a.subscribe('/user/queue/x');
    const osub = await other.subscribe('/user/queue/x');
    const r = await api(srv, 'POST', '/api/stomp/send', { destination: `/user/${alice}/queue/x`, body: 'hi', headers: { 'x-k': 'v' } });
    assert.equal(r.status, 202, r.text);
    assert.deepEqual(r.json, { ok: true });
    const m = await sub.next();
    assert.equal(m.body, 'hi');
    assert.equal(m.headers['x-k'], 'v');
    assert.deepEqual((await osub.quiet(200)).map((x) => x.body), []);
  });

  test('POST /api/stomp/send to /queue/q reaches one queue consumer; a JSON body arrives as its JSON text', async () => {
    const q = `/queue/${uid('q')}`;
    const a = await connect();
    const b = await connect();
    const sa = await a.subscribe(q);
    const sb = await b.subscribe(q);
    const r = await api(srv, 'POST', '/api/stomp/send', { destination: q, body: { n: 1 } });
    assert.equal(r.status, 202, r.text);
    assert.deepEqual(r.json, { ok: true });
    const got = [...(await sa.quiet(300)), ...(await sb.quiet(0))];
    assert.equal(got.length, 1, `exactly one consumer gets it: ${got.map((m) => m.body)}`);
    assert.deepEqual(JSON.parse(got[0].body), { n: 1 });
    assert.equal(got[0].headers.destination, q);
  });

  test('POST /api/stomp/send to a queue nobody consumes yet: the message waits', async () => {
    const q = `/queue/${uid('later')}`;
    const r = await api(srv, 'POST', '/api/stomp/send', { destination: q, body: 'kept' });
    assert.equal(r.status, 202, r.text);
    const c = await connect();
    const sub = await c.subscribe(q);
    assert.equal((await sub.next()).body, 'kept');
  });

  test('POST /api/stomp/send to /topic/NAME reaches STOMP and /pubsub subscribers', async () => {
    const ch = uid('both');
    const p = await pubsub();
    assert.equal((await p.req({ type: 'subscribe', channel: ch })).type, 'ok');
    const c = await connect();
    const sub = await c.subscribe(`/topic/${ch}`);
    const r = await api(srv, 'POST', '/api/stomp/send', { destination: `/topic/${ch}`, body: { v: 2 } });
    assert.equal(r.status, 202, r.text);
    assert.deepEqual((await p.message(ch)).data, { v: 2 });
    assert.deepEqual(JSON.parse((await sub.next()).body), { v: 2 });
  });

  test('the HTTP API may send to a publish=off namespace that STOMP clients may not', async () => {
    const ch = `ro.${uid('n')}`;
    const c = await connect();
    const sub = await c.subscribe(`/topic/${ch}`);
    const r = await api(srv, 'POST', '/api/stomp/send', { destination: `/topic/${ch}`, body: 'from backend' });
    assert.equal(r.status, 202, r.text);
    assert.equal((await sub.next()).body, 'from backend');
  });

  test('POST /api/stomp/send with an unknown destination or no destination → 400 bad_request', async () => {
    for (const body of [{ destination: '/unknown/x', body: 'x' }, { body: 'x' }, { destination: 7, body: 'x' }]) {
      const r = await api(srv, 'POST', '/api/stomp/send', body);
      assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.status} ${r.text}`);
      assert.equal(r.json?.error, 'bad_request', r.text);
    }
  });
});
