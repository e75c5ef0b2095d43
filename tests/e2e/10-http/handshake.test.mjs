// HTTP upgrade handshake, handshake errors, and the command line.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import {
  startHerald, runHerald, rawConnect, buildRequest, acceptFor, OP, encodeFrame, sleep,
} from '../helpers/herald.mjs';

const key16 = () => crypto.randomBytes(16).toString('base64');

/** Send `request` (string or Buffer) on a fresh connection, return the parsed response + whether TCP closed. */
async function exchange(port, request, { split, delay } = {}) {
  const c = await rawConnect(port);
  try {
    await c.sendRaw(typeof request === 'string' ? Buffer.from(request, 'latin1') : request, { split, delay });
    const res = await c.readHttpResponse({ timeoutMs: 5000 });
    res.client = c;
    return res;
  } catch (e) {
    c.destroy();
    throw e;
  }
}

/** Assert an error response: exact status, Connection: close, and the server closes TCP. */
async function expectError(port, request, status, check) {
  const res = await exchange(port, request);
  try {
    assert.equal(res.status, status, `expected ${status}, got:\n${res.raw}`);
    assert.match(res.get('connection') || '', /(^|,)\s*close\s*(,|$)/i, `error response without Connection: close:\n${res.raw}`);
    assert.equal(res.get('sec-websocket-accept'), undefined, 'an error response must not carry Sec-WebSocket-Accept');
    if (check) check(res);
    assert.ok(await res.client.waitForTcpClose(3000), 'server did not close the connection after the error response');
  } finally {
    res.client.destroy();
  }
}

