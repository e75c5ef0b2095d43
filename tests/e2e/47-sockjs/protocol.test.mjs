// The SockJS server protocol on /stomp, spoken by hand (sockjs-protocol 0.3.3): /info and
// CORS, the origin policy, session URLs, xhr + xhr_send, xhr_streaming (prelude, the
// 128 KiB rotation) and eventsource framing, the WebSocket transports, unicode escaping,
// errors (404 unknown session, 500 broken JSON), a second receiver (2010), DISCONNECT,
// heartbeats and the session timeout ending the STOMP session (both shortened through
// the test-only HERALD_SOCKJS_* variables), tokens, --max-connections-per-ip,
// --sockjs off.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import WebSocket from 'ws';
import { startHerald, sleep } from '../helpers/herald.mjs';
import { api, uid } from '../40-stomp/stomp-helpers.mjs';
import { RawSession, StreamReader, base, sid, stompFrame, parseFrame } from './sockjs-helpers.mjs';

const CONNECT = stompFrame('CONNECT', { 'accept-version': '1.2', host: 'x' });

/** Opens a polling session and CONNECTs: the session, after the CONNECTED frame. */
async function connected(srv) {
  const s = new RawSession(srv);
  const o = await s.poll();
  assert.equal(o.text, 'o\n');
  assert.equal((await s.send([CONNECT])).status, 204);
  const m = await s.pollMessages();
  assert.match(m[0], /^CONNECTED\n/);
  return s;
}

async function subscribers(srv, channel) {
  const r = await api(srv, 'GET', '/api/channels');
  const c = (r.json?.channels ?? []).find((x) => x.channel === channel);
  return c ? c.subscribers : 0;
}

