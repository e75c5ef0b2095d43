// Unit tests of web/herald.js under Node's test runner: an in-memory WebSocket, a fake
// fetch and fake timers make every scenario deterministic and instant (no server, no
// real waiting). Run: node --test tests/js/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Herald, HeraldError, formatPosition, parsePosition, backoffDelay, matchChannel, isPattern,
  httpUrlFor, wsUrlFor, SseParser,
} from '../../web/herald.js';

// ---------------------------------------------------------------------------------------
// Fakes

/** Timers that only move when the test says so. */
class Clock {
  constructor() {
    this.t = 1000;
    this.seq = 0;
    this.timers = new Map();
    this.setTimeout = (fn, ms) => {
      const id = ++this.seq;
      this.timers.set(id, { fn, at: this.t + Math.max(0, ms || 0), id });
      return id;
    };
    this.clearTimeout = (id) => { this.timers.delete(id); };
    this.now = () => this.t;
  }

  /** Run every timer due within ms (in time order), letting promises settle in between. */
  async advance(ms) {
    const end = this.t + ms;
    await settle();
    for (;;) {
      let next = null;
      for (const tm of this.timers.values()) if (tm.at <= end && (!next || tm.at < next.at || (tm.at === next.at && tm.id < next.id))) next = tm;
      if (!next) break;
      this.timers.delete(next.id);
      this.t = next.at;
      next.fn();
      await settle();
    }
    this.t = end;
    await settle();
  }

  pending() { return this.timers.size; }
}

/** Let queued promise callbacks (and chained ones) run. */
async function settle() {
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
}

/** A WebSocket class whose instances the test drives by hand. */
function fakeWebSocket() {
  const sockets = [];
  class FakeWS {
    constructor(url) {
      this.url = url;
      this.sent = [];
      this.readyState = 0;
      this.bufferedAmount = 0;
      this.closedWith = null;
      sockets.push(this);
    }

    send(text) {
      if (this.readyState !== 1) throw new Error('not open');
      this.sent.push(JSON.parse(text));
    }

    close(code, reason) { this.closedWith = { code, reason }; this.readyState = 3; }

    // test side
    open() { this.readyState = 1; this.onopen && this.onopen({}); }
    receive(obj) { this.onmessage && this.onmessage({ data: JSON.stringify(obj) }); }
    drop(code = 1006, reason = '') {
      this.readyState = 3;
      this.onerror && this.onerror({});
      this.onclose && this.onclose({ code, reason });
    }
    last(type) { return [...this.sent].reverse().find((f) => f.type === type); }
  }
  FakeWS.sockets = sockets;
  return FakeWS;
}

/** fetch whose requests wait until the test answers them. */
function fakeFetch() {
  const calls = [];
  const fn = (url, init = {}) => new Promise((resolve, reject) => {
    const call = {
      url: new URL(url), method: init.method || 'GET', headers: init.headers || {}, body: init.body,
      resolve, reject, signal: init.signal,
    };
    if (init.signal) init.signal.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')));
    calls.push(call);
  });
  fn.calls = calls;
  fn.json = (call, status, body) => call.resolve(new Response(JSON.stringify(body), {
    status, headers: { 'content-type': 'application/json' },
  }));
  /** Answer with an event stream; returns {push(text), end()}. */
  fn.stream = (call) => {
    let ctl;
    const body = new ReadableStream({ start(c) { ctl = c; } });
    call.resolve(new Response(body, { status: 200, headers: { 'content-type': 'text/event-stream' } }));
    const enc = new TextEncoder();
    return { push: (t) => ctl.enqueue(enc.encode(t)), end: () => ctl.close() };
  };
  return fn;
}

function make(opts = {}) {
  const clock = new Clock();
  const WS = fakeWebSocket();
  const h = new Herald('ws://127.0.0.1:9/pubsub', {
    WebSocket: WS, EventSource: null, fetch: opts.fetch || null,
    setTimeout: clock.setTimeout, clearTimeout: clock.clearTimeout, now: clock.now,
    random: () => 0.5, transports: ['websocket'], ...opts,
  });
  const events = [];
  for (const e of ['state', 'connected', 'disconnected', 'error', 'gap', 'message', 'latency']) {
    h.on(e, (a) => events.push([e, a]));
  }
  return { h, clock, WS, events };
}

const msg = (channel, offset, epoch = 'e1', data = { n: offset }) => ({
  type: 'message', channel, offset, epoch, timestamp: '2026-11-26T18:00:00.000Z', data,
});

/** Open the newest socket and answer its pending subscribes with ok. */
async function openAndAck(WS, clock, info = {}) {
  const ws = WS.sockets.at(-1);
  ws.open();
  await settle();
  for (const f of ws.sent.filter((x) => x.type === 'subscribe')) {
    ws.receive({ type: 'ok', id: f.id, channel: f.channel, offset: 0, epoch: 'e1', ...(info[f.channel] || {}) });
  }
  return ws;
}

