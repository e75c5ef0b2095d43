// The /pubsub JSON protocol (docs/protocol.md): every command, every error code, ids,
// recovery with `since`, wildcards, namespaces (history, ttl, publish, presence) and
// delivery across worker threads. Every wait is bounded.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startHerald, sleep, withTimeout } from '../helpers/herald.mjs';

const TS_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

// ------------------------------------------------------------------------------------
// A /pubsub client: every frame received is parsed and queued; take() removes the first
// queued frame matching a predicate, waiting for it up to a deadline.

class Ps {
  constructor(ws) {
    this.ws = ws;
    this.queue = []; // frames not taken yet
    this.log = []; // every frame, in arrival order
    this.raw = []; // the text of every frame, in arrival order
    this.binary = 0;
    this.closed = null;
    this.waiters = new Set();
    this.nextId = 1000;
    ws.on('message', (d, isBinary) => {
      if (isBinary) this.binary++;
      const text = d.toString();
      let f;
      try { f = JSON.parse(text); } catch { f = { type: '<unparsable>', text }; }
      this.raw.push(text);
      this.log.push(f);
      this.queue.push(f);
      this._wake();
    });
    ws.on('close', (code, reason) => { this.closed = { code, reason: reason.toString() }; this._wake(); });
    ws.on('error', (e) => { this.error = e; this._wake(); });
  }

  static open(url, path = '/pubsub') {
    return withTimeout(new Promise((resolve, reject) => {
      const ws = new WebSocket(`${url}${path}`, { perMessageDeflate: false });
      const c = new Ps(ws);
      ws.once('open', () => resolve(c));
      ws.once('error', reject);
    }), 10000, `open ${url}${path}`);
  }

  _wake() { for (const f of [...this.waiters]) f(); }

  _wait(deadline) {
    const ms = deadline - Date.now();
    if (ms <= 0) return Promise.resolve(false);
    return new Promise((resolve) => {
      const f = () => { clearTimeout(t); this.waiters.delete(f); resolve(true); };
      const t = setTimeout(() => { this.waiters.delete(f); resolve(false); }, ms);
      this.waiters.add(f);
    });
  }

  send(x) { this.ws.send(typeof x === 'string' ? x : JSON.stringify(x)); }

  /** Remove and return the first queued frame matching pred; wait up to ms for it. */
  async take(pred, what = 'a frame', ms = 4000) {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = this.queue.findIndex(pred);
      if (i >= 0) return this.queue.splice(i, 1)[0];
      if (this.closed) throw new Error(`connection closed (${this.closed.code}) while waiting for ${what}; queued: ${JSON.stringify(this.queue).slice(0, 500)}`);
      if (!(await this._wait(deadline))) {
        throw new Error(`timed out after ${ms} ms waiting for ${what}; queued: ${JSON.stringify(this.queue).slice(0, 500)}`);
      }
    }
  }

  /** The reply (ok, error or pong) carrying this id. */
  reply(id, ms) {
    return this.take((f) => ['ok', 'error', 'pong'].includes(f.type) && 'id' in f && f.id === id, `the reply to id ${JSON.stringify(id)}`, ms);
  }

  /** An error frame without an id. */
  anonError(ms) {
    return this.take((f) => f.type === 'error' && !('id' in f), 'an error without id', ms);
  }

  /** Send a request (an id is added when it has none) and wait for its reply. */
  req(obj, ms) {
    const o = 'id' in obj ? obj : { ...obj, id: this.nextId++ };
    this.send(o);
    return this.reply(o.id, ms);
  }

  async sub(channel, extra = {}) {
    const r = await this.req({ type: 'subscribe', channel, ...extra });
    assert.equal(r.type, 'ok', `subscribe ${channel}: ${JSON.stringify(r)}`);
    return r;
  }

  async pub(channel, data) {
    const r = await this.req({ type: 'publish', channel, data });
    assert.equal(r.type, 'ok', `publish ${channel}: ${JSON.stringify(r)}`);
    return r;
  }

  /** The next n message frames (optionally of one channel), in arrival order. */
  async messages(n, channel, ms = 4000) {
    const out = [];
    for (let i = 0; i < n; i++) {
      out.push(await this.take((f) => f.type === 'message' && (!channel || f.channel === channel),
        `message ${i + 1} of ${n}${channel ? ` on ${channel}` : ''}`, ms));
    }
    return out;
  }

  /** Remove and return every queued frame matching pred. */
  drain(pred = () => true) {
    const out = this.queue.filter(pred);
    this.queue = this.queue.filter((f) => !pred(f));
    return out;
  }

  /** Wait ms, then return (and remove) what arrived that matches pred: used to prove absence. */
  async quiet(ms = 300, pred = () => true) {
    await sleep(ms);
    return this.drain(pred);
  }

  /** ping/pong round trip: the connection is still usable. */
  async alive() {
    const id = `alive-${this.nextId++}`;
    this.send({ type: 'ping', id });
    const r = await this.reply(id);
    assert.deepEqual(r, { type: 'pong', id });
  }

  close() { try { this.ws.terminate(); } catch { /* gone */ } }
}

