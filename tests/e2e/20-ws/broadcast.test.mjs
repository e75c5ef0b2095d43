// /broadcast fan-out across threads, and slow-consumer eviction.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startHerald, rawWs, OP, sleep, withTimeout, waitUntil, patternBytes } from '../helpers/herald.mjs';

function openWs(url) {
  return withTimeout(new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  }), 10000, `open ${url}`);
}

describe('broadcast', () => {
  test('500 clients, 50 senders x 20 messages: everyone gets all 1000 exactly once, in order per sender', { timeout: 90000 }, async () => {
    const CLIENTS = 500;
    const SENDERS = 50;
    const PER = 20;
    const srv = await startHerald(['--threads', '2', '--log-level', 'debug']);
    const clients = [];
    try {
      // connect in batches to avoid a SYN flood against the listen backlog
      for (let i = 0; i < CLIENTS; i += 50) {
        const batch = await Promise.all(Array.from({ length: Math.min(50, CLIENTS - i) }, () => openWs(`${srv.url}/broadcast`)));
        clients.push(...batch);
      }
      const state = clients.map(() => ({ count: 0, next: new Array(SENDERS).fill(0), errors: [] }));
      let total = 0;
      clients.forEach((ws, idx) => {
        ws.on('message', (data, isBinary) => {
          const s = state[idx];
          s.count++;
          total++;
          let m;
          try { m = JSON.parse(data.toString()); } catch { s.errors.push(`unparsable: ${data.toString().slice(0, 80)}`); return; }
          if (isBinary) s.errors.push('text arrived as binary');
          if (m.seq !== s.next[m.from]) s.errors.push(`from ${m.from}: expected seq ${s.next[m.from]}, got ${m.seq}`);
          s.next[m.from] = m.seq + 1;
        });
        ws.on('close', (code) => { state[idx].errors.push(`closed with ${code}`); });
        ws.on('error', (e) => { state[idx].errors.push(`error ${e.message}`); });
      });
      for (let n = 0; n < PER; n++) {
        for (let i = 0; i < SENDERS; i++) clients[i].send(JSON.stringify({ from: i, seq: n }));
      }
      const expected = CLIENTS * SENDERS * PER;
      await waitUntil(() => !(total < expected), 60000, `broadcast delivery (${expected} deliveries)`)
        .catch((e) => { e.message += `; delivered ${total}`; throw e; });
      await sleep(300); // let any duplicate arrive
      // the kernel spread the clients over both worker threads (SO_REUSEPORT)
      for (const t of [0, 1]) {
        const n = srv.stderr().split('\n').filter((l) => l.includes(`accepted on thread ${t}`)).length;
        assert.ok(n >= 100, `only ${n} of ${CLIENTS} connections on thread ${t}`);
      }
      const bad = state.map((s, i) => ({ i, ...s })).filter((s) => s.count !== SENDERS * PER || s.errors.length || s.next.some((x) => x !== PER));
      assert.deepEqual(bad.slice(0, 5).map((s) => ({ client: s.i, count: s.count, errors: s.errors.slice(0, 3) })), [], `${bad.length} clients with wrong deliveries`);
    } finally {
      for (const ws of clients) ws.terminate();
      await srv.stop();
    }
  });

  test('slow consumer beyond --max-backlog is disconnected (1008); the others get every message', { timeout: 60000 }, async () => {
    const srv = await startHerald(['--threads', '2', '--max-backlog', '256K', '--log-level', 'debug']);
    const slow = await rawWs(srv.port, { path: '/broadcast' });
    const normal = await openWs(`${srv.url}/broadcast`);
    const flooder = await openWs(`${srv.url}/broadcast`);
    try {
      slow.socket.pause(); // reads nothing from now on
      const MSG = 64 * 1024;
      const COUNT = 256; // 16 MiB in total: far more than the kernel buffers + 256K backlog
      const got = [];
      normal.on('message', (d) => got.push(d));
      flooder.on('message', () => {});
      for (let i = 0; i < COUNT; i++) {
        const b = patternBytes(MSG, i + 1);
        b.writeUInt32BE(i, 0);
        flooder.send(b, { binary: true });
        // pace the flood by what the normal (reading) client has received: it stays at most
        // 2 messages (128K) behind, so only the client that reads nothing piles up a backlog
        await waitUntil(() => got.length >= i - 1, 10000, `normal client receiving message ${i - 1}`)
          .catch((e) => { e.message += `; herald stderr tail:\n${srv.stderr().slice(-1500)}`; throw e; });
      }
      await waitUntil(() => !(got.length < COUNT), 15000, 'normal client receiving the flood')
        .catch((e) => { e.message += `; got ${got.length}/${COUNT}; herald stderr tail:\n${srv.stderr().slice(-1500)}`; throw e; });
      assert.deepEqual(got.map((d) => d.readUInt32BE(0)), Array.from({ length: COUNT }, (_, i) => i), 'normal client order');
      assert.ok(got.every((d) => d.length === MSG));

      // the slow client: resume and drain; it must end with 1008 or a closed/reset connection,
      // and must not have received the whole flood
      slow.socket.resume();
      let received = 0;
      let close = null;
      const deadline = Date.now() + 15000;
      for (;;) {
        const f = await slow.readFrame({ timeoutMs: Math.max(1, deadline - Date.now()) });
        if (!f) break;
        if (f.opcode === OP.CLOSE) { close = f; break; }
        if (f.opcode === OP.BINARY || f.opcode === OP.CONT) received++;
      }
      if (close) assert.equal(close.code, 1008, `slow consumer close code ${close.code}`);
      assert.ok(await slow.waitForTcpClose(5000), 'slow consumer still connected');
      assert.ok(received < COUNT, `slow consumer received all ${COUNT} messages: it was never cut off`);

      // the server is still healthy for the remaining clients
      const before = got.length;
      flooder.send('after eviction');
      await waitUntil(() => !(got.length === before), 5000, 'broadcast after eviction');
      assert.equal(got[before].toString(), 'after eviction');
    } finally {
      slow.destroy();
      normal.terminate();
      flooder.terminate();
      await srv.stop();
    }
  });
});
