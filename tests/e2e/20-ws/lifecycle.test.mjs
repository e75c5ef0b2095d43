// Server lifecycle: graceful shutdown, server pings, idle timeout.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startHerald, rawWs, OP, sleep, withTimeout, waitUntil } from '../helpers/herald.mjs';

describe('shutdown', () => {
  for (const signal of ['SIGTERM', 'SIGINT']) {
    test(`${signal} with 10 connected clients: each gets close 1001, exit 0 within 5 s`, { timeout: 20000 }, async () => {
      const srv = await startHerald(['--threads', '2']);
      let clients = [];
      try {
        clients = await Promise.all(Array.from({ length: 10 }, (_, i) => withTimeout(new Promise((resolve, reject) => {
          const ws = new WebSocket(`${srv.url}/${i % 2 ? 'ws' : 'broadcast'}`, { perMessageDeflate: false });
          const rec = { ws, close: null };
          ws.on('close', (code) => { rec.close = code; });
          ws.on('error', () => {});
          ws.once('open', () => resolve(rec));
          ws.once('error', reject);
        }), 5000, 'open')));
        // make sure every connection is fully established on the server side
        await Promise.all(clients.filter((_, i) => i % 2).map((c) => withTimeout(new Promise((resolve) => {
          c.ws.once('message', resolve);
          c.ws.send('ready?');
        }), 5000, 'echo')));
        const t0 = Date.now();
        srv.proc.kill(signal);
        const exit = await withTimeout(srv.exited, 5000, `exit after ${signal}`);
        assert.equal(exit.code, 0, `exit code (signal ${exit.signal}); stderr:\n${srv.stderr().slice(-2000)}`);
        assert.ok(Date.now() - t0 <= 5000);
        // every client saw the server's close frame (ws reports the received code)
        await waitUntil(() => !(clients.some((c) => c.close === null)), 3000, 'client close events');
        assert.deepEqual(clients.map((c) => c.close), Array(10).fill(1001));
      } finally {
        for (const c of clients) c.ws.terminate();
        await srv.stop();
      }
    });
  }

  test('SIGTERM with no clients exits 0 promptly', async () => {
    const srv = await startHerald([]);
    const t0 = Date.now();
    assert.equal(await srv.stop(), 0);
    assert.ok(Date.now() - t0 < 3000, 'took too long to exit');
  });
});

describe('keepalive', () => {
  test('--ping-interval 1: the server pings within ~2.5 s', { timeout: 10000 }, async () => {
    const srv = await startHerald(['--ping-interval', '1']);
    const c = await rawWs(srv.port);
    try {
      const f = await c.readFrame({ timeoutMs: 2500 });
      assert.ok(f, 'connection closed instead of a ping');
      assert.equal(f.opcode, OP.PING);
      assert.equal(f.masked, false, 'server frames must not be masked');
      assert.ok(f.payload.length <= 125);
    } finally {
      c.destroy();
      await srv.stop();
    }
  });

  test('--idle-timeout 2 --ping-interval 10: a silent client is closed within ~4 s', { timeout: 15000 }, async () => {
    const srv = await startHerald(['--idle-timeout', '2', '--ping-interval', '10']);
    const c = await rawWs(srv.port);
    try {
      const t0 = Date.now();
      const r = await c.readUntilClose({ timeoutMs: 4500, reply: true });
      const dt = Date.now() - t0;
      assert.ok(r.tcpClosed, 'connection not closed');
      assert.ok(dt >= 1500, `closed after ${dt} ms, before the 2 s idle timeout`);
      assert.ok(dt <= 4500, `closed only after ${dt} ms`);
      assert.deepEqual(r.frames.map((x) => x.opcode).filter((op) => op !== OP.PING), [], 'no data expected');
      if (r.close) assert.ok([1000, 1001].includes(r.close.code), `idle close code ${r.close.code}`);
      const metrics = await (await fetch(`http://127.0.0.1:${srv.port}/metrics`)).text();
      assert.match(metrics, /^herald_limit_rejections_total\{limit="idle_timeout"\} 1$/m, 'idle close counted');
    } finally {
      c.destroy();
      await srv.stop();
    }
  });

  test('--idle-timeout 2: a client sending messages every 500 ms stays open', { timeout: 15000 }, async () => {
    const srv = await startHerald(['--idle-timeout', '2', '--ping-interval', '10']);
    const c = await rawWs(srv.port);
    try {
      for (let i = 0; i < 9; i++) {
        await c.sendText(`alive-${i}`);
        const m = await c.readMessage({ timeoutMs: 2000 });
        assert.equal(m.payload.toString(), `alive-${i}`);
        await sleep(500);
      }
      assert.equal(c.tcpClosed, false);
    } finally {
      c.destroy();
      await srv.stop();
    }
  });

  test('--ping-interval 1 --idle-timeout 3: a client answering pings stays open for 5 s', { timeout: 15000 }, async () => {
    const srv = await startHerald(['--ping-interval', '1', '--idle-timeout', '3']);
    const c = await rawWs(srv.port);
    try {
      const end = Date.now() + 5000;
      let pings = 0;
      while (Date.now() < end) {
        let f;
        try { f = await c.readFrame({ timeoutMs: Math.max(1, end - Date.now()) }); } catch { break; /* deadline */ }
        assert.ok(f, 'server closed a client that answers pings');
        assert.notEqual(f.opcode, OP.CLOSE, `server sent close ${f.code}`);
        if (f.opcode === OP.PING) {
          pings++;
          await c.sendFrame({ opcode: OP.PONG, payload: f.payload });
        }
      }
      assert.ok(pings >= 3, `expected at least 3 pings in 5 s, got ${pings}`);
      await c.sendText('still alive');
      const m = await c.readMessage({ timeoutMs: 2000, controls: [] });
      assert.equal(m.payload.toString(), 'still alive');
    } finally {
      c.destroy();
      await srv.stop();
    }
  });
});