describe('handshake', () => {
  let srv;
  before(async () => { srv = await startHerald(['--threads', '2']); });
  after(async () => { if (srv) await srv.stop(); });

  const req = (o = {}) => buildRequest({ port: srv.port, ...o });

  test('valid upgrade -> 101 with a correct Sec-WebSocket-Accept', async () => {
    const key = key16();
    const res = await exchange(srv.port, req({ key }));
    try {
      assert.equal(res.status, 101, res.raw);
      assert.equal(res.version, 'HTTP/1.1');
      assert.equal(res.get('sec-websocket-accept'), acceptFor(key));
      assert.equal(res.get('upgrade').toLowerCase(), 'websocket');
      assert.match(res.get('connection'), /upgrade/i);
      assert.equal(res.get('sec-websocket-protocol'), undefined);
      assert.equal(res.get('sec-websocket-extensions'), undefined, 'no extension was offered');
      // and the connection works
      await res.client.sendText('after-handshake');
      const m = await res.client.readMessage();
      assert.equal(m.payload.toString(), 'after-handshake');
    } finally {
      res.client.destroy();
    }
  });

  test('/broadcast accepts an upgrade', async () => {
    const res = await exchange(srv.port, req({ path: '/broadcast' }));
    try { assert.equal(res.status, 101, res.raw); } finally { res.client.destroy(); }
  });

  test('header names and the upgrade tokens are case-insensitive; Connection is a token list', async () => {
    const key = key16();
    const raw = `GET /ws HTTP/1.1\r\nhost: 127.0.0.1:${srv.port}\r\nUPGRADE: WebSocket\r\n` +
      `connection: keep-alive, UPGRADE\r\nsec-websocket-key: ${key}\r\nSEC-WEBSOCKET-VERSION: 13\r\n\r\n`;
    const res = await exchange(srv.port, raw);
    try {
      assert.equal(res.status, 101, res.raw);
      assert.equal(res.get('sec-websocket-accept'), acceptFor(key));
    } finally { res.client.destroy(); }
  });

  test('subprotocol offered but not supported -> 101 without Sec-WebSocket-Protocol', async () => {
    const res = await exchange(srv.port, req({ headers: { 'Sec-WebSocket-Protocol': 'chat, superchat' } }));
    try {
      assert.equal(res.status, 101, res.raw);
      assert.equal(res.get('sec-websocket-protocol'), undefined);
    } finally { res.client.destroy(); }
  });

  // ---- error statuses, each its own test ----
  const errorCases = [
    ['malformed request line -> 400', () => 'GARBAGE\r\n\r\n', 400],
    ['request line with missing version -> 400', () => `GET /ws\r\nHost: 127.0.0.1:${srv.port}\r\n\r\n`, 400],
    ['header line without a colon -> 400', () => req().replace('\r\n\r\n', '\r\nThis is not a header\r\n\r\n'), 400],
    ['HTTP/1.0 -> 400', () => req({ version: 'HTTP/1.0' }), 400],
    ['missing Host -> 400', () => req({ headers: { Host: null } }), 400],
    ['missing Sec-WebSocket-Key -> 400', () => req({ headers: { 'Sec-WebSocket-Key': null } }), 400],
    ['Sec-WebSocket-Key not base64 -> 400', () => req({ headers: { 'Sec-WebSocket-Key': 'this is not base64!!!!' } }), 400],
    ['Sec-WebSocket-Key of 15 bytes -> 400', () => req({ headers: { 'Sec-WebSocket-Key': crypto.randomBytes(15).toString('base64') } }), 400],
    ['Sec-WebSocket-Key of 17 bytes -> 400', () => req({ headers: { 'Sec-WebSocket-Key': crypto.randomBytes(17).toString('base64') } }), 400],
    ['empty Sec-WebSocket-Key -> 400', () => req({ headers: { 'Sec-WebSocket-Key': '' } }), 400],
    ['two Sec-WebSocket-Key headers -> 400', () => req({ headers: { 'Sec-WebSocket-Key': [key16(), key16()] } }), 400],
    ['Connection without upgrade -> 400', () => req({ headers: { Connection: 'keep-alive' } }), 400],
    ['missing Connection -> 400', () => req({ headers: { Connection: null } }), 400],
    ['unknown path -> 404', () => req({ path: '/nope' }), 404],
    ['path that only starts like /ws -> 404', () => req({ path: '/wsx' }), 404],
    ['POST -> 405', () => req({ method: 'POST' }), 405],
    ['PUT -> 405', () => req({ method: 'PUT' }), 405],
    ['missing Upgrade -> 426', () => req({ headers: { Upgrade: null } }), 426],
    ['Upgrade: h2c -> 426', () => req({ headers: { Upgrade: 'h2c' } }), 426],
    ['HTTP/2.0 in the request line -> 505', () => req({ version: 'HTTP/2.0' }), 505],
  ];
  for (const [name, make, status] of errorCases) {
    test(name, () => expectError(srv.port, make(), status));
  }

  for (const v of ['8', '12', '14']) {
    test(`Sec-WebSocket-Version ${v} -> 426 with Sec-WebSocket-Version: 13`, () =>
      expectError(srv.port, req({ headers: { 'Sec-WebSocket-Version': v } }), 426, (res) => {
        assert.equal(res.get('sec-websocket-version'), '13', res.raw);
      }));
  }

  test('request head larger than --max-header (default 8192) -> 431', () =>
    expectError(srv.port, req({ headers: { 'X-Padding': 'p'.repeat(10000) } }), 431));

  test('request head just under --max-header is accepted', async () => {
    const res = await exchange(srv.port, req({ headers: { 'X-Padding': 'p'.repeat(7000) } }));
    try { assert.equal(res.status, 101, res.raw); } finally { res.client.destroy(); }
  });

  test('oversized head sent without ever finishing -> 431 (no waiting for the blank line)', async () => {
    const c = await rawConnect(srv.port);
    try {
      await c.sendRaw(`GET /ws HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\nX-Padding: ${'p'.repeat(20000)}`);
      const res = await c.readHttpResponse({ timeoutMs: 5000 });
      assert.equal(res.status, 431, res.raw);
    } finally { c.destroy(); }
  });

  // ---- origins (default policy: none or same host) ----
  test('no Origin -> 101 (default policy)', async () => {
    const res = await exchange(srv.port, req());
    try { assert.equal(res.status, 101, res.raw); } finally { res.client.destroy(); }
  });

  test('same-host Origin -> 101 (default policy)', async () => {
    const res = await exchange(srv.port, req({ headers: { Origin: `http://127.0.0.1:${srv.port}` } }));
    try { assert.equal(res.status, 101, res.raw); } finally { res.client.destroy(); }
  });

  test('foreign Origin -> 403 (default policy)', () =>
    expectError(srv.port, req({ headers: { Origin: 'http://evil.example' } }), 403));

  // ---- delivery quirks ----
  test('request split byte by byte with small pauses -> 101', async () => {
    const key = key16();
    const res = await exchange(srv.port, req({ key }), { split: 1, delay: 2 });
    try {
      assert.equal(res.status, 101, res.raw);
      assert.equal(res.get('sec-websocket-accept'), acceptFor(key));
      await res.client.sendText('split ok');
      assert.equal((await res.client.readMessage()).payload.toString(), 'split ok');
    } finally { res.client.destroy(); }
  });

  test('request split in odd chunks (crossing CRLFs) -> 101', async () => {
    const res = await exchange(srv.port, req(), { split: [3, 1, 17, 1, 1, 40, 2, 1], delay: 20 });
    try { assert.equal(res.status, 101, res.raw); } finally { res.client.destroy(); }
  });

  test('a frame pipelined in the same write as the request is processed', async () => {
    const c = await rawConnect(srv.port);
    try {
      const frames = Buffer.concat([
        encodeFrame({ opcode: OP.TEXT, payload: 'pipelined-1' }),
        encodeFrame({ opcode: OP.BINARY, payload: Buffer.from([1, 2, 3]) }),
      ]);
      await c.handshake({}, { trailer: frames });
      const m1 = await c.readMessage();
      assert.equal(m1.opcode, OP.TEXT);
      assert.equal(m1.payload.toString(), 'pipelined-1');
      const m2 = await c.readMessage();
      assert.equal(m2.opcode, OP.BINARY);
      assert.deepEqual([...m2.payload], [1, 2, 3]);
    } finally { c.destroy(); }
  });
});