// ---------------------------------------------------------------------------------------
// Pure helpers

test('position strings: built from entries, parsed from the right', () => {
  const s = formatPosition([
    { channel: 'orders.42', offset: 18, epoch: 'k3j9x0' },
    { channel: 'a:b', offset: 0, epoch: 'e' },
    { channel: 'nopos', offset: null, epoch: null },
  ]);
  assert.equal(s, 'orders.42:18:k3j9x0,a:b:0:e');
  assert.deepEqual(parsePosition(s), [
    { channel: 'orders.42', offset: 18, epoch: 'k3j9x0' },
    { channel: 'a:b', offset: 0, epoch: 'e' },
  ]);
  // malformed entries are skipped, not trusted
  assert.deepEqual(parsePosition('x:1:E,y:z:e,:1:e,w:2:ok'), [{ channel: 'w', offset: 2, epoch: 'ok' }]);
  assert.deepEqual(parsePosition(''), []);
  assert.deepEqual(parsePosition(undefined), []);
});

test('patterns: * is one segment, > one or more at the end', () => {
  assert.ok(isPattern('orders.*'));
  assert.ok(isPattern('orders.>'));
  assert.ok(!isPattern('orders.42'));
  assert.ok(matchChannel('orders.*', 'orders.42'));
  assert.ok(!matchChannel('orders.*', 'orders.42.x'));
  assert.ok(!matchChannel('orders.*', 'orders'));
  assert.ok(matchChannel('orders.>', 'orders.42.x'));
  assert.ok(!matchChannel('orders.>', 'orders'));
  assert.ok(matchChannel('*.42', 'orders.42'));
});

test('URLs: http(s) fallbacks on the ws(s) host', () => {
  assert.equal(httpUrlFor('ws://h:8080/pubsub?x=1', '/sse'), 'http://h:8080/sse');
  assert.equal(httpUrlFor('wss://h/pubsub', '/poll'), 'https://h/poll');
  assert.equal(httpUrlFor('wss://h/pubsub', 'https://other/x'), 'https://other/x');
  assert.equal(wsUrlFor('http://h:1/pubsub'), 'ws://h:1/pubsub');
  assert.equal(wsUrlFor('wss://h/pubsub'), 'wss://h/pubsub');
});

test('back-off: full jitter under an exponential cap bounded by max', () => {
  const caps = [500, 1000, 2000, 4000, 8000, 15000, 15000, 15000];
  caps.forEach((cap, n) => {
    assert.equal(backoffDelay(n, { min: 500, max: 15000 }, () => 0), 0);
    assert.equal(backoffDelay(n, { min: 500, max: 15000 }, () => 0.999999), cap - 1);
    assert.equal(backoffDelay(n, { min: 500, max: 15000 }, () => 0.5), cap / 2);
  });
  assert.equal(backoffDelay(1000, { min: 500, max: 15000 }, () => 0.5), 7500, 'no overflow for huge attempts');
});

test('SSE parser: fields, multi-line data, comments, CRLF, chunk boundaries, bound', () => {
  const got = [];
  const p = new SseParser(100, (type, data, id) => got.push([type, data, id]));
  assert.ok(p.push('retry: 3000\n\n: ping\n\nevent: subscribed\ndata: {"a":'));
  assert.ok(p.push('1}\n\nid: x:1:e\r\ndata: l1\r\ndata:l2\r'));
  assert.ok(p.push('\n\r\n'));
  assert.deepEqual(got, [['subscribed', '{"a":1}', ''], ['message', 'l1\nl2', 'x:1:e']]);
  assert.equal(p.push(`data: ${'z'.repeat(200)}`), false, 'a line over the bound is refused');
});

// ---------------------------------------------------------------------------------------
// The client over WebSocket