async function httpPublish(srv, channel, data) {
  const res = await fetch(`http://127.0.0.1:${srv.port}/api/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ channel, data }),
    signal: AbortSignal.timeout(5000),
  });
  return { status: res.status, body: await res.text() };
}

// ------------------------------------------------------------------------------------

describe('/pubsub protocol', { timeout: 55000 }, () => {
  let srv;
  const open = [];
  const client = async () => { const c = await Ps.open(srv.url); open.push(c); return c; };

  before(async () => {
    srv = await startHerald([
      '--threads', '2',
      '--namespace', 'small.*:history=3',
      '--namespace', 'short.*:ttl=1',
      '--namespace', 'chat.*:presence=on',
      '--namespace', 'ro.*:publish=off',
    ]);
  });
  after(async () => {
    for (const c of open) c.close();
    if (srv) await srv.stop();
  });

  // ---------------------------------------------------------------- commands, ids

  describe('commands', () => {
    test('ping with a number id → pong echoing it', async () => {
      const c = await client();
      assert.deepEqual(await c.req({ type: 'ping', id: 17 }), { type: 'pong', id: 17 });
    });

    test('ping with a string id → pong echoing it', async () => {
      const c = await client();
      assert.deepEqual(await c.req({ type: 'ping', id: 'abc-1' }), { type: 'pong', id: 'abc-1' });
    });

    test('ping without id → pong without id', async () => {
      const c = await client();
      c.send({ type: 'ping' });
      const f = await c.take((x) => x.type === 'pong', 'pong');
      assert.deepEqual(f, { type: 'pong' });
    });

    test('ids are echoed verbatim: 0, negative, int64 max, strings with escapes and non-ASCII, 64-byte string', async () => {
      const c = await client();
      for (const id of [0, -3, 'a"b\\c', 'é-ü-漢', 'x'.repeat(64)]) {
        assert.deepEqual(await c.req({ type: 'ping', id }), { type: 'pong', id }, `id ${JSON.stringify(id)}`);
      }
      // beyond 2^53: compare the text (JSON.parse would round it)
      c.send('{"type":"ping","id":9223372036854775807}');
      await c.take((f) => f.type === 'pong' && typeof f.id === 'number' && f.id > 2 ** 62, 'pong for int64 max');
      assert.ok(c.raw.includes('{"type":"pong","id":9223372036854775807}'), `raw frames: ${c.raw.join(' | ')}`);
    });

    test('ids are echoed on ok and error replies of every command', async () => {
      const c = await client();
      const ch = 'ids.1';
      assert.equal((await c.req({ type: 'subscribe', id: 'S', channel: ch })).id, 'S');
      assert.equal((await c.req({ type: 'publish', id: 2, channel: ch, data: 1 })).id, 2);
      assert.equal((await c.req({ type: 'history', id: 'H', channel: ch })).id, 'H');
      assert.equal((await c.req({ type: 'unsubscribe', id: 4, channel: ch })).id, 4);
      const e = await c.req({ type: 'unsubscribe', id: 'E', channel: ch });
      assert.equal(e.type, 'error');
      assert.equal(e.id, 'E');
    });

    test('subscribe → ok with channel, offset 0 and an epoch (no recovered member)', async () => {
      const c = await client();
      const r = await c.req({ type: 'subscribe', id: 1, channel: 'sub.fresh' });
      assert.equal(r.type, 'ok');
      assert.equal(r.id, 1);
      assert.equal(r.channel, 'sub.fresh');
      assert.equal(r.offset, 0);
      assert.equal(typeof r.epoch, 'string');
      assert.ok(r.epoch.length > 0, 'epoch must be non-empty');
      assert.ok(!('recovered' in r), `recovered without since: ${JSON.stringify(r)}`);
    });

    test('subscribe ok carries the current top offset of the channel', async () => {
      const p = await client();
      const ch = 'sub.top';
      let last;
      for (let i = 0; i < 3; i++) last = await p.pub(ch, i);
      const c = await client();
      const r = await c.sub(ch);
      assert.equal(r.offset, 3);
      assert.equal(r.epoch, last.epoch);
      assert.deepEqual(await c.quiet(200, (f) => f.type === 'message'), [], 'subscribe without since must not replay');
    });

    test('publish → ok with offsets 1, 2, 3 and one epoch; subscribers get the message frames', async () => {
      const s = await client();
      const p = await client();
      const ch = 'pub.basic';
      await s.sub(ch);
      const r1 = await p.req({ type: 'publish', id: 'p1', channel: ch, data: { qty: 3, sku: 'A-7' } });
      const r2 = await p.req({ type: 'publish', id: 'p2', channel: ch, data: null });
      const r3 = await p.req({ type: 'publish', id: 'p3', channel: ch, data: [1, 'two', true] });
      assert.deepEqual([r1.type, r1.id, r1.offset], ['ok', 'p1', 1]);
      assert.deepEqual([r2.type, r2.id, r2.offset], ['ok', 'p2', 2]);
      assert.deepEqual([r3.type, r3.id, r3.offset], ['ok', 'p3', 3]);
      assert.equal(typeof r1.epoch, 'string');
      assert.ok(r1.epoch && r1.epoch === r2.epoch && r2.epoch === r3.epoch);
      const ms = await s.messages(3, ch);
      assert.deepEqual(ms.map((m) => [m.type, m.channel, m.offset, m.epoch]),
        [['message', ch, 1, r1.epoch], ['message', ch, 2, r1.epoch], ['message', ch, 3, r1.epoch]]);
      assert.deepEqual(ms.map((m) => m.data), [{ qty: 3, sku: 'A-7' }, null, [1, 'two', true]]);
      for (const m of ms) {
        assert.match(m.timestamp, TS_RE);
        assert.ok(Math.abs(Date.parse(m.timestamp) - Date.now()) < 60000, `timestamp ${m.timestamp} far from now`);
      }
    });

    test('publish data is forwarded as compact JSON (whitespace removed, \\u escapes of printables resolved, 1e2 → 100.0)', async () => {
      const s = await client();
      const ch = 'pub.compact';
      await s.sub(ch);
      s.send(`{"type":"publish","id":1,"channel":"${ch}","data":{ "a" : 1e2 , "b":"\\u0041/" ,"c":[ 1, 2 ]}}`);
      await s.reply(1);
      await s.messages(1, ch);
      const raw = s.raw.find((t) => t.includes('"type":"message"'));
      assert.ok(raw.includes('"data":{"a":100.0,"b":"A/","c":[1,2]}'), raw);
    });

    test('unsubscribe → plain ok; no more messages afterwards', async () => {
      const s = await client();
      const p = await client();
      const ch = 'unsub.1';
      await s.sub(ch);
      await p.pub(ch, 'before');
      assert.equal((await s.messages(1, ch))[0].data, 'before');
      assert.deepEqual(await s.req({ type: 'unsubscribe', id: 9, channel: ch }), { type: 'ok', id: 9 });
      await p.pub(ch, 'after');
      assert.deepEqual(await s.quiet(300, (f) => f.type === 'message'), []);
      // and it can subscribe again
      await s.sub(ch);
      await p.pub(ch, 'again');
      assert.equal((await s.messages(1, ch))[0].data, 'again');
    });

    test('history → the retained messages oldest first, offset and epoch; limit; since', async () => {
      const p = await client();
      const ch = 'hist.1';
      let epoch;
      for (let i = 1; i <= 5; i++) epoch = (await p.pub(ch, { n: i })).epoch;
      const all = await p.req({ type: 'history', id: 'h', channel: ch });
      assert.equal(all.type, 'ok');
      assert.equal(all.id, 'h');
      assert.equal(all.offset, 5);
      assert.equal(all.epoch, epoch);
      assert.deepEqual(all.messages.map((m) => [m.offset, m.data.n, m.channel, m.epoch]),
        [1, 2, 3, 4, 5].map((i) => [i, i, ch, epoch]));
      for (const m of all.messages) {
        assert.ok(!('type' in m), 'history entries have no type');
        assert.match(m.timestamp, TS_RE);
      }
      const lim = await p.req({ type: 'history', channel: ch, limit: 2 });
      assert.deepEqual(lim.messages.map((m) => m.offset), [4, 5], 'limit keeps the most recent');
      const since = await p.req({ type: 'history', channel: ch, since: { offset: 3, epoch } });
      assert.deepEqual(since.messages.map((m) => m.offset), [4, 5]);
    });

    test('every channel keeps its last 100 messages by default', async () => {
      const p = await client();
      const ch = 'hist.hundred';
      for (let i = 1; i <= 105; i++) p.send({ type: 'publish', id: i, channel: ch, data: i });
      for (let i = 1; i <= 105; i++) assert.equal((await p.reply(i)).type, 'ok');
      const h = await p.req({ type: 'history', channel: ch, limit: 1000 });
      assert.equal(h.offset, 105);
      assert.equal(h.messages.length, 100);
      assert.deepEqual(h.messages.map((m) => m.offset), Array.from({ length: 100 }, (_, i) => i + 6));
    });

    test('namespace history=3 keeps only the last 3', async () => {
      const p = await client();
      const ch = 'small.hist';
      for (let i = 1; i <= 10; i++) await p.pub(ch, i);
      const h = await p.req({ type: 'history', channel: ch });
      assert.deepEqual(h.messages.map((m) => m.offset), [8, 9, 10]);
    });

    test('namespace ttl=1: messages expire after a second', { timeout: 10000 }, async () => {
      const p = await client();
      const ch = 'short.ttl';
      const { epoch } = await p.pub(ch, 1);
      await p.pub(ch, 2);
      assert.equal((await p.req({ type: 'history', channel: ch })).messages.length, 2);
      await sleep(2200);
      const h = await p.req({ type: 'history', channel: ch });
      if (h.type === 'ok') assert.deepEqual(h.messages, [], 'expired messages still in history');
      else assert.equal(h.code, 'not_found');
      const s = await client();
      const r = await s.sub(ch, { since: { offset: 0, epoch } });
      assert.equal(r.recovered, false, `history no longer covers the gap: ${JSON.stringify(r)}`);
      assert.deepEqual(await s.quiet(200, (f) => f.type === 'message'), []);
    });

    test('every request gets one reply with its id; requests about one channel are answered in order', async () => {
      const c = await client();
      // subscribe/publish/history need the channel's home thread (any of the 2); ping and
      // errors do not. Ten channels: some have their home on the other thread.
      let id = 0;
      for (let i = 0; i < 10; i++) {
        c.send({ type: 'subscribe', id: ++id, channel: `order.s${i}` });
        c.send({ type: 'ping', id: ++id });
        c.send({ type: 'publish', id: ++id, channel: `order.p${i}`, data: i });
        c.send({ type: 'subscribe', id: ++id, channel: 'bad..name' });
        c.send({ type: 'history', id: ++id, channel: `order.p${i}` });
      }
      for (let i = 1; i <= id; i++) await c.reply(i);
      const ids = c.log.filter((f) => ['ok', 'error', 'pong'].includes(f.type)).map((f) => f.id);
      assert.deepEqual([...ids].sort((a, b) => a - b), Array.from({ length: id }, (_, i) => i + 1), 'each id answered once');
      // per channel: publish (id 5i+3) before history (id 5i+5) of order.p<i>
      for (let i = 0; i < 10; i++) {
        assert.ok(ids.indexOf(5 * i + 3) < ids.indexOf(5 * i + 5), `publish and history of order.p${i} in order`);
      }
      // and consecutive publishes to one channel are answered in order, with offsets 1, 2, 3...
      const base = id;
      for (let k = 1; k <= 20; k++) c.send({ type: 'publish', id: base + k, channel: 'order.same', data: k });
      const offsets = [];
      for (let k = 1; k <= 20; k++) offsets.push((await c.reply(base + k)).offset);
      const order = c.log.filter((f) => f.type === 'ok' && f.id > base).map((f) => f.id);
      assert.deepEqual(order, Array.from({ length: 20 }, (_, k) => base + k + 1));
      assert.deepEqual(offsets, Array.from({ length: 20 }, (_, k) => k + 1));
    });

    test('epochs are non-empty strings and change when the server restarts', async () => {
      const ch = 'epoch.x';
      const a = await startHerald([]);
      let e1;
      try {
        const c = await Ps.open(a.url);
        e1 = (await c.pub(ch, 1)).epoch;
        c.close();
      } finally { await a.stop(); }
      const b = await startHerald([]);
      try {
        const c = await Ps.open(b.url);
        const r = await c.pub(ch, 1);
        c.close();
        assert.equal(r.offset, 1);
        assert.ok(e1 && r.epoch && e1 !== r.epoch, `epochs ${e1} and ${r.epoch}`);
      } finally { await b.stop(); }
    });
  });

  // ---------------------------------------------------------------- errors

  describe('errors (the connection stays usable after each)', () => {
    const badRequests = [
      ['malformed JSON', 'hello', null],
      ['truncated JSON', '{"type":"ping"', null],
      ['not an object (array)', '[{"type":"ping"}]', null],
      ['not an object (string)', '"ping"', null],
      ['two JSON values in one frame', '{"type":"ping"} {"type":"ping"}', null],
      ['type missing', '{"id":1,"channel":"c"}', 1],
      ['type not a string', '{"id":1,"type":7}', 1],
      ['id an object', '{"type":"ping","id":{"n":1}}', null],
      ['id with a fraction', '{"type":"ping","id":1.5}', null],
      ['id a string over 64 bytes', `{"type":"ping","id":"${'x'.repeat(65)}"}`, null],
      ['channel missing', '{"type":"subscribe","id":2}', 2],
      ['channel not a string', '{"type":"subscribe","id":2,"channel":42}', 2],
      ['channel empty', '{"type":"subscribe","id":2,"channel":""}', 2],
      ['channel over 255 bytes', `{"type":"subscribe","id":2,"channel":"${'c'.repeat(256)}"}`, 2],
      ['channel name refused by the broker', '{"type":"subscribe","id":2,"channel":"a..b"}', 2],
      ['pattern on publish', '{"type":"publish","id":2,"channel":"orders.*","data":1}', 2],
      ['since not an object', '{"type":"subscribe","id":2,"channel":"c","since":17}', 2],
      ['since.offset negative', '{"type":"subscribe","id":2,"channel":"c","since":{"offset":-1,"epoch":"k"}}', 2],
      ['since.offset above 2^53-1', '{"type":"subscribe","id":2,"channel":"c","since":{"offset":9007199254740992,"epoch":"k"}}', 2],
      ['since.epoch missing', '{"type":"subscribe","id":2,"channel":"c","since":{"offset":17}}', 2],
      ['since.epoch empty', '{"type":"subscribe","id":2,"channel":"c","since":{"offset":1,"epoch":""}}', 2],
      ['since with a pattern', '{"type":"subscribe","id":2,"channel":"orders.*","since":{"offset":1,"epoch":"k"}}', 2],
      ['since with a > pattern', '{"type":"subscribe","id":2,"channel":"orders.>","since":{"offset":0,"epoch":"k"}}', 2],
      ['history limit 0', '{"type":"history","id":6,"channel":"c","limit":0}', 6],
      ['history limit 1001', '{"type":"history","id":6,"channel":"c","limit":1001}', 6],
      ['history limit not an integer', '{"type":"history","id":6,"channel":"c","limit":"5"}', 6],
      ['publish without data', '{"type":"publish","id":4,"channel":"c"}', 4],
      ['duplicate member names', '{"type":"ping","id":1,"id":2}', null],
      ['duplicate member names inside data', '{"type":"publish","id":4,"channel":"c","data":{"a":1,"a":2}}', null],
    ];
    for (const [name, text, id] of badRequests) {
      test(`bad_request: ${name}`, async () => {
        const c = await client();
        c.send(text);
        const e = id === null ? await c.anonError() : await c.reply(id);
        assert.equal(e.type, 'error', JSON.stringify(e));
        assert.equal(e.code, 'bad_request', JSON.stringify(e));
        assert.equal(typeof e.message, 'string');
        if (id === null) assert.ok(!('id' in e), `error carries an id: ${JSON.stringify(e)}`);
        assert.deepEqual(await c.quiet(100, (f) => f.type !== 'error' || f.id === id), [], 'nothing else is sent');
        await c.alive();
      });
    }

    test('bad_request: a binary frame', async () => {
      const c = await client();
      c.ws.send(Buffer.from('{"type":"ping","id":1}'), { binary: true });
      const e = await c.anonError();
      assert.equal(e.code, 'bad_request');
      assert.deepEqual(c.drain((f) => f.type === 'pong'), [], 'a binary frame must not be executed');
      await c.alive();
    });

    test('unknown_type (id echoed)', async () => {
      const c = await client();
      const e = await c.req({ type: 'dance', id: 'u1', channel: 'x' });
      assert.equal(e.type, 'error');
      assert.equal(e.id, 'u1');
      assert.equal(e.code, 'unknown_type');
      const e2 = await c.req({ type: 'Ping', id: 5 });
      assert.equal(e2.code, 'unknown_type', 'type is case-sensitive');
      await c.alive();
    });

    test('already_subscribed: a second subscribe to the same channel or pattern', async () => {
      const c = await client();
      await c.sub('dup.1');
      const e = await c.req({ type: 'subscribe', id: 'd', channel: 'dup.1' });
      assert.deepEqual([e.type, e.id, e.code], ['error', 'd', 'already_subscribed']);
      await c.sub('dup.*');
      const e2 = await c.req({ type: 'subscribe', channel: 'dup.*' });
      assert.equal(e2.code, 'already_subscribed');
      await c.alive();
      // still exactly one delivery per message for the exact subscription
      const p = await client();
      await p.pub('dup.1.x', 'not for dup.1 nor dup.*');
      assert.deepEqual(await c.quiet(200, (f) => f.type === 'message'), []);
    });

    test('not_subscribed: unsubscribe of a channel or pattern not subscribed', async () => {
      const c = await client();
      const e = await c.req({ type: 'unsubscribe', id: 3, channel: 'never.1' });
      assert.deepEqual([e.type, e.id, e.code], ['error', 3, 'not_subscribed']);
      const e2 = await c.req({ type: 'unsubscribe', channel: 'never.*' });
      assert.equal(e2.code, 'not_subscribed');
      await c.sub('once.1');
      await c.req({ type: 'unsubscribe', channel: 'once.1' });
      const e3 = await c.req({ type: 'unsubscribe', channel: 'once.1' });
      assert.equal(e3.code, 'not_subscribed', 'second unsubscribe');
      await c.alive();
    });

    test('limit_exceeded: more than 1024 subscriptions on one connection', { timeout: 20000 }, async () => {
      const c = await client();
      for (let i = 0; i < 1024; i++) c.send({ type: 'subscribe', id: i, channel: `lim.${i}` });
      for (let i = 0; i < 1024; i++) {
        const r = await c.reply(i, 10000);
        assert.equal(r.type, 'ok', `subscription ${i}: ${JSON.stringify(r)}`);
      }
      const e = await c.req({ type: 'subscribe', id: 'over', channel: 'lim.1024' });
      assert.deepEqual([e.type, e.id, e.code], ['error', 'over', 'limit_exceeded']);
      const e2 = await c.req({ type: 'subscribe', channel: 'lim.*' });
      assert.equal(e2.code, 'limit_exceeded', 'patterns count too');
      await c.alive();
      // freeing one makes room for one
      assert.equal((await c.req({ type: 'unsubscribe', channel: 'lim.0' })).type, 'ok');
      assert.equal((await c.req({ type: 'subscribe', channel: 'lim.1024' })).type, 'ok');
    });

    test('not_allowed: publish to a publish=off namespace; the HTTP API may still publish there', async () => {
      const s = await client();
      const ch = 'ro.news';
      await s.sub(ch);
      const e = await s.req({ type: 'publish', id: 'ro', channel: ch, data: 'x' });
      assert.deepEqual([e.type, e.id, e.code], ['error', 'ro', 'not_allowed']);
      await s.alive();
      const r = await httpPublish(srv, ch, { from: 'backend' });
      assert.equal(r.status, 200, r.body);
      const body = JSON.parse(r.body);
      assert.equal(body.offset, 1);
      const [m] = await s.messages(1, ch);
      assert.deepEqual([m.offset, m.epoch, m.data], [1, body.epoch, { from: 'backend' }]);
    });

    test('not_allowed: presence on a channel without presence', async () => {
      const c = await client();
      await c.sub('nopres.1');
      const e = await c.req({ type: 'presence', id: 'np', channel: 'nopres.1' });
      assert.deepEqual([e.type, e.id, e.code], ['error', 'np', 'not_allowed']);
      await c.alive();
    });
  });

  // ---------------------------------------------------------------- recovery

  describe('recovery with since', () => {
    test('(a) reconnect with since = last offset: recovered:true, exactly the 2 missed in order, then live', async () => {
      const ch = 'rec.a';
      const p = await client();
      const a = await client();
      const r0 = await a.sub(ch);
      for (let i = 1; i <= 4; i++) await p.pub(ch, { n: i });
      const got = await a.messages(4, ch);
      assert.deepEqual(got.map((m) => m.offset), [1, 2, 3, 4]);
      const epoch = got[3].epoch;
      assert.equal(epoch, r0.epoch);
      a.close();
      await sleep(50);
      await p.pub(ch, { n: 5 });
      await p.pub(ch, { n: 6 });
      const b = await client();
      const r = await b.req({ type: 'subscribe', id: 'r', channel: ch, since: { offset: 4, epoch } });
      assert.deepEqual(r, { type: 'ok', id: 'r', channel: ch, offset: 6, epoch, recovered: true });
      const replay = await b.messages(2, ch);
      assert.deepEqual(replay.map((m) => [m.offset, m.data.n, m.epoch]), [[5, 5, epoch], [6, 6, epoch]]);
      await p.pub(ch, { n: 7 });
      const [live] = await b.messages(1, ch);
      assert.deepEqual([live.offset, live.data.n], [7, 7]);
      assert.deepEqual(await b.quiet(200), [], 'no duplicates');
      // the ok came first, then the replay in order, then the live one: nothing else
      assert.deepEqual(b.log.map((f) => (f.type === 'message' ? f.offset : f.type)), ['ok', 5, 6, 7]);
    });

    test('(b) since with a wrong epoch: recovered:false, no replay, live from now', async () => {
      const ch = 'rec.b';
      const p = await client();
      for (let i = 1; i <= 3; i++) await p.pub(ch, i);
      const b = await client();
      const r = await b.sub(ch, { since: { offset: 1, epoch: 'not-the-epoch' } });
      assert.equal(r.recovered, false);
      assert.equal(r.offset, 3);
      assert.deepEqual(await b.quiet(300, (f) => f.type === 'message'), [], 'no replay');
      await p.pub(ch, 4);
      const [m] = await b.messages(1, ch);
      assert.equal(m.offset, 4);
    });

    test('(c) since older than the ring (history=3, 10 published): recovered:false, no replay', async () => {
      const ch = 'small.rec';
      const p = await client();
      let epoch;
      for (let i = 1; i <= 10; i++) epoch = (await p.pub(ch, i)).epoch;
      const b = await client();
      const r = await b.sub(ch, { since: { offset: 2, epoch } });
      assert.equal(r.recovered, false);
      assert.equal(r.offset, 10);
      assert.deepEqual(await b.quiet(300, (f) => f.type === 'message'), [], 'no replay');
      await p.pub(ch, 11);
      assert.equal((await b.messages(1, ch))[0].offset, 11);
    });

    test('since just inside the ring (history=3, since = top-3): recovered:true and the 3 retained', async () => {
      const ch = 'small.edge';
      const p = await client();
      let epoch;
      for (let i = 1; i <= 10; i++) epoch = (await p.pub(ch, i)).epoch;
      const b = await client();
      const r = await b.sub(ch, { since: { offset: 7, epoch } });
      assert.equal(r.recovered, true);
      assert.deepEqual((await b.messages(3, ch)).map((m) => m.offset), [8, 9, 10]);
      assert.deepEqual(await b.quiet(200, (f) => f.type === 'message'), []);
    });

    test('(d) since = current top: recovered:true, nothing replayed, then live', async () => {
      const ch = 'rec.d';
      const p = await client();
      let epoch;
      for (let i = 1; i <= 3; i++) epoch = (await p.pub(ch, i)).epoch;
      const b = await client();
      const r = await b.sub(ch, { since: { offset: 3, epoch } });
      assert.equal(r.recovered, true);
      assert.equal(r.offset, 3);
      assert.deepEqual(await b.quiet(300, (f) => f.type === 'message'), [], 'nothing to replay');
      await p.pub(ch, 4);
      assert.equal((await b.messages(1, ch))[0].offset, 4);
    });

    test('since 0 with the right epoch replays the whole history', async () => {
      const ch = 'rec.zero';
      const p = await client();
      let epoch;
      for (let i = 1; i <= 3; i++) epoch = (await p.pub(ch, i)).epoch;
      const b = await client();
      const r = await b.sub(ch, { since: { offset: 0, epoch } });
      assert.equal(r.recovered, true);
      assert.deepEqual((await b.messages(3, ch)).map((m) => m.data), [1, 2, 3]);
    });

    test('recovery under concurrent publishing: no gap, no duplicate between replay and live', { timeout: 20000 }, async () => {
      const ch = 'rec.race';
      const p = await client();
      let epoch;
      for (let i = 1; i <= 20; i++) epoch = (await p.pub(ch, i)).epoch;
      // keep publishing while resubscribing
      let n = 20;
      let stop = false;
      const pump = (async () => {
        while (!stop && n < 90) { n++; p.send({ type: 'publish', channel: ch, data: n }); await sleep(1); }
      })();
      const b = await client();
      const r = await b.sub(ch, { since: { offset: 10, epoch } });
      assert.equal(r.recovered, true);
      await pump;
      stop = true;
      await p.alive(); // every publish before this ping has been answered
      const total = n;
      const ms = await b.messages(total - 10, ch, 8000);
      assert.deepEqual(ms.map((m) => m.offset), Array.from({ length: total - 10 }, (_, i) => i + 11));
      assert.deepEqual(await b.quiet(200, (f) => f.type === 'message'), [], 'duplicates');
    });
  });

  // ---------------------------------------------------------------- wildcards

  describe('wildcards', () => {
    test('pattern subscribe ok is plain {type:ok,id}', async () => {
      const c = await client();
      assert.deepEqual(await c.req({ type: 'subscribe', id: 'w', channel: 'plain.*' }), { type: 'ok', id: 'w' });
      assert.deepEqual(await c.req({ type: 'subscribe', id: 7, channel: 'plain.>' }), { type: 'ok', id: 7 });
    });

    test('orders.* gets orders.1 and orders.2 but not orders.1.x; orders.> gets orders.1.x too', async () => {
      const star = await client();
      const gt = await client();
      const p = await client();
      await star.sub('orders.*');
      await gt.sub('orders.>');
      for (const ch of ['orders.1', 'orders.2', 'orders.1.x', 'orders', 'other.1', 'ordersX.1']) await p.pub(ch, ch);
      await p.pub('orders.3', 'end');
      const s = await star.messages(3);
      assert.deepEqual(s.map((m) => [m.channel, m.data]), [['orders.1', 'orders.1'], ['orders.2', 'orders.2'], ['orders.3', 'end']]);
      const g = await gt.messages(4);
      assert.deepEqual(g.map((m) => m.channel), ['orders.1', 'orders.2', 'orders.1.x', 'orders.3']);
      assert.deepEqual(await star.quiet(200), []);
      assert.deepEqual(await gt.quiet(0), []);
      // message frames carry the concrete channel, offset and epoch of that channel
      assert.equal(s[0].offset, 1);
      assert.match(s[0].timestamp, TS_RE);
    });

    test('unsubscribe of a pattern stops its deliveries', async () => {
      const c = await client();
      const p = await client();
      await c.sub('wu.*');
      await p.pub('wu.1', 1);
      await c.messages(1);
      assert.deepEqual(await c.req({ type: 'unsubscribe', id: 'x', channel: 'wu.*' }), { type: 'ok', id: 'x' });
      await p.pub('wu.2', 2);
      assert.deepEqual(await c.quiet(300, (f) => f.type === 'message'), []);
    });
  });

  // ---------------------------------------------------------------- presence

  describe('presence (chat.*:presence=on)', () => {
    test('join/leave events and the presence command', async () => {
      const ch = 'chat.room1';
      const a = await client();
      const other = await client();
      await other.sub('chat.elsewhere');
      await a.sub(ch);
      const solo = await a.req({ type: 'presence', id: 'p0', channel: ch });
      assert.equal(solo.type, 'ok', JSON.stringify(solo));
      assert.equal(solo.id, 'p0');
      assert.equal(solo.clients.length, 1, JSON.stringify(solo));
      const aId = solo.clients[0].client;
      assert.match(aId, /^\d+$/, 'client ids are decimal strings');
      a.drain((f) => f.type === 'join' && f.client === aId); // a may or may not see its own join
      const b = await client();
      await b.sub(ch);
      const bJoin = await a.take((f) => f.type === 'join', 'join of b');
      assert.deepEqual(Object.keys(bJoin).sort(), ['channel', 'client', 'type', 'user']);
      assert.equal(bJoin.channel, ch);
      assert.equal(bJoin.user, null);
      assert.match(bJoin.client, /^\d+$/);
      assert.notEqual(bJoin.client, aId);
      const bId = bJoin.client;
      const pres = await b.req({ type: 'presence', id: 'p', channel: ch });
      assert.equal(pres.type, 'ok', JSON.stringify(pres));
      assert.equal(pres.id, 'p');
      assert.deepEqual(pres.clients.map((e) => e.client).sort(), [aId, bId].sort());
      // b leaves by unsubscribing
      await b.req({ type: 'unsubscribe', channel: ch });
      const leave = await a.take((f) => f.type === 'leave', 'leave of b');
      assert.deepEqual(leave, { type: 'leave', channel: ch, client: bId, user: null });
      const after1 = await a.req({ type: 'presence', channel: ch });
      assert.deepEqual(after1.clients.map((e) => e.client), [aId]);
      // a third client joins and drops its connection: leave
      const c = await client();
      await c.sub(ch);
      const cJoin = await a.take((f) => f.type === 'join' && f.client !== aId && f.client !== bId, 'join of c');
      c.close();
      const cLeave = await a.take((f) => f.type === 'leave', 'leave of c on disconnect');
      assert.deepEqual(cLeave, { type: 'leave', channel: ch, client: cJoin.client, user: null });
      // events go only to subscribers of that channel
      assert.deepEqual(other.drain((f) => (f.type === 'join' || f.type === 'leave') && f.channel === ch), []);
    });

    test('presence command: {client: "<decimal id>", user: null} per subscriber (anonymous)', async () => {
      const ch = 'chat.room2';
      const a = await client();
      const b = await client();
      await a.sub(ch);
      await b.sub(ch);
      const r = await a.req({ type: 'presence', id: 'pp', channel: ch });
      assert.equal(r.type, 'ok', JSON.stringify(r));
      assert.equal(r.id, 'pp');
      assert.equal(r.clients.length, 2);
      for (const e of r.clients) {
        assert.deepEqual(Object.keys(e).sort(), ['client', 'user']);
        assert.match(e.client, /^\d+$/);
      }
      assert.deepEqual(r.clients.map((e) => e.user), [null, null], `anonymous user must be null: ${JSON.stringify(r)}`);
    });

    test('no join/leave events on a channel without presence', async () => {
      const a = await client();
      await a.sub('nopres.ev');
      const b = await client();
      await b.sub('nopres.ev');
      await b.req({ type: 'unsubscribe', channel: 'nopres.ev' });
      assert.deepEqual(await a.quiet(300, (f) => f.type === 'join' || f.type === 'leave'), []);
    });
  });

  // ---------------------------------------------------------------- threads

  test('--threads 2: 200 subscribers of one channel and 20 channels published concurrently: every message exactly once, offsets gapless', { timeout: 45000 }, async () => {
    const CH = 20;
    const SUBS = 200;
    const PUBS = 5;
    const PER = 6; // per publisher per channel → 30 messages per channel
    const s2 = await startHerald(['--threads', '2', '--log-level', 'debug']);
    const conns = [];
    try {
      for (let i = 0; i < SUBS; i += 50) {
        conns.push(...await Promise.all(Array.from({ length: Math.min(50, SUBS - i) }, () => Ps.open(s2.url))));
      }
      const chans = (i) => ['load.0', `load.${1 + (i % (CH - 1))}`];
      await Promise.all(conns.map(async (c, i) => { for (const ch of chans(i)) await c.sub(ch); }));
      const pubs = await Promise.all(Array.from({ length: PUBS }, () => Ps.open(s2.url)));
      conns.push(...pubs);
      const offsets = Array.from({ length: CH }, () => []);
      await Promise.all(pubs.map(async (p, pi) => {
        for (let n = 0; n < PER; n++) {
          for (let c = 0; c < CH; c++) p.send({ type: 'publish', id: `${c}:${n}`, channel: `load.${c}`, data: { p: pi, c, n } });
        }
        for (let n = 0; n < PER; n++) {
          for (let c = 0; c < CH; c++) {
            const r = await p.reply(`${c}:${n}`, 15000);
            assert.equal(r.type, 'ok', JSON.stringify(r));
            offsets[c].push(r.offset);
          }
        }
      }));
      const M = PUBS * PER;
      for (let c = 0; c < CH; c++) {
        assert.deepEqual([...offsets[c]].sort((x, y) => x - y), Array.from({ length: M }, (_, i) => i + 1), `publish offsets of load.${c}`);
      }
      const bad = [];
      await Promise.all(conns.slice(0, SUBS).map(async (c, i) => {
        for (const ch of chans(i)) {
          let ms;
          try { ms = await c.messages(M, ch, 15000); } catch (e) { bad.push(`sub ${i} ${ch}: ${e.message.slice(0, 200)}`); return; }
          const offs = ms.map((m) => m.offset);
          const want = Array.from({ length: M }, (_, k) => k + 1);
          if (JSON.stringify(offs) !== JSON.stringify(want)) bad.push(`sub ${i} ${ch}: offsets ${offs.join(',')}`);
          const keys = new Set(ms.map((m) => `${m.data.p}/${m.data.n}`));
          if (keys.size !== M) bad.push(`sub ${i} ${ch}: ${keys.size} distinct messages of ${M}`);
          if (ms.some((m) => m.data.c !== Number(ch.split('.')[1]))) bad.push(`sub ${i} ${ch}: message of another channel`);
        }
      }));
      assert.deepEqual(bad.slice(0, 10), [], `${bad.length} subscriber/channel pairs wrong`);
      await sleep(300);
      const dup = conns.slice(0, SUBS).map((c, i) => [i, c.drain((f) => f.type === 'message').length]).filter(([, n]) => n);
      assert.deepEqual(dup.slice(0, 5), [], 'duplicate deliveries');
      for (const t of [0, 1]) {
        const n = s2.stderr().split('\n').filter((l) => l.includes(`accepted on thread ${t}`)).length;
        assert.ok(n >= 20, `only ${n} connections on thread ${t}: the test did not span both threads`);
      }
    } finally {
      for (const c of conns) c.close();
      await s2.stop();
    }
  });
});
