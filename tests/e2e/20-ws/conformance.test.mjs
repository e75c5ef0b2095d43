// Our own protocol conformance suite (RFC 6455 / RFC 7692), organised by the areas the
// Autobahn|Testsuite covers. Every case is written from the RFCs for herald's spec.
// Cases are data: {id, name, steps, expect}; each becomes one test().
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import {
  startHerald, rawWs, OP, encodeFrame, encodeHeader, closePayload, sleep,
  patternBytes, patternText, deflateMessage, inflateMessage, StreamCodec, parseExtensions, toBuf,
} from '../helpers/herald.mjs';

const T = OP.TEXT;
const B = OP.BINARY;
const OPNAME = { 0: 'cont', 1: 'text', 2: 'binary', 8: 'close', 9: 'ping', 10: 'pong' };

// ---------------------------------------------------------------------------------------
// Case runner.
//
// steps: array of
//   {frame: {...encodeFrame opts, split?, delay?}}   one frame in its own write(s)
//   {frames: [opts, ...]}                           several frames in ONE write
//   {raw: Buffer}
//   {sleep: ms}
// expect:
//   events: [[opName, payload]] messages (reassembled) and control frames in arrival order
//   close:  a close code, 'empty' for an empty close frame, or undefined = connection stays
//           open (checked by echoing a probe afterwards).

const f = (opcode, payload = '', o = {}) => ({ frame: { opcode, payload, ...o } });

function describePayload(op, buf) {
  if (buf.length > 64) return `${buf.length}B sha1:${crypto.createHash('sha1').update(buf).digest('hex').slice(0, 12)}`;
  if (op === 'text') return JSON.stringify(buf.toString('utf8'));
  return `hex:${buf.toString('hex')}`;
}

function framesToEvents(frames) {
  const events = [];
  let cur = null;
  for (const fr of frames) {
    if (fr.opcode >= 8) { events.push([OPNAME[fr.opcode] ?? `op${fr.opcode}`, describePayload('bin', fr.payload)]); continue; }
    if (fr.opcode !== OP.CONT) {
      if (cur) events.push(['UNFINISHED', OPNAME[cur.op]]);
      cur = { op: fr.opcode, parts: [], compressed: fr.rsv1 };
    } else if (!cur) { events.push(['STRAY-CONTINUATION', describePayload('bin', fr.payload)]); continue; }
    cur.parts.push(fr.payload);
    if (fr.fin) {
      const name = OPNAME[cur.op] ?? `op${cur.op}`;
      // a message the server compressed (RSV1 on its first frame; the server negotiates
      // no context takeover, so each message inflates on its own)
      const body = cur.compressed ? inflateMessage(Buffer.concat(cur.parts)) : Buffer.concat(cur.parts);
      events.push([name, describePayload(name, body)]);
      cur = null;
    }
  }
  if (cur) events.push(['UNFINISHED', OPNAME[cur.op]]);
  return events;
}

function expectedEvents(list) {
  return list.map(([op, payload]) => {
    const b = toBuf(payload);
    return [op, describePayload(op === 'text' ? 'text' : 'bin', b)];
  });
}

async function sendSteps(c, steps) {
  for (const s of steps) {
    if (s.sleep) await sleep(s.sleep);
    else if (s.raw) await c.sendRaw(s.raw);
    else if (s.frames) await c.sendRaw(Buffer.concat(s.frames.map((x) => encodeFrame(x))));
    else if (s.frame) {
      const { split, delay, truncate, ...fo } = s.frame;
      await c.sendRaw(encodeFrame(fo), { split, delay, truncate });
    }
  }
}

const sentClose = (steps) => steps.some((s) => (s.frame && s.frame.opcode === OP.CLOSE) ||
  (s.frames && s.frames.some((x) => x.opcode === OP.CLOSE)));

async function runCase(port, { steps, expect = {}, timeoutMs = 5000, path = '/ws' }, { deflate = false } = {}) {
  const headers = deflate ? { 'Sec-WebSocket-Extensions': 'permessage-deflate; client_max_window_bits' } : {};
  const c = await rawWs(port, { path, headers });
  if (deflate) assert.match(c.response.get('sec-websocket-extensions') || '', /permessage-deflate/, 'permessage-deflate not negotiated');
  try {
    await sendSteps(c, steps);
    const want = expectedEvents(expect.events || []);
    if (expect.close === undefined) {
      // Read the expected number of events first, then send a probe and read up to its echo:
      // anything else arriving in between is an unexpected extra event.
      const probe = `probe-${crypto.randomBytes(4).toString('hex')}`;
      const got = [];
      const frames = [];
      const deadline = Date.now() + timeoutMs;
      const complete = () => framesToEvents(frames).filter((e) => e[0] !== 'UNFINISHED').length;
      while (complete() < want.length) {
        const fr = await c.readFrame({ timeoutMs: Math.max(1, deadline - Date.now()) });
        assert.ok(fr, `connection closed unexpectedly after ${JSON.stringify(framesToEvents(frames))}`);
        if (fr.opcode === OP.CLOSE) assert.fail(`unexpected close frame code ${fr.code} after ${JSON.stringify(framesToEvents(frames))}`);
        frames.push(fr);
      }
      await c.sendText(probe);
      for (;;) {
        const fr = await c.readFrame({ timeoutMs: Math.max(1, deadline - Date.now()) });
        assert.ok(fr, `connection closed unexpectedly after ${JSON.stringify(framesToEvents(frames))}`);
        if (fr.opcode === OP.CLOSE) assert.fail(`unexpected close frame code ${fr.code} after ${JSON.stringify(framesToEvents(frames))}`);
        frames.push(fr);
        const ev = framesToEvents(frames);
        const last = ev[ev.length - 1];
        if (last && last[0] === 'text' && last[1] === JSON.stringify(probe)) {
          got.push(...ev.slice(0, -1));
          break;
        }
      }
      assert.deepEqual(got, want);
    } else {
      const r = await c.readUntilClose({ timeoutMs, reply: !sentClose(steps) });
      assert.deepEqual(framesToEvents(r.frames), want, 'frames before the close frame');
      assert.ok(r.close, `expected a close frame (${expect.close}), but the TCP connection ended without one`);
      if (expect.close === 'empty') {
        assert.equal(r.close.payload.length, 0, `expected an empty close frame, got code ${r.close.code}`);
      } else {
        assert.equal(r.close.code, expect.close, `close code (reason: ${JSON.stringify(r.close.reason)})`);
      }
      assert.ok(r.close.payload.length <= 125, 'close frame payload over 125 bytes');
      assert.ok(r.tcpClosed, 'server did not close the TCP connection after the close frame');
    }
  } finally {
    c.destroy();
  }
}