test('state events: connecting, connected; reconnect delays grow with jitter and reset', async () => {
  const { h, clock, WS, events } = make({ reconnectDelay: { min: 100, max: 1000 }, stableAfter: 5000 });
  h.connect();
  await settle();
  assert.equal(WS.sockets.length, 1);
  assert.deepEqual(events.find((e) => e[0] === 'state')[1], { state: 'connecting', transport: 'websocket', retryInMs: 0 });
  // never opens: 50, 100, 200, 400, 500, 500 (random 0.5 of the caps 100..1000)
  const delays = [];
  for (let i = 0; i < 6; i++) {
    WS.sockets.at(-1).drop();
    await settle();
    const st = events.filter((e) => e[0] === 'state').at(-1)[1];
    assert.equal(st.state, 'reconnecting');
    delays.push(st.retryInMs);
    const before = WS.sockets.length;
    await clock.advance(st.retryInMs - 1);
    assert.equal(WS.sockets.length, before, 'no attempt before the delay');
    await clock.advance(1);
    assert.equal(WS.sockets.length, before + 1, 'an attempt at the delay');
  }
  assert.deepEqual(delays, [50, 100, 200, 400, 500, 500]);
  assert.ok(!events.some((e) => e[0] === 'disconnected'), 'never connected: no disconnected event');
  // a connection that stays up for stableAfter resets the back-off
  WS.sockets.at(-1).open();
  await settle();
  assert.equal(h.state, 'connected');
  assert.equal(h.transport, 'websocket');
  await clock.advance(5000);
  WS.sockets.at(-1).drop(1001, 'server shutting down, reconnect');
  await settle();
  const d = events.filter((e) => e[0] === 'disconnected').at(-1)[1];
  assert.deepEqual(d, { code: 1001, reason: 'server shutting down, reconnect', willReconnect: true });
  assert.equal(events.filter((e) => e[0] === 'state').at(-1)[1].retryInMs, 50);
  h.close();
});

test('a connection that drops before it is stable keeps the back-off growing', async () => {
  const { h, clock, WS, events } = make({ reconnectDelay: { min: 100, max: 1000 }, stableAfter: 5000 });
  h.connect();
  await settle();
  const delays = [];
  for (let i = 0; i < 3; i++) {
    WS.sockets.at(-1).open();
    await clock.advance(10);
    WS.sockets.at(-1).drop();
    await settle();
    const st = events.filter((e) => e[0] === 'state').at(-1)[1];
    delays.push(st.retryInMs);
    await clock.advance(st.retryInMs);
  }
  assert.deepEqual(delays, [50, 100, 200]);
  h.close();
});

test('resubscribe with since after a drop: nothing missed, nothing repeated', async () => {
  const { h, clock, WS } = make();
  const got = [];
  const sub = h.subscribe('chat.lobby', (m) => got.push(m.offset));
  h.connect();
  await settle();
  let ws = WS.sockets[0];
  ws.open();
  await settle();
  const s1 = ws.last('subscribe');
  assert.equal(s1.channel, 'chat.lobby');
  assert.equal(s1.since, undefined, 'the first subscribe has no since');
  ws.receive({ type: 'ok', id: s1.id, channel: 'chat.lobby', offset: 5, epoch: 'e1' });
  await sub.ready;
  assert.deepEqual(sub.position, { offset: 5, epoch: 'e1' });
  ws.receive(msg('chat.lobby', 6));
  ws.receive(msg('chat.lobby', 7));
  ws.receive(msg('chat.lobby', 7)); // a duplicate is dropped
  ws.receive(msg('other', 8)); // not subscribed: ignored
  assert.deepEqual(got, [6, 7]);

  ws.drop();
  await clock.advance(1000);
  ws = WS.sockets[1];
  ws.open();
  await settle();
  const s2 = ws.last('subscribe');
  assert.deepEqual(s2.since, { offset: 7, epoch: 'e1' }, 'resubscribe from the last message seen');
  ws.receive({ type: 'ok', id: s2.id, channel: 'chat.lobby', offset: 9, epoch: 'e1', recovered: true });
  // the server replays what was missed; an overlap is filtered
  ws.receive(msg('chat.lobby', 7));
  ws.receive(msg('chat.lobby', 8));
  ws.receive(msg('chat.lobby', 9));
  ws.receive(msg('chat.lobby', 10));
  assert.deepEqual(got, [6, 7, 8, 9, 10]);
  assert.equal(h.position(), 'chat.lobby:10:e1');
  h.close();
});

test('recovered:false raises a gap and continues from the new position', async () => {
  const { h, clock, WS, events } = make();
  const gaps = [];
  const got = [];
  h.subscribe('orders.42', (m) => got.push(`${m.epoch}/${m.offset}`), { since: { offset: 3, epoch: 'old' }, onGap: (g) => gaps.push(g) });
  h.connect();
  await settle();
  let ws = WS.sockets[0];
  ws.open();
  await settle();
  const s = ws.last('subscribe');
  assert.deepEqual(s.since, { offset: 3, epoch: 'old' }, 'an explicit since is sent on the first subscribe');
  ws.receive({ type: 'ok', id: s.id, channel: 'orders.42', offset: 2, epoch: 'new', recovered: false });
  const ev = { channel: 'orders.42', since: { offset: 3, epoch: 'old' }, offset: 2, epoch: 'new' };
  assert.deepEqual(gaps, [ev]);
  assert.deepEqual(events.filter((e) => e[0] === 'gap').map((e) => e[1]), [ev]);
  ws.receive(msg('orders.42', 3, 'new'));
  assert.deepEqual(got, ['new/3'], 'offset 3 of the new epoch is new, not a duplicate');
  ws.drop();
  await clock.advance(1000);
  ws = WS.sockets[1];
  ws.open();
  await settle();
  assert.deepEqual(ws.last('subscribe').since, { offset: 3, epoch: 'new' });
  h.close();
});