describe('SockJS protocol on /stomp', { timeout: 60000 }, () => {
  let srv;
  before(async () => { srv = await startHerald(['--threads', '2', '--allowed-origins', 'http://app.example']); });
  after(async () => {
    // A clean exit: no sanitizer report (ASan builds), no session left behind.
    if (srv) {
      assert.equal(await srv.stop(), 0, srv.stderr().slice(-3000));
      assert.doesNotMatch(srv.stderr(), /runtime error|Sanitizer/);
    }
  });

  test('GET /stomp/info: JSON with websocket, origins, cookie_needed, entropy; no-cache and CORS headers', async () => {
    const r = await fetch(`${base(srv)}/info`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /^application\/json/);
    assert.match(r.headers.get('cache-control'), /no-store/);
    assert.equal(r.headers.get('access-control-allow-origin'), '*');
    const j = await r.json();
    assert.equal(j.websocket, true);
    assert.deepEqual(j.origins, ['*:*']);
    assert.equal(j.cookie_needed, false);
    assert.equal(typeof j.entropy, 'number');
    const r2 = await fetch(`${base(srv)}/info`, { headers: { origin: 'http://app.example' } });
    assert.equal(r2.headers.get('access-control-allow-origin'), 'http://app.example');
    assert.equal(r2.headers.get('access-control-allow-credentials'), 'true');
    const pre = await fetch(`${base(srv)}/info`, { method: 'OPTIONS', headers: { origin: 'http://app.example' } });
    assert.equal(pre.status, 204);
    assert.match(pre.headers.get('access-control-allow-methods'), /GET/);
    assert.ok(Number(pre.headers.get('access-control-max-age')) > 0);
    // The origin policy of the WebSocket endpoints applies.
    const evil = await fetch(`${base(srv)}/info`, { headers: { origin: 'http://evil.example' } });
    assert.equal(evil.status, 403);
    assert.equal(evil.headers.get('access-control-allow-origin'), null);
    const r3 = await fetch(`${base(srv)}/000/${sid()}/xhr`, { method: 'POST', headers: { origin: 'http://evil.example' } });
    assert.equal(r3.status, 403);
  });

  test('a session opened from an allowed origin works; the Origin reaches the STOMP handshake', async () => {
    const s = new RawSession(srv);
    const r = await fetch(`${s.url}/xhr`, { method: 'POST', headers: { origin: 'http://app.example' } });
    assert.equal(await r.text(), 'o\n');
    assert.equal(r.headers.get('access-control-allow-origin'), 'http://app.example');
    assert.equal((await s.send([CONNECT])).status, 204);
    assert.match((await s.pollMessages())[0], /^CONNECTED/);
  });

  test('GET /stomp/ is the greeting; bad session URLs and unsupported transports are 404', async () => {
    const g = await fetch(`${base(srv)}/`);
    assert.equal(await g.text(), 'Welcome to SockJS!\n');
    for (const p of ['/a.b/c/xhr', '/000/a.b/xhr', '/000//xhr', '/000/x/jsonp', '/000/x/htmlfile', '/000/x/y/xhr']) {
      const r = await fetch(`${base(srv)}${p}`, { method: 'POST' });
      assert.equal(r.status, 404, p);
    }
    const ws = await fetch(`${base(srv)}/000/x/websocket`);
    assert.equal(ws.status, 400);
  });

  test('xhr: o, then xhr_send CONNECT (204) and the next poll carries CONNECTED in a[...]', async () => {
    const s = new RawSession(srv);
    const o = await s.poll();
    assert.equal(o.status, 200);
    assert.equal(o.text, 'o\n');
    assert.match(o.headers.get('content-type'), /^application\/javascript/);
    const r = await s.send([CONNECT]);
    assert.equal(r.status, 204);
    const m = await s.pollMessages();
    assert.equal(m.length, 1);
    assert.match(m[0], /^CONNECTED\nversion:1\.2\n/);
    assert.ok(m[0].endsWith('\0'));
  });

  test('xhr_send: unknown session 404, empty body 500 "Payload expected.", broken JSON 500 "Broken JSON encoding."', async () => {
    const unknown = await new RawSession(srv).send([CONNECT]);
    assert.equal(unknown.status, 404);
    const s = new RawSession(srv);
    await s.poll();
    const empty = await s.send('');
    assert.equal(empty.status, 500);
    assert.equal(empty.text, 'Payload expected.');
    const broken = await s.send('["a');
    assert.equal(broken.status, 500);
    assert.equal(broken.text, 'Broken JSON encoding.');
    const notStrings = await s.send('[1]');
    assert.equal(notStrings.status, 500);
    // The session is unharmed.
    assert.equal((await s.send([CONNECT])).status, 204);
    assert.match((await s.pollMessages())[0], /^CONNECTED/);
  });

  test('xhr_streaming: 2048 h prelude, o, messages as a[...] lines; a second receiver gets c[2010]', async () => {
    const id = sid();
    const url = `${base(srv)}/000/${id}`;
    const st = new StreamReader(url, 'xhr_streaming');
    const res = await st.ready;
    assert.match(res.headers.get('content-type'), /^application\/javascript/);
    assert.deepEqual(await st.next(), { type: 'o' });
    assert.equal(st.prelude, `${'h'.repeat(2048)}\n`);
    const s = new RawSession(srv, id);
    const second = await s.poll();
    assert.deepEqual(second.frame, { type: 'c', code: 2010, reason: 'Another connection still open' });
    const ch = uid('sjs');
    assert.equal((await s.send([CONNECT, stompFrame('SUBSCRIBE', { id: '0', destination: `/topic/${ch}`, receipt: 'r1' })])).status, 204);
    const got = [];
    while (got.length < 2) got.push(...(await st.next()).messages);
    assert.match(got[0], /^CONNECTED/);
    assert.match(got[1], /^RECEIPT\nreceipt-id:r1\n/);
    const p = await api(srv, 'POST', '/api/publish', { channel: ch, data: { n: 1 } });
    assert.equal(p.status, 200);
    const msg = (await st.next()).messages[0];
    assert.match(msg, new RegExp(`^MESSAGE\\n[^\\0]*destination:/topic/${ch}\\n`));
    assert.ok(msg.endsWith('{"n":1}\0'));
    st.close();
  });

  test('xhr_streaming ends its answer after ~128 KiB; the next one goes on where it stopped', async () => {
    const id = sid();
    const url = `${base(srv)}/000/${id}`;
    const st = new StreamReader(url, 'xhr_streaming');
    await st.ready;
    assert.deepEqual(await st.next(), { type: 'o' });
    const s = new RawSession(srv, id);
    const ch = uid('big');
    await s.send([CONNECT, stompFrame('SUBSCRIBE', { id: '0', destination: `/topic/${ch}`, receipt: 'r' })]);
    const seen = [];
    while (seen.length < 2) seen.push(...(await st.next()).messages);
    const big = 'x'.repeat(40000);
    for (let i = 0; i < 5; i++) {
      assert.equal((await api(srv, 'POST', '/api/publish', { channel: ch, data: `${i}${big}` })).status, 200);
    }
    const bodies = [];
    while (!st.ended || st.frames.length) {
      const f = await st.next().catch(() => null);
      if (!f) break;
      for (const m of f.messages) bodies.push(m.slice(m.indexOf('\n\n') + 2, -1));
    }
    assert.ok(await st.end(), 'the streaming answer did not end');
    assert.ok(bodies.length >= 3, `got ${bodies.length} messages on the first stream`); // >= 120 KB
    const st2 = new StreamReader(url, 'xhr_streaming');
    await st2.ready;
    while (bodies.length < 5) {
      const f = await st2.next();
      assert.equal(f.type, 'a'); // no second o
      for (const m of f.messages) bodies.push(m.slice(m.indexOf('\n\n') + 2, -1));
    }
    assert.deepEqual(bodies.map((b) => b[0]), ['0', '1', '2', '3', '4']);
    st2.close();
  });

  test('eventsource: text/event-stream, \\r\\n prelude, frames as data: lines', async () => {
    const id = sid();
    const st = new StreamReader(`${base(srv)}/000/${id}`, 'eventsource');
    const res = await st.ready;
    assert.match(res.headers.get('content-type'), /^text\/event-stream/);
    assert.deepEqual(await st.next(), { type: 'o' });
    assert.equal(st.prelude, '\r\n');
    const s = new RawSession(srv, id);
    const ch = uid('es');
    assert.equal((await s.send([CONNECT, stompFrame('SUBSCRIBE', { id: '0', destination: `/topic/${ch}`, receipt: 'r' })])).status, 204);
    const got = [];
    while (got.length < 2) got.push(...(await st.next()).messages);
    assert.match(got[0], /^CONNECTED/);
    // sockjs-client decodeURI()s each event's data: a '%' travels as %25.
    assert.equal((await api(srv, 'POST', '/api/publish', { channel: ch, data: '100% %41' })).status, 200);
    const m = (await st.next()).messages[0];
    assert.ok(m.endsWith('\n\n100% %41\0'), m);
    assert.ok(st.rawEvents.at(-1).includes('100%25 %2541'), st.rawEvents.at(-1));
    st.close();
  });

  test('unicode: U+2028, U+FEFF and astral characters travel as \\u escapes and decode back', async () => {
    const s = await connected(srv);
    const ch = uid('uni');
    await s.send([stompFrame('SUBSCRIBE', { id: '0', destination: `/topic/${ch}`, receipt: 'r' })]);
    assert.match((await s.pollMessages())[0], /^RECEIPT/);
    const text = 'a\u2028b\ufeffc😀é';
    assert.equal((await api(srv, 'POST', '/api/publish', { channel: ch, data: text })).status, 200);
    const r = await s.poll();
    assert.equal(r.frame.type, 'a');
    assert.ok(r.text.includes('\\u2028') && r.text.includes('\\ufeff') && r.text.includes('\\ud83d\\ude00'), r.text);
    assert.ok(!/[\u2028\ufeff]/.test(r.text));
    assert.ok(r.frame.messages[0].endsWith(`\n\n${text}\0`));
  });

  test('DISCONNECT ends the session: RECEIPT, then c[1000,"disconnect"]; xhr_send is then 404', async () => {
    const s = await connected(srv);
    await s.send([stompFrame('DISCONNECT', { receipt: 'bye' })]);
    assert.match((await s.pollMessages())[0], /^RECEIPT\nreceipt-id:bye/);
    const c = await s.poll();
    assert.equal(c.frame.type, 'c');
    assert.equal(c.frame.code, 1000);
    const again = await s.poll();
    assert.equal(again.frame.type, 'c'); // remembered for a while
    assert.equal((await s.send([CONNECT])).status, 404);
  });

  test('websocket transport: o, JSON arrays in, a[...] out; /stomp/websocket is plain STOMP', async () => {
    const ws = new WebSocket(`${srv.url}/stomp/000/${sid()}/websocket`);
    const frames = [];
    let wake = () => {};
    ws.on('message', (d) => { frames.push(parseFrame(d.toString())); wake(); });
    const next = async () => {
      const deadline = Date.now() + 5000;
      while (!frames.length && Date.now() < deadline) await new Promise((r) => { wake = r; setTimeout(r, 100); });
      assert.ok(frames.length, 'no frame');
      return frames.shift();
    };
    await new Promise((r, j) => { ws.once('open', r); ws.once('error', j); });
    assert.deepEqual(await next(), { type: 'o' });
    ws.send(JSON.stringify([CONNECT]));
    assert.match((await next()).messages[0], /^CONNECTED/);
    ws.send(JSON.stringify(stompFrame('DISCONNECT', { receipt: 'z' }))); // a lone string is accepted too
    assert.match((await next()).messages[0], /^RECEIPT/);
    const c = await next();
    assert.equal(c.type, 'c');
    ws.close();

    const plain = new WebSocket(`${srv.url}/stomp/websocket`, ['v12.stomp']);
    const got = await new Promise((resolve, reject) => {
      plain.once('open', () => plain.send(CONNECT));
      plain.once('message', (d) => resolve(d.toString()));
      plain.once('error', reject);
      setTimeout(() => reject(new Error('no CONNECTED on /stomp/websocket')), 5000);
    });
    assert.match(got, /^CONNECTED\n/);
    plain.close();
  });
});