function defineCases(getPort, cases, opts = {}) {
  for (const cs of cases) {
    test(`${cs.id} ${cs.name}`, { timeout: cs.testTimeout || 30000 }, () => runCase(getPort(), cs, opts));
  }
}

// ---------------------------------------------------------------------------------------
// Case tables.

const LENGTHS = [0, 125, 126, 127, 128, 65535, 65536];

function framingCases() {
  const cases = [];
  let n = 1;
  for (const [op, name] of [[T, 'text'], [B, 'binary']]) {
    for (const len of LENGTHS) {
      const payload = op === T ? patternText(len, len + 1) : patternBytes(len, len + 3);
      cases.push({ id: `1.${n++}`, name: `${name} payload length ${len} echoed`, steps: [f(op, payload)], expect: { events: [[name, payload]] } });
    }
  }
  const big = patternBytes(65536, 9);
  cases.push({ id: `1.${n++}`, name: 'binary 65536 written in 997-byte chunks echoed', steps: [f(B, big, { split: 997 })], expect: { events: [['binary', big]] } });
  cases.push({ id: `1.${n++}`, name: 'text frame header written byte by byte echoed', steps: [f(T, 'slow header', { split: 1, delay: 5 })], expect: { events: [['text', 'slow header']] } });
  cases.push({ id: `1.${n++}`, name: 'several messages in one write echoed in order', steps: [{ frames: [{ opcode: T, payload: 'a' }, { opcode: B, payload: Buffer.from([0]) }, { opcode: T, payload: 'c' }] }], expect: { events: [['text', 'a'], ['binary', Buffer.from([0])], ['text', 'c']] } });
  cases.push({ id: `1.${n++}`, name: 'unmasked text frame -> 1002', steps: [f(T, 'unmasked', { mask: false })], expect: { close: 1002 } });
  cases.push({ id: `1.${n++}`, name: 'unmasked frame after a good one -> echo then 1002', steps: [f(T, 'good'), f(T, 'unmasked', { mask: false })], expect: { events: [['text', 'good']], close: 1002 } });
  return cases;
}

function pingCases() {
  const bin125 = Buffer.from(Array.from({ length: 125 }, (_, i) => (i * 7 + 3) & 0xff));
  const txt125 = 'p'.repeat(125);
  const tenPings = Array.from({ length: 10 }, (_, i) => `ping-${i}`);
  return [
    { id: '2.1', name: 'ping without payload -> empty pong', steps: [f(OP.PING)], expect: { events: [['pong', '']] } },
    { id: '2.2', name: 'ping with 125-byte text payload -> same pong', steps: [f(OP.PING, txt125)], expect: { events: [['pong', txt125]] } },
    { id: '2.3', name: 'ping with 125-byte binary payload -> same pong', steps: [f(OP.PING, bin125)], expect: { events: [['pong', bin125]] } },
    { id: '2.4', name: 'ping with 126-byte payload -> 1002', steps: [f(OP.PING, 'x'.repeat(126))], expect: { close: 1002 } },
    { id: '2.5', name: 'unsolicited empty pong ignored', steps: [f(OP.PONG)], expect: { events: [] } },
    { id: '2.6', name: 'unsolicited pong with payload ignored', steps: [f(OP.PONG, 'unsolicited')], expect: { events: [] } },
    { id: '2.7', name: '10 pings in a row -> 10 pongs in order', steps: [{ frames: tenPings.map((p) => ({ opcode: OP.PING, payload: p })) }], expect: { events: tenPings.map((p) => ['pong', p]) } },
    { id: '2.8', name: 'ping written byte by byte -> pong', steps: [f(OP.PING, 'bytewise', { split: 1, delay: 5 })], expect: { events: [['pong', 'bytewise']] } },
    { id: '2.9', name: 'ping between two messages keeps order', steps: [{ frames: [{ opcode: T, payload: 'one' }, { opcode: OP.PING, payload: 'mid' }, { opcode: T, payload: 'two' }] }], expect: { events: [['text', 'one'], ['pong', 'mid'], ['text', 'two']] } },
    { id: '2.10', name: 'unmasked ping -> 1002', steps: [f(OP.PING, 'x', { mask: false })], expect: { close: 1002 } },
    { id: '2.11', name: 'ping with 126 payload after a message -> echo then 1002', steps: [f(T, 'first'), f(OP.PING, Buffer.alloc(126))], expect: { events: [['text', 'first']], close: 1002 } },
  ];
}

function rsvCases() {
  const cases = [];
  let n = 1;
  for (const [op, name] of [[T, 'text'], [B, 'binary'], [OP.PING, 'ping'], [OP.CLOSE, 'close']]) {
    for (let rsv = 1; rsv <= 7; rsv++) {
      const payload = op === OP.CLOSE ? closePayload(1000) : 'rsv';
      cases.push({
        id: `3.${n++}`,
        name: `RSV=${rsv.toString(2).padStart(3, '0')} on ${name} (no extension) -> 1002 after earlier echo`,
        steps: [f(T, 'before'), { sleep: 10 }, f(op, payload, { rsv })],
        expect: { events: [['text', 'before']], close: 1002 },
      });
    }
  }
  cases.push({ id: `3.${n++}`, name: 'RSV1 text in the same write right after a good message -> echo then 1002', steps: [{ frames: [{ opcode: T, payload: 'x1' }, { opcode: T, payload: 'x2', rsv: 4 }] }], expect: { events: [['text', 'x1']], close: 1002 } });
  return cases;
}

function opcodeCases() {
  const cases = [];
  let n = 1;
  for (const op of [3, 4, 5, 6, 7, 11, 12, 13, 14, 15]) {
    cases.push({ id: `4.${n++}`, name: `reserved opcode ${op} -> 1002 after earlier echo`, steps: [f(T, 'before'), f(op, 'reserved')], expect: { events: [['text', 'before']], close: 1002 } });
  }
  for (const op of [3, 11]) {
    cases.push({ id: `4.${n++}`, name: `reserved opcode ${op}, empty payload, fin=0 -> 1002`, steps: [f(op, '', { fin: false })], expect: { close: 1002 } });
  }
  return cases;
}