test('pattern subscriptions: live only, deduped per channel, gap on resubscribe', async () => {
  const { h, clock, WS, events } = make();
  const got = [];
  h.subscribe('orders.*', (m) => got.push(`${m.channel}/${m.offset}`));
  const exact = [];
  h.subscribe('orders.1', (m) => exact.push(m.offset));
  h.connect();
  await settle();
  let ws = await openAndAck(WS, clock);
  // both subscriptions match: the server may send the message once per subscription
  ws.receive(msg('orders.1', 1));
  ws.receive(msg('orders.1', 1));
  ws.receive(msg('orders.2', 1));
  ws.receive(msg('orders.2', 1));
  assert.deepEqual(got, ['orders.1/1', 'orders.2/1']);
  assert.deepEqual(exact, [1]);
  assert.equal(events.filter((e) => e[0] === 'message').length, 2, "'message' once per new message");
  ws.drop();
  await clock.advance(1000);
  ws = WS.sockets[1];
  ws.open();
  await settle();
  const pat = ws.sent.find((f) => f.type === 'subscribe' && f.channel === 'orders.*');
  assert.equal(pat.since, undefined, 'patterns have no position to recover from');
  ws.receive({ type: 'ok', id: pat.id });
  assert.equal(events.filter((e) => e[0] === 'gap').at(-1)[1].channel, 'orders.*');
  h.close();
});

test('several subscribe() calls share one server subscription', async () => {
  const { h, clock, WS } = make();
  h.connect();
  await settle();
  const ws = await openAndAck(WS, clock);
  const a = [];
  const b = [];
  const sa = h.subscribe('c', (m) => a.push(m.offset));
  const sb = h.subscribe('c', (m) => b.push(m.offset));
  assert.equal(ws.sent.filter((f) => f.type === 'subscribe').length, 1);
  ws.receive({ type: 'ok', id: ws.last('subscribe').id, channel: 'c', offset: 0, epoch: 'e1' });
  await Promise.all([sa.ready, sb.ready]);
  ws.receive(msg('c', 1));
  sa.unsubscribe();
  assert.equal(ws.last('unsubscribe'), undefined, 'still one listener: no unsubscribe');
  ws.receive(msg('c', 2));
  sb.unsubscribe();
  assert.equal(ws.last('unsubscribe').channel, 'c');
  ws.receive(msg('c', 3));
  assert.deepEqual(a, [1]);
  assert.deepEqual(b, [1, 2]);
  h.close();
});

test('a refused subscribe rejects ready, reports the error and is not retried', async () => {
  const { h, clock, WS, events } = make();
  const sub = h.subscribe('secret.x', () => {});
  h.connect();
  await settle();
  let ws = WS.sockets[0];
  ws.open();
  await settle();
  const s = ws.last('subscribe');
  ws.receive({ type: 'error', id: s.id, code: 'not_allowed', message: 'no' });
  await assert.rejects(sub.ready, (e) => e instanceof HeraldError && e.code === 'not_allowed');
  assert.equal(events.filter((e) => e[0] === 'error').at(-1)[1].channel, 'secret.x');
  ws.drop();
  await clock.advance(1000);
  ws = WS.sockets[1];
  ws.open();
  await settle();
  assert.equal(ws.last('subscribe'), undefined);
  h.close();
});

test('requests: replies by id, errors with .code, timeouts', async () => {
  const { h, clock, WS } = make({ requestTimeout: 1000 });
  h.connect();
  await settle();
  const ws = WS.sockets[0];
  ws.open();
  await settle();
  const p1 = h.publish('c', { text: 'hi' });
  const p2 = h.publish('c', 2);
  const p3 = h.history('c', { limit: 5 });
  const p4 = h.presence('room');
  const [f1, f2, f3, f4] = ws.sent;
  assert.deepEqual(f1, { type: 'publish', channel: 'c', data: { text: 'hi' }, id: f1.id });
  assert.notEqual(f1.id, f2.id);
  assert.deepEqual(f3, { type: 'history', channel: 'c', limit: 5, id: f3.id });
  // replies in another order than the requests
  ws.receive({ type: 'error', id: f2.id, code: 'not_allowed', message: 'publish to this channel not allowed' });
  ws.receive({ type: 'ok', id: f1.id, offset: 18, epoch: 'k3' });
  ws.receive({ type: 'ok', id: f3.id, messages: [msg('c', 1)], offset: 1, epoch: 'k3' });
  ws.receive({ type: 'ok', id: f4.id, clients: [{ client: '1', user: null }] });
  assert.deepEqual(await p1, { offset: 18, epoch: 'k3' });
  await assert.rejects(p2, (e) => e.code === 'not_allowed' && /not allowed/.test(e.message));
  assert.equal((await p3).messages.length, 1);
  assert.deepEqual(await p4, [{ client: '1', user: null }]);

  const p5 = h.publish('c', 3);
  let settled = false;
  p5.catch(() => {}).finally(() => { settled = true; });
  await clock.advance(999);
  assert.equal(settled, false);
  await clock.advance(1);
  await assert.rejects(p5, (e) => e.code === 'timeout');
  // a late reply to a timed-out request is ignored
  ws.receive({ type: 'ok', id: ws.last('publish').id, offset: 19, epoch: 'k3' });
  h.close();
});

