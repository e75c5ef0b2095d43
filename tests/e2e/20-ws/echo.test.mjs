// /ws echo through the npm `ws` client, with and without permessage-deflate.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import crypto from 'node:crypto';
import { startHerald, patternBytes, patternText, withTimeout } from '../helpers/herald.mjs';

const MiB = 1024 * 1024;
const SIZES = [0, 1, 125, 126, 65535, 65536, MiB, 16 * MiB - 1024];

function tile(unit, n) {
  const b = Buffer.allocUnsafe(n);
  for (let off = 0; off < n; off += unit.length) unit.copy(b, off, 0, Math.min(unit.length, n - off));
  return b;
}

function open(url, { deflate }) {
  return withTimeout(new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: deflate, maxPayload: 64 * MiB });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  }), 5000, 'ws open');
}

/** Collects messages and the close event of a ws client. */
function track(ws) {
  const st = { messages: [], close: null, errors: [], waiters: [] };
  const wake = () => { const w = st.waiters; st.waiters = []; w.forEach((f) => f()); };
  ws.on('message', (data, isBinary) => { st.messages.push({ data, isBinary }); wake(); });
  ws.on('close', (code, reason) => { st.close = { code, reason: reason.toString() }; wake(); });
  ws.on('error', (e) => { st.errors.push(e); wake(); });
  st.until = (pred, ms, what) => withTimeout(new Promise((resolve) => {
    const check = () => (pred() ? resolve() : st.waiters.push(check));
    check();
  }), ms, what);
  return st;
}

for (const deflate of [true, false]) {
  describe(`echo with compression ${deflate ? 'on' : 'off'}`, () => {
    let srv;
    let ws;
    let st;
    before(async () => {
      srv = await startHerald(['--threads', '2']);
      ws = await open(`${srv.url}/ws`, { deflate });
      st = track(ws);
    });
    after(async () => {
      ws?.terminate();
      if (srv) assert.equal(await srv.stop(), 0);
    });

    test(`permessage-deflate ${deflate ? 'negotiated' : 'not negotiated'}`, () => {
      if (deflate) assert.match(ws.extensions, /permessage-deflate/);
      else assert.equal(ws.extensions, '');
    });

    for (const size of SIZES) {
      for (const binary of [false, true]) {
        test(`${binary ? 'binary' : 'text'} of ${size} bytes echoed unchanged`, { timeout: 60000 }, async () => {
          // binary: random bytes, so with compression the compressed frame of a message just
          // under the limit is a little over it (the limit is on the inflated message);
          // text: compressible content
          const payload = binary
            ? (deflate ? crypto.randomBytes(size) : patternBytes(size, size + 1))
            : (deflate ? tile(Buffer.from(patternText(4096, size + 2)), size).toString('latin1') : patternText(size, size + 2));
          const before = st.messages.length;
          ws.send(payload, { binary });
          await st.until(() => st.messages.length > before || st.close, 45000, `echo of ${size} bytes`);
          assert.equal(st.close, null, `connection closed: ${JSON.stringify(st.close)}`);
          const m = st.messages[before];
          assert.equal(m.isBinary, binary, 'message type preserved');
          assert.equal(m.data.length, size);
          if (binary) assert.ok(Buffer.compare(m.data, payload) === 0, 'binary payload differs');
          else assert.ok(m.data.toString('latin1') === payload, 'text payload differs');
          assert.equal(st.messages.length, before + 1, 'exactly one echo');
        });
      }
    }

    test('200 messages pipelined are echoed in order', { timeout: 20000 }, async () => {
      const before = st.messages.length;
      for (let i = 0; i < 200; i++) {
        if (i % 2) ws.send(`msg-${i}-${'x'.repeat(i * 13)}`);
        else ws.send(Buffer.from(`bin-${i}`), { binary: true });
      }
      await st.until(() => st.messages.length >= before + 200 || st.close, 15000, '200 echoes');
      const got = st.messages.slice(before);
      assert.equal(got.length, 200);
      for (let i = 0; i < 200; i++) {
        const want = i % 2 ? `msg-${i}-${'x'.repeat(i * 13)}` : `bin-${i}`;
        assert.equal(got[i].data.toString(), want, `message ${i} out of order or corrupted`);
        assert.equal(got[i].isBinary, !(i % 2));
      }
    });

    test('a message of 16 MiB + 1 bytes -> close 1009', { timeout: 30000 }, async () => {
      const ws2 = await open(`${srv.url}/ws`, { deflate });
      const st2 = track(ws2);
      try {
        ws2.send(patternBytes(16 * MiB + 1, 77), { binary: true });
        await st2.until(() => st2.close, 20000, 'close after an oversized message');
        assert.equal(st2.messages.length, 0, 'oversized message must not be echoed');
        assert.equal(st2.close.code, 1009, `close code (errors: ${st2.errors.map((e) => e.message).join('; ')})`);
      } finally { ws2.terminate(); }
    });

    test('client close 1000 is answered with 1000', async () => {
      const ws2 = await open(`${srv.url}/ws`, { deflate });
      const st2 = track(ws2);
      ws2.close(1000, 'done');
      await st2.until(() => st2.close, 5000, 'close');
      assert.equal(st2.close.code, 1000);
    });
  });
}