function fragmentationCases() {
  const big = patternBytes(1000, 5);
  const parts100 = Array.from({ length: 100 }, (_, i) => big.subarray(i * 10, i * 10 + 10));
  const frag = (op, pieces) => pieces.map((p, i) => ({ opcode: i === 0 ? op : OP.CONT, payload: p, fin: i === pieces.length - 1 }));
  const text10 = ['Hel', 'lo', ', ', 'fra', 'gme', 'nted', ' ', 'wor', 'l', 'd!'];
  return [
    { id: '5.1', name: 'text in 2 fragments echoed as one message', steps: [{ frames: frag(T, ['frag', 'mented']) }], expect: { events: [['text', 'fragmented']] } },
    { id: '5.2', name: 'binary in 2 fragments echoed as one message', steps: [{ frames: frag(B, [Buffer.from([1, 2]), Buffer.from([3])]) }], expect: { events: [['binary', Buffer.from([1, 2, 3])]] } },
    { id: '5.3', name: 'text in 10 uneven fragments', steps: [{ frames: frag(T, text10) }], expect: { events: [['text', text10.join('')]] } },
    { id: '5.4', name: 'binary 1000 bytes in 100 fragments', steps: [{ frames: frag(B, parts100) }], expect: { events: [['binary', big]] } },
    { id: '5.5', name: 'empty first, middle and last fragments', steps: [{ frames: frag(T, ['', 'a', '', 'b', '']) }], expect: { events: [['text', 'ab']] } },
    { id: '5.6', name: 'all fragments empty -> empty text echoed', steps: [{ frames: frag(T, ['', '', '']) }], expect: { events: [['text', '']] } },
    { id: '5.7', name: 'ping interleaved in a fragmented text -> pong before echo', steps: [{ frames: [{ opcode: T, payload: 'he', fin: false }, { opcode: OP.PING, payload: 'mid' }, { opcode: OP.CONT, payload: 'llo' }] }], expect: { events: [['pong', 'mid'], ['text', 'hello']] } },
    { id: '5.8', name: 'pong interleaved in a fragmented binary is ignored', steps: [{ frames: [{ opcode: B, payload: 'ab', fin: false }, { opcode: OP.PONG, payload: 'x' }, { opcode: OP.CONT, payload: 'cd' }] }], expect: { events: [['binary', 'abcd']] } },
    { id: '5.9', name: 'ping, pong and ping interleaved between 4 fragments', steps: [{ frames: [{ opcode: T, payload: '1', fin: false }, { opcode: OP.PING, payload: 'p1' }, { opcode: OP.CONT, payload: '2', fin: false }, { opcode: OP.PONG, payload: 'q' }, { opcode: OP.CONT, payload: '3', fin: false }, { opcode: OP.PING, payload: 'p2' }, { opcode: OP.CONT, payload: '4' }] }], expect: { events: [['pong', 'p1'], ['pong', 'p2'], ['text', '1234']] } },
    { id: '5.10', name: 'fragments in separate writes with 50 ms pauses', steps: [f(T, 'slow ', { fin: false }), { sleep: 50 }, f(OP.CONT, 'frag', { fin: false }), { sleep: 50 }, f(OP.PING, 'between'), { sleep: 50 }, f(OP.CONT, 'ments')], expect: { events: [['pong', 'between'], ['text', 'slow fragments']] } },
    { id: '5.11', name: 'each fragment itself written in 1-byte chunks', steps: [f(B, 'xy', { fin: false, split: 1, delay: 2 }), f(OP.CONT, 'zw', { split: 1, delay: 2 })], expect: { events: [['binary', 'xyzw']] } },
    { id: '5.12', name: 'continuation without a start (fin=1) -> 1002', steps: [f(OP.CONT, 'orphan')], expect: { close: 1002 } },
    { id: '5.13', name: 'continuation without a start (fin=0) -> 1002', steps: [f(OP.CONT, 'orphan', { fin: false })], expect: { close: 1002 } },
    { id: '5.14', name: 'continuation after a completed message -> echo then 1002', steps: [f(T, 'done'), f(OP.CONT, 'late')], expect: { events: [['text', 'done']], close: 1002 } },
    { id: '5.15', name: 'fragmented ping -> 1002', steps: [f(OP.PING, 'fr', { fin: false }), f(OP.CONT, 'ag')], expect: { close: 1002 } },
    { id: '5.16', name: 'fragmented pong -> 1002', steps: [f(OP.PONG, 'fr', { fin: false }), f(OP.CONT, 'ag')], expect: { close: 1002 } },
    { id: '5.17', name: 'fragmented close -> 1002', steps: [f(OP.CLOSE, closePayload(1000), { fin: false })], expect: { close: 1002 } },
    { id: '5.18', name: 'new text frame while a text message is fragmented -> 1002', steps: [f(T, 'start', { fin: false }), f(T, 'intruder')], expect: { close: 1002 } },
    { id: '5.19', name: 'new binary frame while a text message is fragmented -> 1002', steps: [f(T, 'start', { fin: false }), f(B, 'intruder')], expect: { close: 1002 } },
    { id: '5.20', name: 'new text fin=0 while a binary message is fragmented -> 1002', steps: [f(B, 'start', { fin: false }), f(T, 'intruder', { fin: false })], expect: { close: 1002 } },
    { id: '5.21', name: 'message before a fragmentation error is still echoed', steps: [f(T, 'ok-first'), f(T, 'start', { fin: false }), f(B, 'intruder')], expect: { events: [['text', 'ok-first']], close: 1002 } },
    { id: '5.22', name: 'unfinished fragmented message then close 1000 -> close 1000, nothing echoed', steps: [f(T, 'never finished', { fin: false }), f(OP.CLOSE, closePayload(1000))], expect: { close: 1000 } },
  ];
}

// UTF-8 test material.
const VALID_UTF8 = [
  ['ASCII', Buffer.from('Hello, world')],
  ['Greek kosme', Buffer.from('κόσμε')],
  ['mixed Latin-1', Buffer.from('Hello-µ@ßöäüàá-UTF-8!!')],
  ['U+0080 (first 2-byte)', Buffer.from([0xc2, 0x80])],
  ['U+07FF (last 2-byte)', Buffer.from([0xdf, 0xbf])],
  ['U+0800 (first 3-byte)', Buffer.from([0xe0, 0xa0, 0x80])],
  ['U+D7FF (just below surrogates)', Buffer.from([0xed, 0x9f, 0xbf])],
  ['U+E000 (just above surrogates)', Buffer.from([0xee, 0x80, 0x80])],
  ['U+FFFD', Buffer.from([0xef, 0xbf, 0xbd])],
  ['U+FFFE and U+FFFF non-characters', Buffer.from([0xef, 0xbf, 0xbe, 0xef, 0xbf, 0xbf])],
  ['U+10000 (first 4-byte)', Buffer.from([0xf0, 0x90, 0x80, 0x80])],
  ['U+10FFFF (last code point)', Buffer.from([0xf4, 0x8f, 0xbf, 0xbf])],
  ['emoji and CJK', Buffer.from('😀 你好 🎉 مرحبا')],
  ['NUL bytes', Buffer.from([0x61, 0x00, 0x62, 0x00])],
];