test('requests wait in a bounded queue while disconnected; close() rejects them', async () => {
  const { h, clock, WS } = make({ maxQueue: 2, requestTimeout: 60000 });
  const q1 = h.publish('c', 1); // before connect(): waits as well
  h.connect();
  await settle();
  const q2 = h.ping();
  await assert.rejects(h.publish('c', 3), (e) => e.code === 'queue_full');
  const ws = WS.sockets[0];
  ws.open();
  await settle();
  assert.deepEqual(ws.sent.map((f) => f.type), ['publish', 'ping'], 'sent in order once connected');
  ws.receive({ type: 'ok', id: ws.sent[0].id, offset: 1, epoch: 'e' });
  await clock.advance(7);
  ws.receive({ type: 'pong', id: ws.sent[1].id });
  assert.deepEqual(await q1, { offset: 1, epoch: 'e' });
  assert.equal(await q2, 7);
  assert.equal(h.latency, 7);

  // in flight when the connection drops: rejected with 'disconnected' (not resent)
  const inflight = h.publish('c', 4);
  ws.drop();
  await assert.rejects(inflight, (e) => e.code === 'disconnected');
  const queued = h.publish('c', 5);
  h.close();
  await assert.rejects(queued, (e) => e.code === 'closed');
  await assert.rejects(h.ping(), (e) => e.code === 'closed', 'after close(): at once');
  assert.equal(h.state, 'closed');
  await clock.advance(100000);
  assert.equal(WS.sockets.length, 1, 'no reconnect after close()');
  assert.equal(clock.pending(), 0, 'close() leaves no timer behind');
});

test('liveness: pings measure latency; silence drops and reconnects', async () => {
  const { h, clock, WS, events } = make({ pingInterval: 1000, pingTimeout: 500 });
  h.connect();
  await settle();
  let ws = WS.sockets[0];
  ws.open();
  await clock.advance(1000);
  let ping = ws.last('ping');
  assert.ok(ping, 'a ping after pingInterval');
  await clock.advance(12);
  ws.receive({ type: 'pong', id: ping.id });
  await settle();
  assert.equal(h.latency, 12);
  assert.deepEqual(events.filter((e) => e[0] === 'latency').at(-1)[1], { ms: 12 });

  // unanswered, but other traffic arrived: alive
  await clock.advance(988);
  ping = ws.last('ping');
  ws.receive(msg('nobody', 1));
  await clock.advance(500);
  assert.equal(ws.closedWith, null);

  // unanswered and silent: dead
  await clock.advance(500);
  assert.notEqual(ws.last('ping').id, ping.id);
  await clock.advance(500);
  assert.deepEqual(ws.closedWith, { code: 4000, reason: 'ping timeout' });
  const d = events.filter((e) => e[0] === 'disconnected').at(-1)[1];
  assert.equal(d.reason, 'ping timeout');
  assert.equal(h.state, 'reconnecting');
  await clock.advance(1000);
  assert.equal(WS.sockets.length, 2, 'reconnected');
  ws = WS.sockets[1];
  h.close();
});

test('token: in the URL, and a function is asked again on every connect', async () => {
  let n = 0;
  const { h, clock, WS } = make({ token: async () => `tok${++n}` });
  h.connect();
  await settle();
  assert.equal(new URL(WS.sockets[0].url).searchParams.get('token'), 'tok1');
  WS.sockets[0].drop();
  await clock.advance(1000);
  assert.equal(new URL(WS.sockets[1].url).searchParams.get('token'), 'tok2');
  h.close();
});