describe('heartbeat and session timeout (shortened for the test)', { timeout: 30000 }, () => {
  let srv;
  before(async () => {
    srv = await startHerald(['--threads', '2'], { env: { HERALD_SOCKJS_HEARTBEAT_MS: '400', HERALD_SOCKJS_DISCONNECT_MS: '1500' } });
  });
  after(async () => { if (srv) assert.equal(await srv.stop(), 0, srv.stderr().slice(-3000)); });

  test('an idle poll is answered with h after the heartbeat period; a stream gets h frames', async () => {
    const s = await connected(srv);
    const t0 = Date.now();
    const h = await s.poll();
    assert.equal(h.text, 'h\n');
    assert.ok(Date.now() - t0 >= 300, `h after ${Date.now() - t0} ms`);
    const st = new StreamReader(`${base(srv)}/000/${sid()}`, 'xhr_streaming');
    await st.ready;
    assert.deepEqual(await st.next(), { type: 'o' });
    assert.deepEqual(await st.next(2000), { type: 'h' });
    assert.deepEqual(await st.next(2000), { type: 'h' });
    st.close();
  });

  test('a session with no receiving request for the disconnect delay is closed and its STOMP subscriptions end', async () => {
    const s = await connected(srv);
    const ch = uid('gone');
    await s.send([stompFrame('SUBSCRIBE', { id: '0', destination: `/topic/${ch}`, receipt: 'r' })]);
    assert.match((await s.pollMessages())[0], /^RECEIPT/);
    assert.equal(await subscribers(srv, ch), 1);
    // Nobody polls now.
    const deadline = Date.now() + 8000;
    let n = 1;
    while (Date.now() < deadline && (n = await subscribers(srv, ch)) !== 0) await sleep(250);
    assert.equal(n, 0, 'the STOMP subscription outlived the SockJS session');
    assert.equal((await s.send([CONNECT])).status, 404);
  });

});