const INVALID_UTF8 = [
  ['lone continuation 0x80', [0x80]],
  ['lone continuation 0xBF inside ASCII', [0x61, 0xbf, 0x62]],
  ['0xFE byte', [0x61, 0xfe]],
  ['0xFF byte', [0xff]],
  ['overlong 2-byte C0 80', [0xc0, 0x80]],
  ['overlong 2-byte C1 BF', [0xc1, 0xbf]],
  ['overlong 3-byte E0 80 80', [0xe0, 0x80, 0x80]],
  ['overlong 3-byte E0 9F BF', [0xe0, 0x9f, 0xbf]],
  ['overlong 4-byte F0 80 80 80', [0xf0, 0x80, 0x80, 0x80]],
  ['overlong 4-byte F0 8F BF BF', [0xf0, 0x8f, 0xbf, 0xbf]],
  ['surrogate U+D800', [0xed, 0xa0, 0x80]],
  ['surrogate U+DBFF', [0xed, 0xaf, 0xbf]],
  ['surrogate U+DFFF', [0xed, 0xbf, 0xbf]],
  ['surrogate pair D800 DC00 encoded as CESU', [0xed, 0xa0, 0x80, 0xed, 0xb0, 0x80]],
  ['above U+10FFFF: F4 90 80 80', [0xf4, 0x90, 0x80, 0x80]],
  ['F5 lead byte', [0xf5, 0x80, 0x80, 0x80]],
  ['F7 BF BF BF', [0xf7, 0xbf, 0xbf, 0xbf]],
  ['5-byte sequence F8 88 80 80 80', [0xf8, 0x88, 0x80, 0x80, 0x80]],
  ['6-byte sequence FC 84 80 80 80 80', [0xfc, 0x84, 0x80, 0x80, 0x80, 0x80]],
  ['2-byte lead followed by ASCII', [0xce, 0x41]],
  ['3-byte lead then one continuation then ASCII', [0xe2, 0x82, 0x41]],
  ['4-byte lead then 2 continuations then ASCII', [0xf0, 0x9f, 0x98, 0x41]],
  ['truncated 2-byte at end of message', [0x61, 0xce]],
  ['truncated 3-byte at end of message', [0x61, 0xe2, 0x82]],
  ['truncated 4-byte at end of message', [0x61, 0xf0, 0x9f, 0x98]],
  ['continuation byte after complete 2-byte', [0xce, 0xba, 0x80]],
];

function utf8Cases() {
  const cases = [];
  let n = 1;
  for (const [name, bytes] of VALID_UTF8) {
    cases.push({ id: `6.${n++}`, name: `valid ${name} echoed`, steps: [f(T, bytes)], expect: { events: [['text', bytes]] } });
  }
  for (const [name, bytes] of VALID_UTF8.slice(1)) {
    const b = Buffer.from(bytes);
    const pieces = [...b].map((x) => Buffer.from([x]));
    cases.push({ id: `6.${n++}`, name: `valid ${name} in 1-byte fragments echoed`, steps: [{ frames: pieces.map((p, i) => ({ opcode: i ? OP.CONT : T, payload: p, fin: i === pieces.length - 1 })) }], expect: { events: [['text', b]] } });
  }
  cases.push({ id: `6.${n++}`, name: 'valid 4-byte code point split across 4 fragments in separate delayed writes', steps: [f(T, [0xf0], { fin: false }), { sleep: 20 }, f(OP.CONT, [0x9f], { fin: false }), { sleep: 20 }, f(OP.CONT, [0x98], { fin: false }), { sleep: 20 }, f(OP.CONT, [0x80])], expect: { events: [['text', Buffer.from([0xf0, 0x9f, 0x98, 0x80])]] } });
  const kosme = Buffer.from('κόσμε€😀');
  cases.push({ id: `6.${n++}`, name: 'valid multi-byte text written in 1-byte TCP chunks', steps: [f(T, kosme, { split: 1, delay: 3 })], expect: { events: [['text', kosme]] } });
  cases.push({ id: `6.${n++}`, name: 'binary message with invalid UTF-8 is not checked', steps: [f(B, [0xff, 0xfe, 0xc0])], expect: { events: [['binary', Buffer.from([0xff, 0xfe, 0xc0])]] } });

  for (const [name, bytes] of INVALID_UTF8) {
    const b = Buffer.from(bytes);
    cases.push({ id: `6.${n++}`, name: `invalid ${name} -> 1007`, steps: [f(T, 'fine'), f(T, b)], expect: { events: [['text', 'fine']], close: 1007 } });
  }
  for (const [name, bytes] of INVALID_UTF8) {
    const b = Buffer.from(bytes);
    const pieces = [Buffer.from('ok'), ...[...b].map((x) => Buffer.from([x]))];
    cases.push({ id: `6.${n++}`, name: `invalid ${name} in 1-byte fragments -> 1007`, steps: [{ frames: pieces.map((p, i) => ({ opcode: i ? OP.CONT : T, payload: p, fin: i === pieces.length - 1 })) }], expect: { close: 1007 } });
  }

  // Fail fast: the invalid bytes arrive, the rest never does.
  const FAST = [
    ['0xFF', [0xff]],
    ['lone continuation 0x80', [0x80]],
    ['overlong C0', [0xc0, 0x80]],
    ['overlong E0 80', [0xe0, 0x80]],
    ['surrogate ED A0', [0xed, 0xa0]],
    ['above max F4 90', [0xf4, 0x90]],
    ['F5 lead', [0xf5]],
    ['2-byte lead followed by ASCII', [0xce, 0x41]],
  ];
  for (const [name, bytes] of FAST) {
    const prefix = Buffer.from('κόσμε-');
    const bad = Buffer.concat([prefix, Buffer.from(bytes)]);
    // 1) per fragment: a non-final first fragment carrying the invalid bytes; no more fragments sent
    cases.push({ id: `6.${n++}`, name: `fail fast: ${name} in the first fragment (fin=0), rest never sent -> 1007`, steps: [f(T, bad, { fin: false })], expect: { close: 1007 }, timeoutMs: 3000 });
    // 2) per fragment: valid first fragment, invalid second non-final fragment
    cases.push({ id: `6.${n++}`, name: `fail fast: ${name} in a middle fragment, rest never sent -> 1007`, steps: [f(T, 'good start ', { fin: false }), f(OP.CONT, bad, { fin: false })], expect: { close: 1007 }, timeoutMs: 3000 });
    // 3) per chunk: one frame declaring 1000 bytes; only the first part (with the bad bytes) is written
    const whole = Buffer.concat([bad, Buffer.alloc(1000 - bad.length, 0x61)]);
    const headerLen = 2 + 2 + 4;
    cases.push({ id: `6.${n++}`, name: `fail fast: ${name} in the first chunk of a 1000-byte frame, rest never sent -> 1007`, steps: [f(T, whole, { truncate: headerLen + bad.length })], expect: { close: 1007 }, timeoutMs: 3000 });
  }
  return cases;
}