test('a throwing listener is reported and does not break the client', async () => {
  const { h, WS, clock, events } = make();
  h.subscribe('c', () => { throw new Error('boom'); });
  h.on('connected', () => { throw new Error('bang'); });
  h.connect();
  await settle();
  const ws = await openAndAck(WS, clock);
  ws.receive(msg('c', 1));
  const errs = events.filter((e) => e[0] === 'error').map((e) => e[1]);
  assert.ok(errs.every((e) => e.code === 'listener'));
  assert.equal(errs.length, 2);
  assert.equal(h.state, 'connected');
  h.close();
});

test('server error frames without id become error events (token_expired)', async () => {
  const { h, WS, clock, events } = make();
  h.connect();
  await settle();
  const ws = await openAndAck(WS, clock);
  ws.receive({ type: 'error', code: 'token_expired', message: 'token expired' });
  ws.drop(4001, 'token expired');
  await settle();
  assert.equal(events.filter((e) => e[0] === 'error').at(-1)[1].code, 'token_expired');
  assert.equal(h.state, 'reconnecting');
  h.close();
});

// ---------------------------------------------------------------------------------------
// Fallbacks

function sseEvents(...evs) {
  return evs.map(([type, data, id]) => `${type ? `event: ${type}\n` : ''}${id ? `id: ${id}\n` : ''}data: ${JSON.stringify(data)}\n\n`).join('');
}

test('fallback: a WebSocket constructor that throws moves to SSE at once', async () => {
  const fetch = fakeFetch();
  class Blocked { constructor() { throw new Error('blocked'); } }
  const { h, clock, events } = make({ WebSocket: Blocked, fetch, transports: ['websocket', 'sse', 'poll'] });
  const got = [];
  const sub = h.subscribe('chat.lobby', (m) => got.push(m.offset));
  h.connect();
  await clock.advance(0); // no waiting: the next transport is tried at once
  assert.equal(fetch.calls.length, 1);
  const c = fetch.calls[0];
  assert.equal(c.url.pathname, '/sse');
  assert.deepEqual(c.url.searchParams.getAll('channel'), ['chat.lobby']);
  assert.equal(c.headers.Accept, 'text/event-stream');
  const s = fetch.stream(c);
  s.push(`retry: 3000\n\n${sseEvents(['subscribed', { type: 'subscribed', channels: [{ channel: 'chat.lobby', offset: 4, epoch: 'e1' }] }])}`);
  await settle();
  await sub.ready;
  assert.equal(h.transport, 'sse');
  assert.deepEqual(events.find((e) => e[0] === 'connected')[1], { transport: 'sse' });
  s.push(sseEvents([null, msg('chat.lobby', 5), 'chat.lobby:5:e1'], [null, msg('chat.lobby', 5), 'chat.lobby:5:e1']));
  s.push(': ping\n\n');
  s.push(sseEvents([null, msg('chat.lobby', 6), 'chat.lobby:6:e1']));
  await settle();
  assert.deepEqual(got, [5, 6]);

  // publish goes over POST
  const p = h.publish('chat.lobby', { text: 'hi' });
  await settle();
  const post = fetch.calls[1];
  assert.equal(post.method, 'POST');
  assert.equal(post.url.pathname, '/sse');
  const body = JSON.parse(post.body);
  assert.deepEqual({ channel: body.channel, data: body.data }, { channel: 'chat.lobby', data: { text: 'hi' } });
  fetch.json(post, 200, { type: 'ok', id: body.id, offset: 7, epoch: 'e1' });
  assert.deepEqual(await p, { offset: 7, epoch: 'e1' });
  const p2 = h.publish('chat.lobby', 1);
  await settle();
  fetch.json(fetch.calls[2], 403, { type: 'error', code: 'not_allowed', message: 'publish to this channel not allowed' });
  await assert.rejects(p2, (e) => e.code === 'not_allowed');
  await assert.rejects(h.history('chat.lobby'), (e) => e.code === 'unsupported');
  await assert.rejects(h.presence('chat.lobby'), (e) => e.code === 'unsupported');
  // ping: an HTTP round trip to /healthz
  const pp = h.ping();
  await settle();
  const hc = fetch.calls.at(-1);
  assert.equal(hc.url.pathname, '/healthz');
  await clock.advance(9);
  fetch.json(hc, 200, { status: 'ok' });
  assert.equal(await pp, 9);

  // the stream ends: reconnect with the position as since and Last-Event-ID
  s.end();
  await settle();
  assert.equal(h.state, 'reconnecting');
  await clock.advance(1000);
  const again = fetch.calls.at(-1);
  assert.equal(again.url.pathname, '/sse', 'a transport that worked is kept');
  assert.equal(again.url.searchParams.get('since'), 'chat.lobby:6:e1');
  assert.equal(again.headers['Last-Event-ID'], 'chat.lobby:6:e1');
  h.close();
});