describe('handshake with --allowed-origins', () => {
  let srv;
  before(async () => { srv = await startHerald(['--allowed-origins', 'https://*.example.com,localhost:*']); });
  after(async () => { if (srv) await srv.stop(); });

  const cases = [
    ['https://app.example.com', 101],
    ['https://a.b.example.com', 101],
    ['http://app.example.com', 403], // scheme is part of a pattern with ://
    ['https://example.com', 403],
    ['https://app.example.org', 403],
    ['http://localhost:3000', 101], // host[:port] pattern, any scheme
    ['https://localhost:8443', 101],
    ['http://evil.example', 403],
  ];
  for (const [origin, status] of cases) {
    test(`Origin ${origin} -> ${status}`, async () => {
      const r = buildRequest({ port: srv.port, headers: { Origin: origin } });
      if (status === 101) {
        const res = await exchange(srv.port, r);
        try { assert.equal(res.status, 101, res.raw); } finally { res.client.destroy(); }
      } else {
        await expectError(srv.port, r, status);
      }
    });
  }
});

describe('handshake with --allowed-origins "*"', () => {
  let srv;
  before(async () => { srv = await startHerald(['--allowed-origins', '*']); });
  after(async () => { if (srv) await srv.stop(); });

  test('any Origin -> 101', async () => {
    const res = await exchange(srv.port, buildRequest({ port: srv.port, headers: { Origin: 'http://evil.example' } }));
    try { assert.equal(res.status, 101, res.raw); } finally { res.client.destroy(); }
  });
});