function closeCases() {
  const cases = [];
  let n = 1;
  const cl = (code, reason, o) => f(OP.CLOSE, code === undefined ? '' : closePayload(code, reason), o);
  cases.push({ id: `7.${n++}`, name: 'close 1000 -> close 1000 and TCP close', steps: [cl(1000)], expect: { close: 1000 } });
  cases.push({ id: `7.${n++}`, name: 'empty close -> empty close', steps: [cl(undefined)], expect: { close: 'empty' } });
  cases.push({ id: `7.${n++}`, name: 'close 1000 with a short reason', steps: [cl(1000, 'bye')], expect: { close: 1000 } });
  cases.push({ id: `7.${n++}`, name: 'close with a 123-byte reason (125-byte payload) accepted', steps: [cl(1000, 'r'.repeat(123))], expect: { close: 1000 } });
  cases.push({ id: `7.${n++}`, name: 'close with a 124-byte reason (126-byte payload) -> 1002', steps: [cl(1000, 'r'.repeat(124))], expect: { close: 1002 } });
  cases.push({ id: `7.${n++}`, name: 'close with a valid UTF-8 multi-byte reason', steps: [cl(1000, 'κόσμε 😀')], expect: { close: 1000 } });
  cases.push({ id: `7.${n++}`, name: 'close with an invalid UTF-8 reason -> 1007', steps: [f(OP.CLOSE, Buffer.concat([closePayload(1000), Buffer.from([0x61, 0xff, 0x62])]))], expect: { close: 1007 } });
  cases.push({ id: `7.${n++}`, name: 'close with a surrogate in the reason -> 1007', steps: [f(OP.CLOSE, Buffer.concat([closePayload(1000), Buffer.from([0xed, 0xa0, 0x80])]))], expect: { close: 1007 } });
  cases.push({ id: `7.${n++}`, name: '1-byte close payload -> 1002', steps: [f(OP.CLOSE, Buffer.from([0x03]))], expect: { close: 1002 } });
  cases.push({ id: `7.${n++}`, name: 'messages before the close are echoed first', steps: [{ frames: [{ opcode: T, payload: 'm1' }, { opcode: B, payload: 'm2' }, { opcode: OP.CLOSE, payload: closePayload(1000) }] }], expect: { events: [['text', 'm1'], ['binary', 'm2']], close: 1000 } });
  cases.push({ id: `7.${n++}`, name: 'text after the close frame (same write) is not echoed', steps: [{ frames: [{ opcode: OP.CLOSE, payload: closePayload(1000) }, { opcode: T, payload: 'too late' }] }], expect: { close: 1000 } });
  cases.push({ id: `7.${n++}`, name: 'ping after the close frame is not answered', steps: [{ frames: [{ opcode: OP.CLOSE, payload: closePayload(1000) }, { opcode: OP.PING, payload: 'late' }] }], expect: { close: 1000 } });
  cases.push({ id: `7.${n++}`, name: 'text after the close frame (separate write) is not echoed', steps: [cl(1000), { sleep: 20 }, f(T, 'too late')], expect: { close: 1000 } });
  cases.push({ id: `7.${n++}`, name: 'close written byte by byte', steps: [cl(1000, 'slow', { split: 1, delay: 3 })], expect: { close: 1000 } });
  cases.push({ id: `7.${n++}`, name: 'unmasked close -> 1002', steps: [cl(1000, '', { mask: false })], expect: { close: 1002 } });
  for (const code of [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999]) {
    cases.push({ id: `7.${n++}`, name: `valid close code ${code} echoed`, steps: [cl(code, 'reason')], expect: { close: code } });
  }
  for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]) {
    cases.push({ id: `7.${n++}`, name: `close code ${code} -> 1002`, steps: [cl(code)], expect: { close: 1002 } });
  }
  return cases;
}

function limitCases() {
  const mib = patternBytes(1 << 20, 11);
  const pieces = [];
  for (let i = 0; i < mib.length; i += 64) pieces.push(mib.subarray(i, i + 64));
  return [
    { id: '9.1', name: '1 MiB binary in 64-byte fragments echoed', steps: [{ frames: pieces.map((p, i) => ({ opcode: i ? OP.CONT : B, payload: p, fin: i === pieces.length - 1 })) }], expect: { events: [['binary', mib]] }, timeoutMs: 20000 },
    { id: '9.2', name: '1 MiB text in one frame echoed', steps: [f(T, patternText(1 << 20, 3))], expect: { events: [['text', patternText(1 << 20, 3)]] }, timeoutMs: 20000 },
  ];
}

function autoFragCases() {
  const msg = patternBytes(20000, 21);
  const cases = [];
  let n = 1;
  const patterns = [
    ['1-byte frames (first 2000 bytes)', msg.subarray(0, 2000), 1],
    ['7-byte frames', msg, 7],
    ['64-byte frames', msg, 64],
    ['1000-byte frames', msg, 1000],
    ['4096-byte frames', msg, 4096],
    ['one 19999-byte frame and a 1-byte frame', msg, [19999]],
    ['a 1-byte frame then the rest', msg, [1]],
    ['irregular sizes 3,500,1,8000,77,...', msg, [3, 500, 1, 8000, 77, 2, 4000, 13]],
  ];
  for (const [name, data, spec] of patterns) {
    for (const [op, opn] of [[B, 'binary'], [T, 'text']]) {
      const payload = op === T ? Buffer.from(patternText(data.length, data.length)) : data;
      const parts = [];
      if (typeof spec === 'number') for (let i = 0; i < payload.length; i += spec) parts.push(payload.subarray(i, i + spec));
      else {
        let off = 0;
        for (const s of spec) { parts.push(payload.subarray(off, off + s)); off += s; }
        if (off < payload.length) parts.push(payload.subarray(off));
      }
      cases.push({ id: `10.${n++}`, name: `${opn} ${payload.length} B in ${name} echoed byte-identical`, steps: [{ frames: parts.map((p, i) => ({ opcode: i ? OP.CONT : op, payload: p, fin: i === parts.length - 1 })) }], expect: { events: [[opn, payload]] }, timeoutMs: 10000 });
    }
  }
  cases.push({ id: `10.${n++}`, name: 'fragmented message whose frames are each split into 5-byte TCP writes', steps: [f(B, msg.subarray(0, 300), { fin: false, split: 5, delay: 1 }), f(OP.CONT, msg.subarray(300, 600), { split: 5, delay: 1 })], expect: { events: [['binary', msg.subarray(0, 600)]] }, timeoutMs: 15000 });
  return cases;
}

// ---------------------------------------------------------------------------------------