test('fallback order: websocket errors N times, then sse, then poll', async () => {
  const fetch = fakeFetch();
  const { h, clock, WS, events } = make({ fetch, transports: ['websocket', 'sse', 'poll'], fallbackAfter: 2 });
  h.subscribe('a', () => {});
  h.connect();
  const tried = [];
  h.on('state', (s) => { if (s.retryInMs === 0 && s.transport) tried.push(s.transport); });
  await settle();
  tried.push('websocket');
  WS.sockets[0].drop();
  await clock.advance(1000);
  WS.sockets[1].drop();
  await clock.advance(1000);
  assert.equal(WS.sockets.length, 2, 'two WebSocket attempts');
  assert.equal(fetch.calls.length, 1);
  fetch.calls[0].reject(new TypeError('fetch failed'));
  await clock.advance(2000);
  fetch.calls[1].reject(new TypeError('fetch failed'));
  await clock.advance(2000);
  const poll = fetch.calls[2];
  assert.equal(poll.url.pathname, '/poll');
  assert.deepEqual(tried, ['websocket', 'websocket', 'sse', 'sse', 'poll']);
  assert.ok(!events.some((e) => e[0] === 'connected'));
  h.close();
});

test('poll: learns positions, long-polls with since, dedupes, reports gaps', async () => {
  const fetch = fakeFetch();
  const { h, clock, events } = make({ fetch, transports: ['poll'] });
  const got = [];
  const sub = h.subscribe('a', (m) => got.push(m.offset));
  h.subscribe('b:x', () => {}, { since: { offset: 2, epoch: 'e2' } });
  h.connect();
  await settle();
  // a channel without a position first asks for it (no since: answered at once)
  let c = fetch.calls[0];
  assert.deepEqual(c.url.searchParams.getAll('channel'), ['a']);
  assert.equal(c.url.searchParams.get('since'), null);
  fetch.json(c, 200, { messages: [], position: 'a:3:e1', recovered: true });
  await settle();
  await sub.ready;
  assert.equal(h.transport, 'poll');
  c = fetch.calls[1];
  assert.deepEqual(c.url.searchParams.getAll('channel'), ['a', 'b:x']);
  assert.equal(c.url.searchParams.get('since'), 'a:3:e1,b:x:2:e2');
  assert.equal(c.url.searchParams.get('timeout'), '25');
  fetch.json(c, 200, { messages: [msg('a', 3), msg('a', 4)], position: 'a:4:e1,b:x:2:e2', recovered: true });
  await settle();
  assert.deepEqual(got, [4], 'offset 3 was already seen');
  c = fetch.calls[2];
  assert.equal(c.url.searchParams.get('since'), 'a:4:e1,b:x:2:e2');
  fetch.json(c, 200, { messages: [], position: 'a:4:e1,b:x:0:e9', recovered: false });
  await settle();
  const gap = events.filter((e) => e[0] === 'gap').at(-1)[1];
  assert.deepEqual(gap, { channel: 'b:x', since: { offset: 2, epoch: 'e2' }, offset: 0, epoch: 'e9' });
  assert.equal(fetch.calls[3].url.searchParams.get('since'), 'a:4:e1,b:x:0:e9');
  // a new subscription interrupts the long-poll and restarts it with the new set
  h.subscribe('c', () => {});
  await settle();
  assert.ok(fetch.calls[3].signal.aborted);
  assert.deepEqual(fetch.calls[4].url.searchParams.getAll('channel'), ['c']);
  h.close();
  await clock.advance(100000);
});

test('upgrade: on a fallback, WebSocket is probed and taken back when it works', async () => {
  const fetch = fakeFetch();
  const { h, clock, WS } = make({ fetch, transports: ['websocket', 'sse'], fallbackAfter: 1, upgradeAfter: 60000 });
  h.connect();
  await settle();
  WS.sockets[0].drop();
  await clock.advance(1000);
  // no channels: the SSE endpoint is probed (400 without a channel means it is there)
  fetch.json(fetch.calls[0], 400, { type: 'error', code: 'bad_request', message: 'channel is required' });
  await settle();
  assert.equal(h.transport, 'sse');
  await clock.advance(60000);
  assert.equal(WS.sockets.length, 2, 'a probe');
  WS.sockets[1].open();
  await settle();
  await clock.advance(1);
  assert.equal(WS.sockets.length, 3, 'switching: a real connection');
  WS.sockets[2].open();
  await settle();
  assert.equal(h.transport, 'websocket');
  assert.equal(h.state, 'connected');
  h.close();
});