describe('handshake timeout', () => {
  let srv;
  before(async () => { srv = await startHerald(['--handshake-timeout', '1']); });
  after(async () => { if (srv) await srv.stop(); });

  test('a client that sends half a request is disconnected after --handshake-timeout 1', async () => {
    const c = await rawConnect(srv.port);
    try {
      const t0 = Date.now();
      await c.sendRaw(`GET /ws HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\n`);
      assert.ok(await c.waitForTcpClose(3500), 'connection still open 3.5 s after an unfinished handshake');
      const dt = Date.now() - t0;
      assert.ok(dt >= 700, `closed after ${dt} ms: too early for a 1 s handshake timeout`);
    } finally { c.destroy(); }
  });

  test('a client that sends nothing is disconnected after --handshake-timeout 1', async () => {
    const c = await rawConnect(srv.port);
    try {
      const t0 = Date.now();
      assert.ok(await c.waitForTcpClose(3500), 'silent connection still open 3.5 s after connect');
      assert.ok(Date.now() - t0 >= 700, 'closed too early');
    } finally { c.destroy(); }
  });

  test('a slow-drip request that keeps sending still times out', async () => {
    const c = await rawConnect(srv.port);
    try {
      const t0 = Date.now();
      const text = `GET /ws HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\n${'X-Drip: 1\r\n'.repeat(40)}`;
      // ~100 ms between bytes: the whole request would take far longer than the timeout
      c.sendRaw(text, { split: 1, delay: 100 }).catch(() => {});
      assert.ok(await c.waitForTcpClose(3500), 'slow-drip handshake was not cut off');
      assert.ok(Date.now() - t0 >= 700, 'closed too early');
    } finally { c.destroy(); }
  });

  test('a completed handshake is not affected by the handshake timeout', async () => {
    const c = await rawConnect(srv.port);
    try {
      await c.handshake();
      await sleep(1600);
      await c.sendText('still here');
      assert.equal((await c.readMessage()).payload.toString(), 'still here');
    } finally { c.destroy(); }
  });
});

describe('command line', () => {
  test('herald --version prints "herald 0.1.0" and exits 0', async () => {
    const r = await runHerald(['--version']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'herald 0.1.0');
  });

  test('herald --help exits 0 and names the serve command', async () => {
    const r = await runHerald(['--help']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout + r.stderr, /\bserve\b/);
  });

  test('herald serve --help exits 0 and documents every flag', async () => {
    const r = await runHerald(['serve', '--help']);
    assert.equal(r.code, 0, r.stderr);
    const text = r.stdout + r.stderr;
    for (const word of ['--listen', '--threads', '--max-message', '--max-backlog', '--ping-interval', '--idle-timeout',
      '--handshake-timeout', '--max-header', '--allowed-origins', '--compression', '--deflate-context-takeover', '--shutdown-timeout']) {
      assert.ok(text.includes(word), `--help does not mention ${word}:\n${text}`);
    }
  });

  const bad = [
    ['unknown flag', ['serve', '--listen', '127.0.0.1:0', '--no-such-flag']],
    ['--threads abc', ['serve', '--listen', '127.0.0.1:0', '--threads', 'abc']],
    ['--max-message -5', ['serve', '--listen', '127.0.0.1:0', '--max-message', '-5']],
    ['--max-message 64X', ['serve', '--listen', '127.0.0.1:0', '--max-message', '64X']],
    ['--compression maybe', ['serve', '--listen', '127.0.0.1:0', '--compression', 'maybe']],
    ['--threads without a value', ['serve', '--listen', '127.0.0.1:0', '--threads']],
  ];
  for (const [name, argv] of bad) {
    test(`${name} -> exit 2 with a one-line error on stderr`, async () => {
      const r = await runHerald(argv, { timeoutMs: 5000 });
      assert.equal(r.timedOut, false, 'herald kept running with a bad command line');
      assert.equal(r.code, 2, `exit code ${r.code}; stderr: ${r.stderr}`);
      const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
      assert.equal(lines.length, 1, `expected exactly one stderr line, got:\n${r.stderr}`);
      assert.ok(!r.stdout.includes('listening'), 'must not start listening');
    });
  }

  test('--max-message with a K suffix is accepted', async () => {
    const srv = await startHerald(['--max-message', '64K', '--threads', '1']);
    assert.equal(await srv.stop(), 0);
  });
});
