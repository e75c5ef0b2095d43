// STOMP frames written by hand over the `ws` package (docs/stomp.md): framing across and
// within WebSocket messages, NUL bodies, escaping per version, limits, every ERROR and
// the close that follows it, DISCONNECT, subprotocols and heart-beats. Every wait is
// bounded.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHerald, sleep } from '../helpers/herald.mjs';
import { rawStomp, encodeStomp, api, uid } from './stomp-helpers.mjs';

/** ERROR, then the close: asserts both and returns the ERROR frame. */
async function expectError(r, { message, codes, receipt } = {}) {
  const e = await r.error();
  if (message !== undefined) assert.equal(e.headers.message, message);
  else assert.ok(e.headers.message, `ERROR has a message header: ${JSON.stringify(e.headers)}`);
  if (receipt !== undefined) assert.equal(e.headers['receipt-id'], receipt);
  const closed = await r.closed();
  if (codes) assert.ok(codes.includes(closed.code), `close code ${closed.code}, expected one of ${codes}`);
  return e;
}

const MALFORMED = [1002];
const REFUSED = [1008];
const TOO_LARGE = [1009];

describe('STOMP raw frames', { timeout: 40000 }, () => {
  let srv;
  const open = [];
  const raw = async (opts) => { const r = await rawStomp(srv, opts); open.push(r); return r; };
  const connected = async (headers, opts) => { const r = await raw(opts); await r.connect(headers); return r; };

  before(async () => { srv = await startHerald(['--threads', '2']); });
  after(async () => {
    for (const r of open) r.close();
    if (srv) await srv.stop();
  });

  // ---------------------------------------------------------------- connecting

  describe('connecting', () => {
    test('a frame before CONNECT → ERROR, then close', async () => {
      const r = await raw();
      r.send('SEND', { destination: '/topic/x' }, 'hi');
      await expectError(r, { codes: [1002, 1008] });
    });

    test('STOMP works as CONNECT', async () => {
      const r = await raw();
      const f = await r.connect({}, { command: 'STOMP' });
      assert.equal(f.headers.version, '1.2');
    });

    test('version: the highest of accept-version (1.0,1.1 → 1.1)', async () => {
      const r = await raw();
      assert.equal((await r.connect({ 'accept-version': '1.0,1.1' })).headers.version, '1.1');
    });

    test('unsupported accept-version → ERROR with version:1.0,1.1,1.2, then close', async () => {
      const r = await raw();
      r.send('CONNECT', { 'accept-version': '2.0,3.1', host: 'h' });
      const e = await expectError(r, { codes: [1002, 1008] });
      assert.equal(e.headers.version, '1.0,1.1,1.2');
    });

    test('CONNECT header values are never unescaped; CONNECTED never escaped', async () => {
      const r = await raw();
      const f = await r.connect({ login: 'x\\cy' });
      assert.deepEqual(f.rawHeaders.find(([k]) => k === 'user-name'), ['user-name', 'x\\cy']);
    });

    test('subprotocols: v10.stomp,v12.stomp → v12.stomp; v11.stomp → v11.stomp; none → accepted without one', async () => {
      const a = await raw({ protocols: ['v10.stomp', 'v12.stomp'] });
      assert.equal(a.ws.protocol, 'v12.stomp');
      await a.connect();
      const b = await raw({ protocols: ['v11.stomp'] });
      assert.equal(b.ws.protocol, 'v11.stomp');
      const c = await raw({ protocols: [] });
      assert.equal(c.ws.protocol, '');
      assert.equal((await c.connect()).headers.version, '1.2');
    });

    test('DISCONNECT with receipt → RECEIPT, then close 1000', async () => {
      const r = await connected();
      r.send('DISCONNECT', { receipt: 'bye-1' });
      await r.receipt('bye-1');
      assert.equal((await r.closed()).code, 1000);
    });
  });

  // ---------------------------------------------------------------- malformed and refused

  describe('errors', () => {
    test('unknown command → ERROR, close 1002', async () => {
      const r = await connected();
      r.sendRaw('FROB\nx:1\n\n\0');
      await expectError(r, { codes: MALFORMED });
    });

    test('a header line without ":" → ERROR, close 1002', async () => {
      const r = await connected();
      r.sendRaw('SEND\ndestination:/topic/a\nnocolon\n\nx\0');
      await expectError(r, { codes: MALFORMED });
    });

    test('an undefined escape in 1.2 ("\\t") → ERROR, close 1002', async () => {
      const r = await connected();
      r.sendRaw('SEND\ndestination:/topic/a\\tb\n\nx\0');
      await expectError(r, { codes: MALFORMED });
    });

    test('"\\r" is not an escape in 1.1 → ERROR, close 1002', async () => {
      const r = await connected({ 'accept-version': '1.1' });
      r.sendRaw('SEND\ndestination:/queue/a\nx-v:a\\rb\n\nx\0');
      await expectError(r, { codes: MALFORMED });
    });

    test('a refused frame: ERROR "unknown destination" with receipt-id and a text/plain body, close 1008', async () => {
      const r = await connected();
      r.send('SEND', { destination: '/unknown/x', receipt: 'r-77' }, 'x');
      const e = await expectError(r, { message: 'unknown destination', receipt: 'r-77', codes: REFUSED });
      assert.match(e.headers['content-type'] || '', /^text\/plain/);
      assert.ok(e.body.length > 0, 'details in the body');
    });

    test('SUBSCRIBE without id in 1.2 → ERROR, then close', async () => {
      const r = await connected();
      r.send('SUBSCRIBE', { destination: '/topic/a', receipt: 'r-noid' });
      await expectError(r, { receipt: 'r-noid', codes: [1002, 1008] });
    });
  });

  // ---------------------------------------------------------------- framing

  describe('framing', () => {
    test('content-length bodies with NUL bytes arrive byte-identical (queue and topic)', async () => {
      const body = Buffer.from('a\0b\0\0c é\0', 'utf8');
      const q = `/queue/${uid('nul')}`;
      const t = `/topic/${uid('nul')}`;
      const consumer = await connected();
      await consumer.subscribe(q);
      await consumer.subscribe(t);
      const producer = await connected();
      producer.send('SEND', [['destination', q], ['content-length', String(body.length)], ['receipt', 'n1']], body);
      await producer.receipt('n1');
      producer.send('SEND', [['destination', t], ['content-length', String(body.length)], ['receipt', 'n2']], body);
      await producer.receipt('n2');
      const m1 = await consumer.next('MESSAGE');
      const m2 = await consumer.next('MESSAGE');
      assert.equal(m1.headers.destination, q);
      assert.deepEqual(m1.body, body);
      assert.equal(m1.headers['content-length'], String(body.length));
      assert.equal(m2.headers.destination, t);
      assert.deepEqual(m2.body, body);
      assert.equal(m2.headers['content-length'], String(body.length));
    });

    test('several frames (and EOL heart-beats, CRLF lines) in one WebSocket message', async () => {
      const r = await raw();
      const d = `/topic/${uid('multi')}`;
      r.sendRaw(Buffer.concat([
        encodeStomp('CONNECT', { 'accept-version': '1.2', host: 'h' }),
        Buffer.from('\n\r\n'),
        Buffer.from(`SUBSCRIBE\r\nid:s1\r\ndestination:${d}\r\nreceipt:r1\r\n\r\n\0`),
        encodeStomp('SEND', { destination: d, receipt: 'r2' }, 'first'),
        Buffer.from('\n'),
        encodeStomp('SEND', { destination: d }, 'second'),
      ]));
      const c = await r.next('CONNECTED');
      assert.equal(r.frames[0], c, 'CONNECTED comes first');
      await r.receipt('r1');
      const m1 = await r.next('MESSAGE');
      const m2 = await r.next('MESSAGE');
      await r.receipt('r2');
      assert.deepEqual([m1.text, m2.text], ['first', 'second']);
      const i1 = r.frames.findIndex((f) => f.command === 'RECEIPT' && f.headers['receipt-id'] === 'r1');
      assert.ok(i1 < r.frames.indexOf(m1), 'the SUBSCRIBE receipt comes before its first MESSAGE');
    });

    test('one frame split across 3 WebSocket messages (text, binary, text)', async () => {
      const r = await connected();
      const d = `/topic/${uid('split')}`;
      await r.subscribe(d);
      const f = encodeStomp('SEND', { destination: d, receipt: 'sp', 'x-pad': 'abcdefgh' }, 'split body');
      const cut1 = 3; // inside the command
      const cut2 = f.indexOf('x-pad') + 2; // inside a header name
      r.sendRaw(f.subarray(0, cut1));
      await sleep(50);
      r.sendRaw(f.subarray(cut1, cut2), { binary: true });
      await sleep(50);
      assert.deepEqual(r.queue, [], 'nothing before the frame is complete');
      r.sendRaw(f.subarray(cut2));
      await r.receipt('sp');
      assert.equal((await r.next('MESSAGE')).text, 'split body');
    });

    test('a repeated header: the first one counts', async () => {
      const r = await connected();
      const a = `/topic/${uid('first')}`;
      const b = `/topic/${uid('second')}`;
      await r.subscribe(a);
      await r.subscribe(b);
      r.send('SEND', [['destination', a], ['destination', b], ['receipt', 'rep']], 'to a');
      await r.receipt('rep');
      const m = await r.next('MESSAGE');
      assert.equal(m.headers.destination, a);
      assert.deepEqual((await r.quiet(200)).map((f) => f.command), []);
    });
  });

  // ---------------------------------------------------------------- escaping

  describe('escaping', () => {
    test('1.0 session (no accept-version): CONNECTED as in STOMP 1.0, without version and heart-beat', async () => {
      const r = await raw();
      const c = await r.connect({ 'accept-version': null });
      assert.equal(c.headers.version, undefined);
      assert.equal(c.headers['heart-beat'], undefined);
      assert.match(c.headers.session || '', /^s[0-9a-f]+$/);
      assert.match(c.headers.server || '', /^Herald\//);
    });

    test('1.0 session: header values are neither unescaped nor escaped', async () => {
      const ch = `orders:${uid('v10')}`;
      const r = await raw();
      await r.connect({ 'accept-version': null });
      r.version = '1.0'; // whatever CONNECTED said, parse this session's frames as 1.0
      r.send('SUBSCRIBE', { destination: `/topic/${ch}`, receipt: 'r10' }); // 1.0: id defaults to the destination
      await r.receipt('r10');
      assert.equal((await api(srv, 'POST', '/api/publish', { channel: ch, data: 'x' })).status, 200);
      const m = await r.next('MESSAGE');
      assert.deepEqual(m.rawHeaders.find(([k]) => k === 'destination'), ['destination', `/topic/${ch}`]);
      const q = `/queue/${uid('q10')}`;
      r.send('SUBSCRIBE', { destination: q, receipt: 'r10q' });
      await r.receipt('r10q');
      r.send('SEND', { destination: q, 'x-v': 'a\\b:c', receipt: 'r10s' }, 'y');
      await r.receipt('r10s');
      const mq = await r.next('MESSAGE');
      assert.deepEqual(mq.rawHeaders.find(([k]) => k === 'x-v'), ['x-v', 'a\\b:c']);
    });

    test('1.1: ":" in a MESSAGE destination is sent as \\c (subscribe to /topic/orders:1)', async () => {
      const ch = `orders:${uid('v11')}`;
      const r = await connected({ 'accept-version': '1.1' });
      r.send('SUBSCRIBE', { id: 's1', destination: `/topic/${ch.replace(':', '\\c')}`, receipt: 'r11' });
      await r.receipt('r11');
      assert.equal((await api(srv, 'POST', '/api/publish', { channel: ch, data: 'x' })).status, 200);
      const m = await r.next('MESSAGE');
      assert.deepEqual(m.rawHeaders.find(([k]) => k === 'destination'), ['destination', `/topic/${ch.replace(':', '\\c')}`]);
      assert.equal(m.headers.destination, `/topic/${ch}`);
    });

    test('1.1 and 1.2: custom header values round-trip with \\n \\c \\\\ (and \\r in 1.2)', async () => {
      for (const [v, value, escaped] of [
        ['1.1', 'a\nb\\c:d', 'a\\nb\\\\c\\cd'],
        ['1.2', 'a\nb\\c:d\re', 'a\\nb\\\\c\\cd\\re'],
      ]) {
        const r = await connected({ 'accept-version': v });
        const q = `/queue/${uid('esc')}`;
        await r.subscribe(q);
        r.send('SEND', { destination: q, 'x-v': escaped, receipt: 'e1' }, 'y');
        await r.receipt('e1');
        const m = await r.next('MESSAGE');
        assert.equal(m.headers['x-v'], value, `version ${v}`);
        assert.deepEqual(m.rawHeaders.find(([k]) => k === 'x-v'), ['x-v', escaped], `version ${v}`);
      }
    });
  });

  // ---------------------------------------------------------------- limits

  describe('limits', () => {
    test('15 KiB of headers pass; over 16 KiB → ERROR "headers too large", close 1009', async () => {
      const r = await connected();
      const d = `/topic/${uid('big')}`;
      r.send('SEND', { destination: d, 'x-big': 'a'.repeat(15 * 1024), receipt: 'ok15' }, 'x');
      await r.receipt('ok15');
      r.send('SEND', { destination: d, 'x-big': 'a'.repeat(17 * 1024) }, 'x');
      await expectError(r, { message: 'headers too large', codes: TOO_LARGE });
    });

    test('64 headers pass; 65 → ERROR "too many headers", close 1009', async () => {
      const r = await connected();
      const d = `/topic/${uid('many')}`;
      // n header lines in all: destination, n - 2 custom ones, receipt
      const hs = (n, receipt) => [['destination', d], ...Array.from({ length: n - 2 }, (_, i) => [`x-h${i}`, `${i}`]), ['receipt', receipt]];
      assert.equal(hs(64, 'x').length, 64);
      r.send('SEND', hs(64, 'ok64'), 'x');
      await r.receipt('ok64');
      r.send('SEND', hs(65, 'no65'), 'x');
      await expectError(r, { message: 'too many headers', codes: TOO_LARGE });
    });
  });

  describe('body limit (--max-message 64K)', () => {
    let big;
    before(async () => { big = await startHerald(['--max-message', '64K']); });
    after(async () => { if (big) await big.stop(); });

    /** Send a frame as three WebSocket messages, each well under 64 KiB. */
    function sendInThree(r, frame) {
      const n = Math.ceil(frame.length / 3);
      for (let i = 0; i < 3; i++) r.sendRaw(frame.subarray(i * n, (i + 1) * n), { binary: true });
    }

    test('a 60000-byte body passes; 70000 with content-length → ERROR "body too large", close 1009', async () => {
      const r = await rawStomp(big);
      open.push(r);
      await r.connect();
      const d = `/queue/${uid('body')}`;
      sendInThree(r, encodeStomp('SEND', { destination: d, 'content-length': '60000', receipt: 'b60' }, Buffer.alloc(60000, 0x61)));
      await r.receipt('b60');
      sendInThree(r, encodeStomp('SEND', { destination: d, 'content-length': '70000' }, Buffer.alloc(70000, 0x61)));
      await expectError(r, { message: 'body too large', codes: TOO_LARGE });
    });

    test('a 70000-byte body without content-length → ERROR "body too large", close 1009', async () => {
      const r = await rawStomp(big);
      open.push(r);
      await r.connect();
      sendInThree(r, encodeStomp('SEND', { destination: `/queue/${uid('body')}` }, Buffer.alloc(70000, 0x61)));
      await expectError(r, { message: 'body too large', codes: TOO_LARGE });
    });
  });
});

describe('STOMP heart-beats (--stomp-heartbeat 200,200 --stomp-heartbeat-grace 3)', { timeout: 20000 }, () => {
  let srv;
  const open = [];
  const raw = async () => { const r = await rawStomp(srv); open.push(r); return r; };

  before(async () => { srv = await startHerald(['--stomp-heartbeat', '200,200', '--stomp-heartbeat-grace', '3']); });
  after(async () => {
    for (const r of open) r.close();
    if (srv) await srv.stop();
  });

  test('client heart-beat:0,200 → CONNECTED heart-beat:200,200 and an EOL about every 200 ms', async () => {
    const r = await raw();
    const c = await r.connect({ 'heart-beat': '0,200' });
    assert.equal(c.headers['heart-beat'], '200,200');
    const t0 = Date.now();
    await sleep(1200);
    const n = r.heartbeats.filter((t) => t >= t0).length;
    assert.ok(n >= 3 && n <= 12, `${n} heart-beats in 1.2 s`);
    assert.equal(r.closeEvt, null);
  });

  test('client heart-beat:0,500 → an EOL every max(200, 500) ms', async () => {
    const r = await raw();
    await r.connect({ 'heart-beat': '0,500' });
    const t0 = Date.now();
    await sleep(1650);
    const n = r.heartbeats.filter((t) => t >= t0).length;
    assert.ok(n >= 2 && n <= 4, `${n} heart-beats in 1.65 s (every 200 ms would be about 8)`);
  });

  test('client heart-beat:0,0 → no heart-beats, and no timeout', async () => {
    const r = await raw();
    await r.connect({ 'heart-beat': '0,0' });
    await sleep(800);
    assert.equal(r.heartbeats.length, 0);
    assert.equal(r.closeEvt, null);
  });

  test('a silent client with heart-beat:200,0 → ERROR "heart-beat timeout" after about 3 periods, then close', async () => {
    const r = await raw();
    await r.connect({ 'heart-beat': '200,0' });
    const t0 = Date.now();
    const e = await r.error(3000);
    const dt = Date.now() - t0;
    assert.equal(e.headers.message, 'heart-beat timeout');
    assert.ok(dt >= 400, `timed out after only ${dt} ms (3 periods of 200 ms expected)`);
    await r.closed(2000);
    assert.equal(r.heartbeats.length, 0, 'the client asked for no heart-beats (cy = 0)');
  });

  test('a client sending "\\n" every 100 ms stays connected', async () => {
    const r = await raw();
    await r.connect({ 'heart-beat': '200,0' });
    const d = `/topic/${uid('hb')}`;
    const t = setInterval(() => { try { r.sendRaw('\n'); } catch { /* closed */ } }, 100);
    try {
      await sleep(1500);
      assert.equal(r.closeEvt, null, 'still open after 1.5 s');
      assert.deepEqual(r.queue.map((f) => f.command), [], 'no ERROR');
      await r.subscribe(d);
    } finally {
      clearInterval(t);
    }
  });
});