describe('conformance (default server)', () => {
  let srv;
  before(async () => { srv = await startHerald(['--threads', '2']); });
  after(async () => { if (srv) await srv.stop(); });
  const port = () => srv.port;

  describe('1 framing', () => defineCases(port, framingCases()));
  describe('2 ping/pong', () => defineCases(port, pingCases()));
  describe('3 reserved bits', () => defineCases(port, rsvCases()));
  describe('4 opcodes', () => defineCases(port, opcodeCases()));
  describe('5 fragmentation', () => defineCases(port, fragmentationCases()));
  describe('6 UTF-8', () => defineCases(port, utf8Cases()));
  describe('7 close handling', () => defineCases(port, closeCases()));
  describe('9 limits', () => {
    defineCases(port, limitCases());
    test('9.3 16 MiB binary message (exactly the default --max-message) echoed', { timeout: 60000 }, async () => {
      const data = patternBytes(16 * 1024 * 1024, 33);
      await runCase(srv.port, { steps: [f(B, data)], expect: { events: [['binary', data]] }, timeoutMs: 45000 });
    });
    test('9.5 a small message pipelined right after a 16 MiB message: both echoed to a client that reads', { timeout: 60000 }, async () => {
      // the client reads continuously; it is not a slow consumer, even though the 16 MiB echo
      // is still in flight when the small message has to be echoed
      const c = await rawWs(srv.port);
      try {
        const data = patternBytes(16 * 1024 * 1024, 34);
        await c.sendRaw(Buffer.concat([encodeFrame({ opcode: B, payload: data }), encodeFrame({ opcode: T, payload: 'right after' })]));
        const m1 = await c.readMessage({ timeoutMs: 45000 });
        assert.ok(m1.payload.equals(data), '16 MiB echo differs');
        const m2 = await c.readMessage({ timeoutMs: 5000 });
        assert.equal(m2.payload.toString(), 'right after');
      } catch (e) {
        if (e.closeFrame) e.message += ' (a reading client was treated as a slow consumer)';
        throw e;
      } finally { c.destroy(); }
    });
    test('9.4 16 MiB + 1 declared in a frame header -> 1009 before the payload is sent', async () => {
      const c = await rawWs(srv.port);
      try {
        await c.sendRaw(Buffer.concat([encodeHeader({ opcode: B, length: 16 * 1024 * 1024 + 1 }), Buffer.alloc(100)]));
        const r = await c.readUntilClose({ timeoutMs: 3000, reply: true });
        assert.ok(r.close, 'no close frame');
        assert.equal(r.close.code, 1009);
        assert.equal(r.frames.length, 0);
      } finally { c.destroy(); }
    });
  });
  describe('10 auto-fragmentation', () => defineCases(port, autoFragCases()));
});