test('SSE with EventSource (browsers): token and since in the URL, own reconnect', async () => {
  const sources = [];
  class FakeES {
    constructor(url) { this.url = new URL(url); this.listeners = {}; this.closed = false; sources.push(this); }
    addEventListener(type, fn) { (this.listeners[type] ||= []).push(fn); }
    close() { this.closed = true; }
    emit(type, data, lastEventId = '') {
      for (const fn of this.listeners[type] || []) fn({ data: JSON.stringify(data), lastEventId });
    }
  }
  const fetch = fakeFetch();
  const { h, clock, events } = make({
    WebSocket: undefined, EventSource: FakeES, fetch, token: 'T0K', transports: ['websocket', 'sse'],
  });
  const got = [];
  h.subscribe('a', (m) => got.push(m.offset));
  h.connect();
  await clock.advance(0);
  assert.equal(sources.length, 1, 'no WebSocket class: straight to SSE');
  let es = sources[0];
  assert.equal(es.url.pathname, '/sse');
  assert.deepEqual(es.url.searchParams.getAll('channel'), ['a']);
  assert.equal(es.url.searchParams.get('token'), 'T0K', 'EventSource cannot send headers');
  assert.equal(es.url.searchParams.get('since'), null);
  es.emit('subscribed', { type: 'subscribed', channels: [{ channel: 'a', offset: 2, epoch: 'e1', recovered: false }] });
  await settle();
  assert.equal(h.state, 'connected');
  assert.deepEqual(events.filter((e) => e[0] === 'gap'), [], 'no since: nothing to recover');
  es.emit('message', msg('a', 3));
  es.emit('message', msg('a', 3));
  assert.deepEqual(got, [3]);
  es.onerror({});
  assert.ok(es.closed, 'the browser does not reconnect on its own: we do, with our back-off');
  await clock.advance(1000);
  es = sources[1];
  assert.equal(es.url.searchParams.get('since'), 'a:3:e1');
  es.emit('subscribed', { type: 'subscribed', channels: [{ channel: 'a', offset: 5, epoch: 'e1', recovered: true }] });
  es.emit('message', msg('a', 4));
  assert.deepEqual(got, [3, 4]);
  // a second channel reopens the stream with both channels and the position
  h.subscribe('b', () => {});
  await clock.advance(0);
  assert.ok(es.closed);
  assert.deepEqual(sources[2].url.searchParams.getAll('channel'), ['a', 'b']);
  assert.equal(sources[2].url.searchParams.get('since'), 'a:4:e1');
  h.close();
  assert.ok(sources[2].closed);
});

test('options given as undefined keep their defaults; http URLs and fallback paths', () => {
  const h = new Herald('http://h:8/pubsub', { transports: undefined, reconnectDelay: { min: 100 }, sseUrl: '/events', WebSocket: null });
  assert.deepEqual(h.options.transports, ['websocket', 'sse', 'poll']);
  assert.deepEqual(h.options.reconnectDelay, { min: 100, max: 15000 });
  assert.equal(h.url, 'ws://h:8/pubsub');
  assert.equal(h.sseUrl, 'http://h:8/events');
  assert.equal(h.pollUrl, 'http://h:8/poll');
  assert.equal(h.state, 'closed');
  assert.equal(h.transport, null);
  assert.equal(h.latency, null);
});

test('fallback with the api option: history and presence over the HTTP API', async () => {
  const fetch = fakeFetch();
  const { h, clock } = make({
    fetch, WebSocket: undefined, transports: ['websocket', 'poll'], api: { url: '/api', headers: { Authorization: 'Bearer k' } },
  });
  h.connect();
  await clock.advance(0);
  fetch.json(fetch.calls[0], 400, { type: 'error', code: 'bad_request', message: 'channel is required' });
  await settle();
  assert.equal(h.transport, 'poll');
  const ph = h.history('orders/42', { limit: 5, since: { offset: 3, epoch: 'e1' } });
  await settle();
  let c = fetch.calls.at(-1);
  assert.equal(c.url.pathname, '/api/channels/orders%2F42/history');
  assert.equal(c.url.searchParams.get('limit'), '5');
  assert.equal(c.url.searchParams.get('since'), '3');
  assert.equal(c.url.searchParams.get('epoch'), 'e1');
  assert.equal(c.headers.Authorization, 'Bearer k');
  fetch.json(c, 200, { channel: 'orders/42', offset: 4, epoch: 'e1', messages: [msg('orders/42', 4)], recovered: true });
  assert.deepEqual(await ph, { messages: [msg('orders/42', 4)], offset: 4, epoch: 'e1', recovered: true });
  const pp = h.presence('room.1');
  await settle();
  c = fetch.calls.at(-1);
  assert.equal(c.url.pathname, '/api/channels/room.1/presence');
  fetch.json(c, 403, { error: 'not_allowed', message: 'presence is off' });
  await assert.rejects(pp, (e) => e.code === 'not_allowed');
  h.close();
});