describe('--auth required', { timeout: 20000 }, () => {
  const SECRET = 'e2e-secret-0123456789-abcdefghij';
  const b64u = (b) => Buffer.from(b).toString('base64url');
  const jwt = (claims) => {
    const input = `${b64u(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${b64u(JSON.stringify(claims))}`;
    return `${input}.${b64u(crypto.createHmac('sha256', SECRET).update(input).digest())}`;
  };

  test('?token= in the SockJS URL names the user; without it CONNECT must bring one', async () => {
    const srv = await startHerald(['--auth', 'required', '--jwt-secret', SECRET]);
    try {
      const s = new RawSession(srv, sid(), `?token=${jwt({ sub: 'alice' })}`);
      assert.equal((await s.poll()).text, 'o\n');
      await s.send([CONNECT]);
      assert.match((await s.pollMessages())[0], /^CONNECTED\n[^\0]*user-name:alice\n/);

      const anon = new RawSession(srv);
      assert.equal((await anon.poll()).text, 'o\n');
      await anon.send([CONNECT]);
      const m = await anon.pollMessages();
      assert.match(m[0], /^ERROR\n[^\0]*message:authentication required/);
      const c = await anon.poll();
      assert.equal(c.frame.type, 'c');
      assert.equal(c.frame.code, 1008);

      const bearer = new RawSession(srv);
      await bearer.poll();
      await bearer.send([stompFrame('CONNECT', { 'accept-version': '1.2', passcode: jwt({ sub: 'bob' }) })]);
      assert.match((await bearer.pollMessages())[0], /user-name:bob\n/);

      // The websocket transport: the token of its URL reaches the STOMP session too, and
      // without one the handshake is accepted (CONNECT may bring it, as on /stomp).
      for (const [query, want] of [[`?token=${jwt({ sub: 'carol' })}`, /^CONNECTED\n[^\0]*user-name:carol\n/], ['', /^ERROR\n[^\0]*message:authentication required/]]) {
        const ws = new WebSocket(`${srv.url}/stomp/000/${sid()}/websocket${query}`);
        const frames = [];
        const got = await new Promise((resolve, reject) => {
          ws.on('message', (d) => {
            frames.push(parseFrame(d.toString()));
            if (frames.length === 1) ws.send(JSON.stringify([CONNECT]));
            if (frames.length === 2) resolve(frames[1]);
          });
          ws.once('error', reject);
          ws.once('unexpected-response', (req, res) => reject(new Error(`handshake ${res.statusCode}`)));
          setTimeout(() => reject(new Error(`no answer to CONNECT: ${JSON.stringify(frames)}`)), 5000);
        });
        assert.equal(frames[0].type, 'o');
        assert.match(got.messages[0], want);
        ws.close();
      }
    } finally {
      await srv.stop();
    }
  });
});