// The same case tables on connections that negotiated permessage-deflate: the client
// sends plain frames (RFC 7692 §6 allows it), the server may answer compressed (RSV1),
// and every verdict must be the same. Area 3 is left out: RSV1 on a data frame is legal
// here (areas 12/13 below cover RSV1 misuse with the extension).
describe('conformance with permessage-deflate negotiated', () => {
  let srv;
  before(async () => { srv = await startHerald(['--threads', '2']); });
  after(async () => { if (srv) await srv.stop(); });
  const port = () => srv.port;
  const dfl = { deflate: true };
  test('the server compresses its echo of a 1000-byte text on such a connection', async () => {
    const c = await rawWs(srv.port, { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate' } });
    try {
      const text = patternText(1000, 9);
      await c.sendFrame({ opcode: T, payload: text });
      const fr = await c.readFrame({ timeoutMs: 5000 });
      assert.ok(fr && fr.rsv1, 'echo not compressed');
      assert.equal(inflateMessage(fr.payload).toString(), text);
    } finally { c.destroy(); }
  });
  describe('1 framing', () => defineCases(port, framingCases(), dfl));
  describe('2 ping/pong', () => defineCases(port, pingCases(), dfl));
  describe('4 opcodes', () => defineCases(port, opcodeCases(), dfl));
  describe('5 fragmentation', () => defineCases(port, fragmentationCases(), dfl));
  describe('6 UTF-8', () => defineCases(port, utf8Cases(), dfl));
  describe('7 close handling', () => defineCases(port, closeCases(), dfl));
  describe('9 limits', () => defineCases(port, limitCases(), dfl));
  describe('10 auto-fragmentation', () => defineCases(port, autoFragCases(), dfl));
});

describe('conformance with --max-message 64K', () => {
  let srv;
  before(async () => { srv = await startHerald(['--threads', '2', '--max-message', '64K']); });
  after(async () => { if (srv) await srv.stop(); });
  const port = () => srv.port;
  const K64 = 65536;
  const frag = (op, sizes) => sizes.map((s, i) => ({ opcode: i ? OP.CONT : op, payload: patternBytes(s, i + 1), fin: i === sizes.length - 1 }));
  const exact = patternBytes(K64, 4);
  defineCases(port, [
    { id: '9.10', name: 'binary of exactly 65536 bytes echoed', steps: [f(B, exact)], expect: { events: [['binary', exact]] } },
    { id: '9.11', name: 'binary of 65537 bytes -> 1009', steps: [f(B, patternBytes(K64 + 1, 5))], expect: { close: 1009 } },
    { id: '9.12', name: 'text of 65537 bytes -> 1009', steps: [f(T, patternText(K64 + 1, 5))], expect: { close: 1009 } },
    { id: '9.13', name: 'header declaring 65537 bytes, payload never sent -> 1009 (fail fast)', steps: [{ raw: Buffer.concat([encodeHeader({ opcode: B, length: K64 + 1 }), Buffer.alloc(10)]) }], expect: { close: 1009 }, timeoutMs: 3000 },
    { id: '9.14', name: 'fragmented message of 2 x 40000 bytes -> 1009', steps: [{ frames: frag(B, [40000, 40000]) }], expect: { close: 1009 } },
    { id: '9.15', name: 'fragmented message exceeding the limit, last fragment never finished -> 1009', steps: [{ frames: frag(B, [40000]).map((x) => ({ ...x, fin: false })) }, { raw: encodeHeader({ opcode: OP.CONT, length: 40000, fin: false }) }], expect: { close: 1009 }, timeoutMs: 3000 },
    { id: '9.16', name: 'fragmented message of exactly 65536 bytes in 4 fragments echoed', steps: [{ frames: frag(B, [16384, 16384, 16384, 16384]) }], expect: { events: [['binary', Buffer.concat([16384, 16384, 16384, 16384].map((s, i) => patternBytes(s, i + 1)))]] } },
    { id: '9.17', name: 'message before the oversized one is echoed first', steps: [f(T, 'small'), f(B, patternBytes(K64 + 1, 6))], expect: { events: [['text', 'small']], close: 1009 } },
    { id: '9.18', name: 'many 60000-byte messages are fine (limit is per message)', steps: [{ frames: [1, 2, 3, 4].map((i) => ({ opcode: B, payload: patternBytes(60000, i) })) }], expect: { events: [1, 2, 3, 4].map((i) => ['binary', patternBytes(60000, i)]) } },
  ]);
});

// ---------------------------------------------------------------------------------------
// 12/13 permessage-deflate, with our own zlib-based codec.

const CMWB = [undefined, true, 8, 9, 10, 11, 12, 13, 14, 15]; // client_max_window_bits: absent, bare, value
const SMWB = [undefined, 8, 9, 10, 11, 12, 13, 14, 15];

function offerString(o) {
  const p = ['permessage-deflate'];
  if (o.cnct) p.push('client_no_context_takeover');
  if (o.snct) p.push('server_no_context_takeover');
  if (o.cmwb === true) p.push('client_max_window_bits');
  else if (o.cmwb !== undefined) p.push(`client_max_window_bits=${o.cmwb}`);
  if (o.smwb !== undefined) p.push(`server_max_window_bits=${o.smwb}`);
  return p.join('; ');
}

/** Validate a response's Sec-WebSocket-Extensions against RFC 7692 for the given offer. */
function validateResponse(offer, header, { honour }) {
  const exts = parseExtensions(header);
  assert.equal(exts.length, 1, `expected exactly one extension in the 101, got ${JSON.stringify(header)}`);
  assert.equal(exts[0].name, 'permessage-deflate');
  const seen = new Map();
  for (const [k, v] of exts[0].params) {
    assert.ok(!seen.has(k), `duplicate parameter ${k} in ${header}`);
    seen.set(k, v);
  }
  for (const k of seen.keys()) {
    assert.ok(['server_no_context_takeover', 'client_no_context_takeover', 'server_max_window_bits', 'client_max_window_bits'].includes(k), `unknown parameter ${k} in response`);
  }
  for (const k of ['server_no_context_takeover', 'client_no_context_takeover']) {
    if (seen.has(k)) assert.equal(seen.get(k), true, `${k} must not have a value`);
  }
  const bits = (k) => {
    const v = seen.get(k);
    assert.ok(typeof v === 'string' && /^(8|9|1[0-5])$/.test(v), `${k} needs a value 8..15 in a response, got ${v}`);
    return Number(v);
  };
  // RFC 7692 7.1.1.1: server_no_context_takeover offered -> must be in the accepted response
  if (offer.snct) assert.ok(seen.has('server_no_context_takeover'), 'offered server_no_context_takeover missing from the response');
  // 7.1.2.1: server_max_window_bits offered -> response must carry one <= the offered value
  if (offer.smwb !== undefined) {
    assert.ok(seen.has('server_max_window_bits'), 'offered server_max_window_bits missing from the response');
    assert.ok(bits('server_max_window_bits') <= offer.smwb, 'server_max_window_bits above the offer');
  } else if (seen.has('server_max_window_bits')) {
    bits('server_max_window_bits');
  }
  // 7.1.2.2: client_max_window_bits only if offered, and <= offered value
  if (seen.has('client_max_window_bits')) {
    assert.ok(offer.cmwb !== undefined, 'client_max_window_bits in the response but not in the offer');
    const v = bits('client_max_window_bits');
    if (typeof offer.cmwb === 'number') assert.ok(v <= offer.cmwb, 'client_max_window_bits above the offer');
  }
  if (!honour) {
    // herald's default: no context takeover in either direction
    assert.ok(seen.has('server_no_context_takeover'), `default response lacks server_no_context_takeover: ${header}`);
    assert.ok(seen.has('client_no_context_takeover'), `default response lacks client_no_context_takeover: ${header}`);
  } else {
    // --deflate-context-takeover: the client's offer is honoured
    assert.equal(seen.has('server_no_context_takeover'), !!offer.snct, `server_no_context_takeover should mirror the offer: ${header}`);
    assert.equal(seen.has('client_no_context_takeover'), !!offer.cnct, `client_no_context_takeover should mirror the offer: ${header}`);
  }
  return {
    clientContext: !seen.has('client_no_context_takeover'),
    clientBits: seen.has('client_max_window_bits') ? Number(seen.get('client_max_window_bits')) : 15,
  };
}

const DEFLATE_MSGS = [
  ['text', 'Hello, compressed world!'],
  ['binary', patternBytes(300, 2)],
  ['text', 'abcabcabc'.repeat(600)],
  ['text', 'Hello, compressed world!'], // repeats the first: back-references when context is kept
  ['binary', Buffer.concat([patternBytes(5000, 3), patternBytes(5000, 3)])],
  ['text', ''],
];

async function deflateSession(port, offer, { honour }) {
  const c = await rawWs(port, { headers: { 'Sec-WebSocket-Extensions': offerString(offer) } });
  try {
    const neg = validateResponse(offer, c.response.get('sec-websocket-extensions'), { honour });
    const deflater = neg.clientContext ? new StreamCodec('deflate', { windowBits: neg.clientBits }) : null;
    const inflater = new StreamCodec('inflate');
    try {
      for (const [kind, data] of DEFLATE_MSGS) {
        const raw = toBuf(data);
        const comp = deflater ? await deflater.process(raw) : deflateMessage(raw, { windowBits: neg.clientBits });
        await c.sendFrame({ opcode: kind === 'text' ? T : B, rsv1: true, payload: comp });
        const m = await c.readMessage({ timeoutMs: 5000 });
        assert.equal(m.opcode, kind === 'text' ? T : B, 'echo opcode');
        const got = m.rsv1 ? await inflater.process(m.payload) : m.payload;
        assert.ok(got.equals(raw), `echo of a ${raw.length}-byte ${kind} message differs (got ${got.length} bytes, rsv1=${m.rsv1})`);
      }
      // the connection is still healthy: an uncompressed message too
      await c.sendText('plain after compressed');
      const m = await c.readMessage();
      const got = m.rsv1 ? await inflater.process(m.payload) : m.payload;
      assert.equal(got.toString(), 'plain after compressed');
    } finally {
      deflater?.close();
      inflater.close();
    }
  } finally {
    c.destroy();
  }
}

function allOffers() {
  const out = [];
  for (const cmwb of CMWB) for (const smwb of SMWB) for (const snct of [false, true]) for (const cnct of [false, true]) out.push({ cmwb, smwb, snct, cnct });
  return out;
}

describe('12 permessage-deflate (default: no context takeover)', () => {
  let srv;
  before(async () => { srv = await startHerald(['--threads', '2']); });
  after(async () => { if (srv) await srv.stop(); });

  let n = 1;
  for (const offer of allOffers()) {
    test(`12.${n++} offer "${offerString(offer)}" accepted per RFC 7692, compressed messages echoed`, () => deflateSession(srv.port, offer, { honour: false }));
  }

  const INVALID_OFFERS = [
    'permessage-deflate; unknown_param',
    'permessage-deflate; client_max_window_bits=7',
    'permessage-deflate; client_max_window_bits=16',
    'permessage-deflate; server_max_window_bits=7',
    'permessage-deflate; server_max_window_bits=16',
    'permessage-deflate; server_max_window_bits',
    'permessage-deflate; server_max_window_bits=abc',
    'permessage-deflate; client_max_window_bits=010x',
    'permessage-deflate; server_no_context_takeover; server_no_context_takeover',
    'permessage-deflate; client_no_context_takeover; client_no_context_takeover',
    'permessage-deflate; client_max_window_bits=10; client_max_window_bits=11',
    'permessage-deflate; server_max_window_bits=10; server_max_window_bits=10',
    'permessage-deflate; server_no_context_takeover=1',
    'permessage-deflate; client_no_context_takeover=yes',
  ];
  for (const ext of INVALID_OFFERS) {
    test(`12.${n++} invalid offer "${ext}" declined, connection works uncompressed`, async () => {
      const c = await rawWs(srv.port, { headers: { 'Sec-WebSocket-Extensions': ext } });
      try {
        assert.equal(c.response.get('sec-websocket-extensions'), undefined, 'an invalid offer must be declined');
        await c.sendText('uncompressed');
        const m = await c.readMessage();
        assert.equal(m.rsv1, false);
        assert.equal(m.payload.toString(), 'uncompressed');
        // and RSV1 is now a protocol error, since nothing was negotiated
        await c.sendFrame({ opcode: T, rsv1: true, payload: deflateMessage('x') });
        const r = await c.readUntilClose({ reply: true });
        assert.equal(r.close?.code, 1002);
      } finally { c.destroy(); }
    });
  }

  test(`12.${n++} unknown extension only -> no extension in the 101`, async () => {
    const c = await rawWs(srv.port, { headers: { 'Sec-WebSocket-Extensions': 'x-webkit-deflate-frame' } });
    try { assert.equal(c.response.get('sec-websocket-extensions'), undefined); } finally { c.destroy(); }
  });

  test(`12.${n++} first offer invalid, second valid -> the second is accepted`, async () => {
    const c = await rawWs(srv.port, { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate; bogus=1, permessage-deflate' } });
    try {
      const ex = parseExtensions(c.response.get('sec-websocket-extensions'));
      assert.equal(ex.length, 1);
      assert.equal(ex[0].name, 'permessage-deflate');
    } finally { c.destroy(); }
  });

  const rsvSteps = async (frames) => {
    const c = await rawWs(srv.port, { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate' } });
    try {
      await c.sendRaw(Buffer.concat(frames.map((x) => encodeFrame(x))));
      return await c.readUntilClose({ reply: true });
    } finally { c.destroy(); }
  };

  test(`13.1 RSV1 on a continuation frame -> 1002`, async () => {
    const comp = deflateMessage('hello hello hello');
    const r = await rsvSteps([
      { opcode: T, rsv1: true, fin: false, payload: comp.subarray(0, 3) },
      { opcode: OP.CONT, rsv1: true, payload: comp.subarray(3) },
    ]);
    assert.equal(r.close?.code, 1002);
  });

  test(`13.2 RSV1 on a ping -> 1002`, async () => {
    const r = await rsvSteps([{ opcode: OP.PING, rsv1: true, payload: 'p' }]);
    assert.equal(r.close?.code, 1002);
  });

  test(`13.3 RSV1 on a close frame -> 1002`, async () => {
    const r = await rsvSteps([{ opcode: OP.CLOSE, rsv1: true, payload: closePayload(1000) }]);
    assert.equal(r.close?.code, 1002);
  });

  test(`13.4 RSV2 with deflate negotiated -> 1002`, async () => {
    const r = await rsvSteps([{ opcode: T, rsv2: true, payload: 'x' }]);
    assert.equal(r.close?.code, 1002);
  });

  test(`13.5 compressed message fragmented (RSV1 on the first frame only) echoed`, async () => {
    const c = await rawWs(srv.port, { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate' } });
    try {
      const text = 'fragmented and compressed '.repeat(200);
      const comp = deflateMessage(text);
      const parts = [];
      for (let i = 0; i < comp.length; i += 7) parts.push(comp.subarray(i, i + 7));
      await c.sendRaw(Buffer.concat(parts.map((p, i) => encodeFrame({ opcode: i ? OP.CONT : T, rsv1: i === 0, fin: i === parts.length - 1, payload: p }))));
      const m = await c.readMessage();
      const inflater = new StreamCodec('inflate');
      try {
        const got = m.rsv1 ? await inflater.process(m.payload) : m.payload;
        assert.equal(got.toString(), text);
      } finally { inflater.close(); }
    } finally { c.destroy(); }
  });

  test(`13.6 compressed text that inflates to invalid UTF-8 -> 1007`, async () => {
    const c = await rawWs(srv.port, { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate' } });
    try {
      await c.sendFrame({ opcode: T, rsv1: true, payload: deflateMessage(Buffer.from([0x61, 0xff, 0x62])) });
      const r = await c.readUntilClose({ reply: true });
      assert.equal(r.close?.code, 1007);
    } finally { c.destroy(); }
  });

  test(`13.7 garbage compressed payload -> connection failed with a close frame`, async () => {
    const c = await rawWs(srv.port, { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate' } });
    try {
      await c.sendFrame({ opcode: B, rsv1: true, payload: Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]) });
      const r = await c.readUntilClose({ reply: true });
      assert.ok(r.close, 'no close frame');
      assert.ok([1002, 1007].includes(r.close.code), `close code ${r.close.code}`);
      assert.ok(r.tcpClosed);
    } finally { c.destroy(); }
  });
});

describe('12 permessage-deflate with --deflate-context-takeover', () => {
  let srv;
  before(async () => { srv = await startHerald(['--threads', '2', '--deflate-context-takeover']); });
  after(async () => { if (srv) await srv.stop(); });
  let n = 1;
  // a representative subset of the offers: every flag combination crossed with a few window sizes
  const offers = allOffers().filter((o) => [undefined, true, 9, 15].includes(o.cmwb) && [undefined, 9, 15].includes(o.smwb));
  for (const offer of offers) {
    test(`12.ct.${n++} offer "${offerString(offer)}" honoured, messages echoed with context takeover`, () => deflateSession(srv.port, offer, { honour: true }));
  }
});

describe('permessage-deflate with --compression off', () => {
  let srv;
  before(async () => { srv = await startHerald(['--compression', 'off']); });
  after(async () => { if (srv) await srv.stop(); });
  test('12.off offer declined when compression is off', async () => {
    const c = await rawWs(srv.port, { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate; client_max_window_bits' } });
    try {
      assert.equal(c.response.get('sec-websocket-extensions'), undefined);
      await c.sendText('x');
      assert.equal((await c.readMessage()).payload.toString(), 'x');
    } finally { c.destroy(); }
  });
});