describe('--max-connections-per-ip', { timeout: 20000 }, () => {
  test('SockJS sessions count under the client\'s address, a SockJS WebSocket once: the third of 2 gets c[1013]', async () => {
    const srv = await startHerald(['--max-connections-per-ip', '2']);
    try {
      const a = await new RawSession(srv).poll();
      assert.equal(a.text, 'o\n');
      // The WebSocket transport takes one slot (its handshake), not two.
      const ws = new WebSocket(`${srv.url}/stomp/000/${sid()}/websocket`);
      const first = await new Promise((resolve, reject) => {
        ws.once('message', (d) => resolve(d.toString()));
        ws.once('unexpected-response', (req, res) => reject(new Error(`handshake ${res.statusCode}`)));
        ws.once('error', reject);
        setTimeout(() => reject(new Error('no frame')), 5000);
      });
      assert.equal(first, 'o');
      const c = await new RawSession(srv).poll();
      assert.deepEqual(c.frame, { type: 'c', code: 1013, reason: 'too many connections from this address' });
      ws.close();
    } finally {
      await srv.stop();
    }
  });
});

describe('--sockjs off', { timeout: 20000 }, () => {
  test('no SockJS endpoints: /stomp/info is 404, /stomp itself still works', async () => {
    const srv = await startHerald(['--sockjs', 'off']);
    try {
      const r = await fetch(`${base(srv)}/info`);
      assert.equal(r.status, 404);
      const ws = new WebSocket(`${srv.url}/stomp`, ['v12.stomp']);
      const got = await new Promise((resolve, reject) => {
        ws.once('open', () => ws.send(CONNECT));
        ws.once('message', (d) => resolve(d.toString()));
        ws.once('error', reject);
        setTimeout(() => reject(new Error('timeout')), 5000);
      });
      assert.match(got, /^CONNECTED/);
      ws.close();
    } finally {
      await srv.stop();
    }
  });
});
